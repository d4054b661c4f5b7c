/* PostgreSQL's md5 password scheme: the stored "md5<hex>" form and the salted response a client
 * sends to AuthenticationMD5Password. */
#include "md5auth.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5AUTH_SCRAM_PREFIX "SCRAM-SHA-256$"

bool md5auth_is_hash(const char *s)
{
	if (!s || strncmp(s, "md5", 3) != 0 || strlen(s) != MD5AUTH_LEN)
		return false;
	for (size_t i = 3; i < MD5AUTH_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* out = "md5" + hex(md5(a || b)). */
static int md5auth_hex(const void *a, size_t alen, const void *b, size_t blen, char out[MD5AUTH_BUFSIZE])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int rc = MD5AUTH_ERR;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		goto fail;
	/* EVP_md5 fails to initialise under a FIPS provider; that is reported, not crashed on. */
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 || EVP_DigestUpdate(ctx, a, alen) != 1 ||
	    EVP_DigestUpdate(ctx, b, blen) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 16)
		goto fail;
	memcpy(out, "md5", 3);
	for (unsigned i = 0; i < 16; i++) {
		out[3 + 2 * i] = hex[md[i] >> 4];
		out[4 + 2 * i] = hex[md[i] & 15];
	}
	out[MD5AUTH_LEN] = '\0';
	rc = MD5AUTH_OK;
fail:
	OPENSSL_cleanse(md, sizeof(md));
	EVP_MD_CTX_free(ctx);
	return rc;
}

int md5auth_stored(const char *password, const char *user, char out[MD5AUTH_BUFSIZE])
{
	if (!password || !user)
		return MD5AUTH_ERR;
	return md5auth_hex(password, strlen(password), user, strlen(user), out);
}

int md5auth_response(const char *secret, const char *user, const uint8_t salt[4], char out[MD5AUTH_BUFSIZE])
{
	char inner[MD5AUTH_BUFSIZE];
	int rc;
	if (!secret || !user || !salt)
		return MD5AUTH_ERR;
	if (md5auth_is_hash(secret)) {
		memcpy(inner, secret, MD5AUTH_BUFSIZE);
		rc = MD5AUTH_OK;
	} else {
		rc = md5auth_stored(secret, user, inner);
	}
	if (rc == MD5AUTH_OK)
		rc = md5auth_hex(inner + 3, 32, salt, 4, out);
	OPENSSL_cleanse(inner, sizeof(inner));
	return rc;
}

int md5auth_verify(const char *stored, const char *user, const uint8_t salt[4], const char *response)
{
	char want[MD5AUTH_BUFSIZE];
	if (!stored || !response || strncmp(stored, MD5AUTH_SCRAM_PREFIX, strlen(MD5AUTH_SCRAM_PREFIX)) == 0)
		return MD5AUTH_ERR;
	int rc = md5auth_response(stored, user, salt, want);
	if (rc == MD5AUTH_OK)
		/* The length is public (always 35 for a well-formed answer); the bytes are compared
		 * in constant time. */
		rc = strlen(response) == MD5AUTH_LEN && CRYPTO_memcmp(want, response, MD5AUTH_LEN) == 0
			     ? MD5AUTH_OK
			     : MD5AUTH_MISMATCH;
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}
