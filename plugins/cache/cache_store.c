/* The cache's store: versioned lookups (MGET the tables' versions and the epochs, creating
 * missing ones with fresh random values, then GET the entry derived from them), stores under the
 * versions read before the query ran, and single-flight fills. Invalidation is cache_inval.c. */
#include "cache_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>

enum cache_lookup_state { CACHE_L_EVENT, CACHE_L_REDIS, CACHE_L_WAIT };

/* A result shared by the waiters of one fill. */
struct cache_blob {
	size_t refs, len;
	unsigned char data[];
};

struct cache_lookup {
	struct cache *c;
	cache_lookup_fn cb;
	void *arg;
	enum cache_lookup_state state;
	bool cancelled;
	char *db;      /* (db, tables, vkeys and entry_key live in the lookup's own allocation) */
	char **tables; /* sorted, unique */
	size_t ntables;
	unsigned char key[CACHE_KEY_LEN];
	unsigned char entry[CACHE_KEY_LEN];
	char *entry_key; /* set by cache_lookup_entry */
	uint64_t gen;
	uint64_t epoch; /* digest of the epochs read (cache_result.epoch) */
	int phase; /* 0: first MGET; 1: MGET after creating missing versions */
	struct event ev;                  /* deferred delivery */
	struct cache_result res;          /* what the event delivers */
	struct cache_blob *blob;          /* HIT bytes for a waiter */
	struct cache_fill *fill;          /* WAIT: the fill waited on */
	struct cache_lookup *wnext;       /* the fill's waiters */
	struct cache_lookup *prev, *next; /* c->lookups */
	struct cache_spec *spec;          /* the speculative GET in flight, if any */
	char **vkeys;                     /* version keys: global epoch, database epoch, tables, then
					     keyed parts (cache_lookup_keyed) */
	size_t nvkeys;
	size_t expire_from;               /* vkeys from here on expire (values and buckets) */
	bool spec_match;                  /* ... and the versions read lead to its entry */
	unsigned char spec_entry[CACHE_KEY_LEN];
	char *mem[];                      /* the pointer arrays above, then their strings */
};

/* A speculative GET's reply finds its lookup through this (NULL once the lookup no longer
 * wants it, or is gone). */
struct cache_spec {
	struct cache_lookup *l;
};

struct cache_fill {
	struct cache *c;
	unsigned char entry[CACHE_KEY_LEN];
	char *entry_key;
	uint64_t gen;
	bool in_table;
	struct cache_fill *hnext;
	struct cache_fill *prev, *next;
	struct cache_lookup *waiters;
	struct event *timer; /* single_flight_wait */
};

/* --- helpers --- */

char *cache_store_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}


size_t cache_store_version_key_len(const struct cache *c, const char *db, const char *table)
{
	return strlen(c->prefix) + 2 + (db ? strlen(db) + 1 + (table ? strlen(table) : 1) : 1);
}

size_t cache_store_version_key_to(const struct cache *c, const char *db, const char *table, char *out)
{
	/* (by hand: this runs for every key of every lookup, and snprintf cost more than the rest) */
	char *p = out;
	size_t pl = strlen(c->prefix);
	memcpy(p, c->prefix, pl);
	p += pl;
	*p++ = 'v';
	*p++ = ':';
	if (!db) {
		*p++ = '*';
	} else {
		size_t dl = strlen(db), tl = table ? strlen(table) : 1;
		memcpy(p, db, dl);
		p += dl;
		*p++ = ':';
		memcpy(p, table ? table : "*", tl);
		p += tl;
	}
	*p = 0;
	return (size_t)(p - out);
}

char *cache_store_version_key(struct cache *c, const char *db, const char *table)
{
	char *k = malloc(cache_store_version_key_len(c, db, table) + 1);
	if (k)
		cache_store_version_key_to(c, db, table, k);
	return k;
}

/* A fresh 128-bit random version in hex: never equal to any earlier one. */
void cache_store_random_version(char out[33])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		abort(); /* without randomness the invariants cannot hold */
	cache_key_hex(b, sizeof(b), out);
}

static void cache_store_ignore(void *arg, struct redisReply *reply, const char *err)
{
}

int cache_store_set(struct cache *c, const char *key, const char *value, bool nx, cache_redis_fn cb, void *arg)
{
	return cache_store_set_px(c, key, value, nx, 0, cb, arg);
}

int cache_store_set_px(struct cache *c, const char *key, const char *value, bool nx, int64_t px, cache_redis_fn cb,
		       void *arg)
{
	char ms[24];
	snprintf(ms, sizeof(ms), "%lld", (long long)px);
	const char *argv[6] = { "SET", key, value, "PX", ms, "NX" };
	size_t lens[6] = { 3, strlen(key), strlen(value), 2, strlen(ms), 2 };
	if (px <= 0) {
		argv[3] = "NX";
		lens[3] = 2;
		return cache_redis_command(c->redis, cb, arg, nx ? 4 : 3, argv, lens);
	}
	return cache_redis_command(c->redis, cb, arg, nx ? 6 : 5, argv, lens);
}


bool cache_readable(struct cache *c)
{
	return cache_redis_usable(c->redis) && cache_redis_breaker(c->redis) == CACHE_BREAKER_CLOSED &&
	       !c->flushing && !c->pending && !c->pending_global;
}

static enum cache_bypass_reason cache_store_why_unreadable(struct cache *c)
{
	if (c->destroying)
		return CACHE_BYPASS_SHUTDOWN;
	if (cache_redis_breaker(c->redis) != CACHE_BREAKER_CLOSED)
		return CACHE_BYPASS_CIRCUIT_OPEN;
	if (!cache_redis_usable(c->redis))
		return CACHE_BYPASS_REDIS_DOWN;
	return CACHE_BYPASS_PENDING;
}

/* --- lookups --- */

static void cache_blob_unref(struct cache_blob *b)
{
	if (b && --b->refs == 0)
		free(b);
}


static void cache_lookup_unspec(struct cache_lookup *l)
{
	if (l->spec) {
		l->spec->l = NULL; /* its reply is dropped when it comes */
		l->spec = NULL;
		if (!l->spec_match)
			l->c->spec_wasted++;
	}
	l->spec_match = false;
}

static void cache_lookup_free(struct cache_lookup *l)
{
	struct cache *c = l->c;
	cache_lookup_unspec(l);
	if (l->prev)
		l->prev->next = l->next;
	else if (c->lookups == l)
		c->lookups = l->next;
	if (l->next)
		l->next->prev = l->prev;
	cache_blob_unref(l->blob);
	event_del(&l->ev);
	free(l);
}

static void cache_lookup_deliver(struct cache_lookup *l, const struct cache_result *res)
{
	struct cache *c = l->c;
	if (!l->cancelled && !c->destroying) {
		switch (res->kind) {
		case CACHE_HIT: c->stats.hits++; break;
		case CACHE_MISS: c->stats.misses++; break;
		case CACHE_BYPASS: c->stats.bypasses[res->reason]++; break;
		}
		l->cancelled = true; /* no second delivery */
		struct cache_result r = *res;
		r.epoch = res->kind == CACHE_BYPASS ? 0 : l->epoch;
		l->cb(l->arg, &r);
	} else if (res->kind == CACHE_MISS && res->fill) {
		cache_fill_abandon(c, res->fill);
	}
	cache_lookup_free(l);
}

static void cache_lookup_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct cache_lookup *l = arg;
	if (l->blob) {
		l->res.data = l->blob->data;
		l->res.len = l->blob->len;
	}
	cache_lookup_deliver(l, &l->res);
}

/* Delivers from the loop, not from inside the caller. */
static void cache_lookup_defer(struct cache_lookup *l, enum cache_result_kind kind, enum cache_bypass_reason why,
			       struct cache_blob *blob)
{
	l->state = CACHE_L_EVENT;
	l->res = (struct cache_result){ .kind = kind, .reason = why };
	if (blob) {
		blob->refs++;
		l->blob = blob;
	}
	event_active(&l->ev, EV_TIMEOUT, 0);
}

static void cache_lookup_bypass(struct cache_lookup *l, enum cache_bypass_reason why)
{
	struct cache_result res = { .kind = CACHE_BYPASS, .reason = why };
	cache_lookup_deliver(l, &res);
}

static size_t cache_fill_bucket(const unsigned char *entry)
{
	return (size_t)entry[0] % CACHE_FILL_BUCKETS;
}

static struct cache_fill *cache_fill_find(struct cache *c, const unsigned char *entry)
{
	for (struct cache_fill *f = c->fill_table[cache_fill_bucket(entry)]; f; f = f->hnext)
		if (memcmp(f->entry, entry, CACHE_KEY_LEN) == 0)
			return f;
	return NULL;
}

static void cache_fill_unpublish(struct cache_fill *f)
{
	if (!f->in_table)
		return;
	struct cache_fill **pp = &f->c->fill_table[cache_fill_bucket(f->entry)];
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	f->in_table = false;
	evtimer_del(f->timer);
}

/* Every waiter of `f` gets HIT with `blob` (when its lookup saw no queued invalidation since it
 * began) or BYPASS `why`. */
static void cache_fill_release_waiters(struct cache_fill *f, struct cache_blob *blob, enum cache_bypass_reason why)
{
	struct cache *c = f->c;
	while (f->waiters) {
		struct cache_lookup *w = f->waiters;
		f->waiters = w->wnext;
		w->fill = NULL;
		if (blob && w->gen == c->queue_gen && cache_readable(c))
			cache_lookup_defer(w, CACHE_HIT, 0, blob);
		else
			cache_lookup_defer(w, CACHE_BYPASS, blob ? CACHE_BYPASS_INVALIDATED : why, NULL);
	}
}

static void cache_fill_free(struct cache_fill *f)
{
	struct cache *c = f->c;
	cache_fill_unpublish(f);
	if (f->prev)
		f->prev->next = f->next;
	else if (c->fills == f)
		c->fills = f->next;
	if (f->next)
		f->next->prev = f->prev;
	if (f->timer)
		event_free(f->timer);
	free(f->entry_key);
	free(f);
}

static void cache_fill_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cache_fill *f = arg;
	/* The first miss is slow: waiters run the query themselves, and new lookups may start a
	 * fill of their own; this one stays valid for its owner's cache_store. */
	cache_fill_unpublish(f);
	cache_fill_release_waiters(f, NULL, CACHE_BYPASS_WAIT_TIMEOUT);
}

static void cache_lookup_wait(struct cache_lookup *l, struct cache_fill *f)
{
	l->state = CACHE_L_WAIT;
	l->fill = f;
	l->wnext = f->waiters;
	f->waiters = l;
	l->c->stats.single_flight_waits++;
}

static void cache_lookup_miss(struct cache_lookup *l)
{
	struct cache *c = l->c;
	struct cache_fill *f = cache_fill_find(c, l->entry);
	if (f) {
		cache_lookup_wait(l, f);
		return;
	}
	f = calloc(1, sizeof(*f));
	if (f) {
		f->c = c;
		memcpy(f->entry, l->entry, CACHE_KEY_LEN);
		f->entry_key = strdup(l->entry_key);
		f->gen = l->gen;
		f->timer = evtimer_new(c->base, cache_fill_on_timer, f);
	}
	if (!f || !f->entry_key || !f->timer) {
		if (f) {
			free(f->entry_key);
			if (f->timer)
				event_free(f->timer);
			free(f);
		}
		cache_lookup_bypass(l, CACHE_BYPASS_REDIS_ERROR);
		return;
	}
	size_t b = cache_fill_bucket(f->entry);
	f->hnext = c->fill_table[b];
	c->fill_table[b] = f;
	f->in_table = true;
	f->next = c->fills;
	if (c->fills)
		c->fills->prev = f;
	c->fills = f;
	int64_t wait = c->conf->single_flight_wait;
	struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)((wait % 1000) * 1000) };
	evtimer_add(f->timer, &tv);
	struct cache_result res = { .kind = CACHE_MISS, .fill = f };
	cache_lookup_deliver(l, &res);
}

static void cache_lookup_on_get(void *arg, struct redisReply *reply, const char *err)
{
	struct cache_lookup *l = arg;
	struct cache *c = l->c;
	if (l->cancelled || c->destroying) {
		cache_lookup_free(l);
		return;
	}
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		cache_lookup_bypass(l, CACHE_BYPASS_REDIS_ERROR);
		return;
	}
	if (l->gen != c->queue_gen || !cache_readable(c)) {
		cache_lookup_bypass(l, CACHE_BYPASS_INVALIDATED);
		return;
	}
	if (reply->type == REDIS_REPLY_STRING) {
		struct cache_result res = { .kind = CACHE_HIT, .data = (const unsigned char *)reply->str,
					    .len = reply->len };
		cache_lookup_deliver(l, &res);
		return;
	}
	cache_lookup_miss(l);
}

static void cache_lookup_on_mget(void *arg, struct redisReply *reply, const char *err);
static int cache_lookup_mget(struct cache_lookup *l);
static struct cache_predict *cache_predict_slot(struct cache *c, const unsigned char *key);

/* The entry digest: SHA-256 over the statement key and every (version key, version) pair. */
static int cache_lookup_entry(struct cache_lookup *l, struct redisReply *reply, const char *const *keys)
{
	/* FNV-1a over the two epochs: what cache_result.epoch reports */
	uint64_t ep = 1469598103934665603ULL;
	for (size_t i = 0; i < 2 && i < reply->elements; i++) {
		for (size_t k = 0; k < reply->element[i]->len; k++)
			ep = (ep ^ (unsigned char)reply->element[i]->str[k]) * 1099511628211ULL;
		ep = (ep ^ 0xff) * 1099511628211ULL;
	}
	l->epoch = ep ? ep : 1;
	size_t need = 14 + CACHE_KEY_LEN;
	for (size_t i = 0; i < reply->elements; i++)
		need += 8 + strlen(keys[i]) + reply->element[i]->len;
	unsigned char stack[1024], *buf = need <= sizeof(stack) ? stack : malloc(need), *p = buf;
	if (!buf)
		return -1;
	memcpy(p, "tether-entry-1", 14);
	memcpy(p + 14, l->key, CACHE_KEY_LEN);
	p += 14 + CACHE_KEY_LEN;
	for (size_t i = 0; i < reply->elements; i++) {
		struct redisReply *e = reply->element[i];
		size_t kl = strlen(keys[i]), vl = e->len;
		unsigned char b[8] = { (unsigned char)(kl >> 24), (unsigned char)(kl >> 16), (unsigned char)(kl >> 8),
				       (unsigned char)kl, (unsigned char)(vl >> 24), (unsigned char)(vl >> 16),
				       (unsigned char)(vl >> 8), (unsigned char)vl };
		memcpy(p, b, 4);
		memcpy(p + 4, keys[i], kl);
		memcpy(p + 4 + kl, b + 4, 4);
		memcpy(p + 8 + kl, e->str, vl);
		p += 8 + kl + vl;
	}
	int rc = cache_key_digest(buf, need, l->entry);
	if (buf != stack)
		free(buf);
	if (rc != 0)
		return -1;
	size_t pl = strlen(l->c->prefix);
	/* (its room was reserved by cache_lookup, after the version keys) */
	memcpy(l->entry_key, l->c->prefix, pl);
	memcpy(l->entry_key + pl, "e:", 2);
	cache_key_hex(l->entry, CACHE_KEY_LEN, l->entry_key + pl + 2);
	return 0;
}

/* Version keys of a lookup: the global epoch, the database epoch, then each table (made by
 * cache_lookup with the lookup). */
static char **cache_lookup_keys(struct cache_lookup *l, size_t *n)
{
	*n = l->nvkeys;
	return l->vkeys;
}

static void cache_lookup_on_mget(void *arg, struct redisReply *reply, const char *err)
{
	struct cache_lookup *l = arg;
	struct cache *c = l->c;
	if (l->cancelled || c->destroying) {
		cache_lookup_free(l);
		return;
	}
	size_t nkeys;
	char **keys = cache_lookup_keys(l, &nkeys);
	if (!keys || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != nkeys) {
		cache_lookup_bypass(l, CACHE_BYPASS_REDIS_ERROR);
		return;
	}
	size_t missing = 0;
	bool bad = false;
	for (size_t i = 0; i < nkeys; i++) {
		struct redisReply *e = reply->element[i];
		if (e->type == REDIS_REPLY_NIL)
			missing++;
		else if (e->type != REDIS_REPLY_STRING)
			bad = true;
	}
	if (bad || (missing && l->phase > 0)) {
		cache_lookup_bypass(l, CACHE_BYPASS_REDIS_ERROR);
		return;
	}
	if (missing) {
		cache_lookup_unspec(l);
		/* Flushed, evicted or never set: create each with a fresh random value (NX: another
		 * tether may be doing the same), then read them back. An entry stored under an old
		 * value can never be reached again. */
		for (size_t i = 0; i < nkeys; i++) {
			if (reply->element[i]->type != REDIS_REPLY_NIL)
				continue;
			char v[33];
			cache_store_random_version(v);
			int64_t px = i >= l->expire_from ? cache_store_value_ttl(c) : 0;
			if (cache_store_set_px(c, keys[i], v, true, px, cache_store_ignore, NULL) != 0)
				break;
		}
		l->phase = 1;
		if (cache_lookup_mget(l) != 0)
			cache_lookup_bypass(l, cache_store_why_unreadable(c));
		return;
	}
	int rc = cache_lookup_entry(l, reply, (const char *const *)keys);
	if (rc != 0) {
		cache_lookup_bypass(l, CACHE_BYPASS_REDIS_ERROR);
		return;
	}
	struct cache_predict *p = cache_predict_slot(c, l->key);
	if (p) {
		memcpy(p->key, l->key, CACHE_KEY_LEN);
		memcpy(p->entry, l->entry, CACHE_KEY_LEN);
		p->used = true;
	}
	if (l->spec) {
		if (memcmp(l->spec_entry, l->entry, CACHE_KEY_LEN) == 0) {
			l->spec_match = true; /* its GET, sent after this MGET, answers next */
			return;
		}
		cache_lookup_unspec(l);
	}
	struct cache_fill *f = cache_fill_find(c, l->entry);
	if (f) {
		cache_lookup_wait(l, f);
		return;
	}
	const char *argv[2] = { "GET", l->entry_key };
	size_t lens[2] = { 3, strlen(l->entry_key) };
	if (cache_redis_command(c->redis, cache_lookup_on_get, l, 2, argv, lens) != 0)
		cache_lookup_bypass(l, cache_store_why_unreadable(c));
}

/* Sends MGET of the lookup's version keys. 0, or -1 (nothing sent). */
static int cache_lookup_mget(struct cache_lookup *l)
{
	size_t nkeys;
	char **keys = cache_lookup_keys(l, &nkeys);
	const char *argv_stack[16], **argv = nkeys < 16 ? argv_stack : calloc(nkeys + 1, sizeof(*argv));
	size_t lens_stack[16], *lens = nkeys < 16 ? lens_stack : calloc(nkeys + 1, sizeof(*lens));
	int rc = -1;
	if (argv && lens) {
		argv[0] = "MGET";
		lens[0] = 4;
		for (size_t i = 0; i < nkeys; i++) {
			argv[i + 1] = keys[i];
			lens[i + 1] = strlen(keys[i]);
		}
		l->state = CACHE_L_REDIS;
		rc = cache_redis_command(l->c->redis, cache_lookup_on_mget, l, (int)nkeys + 1, argv, lens);
	}
	if (argv != argv_stack)
		free(argv);
	if (lens != lens_stack)
		free(lens);
	return rc;
}

static int cache_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct cache_predict *cache_predict_slot(struct cache *c, const unsigned char *key)
{
	if (!c->predict && !(c->predict = calloc(CACHE_PREDICT_SLOTS, sizeof(*c->predict))))
		return NULL;
	return &c->predict[((size_t)key[0] | (size_t)key[1] << 8) % CACHE_PREDICT_SLOTS];
}

static void cache_lookup_on_spec(void *arg, struct redisReply *reply, const char *err)
{
	struct cache_spec *s = arg;
	struct cache_lookup *l = s->l;
	free(s);
	if (!l)
		return;
	l->spec = NULL;
	l->spec_match = false;
	l->c->spec_used++;
	cache_lookup_on_get(l, reply, err);
}

/* Right behind the MGET: the GET of the entry this statement key led to last time. */
static void cache_lookup_speculate(struct cache_lookup *l)
{
	struct cache *c = l->c;
	struct cache_predict *p = cache_predict_slot(c, l->key);
	if (!p || !p->used || memcmp(p->key, l->key, CACHE_KEY_LEN) != 0)
		return;
	char hex[2 * CACHE_KEY_LEN + 1], key[256];
	cache_key_hex(p->entry, CACHE_KEY_LEN, hex);
	size_t pl = strlen(c->prefix);
	int n = (int)(pl + 2 + 2 * CACHE_KEY_LEN);
	if (pl + 2 + sizeof(hex) <= sizeof(key)) {
		memcpy(key, c->prefix, pl);
		memcpy(key + pl, "e:", 2);
		memcpy(key + pl + 2, hex, sizeof(hex));
	} else {
		n = -1;
	}
	struct cache_spec *s = n > 0 ? calloc(1, sizeof(*s)) : NULL;
	if (!s)
		return;
	s->l = l;
	const char *argv[2] = { "GET", key };
	size_t lens[2] = { 3, (size_t)n };
	if (cache_redis_command(c->redis, cache_lookup_on_spec, s, 2, argv, lens) != 0) {
		free(s);
		return;
	}
	l->spec = s;
	memcpy(l->spec_entry, p->entry, CACHE_KEY_LEN);
}

/* A lookup over tables (whole) and the extra version keys xk (nxp that persist, then nxe that
 * expire), each list sorted and unique. */
struct cache_lookup *cache_lookup_make(struct cache *c, const char *database, const char *const *tables,
				       size_t ntables, char *const *xk, size_t nxp, size_t nxe,
				       const unsigned char key[CACHE_KEY_LEN], cache_lookup_fn cb, void *arg)
{
	/* the tables sorted and unique, then everything the lookup keeps in one allocation */
	const char *stack[32], **sorted = ntables <= 32 ? stack : malloc(ntables * sizeof(*sorted));
	if (!sorted)
		return NULL;
	if (ntables) {
		memcpy(sorted, tables, ntables * sizeof(*sorted));
		qsort(sorted, ntables, sizeof(*sorted), cache_str_cmp);
	}
	size_t nt = 0;
	for (size_t i = 0; i < ntables; i++)
		if (nt == 0 || strcmp(sorted[nt - 1], sorted[i]) != 0)
			sorted[nt++] = sorted[i];
	size_t dl = strlen(database), pl = strlen(c->prefix), nx = nxp + nxe;
	size_t mem = (2 * nt + 2 + nx) * sizeof(char *) + dl + 1 + cache_store_version_key_len(c, NULL, NULL) + 1 +
		     cache_store_version_key_len(c, database, NULL) + 1 + pl + 2 + 2 * CACHE_KEY_LEN + 1;
	for (size_t i = 0; i < nt; i++)
		mem += strlen(sorted[i]) + 1 + cache_store_version_key_len(c, database, sorted[i]) + 1;
	for (size_t i = 0; i < nx; i++)
		mem += strlen(xk[i]) + 1;
	struct cache_lookup *l = calloc(1, sizeof(*l) + mem);
	if (!l) {
		if (sorted != stack)
			free(sorted);
		return NULL;
	}
	l->c = c;
	l->cb = cb;
	l->arg = arg;
	char **ptrs = l->mem;
	char *p = (char *)(l->mem + 2 * nt + 2 + nx);
	l->tables = ptrs;
	l->vkeys = ptrs + nt;
	l->nvkeys = nt + 2 + nx;
	l->expire_from = nt + 2 + nxp;
	l->db = memcpy(p, database, dl + 1);
	p += dl + 1;
	for (size_t i = 0; i < nt; i++) {
		size_t tl = strlen(sorted[i]);
		l->tables[l->ntables++] = memcpy(p, sorted[i], tl + 1);
		p += tl + 1;
	}
	if (sorted != stack)
		free(sorted);
	for (size_t i = 0; i < nt + 2; i++) {
		l->vkeys[i] = p;
		p += cache_store_version_key_to(c, i == 0 ? NULL : l->db, i < 2 ? NULL : l->tables[i - 2], p) + 1;
	}
	for (size_t i = 0; i < nx; i++) {
		size_t kl = strlen(xk[i]);
		l->vkeys[nt + 2 + i] = memcpy(p, xk[i], kl + 1);
		p += kl + 1;
	}
	l->entry_key = p;
	event_assign(&l->ev, c->base, -1, 0, cache_lookup_on_event, l);
	l->next = c->lookups;
	if (c->lookups)
		c->lookups->prev = l;
	c->lookups = l;
	memcpy(l->key, key, CACHE_KEY_LEN);
	l->gen = c->queue_gen;
	if (!cache_readable(c)) {
		cache_lookup_defer(l, CACHE_BYPASS, cache_store_why_unreadable(c), NULL);
		return l;
	}
	/* Sent now, so the first callback is a Redis reply (never inside this call). */
	if (cache_lookup_mget(l) != 0)
		cache_lookup_defer(l, CACHE_BYPASS, cache_store_why_unreadable(c), NULL);
	else
		cache_lookup_speculate(l);
	return l;
}

struct cache_lookup *cache_lookup(struct cache *c, const char *database, const char *const *tables, size_t ntables,
				  const unsigned char key[CACHE_KEY_LEN], cache_lookup_fn cb, void *arg)
{
	return cache_lookup_make(c, database, tables, ntables, NULL, 0, 0, key, cb, arg);
}

void cache_lookup_cancel(struct cache_lookup *l)
{
	if (!l || l->cancelled)
		return;
	l->cancelled = true;
	switch (l->state) {
	case CACHE_L_REDIS:
		return; /* freed when the reply arrives */
	case CACHE_L_WAIT: {
		struct cache_lookup **pp = &l->fill->waiters;
		while (*pp && *pp != l)
			pp = &(*pp)->wnext;
		if (*pp)
			*pp = l->wnext;
		cache_lookup_free(l);
		return;
	}
	case CACHE_L_EVENT:
		cache_lookup_free(l); /* event_free removes the pending activation */
		return;
	}
}

/* --- storing --- */

struct cache_store_req {
	struct cache *c;
	size_t len;
};

static void cache_store_on_set(void *arg, struct redisReply *reply, const char *err)
{
	struct cache_store_req *q = arg;
	if (reply && reply->type == REDIS_REPLY_STATUS && !q->c->destroying) {
		q->c->stats.stores++;
		q->c->stats.stored_bytes += q->len;
	}
	free(q);
}

void cache_store(struct cache *c, struct cache_fill *f, const void *data, size_t len, int64_t ttl_ms)
{
	if (!f)
		return;
	cache_fill_unpublish(f);
	if (len > c->conf->max_entry_size) {
		c->stats.store_skipped++;
		cache_fill_release_waiters(f, NULL, CACHE_BYPASS_FILL_FAILED);
		cache_fill_free(f);
		return;
	}
	/* An invalidation queued since the lookup means its versions may be stale in Redis: the
	 * entry would be unreachable once the queue is applied, but do not store it at all. */
	if (f->gen != c->queue_gen || !cache_readable(c)) {
		c->stats.store_skipped++;
		cache_fill_release_waiters(f, NULL, CACHE_BYPASS_INVALIDATED);
		cache_fill_free(f);
		return;
	}
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : c->conf->default_ttl));
	const char *argv[5] = { "SET", f->entry_key, data, "PX", ttl };
	size_t lens[5] = { 3, strlen(f->entry_key), len, 2, strlen(ttl) };
	struct cache_store_req *q = malloc(sizeof(*q));
	if (q) {
		*q = (struct cache_store_req){ c, len };
		if (cache_redis_command(c->redis, cache_store_on_set, q, 5, argv, lens) != 0) {
			free(q);
			c->stats.store_skipped++;
		}
	}
	struct cache_blob *blob = f->waiters ? malloc(sizeof(*blob) + len + 1) : NULL;
	if (blob) {
		blob->refs = 1;
		blob->len = len;
		memcpy(blob->data, data, len);
	}
	cache_fill_release_waiters(f, blob, CACHE_BYPASS_FILL_FAILED);
	cache_blob_unref(blob);
	cache_fill_free(f);
}

void cache_fill_abandon(struct cache *c, struct cache_fill *f)
{
	if (!f)
		return;
	cache_fill_release_waiters(f, NULL, CACHE_BYPASS_FILL_FAILED);
	cache_fill_free(f);
}

/* --- lifecycle --- */

int cache_store_init(struct cache *c)
{
	return cache_inval_init(c);
}

void cache_store_deinit(struct cache *c)
{
	/* c->destroying is set and Redis is gone: its callbacks freed what they owned. */
	while (c->fills) {
		cache_fill_release_waiters(c->fills, NULL, CACHE_BYPASS_SHUTDOWN);
		cache_fill_free(c->fills);
	}
	while (c->lookups)
		cache_lookup_free(c->lookups);
	free(c->predict);
	c->predict = NULL;
	cache_inval_deinit(c);
}
