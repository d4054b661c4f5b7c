/* Unit tests for the credentials' pure parts: key file parsing and its errors, the ADC order,
 * the metadata host, scope-set keys, form escaping, token responses, and refresh timing and
 * backoff driven by an injected clock. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "credentials_conf.h"
#include "credentials_internal.h"
#include "jwt.h"
#include "tap.h"

static char tmpdir[] = "/tmp/tether-cred-test-XXXXXX";
static char *pem;

static char *test_pem(void)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *out = strndup(data, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(key);
	return out;
}

static char *sa_json(const char *type, const char *email, const char *key, const char *token_uri)
{
	json_t *o = json_object();
	if (type)
		json_object_set_new(o, "type", json_string(type));
	if (email)
		json_object_set_new(o, "client_email", json_string(email));
	if (key)
		json_object_set_new(o, "private_key", json_string(key));
	json_object_set_new(o, "private_key_id", json_string("kid-1"));
	if (token_uri)
		json_object_set_new(o, "token_uri", json_string(token_uri));
	char *s = json_dumps(o, 0);
	json_decref(o);
	return s;
}

static const char au_text[] = "{\"type\":\"authorized_user\",\"client_id\":\"cid\",\"client_secret\":\"csecret\","
			      "\"refresh_token\":\"1//rtok\"}";

static char *write_file(const char *name, const char *text)
{
	char *path = NULL;
	if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
		abort();
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_keyfile(void)
{
	struct cred_source src;
	char err[600];
	char *text = sa_json("service_account", "sa@p.iam.gserviceaccount.com", pem, NULL);
	memset(&src, 0, sizeof(src));
	is_int(credentials_keyfile_parse("/k.json", text, strlen(text), &src, err, sizeof(err)), 0,
	       "service account key parsed");
	is_int(src.kind, CRED_SOURCE_SERVICE_ACCOUNT, "kind service_account");
	is_str(src.email, "sa@p.iam.gserviceaccount.com", "client_email");
	is_str(src.key_id, "kid-1", "private_key_id");
	is_str(src.token_uri, CRED_DEFAULT_TOKEN_URI, "default token_uri");
	ok(src.key != NULL, "key loaded");
	credentials_source_deinit(&src);
	free(text);

	text = sa_json("service_account", "sa@p", pem, "http://127.0.0.1:1/token");
	credentials_keyfile_parse("/k.json", text, strlen(text), &src, err, sizeof(err));
	is_str(src.token_uri, "http://127.0.0.1:1/token", "token_uri from the file");
	credentials_source_deinit(&src);
	free(text);

	is_int(credentials_keyfile_parse("/au.json", au_text, strlen(au_text), &src, err, sizeof(err)), 0,
	       "authorized_user parsed");
	is_int(src.kind, CRED_SOURCE_AUTHORIZED_USER, "kind authorized_user");
	is_str(src.refresh_token, "1//rtok", "refresh token kept");
	is_str(src.token_uri, CRED_DEFAULT_TOKEN_URI, "authorized_user default token_uri");
	credentials_source_deinit(&src);

	/* Errors name the file and the field, never a value. */
	text = sa_json("service_account", NULL, pem, NULL);
	is_int(credentials_keyfile_parse("/k.json", text, strlen(text), &src, err, sizeof(err)), -1, "no email");
	has_str(err, "/k.json", "error names the file");
	has_str(err, "client_email", "error names the field");
	free(text);

	text = sa_json("service_account", "a@b", "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n",
		       NULL);
	is_int(credentials_keyfile_parse("/k.json", text, strlen(text), &src, err, sizeof(err)), -1, "bad PEM");
	has_str(err, "private_key", "names private_key");
	ok(strstr(err, "TOPSECRET") == NULL, "does not quote the key");
	free(text);

	const char *garbage = "{\"type\":\"service_account\",\"private_key\":\"TOPSECRET";
	is_int(credentials_keyfile_parse("/g.json", garbage, strlen(garbage), &src, err, sizeof(err)), -1,
	       "broken JSON");
	has_str(err, "not valid JSON", "says JSON is broken");
	ok(strstr(err, "TOPSECRET") == NULL, "broken JSON is not quoted");

	text = sa_json("external_account", NULL, NULL, NULL);
	is_int(credentials_keyfile_parse("/x.json", text, strlen(text), &src, err, sizeof(err)), -1,
	       "external_account refused");
	has_str(err, "not supported", "says not supported");
	free(text);

	const char *au_missing = "{\"type\":\"authorized_user\",\"client_id\":\"c\",\"client_secret\":\"s\"}";
	is_int(credentials_keyfile_parse("/a.json", au_missing, strlen(au_missing), &src, err, sizeof(err)), -1,
	       "authorized_user without refresh_token");
	has_str(err, "refresh_token", "names refresh_token");

	is_int(credentials_keyfile_load("/nonexistent/x.json", &src, err, sizeof(err)), -1, "missing file");
	has_str(err, "/nonexistent/x.json", "missing file named");
}

static struct credentials_conf conf_of(int source)
{
	struct credentials_conf cc;
	memset(&cc, 0, sizeof(cc));
	cc.source = source;
	return cc;
}

static void test_adc_order(void)
{
	struct cred_source src;
	char err[800];
	char *sa_text = sa_json("service_account", "sa@p", pem, NULL);
	char *sa_path = write_file("sa.json", sa_text);
	char *gdir = NULL;
	if (asprintf(&gdir, "%s/gcloud", tmpdir) < 0)
		abort();
	mkdir(gdir, 0700);
	char *au_path = write_file("gcloud/application_default_credentials.json", au_text);
	struct credentials_conf cc = conf_of(CRED_SOURCE_AUTO);

	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	setenv("CLOUDSDK_CONFIG", tmpdir, 1); /* no ADC file there */
	setenv("GCE_METADATA_HOST", "127.0.0.1:8091", 1);
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), 0, "auto with nothing: ok");
	is_int(src.kind, CRED_SOURCE_METADATA, "auto falls back to the metadata server");
	ok(src.adc_fallback, "marked as the ADC fallback");
	is_str(src.metadata_url, "http://127.0.0.1:8091", "GCE_METADATA_HOST honoured");
	credentials_source_deinit(&src);

	setenv("CLOUDSDK_CONFIG", gdir, 1);
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), 0, "auto with gcloud file");
	is_int(src.kind, CRED_SOURCE_AUTHORIZED_USER, "gcloud ADC file beats metadata");
	has_str(src.origin, "gcloud ADC file", "origin says so");
	credentials_source_deinit(&src);

	setenv("GOOGLE_APPLICATION_CREDENTIALS", sa_path, 1);
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), 0, "auto with env file");
	is_int(src.kind, CRED_SOURCE_SERVICE_ACCOUNT, "GOOGLE_APPLICATION_CREDENTIALS beats the gcloud file");
	has_str(src.origin, sa_path, "origin names the path");
	credentials_source_deinit(&src);

	setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json", 1);
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), -1, "env naming a missing file fails");
	has_str(err, "GOOGLE_APPLICATION_CREDENTIALS", "error names the variable");

	cc.key_file = au_path;
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), 0, "key_file beats the env variable");
	is_int(src.kind, CRED_SOURCE_AUTHORIZED_USER, "key_file used");
	credentials_source_deinit(&src);

	cc = conf_of(CRED_SOURCE_SERVICE_ACCOUNT);
	cc.key_file = au_path;
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), -1, "type mismatch refused");
	has_str(err, "authorized_user", "mismatch names the file's type");

	cc = conf_of(CRED_SOURCE_SERVICE_ACCOUNT);
	cc.key_file = sa_path;
	cc.token_uri = "http://override/token";
	cc.self_signed_jwt = true;
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), 0, "service_account with overrides");
	is_str(src.token_uri, "http://override/token", "token_uri override");
	ok(src.self_signed_jwt, "self-signed JWT on");
	credentials_source_deinit(&src);

	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	cc = conf_of(CRED_SOURCE_AUTHORIZED_USER);
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), -1, "authorized_user without a file");
	has_str(err, "key_file", "says what is missing");

	cc = conf_of(CRED_SOURCE_STATIC);
	cc.static_token_env = "TETHER_TEST_TOKEN";
	setenv("TETHER_TEST_TOKEN", "  tok-123\n", 1);
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), 0, "static from env");
	is_str(src.static_token, "tok-123", "whitespace trimmed");
	credentials_source_deinit(&src);
	setenv("TETHER_TEST_TOKEN", "two words", 1);
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), -1, "token with a space refused");
	ok(strstr(err, "two words") == NULL, "and not quoted");
	unsetenv("TETHER_TEST_TOKEN");
	is_int(credentials_source_resolve(&cc, &src, err, sizeof(err)), -1, "unset env refused");
	has_str(err, "TETHER_TEST_TOKEN", "names the variable");

	is_int(credentials_source_resolve(NULL, &src, err, sizeof(err)), 0, "no section");
	is_int(src.kind, CRED_SOURCE_NONE, "no section is none");
	credentials_source_deinit(&src);

	unlink(sa_path);
	unlink(au_path);
	rmdir(gdir);
	free(sa_path);
	free(au_path);
	free(gdir);
	free(sa_text);
	unsetenv("CLOUDSDK_CONFIG");
}

static void test_metadata_url(void)
{
	char *u;
	unsetenv("GCE_METADATA_HOST");
	unsetenv("GCE_METADATA_ROOT");
	u = credentials_metadata_url(NULL);
	is_str(u, "http://metadata.google.internal", "default host");
	free(u);
	setenv("GCE_METADATA_ROOT", "10.0.0.1", 1);
	u = credentials_metadata_url(NULL);
	is_str(u, "http://10.0.0.1", "legacy GCE_METADATA_ROOT");
	free(u);
	setenv("GCE_METADATA_HOST", "127.0.0.1:99", 1);
	u = credentials_metadata_url(NULL);
	is_str(u, "http://127.0.0.1:99", "GCE_METADATA_HOST wins");
	free(u);
	u = credentials_metadata_url("http://md.local:8080/");
	is_str(u, "http://md.local:8080", "config wins; scheme kept, slash dropped");
	free(u);
	unsetenv("GCE_METADATA_HOST");
	unsetenv("GCE_METADATA_ROOT");
	char *gp;
	setenv("HOME", "/home/x", 1);
	gp = credentials_adc_gcloud_path();
	is_str(gp, "/home/x/.config/gcloud/application_default_credentials.json", "gcloud path under HOME");
	free(gp);
	setenv("CLOUDSDK_CONFIG", "/cfg", 1);
	gp = credentials_adc_gcloud_path();
	is_str(gp, "/cfg/application_default_credentials.json", "CLOUDSDK_CONFIG honoured");
	free(gp);
	unsetenv("CLOUDSDK_CONFIG");
}

static void test_scopes_and_form(void)
{
	char *s = credentials_scopes_normalize("b a,c  a");
	is_str(s, "a b c", "sorted, deduplicated, space separated");
	free(s);
	s = credentials_scopes_normalize(NULL);
	is_str(s, "", "NULL is empty");
	free(s);
	s = credentials_urlencode("a b&c=d/é~");
	is_str(s, "a%20b%26c%3Dd%2F%C3%A9~", "form escaping");
	free(s);
}

static void test_token_response(void)
{
	char *tok = NULL, err[400];
	int64_t exp = 0;
	const char *ok_body = "{\"access_token\":\"ya29.x\",\"expires_in\":3599,\"token_type\":\"Bearer\"}";
	is_int(credentials_parse_token_response(200, ok_body, strlen(ok_body), "access_token", 0, &tok, &exp, err,
						sizeof(err)),
	       0, "access token parsed");
	is_str(tok, "ya29.x", "token");
	is_int(exp, 3599000, "expires_in in ms");
	free(tok);

	const char *e = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}";
	is_int(credentials_parse_token_response(400, e, strlen(e), "access_token", 0, &tok, &exp, err, sizeof(err)),
	       -1, "OAuth error");
	is_str(err, "HTTP 400: invalid_grant: Invalid JWT Signature.", "OAuth error quoted");

	const char *g = "{\"error\":{\"code\":403,\"message\":\"denied\",\"status\":\"PERMISSION_DENIED\"}}";
	credentials_parse_token_response(403, g, strlen(g), "access_token", 0, &tok, &exp, err, sizeof(err));
	is_str(err, "HTTP 403: PERMISSION_DENIED: denied", "Google error shape quoted");

	const char *html = "<html>secret-ish page</html>";
	credentials_parse_token_response(502, html, strlen(html), "access_token", 0, &tok, &exp, err, sizeof(err));
	is_str(err, "HTTP 502", "other bodies are not quoted");

	const char *noexp = "{\"access_token\":\"ya29.x\"}";
	is_int(credentials_parse_token_response(200, noexp, strlen(noexp), "access_token", 0, &tok, &exp, err,
						sizeof(err)),
	       -1, "expires_in required");
	ok(strstr(err, "ya29") == NULL, "the token is not in the error");

	const char *mac = "{\"access_token\":\"t\",\"expires_in\":10,\"token_type\":\"mac\"}";
	is_int(credentials_parse_token_response(200, mac, strlen(mac), "access_token", 0, &tok, &exp, err,
						sizeof(err)),
	       -1, "non-Bearer refused");

	/* id_token: lifetime from the JWT's exp. */
	EVP_PKEY *key = jwt_key_from_pem(pem, err, sizeof(err));
	json_t *claims = json_pack("{s:s,s:I}", "aud", "x", "exp", (json_int_t)1000600);
	char *jwt = jwt_sign(key, NULL, claims);
	char *body = NULL;
	if (asprintf(&body, "{\"id_token\":\"%s\"}", jwt) < 0)
		abort();
	is_int(credentials_parse_token_response(200, body, strlen(body), "id_token", 1000000, &tok, &exp, err,
						sizeof(err)),
	       0, "id_token parsed");
	is_int(exp, 600000, "id_token lifetime from exp");
	free(tok);
	is_int(credentials_parse_token_response(200, body, strlen(body), "id_token", 1000700, &tok, &exp, err,
						sizeof(err)),
	       -1, "expired id_token refused");
	is_int(credentials_jwt_expires_in("not.a.jwt", 0, &exp), -1, "garbage JWT");
	free(body);
	free(jwt);
	json_decref(claims);
	EVP_PKEY_free(key);
}

static void test_timing(void)
{
	struct cred_timing t;
	int64_t now = 5000000; /* the injected clock, ms */
	/* 1 h token, refresh_ahead 5 min: refresh 5..6.25 min before expiry. */
	credentials_timing_set(&t, now, 3600000, 300000, 0.0);
	is_int(t.expires, now + 3600000, "expiry");
	is_int(t.refresh, now + 3300000, "refresh 5 min ahead (no jitter)");
	credentials_timing_set(&t, now, 3600000, 300000, 0.999999);
	ok(t.refresh > now + 3600000 - 375000 && t.refresh <= now + 3600000 - 374000, "jitter up to a quarter more");
	ok(credentials_timing_usable(&t, now + 3589000), "usable with > 10 s left");
	ok(!credentials_timing_usable(&t, now + 3591000), "not usable in the last 10 s");
	ok(credentials_timing_valid(&t, now + 3599999), "valid until expiry");
	ok(!credentials_timing_valid(&t, now + 3600000), "invalid at expiry");

	/* A 3 s token: refreshed at about half its life, never used in its last quarter. */
	credentials_timing_set(&t, now, 3000, 300000, 0.5);
	ok(t.refresh >= now + 1000 && t.refresh <= now + 1500, "short token refreshed at 1..1.5 s (%lld)",
	   (long long)(t.refresh - now));
	ok(credentials_timing_usable(&t, now + 2200), "usable at 2.2 s");
	ok(!credentials_timing_usable(&t, now + 2300), "not usable at 2.3 s");

	/* A server handing out nearly expired tokens is not asked in a tight loop. */
	credentials_timing_set(&t, now, 20000, 300000, 0.0);
	is_int(t.refresh, now + 10000, "20 s token: refresh at half life");
	credentials_timing_set(&t, now, 2500, 300000, 0.0);
	is_int(t.refresh, now + 1250, "2.5 s token: at half life");
	credentials_timing_set(&t, now, 800, 300000, 0.0);
	is_int(t.refresh, now + 400, "sub-second token: half life");

	credentials_timing_set(&t, now, CRED_NEVER, 300000, 0.0);
	ok(credentials_timing_usable(&t, INT64_MAX - 1), "static token never expires");
	struct cred_timing none = { 0 };
	ok(!credentials_timing_usable(&none, now) && !credentials_timing_valid(&none, now), "no token");

	is_int(credentials_backoff_ms(1, 1000, 30000, 0.0), 500, "first backoff floor");
	is_int(credentials_backoff_ms(1, 1000, 30000, 0.999999), 999, "first backoff ceiling");
	ok(credentials_backoff_ms(3, 1000, 30000, 0.999999) >= 3999, "doubles");
	ok(credentials_backoff_ms(30, 1000, 30000, 0.999999) <= 30000, "capped at max");
	ok(credentials_backoff_ms(30, 1000, 30000, 0.0) == 500, "floor stays");
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	pem = test_pem();
	test_keyfile();
	test_adc_order();
	test_metadata_url();
	test_scopes_and_form();
	test_token_response();
	test_timing();
	free(pem);
	rmdir(tmpdir);
	return tap_done();
}
