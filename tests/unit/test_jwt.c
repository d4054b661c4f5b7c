/* Unit tests for base64url, RS256 signing and the JWT shapes Google's auth flows expect. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "jwt.h"
#include "tap.h"

static char *pem_of(EVP_PKEY *key)
{
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *pem = strndup(data, (size_t)n);
	BIO_free(b);
	return pem;
}

static void b64_case(const char *in, size_t len, const char *want)
{
	char *enc = jwt_base64url_encode(in, len);
	is_str(enc, want, "base64url of %zu bytes", len);
	unsigned char *dec = NULL;
	size_t declen = 0;
	is_int(jwt_base64url_decode(enc, strlen(enc), &dec, &declen), 0, "decodes back");
	ok(declen == len && memcmp(dec, in, len) == 0, "round trip of %zu bytes", len);
	free(enc);
	free(dec);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void test_base64url(void)
{
	b64_case("", 0, "");
	b64_case("f", 1, "Zg");
	b64_case("fo", 2, "Zm8");
	b64_case("foo", 3, "Zm9v");
	b64_case("foob", 4, "Zm9vYg");
	b64_case("\xfb\xff\xfe", 3, "-__-");
	b64_case("\x00\x00", 2, "AAA");

	unsigned char *dec = NULL;
	size_t n = 0;
	is_int(jwt_base64url_decode("Zm9vYg==", 8, &dec, &n), 0, "padding accepted");
	is_int(n, 4, "padded length");
	free(dec);
	dec = NULL;
	is_int(jwt_base64url_decode("+/8", 3, &dec, &n), -1, "standard alphabet refused");
	is_int(jwt_base64url_decode("Z", 1, &dec, &n), -1, "one leftover character refused");
	is_int(jwt_base64url_decode("Zh", 2, &dec, &n), -1, "stray low bits refused");
	is_int(jwt_base64url_decode("Zm 9", 4, &dec, &n), -1, "space refused");

	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	char *enc = jwt_base64url_encode(all, sizeof(all));
	ok(strpbrk(enc, "+/=") == NULL, "no +, / or = in output");
	is_int(jwt_base64url_decode(enc, strlen(enc), &dec, &n), 0, "all bytes decode");
	ok(n == 256 && memcmp(dec, all, 256) == 0, "all 256 byte values round trip");
	free(enc);
	free(dec);
}

static void test_keys(EVP_PKEY *key, const char *pem)
{
	char err[128] = "";
	EVP_PKEY *k = jwt_key_from_pem(pem, err, sizeof(err));
	ok(k != NULL, "PKCS#8 PEM parses");
	EVP_PKEY_free(k);

	k = jwt_key_from_pem("-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n", err,
			     sizeof(err));
	ok(k == NULL, "garbage PEM refused");
	has_str(err, "not a PEM private key", "error says what is wrong");
	ok(strstr(err, "base64") == NULL, "error does not quote the key");

	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *ecpem = pem_of(ec);
	k = jwt_key_from_pem(ecpem, err, sizeof(err));
	ok(k == NULL, "EC key refused");
	has_str(err, "RSA", "error says RSA is needed");
	free(ecpem);
	EVP_PKEY_free(ec);
	(void)key;
}

static void test_assertion(EVP_PKEY *key)
{
	char *jwt = jwt_bearer_assertion(key, "kid-1", "sa@p.iam.gserviceaccount.com",
					 "https://www.googleapis.com/auth/cloud-platform https://x/y", NULL,
					 "https://oauth2.googleapis.com/token", 1700000000);
	ok(jwt != NULL, "assertion built");
	is_int(jwt_rs256_verify(key, jwt), 0, "signature verifies with the key");

	json_t *h = jwt_decode_part(jwt, 0);
	is_str(jstr(h, "alg"), "RS256", "header alg");
	is_str(jstr(h, "typ"), "JWT", "header typ");
	is_str(jstr(h, "kid"), "kid-1", "header kid");
	is_int(json_object_size(h), 3, "header has exactly alg, typ, kid");
	json_decref(h);

	json_t *c = jwt_decode_part(jwt, 1);
	is_str(jstr(c, "iss"), "sa@p.iam.gserviceaccount.com", "iss is the email");
	is_str(jstr(c, "scope"), "https://www.googleapis.com/auth/cloud-platform https://x/y", "scope space separated");
	is_str(jstr(c, "aud"), "https://oauth2.googleapis.com/token", "aud is the token uri");
	is_int(json_integer_value(json_object_get(c, "iat")), 1700000000, "iat");
	is_int(json_integer_value(json_object_get(c, "exp")), 1700003600, "exp = iat + 3600");
	ok(json_object_get(c, "sub") == NULL, "no sub in the bearer assertion");
	json_decref(c);

	/* Tampering with the claims breaks the signature. */
	char *dot = strchr(jwt, '.');
	dot[2] = dot[2] == 'A' ? 'B' : 'A';
	is_int(jwt_rs256_verify(key, jwt), -1, "tampered token fails verification");
	free(jwt);

	jwt = jwt_bearer_assertion(key, NULL, "sa@x", NULL, "https://svc.example", "https://tok", 100);
	h = jwt_decode_part(jwt, 0);
	ok(json_object_get(h, "kid") == NULL, "no kid when none given");
	json_decref(h);
	c = jwt_decode_part(jwt, 1);
	is_str(jstr(c, "target_audience"), "https://svc.example", "ID token request has target_audience");
	ok(json_object_get(c, "scope") == NULL, "and no scope");
	json_decref(c);
	free(jwt);
}

static void test_self_signed(EVP_PKEY *key, EVP_PKEY *other)
{
	char *jwt = jwt_self_signed(key, "k2", "sa@p.iam", "https://storage.googleapis.com/", NULL, 1000);
	ok(jwt != NULL, "self-signed JWT with aud");
	is_int(jwt_rs256_verify(key, jwt), 0, "verifies");
	is_int(jwt_rs256_verify(other, jwt), -1, "does not verify with another key");
	json_t *c = jwt_decode_part(jwt, 1);
	is_str(jstr(c, "iss"), "sa@p.iam", "iss");
	is_str(jstr(c, "sub"), "sa@p.iam", "sub = iss");
	is_str(jstr(c, "aud"), "https://storage.googleapis.com/", "aud");
	ok(json_object_get(c, "scope") == NULL, "no scope with aud");
	is_int(json_integer_value(json_object_get(c, "exp")), 4600, "exp");
	json_decref(c);
	free(jwt);

	jwt = jwt_self_signed(key, "k2", "sa@p.iam", NULL, "https://www.googleapis.com/auth/pubsub", 1000);
	c = jwt_decode_part(jwt, 1);
	is_str(jstr(c, "scope"), "https://www.googleapis.com/auth/pubsub", "scope variant");
	ok(json_object_get(c, "aud") == NULL, "no aud with scope");
	json_decref(c);
	free(jwt);

	ok(jwt_self_signed(key, NULL, "e", "a", "s", 1) == NULL, "aud and scope together refused");
	ok(jwt_self_signed(key, NULL, "e", NULL, NULL, 1) == NULL, "neither refused");
}

static void test_decode(void)
{
	ok(jwt_decode_part("abc", 1) == NULL, "not a JWT");
	ok(jwt_decode_part("a.b.c.d", 1) == NULL, "four parts");
	char *p = jwt_base64url_encode("[1]", 3);
	char tok[64];
	snprintf(tok, sizeof(tok), "e30.%s.x", p);
	ok(jwt_decode_part(tok, 1) == NULL, "claims not an object");
	free(p);
	json_t *h = jwt_decode_part("e30.e30.", 0);
	ok(h && json_is_object(h), "{} header decodes");
	json_decref(h);
}

int main(void)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	EVP_PKEY *other = EVP_RSA_gen(2048);
	char *pem = pem_of(key);

	test_base64url();
	test_keys(key, pem);
	test_assertion(key);
	test_self_signed(key, other);
	test_decode();

	/* A key loaded from PEM signs tokens the original verifies. */
	char err[64];
	EVP_PKEY *loaded = jwt_key_from_pem(pem, err, sizeof(err));
	char *jwt = jwt_self_signed(loaded, NULL, "a@b", "https://x/", NULL, 1);
	is_int(jwt_rs256_verify(key, jwt), 0, "token from the PEM-loaded key verifies with the generated key");
	free(jwt);
	EVP_PKEY_free(loaded);

	free(pem);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	return tap_done();
}
