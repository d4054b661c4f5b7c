/* The read cache inside the pooler (pg_cache.h): which requests are looked up, replaying hits,
 * and what each forwarded message prepares, binds and writes (pg_cache_capture.c keeps a
 * miss's answer). */
#include "pg_cache.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "pg_cache_internal.h"
#include "pg_catalog.h"
#include "pg_internal.h"

/* Requests larger than this are relayed without a lookup; a Query larger than this is not
 * analysed either, and counts as a write of everything. */
#define PG_CACHE_MAX_REQUEST (256 * 1024)
#define PG_CACHE_MAX_QUERY (1024 * 1024)

/* --- forwarding: what each message prepares, binds and writes --- */

/* A Parse of statement `name` with a Parse body (text, NUL, parameter types). */
static int pg_cache_put_parse(struct evbuffer *out, const char *name, const unsigned char *body, size_t len)
{
	size_t nl = strlen(name) + 1, ml = 4 + nl + len;
	unsigned char h[5] = { 'P', (unsigned char)(ml >> 24), (unsigned char)(ml >> 16), (unsigned char)(ml >> 8),
			       (unsigned char)ml };
	if (evbuffer_add(out, h, 5) != 0 || evbuffer_add(out, name, nl) != 0 || evbuffer_add(out, body, len) != 0)
		return -1;
	return 0;
}

static const unsigned char *pg_cache_pull(struct evbuffer *in, size_t n)
{
	return evbuffer_pullup(in, (ssize_t)n);
}

int pg_cache_forward(struct pg_client *c, struct evbuffer *in, uint8_t type, uint32_t len)
{
	struct pg_cache_client *cc = pg_cache_client(c);
	if (!cc)
		return -1;
	size_t total = (size_t)len + 1;
	switch (type) {
	case 'Q': {
		bool looked = cc->decided;
		cc->decided = false;
		cc->head_learnt = false;
		if (looked && cc->head_session && c->server)
			c->server->tainted = true;
		cc->head_session = false;
		if (looked)
			return 0; /* pg_cache_before tracked it */
		if (len > PG_CACHE_MAX_QUERY || evbuffer_get_length(in) < total) {
			cc->w_all = true; /* a statement too long to read: it may write anything */
			return 0;
		}
		const unsigned char *m = pg_cache_pull(in, total);
		struct cache_sql_info info;
		if (!m || pg_cache_analyze(c, (const char *)m + 5, len - 4, &info) != 0)
			return -1;
		bool session = pg_cache_changes_session(&info);
		if (session && c->server)
			c->server->tainted = true;
		int rc = pg_cache_track(cc, &info, session);
		cache_sql_info_deinit(&info);
		return rc;
	}
	case 'P': {
		cc->mid_request = true;
		const unsigned char *m = pg_cache_pull(in, total);
		if (!m)
			return -1;
		const char *name = (const char *)m + 5;
		size_t nl = strnlen(name, len - 4);
		if (nl >= len - 4)
			return 0; /* malformed: the server (or pg_extended) says so */
		struct pg_cache_stmt *st = pg_cache_stmt_get(c, m + 5 + nl + 1, len - 4 - nl - 1);
		if (!st)
			return -1;
		if (nl == 0)
			cc->unnamed_unsent = false;
		if (st->session && c->server)
			c->server->tainted = true;
		if (st->session && !cc->off)
			(void)pg_cache_track(cc, &st->info, true);
		int rc = pg_cache_name_put(cc, 'S', name, st);
		pg_cache_stmt_unref(c->pool->cache, st);
		return rc;
	}
	case 'B': {
		cc->mid_request = true;
		size_t have = evbuffer_get_length(in);
		size_t peek = have < total ? have : total;
		if (peek > 2053)
			peek = 2053; /* what the relay reads of a Bind: its names */
		const unsigned char *m = pg_cache_pull(in, peek);
		const char *portal, *stmt;
		if (!m)
			return -1;
		if (!pg_wire_bind_names(m, peek, &portal, &stmt))
			return 0;
		struct pg_cache_stmt *st = pg_cache_name_get(cc, 'S', stmt);
		if (!*portal)
			pg_cache_wkey_free(&cc->portal_wk);
		if (!*portal && st && st->info.nwkeys && have >= total && total <= PG_CACHE_MAX_REQUEST) {
			/* a write that may be followed by key value: its parameters are here */
			size_t off = (size_t)((const unsigned char *)stmt - m) + strlen(stmt) + 1;
			const unsigned char *whole = pg_cache_pull(in, total); /* (m may move) */
			if (!whole || !pg_wire_bind_names(whole, total, &portal, &stmt))
				return -1;
			const unsigned char *rest = whole + off;
			struct pg_cache_binds b;
			pg_cache_binds_of(&b, st, rest, (size_t)(whole + total - rest));
			if (pg_cache_wkey_make(&st->info, &b, &cc->portal_wk) < 0)
				return -1; /* recorded when its Execute comes */
		}
		if (!*stmt && st && cc->unnamed_unsent && c->server) {
			/* the client's unnamed statement was answered from the cache: prepare it */
			struct pg_server *s = c->server;
			struct evbuffer *to = bufferevent_get_output(s->bev);
			if (pg_cache_put_parse(to, "", st->body, st->body_len) != 0 ||
			    pg_expect_push(s, PG_EXP_PARSE_DROP, NULL) != 0)
				return -1;
			s->unsynced++;
			cc->unnamed_unsent = false;
		}
		if (!st) {
			pg_cache_name_del(cc, 'P', portal);
			return 0; /* its Execute will count as unknown */
		}
		return pg_cache_name_put(cc, 'P', portal, st);
	}
	case 'E': {
		cc->mid_request = true;
		const unsigned char *m = pg_cache_pull(in, total);
		if (!m)
			return -1;
		const char *portal = (const char *)m + 5;
		if (strnlen(portal, len - 4) >= len - 4)
			return 0;
		struct pg_cache_stmt *st = pg_cache_name_get(cc, 'P', portal);
		if (!st) {
			cc->w_all = true; /* a portal tether did not see bound: it may write anything */
			return 0;
		}
		return pg_cache_track_binds(cc, &st->info, false, NULL, !*portal ? &cc->portal_wk : NULL);
	}
	case 'C': {
		cc->mid_request = true;
		const unsigned char *m = pg_cache_pull(in, total);
		if (m && len >= 6 && m[total - 1] == 0 && (m[5] == 'S' || m[5] == 'P'))
			pg_cache_name_del(cc, (char)m[5], (const char *)m + 6);
		return 0;
	}
	case 'S':
		cc->mid_request = false;
		cc->decided = false;
		cc->head_learnt = false;
		/* the unnamed portal ends with the request (outside a transaction block) */
		return 0;
	case 'F':
		cc->w_all = true; /* a function call by OID */
		return 0;
	case 'D':
	case 'H':
		cc->mid_request = true;
		return 0;
	default:
		return 0;
	}
}

void pg_cache_request_done(struct pg_client *c)
{
	struct pg_cache_client *cc = c->cache;
	if (!cc)
		return;
	cc->decided = false;
	cc->head_learnt = false;
	cc->mid_request = false;
	if (cc->fill) {
		cache_fill_abandon(cache_instance(), cc->fill);
		cc->fill = NULL;
	}
	if (cc->cap) {
		evbuffer_free(cc->cap);
		cc->cap = NULL;
	}
}

/* DEALLOCATE ALL / DISCARD ALL in a Query: forget the client's names too. */
static void pg_cache_query_effects(struct pg_cache_client *cc, const struct cache_sql_info *info)
{
	const char *n = info->normalized ? info->normalized : "";
	if (strncmp(n, "deallocate all", 14) == 0 || strncmp(n, "deallocate prepare all", 22) == 0 ||
	    strncmp(n, "discard all", 11) == 0)
		pg_cache_names_clear(cc, 'S');
}

/* --- lookups --- */

struct pg_cache_req {
	bool simple;
	char shape[8];  /* message types of an extended request, e.g. "PBDES" */
	uint8_t describe;
	const unsigned char *bind_rest; /* Bind after the statement name */
	size_t bind_rest_len;
	struct pg_cache_stmt *st;       /* extended: the statement (a reference) */
	struct cache_sql_info info;     /* simple: the analysis */
	size_t len;
	size_t parse_off, parse_len;
	bool named_parse;
};

static void pg_cache_req_deinit(struct pg_cache_client *cc, struct pg_cache_req *r)
{
	if (r->simple)
		cache_sql_info_deinit(&r->info);
	pg_cache_stmt_unref(cc->c->pool->cache, r->st);
}

/* Recognises P? B D? E S with the unnamed portal at the head of the input. 1: it is one
 * (r filled); 0: not a lookup candidate; 2: wait for more bytes. */
static int pg_cache_scan_extended(struct pg_cache_client *cc, struct evbuffer *in, struct pg_cache_req *r)
{
	struct pg_client *c = cc->c;
	size_t have = evbuffer_get_length(in), off = 0;
	size_t n = 0;
	const char *bind_stmt = NULL;
	const unsigned char *m = NULL;
	size_t nshape = 0;
	while (off + 5 <= have) {
		unsigned char h[5];
		uint32_t len = pg_wire_header_at(in, off, h);
		if (len < 4)
			return 0;
		size_t end = off + (size_t)len + 1;
		if (end > PG_CACHE_MAX_REQUEST)
			return 0;
		if (nshape >= 5 || !strchr("PBDES", h[0]))
			return 0;
		if (end > have)
			return 2;
		r->shape[nshape++] = (char)h[0];
		if (h[0] == 'S') {
			n = end;
			break;
		}
		off = end;
	}
	if (!n)
		return 2;
	r->shape[nshape] = 0;
	if (strcmp(r->shape, "PBDES") != 0 && strcmp(r->shape, "PBES") != 0 && strcmp(r->shape, "BDES") != 0 &&
	    strcmp(r->shape, "BES") != 0)
		return 0;
	m = pg_cache_pull(in, n);
	if (!m)
		return 0;
	r->len = n;
	const char *parse_name = NULL;
	const unsigned char *parse_body = NULL;
	size_t parse_len = 0;
	for (off = 0; off < n;) {
		uint8_t t = m[off];
		uint32_t len = pg_wire_u32(m + off + 1);
		const unsigned char *b = m + off + 5;
		size_t bl = len - 4;
		if (t == 'P') {
			size_t nl = strnlen((const char *)b, bl);
			if (nl >= bl)
				return 0;
			parse_name = (const char *)b;
			parse_body = b + nl + 1;
			parse_len = bl - nl - 1;
			r->parse_off = off;
			r->parse_len = len + 1;
			r->named_parse = nl > 0;
		} else if (t == 'B') {
			size_t pl = strnlen((const char *)b, bl);
			if (pl != 0 || pl + 1 >= bl)
				return 0; /* a named portal may be fetched from later: not cached */
			bind_stmt = (const char *)b + 1;
			size_t sl = strnlen(bind_stmt, bl - 1);
			if (sl + 1 >= bl)
				return 0;
			r->bind_rest = b + 1 + sl + 1;
			r->bind_rest_len = bl - 1 - sl - 1;
		} else if (t == 'D') {
			if (bl < 2 || b[bl - 1] != 0)
				return 0;
			r->describe = b[0];
			if (b[0] == 'P' ? b[1] != 0 : b[0] != 'S' || !bind_stmt || strcmp((const char *)b + 1, bind_stmt) != 0)
				return 0;
		} else if (t == 'E') {
			if (bl != 5 || b[0] != 0 || pg_wire_u32(b + 1) != 0)
				return 0; /* only "all rows of the unnamed portal" */
		}
		off += (size_t)len + 1;
	}
	if (parse_name && strcmp(parse_name, bind_stmt) != 0)
		return 0;
	/* a named Parse that no server will see is safe only where tether tracks names itself */
	if (r->named_parse && !(c->pool->db->pool_mode == PG_POOL_TRANSACTION && c->pg->conf->max_prepared_statements > 0))
		return 0;
	r->st = parse_body ? pg_cache_stmt_get(c, parse_body, parse_len) : NULL;
	if (!parse_body) {
		if (!*bind_stmt)
			return 0; /* the unnamed statement from an earlier request: not followed */
		r->st = pg_cache_name_get(cc, 'S', bind_stmt);
		if (!r->st)
			return 0;
		r->st->refs++;
	}
	return r->st ? 1 : 0;
}

static void pg_cache_lookup_start(struct pg_cache_client *cc);

static void pg_cache_resume(struct pg_cache_client *cc)
{
	struct pg_client *c = cc->c;
	struct pg_cache_pool *cp = c->pool->cache;
	struct pg_cache_stmt *st = cc->req_st;
	cc->busy = false;
	cc->decided = true;
	cc->req_st = NULL;
	/* relayed first, released after: the Parse being forwarded finds its analysis (the client
	 * may be closed meanwhile; c itself is freed only after this callback, cc at once) */
	pg_client_process(c);
	pg_cache_stmt_unref(cp, st);
}

static void pg_cache_on_result(void *arg, const struct cache_result *res)
{
	struct pg_cache_client *cc = arg;
	struct pg_client *c = cc->c;
	struct cache *cache = cache_instance();
	cc->lookup = NULL;
	struct pg_catalog *cat = c->pool->cache->cat;
	if (res->kind != CACHE_BYPASS && pg_catalog_epoch(cat, res->epoch)) {
		/* the schema may have changed since the dependencies were learnt */
		if (res->kind == CACHE_MISS)
			cache_fill_abandon(cache, res->fill);
		cache_recount(cache, res->kind, CACHE_BYPASS_SCHEMA_CHANGED);
		cache_rule_result(cache, cc->rule, CACHE_BYPASS);
		pg_cache_resume(cc);
		return;
	}
	cache_rule_result(cache, cc->rule, res->kind);
	if (res->kind == CACHE_HIT) {
		struct evbuffer *in = pg_client_input(c), *out = pg_client_output(c);
		const unsigned char *m = pg_cache_pull(in, cc->req_len);
		if (m && m[0] == 'P' && cc->req_st) {
			/* what the client prepared must be there for its next Bind: a named statement
			 * is tether's to prepare on any server (pg_extended), the unnamed one is sent
			 * before a Bind that uses it without a Parse */
			const char *name = (const char *)m + 5;
			if ((*name && pg_extended_remember(c, m, cc->parse_len) != 0) ||
			    pg_cache_name_put(cc, 'S', name, cc->req_st) != 0) {
				pg_client_fail(c, "53200", "out of memory");
				return;
			}
			if (!*name)
				cc->unnamed_unsent = true;
		}
		evbuffer_drain(in, cc->req_len);
		c->pool->queries++;
		if (evbuffer_add(out, res->data, res->len) != 0 || pgproto_put_ready_for_query(out, 'I') != 0) {
			pg_client_fail(c, "53200", "out of memory");
			return;
		}
		c->pool->bytes_out += res->len + 6;
		cc->busy = false;
		cc->decided = false;
		cc->head_learnt = false;
		cc->mid_request = false;
		pg_cache_stmt_unref(c->pool->cache, cc->req_st);
		cc->req_st = NULL;
		pg_client_process(c);
		return;
	}
	if (res->kind == CACHE_MISS) {
		cc->fill = res->fill;
		cc->fill_ttl = cc->ttl;
		cc->fill_rule = cc->rule;
		cc->cap_bad = cc->cap_big = false;
		cc->cap = evbuffer_new();
		if (!cc->cap) {
			cache_fill_abandon(cache, cc->fill);
			cc->fill = NULL;
		}
	}
	pg_cache_resume(cc);
}

static void pg_cache_on_learnt(void *arg, bool ok)
{
	struct pg_cache_client *cc = arg;
	cc->learn = NULL;
	if (!ok) {
		cache_count_bypass(cache_instance(), cc->rule, CACHE_BYPASS_DEPENDENCIES);
		pg_cache_resume(cc);
		return;
	}
	cc->attempt++;
	pg_cache_lookup_start(cc);
}

/* The head request's dependencies, then its lookup. */
static void pg_cache_lookup_start(struct pg_cache_client *cc)
{
	struct pg_client *c = cc->c;
	struct cache *cache = cache_instance();
	const struct cache_sql_info *info = &cc->req_st->info;
	const char *sp = pg_params_get(&c->gucs, "search_path");
	struct pg_catalog *cat = c->pool->cache->cat;
	char **tables = NULL, **missing = NULL;
	size_t nt = 0, nm = 0, cap = 0, nk = 0;
	bool unknown = false;
	struct cache_keyed keyed[PG_CACHE_MAX_RKEYS];
	missing = calloc(info->reads.n ? info->reads.n : 1, sizeof(char *));
	if (!missing)
		goto bypass;
	for (size_t i = 0; i < info->reads.n; i++) {
		const struct pg_catalog_deps *d = pg_catalog_get(cat, sp, info->reads.v[i]);
		if (!d) {
			missing[nm++] = info->reads.v[i];
			continue;
		}
		if (!d->found || d->nocache || d->calls)
			unknown = true; /* not a table, a sequence, or a view calling functions */
		if (nk < PG_CACHE_MAX_RKEYS && pg_cache_read_keyed(cc, info, info->reads.v[i], d, &keyed[nk])) {
			nk++; /* only the rows with these key values */
			continue;
		}
		for (size_t k = 0; k < d->nreads; k++) {
			if (nt == cap) {
				cap = cap ? cap * 2 : 8;
				char **t = realloc(tables, cap * sizeof(*t));
				if (!t)
					goto bypass;
				tables = t;
			}
			tables[nt++] = d->reads[k];
		}
	}
	if (unknown)
		goto bypass;
	if (nm) {
		if (cc->attempt > 0)
			goto bypass; /* learnt and still not known: the schema moves under us */
		cc->learn = pg_catalog_learn(cat, sp, missing, nm, pg_cache_on_learnt, cc);
		free(missing);
		free(tables);
		if (!cc->learn) {
			cache_count_bypass(cache, cc->rule, CACHE_BYPASS_DEPENDENCIES);
			pg_cache_resume(cc);
		}
		return;
	}
	free(missing);
	cc->lookup = cache_lookup_keyed(cache, c->pool->name, (const char *const *)tables, nt, keyed, nk, cc->key,
					pg_cache_on_result, cc);
	free(tables);
	if (!cc->lookup)
		pg_cache_resume(cc);
	return;
bypass:
	free(missing);
	free(tables);
	cache_count_bypass(cache, cc->rule, CACHE_BYPASS_DEPENDENCIES);
	pg_cache_resume(cc);
}

/* The session settings that change result bytes, as one digest: the pool's reported values with
 * the client's own where it asked for some, then its other settings. Recomputed only when either
 * set changes (their generations say so): the filtering and sorting is most of a key's cost. */
static int pg_cache_settings_digest(struct pg_cache_client *cc)
{
	struct pg_client *c = cc->c;
	const struct pg_params *pp = &c->pool->params;
	if (cc->settings_valid && cc->settings_gen[0] == c->gucs.gen && cc->settings_gen[1] == pp->gen)
		return 0;
	struct cache_key k;
	if (cache_key_init(&k) != 0)
		return -1;
	for (uint32_t i = 0; i < pp->n; i++) {
		const char *v = pg_guc_expected(c, pp->v[i].name);
		cache_key_setting(&k, pp->v[i].name, v ? v : pp->v[i].value);
	}
	for (uint32_t i = 0; i < c->gucs.n; i++)
		if (!pg_params_get(pp, c->gucs.v[i].name))
			cache_key_setting(&k, c->gucs.v[i].name, c->gucs.v[i].value);
	int rc = cache_key_final(&k, cc->settings_digest);
	cache_key_deinit(&k);
	cc->settings_valid = rc == 0;
	cc->settings_gen[0] = c->gucs.gen;
	cc->settings_gen[1] = pp->gen;
	return rc;
}

static int pg_cache_key(struct pg_cache_client *cc, const struct pg_cache_req *r, const struct cache_sql_info *info)
{
	struct pg_client *c = cc->c;
	struct cache_key k;
	if (cache_key_init(&k) != 0)
		return -1;
	cache_key_database(&k, c->pool->name);
	cache_key_user(&k, c->user);
	cache_key_statement(&k, info->normalized);
	if (r->simple) {
		cache_key_protocol(&k, "simple");
	} else {
		char tag[16];
		snprintf(tag, sizeof(tag), "ext:%s:%c", r->shape, r->describe ? r->describe : '-');
		cache_key_protocol(&k, tag);
		cache_key_field(&k, "types", r->st->body + r->st->types_off, r->st->body_len - r->st->types_off);
		cache_key_field(&k, "bind", r->bind_rest, r->bind_rest_len);
	}
	if (pg_cache_settings_digest(cc) != 0) {
		cache_key_deinit(&k);
		return -1;
	}
	cache_key_field(&k, "settings", cc->settings_digest, CACHE_KEY_LEN);
	int rc = cache_key_final(&k, cc->key);
	cache_key_deinit(&k);
	return rc;
}

static void pg_cache_on_head_learnt(void *arg, bool ok)
{
	struct pg_cache_client *cc = arg;
	cc->learn = NULL;
	cc->busy = false;
	cc->head_learnt = true; /* known now, or the statement counts as writing everything */
	pg_client_process(cc->c);
}

/* Asks the catalog about the tables of the head request's statements that are not known yet,
 * before the request is relayed (so a view calling a writing function is known to write).
 * 1: asking (busy); 0: nothing to ask, or asked already. */
static int pg_cache_learn_head(struct pg_cache_client *cc, const struct cache_sql_info *const *infos, size_t n)
{
	struct pg_client *c = cc->c;
	if (cc->head_learnt)
		return 0;
	const char *sp = pg_params_get(&c->gucs, "search_path");
	struct pg_catalog *cat = c->pool->cache->cat;
	char *missing[64];
	size_t nm = 0;
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < infos[k]->reads.n && nm < 64; i++)
			if (!pg_catalog_get(cat, sp, infos[k]->reads.v[i]))
				missing[nm++] = infos[k]->reads.v[i];
	if (!nm)
		return 0;
	cc->learn = pg_catalog_learn(cat, sp, missing, nm, pg_cache_on_head_learnt, cc);
	if (!cc->learn)
		return 0; /* unreachable: the statement will count as writing everything */
	cc->busy = true;
	return 1;
}

/* The statements a buffered extended request (up to its Sync, a Flush, or what has come) runs
 * or prepares, with a reference each: its Parses and the named statements its Binds use. 2: a
 * request that small must come whole first; otherwise how many were found. */
static int pg_cache_request_stmts(struct pg_cache_client *cc, struct evbuffer *in, struct pg_cache_stmt **out,
				  size_t max)
{
	size_t have = evbuffer_get_length(in), off = 0, n = 0;
	while (off + 5 <= have && n < max) {
		unsigned char h[5];
		uint32_t len = pg_wire_header_at(in, off, h);
		size_t end = off + (size_t)len + 1;
		if (len < 4 || h[0] == 'S' || h[0] == 'H' || end > PG_CACHE_MAX_REQUEST)
			break;
		if (end > have) {
			for (size_t i = 0; i < n; i++)
				pg_cache_stmt_unref(cc->c->pool->cache, out[i]);
			return -2; /* the rest of this request is on its way */
		}
		if (h[0] == 'P' || h[0] == 'B') {
			const unsigned char *m = pg_cache_pull(in, end);
			if (!m)
				break;
			const char *name = (const char *)m + off + 5;
			size_t nl = strnlen(name, len - 4);
			struct pg_cache_stmt *st = NULL;
			if (h[0] == 'P' && nl < len - 4) {
				st = pg_cache_stmt_get(cc->c, m + off + 5 + nl + 1, len - 4 - nl - 1);
			} else if (h[0] == 'B' && nl < len - 4) {
				const char *stmt = name + nl + 1;
				if (strnlen(stmt, len - 4 - nl - 1) < len - 4 - nl - 1 &&
				    (st = pg_cache_name_get(cc, 'S', stmt)) != NULL)
					st->refs++;
			}
			if (st)
				out[n++] = st;
		}
		off = end;
	}
	return (int)n;
}

int pg_cache_before(struct pg_client *c)
{
	struct pg_cache_client *cc = pg_cache_client(c);
	struct cache *cache = cache_instance();
	if (!cc || !cache)
		return 0;
	if (cc->decided || cc->mid_request || cc->fill)
		return 0;
	struct evbuffer *in = pg_client_input(c);
	if (evbuffer_get_length(in) < 5)
		return 0;
	unsigned char h[5];
	evbuffer_copyout(in, h, 5);
	uint32_t len = pg_wire_u32(h + 1);
	if (len < 4 || len > c->pg->conf->max_packet_size)
		return 0; /* the relay refuses it */
	struct pg_cache_req r = { 0 };
	const struct cache_sql_info *info;
	if (h[0] == 'Q') {
		if (len > PG_CACHE_MAX_QUERY)
			return 0; /* pg_cache_forward counts it as a write of everything */
		if (evbuffer_get_length(in) < (size_t)len + 1)
			return 1; /* read it whole: it must be analysed */
		const unsigned char *m = pg_cache_pull(in, (size_t)len + 1);
		if (!m || pg_cache_analyze(c, (const char *)m + 5, len - 4, &r.info) != 0) {
			pg_client_fail(c, "53200", "out of memory");
			return 1;
		}
		r.simple = true;
		r.len = (size_t)len + 1;
		info = &r.info;
		if (pg_cache_learn_head(cc, &info, 1) == 1) {
			cache_sql_info_deinit(&r.info);
			return 1; /* pg_cache_on_head_learnt goes on */
		}
		cc->decided = true; /* tracked here, not again when forwarded */
		cc->head_session = pg_cache_changes_session(info);
		pg_cache_query_effects(cc, info);
		if (pg_cache_track(cc, info, cc->head_session) != 0) {
			cache_sql_info_deinit(&r.info);
			pg_client_fail(c, "53200", "out of memory");
			return 1;
		}
	} else if (h[0] == 'P' || h[0] == 'B') {
		struct pg_cache_stmt *sts[16];
		int ns = pg_cache_request_stmts(cc, in, sts, 16);
		if (ns == -2)
			return 1;
		const struct cache_sql_info *infos[16] = { 0 };
		for (int i = 0; i < ns; i++)
			infos[i] = &sts[i]->info;
		int lrc = pg_cache_learn_head(cc, infos, (size_t)ns);
		/* (the references are held across the scan, so a new text is analysed once) */
		int rc = lrc == 1 ? 0 : pg_cache_scan_extended(cc, in, &r);
		for (int i = 0; i < ns; i++)
			pg_cache_stmt_unref(c->pool->cache, sts[i]);
		if (lrc == 1) {
			pg_cache_req_deinit(cc, &r);
			return 1;
		}
		if (rc == 2)
			return 1;
		if (rc == 0) {
			pg_cache_req_deinit(cc, &r);
			return 0;
		}
		info = &r.st->info;
		cc->decided = true;
		if (r.st->session && pg_cache_track(cc, info, true) != 0) {
			pg_cache_req_deinit(cc, &r);
			pg_client_fail(c, "53200", "out of memory");
			return 1;
		}
	} else {
		return 0;
	}
	int64_t ttl = 0;
	int rule = r.simple ? cache_rule_match(cache, c->pool->name, info, &ttl)
			    : cache_rule_match_memo(cache, c->pool->name, info, &ttl, &r.st->rule);
	if (rule == CACHE_RULE_NONE) {
		pg_cache_req_deinit(cc, &r);
		return 0;
	}
	struct pg_server *s = c->server;
	enum cache_bypass_reason why = CACHE_BYPASS_NREASONS;
	if (c->in_tx)
		why = CACHE_BYPASS_IN_TRANSACTION;
	else if (cc->off)
		why = CACHE_BYPASS_SESSION;
	else if (s && (s->pending_sync || s->exp_n || s->unsynced || s->held))
		why = CACHE_BYPASS_PIPELINED;
	else if (!info->reads_complete)
		why = CACHE_BYPASS_DEPENDENCIES;
	if (why == CACHE_BYPASS_NREASONS && pg_cache_key(cc, &r, info) != 0)
		why = CACHE_BYPASS_SHUTDOWN; /* out of memory: relay as usual */
	if (why != CACHE_BYPASS_NREASONS) {
		cache_count_bypass(cache, rule, why);
		pg_cache_req_deinit(cc, &r);
		return 0;
	}
	/* the lookup runs; the request stays in the input until it answers */
	if (r.simple) {
		pg_cache_rkeys_eval(cc, info, NULL);
	} else {
		struct pg_cache_binds b;
		pg_cache_binds_of(&b, r.st, r.bind_rest, r.bind_rest_len);
		pg_cache_rkeys_eval(cc, info, &b);
	}
	cc->rule = rule;
	cc->ttl = ttl;
	cc->attempt = 0;
	cc->req_len = r.len;
	cc->parse_len = r.parse_len;
	if (r.simple) {
		/* keep the analysis as a statement of its own for the lookup */
		struct pg_cache_stmt *st = calloc(1, sizeof(*st));
		if (!st) {
			pg_cache_req_deinit(cc, &r);
			return 0;
		}
		st->refs = 1;
		st->own = true;
		st->info = r.info;
		r.simple = false; /* moved */
		cc->req_st = st;
	} else {
		cc->req_st = r.st;
		r.st = NULL;
	}
	cc->busy = true;
	pg_cache_lookup_start(cc);
	return 1;
}

bool pg_cache_busy(const struct pg_client *c)
{
	return c->cache && c->cache->busy;
}
