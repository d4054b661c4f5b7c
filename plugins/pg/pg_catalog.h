/* What the read cache needs to know about a pool's schema, learnt from PostgreSQL over a libpq
 * connection of tether's own (asynchronous, on the loop): for a table name as a session with a
 * given search_path reads it, the schema-qualified tables a read of it depends on (the base
 * tables behind views, recursively) and the tables a write to it reaches (foreign keys with
 * actions, partitions and inheritance), or that tether cannot tell (triggers, rules, views).
 * Answers are remembered for cache.schema_ttl and dropped at once when the cache's epoch moves. */
#ifndef TETHER_PG_CATALOG_H
#define TETHER_PG_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pg_pool;
struct pg_catalog;
struct pg_catalog_req;

/* One name's dependencies. Strings are schema-qualified names as format('%I.%I') writes them. */
struct pg_catalog_deps {
	struct pg_catalog_deps *next; /* hash chain */
	char *key;                    /* search_path \x01 name */
	uint64_t hash;
	int64_t learnt_ms;
	uint64_t gen;   /* the catalog's generation when learnt (pg_catalog_forget moves it) */
	bool found;     /* the name resolves to a relation */
	bool write_all; /* a write to it may change tables tether cannot name */
	bool nocache;   /* reads of it are never cached (a sequence; a view calling volatile
			   functions) */
	bool calls;     /* reading it runs functions tether does not know: they may write */
	char **reads, **writes;
	size_t nreads, nwrites;
	/* A plain table whose primary key is one integer column: that column (its writes and
	 * reads can then be followed by key value), else NULL. */
	char *key_column;
};

struct pg_catalog *pg_catalog_create(struct pg_pool *pool);
void pg_catalog_destroy(struct pg_catalog *cat);

/* What is known of `name` under `search_path` (NULL: the server's default), or NULL when it
 * must be learnt first (learnt before the last pg_catalog_forget, or longer ago than
 * schema_ttl). */
const struct pg_catalog_deps *pg_catalog_get(struct pg_catalog *cat, const char *search_path, const char *name);
/* The same, also answering with what was learnt before the last forget (still within twice
 * schema_ttl): for deciding what a statement already on its way may write. */
const struct pg_catalog_deps *pg_catalog_peek(struct pg_catalog *cat, const char *search_path, const char *name);

/* Learns `names` under `search_path`; `cb(arg, ok)` runs later, once, with ok false when the
 * catalog could not be asked (then treat the names as unknown). Returns NULL when the catalog is
 * known to be unreachable right now (backing off) or memory ran out: cb never runs then. */
typedef void (*pg_catalog_fn)(void *arg, bool ok);
struct pg_catalog_req *pg_catalog_learn(struct pg_catalog *cat, const char *search_path, char *const *names,
					size_t n, pg_catalog_fn cb, void *arg);
/* The caller lost interest: cb will not run. */
void pg_catalog_cancel(struct pg_catalog_req *req);

/* Forgets everything learnt for lookups (DDL went through this tether, or the epoch moved):
 * pg_catalog_get answers NULL until it is learnt again. Answers to questions asked before are
 * not remembered either. */
void pg_catalog_forget(struct pg_catalog *cat);
/* A cache lookup read epoch digest `epoch`: when it differs from the last one seen, everything
 * learnt is forgotten and true is returned (the lookup should not be used). */
bool pg_catalog_epoch(struct pg_catalog *cat, uint64_t epoch);

struct pg_catalog_stats {
	uint64_t queries, failures, entries;
	bool connected;
};
void pg_catalog_get_stats(const struct pg_catalog *cat, struct pg_catalog_stats *out);

#endif
