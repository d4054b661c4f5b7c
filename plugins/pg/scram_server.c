/* SCRAM-SHA-256 (RFC 5802 / RFC 7677), the server side as PostgreSQL speaks it: tether checking
 * a client against a stored verifier (or a mock one for an unknown user, so a wrong user and a
 * wrong password look the same). */
#include "scram.h"
#include "scram_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

enum { SCRAM_S_INIT = 0, SCRAM_S_SENT_FIRST, SCRAM_S_DONE, SCRAM_S_FAILED };

int scram_server_init(struct scram_server *s, const struct scram_verifier *v)
{
	memset(s, 0, sizeof(*s));
	if (!v || v->salt_len == 0 || v->salt_len > SCRAM_MAX_SALT_LEN || v->iterations < 1 ||
	    v->iterations > INT_MAX)
		return SCRAM_ERR_VERIFIER;
	s->v = *v;
	return SCRAM_OK;
}

int scram_server_init_password(struct scram_server *s, const char *password)
{
	memset(s, 0, sizeof(*s));
	return scram_verifier_from_password(password, SCRAM_DEFAULT_ITERATIONS, &s->v);
}

int scram_server_init_mock(struct scram_server *s, const char *user, const uint8_t *secret, size_t secret_len)
{
	uint8_t mac[SCRAM_KEY_LEN];
	memset(s, 0, sizeof(*s));
	s->mock = true;
	s->v.iterations = SCRAM_DEFAULT_ITERATIONS;
	s->v.salt_len = SCRAM_SALT_LEN;
	if (RAND_bytes(s->v.stored_key, SCRAM_KEY_LEN) != 1 || RAND_bytes(s->v.server_key, SCRAM_KEY_LEN) != 1)
		return SCRAM_ERR_CRYPTO;
	/* A stable salt per user name, as a real user's would be, that only `secret` predicts. */
	if (secret && secret_len) {
		const char *u = user ? user : "";
		if (scram_hmac(secret, secret_len, u, strlen(u), mac) != SCRAM_OK)
			return SCRAM_ERR_CRYPTO;
		memcpy(s->v.salt, mac, SCRAM_SALT_LEN);
		OPENSSL_cleanse(mac, sizeof(mac));
	} else if (RAND_bytes(s->v.salt, SCRAM_SALT_LEN) != 1) {
		return SCRAM_ERR_CRYPTO;
	}
	return SCRAM_OK;
}

int scram_server_set_nonce(struct scram_server *s, const char *nonce)
{
	if (s->state != SCRAM_S_INIT)
		return SCRAM_ERR_STATE;
	if (!nonce || !scram_printable(nonce) || strlen(nonce) > SCRAM_MAX_MESSAGE / 4)
		return SCRAM_ERR_MALFORMED;
	char *n = strdup(nonce);
	if (!n)
		return SCRAM_ERR_NOMEM;
	free(s->nonce);
	s->nonce = n;
	return SCRAM_OK;
}

static int scram_server_fail(struct scram_server *s, int rc)
{
	s->state = SCRAM_S_FAILED;
	return rc;
}

/* Parses client-first-message (cut up in place). gs2 header: "n,," (no channel binding) or
 * "y,," (client could bind but thinks we cannot: true, we offer no -PLUS mechanism). */
static int scram_server_parse_first(char *msg, size_t *gs2_len, const char **cnonce)
{
	char *p = msg, *r;
	if (p[0] == 'p')
		return SCRAM_ERR_CHANNEL_BINDING;
	if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',')
		return SCRAM_ERR_MALFORMED;
	p += 2;
	/* PostgreSQL takes the user from the startup packet and refuses an authorization id. */
	if (p[0] == 'a' && p[1] == '=')
		return SCRAM_ERR_UNSUPPORTED;
	if (p[0] != ',')
		return SCRAM_ERR_MALFORMED;
	p++;
	*gs2_len = (size_t)(p - msg);
	if (p[0] == 'm' && p[1] == '=')
		return SCRAM_ERR_UNSUPPORTED;
	/* The user name (n=) is ignored, as PostgreSQL ignores it. */
	if (!scram_attr(&p, 'n') || !(r = scram_attr(&p, 'r')))
		return SCRAM_ERR_MALFORMED;
	if (!scram_printable(r))
		return SCRAM_ERR_MALFORMED;
	while (p)
		if (!scram_skip_ext(&p))
			return SCRAM_ERR_MALFORMED;
	*cnonce = r;
	return SCRAM_OK;
}

int scram_server_first(struct scram_server *s, const uint8_t *in, size_t in_len, const char **out,
		       size_t *out_len)
{
	char *scratch = NULL, salt64[SCRAM_MAX_SALT_LEN / 3 * 4 + 8];
	const char *cnonce = NULL;
	size_t gs2_len = 0;
	int rc;
	if (s->state != SCRAM_S_INIT) {
		rc = SCRAM_ERR_STATE;
		goto fail;
	}
	if ((rc = scram_take(in, in_len, &scratch)) != SCRAM_OK ||
	    (rc = scram_server_parse_first(scratch, &gs2_len, &cnonce)) != SCRAM_OK)
		goto fail;
	if (!s->nonce && (rc = scram_random_nonce(&s->nonce)) != SCRAM_OK)
		goto fail;
	s->gs2 = scram_strndup(in, gs2_len);
	s->gs2_len = gs2_len;
	s->first_bare = scram_strndup(in + gs2_len, in_len - gs2_len);
	if (!s->gs2 || !s->first_bare) {
		rc = SCRAM_ERR_NOMEM;
		goto fail;
	}
	scram_b64_encode(s->v.salt, s->v.salt_len, salt64);
	if ((rc = scram_fmt(&s->full_nonce, NULL, "%s%s", cnonce, s->nonce)) != SCRAM_OK ||
	    (rc = scram_fmt(&s->server_first, NULL, "r=%s,s=%s,i=%u", s->full_nonce, salt64,
			    (unsigned)s->v.iterations)) != SCRAM_OK ||
	    (rc = scram_fmt(&s->out, &s->out_len, "%s", s->server_first)) != SCRAM_OK)
		goto fail;
	s->state = SCRAM_S_SENT_FIRST;
	*out = s->out;
	*out_len = s->out_len;
fail:
	free(scratch);
	return rc == SCRAM_OK ? rc : scram_server_fail(s, rc);
}

/* Parses client-final-message (cut up in place): c=, r=, any extensions, then p= last.
 * *wo_len is the length of client-final-message-without-proof. */
static int scram_server_parse_final(struct scram_server *s, char *msg, size_t *wo_len, uint8_t proof[SCRAM_KEY_LEN])
{
	char *p = msg, *c, *r, *pr = NULL;
	uint8_t cb[64]; /* far more than any gs2 header we accept */
	size_t n = 0;
	int rc;
	if (!(c = scram_attr(&p, 'c')) || !(r = scram_attr(&p, 'r')))
		return SCRAM_ERR_MALFORMED;
	while (p) {
		if (p[0] == 'p' && p[1] == '=') {
			*wo_len = (size_t)(p - msg) - 1;
			pr = scram_attr(&p, 'p');
			break;
		}
		if (!scram_skip_ext(&p))
			return SCRAM_ERR_MALFORMED;
	}
	if (!pr || p)
		return SCRAM_ERR_MALFORMED;
	rc = scram_b64_decode(c, strlen(c), cb, sizeof(cb), &n);
	if (rc != SCRAM_OK)
		return rc == SCRAM_ERR_TOO_LONG ? SCRAM_ERR_CBIND_MISMATCH : rc;
	if (n != s->gs2_len || memcmp(cb, s->gs2, n) != 0)
		return SCRAM_ERR_CBIND_MISMATCH;
	if (strcmp(r, s->full_nonce) != 0)
		return SCRAM_ERR_NONCE;
	rc = scram_b64_decode(pr, strlen(pr), proof, SCRAM_KEY_LEN, &n);
	if (rc == SCRAM_ERR_TOO_LONG || (rc == SCRAM_OK && n != SCRAM_KEY_LEN))
		return SCRAM_ERR_MALFORMED;
	return rc;
}

int scram_server_final(struct scram_server *s, const uint8_t *in, size_t in_len, const char **out,
		       size_t *out_len)
{
	char *scratch = NULL, *auth = NULL, sig64[64];
	uint8_t proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], check[SCRAM_KEY_LEN];
	size_t wo_len = 0, auth_len = 0;
	int rc;
	if (s->state != SCRAM_S_SENT_FIRST) {
		rc = SCRAM_ERR_STATE;
		goto fail;
	}
	if ((rc = scram_take(in, in_len, &scratch)) != SCRAM_OK ||
	    (rc = scram_server_parse_final(s, scratch, &wo_len, proof)) != SCRAM_OK)
		goto fail;
	if ((rc = scram_fmt(&auth, &auth_len, "%s,%s,%.*s", s->first_bare, s->server_first, (int)wo_len,
			    (const char *)in)) != SCRAM_OK)
		goto fail;
	/* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); it is right when H(ClientKey) is the
	 * StoredKey we hold. */
	if ((rc = scram_hmac(s->v.stored_key, SCRAM_KEY_LEN, auth, auth_len, sig)) != SCRAM_OK)
		goto fail;
	for (size_t k = 0; k < SCRAM_KEY_LEN; k++)
		client_key[k] = proof[k] ^ sig[k];
	if ((rc = scram_sha256(client_key, SCRAM_KEY_LEN, check)) != SCRAM_OK)
		goto fail;
	if (CRYPTO_memcmp(check, s->v.stored_key, SCRAM_KEY_LEN) != 0 || s->mock) {
		rc = SCRAM_ERR_PROOF;
		goto fail;
	}
	if ((rc = scram_hmac(s->v.server_key, SCRAM_KEY_LEN, auth, auth_len, sig)) != SCRAM_OK)
		goto fail;
	scram_b64_encode(sig, SCRAM_KEY_LEN, sig64);
	if ((rc = scram_fmt(&s->out, &s->out_len, "v=%s", sig64)) != SCRAM_OK)
		goto fail;
	s->state = SCRAM_S_DONE;
	*out = s->out;
	*out_len = s->out_len;
fail:
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(check, sizeof(check));
	free(scratch);
	free(auth);
	return rc == SCRAM_OK ? rc : scram_server_fail(s, rc);
}

void scram_server_deinit(struct scram_server *s)
{
	free(s->nonce);
	free(s->gs2);
	free(s->first_bare);
	free(s->server_first);
	free(s->full_nonce);
	free(s->out);
	OPENSSL_cleanse(s, sizeof(*s));
}
