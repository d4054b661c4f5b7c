/* SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: the primitives and message text
 * helpers both sides share, stored verifiers, and the client side (tether logging in to a
 * server); scram_server.c checks a client against a stored verifier. */
#include "scram.h"
#include "scram_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SCRAM_PREFIX "SCRAM-SHA-256$"

enum { SCRAM_C_INIT = 0, SCRAM_C_SENT_FIRST, SCRAM_C_SENT_FINAL, SCRAM_C_DONE, SCRAM_C_FAILED };

const char *scram_strerror(int rc)
{
	/* Indexed by -rc; never names the secret, so fit for clients and logs. */
	static const char *const msgs[] = {
		"ok",
		"out of memory",
		"cryptographic library failure",
		"SCRAM message out of sequence",
		"malformed SCRAM message",
		"malformed SCRAM message (invalid base64)",
		"SCRAM nonce mismatch",
		"SCRAM iteration count out of range",
		"invalid SCRAM salt",
		"SCRAM channel binding is not supported",
		"SCRAM channel binding check failed",
		"unsupported SCRAM feature (authorization identity or extension)",
		"password authentication failed",
		"incorrect server signature",
		"server rejected SCRAM authentication",
		"invalid SCRAM verifier",
		"SCRAM message or password too long",
	};
	return rc <= 0 && -rc < (int)(sizeof(msgs) / sizeof(msgs[0])) ? msgs[-rc] : "unknown SCRAM error";
}

/* ---- base64 (RFC 4648, padded), strict: SCRAM never has whitespace or line breaks ---------- */

static const char scram_b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t scram_b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Writes scram_b64_len(n) characters and a NUL. */
void scram_b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = scram_b64chars[(v >> 18) & 63];
		out[o++] = scram_b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? scram_b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? scram_b64chars[v & 63] : '=';
	}
	out[o] = '\0';
}

static int scram_b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes in[0..n) into out (at most cap bytes). SCRAM_ERR_BASE64 for bad input,
 * SCRAM_ERR_TOO_LONG when the result would not fit. */
int scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t o = 0;
	if (n % 4)
		return SCRAM_ERR_BASE64;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			char ch = in[i + j];
			if (ch == '=' && i + 4 == n && j >= 2 && (j == 3 || in[i + 3] == '=')) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = scram_b64_val(ch)) < 0)
				return SCRAM_ERR_BASE64;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		size_t k = 3 - (size_t)pad;
		if (cap - o < k)
			return SCRAM_ERR_TOO_LONG;
		out[o++] = (uint8_t)(w >> 16);
		if (k > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (k > 2)
			out[o++] = (uint8_t)w;
	}
	*out_len = o;
	return SCRAM_OK;
}

/* ---- primitives ----------------------------------------------------------------------------- */

int scram_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	size_t out_len = 0;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, len, out, SCRAM_KEY_LEN, &out_len) ||
	    out_len != SCRAM_KEY_LEN)
		return SCRAM_ERR_CRYPTO;
	return SCRAM_OK;
}

int scram_sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int out_len = 0;
	if (EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) != 1 || out_len != SCRAM_KEY_LEN)
		return SCRAM_ERR_CRYPTO;
	return SCRAM_OK;
}

/* SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SaltedPassword, "Client Key");
 * ServerKey = HMAC(SaltedPassword, "Server Key"). */
static int scram_derive_keys(const char *password, size_t password_len, const uint8_t *salt, size_t salt_len,
			     uint32_t iterations, uint8_t client_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	int rc = SCRAM_ERR_CRYPTO;
	if (password_len > INT_MAX)
		return SCRAM_ERR_TOO_LONG;
	if (iterations < 1 || iterations > INT_MAX)
		return SCRAM_ERR_ITERATIONS;
	if (PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations, EVP_sha256(),
			      SCRAM_KEY_LEN, salted) != 1)
		goto fail;
	if (scram_hmac(salted, sizeof(salted), "Client Key", 10, client_key) != SCRAM_OK ||
	    scram_hmac(salted, sizeof(salted), "Server Key", 10, server_key) != SCRAM_OK)
		goto fail;
	rc = SCRAM_OK;
fail:
	OPENSSL_cleanse(salted, sizeof(salted));
	return rc;
}

int scram_random_nonce(char **out)
{
	uint8_t raw[SCRAM_NONCE_RAW_LEN];
	char *s = malloc(scram_b64_len(sizeof(raw)) + 1);
	if (!s)
		return SCRAM_ERR_NOMEM;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		free(s);
		return SCRAM_ERR_CRYPTO;
	}
	/* Base64 never produces ',' so the nonce is a valid SCRAM printable string. */
	scram_b64_encode(raw, sizeof(raw), s);
	*out = s;
	return SCRAM_OK;
}

/* printable = %x21-2B / %x2D-7E: visible ASCII except ','. */
bool scram_printable(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == ',')
			return false;
	return true;
}

char *scram_strndup(const void *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static void scram_free_secret(char **p, size_t len)
{
	if (*p) {
		OPENSSL_cleanse(*p, len);
		free(*p);
		*p = NULL;
	}
}

static int scram_vfmt(char **out, size_t *out_len, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static int scram_vfmt(char **out, size_t *out_len, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	char *s = n < 0 ? NULL : malloc((size_t)n + 1);
	if (s)
		vsnprintf(s, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	if (!s)
		return SCRAM_ERR_NOMEM;
	free(*out);
	*out = s;
	if (out_len)
		*out_len = (size_t)n;
	return SCRAM_OK;
}

/* Replaces *out with a formatted string. */
int scram_fmt(char **out, size_t *out_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = scram_vfmt(out, out_len, fmt, ap);
	va_end(ap);
	return rc;
}

/* A received message as a NUL-terminated copy; SCRAM text never holds NUL bytes. */
int scram_take(const uint8_t *in, size_t in_len, char **out)
{
	if (!in || in_len == 0 || memchr(in, 0, in_len))
		return SCRAM_ERR_MALFORMED;
	if (in_len > SCRAM_MAX_MESSAGE)
		return SCRAM_ERR_TOO_LONG;
	*out = scram_strndup(in, in_len);
	return *out ? SCRAM_OK : SCRAM_ERR_NOMEM;
}

/* Reads "attr=value" at *p, cutting the value at the next ',' (overwritten with NUL). *p moves
 * past the comma, or becomes NULL at the end of the message; a trailing comma leaves it at "". */
char *scram_attr(char **p, char attr)
{
	char *s = *p;
	if (!s || s[0] != attr || s[1] != '=')
		return NULL;
	char *v = s + 2, *comma = strchr(v, ',');
	if (comma) {
		*comma = '\0';
		*p = comma + 1;
	} else {
		*p = NULL;
	}
	return v;
}

/* Skips one extension attribute (a letter, '=', a value). */
bool scram_skip_ext(char **p)
{
	char *s = *p;
	if (!s || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	return scram_attr(p, s[0]) != NULL;
}

static int scram_parse_uint(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* ---- verifiers ------------------------------------------------------------------------------ */

bool scram_is_verifier(const char *s)
{
	return s && strncmp(s, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0;
}

void scram_verifier_wipe(struct scram_verifier *v)
{
	OPENSSL_cleanse(v, sizeof(*v));
}

int scram_verifier_parse(const char *s, struct scram_verifier *v)
{
	char *copy = NULL, *p, *salt, *stored, *server;
	size_t n;
	int rc = SCRAM_ERR_VERIFIER;
	memset(v, 0, sizeof(*v));
	if (!scram_is_verifier(s) || strlen(s) > SCRAM_VERIFIER_MAX_LEN)
		return SCRAM_ERR_VERIFIER;
	copy = strdup(s + strlen(SCRAM_PREFIX));
	if (!copy)
		return SCRAM_ERR_NOMEM;
	p = copy;
	if (!(salt = strchr(p, ':')) || !(stored = strchr(salt + 1, '$')) || !(server = strchr(stored + 1, ':')))
		goto fail;
	*salt++ = '\0';
	*stored++ = '\0';
	*server++ = '\0';
	if (scram_parse_uint(p, INT_MAX, &v->iterations) != 0 || v->iterations < 1)
		goto fail;
	if (scram_b64_decode(salt, strlen(salt), v->salt, sizeof(v->salt), &v->salt_len) != SCRAM_OK ||
	    v->salt_len == 0)
		goto fail;
	if (scram_b64_decode(stored, strlen(stored), v->stored_key, SCRAM_KEY_LEN, &n) != SCRAM_OK ||
	    n != SCRAM_KEY_LEN)
		goto fail;
	if (scram_b64_decode(server, strlen(server), v->server_key, SCRAM_KEY_LEN, &n) != SCRAM_OK ||
	    n != SCRAM_KEY_LEN)
		goto fail;
	rc = SCRAM_OK;
fail:
	if (copy)
		scram_free_secret(&copy, strlen(s) - strlen(SCRAM_PREFIX));
	if (rc != SCRAM_OK)
		scram_verifier_wipe(v);
	return rc;
}

int scram_verifier_format(const struct scram_verifier *v, char *buf, size_t size)
{
	char salt[SCRAM_MAX_SALT_LEN / 3 * 4 + 8], stored[48], server[48];
	if (v->salt_len == 0 || v->salt_len > SCRAM_MAX_SALT_LEN || v->iterations < 1 || v->iterations > INT_MAX)
		return SCRAM_ERR_VERIFIER;
	scram_b64_encode(v->salt, v->salt_len, salt);
	scram_b64_encode(v->stored_key, SCRAM_KEY_LEN, stored);
	scram_b64_encode(v->server_key, SCRAM_KEY_LEN, server);
	int n = snprintf(buf, size, SCRAM_PREFIX "%u:%s$%s:%s", (unsigned)v->iterations, salt, stored, server);
	return n > 0 && (size_t)n < size ? SCRAM_OK : SCRAM_ERR_TOO_LONG;
}

int scram_verifier_derive(const char *password, const uint8_t *salt, size_t salt_len, uint32_t iterations,
			  struct scram_verifier *v)
{
	uint8_t client_key[SCRAM_KEY_LEN];
	int rc;
	memset(v, 0, sizeof(*v));
	/* PostgreSQL never lets an empty password log in; neither do we. */
	if (!password || !*password)
		return SCRAM_ERR_VERIFIER;
	if (!salt || salt_len == 0 || salt_len > SCRAM_MAX_SALT_LEN)
		return SCRAM_ERR_SALT;
	if (iterations == 0)
		iterations = SCRAM_DEFAULT_ITERATIONS;
	v->iterations = iterations;
	v->salt_len = salt_len;
	memcpy(v->salt, salt, salt_len);
	rc = scram_derive_keys(password, strlen(password), salt, salt_len, iterations, client_key, v->server_key);
	if (rc == SCRAM_OK)
		rc = scram_sha256(client_key, sizeof(client_key), v->stored_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	if (rc != SCRAM_OK)
		scram_verifier_wipe(v);
	return rc;
}

int scram_verifier_from_password(const char *password, uint32_t iterations, struct scram_verifier *v)
{
	uint8_t salt[SCRAM_SALT_LEN];
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return SCRAM_ERR_CRYPTO;
	return scram_verifier_derive(password, salt, sizeof(salt), iterations, v);
}

/* ---- client side ---------------------------------------------------------------------------- */

int scram_client_init(struct scram_client *c, const char *user, const char *password)
{
	memset(c, 0, sizeof(*c));
	c->max_iterations = SCRAM_MAX_ITERATIONS;
	if (!password)
		return SCRAM_ERR_VERIFIER;
	c->password_len = strlen(password);
	if (c->password_len > INT_MAX)
		return SCRAM_ERR_TOO_LONG;
	c->password = scram_strndup(password, c->password_len);
	/* saslname escapes ',' and '=' (RFC 5802 section 5.1). */
	size_t n = 0;
	for (const char *u = user ? user : ""; *u; u++)
		n += (*u == ',' || *u == '=') ? 3 : 1;
	c->authcid = malloc(n + 1);
	if (!c->password || !c->authcid) {
		scram_client_deinit(c);
		return SCRAM_ERR_NOMEM;
	}
	n = 0;
	for (const char *u = user ? user : ""; *u; u++) {
		if (*u == ',' || *u == '=') {
			memcpy(c->authcid + n, *u == ',' ? "=2C" : "=3D", 3);
			n += 3;
		} else {
			c->authcid[n++] = *u;
		}
	}
	c->authcid[n] = '\0';
	return SCRAM_OK;
}

int scram_client_set_nonce(struct scram_client *c, const char *nonce)
{
	if (c->state != SCRAM_C_INIT)
		return SCRAM_ERR_STATE;
	if (!nonce || !scram_printable(nonce) || strlen(nonce) > SCRAM_MAX_MESSAGE / 4)
		return SCRAM_ERR_MALFORMED;
	char *s = strdup(nonce);
	if (!s)
		return SCRAM_ERR_NOMEM;
	free(c->nonce);
	c->nonce = s;
	return SCRAM_OK;
}

void scram_client_set_keys(struct scram_client *c, const struct scram_keys *k)
{
	if (!k || k->salt_len == 0 || k->salt_len > SCRAM_MAX_SALT_LEN)
		return;
	c->keys = *k;
	c->have_cached = true;
}

static int scram_client_fail(struct scram_client *c, int rc)
{
	c->state = SCRAM_C_FAILED;
	scram_free_secret(&c->password, c->password_len);
	return rc;
}

int scram_client_start(struct scram_client *c, const char **out, size_t *out_len)
{
	int rc;
	if (c->state != SCRAM_C_INIT || !c->password)
		return scram_client_fail(c, SCRAM_ERR_STATE);
	if (!c->nonce && (rc = scram_random_nonce(&c->nonce)) != SCRAM_OK)
		return scram_client_fail(c, rc);
	if ((rc = scram_fmt(&c->first_bare, NULL, "n=%s,r=%s", c->authcid, c->nonce)) != SCRAM_OK ||
	    (rc = scram_fmt(&c->out, &c->out_len, "n,,%s", c->first_bare)) != SCRAM_OK)
		return scram_client_fail(c, rc);
	c->state = SCRAM_C_SENT_FIRST;
	*out = c->out;
	*out_len = c->out_len;
	return SCRAM_OK;
}

/* Parses server-first-message (in `msg`, cut up in place) into nonce, salt and iterations. */
static int scram_client_parse_first(struct scram_client *c, char *msg, const char **nonce, uint8_t *salt,
				    size_t *salt_len, uint32_t *iterations)
{
	char *p = msg, *r, *s, *i;
	int rc;
	if (p[0] == 'm' && p[1] == '=')
		return SCRAM_ERR_UNSUPPORTED;
	if (!(r = scram_attr(&p, 'r')) || !(s = scram_attr(&p, 's')) || !(i = scram_attr(&p, 'i')))
		return SCRAM_ERR_MALFORMED;
	/* libpq refuses anything after i=, and so do we. */
	if (p)
		return SCRAM_ERR_MALFORMED;
	size_t cn = strlen(c->nonce);
	if (!scram_printable(r))
		return SCRAM_ERR_MALFORMED;
	if (strlen(r) <= cn || memcmp(r, c->nonce, cn) != 0)
		return SCRAM_ERR_NONCE;
	rc = scram_b64_decode(s, strlen(s), salt, SCRAM_MAX_SALT_LEN, salt_len);
	if (rc == SCRAM_ERR_TOO_LONG || (rc == SCRAM_OK && *salt_len == 0))
		return SCRAM_ERR_SALT;
	if (rc != SCRAM_OK)
		return rc;
	if (scram_parse_uint(i, c->max_iterations, iterations) != 0 || *iterations < 1)
		return SCRAM_ERR_ITERATIONS;
	*nonce = r;
	return SCRAM_OK;
}

int scram_client_continue(struct scram_client *c, const uint8_t *in, size_t in_len, const char **out,
			  size_t *out_len)
{
	char *msg = NULL, *scratch = NULL, *auth = NULL, *final_wo = NULL;
	const char *nonce = NULL;
	uint8_t salt[SCRAM_MAX_SALT_LEN], stored_key[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	char proof64[64];
	size_t salt_len = 0, auth_len = 0;
	uint32_t iterations = 0;
	int rc;
	if (c->state != SCRAM_C_SENT_FIRST) {
		rc = SCRAM_ERR_STATE;
		goto fail;
	}
	if ((rc = scram_take(in, in_len, &msg)) != SCRAM_OK || (rc = scram_take(in, in_len, &scratch)) != SCRAM_OK)
		goto fail;
	if ((rc = scram_client_parse_first(c, scratch, &nonce, salt, &salt_len, &iterations)) != SCRAM_OK)
		goto fail;

	/* The pool's cached keys stand in for PBKDF2 when the server's salt and count match. */
	if (!(c->have_cached && c->keys.iterations == iterations && c->keys.salt_len == salt_len &&
	      memcmp(c->keys.salt, salt, salt_len) == 0)) {
		c->keys.iterations = iterations;
		c->keys.salt_len = salt_len;
		memcpy(c->keys.salt, salt, salt_len);
		rc = scram_derive_keys(c->password, c->password_len, salt, salt_len, iterations, c->keys.client_key,
				       c->keys.server_key);
		if (rc != SCRAM_OK)
			goto fail;
	}
	scram_free_secret(&c->password, c->password_len);

	/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof; the gs2
	 * header "n,," is "biws" in base64. */
	if ((rc = scram_fmt(&final_wo, NULL, "c=biws,r=%s", nonce)) != SCRAM_OK ||
	    (rc = scram_fmt(&auth, &auth_len, "%s,%s,%s", c->first_bare, msg, final_wo)) != SCRAM_OK)
		goto fail;
	if ((rc = scram_sha256(c->keys.client_key, SCRAM_KEY_LEN, stored_key)) != SCRAM_OK ||
	    (rc = scram_hmac(stored_key, SCRAM_KEY_LEN, auth, auth_len, sig)) != SCRAM_OK ||
	    (rc = scram_hmac(c->keys.server_key, SCRAM_KEY_LEN, auth, auth_len, c->server_signature)) != SCRAM_OK)
		goto fail;
	for (size_t k = 0; k < SCRAM_KEY_LEN; k++)
		proof[k] = c->keys.client_key[k] ^ sig[k];
	scram_b64_encode(proof, SCRAM_KEY_LEN, proof64);
	if ((rc = scram_fmt(&c->out, &c->out_len, "%s,p=%s", final_wo, proof64)) != SCRAM_OK)
		goto fail;
	c->state = SCRAM_C_SENT_FINAL;
	*out = c->out;
	*out_len = c->out_len;
fail:
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	free(msg);
	free(scratch);
	free(auth);
	free(final_wo);
	return rc == SCRAM_OK ? rc : scram_client_fail(c, rc);
}

int scram_client_finish(struct scram_client *c, const uint8_t *in, size_t in_len)
{
	char *msg = NULL, *p, *v;
	uint8_t sig[SCRAM_KEY_LEN];
	size_t n = 0;
	int rc;
	if (c->state != SCRAM_C_SENT_FINAL) {
		rc = SCRAM_ERR_STATE;
		goto fail;
	}
	if ((rc = scram_take(in, in_len, &msg)) != SCRAM_OK)
		goto fail;
	p = msg;
	if ((v = scram_attr(&p, 'e'))) {
		/* The error value is the server's word, kept printable and short for the caller. */
		size_t k = 0;
		for (; v[k] && k < sizeof(c->server_error) - 1; k++)
			c->server_error[k] = (v[k] >= 0x20 && v[k] < 0x7f) ? v[k] : '?';
		c->server_error[k] = '\0';
		rc = SCRAM_ERR_SERVER;
		goto fail;
	}
	if (!(v = scram_attr(&p, 'v')) || p) {
		rc = SCRAM_ERR_MALFORMED;
		goto fail;
	}
	rc = scram_b64_decode(v, strlen(v), sig, sizeof(sig), &n);
	if (rc == SCRAM_ERR_TOO_LONG || (rc == SCRAM_OK && n != SCRAM_KEY_LEN))
		rc = SCRAM_ERR_MALFORMED;
	if (rc != SCRAM_OK)
		goto fail;
	if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0) {
		rc = SCRAM_ERR_SIGNATURE;
		goto fail;
	}
	c->state = SCRAM_C_DONE;
fail:
	free(msg);
	return rc == SCRAM_OK ? rc : scram_client_fail(c, rc);
}

bool scram_client_verified(const struct scram_client *c)
{
	return c->state == SCRAM_C_DONE;
}

const struct scram_keys *scram_client_keys(const struct scram_client *c)
{
	return c->state == SCRAM_C_SENT_FINAL || c->state == SCRAM_C_DONE ? &c->keys : NULL;
}

const char *scram_client_server_error(const struct scram_client *c)
{
	return c->server_error;
}

void scram_client_deinit(struct scram_client *c)
{
	scram_free_secret(&c->password, c->password_len);
	free(c->authcid);
	free(c->nonce);
	free(c->first_bare);
	free(c->out);
	OPENSSL_cleanse(c, sizeof(*c)); /* zeroes the cached keys and signature too */
}
