/* Unit tests for the read cache's key builder: every field changes the key, field boundaries
 * cannot be shifted, NULL differs from empty, settings are order-independent and irrelevant
 * settings are left out. */
#include <stdlib.h>
#include <string.h>

#include "../../plugins/cache/cache_key.h"

#include <openssl/evp.h>
#include "tap.h"

struct spec {
	const char *db, *user, *stmt, *proto;
	const char *p1; /* NULL = a NULL parameter */
	int16_t p1fmt;
	int16_t rfmt;
	uint32_t ptype;
	const char *tz, *datestyle;
	bool swap_settings;
	const char *appname;
};

static void build(const struct spec *s, unsigned char out[CACHE_KEY_LEN])
{
	struct cache_key k;
	if (cache_key_init(&k) != 0)
		abort();
	cache_key_database(&k, s->db);
	cache_key_user(&k, s->user);
	cache_key_statement(&k, s->stmt);
	cache_key_protocol(&k, s->proto);
	cache_key_param_types(&k, &s->ptype, 1);
	cache_key_param(&k, s->p1fmt, s->p1, s->p1 ? (int32_t)strlen(s->p1) : -1);
	cache_key_result_formats(&k, &s->rfmt, 1);
	if (s->swap_settings) {
		cache_key_setting(&k, "DateStyle", s->datestyle);
		cache_key_setting(&k, "TimeZone", s->tz);
	} else {
		cache_key_setting(&k, "timezone", s->tz);
		cache_key_setting(&k, "datestyle", s->datestyle);
	}
	cache_key_setting(&k, "application_name", s->appname);
	if (cache_key_final(&k, out) != 0)
		abort();
	cache_key_deinit(&k);
}

static const struct spec base = { "appdb", "app", "select * from t where id = $1", "extended", "42", 0, 0, 23,
				  "UTC", "ISO, MDY", false, "web" };

static void differs(struct spec s, const char *what)
{
	unsigned char a[CACHE_KEY_LEN], b[CACHE_KEY_LEN];
	build(&base, a);
	build(&s, b);
	ok(memcmp(a, b, CACHE_KEY_LEN) != 0, "%s changes the key", what);
}

static void same(struct spec s, const char *what)
{
	unsigned char a[CACHE_KEY_LEN], b[CACHE_KEY_LEN];
	build(&base, a);
	build(&s, b);
	ok(memcmp(a, b, CACHE_KEY_LEN) == 0, "%s keeps the key", what);
}

int main(void)
{
	struct spec s;
	same(base, "the same input");
	s = base, s.db = "otherdb", differs(s, "database");
	s = base, s.user = "admin", differs(s, "user");
	s = base, s.stmt = "select * from t where id = $2", differs(s, "statement");
	s = base, s.proto = "simple", differs(s, "protocol");
	s = base, s.p1 = "43", differs(s, "parameter value");
	s = base, s.p1 = NULL, differs(s, "NULL parameter");
	s = base, s.p1fmt = 1, differs(s, "parameter format");
	s = base, s.rfmt = 1, differs(s, "result format");
	s = base, s.ptype = 25, differs(s, "parameter type");
	s = base, s.tz = "Europe/Paris", differs(s, "TimeZone");
	s = base, s.datestyle = "German", differs(s, "DateStyle");
	s = base, s.swap_settings = true, same(s, "settings order and name case");
	s = base, s.appname = "worker", same(s, "application_name");

	/* NULL and empty differ; field boundaries cannot shift */
	unsigned char a[CACHE_KEY_LEN], b[CACHE_KEY_LEN];
	struct cache_key k;
	ok(cache_key_init(&k) == 0, "init");
	cache_key_param(&k, 0, "", 0);
	ok(cache_key_final(&k, a) == 0, "final");
	cache_key_deinit(&k);
	ok(cache_key_init(&k) == 0, "init");
	cache_key_param(&k, 0, NULL, -1);
	ok(cache_key_final(&k, b) == 0, "final");
	cache_key_deinit(&k);
	ok(memcmp(a, b, CACHE_KEY_LEN) != 0, "empty parameter differs from NULL");

	ok(cache_key_init(&k) == 0, "init");
	cache_key_database(&k, "ab");
	cache_key_user(&k, "c");
	ok(cache_key_final(&k, a) == 0, "final");
	cache_key_deinit(&k);
	ok(cache_key_init(&k) == 0, "init");
	cache_key_database(&k, "a");
	cache_key_user(&k, "bc");
	ok(cache_key_final(&k, b) == 0, "final");
	cache_key_deinit(&k);
	ok(memcmp(a, b, CACHE_KEY_LEN) != 0, "shifting bytes between fields changes the key");

	/* binary parameter with NUL bytes */
	ok(cache_key_init(&k) == 0, "init");
	cache_key_param(&k, 1, "\0\0\0\1", 4);
	ok(cache_key_final(&k, a) == 0, "final");
	cache_key_deinit(&k);
	ok(cache_key_init(&k) == 0, "init");
	cache_key_param(&k, 1, "\0\0\0\2", 4);
	ok(cache_key_final(&k, b) == 0, "final");
	cache_key_deinit(&k);
	ok(memcmp(a, b, CACHE_KEY_LEN) != 0, "binary values are hashed whole, NULs included");

	/* the later value of a setting wins */
	ok(cache_key_init(&k) == 0, "init");
	cache_key_setting(&k, "search_path", "a");
	cache_key_setting(&k, "SEARCH_PATH", "b");
	ok(cache_key_final(&k, a) == 0, "final");
	cache_key_deinit(&k);
	ok(cache_key_init(&k) == 0, "init");
	cache_key_setting(&k, "search_path", "b");
	ok(cache_key_final(&k, b) == 0, "final");
	cache_key_deinit(&k);
	ok(memcmp(a, b, CACHE_KEY_LEN) == 0, "a setting set twice keeps its last value");

	ok(cache_key_setting_matters("search_path") && cache_key_setting_matters("TimeZone") &&
		   cache_key_setting_matters("bytea_output") && cache_key_setting_matters("extra_float_digits") &&
		   cache_key_setting_matters("role") && cache_key_setting_matters("app.tenant_id"),
	   "output-changing and unknown settings matter");
	ok(!cache_key_setting_matters("application_name") && !cache_key_setting_matters("statement_timeout") &&
		   !cache_key_setting_matters("enable_seqscan") && !cache_key_setting_matters("work_mem"),
	   "timeouts, planner switches and memory do not");

	/* the format is fixed (keys are shared by every tether on the Redis): the digest is SHA-256
	 * over the version string and the tagged, length-prefixed fields, however long they are */
	for (size_t sl = 10; sl <= 3000; sl += 1495) {
		char *stmt = malloc(sl + 1);
		memset(stmt, 'x', sl);
		stmt[sl] = 0;
		ok(cache_key_init(&k) == 0, "init");
		cache_key_database(&k, "db");
		cache_key_statement(&k, stmt);
		ok(cache_key_final(&k, a) == 0, "final");
		cache_key_deinit(&k);
		unsigned char *m = malloc(sl + 64), *q = m;
		memcpy(q, "tether-cache-key-1", 19), q += 19;
		memcpy(q, "\1\0\0\0\2db", 7), q += 7;
		*q++ = 3, *q++ = 0, *q++ = 0, *q++ = (unsigned char)(sl >> 8), *q++ = (unsigned char)sl;
		memcpy(q, stmt, sl), q += sl;
		unsigned int n = 0;
		ok(EVP_Digest(m, (size_t)(q - m), b, &n, EVP_sha256(), NULL) == 1 && n == CACHE_KEY_LEN, "reference digest");
		ok(memcmp(a, b, CACHE_KEY_LEN) == 0, "key of a %zu-byte statement is SHA-256 of its fields", sl);
		free(m);
		free(stmt);
	}

	char hex[2 * CACHE_KEY_LEN + 1];
	ok(cache_key_init(&k) == 0, "init");
	ok(cache_key_final(&k, a) == 0, "final");
	cache_key_deinit(&k);
	cache_key_hex(a, CACHE_KEY_LEN, hex);
	is_int(strlen(hex), 64, "hex digest length");
	ok(strspn(hex, "0123456789abcdef") == 64, "lower-case hex");
	return tap_done();
}
