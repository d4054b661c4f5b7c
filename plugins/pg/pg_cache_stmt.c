/* The pooler cache's statement analyses, shared per pool by Parse body, and each client's names
 * for its statements and portals (pg_cache_internal.h). */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "pg_cache_internal.h"
#include "pg_catalog.h"
#include "pg_internal.h"

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
bool pg_cache_changes_session(const struct cache_sql_info *info)
{
	const char *n = info->normalized ? info->normalized : "";
	return info->creates_temp || strncmp(n, "set ", 4) == 0 || strncmp(n, "reset ", 6) == 0 ||
	       strncmp(n, "discard ", 8) == 0 || strstr(n, "set_config") != NULL ||
	       strncmp(n, "load ", 5) == 0;
}

int pg_cache_analyze(const struct pg_client *c, const char *sql, size_t len, struct cache_sql_info *info)
{
	struct cache_sql_opts opts = cache_sql_options(cache_instance());
	const char *scs = pg_guc_expected(c, "standard_conforming_strings");
	opts.backslash_strings = scs && strcmp(scs, "off") == 0;
	return cache_sql_analyze(sql, len, &opts, info);
}

/* Finds or analyses the statement of a Parse body (after the name). */
struct pg_cache_stmt *pg_cache_stmt_get(struct pg_client *c, const unsigned char *body, size_t len)
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

void pg_cache_stmt_unref(struct pg_cache_pool *cp, struct pg_cache_stmt *st)
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

struct pg_cache_client *pg_cache_client(struct pg_client *c)
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

struct pg_cache_stmt *pg_cache_name_get(struct pg_cache_client *cc, char kind, const char *name)
{
	if (!*name)
		return kind == 'S' ? cc->unnamed : cc->portal;
	struct pg_cache_name **pp = pg_cache_name_slot(cc, kind, name);
	return pp ? (*pp)->st : NULL;
}

void pg_cache_name_del(struct pg_cache_client *cc, char kind, const char *name)
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

void pg_cache_names_clear(struct pg_cache_client *cc, char kind)
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
int pg_cache_name_put(struct pg_cache_client *cc, char kind, const char *name, struct pg_cache_stmt *st)
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

