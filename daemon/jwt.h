/* JSON Web Tokens as Google's auth flows need them: base64url, RS256 signatures (OpenSSL EVP),
 * the JWT-bearer grant assertion, the self-signed JWT of AIP-4111, and reading the claims of a
 * token tether received (an ID token's `exp`) without verifying it. */
#ifndef TETHER_JWT_H
#define TETHER_JWT_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

/* Unpadded base64url of `len` bytes; malloc'd, NULL on out of memory. */
char *jwt_base64url_encode(const void *data, size_t len);
/* Decodes base64url with or without '=' padding (standard '+' '/' are refused). `*out` is
 * malloc'd (and NUL-terminated for convenience). 0, or -1 on bad input. */
int jwt_base64url_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
	__attribute__((warn_unused_result));

/* The private key of a PEM string ("-----BEGIN PRIVATE KEY-----", PKCS#8 or PKCS#1). Only RSA
 * keys are accepted. NULL with `err` filled (never quoting the key). Free with EVP_PKEY_free. */
EVP_PKEY *jwt_key_from_pem(const char *pem, char *err, size_t errlen);

/* RSASSA-PKCS1-v1_5 with SHA-256 over `data`. `*sig` is malloc'd. 0 or -1. */
int jwt_rs256_sign(EVP_PKEY *key, const void *data, size_t len, unsigned char **sig, size_t *siglen)
	__attribute__((warn_unused_result));

/* Signs header {"alg":"RS256","typ":"JWT"[,"kid"]} + `claims` (not stolen); "h.p.s" malloc'd,
 * NULL on failure. `kid` may be NULL. */
char *jwt_sign(EVP_PKEY *key, const char *kid, json_t *claims);

/* The assertion of the JWT-bearer grant (RFC 7523) sent to a service-account key's token_uri:
 * iss=email, scope=`scope` (space separated), aud=token_uri, iat, exp=iat+3600. With
 * `target_audience` set (an ID token request) the claim target_audience replaces scope. */
char *jwt_bearer_assertion(EVP_PKEY *key, const char *kid, const char *email, const char *scope,
			   const char *target_audience, const char *token_uri, time_t iat);

/* A self-signed JWT used directly as a bearer token (AIP-4111): iss=sub=email, exactly one of
 * `aud` ("https://SERVICE.googleapis.com/") or `scope`, iat, exp=iat+3600. */
char *jwt_self_signed(EVP_PKEY *key, const char *kid, const char *email, const char *aud, const char *scope,
		      time_t iat);

/* The decoded header (part 0) or claims (part 1) of a compact JWT, not verified. NULL when the
 * token is not three base64url parts with a JSON object there. */
json_t *jwt_decode_part(const char *jwt, int part);

/* Checks an RS256 token's signature against `pub` (a public or private key). 0 = valid. Used by
 * tests and by anything that must check tokens it is handed. */
int jwt_rs256_verify(EVP_PKEY *pub, const char *jwt);

#endif
