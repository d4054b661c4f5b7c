/* Invalidation for the read cache: version bumps to fresh random values (never INCR, so a
 * value never repeats), and the in-memory queue of invalidations that could not reach Redis,
 * applied before any read is served from Redis again. */
#include "cache_internal.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

struct cache_inval {
	struct cache *c;
	cache_inval_fn cb;
	void *arg;
	bool cancelled, failed, global;
	char *db;
	char **tables; /* NULL with ntables 0: the database epoch */
	size_t ntables, outstanding;
	enum cache_inval_outcome outcome;
	struct event *ev;
	struct cache_inval *prev, *next;
};

/* --- invalidation and the pending queue --- */

static struct cache_pending_db *cache_pending_db(struct cache *c, const char *db)
{
	for (struct cache_pending_db *p = c->pending; p; p = p->next)
		if (strcmp(p->db, db) == 0)
			return p;
	struct cache_pending_db *p = calloc(1, sizeof(*p));
	if (!p || !(p->db = strdup(db))) {
		free(p);
		return NULL;
	}
	p->next = c->pending;
	c->pending = p;
	return p;
}

static void cache_pending_free_list(struct cache_pending_db *p)
{
	while (p) {
		struct cache_pending_db *n = p->next;
		for (size_t i = 0; i < p->n; i++)
			free(p->tables[i]);
		free(p->tables);
		free(p->db);
		free(p);
		p = n;
	}
}

static void cache_flush_schedule(struct cache *c, int64_t ms)
{
	if (c->destroying || evtimer_pending(c->flush_timer, NULL))
		return;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	evtimer_add(c->flush_timer, &tv);
}

void cache_invalidate_all_pending(struct cache *c)
{
	c->queue_gen++;
	c->pending_global = true;
	cache_pending_free_list(c->pending);
	c->pending = NULL;
	c->pending_tables = 0;
	cache_flush_schedule(c, 0);
}

/* Remembers an invalidation that did not reach Redis: db NULL = everything everywhere;
 * tables NULL = the database's epoch. Never fails: without memory it records "everything". */
static void cache_pending_add(struct cache *c, const char *db, char *const *tables, size_t n)
{
	c->queue_gen++;
	if (c->pending_global)
		return;
	struct cache_pending_db *p = db ? cache_pending_db(c, db) : NULL;
	if (!p || c->pending_tables + n > (size_t)c->conf->max_pending) {
		if (db && p && c->pending_tables + n > (size_t)c->conf->max_pending)
			log_warn(&c->log, "more than %lld invalidations queued: recording \"everything\"",
				 (long long)c->conf->max_pending);
		cache_invalidate_all_pending(c);
		return;
	}
	if (!tables) {
		c->pending_tables -= p->n;
		for (size_t i = 0; i < p->n; i++)
			free(p->tables[i]);
		p->n = 0;
		p->all = true;
	}
	for (size_t i = 0; tables && !p->all && i < n; i++) {
		if (p->n == p->cap) {
			size_t cap = p->cap ? p->cap * 2 : 8;
			char **nt = realloc(p->tables, cap * sizeof(*nt));
			if (!nt) {
				cache_invalidate_all_pending(c);
				return;
			}
			p->tables = nt;
			p->cap = cap;
		}
		if (!(p->tables[p->n] = strdup(tables[i]))) {
			cache_invalidate_all_pending(c);
			return;
		}
		p->n++;
		c->pending_tables++;
	}
	cache_flush_schedule(c, 0);
}

static void cache_flush_on_set(void *arg, struct redisReply *reply, const char *err)
{
	struct cache *c = arg;
	if (c->destroying)
		return;
	if (!reply || reply->type != REDIS_REPLY_STATUS)
		c->batch_failed = true;
	if (--c->batch_outstanding > 0)
		return;
	struct cache_pending_db *batch = c->batch;
	bool global = c->batch_global;
	c->batch = NULL;
	c->batch_global = false;
	c->flushing = false;
	if (c->batch_failed) {
		/* Put it back (the order of bumps does not matter) and try again later. */
		if (global)
			cache_invalidate_all_pending(c);
		for (struct cache_pending_db *p = batch; p; p = p->next)
			cache_pending_add(c, p->db, p->all ? NULL : p->tables, p->all ? 0 : p->n);
		cache_pending_free_list(batch);
		evtimer_del(c->flush_timer);
		cache_flush_schedule(c, 500);
		return;
	}
	c->stats.pending_applied += c->batch_count;
	log_info(&c->log, "applied %zu queued invalidation(s) to redis", c->batch_count);
	cache_pending_free_list(batch);
	if (c->pending || c->pending_global)
		cache_flush_schedule(c, 0);
	else
		cache_wait_release(c, true);
}

/* --- waiting for the queue --- */

struct cache_flush_wait {
	struct cache *c;
	struct cache_flush_wait *prev, *next;
	struct event *timer;
	cache_flush_fn cb;
	void *arg;
};

static void cache_wait_free(struct cache_flush_wait *w)
{
	struct cache *c = w->c;
	if (w->prev)
		w->prev->next = w->next;
	else
		c->flush_waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	event_free(w->timer);
	free(w);
}

void cache_wait_release(struct cache *c, bool applied)
{
	while (c->flush_waits) {
		struct cache_flush_wait *w = c->flush_waits;
		cache_flush_fn cb = w->cb;
		void *arg = w->arg;
		cache_wait_free(w);
		cb(arg, applied);
	}
}

static void cache_wait_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cache_flush_wait *w = arg;
	cache_flush_fn cb = w->cb;
	void *cbarg = w->arg;
	cache_wait_free(w);
	cb(cbarg, false);
}

struct cache_flush_wait *cache_wait_applied(struct cache *c, cache_flush_fn cb, void *arg)
{
	if ((!c->pending && !c->pending_global && !c->flushing) || c->conf->write_wait <= 0 || c->destroying)
		return NULL;
	struct cache_flush_wait *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->c = c;
	w->cb = cb;
	w->arg = arg;
	w->timer = evtimer_new(c->base, cache_wait_on_timer, w);
	if (!w->timer) {
		free(w);
		return NULL;
	}
	int64_t ms = c->conf->write_wait;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	evtimer_add(w->timer, &tv);
	w->next = c->flush_waits;
	if (w->next)
		w->next->prev = w;
	c->flush_waits = w;
	return w;
}

void cache_wait_cancel(struct cache_flush_wait *w)
{
	cache_wait_free(w);
}

static void cache_flush_send(struct cache *c, const char *key)
{
	char v[33];
	cache_store_random_version(v);
	c->batch_count++;
	if (key && cache_store_set(c, key, v, false, cache_flush_on_set, c) == 0)
		c->batch_outstanding++;
	else
		c->batch_failed = true;
}

static void cache_flush_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cache *c = arg;
	if (c->flushing || (!c->pending && !c->pending_global))
		return;
	if (!cache_redis_usable(c->redis))
		return; /* cache_inval_on_ready calls again */
	c->flushing = true;
	c->batch = c->pending;
	c->batch_global = c->pending_global;
	c->pending = NULL;
	c->pending_global = false;
	c->pending_tables = 0;
	c->batch_failed = false;
	c->batch_outstanding = 1; /* held until every command is sent */
	c->batch_count = 0;
	if (c->batch_global) {
		char *k = cache_store_version_key(c, NULL, NULL);
		cache_flush_send(c, k);
		free(k);
	}
	for (struct cache_pending_db *p = c->batch; p; p = p->next) {
		for (size_t i = 0; i < (p->all ? 1 : p->n); i++) {
			char *k = cache_store_version_key(c, p->db, p->all ? NULL : p->tables[i]);
			cache_flush_send(c, k);
			free(k);
			if (p->all)
				continue;
			k = cache_store_value_key(c, p->db, p->tables[i], CACHE_VKEY_KEYED, 0);
			cache_flush_send(c, k);
			free(k);
		}
	}
	struct redisReply ok = { .type = REDIS_REPLY_STATUS };
	cache_flush_on_set(c, &ok, NULL); /* releases the hold */
}

void cache_inval_on_ready(void *arg)
{
	struct cache *c = arg;
	if (cache_redis_take_restarted(c->redis)) {
		/* A snapshot or a lagging replica can bring back old versions with the entries
		 * stored under them; after any outage another tether may still hold invalidations
		 * it could not record: invalidate everything before serving reads. */
		log_warn(&c->log, "redis reconnected: invalidating everything before serving reads");
		cache_invalidate_all_pending(c);
	}
	if (c->pending || c->pending_global)
		log_info(&c->log, "redis is back: applying queued invalidations before serving reads");
	cache_flush_schedule(c, 0);
}

static void cache_inval_free(struct cache_inval *iv)
{
	struct cache *c = iv->c;
	if (iv->prev)
		iv->prev->next = iv->next;
	else if (c->invals == iv)
		c->invals = iv->next;
	if (iv->next)
		iv->next->prev = iv->prev;
	for (size_t i = 0; i < iv->ntables; i++)
		free(iv->tables[i]);
	free(iv->tables);
	free(iv->db);
	if (iv->ev)
		event_free(iv->ev);
	free(iv);
}

static void cache_inval_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct cache_inval *iv = arg;
	if (!iv->cancelled && !iv->c->destroying && iv->cb)
		iv->cb(iv->arg, iv->outcome);
	cache_inval_free(iv);
}

static void cache_inval_finish(struct cache_inval *iv)
{
	struct cache *c = iv->c;
	if (iv->failed) {
		iv->outcome = CACHE_INVAL_QUEUED;
		c->stats.invalidations_queued++;
		if (iv->global)
			cache_invalidate_all_pending(c);
		else
			cache_pending_add(c, iv->db, iv->ntables ? iv->tables : NULL, iv->ntables);
	} else {
		iv->outcome = CACHE_INVAL_DURABLE;
		c->stats.invalidations_durable++;
	}
	event_active(iv->ev, EV_TIMEOUT, 0);
}

static void cache_inval_on_set(void *arg, struct redisReply *reply, const char *err)
{
	struct cache_inval *iv = arg;
	if (iv->c->destroying) {
		if (--iv->outstanding == 0)
			cache_inval_free(iv);
		return;
	}
	if (!reply || reply->type != REDIS_REPLY_STATUS)
		iv->failed = true;
	if (--iv->outstanding == 0)
		cache_inval_finish(iv);
}

/* Sends SET key <fresh random> (PX px when px > 0) for an invalidation. */
static void cache_inval_send(struct cache_inval *iv, char *key, int64_t px)
{
	char v[33];
	cache_store_random_version(v);
	if (key && cache_store_set_px(iv->c, key, v, false, px, cache_inval_on_set, iv) == 0)
		iv->outstanding++;
	else
		iv->failed = true;
	free(key);
}

static struct cache_inval *cache_inval_start(struct cache *c, const char *db, const char *const *tables, size_t n,
					     const struct cache_keyed *keyed, size_t nk, cache_inval_fn cb, void *arg)
{
	struct cache_inval *iv = calloc(1, sizeof(*iv));
	if (!iv)
		goto oom;
	iv->c = c;
	iv->cb = cb;
	iv->arg = arg;
	iv->global = db == NULL;
	iv->db = cache_store_strdup(db);
	iv->ev = event_new(c->base, -1, 0, cache_inval_on_event, iv);
	if (!tables)
		n = 0;
	if (!db)
		nk = 0;
	/* (a keyed write's table is kept whole too: what a queued invalidation bumps) */
	iv->tables = n + nk ? calloc(n + nk, sizeof(*iv->tables)) : NULL;
	iv->next = c->invals;
	if (c->invals)
		c->invals->prev = iv;
	c->invals = iv;
	if ((db && !iv->db) || !iv->ev || (n + nk && !iv->tables)) {
		cache_inval_free(iv);
		goto oom;
	}
	for (size_t i = 0; i < n + nk; i++) {
		if (!(iv->tables[iv->ntables++] = strdup(i < n ? tables[i] : keyed[i - n].table))) {
			cache_inval_free(iv);
			goto oom;
		}
	}
	if (!cache_redis_usable(c->redis)) {
		iv->failed = true;
		cache_inval_finish(iv);
		return iv;
	}
	iv->outstanding = 1; /* held while sending */
	if (iv->global || iv->ntables == 0) {
		cache_inval_send(iv, cache_store_version_key(c, iv->global ? NULL : db, NULL), 0);
	} else {
		/* a whole table: what unkeyed reads and keyed reads depend on; a key value: the
		 * table for unkeyed reads, the value and its bucket for keyed ones */
		int64_t px = cache_store_value_ttl(c);
		for (size_t i = 0; i < n; i++) {
			cache_inval_send(iv, cache_store_version_key(c, db, tables[i]), 0);
			cache_inval_send(iv, cache_store_value_key(c, db, tables[i], CACHE_VKEY_KEYED, 0), 0);
		}
		c->stats.keyed_writes += nk;
		for (size_t i = 0; i < nk; i++) {
			cache_inval_send(iv, cache_store_version_key(c, db, keyed[i].table), 0);
			cache_inval_send(iv, cache_store_value_key(c, db, keyed[i].table, "=", keyed[i].lo), px);
			cache_inval_send(iv, cache_store_value_key(c, db, keyed[i].table, "~",
								   cache_store_bucket(keyed[i].lo)),
					 px);
		}
	}
	if (--iv->outstanding == 0)
		cache_inval_finish(iv);
	return iv;
oom:
	log_error(&c->log, "out of memory recording an invalidation: invalidating everything");
	cache_invalidate_all_pending(c);
	return NULL;
}

struct cache_inval *cache_invalidate(struct cache *c, const char *database, const char *const *tables,
				     size_t ntables, cache_inval_fn cb, void *arg)
{
	return cache_inval_start(c, database, tables, tables ? ntables : 0, NULL, 0, cb, arg);
}

struct cache_inval *cache_invalidate_keyed(struct cache *c, const char *database, const char *const *tables,
					   size_t ntables, const struct cache_keyed *keyed, size_t nkeyed,
					   cache_inval_fn cb, void *arg)
{
	if (!tables)
		ntables = 0;
	if (ntables + nkeyed == 0)
		return cache_inval_start(c, database, NULL, 0, NULL, 0, cb, arg);
	return cache_inval_start(c, database, tables, ntables, keyed, nkeyed, cb, arg);
}

struct cache_inval *cache_invalidate_everything(struct cache *c, cache_inval_fn cb, void *arg)
{
	return cache_inval_start(c, NULL, NULL, 0, NULL, 0, cb, arg);
}

void cache_invalidate_cancel(struct cache_inval *iv)
{
	if (iv)
		iv->cancelled = true;
}

int cache_inval_init(struct cache *c)
{
	c->flush_timer = evtimer_new(c->base, cache_flush_on_timer, c);
	return c->flush_timer ? 0 : -1;
}

void cache_inval_deinit(struct cache *c)
{
	while (c->invals)
		cache_inval_free(c->invals);
	while (c->flush_waits)
		cache_wait_free(c->flush_waits); /* dropped without callbacks, like lookups */
	cache_pending_free_list(c->pending);
	cache_pending_free_list(c->batch);
	c->pending = c->batch = NULL;
	if (c->flush_timer)
		event_free(c->flush_timer);
	c->flush_timer = NULL;
}
