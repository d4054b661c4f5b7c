/* The read cache's interface for the PostgreSQL pooler: choose statements by rule or hint, look a
 * result up (hit / miss with a fill token / bypass), store a result under the table versions read
 * before the query ran, and invalidate tables (or everything) after a write, with the
 * invariants of issue 5 kept by the version scheme described in README "Read cache".
 *
 * Everything runs on the event loop; callbacks are never called from inside the call that
 * registered them. Typical use by the pooler:
 *
 *   info = cache_sql_analyze(statement)          (cache_sql.h; the pooler keeps it per statement)
 *   if (!in_transaction && cache_rule_match(c, db, &info, &ttl)) {
 *       key = cache_key_* over db, user, info.normalized, params, formats, settings (cache_key.h)
 *       h = cache_lookup(c, db, tables, n, key, on_result, client)
 *       on_result: HIT -> replay bytes; MISS -> run the query, then cache_store(c, fill, bytes,
 *                  len, ttl) or cache_fill_abandon(c, fill); BYPASS -> run the query, store nothing
 *   }
 *   after a write commits, before relaying its ReadyForQuery: cache_invalidate(c, db, writes, n,
 *       on_invalidated, client) and wait for on_invalidated (DURABLE or QUEUED) */
#ifndef TETHER_CACHE_H
#define TETHER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache_key.h"
#include "cache_sql.h"

struct cache;
struct cache_lookup;
struct cache_fill;
struct cache_inval;
struct event_base;
struct metrics;
struct cache_conf;
struct log_src;

/* The running cache plugin's instance, or NULL when the config has no `cache` section (or the
 * plugin is not started yet / stopped). Plugins start in name order, so `cache` is up before
 * `pg`, and pg stops first. */
struct cache *cache_instance(void);

/* --- choosing statements --- */

enum cache_result_kind { CACHE_HIT, CACHE_MISS, CACHE_BYPASS };


#define CACHE_RULE_NONE (-1)
#define CACHE_RULE_HINT (-2)
/* Whether the statement may be served from the cache: it is a cacheable read
 * (info->cacheable), carries no tether:nocache hint, and a rule for `database` matches its
 * normalized text or fingerprint (returns the rule's index), or it carries a tether:cache hint
 * and hints are allowed (CACHE_RULE_HINT). CACHE_RULE_NONE: not cached. *ttl_ms gets the TTL
 * (hint ttl, else the rule's, else default_ttl). Counts rule matches. */
int cache_rule_match(struct cache *c, const char *database, const struct cache_sql_info *info, int64_t *ttl_ms);
/* cache_rule_match's answer remembered for one statement of one database, valid while the rule
 * set it came from is the current one (a zeroed memo is empty). */
struct cache_rule_memo {
	uint64_t gen;
	int rule;
	int64_t ttl_ms;
};
/* cache_rule_match through the memo: the regular expressions run once per statement text and
 * rule set, the matches are counted every time. */
int cache_rule_match_memo(struct cache *c, const char *database, const struct cache_sql_info *info, int64_t *ttl_ms,
			  struct cache_rule_memo *m);
/* Counts a lookup's outcome against the rule (or hint) that selected it, for SHOW CACHE and
 * /admin/cache. An index from before a reload that no longer exists is ignored. */
void cache_rule_result(struct cache *c, int rule, enum cache_result_kind kind);
/* cache.schema_ttl in ms: how long the pooler may trust what it learnt from the catalog. */
int64_t cache_schema_ttl(struct cache *c);
/* cache.max_entry_size. */
uint64_t cache_max_entry_size(struct cache *c);

/* One rule's settings and counters, for SHOW CACHE; i < cache_rule_count(c). Strings stay
 * valid until the next reload. */
struct cache_rule_info {
	const char *database; /* NULL: any */
	const char *match, *fingerprint;
	int64_t ttl_ms;
	uint64_t matches, hits, misses, bypasses;
};
size_t cache_rule_count(struct cache *c);
void cache_rule_get(struct cache *c, size_t i, struct cache_rule_info *out);
/* The same counters for statements selected by a hint (database, match NULL). */
void cache_rule_hint(struct cache *c, struct cache_rule_info *out);

/* The analysis options the pooler should pass to cache_sql_analyze (safe_functions from the
 * config; backslash_strings false: set it per session when standard_conforming_strings is off).
 * Valid until the next reload. */
struct cache_sql_opts cache_sql_options(struct cache *c);

/* --- lookups --- */

enum cache_bypass_reason {
	CACHE_BYPASS_REDIS_DOWN = 0,   /* not connected (or connecting) */
	CACHE_BYPASS_CIRCUIT_OPEN,     /* breaker open or half-open */
	CACHE_BYPASS_PENDING,          /* invalidations waiting to reach Redis */
	CACHE_BYPASS_REDIS_ERROR,      /* a command failed or timed out */
	CACHE_BYPASS_WAIT_TIMEOUT,     /* single-flight: the first miss took too long */
	CACHE_BYPASS_FILL_FAILED,      /* single-flight: the first miss stored nothing */
	CACHE_BYPASS_INVALIDATED,      /* an invalidation was queued while the lookup ran */
	CACHE_BYPASS_SHUTDOWN,
	/* decided by the pooler before any lookup (cache_count_bypass) */
	CACHE_BYPASS_IN_TRANSACTION,   /* the client is inside a transaction block */
	CACHE_BYPASS_SESSION,          /* the session ran SET/RESET or made temporary objects */
	CACHE_BYPASS_DEPENDENCIES,     /* the tables behind the statement could not be learnt */
	CACHE_BYPASS_PIPELINED,        /* answers to earlier requests are still outstanding */
	CACHE_BYPASS_TOO_LARGE,        /* the result was over max_entry_size (counted at the end) */
	CACHE_BYPASS_SCHEMA_CHANGED,   /* the epoch moved: what tether knew of the schema is dropped */
	CACHE_BYPASS_NREASONS
};
const char *cache_bypass_reason_name(enum cache_bypass_reason r);
/* A bypass the pooler decided itself (before or instead of a lookup), counted by reason and
 * against the rule that selected the statement. */
void cache_count_bypass(struct cache *c, int rule, enum cache_bypass_reason reason);
/* A HIT or MISS the caller did not use after all (the schema moved): counted as a bypass for
 * `reason` instead. */
void cache_recount(struct cache *c, enum cache_result_kind was, enum cache_bypass_reason reason);


struct cache_result {
	enum cache_result_kind kind;
	/* HIT: the stored bytes, valid only during the callback. */
	const unsigned char *data;
	size_t len;
	/* MISS: the token to pass to cache_store or cache_fill_abandon, exactly once. Concurrent
	 * lookups of the same entry wait for it (single flight). */
	struct cache_fill *fill;
	enum cache_bypass_reason reason; /* BYPASS */
	/* HIT and MISS: a digest of the global and database epochs the lookup read (0 when it
	 * read none). It changes whenever everything was invalidated (DDL, unknown writes, a flush
	 * or eviction of the epoch keys), so a caller can drop what it learnt about the schema. */
	uint64_t epoch;
};

typedef void (*cache_lookup_fn)(void *arg, const struct cache_result *res);

/* Looks up the entry for `key` (cache_key_final's digest) in `database`, depending on
 * `tables` (names as in cache_sql_names, plus whatever the server reports the statement reads:
 * base tables behind views ...; order and duplicates do not matter). Reads the tables' versions
 * and the database's epoch (creating missing ones with fresh random values), derives the entry
 * key from them and GETs it. `cb` runs once, later, unless the lookup is cancelled first.
 * Returns NULL only when memory runs out (then cb never runs: treat as bypass). */
struct cache_lookup *cache_lookup(struct cache *c, const char *database, const char *const *tables, size_t ntables,
				  const unsigned char key[CACHE_KEY_LEN], cache_lookup_fn cb, void *arg);
/* Finer dependencies (and writes) by key value: `table`'s rows whose key column (one integer
 * column, the same for every read and write of the table) is lo, or, for a range, in
 * [lo, hi]. A read so keyed misses after any write of the whole table and after keyed writes
 * of a value it covers, not after keyed writes of other values. */
struct cache_keyed {
	const char *table;
	int64_t lo, hi;
	bool range;
};
/* Ranges covering more than this many buckets of CACHE_KEY_BUCKET values depend on the whole
 * table instead. */
#define CACHE_KEY_BUCKET 1024
#define CACHE_KEY_MAX_BUCKETS 32
/* cache_lookup, also depending on keyed parts of tables (`keyed`, nkeyed). */
struct cache_lookup *cache_lookup_keyed(struct cache *c, const char *database, const char *const *tables,
					size_t ntables, const struct cache_keyed *keyed, size_t nkeyed,
					const unsigned char key[CACHE_KEY_LEN], cache_lookup_fn cb, void *arg);
/* The caller lost interest (client gone): cb will not run. Not valid after cb ran. */
void cache_lookup_cancel(struct cache_lookup *l);

/* Stores the result of a MISS (the bytes the client will receive, any bytes) under the entry
 * key computed from the versions read before the query ran, for ttl_ms, and hands the bytes to
 * lookups waiting on this fill. Not stored (waiters bypass) when larger than max_entry_size or
 * when an invalidation was queued since the lookup. Consumes `fill`. */
void cache_store(struct cache *c, struct cache_fill *fill, const void *data, size_t len, int64_t ttl_ms);
/* The query failed, was too large, or the client went away: nothing to store; waiters bypass
 * and run the query themselves. Consumes `fill`. */
void cache_fill_abandon(struct cache *c, struct cache_fill *fill);

/* --- invalidation --- */

enum cache_inval_outcome {
	CACHE_INVAL_DURABLE, /* every version bump is in Redis */
	CACHE_INVAL_QUEUED,  /* Redis unreachable: kept in memory and applied before any read is
				served from Redis again; reads bypass until then */
};
typedef void (*cache_inval_fn)(void *arg, enum cache_inval_outcome outcome);

/* Bumps the versions of `tables` in `database` (tables NULL: the database's epoch, i.e.
 * everything cached for it) to fresh random values. Call it after the write committed and
 * before relaying the ReadyForQuery that follows; relay it in `cb`. DURABLE: every tether sharing
 * the Redis now misses; QUEUED: this tether bypasses Redis until the bumps reach it (other
 * tethers are bounded by the TTL meanwhile; hold the ReadyForQuery a little if that matters).
 * Returns NULL only when memory runs out: then "everything" is recorded as pending (fail
 * closed), cb never runs, and the caller relays at once as if QUEUED. */
struct cache_inval *cache_invalidate(struct cache *c, const char *database, const char *const *tables,
				     size_t ntables, cache_inval_fn cb, void *arg);
/* cache_invalidate, also of the rows of keyed[i].table whose key is keyed[i].lo (a write that
 * changed only those rows: an UPDATE that does not set the key column, or a DELETE, selecting
 * on key = value). Queued (Redis unreachable), keyed writes count as writes of the whole table. */
struct cache_inval *cache_invalidate_keyed(struct cache *c, const char *database, const char *const *tables,
					   size_t ntables, const struct cache_keyed *keyed, size_t nkeyed,
					   cache_inval_fn cb, void *arg);
/* Everything in every database (the global epoch). */
struct cache_inval *cache_invalidate_everything(struct cache *c, cache_inval_fn cb, void *arg);
/* The caller lost interest: cb will not run; the invalidation itself still happens. */
void cache_invalidate_cancel(struct cache_inval *iv);

/* After a QUEUED outcome: calls cb(arg, true) once every queued invalidation is in Redis, or
 * cb(arg, false) after cache.write_wait, whichever comes first (never from inside this call).
 * NULL when nothing is queued (or write_wait is 0, or memory ran out): go on at once. */
struct cache_flush_wait;
typedef void (*cache_flush_fn)(void *arg, bool applied);
struct cache_flush_wait *cache_wait_applied(struct cache *c, cache_flush_fn cb, void *arg);
void cache_wait_cancel(struct cache_flush_wait *w);
/* Records "everything" as pending without allocating: reads bypass until Redis has it. */
void cache_invalidate_all_pending(struct cache *c);

/* --- state --- */

struct cache_stats {
	uint64_t hits, misses, bypasses[CACHE_BYPASS_NREASONS];
	uint64_t single_flight_waits, stores, stored_bytes, store_skipped;
	uint64_t invalidations_durable, invalidations_queued, pending_applied;
	uint64_t redis_errors;
	uint64_t speculative_used, speculative_wasted; /* GETs sent with the MGET, by outcome */
	uint64_t keyed_lookups, keyed_writes; /* lookups depending on key values; writes by key */
	size_t pending_tables;
	bool pending_everything;
	int circuit; /* 0 closed, 1 open, 2 half-open */
	const char *redis_state;
};
void cache_get_stats(struct cache *c, struct cache_stats *out);
/* True when a lookup now would go to Redis (connected, breaker closed, nothing pending). */
bool cache_readable(struct cache *c);

/* --- lifecycle (the plugin uses these; tests use them directly) --- */

/* Creates a cache on `base` from a validated `cache` section (conf must outlive it until
 * cache_reload replaces it) and starts connecting. NULL after logging why. */
struct cache *cache_create(struct event_base *base, const struct cache_conf *conf, const struct log_src *log);
/* Applies the reloadable keys of a new section (rules, hints, TTLs, limits). 0, or -1 when a
 * rule does not compile (the old rules stay). */
int cache_reload(struct cache *c, const struct cache_conf *conf);
/* Frees everything: lookups and fills in flight are dropped without callbacks. Must not be
 * called from inside a cache callback. */
void cache_destroy(struct cache *c);

#endif
