/* Named prepared statements in transaction mode. A client's Parse of a named statement is
 * recorded under the client's name and prepared on a server under the pool-wide name of its
 * text ("tether_<n>"); Bind and Describe are rewritten to that name and, when the server the
 * client holds now lacks it, preceded by a Parse whose answer tether swallows. Close,
 * DEALLOCATE and DISCARD ALL act on the client's names; the answers the client expects stay in
 * the order it expects them (see pg_expect.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pg_internal.h"

/* A Close of a statement no server has: answered with CloseComplete, changes nothing. */
#define PG_EXT_NOOP_NAME "tether_none"
/* Longest statement or portal name looked at in a Bind's head. */
#define PG_EXT_NAME_MAX 1024

static bool pg_extended_on(const struct pg_client *c)
{
	return c->pool->db->pool_mode == PG_POOL_TRANSACTION && c->pg->conf->max_prepared_statements > 0;
}

static int pg_ext_put_header(struct evbuffer *out, uint8_t type, size_t body_len)
{
	unsigned char h[5] = { type, (unsigned char)((body_len + 4) >> 24), (unsigned char)((body_len + 4) >> 16),
			       (unsigned char)((body_len + 4) >> 8), (unsigned char)(body_len + 4) };
	return evbuffer_add(out, h, 5);
}

static int pg_ext_put_parse(struct evbuffer *out, const struct pg_stmt *st)
{
	size_t nl = strlen(st->sname) + 1;
	if (pg_ext_put_header(out, 'P', nl + st->body_len) != 0 || evbuffer_add(out, st->sname, nl) != 0 ||
	    evbuffer_add(out, st->body, st->body_len) != 0)
		return -1;
	return 0;
}

/* Makes room under max_prepared_statements by closing the least recently used statement. */
static int pg_ext_make_room(struct pg_server *s, struct evbuffer *to)
{
	size_t max = (size_t)s->pool->pg->conf->max_prepared_statements;
	while (s->stmts.n >= max) {
		struct pg_stmt *old = pg_stmt_set_oldest(&s->stmts);
		if (pgproto_put_close(to, 'S', old->sname) != 0 || pg_expect_push(s, PG_EXP_CLOSE_DROP, NULL) != 0)
			return -1;
		pg_stmt_set_del(&s->stmts, &s->pool->stmts, old);
	}
	return 0;
}

/* Prepares `st` on the server unless it has it. `kind` is PG_EXP_PARSE when the client's own
 * Parse is answered by it, PG_EXP_PARSE_DROP when tether's answer is swallowed. */
static int pg_ext_prepare(struct pg_server *s, struct evbuffer *to, struct pg_stmt *st, enum pg_expect_kind kind)
{
	if (s->skip_till_sync) {
		/* the server ignores it anyway until Sync; only the client's Parse needs relaying */
		return kind == PG_EXP_PARSE ? pg_ext_put_parse(to, st) : 0;
	}
	if (pg_ext_make_room(s, to) != 0)
		return -1;
	s->pool->prepares++;
	/* A Close first: the server may have it although tether lost track (an error or a DISCARD
	 * whose effect is uncertain); closing a missing statement is not an error. */
	if (pgproto_put_close(to, 'S', st->sname) != 0 || pg_expect_push(s, PG_EXP_CLOSE_DROP, NULL) != 0 ||
	    pg_ext_put_parse(to, st) != 0 || pg_expect_push(s, kind, st) != 0 || pg_stmt_set_add(&s->stmts, st) != 0)
		return -1;
	return 0;
}

static int pg_ext_ensure(struct pg_server *s, struct evbuffer *to, struct pg_stmt *st)
{
	if (pg_stmt_set_has(&s->stmts, st))
		return 0;
	return pg_ext_prepare(s, to, st, PG_EXP_PARSE_DROP);
}

static int pg_ext_unnamed_sql(struct pg_client *c, struct pg_server *s, struct evbuffer *to,
			      const unsigned char *body, size_t blen);

/* Parse: record the client's name, prepare under the shared name or stand in for it. */
static int pg_ext_parse(struct pg_client *c, struct pg_server *s, struct evbuffer *to, const unsigned char *body,
			size_t blen)
{
	const char *name = (const char *)body;
	size_t nl = strnlen(name, blen);
	if (nl == blen)
		return -2;
	if (nl == 0) {
		/* the unnamed statement lives and dies within the client's request; it may be a
		 * DEALLOCATE of a name (psycopg sends those with the extended protocol) */
		int rc = pg_ext_unnamed_sql(c, s, to, body, blen);
		if (rc <= 0)
			return rc;
		if (pg_ext_put_header(to, 'P', blen) != 0 || evbuffer_add(to, body, blen) != 0 ||
		    pg_expect_push(s, PG_EXP_PARSE, NULL) != 0)
			return -1;
		return 0;
	}
	struct pg_stmt *st = pg_stmt_intern(&c->pool->stmts, body + nl + 1, blen - nl - 1);
	if (!st)
		return -1;
	int rc = pg_stmt_map_put(&c->stmts, &c->pool->stmts, name, st);
	if (rc == 0) {
		if (!s->skip_till_sync && pg_stmt_set_has(&s->stmts, st)) {
			/* already there: a no-op Close answers in its place */
			if (pgproto_put_close(to, 'S', PG_EXT_NOOP_NAME) != 0 ||
			    pg_expect_push(s, PG_EXP_CLOSE_AS_PARSE, NULL) != 0)
				rc = -1;
		} else {
			rc = pg_ext_prepare(s, to, st, PG_EXP_PARSE);
		}
	}
	pg_stmt_unref(&c->pool->stmts, st);
	return rc;
}

/* Describe or Close of a statement: kind byte, name. */
static int pg_ext_describe_close(struct pg_client *c, struct pg_server *s, struct evbuffer *to, uint8_t type,
				 const unsigned char *body, size_t blen)
{
	if (blen < 2 || body[blen - 1] != 0)
		return -2;
	const char *name = (const char *)body + 1;
	struct pg_stmt *st = body[0] == 'S' && *name ? pg_stmt_map_get(&c->stmts, name) : NULL;
	if (type == 'C') {
		if (st) {
			pg_stmt_map_del(&c->stmts, &c->pool->stmts, name);
			name = PG_EXT_NOOP_NAME; /* others may use it: the server keeps it */
		}
		if (pgproto_put_close(to, body[0], name) != 0 || pg_expect_push(s, PG_EXP_CLOSE, NULL) != 0)
			return -1;
		return 0;
	}
	if (st) {
		if (pg_ext_ensure(s, to, st) != 0)
			return -1;
		name = st->sname;
	}
	return pgproto_put_describe(to, body[0], name) == 0 ? 0 : -1;
}

/* Case-insensitive keyword at *p followed by a word boundary; advances past it. */
static bool pg_ext_keyword(const char **p, const char *kw)
{
	size_t n = strlen(kw);
	if (strncasecmp(*p, kw, n) != 0 || isalnum((unsigned char)(*p)[n]) || (*p)[n] == '_')
		return false;
	*p += n;
	while (isspace((unsigned char)**p))
		(*p)++;
	return true;
}

/* An identifier as PostgreSQL reads it: unquoted folds to lower case, "quoted" keeps case. */
static bool pg_ext_ident(const char **p, char *out, size_t outlen)
{
	const char *s = *p;
	size_t n = 0;
	if (*s == '"') {
		for (s++;; s++) {
			if (!*s)
				return false;
			if (*s == '"') {
				if (s[1] != '"')
					break;
				s++;
			}
			if (n + 1 >= outlen)
				return false;
			out[n++] = *s;
		}
		s++;
	} else {
		if (!isalpha((unsigned char)*s) && *s != '_')
			return false;
		while (isalnum((unsigned char)*s) || *s == '_' || *s == '$') {
			if (n + 1 >= outlen)
				return false;
			out[n++] = (char)tolower((unsigned char)*s++);
		}
	}
	out[n] = 0;
	while (isspace((unsigned char)*s))
		s++;
	*p = s;
	return n > 0;
}

/* The first of 16 pairs q[i + k], q[i + k + 1] (k >= skip) that reads "li" in either case, else
 * -1; reads q[i .. i + 17). */
static int pg_ext_li16(const char *q, size_t i, unsigned skip)
{
#if defined(__SSE2__)
	const __m128i lower = _mm_set1_epi8(0x20), l = _mm_set1_epi8('l'), ii = _mm_set1_epi8('i');
	__m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(q + i)), lower);
	__m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(q + i + 1)), lower);
	unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, l), _mm_cmpeq_epi8(b, ii)));
	m &= ~((1u << skip) - 1);
	return m ? __builtin_ctz(m) : -1;
#else
	for (unsigned k = skip; k < 16; k++)
		if ((q[i + k] | 0x20) == 'l' && (q[i + k + 1] | 0x20) == 'i')
			return (int)k;
	return -1;
#endif
}

/* The offset of the first "li" in q[from..n), in either case, else n (b | 0x20 is 'l' or 'i'
 * only for those letters). Most statements have none at all. */
static size_t pg_ext_next_li(const char *q, size_t from, size_t n)
{
	size_t i = from;
	if (n >= 17) {
		for (; i + 17 <= n; i += 16) {
			int k = pg_ext_li16(q, i, 0);
			if (k >= 0)
				return i + (size_t)k;
		}
		if (i + 1 >= n)
			return n;
		/* the rest: the last 16 pairs, less those before i */
		size_t j = n - 17;
		int k = pg_ext_li16(q, j, (unsigned)(i - j));
		return k >= 0 ? j + (size_t)k : n;
	}
	for (; i + 1 < n; i++)
		if ((q[i] | 0x20) == 'l' && (q[i + 1] | 0x20) == 'i')
			return i;
	return n;
}

/* LISTEN anywhere in the text (not UNLISTEN): the client must keep its server to get its
 * notifications. Over-detection (a LISTEN in a string) only pins a client needlessly. */
static bool pg_ext_mentions_listen(const char *q, size_t n)
{
	/* (every statement is scanned: from one "li" to the next) */
	for (size_t i = pg_ext_next_li(q, 0, n); i + 6 <= n; i = pg_ext_next_li(q, i + 1, n)) {
		if (strncasecmp(q + i + 2, "sten", 4) != 0)
			continue;
		bool before = i == 0 || !(isalnum((unsigned char)q[i - 1]) || q[i - 1] == '_');
		bool after = i + 6 == n || !(isalnum((unsigned char)q[i + 6]) || q[i + 6] == '_');
		if (before && after)
			return true;
	}
	return false;
}

enum pg_ext_sql { PG_EXT_SQL_OTHER, PG_EXT_SQL_DEALLOCATE, PG_EXT_SQL_DEALLOCATE_ALL, PG_EXT_SQL_DISCARD_ALL,
		  PG_EXT_SQL_RESET_ALL, PG_EXT_SQL_UNLISTEN_ALL };
static enum pg_ext_sql pg_ext_classify(const char *q, char *name, size_t namelen);

/* LISTEN pins a transaction-mode client to its server until UNLISTEN * (or DISCARD ALL);
 * `kind` is pg_ext_classify's for `q`. */
static void pg_ext_track_listen(struct pg_client *c, const char *q, size_t n, enum pg_ext_sql kind)
{
	if (kind == PG_EXT_SQL_UNLISTEN_ALL || kind == PG_EXT_SQL_DISCARD_ALL) {
		c->listening = false;
	} else if (!c->listening && pg_ext_mentions_listen(q, n)) {
		c->listening = true;
		log_debug(&c->log, "LISTEN: the client keeps its server until UNLISTEN * or disconnect");
	}
}


/* Recognises the statements that drop prepared statements or session settings. */
static enum pg_ext_sql pg_ext_classify(const char *q, char *name, size_t namelen)
{
	while (isspace((unsigned char)*q))
		q++;
	enum pg_ext_sql kind = PG_EXT_SQL_OTHER;
	char first = (char)(*q | 0x20);
	/* (most statements: no keyword below starts with their first two letters; the rest try
	 * only the keywords that do. q[1] is read only after a letter, so it is at worst the NUL) */
	bool maybe = (first == 'd' && ((q[1] | 0x20) == 'e' || (q[1] | 0x20) == 'i')) ||
		     (first == 'r' && (q[1] | 0x20) == 'e') || (first == 'u' && (q[1] | 0x20) == 'n');
	if (!maybe)
		return kind;
	if (first == 'd' && pg_ext_keyword(&q, "deallocate")) {
		(void)pg_ext_keyword(&q, "prepare");
		if (pg_ext_keyword(&q, "all"))
			kind = PG_EXT_SQL_DEALLOCATE_ALL;
		else if (pg_ext_ident(&q, name, namelen))
			kind = PG_EXT_SQL_DEALLOCATE;
	} else if (first == 'd' && pg_ext_keyword(&q, "discard")) {
		if (pg_ext_keyword(&q, "all"))
			kind = PG_EXT_SQL_DISCARD_ALL;
	} else if (first == 'r' && pg_ext_keyword(&q, "reset")) {
		if (pg_ext_keyword(&q, "all"))
			kind = PG_EXT_SQL_RESET_ALL;
	} else if (first == 'u' && pg_ext_keyword(&q, "unlisten")) {
		if (*q == '*') {
			q++;
			while (isspace((unsigned char)*q))
				q++;
			kind = PG_EXT_SQL_UNLISTEN_ALL;
		}
	}
	if (kind == PG_EXT_SQL_OTHER)
		return kind;
	if (*q == ';')
		q++;
	while (isspace((unsigned char)*q))
		q++;
	return *q ? PG_EXT_SQL_OTHER : kind; /* only the statement alone */
}

/* What a statement does to the client's prepared statements and the server's settings. For
 * DEALLOCATE of a client's name, fills `sql` with the DEALLOCATE of the shared name after making
 * sure the server has it (`own_sync`: with tether's own Close + Parse + Sync swallowed whole, so
 * that an error there cannot make the server skip what follows) and returns 0; otherwise 1. */
static int pg_ext_sql_effects(struct pg_client *c, struct pg_server *s, struct evbuffer *to, const char *q,
			      bool own_sync, char *sql, size_t sqllen)
{
	char name[PG_EXT_NAME_MAX];
	enum pg_ext_sql kind = pg_ext_classify(q, name, sizeof(name));
	if (kind == PG_EXT_SQL_RESET_ALL || kind == PG_EXT_SQL_DISCARD_ALL)
		pg_guc_server_reset(s);
	pg_ext_track_listen(c, q, strlen(q), kind);
	if (kind == PG_EXT_SQL_DEALLOCATE_ALL || kind == PG_EXT_SQL_DISCARD_ALL) {
		pg_stmt_map_clear(&c->stmts, &c->pool->stmts);
		pg_stmt_set_clear(&s->stmts, &s->pool->stmts);
	}
	struct pg_stmt *st = kind == PG_EXT_SQL_DEALLOCATE ? pg_stmt_map_get(&c->stmts, name) : NULL;
	if (!st)
		return 1; /* unchanged; an unknown name gets the server's own error */
	pg_stmt_ref(st);
	pg_stmt_map_del(&c->stmts, &c->pool->stmts, name);
	int rc = 0;
	if (!own_sync) {
		rc = pg_ext_ensure(s, to, st);
	} else if (!pg_stmt_set_has(&s->stmts, st)) {
		if (pgproto_put_close(to, 'S', st->sname) != 0 || pg_ext_put_parse(to, st) != 0 ||
		    pgproto_put_sync(to) != 0 || pg_expect_push(s, PG_EXP_QUERY_DROP, NULL) != 0)
			rc = -1;
	}
	pg_stmt_set_del(&s->stmts, &s->pool->stmts, st);
	snprintf(sql, sqllen, "DEALLOCATE %s", st->sname);
	pg_stmt_unref(&c->pool->stmts, st);
	return rc;
}

/* A simple Query that may be DEALLOCATE / DISCARD ALL / RESET ALL. 1: relay unchanged. */
static int pg_ext_query(struct pg_client *c, struct pg_server *s, struct evbuffer *to, const char *q)
{
	char sql[64];
	int rc = pg_ext_sql_effects(c, s, to, q, true, sql, sizeof(sql));
	if (rc != 0)
		return rc;
	return pgproto_put_query(to, sql) == 0 && pg_expect_push(s, PG_EXP_SYNC, NULL) == 0 ? 0 : -1;
}

/* The unnamed Parse of such a statement. 1: relay unchanged. */
static int pg_ext_unnamed_sql(struct pg_client *c, struct pg_server *s, struct evbuffer *to,
			      const unsigned char *body, size_t blen)
{
	const char *q = (const char *)body + 1;
	size_t ql = strnlen(q, blen - 1);
	if (ql == blen - 1)
		return -2;
	char sql[64];
	int rc = pg_ext_sql_effects(c, s, to, q, false, sql, sizeof(sql));
	if (rc != 0)
		return rc;
	size_t rest = blen - 1 - ql - 1, sl = strlen(sql) + 1;
	if (pg_ext_put_header(to, 'P', 1 + sl + rest) != 0 || evbuffer_add(to, "", 1) != 0 ||
	    evbuffer_add(to, sql, sl) != 0 || evbuffer_add(to, q + ql + 1, rest) != 0 ||
	    pg_expect_push(s, PG_EXP_PARSE, NULL) != 0)
		return -1;
	return 0;
}

int pg_extended_client_msg(struct pg_client *c, struct evbuffer *in, uint8_t type, uint32_t len)
{
	struct pg_server *s = c->server;
	struct evbuffer *to = bufferevent_get_output(s->bev);
	bool txn = c->pool->db->pool_mode == PG_POOL_TRANSACTION;
	if (txn && type == 'Q' && !pg_extended_on(c) && len <= 4096) {
		/* statement names relayed unchanged; LISTEN still pins the client to its server */
		const unsigned char *m = evbuffer_pullup(in, (ssize_t)len + 1);
		if (m && m[len] == 0) {
			char name[8];
			const char *q = (const char *)m + 5;
			pg_ext_track_listen(c, q, strlen(q), pg_ext_classify(q, name, sizeof(name)));
		}
		return 0;
	}
	if (!pg_extended_on(c)) {
		/* session mode: relayed unchanged, only the answers are accounted for */
		if (type == 'P' && pg_expect_push(s, PG_EXP_PARSE, NULL) != 0)
			return -1;
		if (type == 'C' && pg_expect_push(s, PG_EXP_CLOSE, NULL) != 0)
			return -1;
		return 0;
	}
	size_t total = (size_t)len + 1;
	if (type == 'B') {
		/* only the head is rewritten; parameters stream through as they are */
		size_t peek = total < 5 + 2 * PG_EXT_NAME_MAX ? total : 5 + 2 * PG_EXT_NAME_MAX;
		const unsigned char *m = evbuffer_pullup(in, (ssize_t)peek);
		if (!m)
			return -1;
		const char *portal, *name;
		if (!pg_wire_bind_names(m, peek, &portal, &name))
			return 0;
		size_t pl = strlen(portal), nl = strlen(name);
		struct pg_stmt *st = nl ? pg_stmt_map_get(&c->stmts, name) : NULL;
		if (!st)
			return 0;
		if (pg_ext_ensure(s, to, st) != 0)
			return -1;
		size_t head = 5 + pl + 1 + nl + 1, rest = total - head, snl = strlen(st->sname) + 1;
		if (pg_ext_put_header(to, 'B', pl + 1 + snl + rest) != 0 || evbuffer_add(to, portal, pl + 1) != 0 ||
		    evbuffer_add(to, st->sname, snl) != 0)
			return -1;
		evbuffer_drain(in, head);
		c->relay_remaining = rest;
		return 1;
	}
	if (type == 'Q') {
		/* a long statement is not one that changes statements or settings */
		if (len > 4096)
			return 0;
		const unsigned char *m = evbuffer_pullup(in, (ssize_t)total);
		if (!m || m[total - 1] != 0)
			return 0; /* malformed: the server will say so */
		int rc = pg_ext_query(c, s, to, (const char *)m + 5);
		if (rc != 0)
			return rc > 0 ? 0 : -1;
		c->pool->queries++;
		evbuffer_drain(in, total);
		return 1;
	}
	const unsigned char *m = evbuffer_pullup(in, (ssize_t)total);
	if (!m)
		return -1;
	int rc = type == 'P' ? pg_ext_parse(c, s, to, m + 5, len - 4)
			     : pg_ext_describe_close(c, s, to, type, m + 5, len - 4);
	if (rc == -2) {
		pg_client_fail(c, "08P01", "malformed %s message", type == 'P' ? "Parse" : type == 'D' ? "Describe" : "Close");
		return -1;
	}
	if (rc != 0)
		return -1;
	evbuffer_drain(in, total);
	return 1;
}

int pg_extended_remember(struct pg_client *c, const unsigned char *msg, size_t len)
{
	if (!pg_extended_on(c) || len < 6)
		return 0;
	const char *name = (const char *)msg + 5;
	size_t nl = strnlen(name, len - 5);
	if (nl == 0 || nl >= len - 5)
		return 0;
	struct pg_stmt *st = pg_stmt_intern(&c->pool->stmts, msg + 5 + nl + 1, len - 5 - nl - 1);
	if (!st)
		return -1;
	int rc = pg_stmt_map_put(&c->stmts, &c->pool->stmts, name, st);
	pg_stmt_unref(&c->pool->stmts, st);
	return rc;
}

bool pg_extended_renames(const struct pg_client *c)
{
	return pg_extended_on(c);
}

/* A message copied into out as it is (-1: no room). */
static ssize_t pg_ext_copy(const unsigned char *m, size_t total, unsigned char *out, size_t room)
{
	if (total > room)
		return -1;
	memcpy(out, m, total);
	return (ssize_t)total;
}

ssize_t pg_extended_rewrite(struct pg_client *c, const unsigned char *m, size_t total, unsigned char *out,
			    size_t room)
{
	if (!pg_extended_on(c))
		return pg_ext_copy(m, total, out, room);
	struct pg_server *s = c->server;
	if (m[0] == 'B') {
		/* as pg_extended_client_msg: the names in the head, the client's statement's shared name */
		size_t peek = total < 5 + 2 * PG_EXT_NAME_MAX ? total : 5 + 2 * PG_EXT_NAME_MAX;
		const char *portal, *name;
		if (!pg_wire_bind_names(m, peek, &portal, &name))
			return pg_ext_copy(m, total, out, room);
		size_t pl = strlen(portal), nl = strlen(name);
		struct pg_stmt *st = nl ? pg_stmt_map_get(&c->stmts, name) : NULL;
		if (!st)
			return pg_ext_copy(m, total, out, room);
		if (!pg_stmt_set_has(&s->stmts, st))
			return -1; /* to be prepared first: pg_extended_client_msg */
		size_t head = 5 + pl + 1 + nl + 1, rest = total - head, snl = strlen(st->sname) + 1;
		size_t body = pl + 1 + snl + rest;
		if (5 + body > room || body + 4 > UINT32_MAX)
			return -1;
		out[0] = 'B';
		out[1] = (unsigned char)((body + 4) >> 24);
		out[2] = (unsigned char)((body + 4) >> 16);
		out[3] = (unsigned char)((body + 4) >> 8);
		out[4] = (unsigned char)(body + 4);
		memcpy(out + 5, portal, pl + 1);
		memcpy(out + 5 + pl + 1, st->sname, snl);
		memcpy(out + 5 + pl + 1 + snl, m + head, rest);
		return (ssize_t)(5 + body);
	}
	if (m[0] == 'D') {
		const unsigned char *body = m + 5;
		size_t blen = total - 5;
		/* (what pgproto_put_describe would build again: only a well-formed one is copied) */
		if (blen < 2 || body[blen - 1] != 0 || strlen((const char *)body + 1) != blen - 2)
			return -1;
		const char *name = (const char *)body + 1;
		struct pg_stmt *st = body[0] == 'S' && *name ? pg_stmt_map_get(&c->stmts, name) : NULL;
		if (!st)
			return pg_ext_copy(m, total, out, room);
		if (!pg_stmt_set_has(&s->stmts, st))
			return -1;
		size_t snl = strlen(st->sname) + 1;
		if (6 + snl > room)
			return -1;
		out[0] = 'D';
		out[1] = (unsigned char)((5 + snl) >> 24);
		out[2] = (unsigned char)((5 + snl) >> 16);
		out[3] = (unsigned char)((5 + snl) >> 8);
		out[4] = (unsigned char)(5 + snl);
		out[5] = 'S';
		memcpy(out + 6, st->sname, snl);
		return (ssize_t)(6 + snl);
	}
	return -1;
}

bool pg_extended_query_plain(const struct pg_client *c, const char *q)
{
	if (c->pool->db->pool_mode != PG_POOL_TRANSACTION)
		return true; /* session mode: nothing looked at */
	char name[PG_EXT_NAME_MAX];
	return pg_ext_classify(q, name, sizeof(name)) == PG_EXT_SQL_OTHER;
}

void pg_extended_query_relayed(struct pg_client *c, const char *q, size_t n)
{
	if (c->pool->db->pool_mode == PG_POOL_TRANSACTION)
		pg_ext_track_listen(c, q, n, PG_EXT_SQL_OTHER);
}

bool pg_extended_resets_settings(const char *sql)
{
	char name[8];
	enum pg_ext_sql k = pg_ext_classify(sql, name, sizeof(name));
	return k == PG_EXT_SQL_DISCARD_ALL || k == PG_EXT_SQL_RESET_ALL;
}

int pg_extended_idle_query(struct pg_client *c, struct evbuffer *in, uint32_t len)
{
	if (!pg_extended_on(c) || len < 5 || len > 4096)
		return 0;
	size_t total = (size_t)len + 1;
	if (evbuffer_get_length(in) < total)
		return 0;
	const unsigned char *m = evbuffer_pullup(in, (ssize_t)total);
	if (!m || m[total - 1] != 0)
		return 0;
	char name[PG_EXT_NAME_MAX];
	enum pg_ext_sql kind = pg_ext_classify((const char *)m + 5, name, sizeof(name));
	if (kind == PG_EXT_SQL_DEALLOCATE_ALL)
		pg_stmt_map_clear(&c->stmts, &c->pool->stmts);
	else if (kind != PG_EXT_SQL_DEALLOCATE || !pg_stmt_map_del(&c->stmts, &c->pool->stmts, name))
		return 0; /* a name the client never prepared: the server gives the real error */
	evbuffer_drain(in, total);
	c->pool->queries++;
	struct evbuffer *out = pg_client_output(c);
	if (pgproto_put_command_complete(out, kind == PG_EXT_SQL_DEALLOCATE ? "DEALLOCATE" : "DEALLOCATE ALL") != 0 ||
	    pgproto_put_ready_for_query(out, 'I') != 0)
		return -1;
	return 1;
}
