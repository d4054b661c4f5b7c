/* Unit tests for SCRAM-SHA-256 (RFC 7677 vector, round trips, malformed input) and md5 auth. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../../plugins/pg/md5auth.h"
#include "../../plugins/pg/scram.h"
#include "tap.h"

#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* Computed independently with Python's hashlib for password "pencil". */
#define RFC_VERIFIER                                                                               \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t rfc_salt[16] = { 91, 109, 153, 104, 157, 18, 53, 142, 236, 160, 75, 20, 18, 54, 250, 129 };

static const uint8_t *u8(const char *s)
{
	return (const uint8_t *)s;
}

static void test_rfc7677_client(void)
{
	struct scram_client c;
	const char *out;
	size_t n;
	is_int(scram_client_init(&c, "user", "pencil"), SCRAM_OK, "client init");
	is_int(scram_client_set_nonce(&c, RFC_CNONCE), SCRAM_OK, "inject client nonce");
	is_int(scram_client_start(&c, &out, &n), SCRAM_OK, "client-first");
	is_str(out, RFC_CLIENT_FIRST, "client-first matches RFC 7677");
	is_int(n, strlen(RFC_CLIENT_FIRST), "client-first length");
	is_int(scram_client_continue(&c, u8(RFC_SERVER_FIRST), strlen(RFC_SERVER_FIRST), &out, &n), SCRAM_OK,
	       "server-first accepted");
	is_str(out, RFC_CLIENT_FINAL, "client-final matches RFC 7677");
	ok(c.password == NULL, "password dropped once keys are derived");
	ok(!scram_client_verified(&c), "not verified before server-final");
	is_int(scram_client_finish(&c, u8(RFC_SERVER_FINAL), strlen(RFC_SERVER_FINAL)), SCRAM_OK,
	       "server-final verified");
	ok(scram_client_verified(&c), "verified");
	scram_client_deinit(&c);
}

static void test_rfc7677_server(void)
{
	struct scram_verifier v;
	struct scram_server s;
	char buf[SCRAM_VERIFIER_MAX_LEN];
	const char *out;
	size_t n;
	is_int(scram_verifier_derive("pencil", rfc_salt, sizeof(rfc_salt), 4096, &v), SCRAM_OK, "derive verifier");
	is_int(scram_verifier_format(&v, buf, sizeof(buf)), SCRAM_OK, "format verifier");
	is_str(buf, RFC_VERIFIER, "verifier matches an independent derivation");
	is_int(scram_server_init(&s, &v), SCRAM_OK, "server init");
	is_int(scram_server_set_nonce(&s, RFC_SNONCE), SCRAM_OK, "inject server nonce");
	is_int(scram_server_first(&s, u8(RFC_CLIENT_FIRST), strlen(RFC_CLIENT_FIRST), &out, &n), SCRAM_OK,
	       "client-first accepted");
	is_str(out, RFC_SERVER_FIRST, "server-first matches RFC 7677");
	is_int(scram_server_final(&s, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL), &out, &n), SCRAM_OK,
	       "client proof accepted");
	is_str(out, RFC_SERVER_FINAL, "server-final matches RFC 7677");
	scram_server_deinit(&s);
}

/* Runs a whole exchange; returns the first non-OK code, or SCRAM_OK. */
static int exchange(const char *user, const char *password, struct scram_server *s, struct scram_client *c)
{
	const char *out;
	size_t n;
	int rc;
	if ((rc = scram_client_init(c, user, password)) != SCRAM_OK || (rc = scram_client_start(c, &out, &n)) != SCRAM_OK)
		return rc;
	if ((rc = scram_server_first(s, u8(out), n, &out, &n)) != SCRAM_OK)
		return rc;
	if ((rc = scram_client_continue(c, u8(out), n, &out, &n)) != SCRAM_OK)
		return rc;
	if ((rc = scram_server_final(s, u8(out), n, &out, &n)) != SCRAM_OK)
		return rc;
	return scram_client_finish(c, u8(out), n);
}

static void test_round_trips(void)
{
	struct scram_verifier v, v2;
	struct scram_server s;
	struct scram_client c;
	char buf[SCRAM_VERIFIER_MAX_LEN];

	is_int(scram_verifier_from_password("correct horse", 0, &v), SCRAM_OK, "verifier from password");
	is_int(v.iterations, 4096, "default iterations");
	is_int(v.salt_len, 16, "16-byte salt");
	is_int(scram_verifier_format(&v, buf, sizeof(buf)), SCRAM_OK, "format");
	ok(scram_is_verifier(buf), "formatted verifier is recognised");
	is_int(scram_verifier_parse(buf, &v2), SCRAM_OK, "parse formatted verifier");
	ok(memcmp(&v, &v2, sizeof(v)) == 0, "parse(format(v)) == v");

	is_int(scram_server_init(&s, &v2), SCRAM_OK, "server from parsed verifier");
	is_int(exchange(NULL, "correct horse", &s, &c), SCRAM_OK, "round trip with the right password");
	ok(scram_client_verified(&c), "client verified the server");
	scram_client_deinit(&c);
	scram_server_deinit(&s);

	is_int(scram_server_init(&s, &v), SCRAM_OK, "server init");
	is_int(exchange(NULL, "correct horsE", &s, &c), SCRAM_ERR_PROOF, "wrong password rejected");
	scram_client_deinit(&c);
	scram_server_deinit(&s);

	is_int(scram_server_init_password(&s, "plain pw"), SCRAM_OK, "server from plaintext");
	is_int(exchange("odd,user=name", "plain pw", &s, &c), SCRAM_OK, "round trip, plaintext, escaped user");
	has_str(c.first_bare, "n=odd=2Cuser=3Dname,", "user name escaped");
	scram_client_deinit(&c);
	scram_server_deinit(&s);

	/* IAM tokens are used as passwords: 4 KiB and more must work. */
	char *big = malloc(8193);
	for (int i = 0; i < 8192; i++)
		big[i] = (char)('!' + i % 90);
	big[8192] = '\0';
	is_int(scram_server_init_password(&s, big), SCRAM_OK, "server from an 8 KiB password");
	is_int(exchange(NULL, big, &s, &c), SCRAM_OK, "round trip with an 8 KiB password");
	scram_client_deinit(&c);
	scram_server_deinit(&s);
	free(big);

	/* Non-ASCII passwords are used as raw UTF-8 bytes on both sides. */
	is_int(scram_server_init_password(&s, "p\xc3\xa4ssw\xc3\xb6rd"), SCRAM_OK, "server, UTF-8 password");
	is_int(exchange(NULL, "p\xc3\xa4ssw\xc3\xb6rd", &s, &c), SCRAM_OK, "round trip, UTF-8 password");
	scram_client_deinit(&c);
	scram_server_deinit(&s);

	is_int(scram_server_init_password(&s, ""), SCRAM_ERR_VERIFIER, "empty password refused on the server side");
	scram_server_deinit(&s);
}

static void test_cached_keys(void)
{
	struct scram_client c;
	struct scram_keys k;
	const char *out;
	size_t n;
	char first_final[256];

	is_int(scram_client_init(&c, "user", "pencil"), SCRAM_OK, "init");
	is_int(scram_client_set_nonce(&c, RFC_CNONCE), SCRAM_OK, "nonce");
	is_int(scram_client_start(&c, &out, &n), SCRAM_OK, "start");
	is_int(scram_client_continue(&c, u8(RFC_SERVER_FIRST), strlen(RFC_SERVER_FIRST), &out, &n), SCRAM_OK, "continue");
	snprintf(first_final, sizeof(first_final), "%s", out);
	ok(scram_client_keys(&c) != NULL, "keys available after continue");
	k = *scram_client_keys(&c);
	scram_client_deinit(&c);

	/* The password is wrong, but the cached keys for this salt/count make the answer right. */
	is_int(scram_client_init(&c, "user", "not pencil"), SCRAM_OK, "init with other password");
	scram_client_set_keys(&c, &k);
	is_int(scram_client_set_nonce(&c, RFC_CNONCE), SCRAM_OK, "nonce");
	is_int(scram_client_start(&c, &out, &n), SCRAM_OK, "start");
	is_int(scram_client_continue(&c, u8(RFC_SERVER_FIRST), strlen(RFC_SERVER_FIRST), &out, &n), SCRAM_OK, "continue");
	is_str(out, first_final, "cached keys used instead of PBKDF2");
	scram_client_deinit(&c);

	/* A different iteration count makes the cache miss. */
	const char *sf = "r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4097";
	is_int(scram_client_init(&c, "user", "pencil"), SCRAM_OK, "init");
	scram_client_set_keys(&c, &k);
	is_int(scram_client_set_nonce(&c, RFC_CNONCE), SCRAM_OK, "nonce");
	is_int(scram_client_start(&c, &out, &n), SCRAM_OK, "start");
	is_int(scram_client_continue(&c, u8(sf), strlen(sf), &out, &n), SCRAM_OK, "continue");
	is_int(scram_client_keys(&c)->iterations, 4097, "keys re-derived for the new count");
	ok(memcmp(scram_client_keys(&c)->client_key, k.client_key, SCRAM_KEY_LEN) != 0, "different keys");
	scram_client_deinit(&c);
}

/* A client at the point of having sent client-first with the RFC nonce. */
static void client_at_first(struct scram_client *c)
{
	const char *out;
	size_t n;
	if (scram_client_init(c, "user", "pencil") != SCRAM_OK || scram_client_set_nonce(c, RFC_CNONCE) != SCRAM_OK ||
	    scram_client_start(c, &out, &n) != SCRAM_OK)
		abort();
}

static int client_continue_with(const char *server_first, uint32_t max_iter)
{
	struct scram_client c;
	const char *out;
	size_t n;
	client_at_first(&c);
	if (max_iter)
		c.max_iterations = max_iter;
	int rc = scram_client_continue(&c, u8(server_first), strlen(server_first), &out, &n);
	scram_client_deinit(&c);
	return rc;
}

static void test_client_malformed(void)
{
	const char *salt = ",s=W22ZaJ0SNY7soEsUEjb6gQ==";
	char m[512];
#define CF(str, want, ...) is_int(client_continue_with((str), 0), (want), __VA_ARGS__)
	CF("s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", SCRAM_ERR_MALFORMED, "server-first without r=");
	CF("r=" RFC_CNONCE "x,i=4096", SCRAM_ERR_MALFORMED, "server-first without s=");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==", SCRAM_ERR_MALFORMED, "server-first without i=");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,", SCRAM_ERR_MALFORMED, "trailing comma");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1", SCRAM_ERR_MALFORMED, "trailing attribute");
	CF("m=ext,r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", SCRAM_ERR_UNSUPPORTED, "mandatory extension");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6g*==,i=4096", SCRAM_ERR_BASE64, "bad base64 salt");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", SCRAM_ERR_BASE64, "unpadded base64 salt");
	CF("r=" RFC_CNONCE "x,s=W2=ZaJ0SNY7soEsUEjb6gQ==,i=4096", SCRAM_ERR_BASE64, "padding inside base64");
	CF("r=" RFC_CNONCE "x,s=,i=4096", SCRAM_ERR_SALT, "empty salt");
	CF("r=XXprNGfwEbeRWgbNEkqOabc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", SCRAM_ERR_NONCE, "nonce prefix mismatch");
	CF("r=" RFC_CNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", SCRAM_ERR_NONCE, "server added no nonce");
	CF("r=" RFC_CNONCE "x y,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", SCRAM_ERR_MALFORMED, "space in nonce");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", SCRAM_ERR_ITERATIONS, "iteration count 0");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001", SCRAM_ERR_ITERATIONS, "iteration count too big");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999", SCRAM_ERR_ITERATIONS,
	   "iteration count overflow");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", SCRAM_ERR_ITERATIONS, "negative iteration count");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=", SCRAM_ERR_ITERATIONS, "empty iteration count");
	CF("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=12a", SCRAM_ERR_ITERATIONS, "non-numeric iteration count");
	is_int(client_continue_with("r=" RFC_CNONCE "x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 1000), SCRAM_ERR_ITERATIONS,
	       "count above a lowered max_iterations");
	/* 300 bytes of salt, over SCRAM_MAX_SALT_LEN. */
	char *p = m + snprintf(m, sizeof(m), "r=%sx,s=", RFC_CNONCE);
	for (int i = 0; i < 400; i++)
		*p++ = 'A';
	strcpy(p, ",i=4096");
	CF(m, SCRAM_ERR_SALT, "salt too long");
	(void)salt;
#undef CF

	struct scram_client c;
	const char *out;
	size_t n;
	client_at_first(&c);
	is_int(scram_client_continue(&c, u8("r=a\0b"), 5, &out, &n), SCRAM_ERR_MALFORMED, "NUL inside message");
	is_int(scram_client_continue(&c, u8(RFC_SERVER_FIRST), strlen(RFC_SERVER_FIRST), &out, &n), SCRAM_ERR_STATE,
	       "no second chance after a failure");
	scram_client_deinit(&c);

	client_at_first(&c);
	is_int(scram_client_continue(&c, u8(""), 0, &out, &n), SCRAM_ERR_MALFORMED, "empty server-first");
	scram_client_deinit(&c);

	is_int(scram_client_init(&c, NULL, "x"), SCRAM_OK, "init");
	is_int(scram_client_continue(&c, u8(RFC_SERVER_FIRST), strlen(RFC_SERVER_FIRST), &out, &n), SCRAM_ERR_STATE,
	       "continue before start");
	scram_client_deinit(&c);
	is_int(scram_client_init(&c, NULL, "x"), SCRAM_OK, "init");
	is_int(scram_client_set_nonce(&c, "a,b"), SCRAM_ERR_MALFORMED, "nonce with a comma refused");
	is_int(scram_client_start(&c, &out, &n), SCRAM_OK, "start with a random nonce");
	is_int(strlen(out), strlen("n,,n=,r=") + 24, "random nonce is 24 base64 characters");
	has_str(out, "n,,n=,r=", "PostgreSQL-style client-first (empty user)");
	scram_client_deinit(&c);

	/* Server-final problems. */
	static const struct {
		const char *msg;
		int want;
		const char *what;
	} finals[] = {
		{ "e=invalid-proof", SCRAM_ERR_SERVER, "server-final e= error" },
		{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95H4=", SCRAM_ERR_SIGNATURE, "wrong server signature" },
		{ "v=AAAA", SCRAM_ERR_MALFORMED, "short server signature" },
		{ "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", SCRAM_ERR_BASE64, "unpadded signature" },
		{ "v=" "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1", SCRAM_ERR_MALFORMED, "trailing attribute" },
		{ "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", SCRAM_ERR_MALFORMED, "no v=" },
	};
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		client_at_first(&c);
		is_int(scram_client_continue(&c, u8(RFC_SERVER_FIRST), strlen(RFC_SERVER_FIRST), &out, &n), SCRAM_OK,
		       "continue");
		is_int(scram_client_finish(&c, u8(finals[i].msg), strlen(finals[i].msg)), finals[i].want, "%s",
		       finals[i].what);
		ok(!scram_client_verified(&c), "not verified after: %s", finals[i].what);
		if (finals[i].want == SCRAM_ERR_SERVER)
			is_str(scram_client_server_error(&c), "invalid-proof", "server error value kept");
		scram_client_deinit(&c);
	}
}

/* An independent client-final for the RFC exchange with a chosen c= (for gs2 "y,,"). */
static void rfc_final_with_cbind(const char *c64, char *out, size_t size)
{
	uint8_t sp[32], ck[32], sk[32], sig[32], proof[32];
	unsigned int len;
	char wo[256], auth[512], p64[64];
	PKCS5_PBKDF2_HMAC("pencil", 6, rfc_salt, sizeof(rfc_salt), 4096, EVP_sha256(), 32, sp);
	HMAC(EVP_sha256(), sp, 32, u8("Client Key"), 10, ck, &len);
	EVP_Digest(ck, 32, sk, &len, EVP_sha256(), NULL);
	snprintf(wo, sizeof(wo), "c=%s,r=%s%s", c64, RFC_CNONCE, RFC_SNONCE);
	snprintf(auth, sizeof(auth), "n=user,r=%s,%s,%s", RFC_CNONCE, RFC_SERVER_FIRST, wo);
	HMAC(EVP_sha256(), sk, 32, u8(auth), strlen(auth), sig, &len);
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	EVP_EncodeBlock((unsigned char *)p64, proof, 32);
	snprintf(out, size, "%s,p=%s", wo, p64);
}

static int server_exchange(const char *first, const char *final)
{
	struct scram_verifier v;
	struct scram_server s;
	const char *out;
	size_t n;
	int rc;
	if (scram_verifier_parse(RFC_VERIFIER, &v) != SCRAM_OK || scram_server_init(&s, &v) != SCRAM_OK ||
	    scram_server_set_nonce(&s, RFC_SNONCE) != SCRAM_OK)
		abort();
	rc = scram_server_first(&s, u8(first), strlen(first), &out, &n);
	if (rc == SCRAM_OK && final)
		rc = scram_server_final(&s, u8(final), strlen(final), &out, &n);
	scram_server_deinit(&s);
	return rc;
}

static void test_server_malformed(void)
{
	char final[512];
	const char *good_final = RFC_CLIENT_FINAL;
	is_int(server_exchange(RFC_CLIENT_FIRST, good_final), SCRAM_OK, "RFC exchange from a parsed verifier");
	is_int(server_exchange("p=tls-server-end-point,,n=,r=abc", NULL), SCRAM_ERR_CHANNEL_BINDING,
	       "channel binding p= refused clearly");
	is_int(server_exchange("n,a=admin,n=,r=abc", NULL), SCRAM_ERR_UNSUPPORTED, "authzid refused");
	is_int(server_exchange("n,,m=x,n=,r=abc", NULL), SCRAM_ERR_UNSUPPORTED, "mandatory extension refused");
	is_int(server_exchange("x,,n=,r=abc", NULL), SCRAM_ERR_MALFORMED, "bad gs2 flag");
	is_int(server_exchange("n,n=,r=abc", NULL), SCRAM_ERR_MALFORMED, "gs2 header without authzid comma");
	is_int(server_exchange("n,,r=abc", NULL), SCRAM_ERR_MALFORMED, "missing n=");
	is_int(server_exchange("n,,n=", NULL), SCRAM_ERR_MALFORMED, "missing r=");
	is_int(server_exchange("n,,n=,r=", NULL), SCRAM_ERR_MALFORMED, "empty nonce");
	is_int(server_exchange("n,,n=,r=ab c", NULL), SCRAM_ERR_MALFORMED, "space in nonce");
	is_int(server_exchange("n,,n=,r=abc,", NULL), SCRAM_ERR_MALFORMED, "trailing comma");
	is_int(server_exchange("n,,n=,r=abc,9", NULL), SCRAM_ERR_MALFORMED, "bad extension");
	is_int(server_exchange("n,,n=,r=abc,x=1", NULL), SCRAM_OK, "unknown extension ignored");

	/* gs2 "y,,": the client could bind but we offer no -PLUS; c= must then be "eSws". */
	rfc_final_with_cbind("eSws", final, sizeof(final));
	is_int(server_exchange("y,,n=user,r=" RFC_CNONCE, final), SCRAM_OK, "gs2 y,, accepted with c=eSws");
	is_int(server_exchange("y,,n=user,r=" RFC_CNONCE, good_final), SCRAM_ERR_CBIND_MISMATCH,
	       "gs2 y,, with c=biws is a mismatch");
	is_int(server_exchange(RFC_CLIENT_FIRST, final), SCRAM_ERR_CBIND_MISMATCH, "gs2 n,, with c=eSws is a mismatch");

	is_int(server_exchange(RFC_CLIENT_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE), SCRAM_ERR_MALFORMED, "no proof");
	is_int(server_exchange(RFC_CLIENT_FIRST, "c=biws,r=" RFC_CNONCE "x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
	       SCRAM_ERR_NONCE, "nonce changed in client-final");
	is_int(server_exchange(RFC_CLIENT_FIRST, "r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
	       SCRAM_ERR_MALFORMED, "no c=");
	is_int(server_exchange(RFC_CLIENT_FIRST, "c=bi*s,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
	       SCRAM_ERR_BASE64, "bad base64 in c=");
	is_int(server_exchange(RFC_CLIENT_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ"),
	       SCRAM_ERR_BASE64, "bad base64 proof");
	is_int(server_exchange(RFC_CLIENT_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=AAAA"), SCRAM_ERR_MALFORMED,
	       "short proof");
	is_int(server_exchange(RFC_CLIENT_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
	       SCRAM_ERR_PROOF, "wrong proof");
	is_int(server_exchange(RFC_CLIENT_FIRST, RFC_CLIENT_FINAL ",x=1"), SCRAM_ERR_MALFORMED, "attribute after proof");

	struct scram_server s;
	struct scram_verifier v;
	const char *out;
	size_t n;
	is_int(scram_verifier_parse(RFC_VERIFIER, &v), SCRAM_OK, "parse");
	is_int(scram_server_init(&s, &v), SCRAM_OK, "init");
	is_int(scram_server_final(&s, u8(RFC_CLIENT_FINAL), strlen(RFC_CLIENT_FINAL), &out, &n), SCRAM_ERR_STATE,
	       "final before first");
	is_int(scram_server_first(&s, u8(RFC_CLIENT_FIRST), strlen(RFC_CLIENT_FIRST), &out, &n), SCRAM_ERR_STATE,
	       "no restart after a failure");
	scram_server_deinit(&s);

	/* Mock exchanges: stable salt per user and secret, always refused. */
	static const uint8_t secret[] = "per-process mock secret";
	struct scram_server m1, m2, m3;
	is_int(scram_server_init_mock(&m1, "ghost", secret, sizeof(secret)), SCRAM_OK, "mock init");
	is_int(scram_server_init_mock(&m2, "ghost", secret, sizeof(secret)), SCRAM_OK, "mock init again");
	is_int(scram_server_init_mock(&m3, "spirit", secret, sizeof(secret)), SCRAM_OK, "mock init other user");
	ok(memcmp(m1.v.salt, m2.v.salt, 16) == 0, "mock salt stable for one user");
	ok(memcmp(m1.v.salt, m3.v.salt, 16) != 0, "mock salt differs between users");
	struct scram_client c;
	is_int(exchange(NULL, "anything", &m1, &c), SCRAM_ERR_PROOF, "mock exchange always refused");
	scram_client_deinit(&c);
	scram_server_deinit(&m1);
	scram_server_deinit(&m2);
	scram_server_deinit(&m3);
}

static void test_verifiers(void)
{
	struct scram_verifier v;
	is_int(scram_verifier_parse(RFC_VERIFIER, &v), SCRAM_OK, "parse RFC verifier");
	is_int(v.iterations, 4096, "iterations");
	ok(v.salt_len == 16 && memcmp(v.salt, rfc_salt, 16) == 0, "salt");
	static const char *bad[] = {
		"md5abcdef",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
		"SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$x:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q==:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2d!=",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:extra",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(scram_verifier_parse(bad[i], &v), SCRAM_ERR_VERIFIER, "bad verifier %zu refused", i);
	ok(!scram_is_verifier("md5abc") && !scram_is_verifier(NULL), "plain strings are not verifiers");
	has_str(scram_strerror(SCRAM_ERR_CHANNEL_BINDING), "channel binding", "clear channel binding error");
}

static void test_md5(void)
{
	static const uint8_t salt[4] = { 0x01, 0x02, 0xfe, 0xff };
	char out[MD5AUTH_BUFSIZE];
	/* Expected values computed with Python hashlib:
	 *   inner = md5(b"s3cretalice").hexdigest(); "md5" + md5(inner.encode() + salt).hexdigest() */
	const char *stored = "md58213e4d0d5792b064442db7988e9f4c4";
	const char *resp = "md5fbc8134dad4ad2bf7e3c0b08c38c31e8";
	is_int(md5auth_stored("s3cret", "alice", out), MD5AUTH_OK, "stored hash");
	is_str(out, stored, "stored hash matches hashlib");
	is_int(md5auth_response("s3cret", "alice", salt, out), MD5AUTH_OK, "response from plaintext");
	is_str(out, resp, "response matches hashlib");
	is_int(md5auth_response(stored, "alice", salt, out), MD5AUTH_OK, "response from stored hash");
	is_str(out, resp, "same response from the stored hash");
	is_int(md5auth_verify("s3cret", "alice", salt, resp), MD5AUTH_OK, "verify against plaintext");
	is_int(md5auth_verify(stored, "alice", salt, resp), MD5AUTH_OK, "verify against md5 hash");
	is_int(md5auth_verify("s3cret", "bob", salt, resp), MD5AUTH_MISMATCH, "user is part of the hash");
	is_int(md5auth_verify("s3creT", "alice", salt, resp), MD5AUTH_MISMATCH, "wrong password");
	is_int(md5auth_verify("s3cret", "alice", salt, "md5fbc8134dad4ad2bf7e3c0b08c38c31e"), MD5AUTH_MISMATCH,
	       "short response");
	is_int(md5auth_verify("s3cret", "alice", salt, ""), MD5AUTH_MISMATCH, "empty response");
	is_int(md5auth_verify(RFC_VERIFIER, "alice", salt, resp), MD5AUTH_ERR, "SCRAM verifier cannot check md5");
	ok(md5auth_is_hash(stored), "stored hash recognised");
	ok(!md5auth_is_hash("md58213E4D0d5792b064442db7988e9f4c4"), "uppercase hex is not a hash (PostgreSQL agrees)");
	ok(!md5auth_is_hash("md5short"), "short is not a hash");

	char *big = malloc(4097);
	memset(big, 'x', 4096);
	big[4096] = '\0';
	is_int(md5auth_response(big, "alice", salt, out), MD5AUTH_OK, "4 KiB password");
	is_str(out, "md536a55c07d74348d3930a672da292659f", "4 KiB password matches hashlib");
	free(big);
}

int main(void)
{
	test_rfc7677_client();
	test_rfc7677_server();
	test_round_trips();
	test_cached_keys();
	test_client_malformed();
	test_server_malformed();
	test_verifiers();
	test_md5();
	return tap_done();
}
