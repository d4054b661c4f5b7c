/* The `cache` config section: where Redis is, timeouts, key prefix and size limits, the rules and
 * hints that select statements to cache, and the circuit breaker; plus the parsed Redis URL. */
#ifndef TETHER_CACHE_CONF_H
#define TETHER_CACHE_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

enum cache_conf_hints { CACHE_HINTS_ALLOW = 0, CACHE_HINTS_FORBID };

/* One rule: statements of `database` (NULL: any) whose normalized text matches `match` (POSIX
 * extended regex, case-insensitive) or whose fingerprint equals `fingerprint` are cached for
 * `ttl` (0: default_ttl). */
struct cache_conf_rule {
	char *database;
	char *match;
	char *fingerprint;
	int64_t ttl; /* ms */
};

struct cache_conf {
	char *redis;
	char *password;
	int64_t connect_timeout; /* ms */
	int64_t command_timeout; /* ms */
	char *key_prefix;
	uint64_t max_entry_size;
	int64_t default_ttl; /* ms */
	int hints;           /* enum cache_conf_hints */
	struct conf_array rules; /* struct cache_conf_rule */
	struct conf_strlist safe_functions;
	int64_t failure_threshold;
	int64_t open_for;           /* ms */
	int64_t single_flight_wait; /* ms */
	int64_t max_pending;        /* queued table invalidations before "everything" */
	int64_t schema_ttl;         /* ms: how long learnt dependencies are trusted */
	int64_t write_wait;         /* ms: a commit waits this long for a queued invalidation */
};

/* A parsed cache.redis URL. */
struct cache_conf_addr {
	bool unix_socket;
	char *host; /* tcp */
	int port;
	char *path; /* unix */
	int db;
	char *user;     /* Redis 6 ACL user, or NULL */
	char *password; /* from the URL, or NULL */
};

extern const struct conf_table cache_conf_table;

/* Parses redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]. Returns 0, or -1
 * with `err` filled. Free with cache_conf_addr_deinit. */
int cache_conf_parse_addr(const char *url, struct cache_conf_addr *out, char *err, size_t errlen);
void cache_conf_addr_deinit(struct cache_conf_addr *a);

#endif
