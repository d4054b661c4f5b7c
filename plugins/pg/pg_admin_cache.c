/* The read cache in the admin database: SHOW CACHE (per-rule lookups, hits, misses, bypasses and
 * hit ratio, the totals, Redis and circuit state) and CACHE PURGE [db [schema.table]], answered
 * once the invalidation is in Redis (or queued while Redis is unreachable). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "../cache/cache.h"
#include "pg_admin.h"
#include "pg_internal.h"
#include "pgproto.h"

/* A purge in flight for an admin client (found again by id: the client may be gone). */
struct pg_admin_purge {
	struct pg_admin_purge *next;
	struct pg *pg;
	uint64_t client_id;
	struct cache_inval *iv;
	bool done;
	enum cache_inval_outcome outcome;
};

static struct pg_client *pg_admin_cache_client(struct pg *pg, uint64_t id)
{
	for (struct pg_client *c = pg->clients; c; c = c->all_next)
		if (c->id == id)
			return c;
	return NULL;
}

static void pg_admin_cache_purged(void *arg, enum cache_inval_outcome outcome)
{
	struct pg_admin_purge *p = arg;
	p->iv = NULL;
	p->done = true;
	p->outcome = outcome;
	struct pg_client *c = pg_admin_cache_client(p->pg, p->client_id);
	if (c && c->wait_timer) {
		struct timeval now = { 0, 0 };
		evtimer_add(c->wait_timer, &now); /* runs the CACHE PURGE again, which answers */
	}
}

static struct pg_admin_purge **pg_admin_cache_find(struct pg *pg, uint64_t id)
{
	for (struct pg_admin_purge **pp = &pg->purges; *pp; pp = &(*pp)->next)
		if ((*pp)->client_id == id)
			return pp;
	return NULL;
}

int pg_admin_cache_purge(struct pg_client *c, const char *db, const char *table, struct evbuffer *res)
{
	struct cache *cache = cache_instance();
	if (!cache)
		return pgproto_put_error(res, "ERROR", "55000", "no cache is configured (no cache section)") == 0 ? 0 : -1;
	struct pg_admin_purge **pp = pg_admin_cache_find(c->pg, c->id);
	if (pp && (*pp)->done) {
		struct pg_admin_purge *p = *pp;
		*pp = p->next;
		char tag[64];
		snprintf(tag, sizeof(tag), "CACHE PURGE %s", p->outcome == CACHE_INVAL_DURABLE ? "DURABLE" : "QUEUED");
		free(p);
		return pgproto_put_command_complete(res, tag) == 0 ? 0 : -1;
	}
	if (pp)
		return 1; /* still running */
	char msg[300];
	if (db && !pg_pool_find(c->pg, db)) {
		snprintf(msg, sizeof(msg), "no database \"%.100s\" in tether's config", db);
		return pgproto_put_error(res, "ERROR", "3D000", msg) == 0 ? 0 : -1;
	}
	if (table && !strchr(table, '.')) {
		snprintf(msg, sizeof(msg), "name the table with its schema, as the cache does (public.%.100s)", table);
		return pgproto_put_error(res, "ERROR", "42601", msg) == 0 ? 0 : -1;
	}
	struct pg_admin_purge *p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	p->pg = c->pg;
	p->client_id = c->id;
	const char *tables[1] = { table };
	p->iv = !db ? cache_invalidate_everything(cache, pg_admin_cache_purged, p)
		    : cache_invalidate(cache, db, table ? tables : NULL, table ? 1 : 0, pg_admin_cache_purged, p);
	if (!p->iv) {
		free(p);
		return pgproto_put_command_complete(res, "CACHE PURGE QUEUED") == 0 ? 0 : -1;
	}
	log_info(&c->log, "admin: CACHE PURGE %s%s%s (user %s)", db ? db : "everything", table ? " " : "",
		 table ? table : "", c->user);
	p->next = c->pg->purges;
	c->pg->purges = p;
	return 1;
}

void pg_admin_cache_forget(struct pg *pg)
{
	while (pg->purges) {
		struct pg_admin_purge *p = pg->purges;
		pg->purges = p->next;
		if (p->iv)
			cache_invalidate_cancel(p->iv);
		free(p);
	}
}

int pg_admin_show_cache(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "database", "match", "fingerprint", "ttl_ms",   "matches",
					    "hits",     "misses", "bypasses",    "hit_ratio", NULL };
	pg_admin_table_begin(t, cols, "tttiiiiit");
	struct cache *c = cache_instance();
	if (!c)
		return 0;
	size_t n = cache_rule_count(c);
	struct cache_stats s;
	cache_get_stats(c, &s);
	uint64_t bypasses = 0;
	for (int i = 0; i < CACHE_BYPASS_NREASONS; i++)
		bypasses += s.bypasses[i];
	for (size_t i = 0; i <= n + 1; i++) {
		struct cache_rule_info ri;
		if (i < n)
			cache_rule_get(c, i, &ri);
		else if (i == n)
			cache_rule_hint(c, &ri);
		else
			ri = (struct cache_rule_info){ .hits = s.hits, .misses = s.misses, .bypasses = bypasses };
		uint64_t lookups = ri.hits + ri.misses + ri.bypasses;
		char ratio[32];
		snprintf(ratio, sizeof(ratio), "%.3f", lookups ? (double)ri.hits / (double)lookups : 0.0);
		pg_admin_table_text(t, i < n ? ri.database : i == n ? "(hint)" : "(total)");
		pg_admin_table_text(t, i < n ? ri.match : NULL);
		pg_admin_table_text(t, i < n ? ri.fingerprint : NULL);
		if (i <= n)
			pg_admin_table_int(t, ri.ttl_ms);
		else
			pg_admin_table_text(t, NULL);
		pg_admin_table_int(t, (int64_t)ri.matches);
		pg_admin_table_int(t, (int64_t)ri.hits);
		pg_admin_table_int(t, (int64_t)ri.misses);
		pg_admin_table_int(t, (int64_t)ri.bypasses);
		pg_admin_table_text(t, ratio);
		pg_admin_table_end_row(t);
	}
	return 0;
}
