/* The read cache inside the pooler (pg_cache.h): deciding per request, replaying hits, capturing
 * misses, tracking writes per client and invalidating them before the commit is acknowledged. */
#include "pg_cache.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "../cache/cache.h"
#include "pg_catalog.h"
#include "pg_internal.h"

/* Requests larger than this are relayed without a lookup; a Query larger than this is not
 * analysed either, and counts as a write of everything. */
#define PG_CACHE_MAX_REQUEST (256 * 1024)
#define PG_CACHE_MAX_QUERY (1024 * 1024)

/* One analysed statement text (Parse body after the name: text, NUL, parameter types), shared
 * by the clients of a pool. */
struct pg_cache_stmt {
	struct pg_cache_stmt *next;
	uint64_t hash;
	uint32_t refs;
	bool session; /* SET / RESET / set_config / temporary objects */
	bool own;     /* a simple Query's analysis, not in the registry */
	struct cache_sql_info info;
	size_t body_len;
	size_t types_off; /* offset of the int16 count of parameter types in body */
	unsigned char body[];
};

struct pg_cache_pool {
	struct pg_catalog *cat;
	struct pg_cache_stmt **b;
	size_t nb, n;
};

/* A client's statement ('S' + name) or portal ('P' + name). */
struct pg_cache_name {
	struct pg_cache_name *next;
	struct pg_cache_stmt *st;
	char key[];
};

struct pg_cache_client {
	struct pg_client *c;
	struct pg_cache_name **names;
	size_t nb, n;
	struct pg_cache_stmt *unnamed, *portal; /* the unnamed statement and portal */
	bool off;                               /* no more caching for this session */
	bool mid_request;                       /* extended messages forwarded since Sync */
	bool decided;                           /* the head request was looked at */
	bool busy;
	/* the head request's lookup */
	int rule;
	int64_t ttl;
	int attempt;
	unsigned char key[CACHE_KEY_LEN];
	size_t req_len;
	size_t parse_len; /* the request's Parse (remembered on a hit) */
	bool unnamed_unsent; /* the unnamed statement was answered from the cache: no server has it */
	struct pg_cache_stmt *req_st;
	struct cache_lookup *lookup;
	struct pg_catalog_req *learn;
	/* a miss being filled from the server's answer */
	struct cache_fill *fill;
	int64_t fill_ttl;
	int fill_rule;
	struct evbuffer *cap;
	bool cap_bad, cap_big;
	/* writes since the last ReadyForQuery outside a transaction */
	char **w;
	size_t nw, wcap;
	bool w_all;
	struct cache_inval *inval;
	struct pg_catalog_req *wlearn;
	bool wlearnt;
	struct pg_server *held;
};

/* --- pool state --- */

int pg_cache_pool_init(struct pg_pool *p)
{
	if (!cache_instance())
		return 0;
	struct pg_cache_pool *cp = calloc(1, sizeof(*cp));
	if (!cp)
		return -1;
	cp->cat = pg_catalog_create(p);
	if (!cp->cat) {
		free(cp);
		return -1;
	}
	p->cache = cp;
	return 0;
}

static void pg_cache_stmt_unref(struct pg_cache_pool *cp, struct pg_cache_stmt *st);

void pg_cache_pool_deinit(struct pg_pool *p)
{
	struct pg_cache_pool *cp = p->cache;
	if (!cp)
		return;
	pg_catalog_destroy(cp->cat);
	for (size_t i = 0; i < cp->nb; i++) {
		while (cp->b[i]) {
			struct pg_cache_stmt *st = cp->b[i];
			cp->b[i] = st->next;
			cache_sql_info_deinit(&st->info);
			free(st);
		}
	}
	free(cp->b);
	free(cp);
	p->cache = NULL;
}

struct pg_catalog *pg_cache_pool_catalog(const struct pg_pool *p)
{
	return p->cache ? p->cache->cat : NULL;
}

static uint64_t pg_cache_hash(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

/* Statements that change the session in ways a cache key cannot follow. */
static bool pg_cache_changes_session(const struct cache_sql_info *info)
{
	const char *n = info->normalized ? info->normalized : "";
	return info->creates_temp || strncmp(n, "set ", 4) == 0 || strncmp(n, "reset ", 6) == 0 ||
	       strncmp(n, "discard ", 8) == 0 || strstr(n, "set_config") != NULL ||
	       strncmp(n, "load ", 5) == 0;
}

static int pg_cache_analyze(const struct pg_client *c, const char *sql, size_t len, struct cache_sql_info *info)
{
	struct cache_sql_opts opts = cache_sql_options(cache_instance());
	const char *scs = pg_guc_expected(c, "standard_conforming_strings");
	opts.backslash_strings = scs && strcmp(scs, "off") == 0;
	return cache_sql_analyze(sql, len, &opts, info);
}

/* Finds or analyses the statement of a Parse body (after the name). */
static struct pg_cache_stmt *pg_cache_stmt_get(struct pg_client *c, const unsigned char *body, size_t len)
{
	struct pg_cache_pool *cp = c->pool->cache;
	size_t tl = strnlen((const char *)body, len);
	if (tl == len)
		return NULL;
	uint64_t h = pg_cache_hash(body, len);
	if (cp->nb) {
		for (struct pg_cache_stmt *st = cp->b[h % cp->nb]; st; st = st->next) {
			if (st->hash == h && st->body_len == len && memcmp(st->body, body, len) == 0) {
				st->refs++;
				return st;
			}
		}
	}
	if (cp->n + 1 > cp->nb * 2) {
		size_t nb = cp->nb ? cp->nb * 2 : 64;
		struct pg_cache_stmt **b = calloc(nb, sizeof(*b));
		if (!b)
			return NULL;
		for (size_t i = 0; i < cp->nb; i++) {
			while (cp->b[i]) {
				struct pg_cache_stmt *st = cp->b[i];
				cp->b[i] = st->next;
				st->next = b[st->hash % nb];
				b[st->hash % nb] = st;
			}
		}
		free(cp->b);
		cp->b = b;
		cp->nb = nb;
	}
	struct pg_cache_stmt *st = calloc(1, sizeof(*st) + len);
	if (!st)
		return NULL;
	memcpy(st->body, body, len);
	st->body_len = len;
	st->types_off = tl + 1;
	st->hash = h;
	st->refs = 1;
	if (pg_cache_analyze(c, (const char *)body, tl, &st->info) != 0) {
		free(st);
		return NULL;
	}
	st->session = pg_cache_changes_session(&st->info);
	st->next = cp->b[h % cp->nb];
	cp->b[h % cp->nb] = st;
	cp->n++;
	return st;
}

static void pg_cache_stmt_unref(struct pg_cache_pool *cp, struct pg_cache_stmt *st)
{
	if (!st || --st->refs > 0)
		return;
	if (st->own) {
		cache_sql_info_deinit(&st->info);
		free(st);
		return;
	}
	for (struct pg_cache_stmt **pp = &cp->b[st->hash % cp->nb]; *pp; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
	cp->n--;
	cache_sql_info_deinit(&st->info);
	free(st);
}

/* --- a client's names --- */

static struct pg_cache_client *pg_cache_client(struct pg_client *c)
{
	if (!c->cache && c->pool && c->pool->cache) {
		c->cache = calloc(1, sizeof(*c->cache));
		if (c->cache) {
			c->cache->c = c;
			c->cache->rule = CACHE_RULE_NONE;
		}
	}
	return c->cache;
}

static struct pg_cache_name **pg_cache_name_slot(struct pg_cache_client *cc, char kind, const char *name)
{
	if (!cc->nb)
		return NULL;
	size_t nl = strlen(name);
	uint64_t h = pg_cache_hash(name, nl) ^ (uint64_t)(unsigned char)kind;
	for (struct pg_cache_name **pp = &cc->names[h % cc->nb]; *pp; pp = &(*pp)->next)
		if ((*pp)->key[0] == kind && strcmp((*pp)->key + 1, name) == 0)
			return pp;
	return NULL;
}

static struct pg_cache_stmt *pg_cache_name_get(struct pg_cache_client *cc, char kind, const char *name)
{
	if (!*name)
		return kind == 'S' ? cc->unnamed : cc->portal;
	struct pg_cache_name **pp = pg_cache_name_slot(cc, kind, name);
	return pp ? (*pp)->st : NULL;
}

static void pg_cache_name_del(struct pg_cache_client *cc, char kind, const char *name)
{
	struct pg_cache_pool *cp = cc->c->pool->cache;
	if (!*name) {
		struct pg_cache_stmt **slot = kind == 'S' ? &cc->unnamed : &cc->portal;
		pg_cache_stmt_unref(cp, *slot);
		*slot = NULL;
		return;
	}
	struct pg_cache_name **pp = pg_cache_name_slot(cc, kind, name);
	if (!pp)
		return;
	struct pg_cache_name *n = *pp;
	*pp = n->next;
	pg_cache_stmt_unref(cp, n->st);
	free(n);
	cc->n--;
}

static void pg_cache_names_clear(struct pg_cache_client *cc, char kind)
{
	struct pg_cache_pool *cp = cc->c->pool->cache;
	for (size_t i = 0; i < cc->nb; i++) {
		for (struct pg_cache_name **pp = &cc->names[i]; *pp;) {
			struct pg_cache_name *n = *pp;
			if (kind && n->key[0] != kind) {
				pp = &n->next;
				continue;
			}
			*pp = n->next;
			pg_cache_stmt_unref(cp, n->st);
			free(n);
			cc->n--;
		}
	}
}

/* Binds kind+name to st (a reference is taken). */
static int pg_cache_name_put(struct pg_cache_client *cc, char kind, const char *name, struct pg_cache_stmt *st)
{
	st->refs++;
	pg_cache_name_del(cc, kind, name);
	if (!*name) {
		*(kind == 'S' ? &cc->unnamed : &cc->portal) = st;
		return 0;
	}
	if (cc->n + 1 > cc->nb * 2) {
		size_t nb = cc->nb ? cc->nb * 2 : 8;
		struct pg_cache_name **b = calloc(nb, sizeof(*b));
		if (!b)
			goto fail;
		for (size_t i = 0; i < cc->nb; i++) {
			while (cc->names[i]) {
				struct pg_cache_name *n = cc->names[i];
				cc->names[i] = n->next;
				size_t h = pg_cache_hash(n->key + 1, strlen(n->key + 1)) ^ (uint64_t)(unsigned char)n->key[0];
				n->next = b[h % nb];
				b[h % nb] = n;
			}
		}
		free(cc->names);
		cc->names = b;
		cc->nb = nb;
	}
	size_t nl = strlen(name);
	struct pg_cache_name *n = malloc(sizeof(*n) + nl + 2);
	if (!n)
		goto fail;
	n->key[0] = kind;
	memcpy(n->key + 1, name, nl + 1);
	n->st = st;
	uint64_t h = pg_cache_hash(name, nl) ^ (uint64_t)(unsigned char)kind;
	n->next = cc->names[h % cc->nb];
	cc->names[h % cc->nb] = n;
	cc->n++;
	return 0;
fail:
	pg_cache_stmt_unref(cc->c->pool->cache, st);
	return -1;
}

/* --- writes --- */

static int pg_cache_write_add(struct pg_cache_client *cc, const char *table)
{
	for (size_t i = 0; i < cc->nw; i++)
		if (strcmp(cc->w[i], table) == 0)
			return 0;
	if (cc->nw >= 256) {
		cc->w_all = true; /* a transaction writing that many tables: everything is simpler */
		return 0;
	}
	if (cc->nw == cc->wcap) {
		size_t cap = cc->wcap ? cc->wcap * 2 : 4;
		char **w = realloc(cc->w, cap * sizeof(*w));
		if (!w)
			return -1;
		cc->w = w;
		cc->wcap = cap;
	}
	if (!(cc->w[cc->nw] = strdup(table)))
		return -1;
	cc->nw++;
	return 0;
}

static void pg_cache_writes_clear(struct pg_cache_client *cc)
{
	for (size_t i = 0; i < cc->nw; i++)
		free(cc->w[i]);
	cc->nw = 0;
	cc->w_all = false;
}

/* What running `info` may change. */
static int pg_cache_track(struct pg_cache_client *cc, const struct cache_sql_info *info, bool session)
{
	if (session && !cc->off) {
		cc->off = true;
		log_debug(&cc->c->log, "cache: the session changed settings or made temporary objects; its reads "
				       "are no longer cached");
	}
	if (info->invalidate_all || info->ddl) {
		cc->w_all = true; /* DDL: every tether must forget what it learnt of the schema */
		return 0;
	}
	for (size_t i = 0; i < info->writes.n; i++)
		if (pg_cache_write_add(cc, info->writes.v[i]) != 0)
			return -1;
	return 0;
}

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
		int rc = pg_cache_track(cc, &info, pg_cache_changes_session(&info));
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
		return pg_cache_track(cc, &st->info, false);
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
		r->st = pg_cache_name_get(cc, 'S', bind_stmt);
		if (!r->st || !*bind_stmt)
			return 0; /* the unnamed statement from an earlier request: not followed */
		r->st->refs++;
	}
	return r->st ? 1 : 0;
}

static void pg_cache_lookup_start(struct pg_cache_client *cc);

static void pg_cache_resume(struct pg_cache_client *cc)
{
	cc->busy = false;
	cc->decided = true;
	pg_cache_stmt_unref(cc->c->pool->cache, cc->req_st);
	cc->req_st = NULL;
	pg_client_process(cc->c);
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
	size_t nt = 0, nm = 0, cap = 0;
	bool unknown = false;
	missing = calloc(info->reads.n ? info->reads.n : 1, sizeof(char *));
	if (!missing)
		goto bypass;
	for (size_t i = 0; i < info->reads.n; i++) {
		const struct pg_catalog_deps *d = pg_catalog_get(cat, sp, info->reads.v[i]);
		if (!d) {
			missing[nm++] = info->reads.v[i];
			continue;
		}
		if (!d->found)
			unknown = true;
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
	cc->lookup = cache_lookup(cache, c->pool->name, (const char *const *)tables, nt, cc->key, pg_cache_on_result, cc);
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
	const struct pg_params *pp = &c->pool->params;
	for (uint32_t i = 0; i < pp->n; i++) {
		const char *v = pg_guc_expected(c, pp->v[i].name);
		cache_key_setting(&k, pp->v[i].name, v ? v : pp->v[i].value);
	}
	for (uint32_t i = 0; i < c->gucs.n; i++)
		if (!pg_params_get(pp, c->gucs.v[i].name))
			cache_key_setting(&k, c->gucs.v[i].name, c->gucs.v[i].value);
	int rc = cache_key_final(&k, cc->key);
	cache_key_deinit(&k);
	return rc;
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
		cc->decided = true; /* tracked here, not again when forwarded */
		pg_cache_query_effects(cc, info);
		if (pg_cache_track(cc, info, pg_cache_changes_session(info)) != 0) {
			cache_sql_info_deinit(&r.info);
			pg_client_fail(c, "53200", "out of memory");
			return 1;
		}
	} else if (h[0] == 'P' || h[0] == 'B') {
		int rc = pg_cache_scan_extended(cc, in, &r);
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
	int rule = cache_rule_match(cache, c->pool->name, info, &ttl);
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

/* --- a miss's answer --- */

static void pg_cache_cap_add(struct pg_cache_client *cc, const void *data, struct evbuffer *in, size_t n)
{
	if (!cc->cap || cc->cap_bad)
		return;
	if (evbuffer_get_length(cc->cap) + n > cache_max_entry_size(cache_instance())) {
		cc->cap_bad = cc->cap_big = true;
		evbuffer_free(cc->cap);
		cc->cap = NULL;
		return;
	}
	if (data) {
		if (evbuffer_add(cc->cap, data, n) != 0)
			cc->cap_bad = true;
		return;
	}
	size_t at = evbuffer_get_length(cc->cap);
	if (evbuffer_expand(cc->cap, n) != 0) {
		cc->cap_bad = true;
		return;
	}
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(cc->cap, (ev_ssize_t)n, &v, 1) < 1 || v.iov_len < n ||
	    evbuffer_copyout(in, v.iov_base, n) != (ev_ssize_t)n) {
		cc->cap_bad = true;
		return;
	}
	v.iov_len = n;
	if (evbuffer_commit_space(cc->cap, &v, 1) != 0 || evbuffer_get_length(cc->cap) != at + n)
		cc->cap_bad = true;
}

static bool pg_cache_cap_type_ok(uint8_t type)
{
	/* ParseComplete, BindComplete, ParameterDescription, RowDescription, NoData, DataRow,
	 * CommandComplete: anything else (an error, a notice, a setting) is not stored */
	return type && strchr("12tTnDC", type) != NULL;
}

void pg_cache_capture(struct pg_client *c, struct evbuffer *in, size_t n, uint8_t type, bool start)
{
	struct pg_cache_client *cc = c->cache;
	if (!cc || !cc->fill || cc->cap_bad)
		return;
	if (start && !pg_cache_cap_type_ok(type)) {
		cc->cap_bad = true;
		return;
	}
	pg_cache_cap_add(cc, NULL, in, n);
}

void pg_cache_capture_bytes(struct pg_client *c, const void *data, size_t n, uint8_t type)
{
	struct pg_cache_client *cc = c->cache;
	if (!cc || !cc->fill || cc->cap_bad)
		return;
	if (!pg_cache_cap_type_ok(type)) {
		cc->cap_bad = true;
		return;
	}
	pg_cache_cap_add(cc, data, NULL, n);
}

/* --- commits --- */

static void pg_cache_on_invalidated(void *arg, enum cache_inval_outcome outcome)
{
	struct pg_cache_client *cc = arg;
	cc->inval = NULL;
	struct pg_server *s = cc->held;
	cc->held = NULL;
	if (outcome == CACHE_INVAL_QUEUED)
		log_info(&cc->c->log, "cache: Redis is unreachable; the invalidation is queued and this tether's "
				      "reads bypass the cache until it lands");
	if (s)
		pg_server_unhold(s);
}

static int pg_cache_invalidate(struct pg_cache_client *cc);

static void pg_cache_on_wlearnt(void *arg, bool ok)
{
	struct pg_cache_client *cc = arg;
	cc->wlearn = NULL;
	cc->wlearnt = true;
	if (!ok)
		cc->w_all = true;
	if (pg_cache_invalidate(cc) == 0 && cc->held) {
		struct pg_server *s = cc->held;
		cc->held = NULL;
		pg_server_unhold(s);
	}
}

/* Resolves the client's written tables (learning what is missing) and invalidates. 1: an
 * answer is awaited (the ReadyForQuery is relayed when it comes); 0: done, relay it now. */
static int pg_cache_invalidate(struct pg_cache_client *cc)
{
	struct pg_client *c = cc->c;
	struct cache *cache = cache_instance();
	struct pg_catalog *cat = c->pool->cache->cat;
	const char *sp = pg_params_get(&c->gucs, "search_path");
	char **tables = NULL, **missing = NULL;
	size_t nt = 0, nm = 0, cap = 0;
	bool all = cc->w_all;
	if (!all) {
		missing = calloc(cc->nw ? cc->nw : 1, sizeof(char *));
		all = !missing;
	}
	for (size_t i = 0; !all && i < cc->nw; i++) {
		const struct pg_catalog_deps *d = pg_catalog_get(cat, sp, cc->w[i]);
		if (!d) {
			missing[nm++] = cc->w[i];
			continue;
		}
		if (d->write_all) {
			all = true;
			break;
		}
		for (size_t k = 0; k < d->nwrites; k++) {
			if (nt == cap) {
				cap = cap ? cap * 2 : 8;
				char **t = realloc(tables, cap * sizeof(*t));
				if (!t) {
					all = true;
					break;
				}
				tables = t;
			}
			tables[nt++] = d->writes[k];
		}
	}
	if (!all && nm) {
		if (!cc->wlearnt)
			cc->wlearn = pg_catalog_learn(cat, sp, missing, nm, pg_cache_on_wlearnt, cc);
		if (cc->wlearn) {
			free(missing);
			free(tables);
			return 1;
		}
		all = true; /* the catalog cannot say: more, never less */
	}
	free(missing);
	if (all)
		pg_catalog_forget(cat);
	if (all || nt)
		cc->inval = all ? cache_invalidate(cache, c->pool->name, NULL, 0, pg_cache_on_invalidated, cc)
				: cache_invalidate(cache, c->pool->name, (const char *const *)tables, nt,
						   pg_cache_on_invalidated, cc);
	free(tables);
	/* the names are copied by cache_invalidate; later writes accumulate from here (writes of
	 * requests still in flight are kept: they are invalidated again when they end) */
	struct pg_server *s = cc->held;
	if (!s || (s->pending_sync == 0 && s->exp_n == 0))
		pg_cache_writes_clear(cc);
	/* NULL: recorded as pending (fail closed) or nothing to do: relay at once */
	return cc->inval ? 1 : 0;
}

int pg_cache_ready(struct pg_client *c, struct pg_server *s, uint8_t status)
{
	struct pg_cache_client *cc = c->cache;
	struct cache *cache = cache_instance();
	if (!cc || !cache)
		return 0;
	if (cc->fill) {
		if (status == 'I' && !cc->cap_bad && cc->cap) {
			size_t n = evbuffer_get_length(cc->cap);
			const unsigned char *data = evbuffer_pullup(cc->cap, -1);
			if (data || n == 0)
				cache_store(cache, cc->fill, data ? data : (const unsigned char *)"", n, cc->fill_ttl);
			else
				cache_fill_abandon(cache, cc->fill);
		} else {
			if (cc->cap_big)
				cache_count_bypass(cache, cc->fill_rule, CACHE_BYPASS_TOO_LARGE);
			cache_fill_abandon(cache, cc->fill);
		}
		cc->fill = NULL;
		if (cc->cap)
			evbuffer_free(cc->cap);
		cc->cap = NULL;
	}
	if (status != 'I' || (!cc->w_all && cc->nw == 0) || cc->inval || cc->wlearn)
		return 0;
	cc->held = s;
	s->held = true;
	cc->wlearnt = false;
	if (pg_cache_invalidate(cc) == 1)
		return 1;
	cc->held = NULL;
	s->held = false;
	return 0;
}

void pg_cache_client_close(struct pg_client *c)
{
	struct pg_cache_client *cc = c->cache;
	if (!cc)
		return;
	struct cache *cache = cache_instance();
	if (cc->lookup)
		cache_lookup_cancel(cc->lookup);
	if (cc->learn)
		pg_catalog_cancel(cc->learn);
	if (cc->wlearn) {
		/* the commit happened: invalidate everything without waiting for the catalog */
		pg_catalog_cancel(cc->wlearn);
		cc->wlearn = NULL;
		struct cache_inval *iv = cache ? cache_invalidate(cache, c->pool->name, NULL, 0, pg_cache_on_invalidated, cc)
					       : NULL;
		if (iv)
			cache_invalidate_cancel(iv);
	}
	if (cc->inval)
		cache_invalidate_cancel(cc->inval);
	if (cc->held)
		cc->held->held = false;
	if (cc->fill && cache)
		cache_fill_abandon(cache, cc->fill);
	if (cc->cap)
		evbuffer_free(cc->cap);
	struct pg_cache_pool *cp = c->pool->cache;
	pg_cache_names_clear(cc, 0);
	pg_cache_stmt_unref(cp, cc->unnamed);
	pg_cache_stmt_unref(cp, cc->portal);
	pg_cache_stmt_unref(cp, cc->req_st);
	pg_cache_writes_clear(cc);
	free(cc->w);
	free(cc->names);
	free(cc);
	c->cache = NULL;
}
