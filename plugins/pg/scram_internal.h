/* What scram.c shares with scram_server.c: the primitives and message-text helpers of both
 * sides of a SCRAM-SHA-256 exchange. */
#ifndef TETHER_SCRAM_INTERNAL_H
#define TETHER_SCRAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scram.h"

/* Writes scram_b64_len(n) characters and a NUL. */
void scram_b64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes in[0..n) into out (at most cap bytes). SCRAM_ERR_BASE64 for bad input,
 * SCRAM_ERR_TOO_LONG when the result would not fit. */
int scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);
int scram_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN]);
int scram_sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN]);
int scram_random_nonce(char **out);
/* printable = %x21-2B / %x2D-7E: visible ASCII except ','. */
bool scram_printable(const char *s);
char *scram_strndup(const void *p, size_t n);
/* Replaces *out with a formatted string. */
int scram_fmt(char **out, size_t *out_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A received message as a NUL-terminated copy; SCRAM text never holds NUL bytes. */
int scram_take(const uint8_t *in, size_t in_len, char **out);
/* Reads "attr=value" at *p, cutting the value at the next ',' (overwritten with NUL). *p moves
 * past the comma, or becomes NULL at the end of the message; a trailing comma leaves it at "". */
char *scram_attr(char **p, char attr);
/* Skips one extension attribute (a letter, '=', a value). */
bool scram_skip_ext(char **p);

#endif
