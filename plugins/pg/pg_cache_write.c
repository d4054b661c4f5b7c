/* What a client's statements write, collected per transaction, resolved through the catalog
 * and invalidated before the ReadyForQuery that ends the transaction is relayed; and the end of
 * a client's cache state. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "pg_cache_internal.h"
#include "pg_catalog.h"
#include "pg_internal.h"

/* --- writes --- */

/* "schema.table" rather than "table" (a dot outside double quotes). */
static bool pg_cache_qualified(const char *name)
{
	bool quoted = false;
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '.' && !quoted)
			return true;
	}
	return false;
}

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
	pg_cache_wkeys_clear(cc);
	cc->w_all = false;
}

/* What running `info` may change. */
int pg_cache_track(struct pg_cache_client *cc, const struct cache_sql_info *info, bool session)
{
	return pg_cache_track_binds(cc, info, session, NULL, NULL);
}

int pg_cache_track_binds(struct pg_cache_client *cc, const struct cache_sql_info *info, bool session,
			 const struct pg_cache_binds *b, struct pg_cache_wkey *wk)
{
	bool keyed = false;
	if (session && !cc->off) {
		cc->off = true;
		log_debug(&cc->c->log, "cache: the session changed settings or made temporary objects; its reads "
				       "are no longer cached");
	}
	if (info->invalidate_all || info->ddl) {
		cc->w_all = true; /* DDL: every tether must forget what it learnt of the schema */
		return 0;
	}
	/* a view may call a function that writes: what it reads was learnt before it was relayed
	 * (pg_cache_before), or the catalog could not say */
	struct pg_client *c = cc->c;
	const char *sp = pg_params_get(&c->gucs, "search_path");
	for (size_t i = 0; i < info->reads.n && !cc->w_all; i++) {
		const struct pg_catalog_deps *d = pg_catalog_peek(c->pool->cache->cat, sp, info->reads.v[i]);
		if (!d || d->calls)
			cc->w_all = true;
	}
	if (wk && wk->n && cc->nwk < PG_CACHE_MAX_WKEYS && !cc->w_all) {
		if (pg_cache_wkey_add(cc, wk) != 0)
			return -1;
		keyed = true;
	} else if (!wk && !cc->w_all && pg_cache_track_keyed(cc, info, b, &keyed) != 0) {
		return -1;
	}
	for (size_t i = 0; !keyed && i < info->writes.n; i++)
		if (pg_cache_write_add(cc, info->writes.v[i]) != 0)
			return -1;
	return 0;
}


/* --- commits --- */

static void pg_cache_release_held(struct pg_cache_client *cc)
{
	struct pg_server *s = cc->held;
	cc->held = NULL;
	if (s)
		pg_server_unhold(s);
}

static void pg_cache_on_applied(void *arg, bool applied)
{
	struct pg_cache_client *cc = arg;
	cc->flush_wait = NULL;
	if (!applied)
		log_warn(&cc->c->log, "cache: Redis did not come back within cache.write_wait; acknowledging the "
				      "write with its invalidation still queued (other tethers are bounded by the TTL)");
	pg_cache_release_held(cc);
}

static void pg_cache_on_invalidated(void *arg, enum cache_inval_outcome outcome)
{
	struct pg_cache_client *cc = arg;
	cc->inval = NULL;
	if (outcome == CACHE_INVAL_QUEUED) {
		log_info(&cc->c->log, "cache: Redis is unreachable; the invalidation is queued (this tether's reads "
				      "bypass the cache until it lands); the commit waits up to cache.write_wait");
		cc->flush_wait = cc->held ? cache_wait_applied(cache_instance(), pg_cache_on_applied, cc) : NULL;
		if (cc->flush_wait)
			return;
	}
	pg_cache_release_held(cc);
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
	/* after SET search_path, set_config or a temporary table (on this client, or by any client
	 * on the server it wrote through) an unqualified name may mean another table */
	bool unsure = cc->off || (cc->held && cc->held->tainted);
	for (size_t i = 0; unsure && !all && i < cc->nw; i++)
		if (!pg_cache_qualified(cc->w[i]))
			all = true;
	for (size_t i = 0; unsure && !all && i < cc->nwk; i++)
		if (!pg_cache_qualified(cc->wk[i].table))
			all = true;
	struct cache_keyed *keyed = NULL;
	size_t nk = 0;
	if (!all) {
		missing = calloc(cc->nw + cc->nwk ? cc->nw + cc->nwk : 1, sizeof(char *));
		keyed = calloc(cc->nwk ? cc->nwk : 1, sizeof(*keyed));
		all = !missing || !keyed;
	}
	/* a keyed write counts by key only while the catalog still says that column is the
	 * table's key and nothing else follows from writing it; else as the whole table */
	for (size_t i = 0; !all && i < cc->nwk + cc->nw; i++) {
		const struct pg_cache_wkey *w = i < cc->nwk ? &cc->wk[i] : NULL;
		const char *name = w ? w->table : cc->w[i - cc->nwk];
		const struct pg_catalog_deps *d = pg_catalog_get(cat, sp, name);
		if (!d) {
			missing[nm++] = (char *)name;
			continue;
		}
		if (d->write_all) {
			all = true;
			break;
		}
		int64_t v;
		if (w && d->found && d->nwrites == 1 && pg_cache_wkey_value(w, d->key_column, &v)) {
			keyed[nk++] = (struct cache_keyed){ d->writes[0], v, v, false };
			continue;
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
			free(keyed);
			return 1;
		}
		all = true; /* the catalog cannot say: more, never less */
	}
	free(missing);
	if (all)
		pg_catalog_forget(cat);
	if (all || nt || nk)
		cc->inval = all ? cache_invalidate(cache, c->pool->name, NULL, 0, pg_cache_on_invalidated, cc)
				: cache_invalidate_keyed(cache, c->pool->name, (const char *const *)tables, nt, keyed,
							 nk, pg_cache_on_invalidated, cc);
	free(tables);
	free(keyed);
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
		/* a server whose session another client changed may have read other tables */
		if (status == 'I' && !cc->cap_bad && cc->cap && !s->tainted) {
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
	if (status != 'I' || (!cc->w_all && cc->nw == 0 && cc->nwk == 0) || cc->inval || cc->wlearn || cc->flush_wait)
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

bool pg_cache_has_writes(const struct pg_client *c)
{
	return c->cache && (c->cache->w_all || c->cache->nw > 0 || c->cache->nwk > 0);
}

static void pg_cache_on_orphan(void *arg, enum cache_inval_outcome outcome)
{
}

void pg_cache_orphan_done(struct pg_pool *p)
{
	struct cache *cache = cache_instance();
	struct cache_inval *iv = cache ? cache_invalidate(cache, p->name, NULL, 0, pg_cache_on_orphan, NULL) : NULL;
	if (iv)
		cache_invalidate_cancel(iv); /* it still happens; nobody waits for it */
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
	if (cc->flush_wait)
		cache_wait_cancel(cc->flush_wait);
	if (cc->inval)
		cache_invalidate_cancel(cc->inval);
	else if (!cc->wlearn && (cc->w_all || cc->nw || cc->nwk))
		pg_cache_orphan_done(c->pool); /* a write whose end the client did not wait for */
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
	pg_cache_wkey_free(&cc->portal_wk);
	free(cc->w);
	free(cc->wk);
	free(cc->names);
	free(cc);
	c->cache = NULL;
}

