/* SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it, both sides: tether logging in to a
 * server, and tether checking a client against a stored verifier. No channel binding yet.
 *
 * Password preparation: PostgreSQL runs SASLprep (RFC 4013) over passwords, which leaves pure
 * ASCII unchanged, and libpq falls back to the raw bytes when SASLprep fails. tether uses the
 * password's bytes as they are: identical for every ASCII password (the common case, and every
 * IAM token) and for non-ASCII passwords that SASLprep would reject or leave unchanged (already
 * NFKC, no mapped characters). A non-ASCII password that SASLprep would rewrite (for example one
 * holding U+00A0 or a decomposed accent) derives different keys than libpq would. */
#ifndef TETHER_SCRAM_H
#define TETHER_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_MECHANISM "SCRAM-SHA-256"
#define SCRAM_KEY_LEN 32
#define SCRAM_DEFAULT_ITERATIONS 4096
/* PBKDF2 runs on the event loop: a server asking for more than this is refused, not obeyed. */
#define SCRAM_MAX_ITERATIONS 10000000u
#define SCRAM_SALT_LEN 16       /* salts we generate, as PostgreSQL does */
#define SCRAM_MAX_SALT_LEN 256  /* salts we accept */
#define SCRAM_NONCE_RAW_LEN 18  /* random bytes per nonce (24 base64 characters) */
#define SCRAM_MAX_MESSAGE 16384 /* any SCRAM message longer than this is refused */
/* The longest verifier scram_verifier_format writes, NUL included. */
#define SCRAM_VERIFIER_MAX_LEN 512

#define SCRAM_WUR __attribute__((warn_unused_result))

enum scram_rc {
	SCRAM_OK = 0,
	SCRAM_ERR_NOMEM = -1,
	SCRAM_ERR_CRYPTO = -2,          /* the RNG or an OpenSSL primitive failed */
	SCRAM_ERR_STATE = -3,           /* called out of order, or after an earlier failure */
	SCRAM_ERR_MALFORMED = -4,       /* missing, misplaced or extra attribute; bad characters */
	SCRAM_ERR_BASE64 = -5,
	SCRAM_ERR_NONCE = -6,           /* the other side's nonce does not match ours */
	SCRAM_ERR_ITERATIONS = -7,      /* not 1..max_iterations */
	SCRAM_ERR_SALT = -8,            /* empty, or longer than SCRAM_MAX_SALT_LEN */
	SCRAM_ERR_CHANNEL_BINDING = -9, /* client requires channel binding ("p="): not supported */
	SCRAM_ERR_CBIND_MISMATCH = -10, /* client-final c= does not repeat its gs2 header */
	SCRAM_ERR_UNSUPPORTED = -11,    /* authorization identity or a mandatory extension (m=) */
	SCRAM_ERR_PROOF = -12,          /* the client's proof is wrong: wrong password */
	SCRAM_ERR_SIGNATURE = -13,      /* the server's signature is wrong: it does not know the password */
	SCRAM_ERR_SERVER = -14,         /* the server answered e=...; see scram_client_server_error */
	SCRAM_ERR_VERIFIER = -15,       /* not a SCRAM-SHA-256 verifier, or an empty password */
	SCRAM_ERR_TOO_LONG = -16,       /* message over SCRAM_MAX_MESSAGE, or password over INT_MAX */
};

/* Safe to show to clients and logs: names the failure, never the secret. */
const char *scram_strerror(int rc);

/* ---- Verifiers: SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64> ------- */

struct scram_verifier {
	uint32_t iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Whether `s` starts like a verifier (then it is never to be taken as a plaintext password). */
bool scram_is_verifier(const char *s);
int scram_verifier_parse(const char *s, struct scram_verifier *v) SCRAM_WUR;
/* Writes the verifier into buf (SCRAM_VERIFIER_MAX_LEN is always enough). */
int scram_verifier_format(const struct scram_verifier *v, char *buf, size_t size) SCRAM_WUR;
/* A verifier with a fresh random salt; iterations 0 means SCRAM_DEFAULT_ITERATIONS. */
int scram_verifier_from_password(const char *password, uint32_t iterations, struct scram_verifier *v) SCRAM_WUR;
/* The same with a given salt (deterministic; for tests and known vectors). */
int scram_verifier_derive(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iterations,
			  struct scram_verifier *v) SCRAM_WUR;
void scram_verifier_wipe(struct scram_verifier *v);

/* ---- Client side: tether authenticating to a PostgreSQL server ----------------------------- */

/* ClientKey and ServerKey for one (salt, iterations): all a client needs, so a pool can keep them
 * and skip PBKDF2 on its next connection to the same server. They are as secret as the password. */
struct scram_keys {
	uint32_t iterations;
	size_t salt_len;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

struct scram_client {
	int state;
	uint32_t max_iterations; /* SCRAM_MAX_ITERATIONS unless lowered after init */
	char *password;          /* wiped and freed as soon as the keys are derived */
	size_t password_len;
	char *authcid;           /* the escaped user name for n= */
	char *nonce;             /* ours */
	char *first_bare;        /* client-first-message-bare, part of AuthMessage */
	char *out;               /* the last message produced */
	size_t out_len;
	bool have_cached;
	struct scram_keys keys;  /* cached on entry, derived after scram_client_continue */
	uint8_t server_signature[SCRAM_KEY_LEN];
	char server_error[64];
};

/* user may be NULL: PostgreSQL takes the user from the startup packet and libpq sends "n=". */
int scram_client_init(struct scram_client *c, const char *user, const char *password) SCRAM_WUR;
/* Replaces the random nonce (before scram_client_start); for known-answer tests only. */
int scram_client_set_nonce(struct scram_client *c, const char *nonce) SCRAM_WUR;
/* Offers keys kept from an earlier exchange; used only if the server sends the same salt and
 * iteration count. */
void scram_client_set_keys(struct scram_client *c, const struct scram_keys *k);
/* client-first-message, to send in SASLInitialResponse. `out` lives until the next call. */
int scram_client_start(struct scram_client *c, const char **out, size_t *out_len) SCRAM_WUR;
/* Takes server-first-message (AuthenticationSASLContinue) and produces client-final-message. */
int scram_client_continue(struct scram_client *c, const uint8_t *in, size_t in_len, const char **out,
			  size_t *out_len) SCRAM_WUR;
/* Checks server-final-message (AuthenticationSASLFinal). Only after SCRAM_OK here may
 * AuthenticationOk be believed. */
int scram_client_finish(struct scram_client *c, const uint8_t *in, size_t in_len) SCRAM_WUR;
bool scram_client_verified(const struct scram_client *c);
/* The keys used by this exchange (after scram_client_continue), to pass to the next one. */
const struct scram_keys *scram_client_keys(const struct scram_client *c);
/* The server's e= value after SCRAM_ERR_SERVER (printable ASCII, truncated), else "". */
const char *scram_client_server_error(const struct scram_client *c);
void scram_client_deinit(struct scram_client *c);

/* ---- Server side: tether authenticating a client ------------------------------------------- */

struct scram_server {
	int state;
	bool mock;              /* no such user: go through the motions, then refuse */
	struct scram_verifier v;
	char *nonce;            /* our part of the nonce */
	char *gs2;              /* the client's gs2 header, which c= must repeat */
	size_t gs2_len;
	char *first_bare;       /* client-first-message-bare */
	char *server_first;
	char *full_nonce;
	char *out;
	size_t out_len;
};

int scram_server_init(struct scram_server *s, const struct scram_verifier *v) SCRAM_WUR;
/* For users stored with a plaintext password: a verifier with a random salt, derived now (4096
 * PBKDF2 rounds, about a millisecond; derive once at load with scram_verifier_from_password where
 * the caller can). */
int scram_server_init_password(struct scram_server *s, const char *password) SCRAM_WUR;
/* For unknown users, so they cannot be told from known ones: the salt is derived from the user
 * name and `secret` (random, kept for the life of the process by the caller; NULL gives a random
 * salt every time) and the exchange always ends in SCRAM_ERR_PROOF. */
int scram_server_init_mock(struct scram_server *s, const char *user, const uint8_t *secret,
			   size_t secret_len) SCRAM_WUR;
/* Replaces the random nonce part (before scram_server_first); for known-answer tests only. */
int scram_server_set_nonce(struct scram_server *s, const char *nonce) SCRAM_WUR;
/* Takes client-first-message (from SASLInitialResponse) and produces server-first-message. */
int scram_server_first(struct scram_server *s, const uint8_t *in, size_t in_len, const char **out,
		       size_t *out_len) SCRAM_WUR;
/* Takes client-final-message and, when the proof is right, produces server-final-message. */
int scram_server_final(struct scram_server *s, const uint8_t *in, size_t in_len, const char **out,
		       size_t *out_len) SCRAM_WUR;
void scram_server_deinit(struct scram_server *s);

#endif
