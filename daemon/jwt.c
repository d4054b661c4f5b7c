/* JWT building and RS256 signing for Google's auth flows (see jwt.h). */
#include "jwt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

static const char jwt_b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *jwt_base64url_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = malloc(len / 3 * 4 + 5);
	if (!out)
		return NULL;
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = jwt_b64url_chars[v >> 18 & 63];
		*o++ = jwt_b64url_chars[v >> 12 & 63];
		*o++ = jwt_b64url_chars[v >> 6 & 63];
		*o++ = jwt_b64url_chars[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = jwt_b64url_chars[v >> 18 & 63];
		*o++ = jwt_b64url_chars[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = jwt_b64url_chars[v >> 18 & 63];
		*o++ = jwt_b64url_chars[v >> 12 & 63];
		*o++ = jwt_b64url_chars[v >> 6 & 63];
	}
	*o = '\0';
	return out;
}

static int jwt_b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int jwt_base64url_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	unsigned char *buf = malloc(len / 4 * 3 + 3);
	if (!buf)
		return -1;
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = jwt_b64url_value(s[i]);
		if (v < 0)
			goto fail;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Non-canonical encodings (stray low bits in the last character) are refused. */
	if (acc != 0)
		goto fail;
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
fail:
	free(buf);
	return -1;
}

EVP_PKEY *jwt_key_from_pem(const char *pem, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	BIO *bio = BIO_new_mem_buf(pem, -1);
	if (!bio) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	/* OpenSSL's error text may quote nothing secret, but it is not useful either. */
	ERR_clear_error();
	if (!key) {
		snprintf(err, errlen, "not a PEM private key");
		return NULL;
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "not an RSA key (RS256 needs RSA)");
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

int jwt_rs256_sign(EVP_PKEY *key, const void *data, size_t len, unsigned char **sig, size_t *siglen)
{
	unsigned char *buf = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = 0;
	if (!ctx)
		goto fail;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1)
		goto fail;
	if (EVP_DigestSign(ctx, NULL, &n, data, len) != 1)
		goto fail;
	buf = malloc(n);
	if (!buf || EVP_DigestSign(ctx, buf, &n, data, len) != 1)
		goto fail;
	EVP_MD_CTX_free(ctx);
	*sig = buf;
	*siglen = n;
	return 0;
fail:
	ERR_clear_error();
	free(buf);
	EVP_MD_CTX_free(ctx);
	return -1;
}

/* base64url of the compact JSON text, keeping insertion order (header fields read naturally). */
static char *jwt_json_part(json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text)
		return NULL;
	char *enc = jwt_base64url_encode(text, strlen(text));
	free(text);
	return enc;
}

char *jwt_sign(EVP_PKEY *key, const char *kid, json_t *claims)
{
	char *h = NULL, *p = NULL, *s = NULL, *signing = NULL, *out = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	json_t *hdr = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	if (!hdr)
		goto fail;
	if (kid && *kid)
		json_object_set_new(hdr, "kid", json_string(kid));
	h = jwt_json_part(hdr);
	p = jwt_json_part(claims);
	if (!h || !p)
		goto fail;
	if (asprintf(&signing, "%s.%s", h, p) < 0) {
		signing = NULL;
		goto fail;
	}
	if (jwt_rs256_sign(key, signing, strlen(signing), &sig, &siglen) != 0)
		goto fail;
	s = jwt_base64url_encode(sig, siglen);
	if (!s || asprintf(&out, "%s.%s", signing, s) < 0)
		out = NULL;
fail:
	json_decref(hdr);
	free(h);
	free(p);
	free(s);
	free(sig);
	free(signing);
	return out;
}

char *jwt_bearer_assertion(EVP_PKEY *key, const char *kid, const char *email, const char *scope,
			   const char *target_audience, const char *token_uri, time_t iat)
{
	json_t *claims = json_object();
	if (!claims)
		return NULL;
	json_object_set_new(claims, "iss", json_string(email));
	if (target_audience)
		json_object_set_new(claims, "target_audience", json_string(target_audience));
	else
		json_object_set_new(claims, "scope", json_string(scope ? scope : ""));
	json_object_set_new(claims, "aud", json_string(token_uri));
	json_object_set_new(claims, "iat", json_integer((json_int_t)iat));
	json_object_set_new(claims, "exp", json_integer((json_int_t)iat + 3600));
	char *jwt = jwt_sign(key, kid, claims);
	json_decref(claims);
	return jwt;
}

char *jwt_self_signed(EVP_PKEY *key, const char *kid, const char *email, const char *aud, const char *scope,
		      time_t iat)
{
	if ((aud && scope) || (!aud && !scope))
		return NULL;
	json_t *claims = json_object();
	if (!claims)
		return NULL;
	json_object_set_new(claims, "iss", json_string(email));
	json_object_set_new(claims, "sub", json_string(email));
	if (aud)
		json_object_set_new(claims, "aud", json_string(aud));
	else
		json_object_set_new(claims, "scope", json_string(scope));
	json_object_set_new(claims, "iat", json_integer((json_int_t)iat));
	json_object_set_new(claims, "exp", json_integer((json_int_t)iat + 3600));
	char *jwt = jwt_sign(key, kid, claims);
	json_decref(claims);
	return jwt;
}

/* Splits a compact JWT: the lengths of its three parts, -1 unless there are exactly three. */
static int jwt_split(const char *jwt, size_t start[3], size_t len[3])
{
	const char *d1 = strchr(jwt, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return -1;
	start[0] = 0;
	len[0] = (size_t)(d1 - jwt);
	start[1] = (size_t)(d1 - jwt) + 1;
	len[1] = (size_t)(d2 - d1) - 1;
	start[2] = (size_t)(d2 - jwt) + 1;
	len[2] = strlen(d2 + 1);
	return 0;
}

json_t *jwt_decode_part(const char *jwt, int part)
{
	size_t start[3], len[3];
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	if (part < 0 || part > 1 || !jwt || jwt_split(jwt, start, len) != 0)
		return NULL;
	if (jwt_base64url_decode(jwt + start[part], len[part], &raw, &rawlen) != 0)
		return NULL;
	json_t *obj = json_loadb((const char *)raw, rawlen, 0, NULL);
	free(raw);
	if (obj && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

int jwt_rs256_verify(EVP_PKEY *pub, const char *jwt)
{
	size_t start[3], len[3];
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int rc = -1;
	EVP_MD_CTX *ctx = NULL;
	json_t *hdr = jwt_decode_part(jwt, 0);
	if (!hdr || !json_is_string(json_object_get(hdr, "alg")) ||
	    strcmp(json_string_value(json_object_get(hdr, "alg")), "RS256") != 0)
		goto fail;
	if (jwt_split(jwt, start, len) != 0 || jwt_base64url_decode(jwt + start[2], len[2], &sig, &siglen) != 0)
		goto fail;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) != 1)
		goto fail;
	if (EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)jwt, len[0] + 1 + len[1]) == 1)
		rc = 0;
fail:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(sig);
	json_decref(hdr);
	return rc;
}
