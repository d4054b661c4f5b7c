/* PostgreSQL's md5 password scheme: the stored "md5<hex>" form and the salted response a client
 * sends to AuthenticationMD5Password. */
#ifndef TETHER_MD5AUTH_H
#define TETHER_MD5AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "md5" + 32 lowercase hex digits, plus the NUL. */
#define MD5AUTH_LEN 35
#define MD5AUTH_BUFSIZE (MD5AUTH_LEN + 1)

enum md5auth_rc {
	MD5AUTH_OK = 0,
	MD5AUTH_MISMATCH = -1, /* wrong password */
	MD5AUTH_ERR = -2,      /* the stored secret cannot check md5 (a SCRAM verifier), or no MD5 (FIPS) */
};

/* Whether `s` has the shape of a stored md5 hash, as PostgreSQL decides it. */
bool md5auth_is_hash(const char *s);

/* The stored form: "md5" + md5hex(password + user). */
int md5auth_stored(const char *password, const char *user, char out[MD5AUTH_BUFSIZE])
	__attribute__((warn_unused_result));
/* What a client answers: "md5" + md5hex(md5hex(password + user) + salt). `secret` is the plaintext
 * password or, when md5auth_is_hash(secret), the stored hash (PostgreSQL's pass-the-hash). */
int md5auth_response(const char *secret, const char *user, const uint8_t salt[4], char out[MD5AUTH_BUFSIZE])
	__attribute__((warn_unused_result));
/* Checks a client's response against a stored plaintext or "md5<hex>" secret, in constant time. */
int md5auth_verify(const char *stored, const char *user, const uint8_t salt[4], const char *response)
	__attribute__((warn_unused_result));

#endif
