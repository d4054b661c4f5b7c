/* Unit tests for the PostgreSQL wire-protocol framing, builders, parsers, name rewriting and
 * startup packet parsing. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../../plugins/pg/pgproto.h"
#include "../../plugins/pg/startup.h"
#include "tap.h"

/* Drains `b` into a fresh heap buffer (so ASan sees reads past the end). */
static size_t take(struct evbuffer *b, uint8_t **out)
{
	size_t n = evbuffer_get_length(b);
	*out = malloc(n ? n : 1);
	evbuffer_remove(b, *out, n);
	return n;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

typedef int (*parse_fn)(const uint8_t *msg, size_t len);

/* Every proper prefix of a valid message, with its length word made consistent, must be refused;
 * so must the message with a length word that disagrees with its size. */
static void check_truncations(const uint8_t *msg, size_t len, parse_fn fn, const char *what)
{
	int bad = 0;
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);
		memcpy(p, msg, cut);
		if (cut >= 5)
			put_be32(p + 1, (uint32_t)(cut - 1));
		if (fn(p, cut) == PGPROTO_OK)
			bad++;
		free(p);
	}
	uint8_t *p = malloc(len);
	memcpy(p, msg, len);
	put_be32(p + 1, (uint32_t)len);
	if (fn(p, len) == PGPROTO_OK)
		bad++;
	free(p);
	is_int(bad, 0, "%s: every truncation and a wrong length word refused", what);
}

static int p_notice(const uint8_t *m, size_t n)
{
	struct pgproto_notice x;
	int rc = pgproto_parse_notice(m, n, 'E', &x);
	pgproto_notice_deinit(&x);
	return rc;
}
static int p_param(const uint8_t *m, size_t n)
{
	const char *a, *b;
	return pgproto_parse_parameter_status(m, n, &a, &b);
}
static int p_parse(const uint8_t *m, size_t n)
{
	struct pgproto_parse p;
	return pgproto_parse_parse(m, n, &p);
}
static int p_bind(const uint8_t *m, size_t n)
{
	struct pgproto_bind b;
	return pgproto_parse_bind(m, n, &b);
}
static int p_close(const uint8_t *m, size_t n)
{
	struct pgproto_target t;
	return pgproto_parse_close(m, n, &t);
}
static int p_auth(const uint8_t *m, size_t n)
{
	struct pgproto_auth a;
	return pgproto_parse_auth(m, n, &a);
}
static int p_sasl_init(const uint8_t *m, size_t n)
{
	const char *mech;
	const uint8_t *d;
	size_t dl;
	return pgproto_parse_sasl_initial_response(m, n, &mech, &d, &dl);
}
static int p_bkd(const uint8_t *m, size_t n)
{
	uint32_t a, b;
	return pgproto_parse_backend_key_data(m, n, &a, &b);
}
static int p_execute(const uint8_t *m, size_t n)
{
	const char *p;
	uint32_t r;
	return pgproto_parse_execute(m, n, &p, &r);
}

static void test_frames(void)
{
	struct pgproto_frame f;
	const uint8_t q[] = { 'Q', 0, 0, 0, 9, 'S', 'E', 'L', 0 };
	is_int(pgproto_frame_read(q, 3, false, 1024, &f), PGPROTO_INCOMPLETE, "partial header");
	is_int(f.total, 0, "total unknown without a header");
	is_int(pgproto_frame_read(q, 6, false, 1024, &f), PGPROTO_INCOMPLETE, "partial body");
	is_int(f.total, 10, "total known from the header");
	is_int(f.type, 'Q', "type");
	is_int(pgproto_frame_read(q, sizeof(q), false, 1024, &f), PGPROTO_INCOMPLETE, "one byte short");
	uint8_t q2[10];
	memcpy(q2, q, 9);
	q2[9] = 0;
	put_be32(q2 + 1, 9);
	is_int(pgproto_frame_read(q2, 10, false, 1024, &f), PGPROTO_OK, "complete");
	is_int(f.len, 9, "length word");
	is_int(f.hdr, 5, "header size");
	uint8_t bad[5] = { 'Q', 0, 0, 0, 3 };
	is_int(pgproto_frame_read(bad, 5, false, 1024, &f), PGPROTO_ERR_SHORT, "length < 4 refused");
	put_be32(bad + 1, 1025);
	is_int(pgproto_frame_read(bad, 5, false, 1024, &f), PGPROTO_ERR_LONG, "length > max refused");
	put_be32(bad + 1, 0xffffffffu);
	is_int(pgproto_frame_read(bad, 5, false, UINT32_MAX - 1, &f), PGPROTO_ERR_LONG, "huge length refused");
	put_be32(bad + 1, 4);
	is_int(pgproto_frame_read(bad, 5, false, 1024, &f), PGPROTO_OK, "empty-body message");
	is_int(f.total, 5, "empty-body total");

	uint8_t ssl[8];
	put_be32(ssl, 8);
	put_be32(ssl + 4, PGPROTO_SSL_CODE);
	is_int(pgproto_frame_read(ssl, 8, true, STARTUP_MAX_PACKET, &f), PGPROTO_OK, "startup frame");
	ok(f.type == 0 && f.hdr == 4 && f.total == 8, "startup frame has no type byte");
	put_be32(ssl, 7);
	is_int(pgproto_frame_read(ssl, 8, true, STARTUP_MAX_PACKET, &f), PGPROTO_ERR_SHORT, "startup length < 8");
	put_be32(ssl, STARTUP_MAX_PACKET + 1);
	is_int(pgproto_frame_read(ssl, 8, true, STARTUP_MAX_PACKET, &f), PGPROTO_ERR_LONG, "startup too long");

	struct evbuffer *b = evbuffer_new();
	is_int(pgproto_frame_peek(b, false, 1024, &f), PGPROTO_INCOMPLETE, "peek: empty buffer");
	evbuffer_add(b, q2, 7);
	is_int(pgproto_frame_peek(b, false, 1024, &f), PGPROTO_INCOMPLETE, "peek: partial");
	is_int(f.total, 10, "peek: total");
	evbuffer_add(b, q2 + 7, 3);
	is_int(pgproto_frame_peek(b, false, 1024, &f), PGPROTO_OK, "peek: complete");
	is_int(evbuffer_get_length(b), 10, "peek does not drain");
	evbuffer_free(b);
}

static void test_backend_messages(void)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t *m;
	size_t n;

	ok(pgproto_put_auth_ok(b) == 0, "AuthenticationOk built");
	n = take(b, &m);
	ok(n == 9 && memcmp(m, "R\0\0\0\x08\0\0\0\0", 9) == 0, "AuthenticationOk bytes");
	free(m);

	ok(pgproto_put_ready_for_query(b, 'T') == 0, "ReadyForQuery built");
	n = take(b, &m);
	ok(n == 6 && memcmp(m, "Z\0\0\0\x05T", 6) == 0, "ReadyForQuery bytes");
	uint8_t st = 0;
	is_int(pgproto_parse_ready_for_query(m, n, &st), PGPROTO_OK, "ReadyForQuery parsed");
	is_int(st, 'T', "status T");
	m[5] = 'X';
	is_int(pgproto_parse_ready_for_query(m, n, &st), PGPROTO_ERR_MALFORMED, "status X refused");
	free(m);

	ok(pgproto_put_backend_key_data(b, 4242, 0xdeadbeef) == 0, "BackendKeyData built");
	n = take(b, &m);
	uint32_t pid, key;
	is_int(pgproto_parse_backend_key_data(m, n, &pid, &key), PGPROTO_OK, "BackendKeyData parsed");
	ok(pid == 4242 && key == 0xdeadbeef, "pid and key");
	check_truncations(m, n, p_bkd, "BackendKeyData");
	free(m);

	ok(pgproto_put_parameter_status(b, "server_version", "15.4") == 0, "ParameterStatus built");
	n = take(b, &m);
	const char *name, *value;
	is_int(pgproto_parse_parameter_status(m, n, &name, &value), PGPROTO_OK, "ParameterStatus parsed");
	is_str(name, "server_version", "name");
	is_str(value, "15.4", "value");
	check_truncations(m, n, p_param, "ParameterStatus");
	free(m);

	ok(pgproto_put_notice(b, 'E', "FATAL", "28P01", "password authentication failed", "a detail", "a hint") == 0,
	   "ErrorResponse built");
	n = take(b, &m);
	struct pgproto_notice no;
	is_int(pgproto_parse_notice(m, n, 'E', &no), PGPROTO_OK, "ErrorResponse parsed");
	is_str(no.severity, "FATAL", "S");
	is_str(no.severity_nl, "FATAL", "V");
	is_str(no.sqlstate, "28P01", "C");
	is_str(no.message, "password authentication failed", "M");
	is_str(no.detail, "a detail", "D");
	is_str(no.hint, "a hint", "H");
	is_str(pgproto_notice_field(&no, 'C'), "28P01", "field lookup");
	ok(pgproto_notice_field(&no, 'P') == NULL, "absent field");
	pgproto_notice_deinit(&no);
	is_int(pgproto_parse_notice(m, n, 'N', &no), PGPROTO_ERR_TYPE, "E is not N");
	check_truncations(m, n, p_notice, "ErrorResponse");
	free(m);

	ok(pgproto_put_error(b, "ERROR", "08P01", "bad") == 0, "short ErrorResponse built");
	n = take(b, &m);
	is_int(pgproto_parse_notice(m, n, 'E', &no), PGPROTO_OK, "parsed");
	ok(no.detail == NULL && no.hint == NULL, "no D/H");
	pgproto_notice_deinit(&no);
	free(m);
	ok(pgproto_put_notice(b, 'N', "WARNING", "01000", "careful", NULL, NULL) == 0, "NoticeResponse built");
	n = take(b, &m);
	is_int(pgproto_parse_notice(m, n, 'N', &no), PGPROTO_OK, "NoticeResponse parsed");
	is_str(no.severity, "WARNING", "notice severity");
	pgproto_notice_deinit(&no);
	free(m);
	ok(pgproto_put_notice(b, 'X', "ERROR", "1", "m", NULL, NULL) != 0, "notice type X refused");

	ok(pgproto_put_command_complete(b, "SELECT 3") == 0, "CommandComplete built");
	n = take(b, &m);
	const char *tag;
	is_int(pgproto_parse_command_complete(m, n, &tag), PGPROTO_OK, "CommandComplete parsed");
	is_str(tag, "SELECT 3", "tag");
	free(m);

	const char *opts[] = { "_pq_.a", "_pq_.b" };
	ok(pgproto_put_negotiate_protocol_version(b, 0, opts, 2) == 0, "NegotiateProtocolVersion built");
	n = take(b, &m);
	ok(n == 1 + 4 + 8 + 7 + 7 && m[0] == 'v' && memcmp(m + 5, "\0\x03\0\0\0\0\0\x02_pq_.a\0_pq_.b\0", 22) == 0,
	   "NegotiateProtocolVersion bytes");
	free(m);

	ok(pgproto_put_byte(b, 'N') == 0 && evbuffer_get_length(b) == 1, "single-byte SSL answer");
	evbuffer_drain(b, 1);
	ok(pgproto_put_empty(b, '1') == 0 && pgproto_put_sync(b) == 0 && pgproto_put_terminate(b) == 0,
	   "empty messages built");
	n = take(b, &m);
	ok(n == 15 && memcmp(m, "1\0\0\0\x04S\0\0\0\x04X\0\0\0\x04", 15) == 0, "ParseComplete, Sync, Terminate bytes");
	free(m);
	ok(pgproto_put_empty(b, 0) != 0, "empty message without a type refused");
	evbuffer_free(b);
}

static void test_auth_messages(void)
{
	struct evbuffer *b = evbuffer_new();
	struct pgproto_auth a;
	uint8_t *m;
	size_t n;
	static const uint8_t salt[4] = { 1, 2, 3, 4 };

	ok(pgproto_put_auth_md5(b, salt) == 0, "AuthenticationMD5Password built");
	n = take(b, &m);
	is_int(pgproto_parse_auth(m, n, &a), PGPROTO_OK, "parsed");
	ok(a.code == PGPROTO_AUTH_MD5 && a.data_len == 4 && memcmp(a.data, salt, 4) == 0, "md5 salt");
	check_truncations(m, n, p_auth, "AuthenticationMD5Password");
	free(m);

	ok(pgproto_put_auth_cleartext(b) == 0, "AuthenticationCleartextPassword built");
	n = take(b, &m);
	is_int(pgproto_parse_auth(m, n, &a), PGPROTO_OK, "parsed");
	is_int(a.code, PGPROTO_AUTH_CLEARTEXT, "cleartext code");
	free(m);

	const char *mechs[] = { "SCRAM-SHA-256", NULL };
	ok(pgproto_put_auth_sasl(b, mechs) == 0, "AuthenticationSASL built");
	n = take(b, &m);
	is_int(pgproto_parse_auth(m, n, &a), PGPROTO_OK, "parsed");
	ok(pgproto_auth_sasl_has(&a, "SCRAM-SHA-256"), "offers SCRAM-SHA-256");
	ok(!pgproto_auth_sasl_has(&a, "SCRAM-SHA-256-PLUS"), "does not offer -PLUS");
	check_truncations(m, n, p_auth, "AuthenticationSASL");
	free(m);

	ok(pgproto_put_auth_sasl_continue(b, "r=abc,s=xyz,i=4096", 18) == 0, "AuthenticationSASLContinue built");
	n = take(b, &m);
	is_int(pgproto_parse_auth(m, n, &a), PGPROTO_OK, "parsed");
	ok(a.code == PGPROTO_AUTH_SASL_CONTINUE && a.data_len == 18 && memcmp(a.data, "r=abc", 5) == 0, "continue data");
	free(m);
	ok(pgproto_put_auth_sasl_final(b, "v=x", 3) == 0, "AuthenticationSASLFinal built");
	n = take(b, &m);
	is_int(pgproto_parse_auth(m, n, &a), PGPROTO_OK, "parsed");
	ok(a.code == PGPROTO_AUTH_SASL_FINAL && a.data_len == 3, "final data");
	free(m);

	/* PasswordMessage with a 4 KiB password (IAM tokens). */
	char *pw = malloc(4097);
	memset(pw, 'k', 4096);
	pw[4096] = '\0';
	ok(pgproto_put_password(b, pw) == 0, "PasswordMessage built");
	n = take(b, &m);
	const char *got;
	is_int(pgproto_parse_password(m, n, &got), PGPROTO_OK, "parsed");
	ok(strcmp(got, pw) == 0, "4 KiB password intact");
	free(m);
	free(pw);

	ok(pgproto_put_sasl_initial_response(b, "SCRAM-SHA-256", "n,,n=,r=abc", 11) == 0, "SASLInitialResponse built");
	n = take(b, &m);
	const char *mech;
	const uint8_t *d;
	size_t dl;
	is_int(pgproto_parse_sasl_initial_response(m, n, &mech, &d, &dl), PGPROTO_OK, "parsed");
	ok(strcmp(mech, "SCRAM-SHA-256") == 0 && dl == 11 && memcmp(d, "n,,n=,r=abc", 11) == 0, "mechanism and data");
	check_truncations(m, n, p_sasl_init, "SASLInitialResponse");
	free(m);
	ok(pgproto_put_sasl_initial_response(b, "SCRAM-SHA-256", NULL, 0) == 0, "SASLInitialResponse without data");
	n = take(b, &m);
	is_int(pgproto_parse_sasl_initial_response(m, n, &mech, &d, &dl), PGPROTO_OK, "parsed");
	ok(d == NULL && dl == 0, "length -1 means no data");
	free(m);

	ok(pgproto_put_sasl_response(b, "c=biws", 6) == 0, "SASLResponse built");
	n = take(b, &m);
	is_int(pgproto_parse_sasl_response(m, n, &d, &dl), PGPROTO_OK, "parsed");
	ok(dl == 6 && memcmp(d, "c=biws", 6) == 0, "data");
	free(m);

	/* Hand-made broken authentication requests. */
	uint8_t r1[] = { 'R', 0, 0, 0, 12, 0, 0, 0, 0, 1, 2, 3, 4 }; /* OK with a payload */
	is_int(pgproto_parse_auth(r1, sizeof(r1), &a), PGPROTO_ERR_MALFORMED, "AuthenticationOk with data refused");
	uint8_t r2[] = { 'R', 0, 0, 0, 9, 0, 0, 0, 5, 1 }; /* MD5 with a 1-byte salt */
	is_int(pgproto_parse_auth(r2, sizeof(r2), &a), PGPROTO_ERR_MALFORMED, "MD5 with a short salt refused");
	uint8_t r3[] = { 'R', 0, 0, 0, 11, 0, 0, 0, 10, 'A', 0, 'B' }; /* SASL list cut short */
	is_int(pgproto_parse_auth(r3, sizeof(r3), &a), PGPROTO_ERR_MALFORMED, "unterminated SASL list refused");
	uint8_t r4[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 99 };
	is_int(pgproto_parse_auth(r4, sizeof(r4), &a), PGPROTO_OK, "unknown code passed on");
	is_int(a.code, 99, "for the caller to refuse");
	evbuffer_free(b);
}

static void test_frontend_messages(void)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t *m;
	size_t n;

	const uint32_t oids[] = { 23, 25, 3802 };
	ok(pgproto_put_parse(b, "s1", "SELECT $1, $2, $3", oids, 3) == 0, "Parse built");
	n = take(b, &m);
	struct pgproto_parse p;
	is_int(pgproto_parse_parse(m, n, &p), PGPROTO_OK, "Parse parsed");
	is_str(p.name, "s1", "statement name");
	is_str(p.query, "SELECT $1, $2, $3", "query");
	is_int(p.n_oids, 3, "oid count");
	ok(pgproto_parse_oid(&p, 0) == 23 && pgproto_parse_oid(&p, 2) == 3802 && pgproto_parse_oid(&p, 3) == 0, "oids");
	is_int(p.name_off, 5, "name offset");
	check_truncations(m, n, p_parse, "Parse");

	struct evbuffer *rw = evbuffer_new();
	uint8_t *r;
	is_int(pgproto_rewrite_name(rw, m, n, "tether_s_000042"), PGPROTO_OK, "Parse renamed");
	size_t rn = take(rw, &r);
	is_int(rn, n + 13, "length grew by the name difference");
	is_int(pgproto_parse_parse(r, rn, &p), PGPROTO_OK, "renamed Parse parses");
	is_str(p.name, "tether_s_000042", "new name");
	is_str(p.query, "SELECT $1, $2, $3", "query kept");
	ok(p.n_oids == 3 && pgproto_parse_oid(&p, 1) == 25, "oids kept");
	free(r);
	is_int(pgproto_rewrite_name(rw, m, n, ""), PGPROTO_OK, "renamed to the unnamed statement");
	rn = take(rw, &r);
	is_int(pgproto_parse_parse(r, rn, &p), PGPROTO_OK, "parses");
	is_str(p.name, "", "unnamed");
	free(r);
	free(m);

	ok(pgproto_put_parse(b, "x", "q", NULL, 0x8000) != 0, "negative oid count refused by the builder");
	uint8_t neg[] = { 'P', 0, 0, 0, 10, 'x', 0, 'q', 0, 0x80, 0 };
	is_int(pgproto_parse_parse(neg, sizeof(neg), &p), PGPROTO_ERR_MALFORMED, "negative oid count refused");

	const uint8_t *vals[] = { (const uint8_t *)"42", NULL, (const uint8_t *)"\x00\x01" };
	const uint32_t lens[] = { 2, 0, 2 };
	const int16_t fmts[] = { 0, 0, 1 };
	const int16_t rfmts[] = { 1 };
	ok(pgproto_put_bind(b, "portal", "s1", 3, fmts, 3, vals, lens, 1, rfmts) == 0, "Bind built");
	n = take(b, &m);
	struct pgproto_bind bi;
	is_int(pgproto_parse_bind(m, n, &bi), PGPROTO_OK, "Bind parsed");
	is_str(bi.portal, "portal", "portal");
	is_str(bi.stmt, "s1", "statement");
	ok(bi.stmt_off == 12 && bi.stmt_len == 2 && memcmp(m + bi.stmt_off, "s1", 3) == 0, "statement offset");
	is_int(bi.n_params, 3, "params");
	check_truncations(m, n, p_bind, "Bind");
	is_int(pgproto_rewrite_name(rw, m, n, "t9"), PGPROTO_OK, "Bind renamed");
	rn = take(rw, &r);
	struct pgproto_bind b2;
	is_int(pgproto_parse_bind(r, rn, &b2), PGPROTO_OK, "renamed Bind parses");
	is_str(b2.stmt, "t9", "new statement name");
	is_str(b2.portal, "portal", "portal kept");
	ok(rn == n && memcmp(r + b2.stmt_off + 3, m + bi.stmt_off + 3, n - bi.stmt_off - 3) == 0,
	   "parameters copied byte for byte");
	free(r);
	/* A parameter length running past the end, and a negative one other than -1. */
	uint8_t *m2 = malloc(n);
	memcpy(m2, m, n);
	size_t plen_off = bi.stmt_off + 3 + 2 + 6 + 2;
	put_be32(m2 + plen_off, 1000);
	is_int(pgproto_parse_bind(m2, n, &b2), PGPROTO_ERR_MALFORMED, "parameter longer than the message");
	put_be32(m2 + plen_off, 0xfffffffe);
	is_int(pgproto_parse_bind(m2, n, &b2), PGPROTO_ERR_MALFORMED, "parameter length -2");
	free(m2);
	free(m);

	ok(pgproto_put_close(b, 'S', "s1") == 0, "Close built");
	n = take(b, &m);
	struct pgproto_target t;
	is_int(pgproto_parse_close(m, n, &t), PGPROTO_OK, "Close parsed");
	ok(t.kind == 'S' && strcmp(t.name, "s1") == 0 && t.name_off == 6, "kind, name and offset");
	check_truncations(m, n, p_close, "Close");
	is_int(pgproto_parse_describe(m, n, &t), PGPROTO_ERR_TYPE, "Close is not Describe");
	is_int(pgproto_rewrite_name(rw, m, n, "longer_name"), PGPROTO_OK, "Close renamed");
	rn = take(rw, &r);
	is_int(pgproto_parse_close(r, rn, &t), PGPROTO_OK, "renamed Close parses");
	is_str(t.name, "longer_name", "new name");
	free(r);
	m[5] = 'X';
	is_int(pgproto_parse_close(m, n, &t), PGPROTO_ERR_MALFORMED, "kind X refused");
	free(m);
	ok(pgproto_put_close(b, 'Q', "x") != 0, "builder refuses kind Q");

	ok(pgproto_put_describe(b, 'P', "") == 0, "Describe built");
	n = take(b, &m);
	is_int(pgproto_parse_describe(m, n, &t), PGPROTO_OK, "Describe parsed");
	ok(t.kind == 'P' && t.name[0] == '\0', "portal, unnamed");
	is_int(pgproto_rewrite_name(rw, m, n, "p1"), PGPROTO_OK, "Describe renamed");
	rn = take(rw, &r);
	is_int(pgproto_parse_describe(r, rn, &t), PGPROTO_OK, "parses");
	is_str(t.name, "p1", "new name");
	free(r);
	free(m);

	ok(pgproto_put_execute(b, "", 0) == 0, "Execute built");
	n = take(b, &m);
	const char *portal;
	uint32_t rows = 7;
	is_int(pgproto_parse_execute(m, n, &portal, &rows), PGPROTO_OK, "Execute parsed");
	ok(portal[0] == '\0' && rows == 0, "portal and row limit");
	check_truncations(m, n, p_execute, "Execute");
	free(m);

	ok(pgproto_put_query(b, "SELECT 1") == 0, "Query built");
	n = take(b, &m);
	const char *sql;
	is_int(pgproto_parse_query(m, n, &sql), PGPROTO_OK, "Query parsed");
	is_str(sql, "SELECT 1", "text");
	is_int(pgproto_rewrite_name(rw, m, n, "x"), PGPROTO_ERR_TYPE, "Query cannot be renamed");
	m[n - 1] = 'x';
	is_int(pgproto_parse_query(m, n, &sql), PGPROTO_ERR_MALFORMED, "unterminated query refused");
	free(m);
	evbuffer_free(rw);

	const char *kv[] = { "user", "alice", "database", "app", "client_encoding", "UTF8", NULL };
	ok(pgproto_put_startup(b, kv) == 0, "StartupMessage built");
	n = take(b, &m);
	struct startup s;
	is_int(startup_parse(m, n, &s), STARTUP_OK, "StartupMessage parses");
	ok(s.kind == STARTUP_KIND_MESSAGE && strcmp(s.user, "alice") == 0 && strcmp(s.database, "app") == 0,
	   "user and database");
	ok(s.n_params == 1 && strcmp(s.params[0].key, "client_encoding") == 0, "other params");
	startup_deinit(&s);
	free(m);
	const char *odd[] = { "user", NULL };
	ok(pgproto_put_startup(b, odd) != 0, "odd key/value list refused by the builder");

	ok(pgproto_put_cancel_request(b, 77, 0xabcdef01) == 0, "CancelRequest built");
	n = take(b, &m);
	is_int(startup_parse(m, n, &s), STARTUP_OK, "CancelRequest parses");
	ok(s.kind == STARTUP_KIND_CANCEL && s.cancel_pid == 77 && s.cancel_key == 0xabcdef01, "pid and key");
	startup_deinit(&s);
	free(m);
	is_int(evbuffer_get_length(b), 0, "nothing left behind");
	evbuffer_free(b);
}

/* Builds a startup packet from a body (the pairs area) with a given code. */
static size_t startup_pkt(uint8_t *out, uint32_t code, const char *body, size_t body_len)
{
	put_be32(out, (uint32_t)(8 + body_len));
	put_be32(out + 4, code);
	memcpy(out + 8, body, body_len);
	return 8 + body_len;
}

#define BODY(s) (s), sizeof(s) - 1

static void test_startup(void)
{
	uint8_t pkt[STARTUP_MAX_PACKET + 64];
	struct startup s;
	size_t n;

	n = startup_pkt(pkt, PGPROTO_SSL_CODE, "", 0);
	is_int(startup_parse(pkt, n, &s), STARTUP_OK, "SSLRequest");
	is_int(s.kind, STARTUP_KIND_SSL, "kind SSL");
	n = startup_pkt(pkt, PGPROTO_GSSENC_CODE, "", 0);
	is_int(startup_parse(pkt, n, &s), STARTUP_OK, "GSSENCRequest");
	is_int(s.kind, STARTUP_KIND_GSSENC, "kind GSSENC");
	n = startup_pkt(pkt, PGPROTO_SSL_CODE, BODY("xxxx"));
	is_int(startup_parse(pkt, n, &s), STARTUP_ERR_LENGTH, "SSLRequest with extra bytes");
	n = startup_pkt(pkt, PGPROTO_CANCEL_CODE, BODY("1234"));
	is_int(startup_parse(pkt, n, &s), STARTUP_ERR_LENGTH, "short CancelRequest");

	n = startup_pkt(pkt, PGPROTO_V3, BODY("user\0bob\0\0"));
	is_int(startup_parse(pkt, n, &s), STARTUP_OK, "minimal StartupMessage");
	is_str(s.user, "bob", "user");
	is_str(s.database, "bob", "database defaults to user");
	ok(s.options == NULL && s.application_name == NULL && s.n_params == 0, "nothing else");
	startup_deinit(&s);

	n = startup_pkt(pkt, PGPROTO_V3,
			BODY("user\0bob\0database\0db\0options\0-c geqo=off\0application_name\0psql\0"
			     "DateStyle\0ISO\0replication\0off\0_pq_.x\0y\0TimeZone\0UTC\0\0"));
	is_int(startup_parse(pkt, n, &s), STARTUP_OK, "full StartupMessage");
	is_str(s.database, "db", "database");
	is_str(s.options, "-c geqo=off", "options");
	is_str(s.application_name, "psql", "application_name");
	ok(s.n_params == 2 && strcmp(s.params[0].key, "DateStyle") == 0 && strcmp(s.params[1].key, "TimeZone") == 0 &&
		   strcmp(s.params[1].value, "UTC") == 0,
	   "other pairs in order (replication=off dropped)");
	ok(s.n_proto_opts == 1 && strcmp(s.proto_opts[0].key, "_pq_.x") == 0, "protocol option kept apart");
	is_str(startup_get(&s, "TimeZone"), "UTC", "lookup");
	is_str(startup_get(&s, "user"), "bob", "lookup named");
	ok(startup_get(&s, "nope") == NULL, "lookup missing");
	startup_deinit(&s);

	n = startup_pkt(pkt, PGPROTO_VERSION(3, 2), BODY("user\0bob\0\0"));
	is_int(startup_parse(pkt, n, &s), STARTUP_OK, "protocol 3.2 accepted (to be negotiated down)");
	is_int(s.minor, 2, "minor version reported");
	startup_deinit(&s);

	n = startup_pkt(pkt, PGPROTO_VERSION(2, 0), BODY("user\0bob\0\0"));
	is_int(startup_parse(pkt, n, &s), STARTUP_ERR_PROTOCOL, "protocol 2.0 refused");
	ok(s.major == 2 && s.minor == 0, "2.0 reported");
	n = startup_pkt(pkt, PGPROTO_VERSION(4, 1), BODY("user\0bob\0\0"));
	is_int(startup_parse(pkt, n, &s), STARTUP_ERR_PROTOCOL, "protocol 4.1 refused");
	ok(s.major == 4 && s.minor == 1, "4.1 reported");
	n = startup_pkt(pkt, PGPROTO_VERSION(1234, 5681), BODY("user\0bob\0\0"));
	is_int(startup_parse(pkt, n, &s), STARTUP_ERR_PROTOCOL, "unknown special code refused");

	static const struct {
		const char *body;
		size_t len;
		int want;
		const char *what;
	} cases[] = {
		{ BODY("database\0db\0\0"), STARTUP_ERR_NO_USER, "missing user" },
		{ BODY("user\0\0\0"), STARTUP_ERR_NO_USER, "empty user" },
		{ BODY("user\0bob"), STARTUP_ERR_UNTERMINATED, "unterminated value" },
		{ BODY("user\0bob\0data"), STARTUP_ERR_UNTERMINATED, "unterminated key" },
		{ BODY("user\0bob\0"), STARTUP_ERR_UNTERMINATED, "no list terminator" },
		{ BODY(""), STARTUP_ERR_UNTERMINATED, "empty list" },
		{ BODY("user\0bob\0database\0\0"), STARTUP_ERR_ODD_PAIRS, "key without a value" },
		{ BODY("user\0"), STARTUP_ERR_ODD_PAIRS, "key at the end" },
		{ BODY("user\0x"), STARTUP_ERR_UNTERMINATED, "one-byte unterminated value" },
		{ BODY("user\0bob\0\0x"), STARTUP_ERR_TRAILING, "bytes after the terminator" },
		{ BODY("user\0bob\0replication\0true\0\0"), STARTUP_ERR_REPLICATION, "physical replication" },
		{ BODY("user\0bob\0replication\0database\0\0"), STARTUP_ERR_REPLICATION, "logical replication" },
		{ BODY("user\0bob\0replication\0on\0\0"), STARTUP_ERR_REPLICATION, "replication=on" },
		{ BODY("user\0bob\0replication\0yes\0\0"), STARTUP_ERR_REPLICATION, "replication=yes" },
		{ BODY("user\0bob\0replication\0no\0\0"), STARTUP_OK, "replication=no" },
		{ BODY("user\0bob\0replication\0f\0\0"), STARTUP_OK, "replication=f" },
		{ BODY("user\0bob\0replication\0 0\0\0"), STARTUP_ERR_REPLICATION, "replication garbage" },
		{ BODY("user\0bob\0database\0\0\0"), STARTUP_OK, "empty database value" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = startup_pkt(pkt, PGPROTO_V3, cases[i].body, cases[i].len);
		is_int(startup_parse(pkt, n, &s), cases[i].want, "%s", cases[i].what);
		startup_deinit(&s);
	}
	has_str(startup_strerror(STARTUP_ERR_NO_USER), "user name", "no-user message");
	is_str(startup_sqlstate(STARTUP_ERR_PROTOCOL), "0A000", "feature_not_supported for the version");
	is_str(startup_sqlstate(STARTUP_ERR_ODD_PAIRS), "08P01", "protocol_violation for layout errors");

	/* Lengths. */
	is_int(startup_parse(pkt, 7, &s), STARTUP_ERR_SHORT, "under 8 bytes");
	n = startup_pkt(pkt, PGPROTO_V3, BODY("user\0bob\0\0"));
	is_int(startup_parse(pkt, n - 1, &s), STARTUP_ERR_LENGTH, "length word disagrees");
	memset(pkt + 8, 'a', STARTUP_MAX_PACKET);
	put_be32(pkt, STARTUP_MAX_PACKET + 1);
	put_be32(pkt + 4, PGPROTO_V3);
	is_int(startup_parse(pkt, STARTUP_MAX_PACKET + 1, &s), STARTUP_ERR_TOO_LONG, "over 10 KiB");
	/* Exactly 10 KiB with a 4 KiB token-sized value is fine. */
	char *big = malloc(STARTUP_MAX_PACKET);
	size_t bl = 0;
	memcpy(big, "user\0bob\0options\0", 17);
	bl = 17;
	memset(big + bl, 'o', STARTUP_MAX_PACKET - 8 - bl - 2);
	bl = STARTUP_MAX_PACKET - 8 - 2;
	big[bl++] = 0;
	big[bl++] = 0;
	n = startup_pkt(pkt, PGPROTO_V3, big, bl);
	is_int(n, STARTUP_MAX_PACKET, "packet at the limit");
	is_int(startup_parse(pkt, n, &s), STARTUP_OK, "packet at the limit parses");
	is_int(strlen(s.options), STARTUP_MAX_PACKET - 8 - 17 - 2, "long value intact");
	startup_deinit(&s);
	free(big);
}

int main(void)
{
	test_frames();
	test_backend_messages();
	test_auth_messages();
	test_frontend_messages();
	test_startup();
	return tap_done();
}
