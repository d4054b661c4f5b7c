/* The read cache's instance, shared by the store (cache_store.c: lookups, fills, invalidation,
 * the pending queue) and the plugin (cache.c: rules, config, admin, metrics). */
#ifndef TETHER_CACHE_INTERNAL_H
#define TETHER_CACHE_INTERNAL_H

#include <regex.h>

#include "cache.h"
#include "cache_conf.h"
#include "cache_redis.h"
#include "log.h"

#define CACHE_FILL_BUCKETS 256
#define CACHE_PREDICT_SLOTS 2048 /* statement keys whose last entry key is remembered */

/* The entry key a statement key led to last time: its GET is sent right behind the versions'
 * MGET and used only when the versions read lead to the same entry (one round trip per hit). */
struct cache_predict {
	unsigned char key[CACHE_KEY_LEN];
	unsigned char entry[CACHE_KEY_LEN];
	bool used;
};

struct cache_rule {
	char *database; /* NULL: any */
	regex_t re;
	bool has_re;
	char *fingerprint;
	int64_t ttl; /* ms, 0: default */
	uint64_t matches, hits, misses, bypasses;
};

/* Invalidations not yet in Redis, per database. */
struct cache_pending_db {
	char *db;
	bool all; /* the database's epoch */
	char **tables;
	size_t n, cap;
	struct cache_pending_db *next;
};

struct cache {
	uint64_t gen; /* of this rule set, unique in the process (cache_rule_memo) */
	struct event_base *base;
	const struct cache_conf *conf;
	struct log_src log;
	struct cache_redis *redis;
	char *prefix;
	struct cache_rule *rules;
	size_t nrules;
	const char **safe_functions;
	size_t nsafe_functions;
	uint64_t hint_matches, hint_hits, hint_misses, hint_bypasses;

	/* pending invalidations (reads bypass while any exist or a flush runs) */
	struct cache_pending_db *pending;
	bool pending_global;
	size_t pending_tables;
	struct cache_pending_db *batch; /* being flushed */
	bool batch_global, flushing, batch_failed;
	size_t batch_outstanding, batch_count;
	struct event *flush_timer;
	uint64_t queue_gen; /* bumped whenever an invalidation is queued */

	struct cache_lookup *lookups; /* every live lookup */
	struct cache_fill *fills;     /* every live fill */
	struct cache_fill *fill_table[CACHE_FILL_BUCKETS]; /* fills lookups may join, by entry */
	struct cache_inval *invals;
	struct cache_flush_wait *flush_waits; /* commits waiting for the queue to reach Redis */
	struct cache_predict *predict;        /* CACHE_PREDICT_SLOTS, made on first use */
	uint64_t spec_used, spec_wasted;      /* speculative GETs whose answer was used / not */
	struct cache_stats stats;
	bool destroying;
	struct core *core; /* for the admin routes (NULL in tests) */
};

/* cache_store.c */
int cache_store_init(struct cache *c);
void cache_store_deinit(struct cache *c);
char *cache_store_strdup(const char *s);
/* <prefix>v:<db>:<table>, <prefix>v:<db>:* (table NULL), or <prefix>v:* (db NULL); malloc'd. */
char *cache_store_version_key(struct cache *c, const char *db, const char *table);
/* Suffixes of a table's version key (appended to <prefix>v:<db>:<table>): what keyed reads of
 * it depend on besides their values ("!k", bumped by every write of the whole table), one key
 * value ("=<v>") and one bucket of CACHE_KEY_BUCKET values ("~<b>"); these last two expire
 * (cache_store_value_ttl). */
#define CACHE_VKEY_KEYED "!k"
int64_t cache_store_value_ttl(const struct cache *c);
/* A lookup over whole tables and the extra version keys xk (nxp that persist, then nxe that
 * expire; each list sorted and unique), sent at once (cache_store.c). */
struct cache_lookup *cache_lookup_make(struct cache *c, const char *database, const char *const *tables,
				       size_t ntables, char *const *xk, size_t nxp, size_t nxe,
				       const unsigned char key[CACHE_KEY_LEN], cache_lookup_fn cb, void *arg);
/* floor(v / CACHE_KEY_BUCKET). */
int64_t cache_store_bucket(int64_t v);
/* <version key of db, table><suffix><number>, or without a number when suffix is "!k";
 * malloc'd. */
char *cache_store_value_key(struct cache *c, const char *db, const char *table, const char *suffix, int64_t n);
/* The same key's length, and the key written to out (length + 1 bytes); returns the length. */
size_t cache_store_version_key_len(const struct cache *c, const char *db, const char *table);
size_t cache_store_version_key_to(const struct cache *c, const char *db, const char *table, char *out);
/* A fresh 128-bit random version in hex. */
void cache_store_random_version(char out[33]);
int cache_store_set(struct cache *c, const char *key, const char *value, bool nx, cache_redis_fn cb, void *arg);
/* The same with an expiry in ms (0: none). */
int cache_store_set_px(struct cache *c, const char *key, const char *value, bool nx, int64_t px, cache_redis_fn cb,
		       void *arg);

/* cache_inval.c */
int cache_inval_init(struct cache *c);
void cache_inval_deinit(struct cache *c);
void cache_inval_on_ready(void *arg); /* the Redis connection is usable again */
/* Every cache_wait_applied waiter is told (the queue reached Redis, or shutdown). */
void cache_wait_release(struct cache *c, bool applied);

#endif
