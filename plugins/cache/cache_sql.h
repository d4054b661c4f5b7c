/* SQL analysis for the read cache, pure and I/O-free: normalizes a statement string (the text a
 * cache key and the rules see), fingerprints it (literals replaced by `?`), extracts the
 * `tether:cache` hint, and classifies it: is it a cacheable read, and what must a write
 * invalidate (named tables, or everything when tether cannot tell). */
#ifndef TETHER_CACHE_SQL_H
#define TETHER_CACHE_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_sql_opts {
	/* false: the session has standard_conforming_strings off, so '...' strings take backslash
	 * escapes like E'...'. */
	bool backslash_strings;
	/* Extra function names (lower-case, unqualified) the user declares read-only and
	 * deterministic enough to cache (cache.safe_functions). */
	const char *const *safe_functions;
	size_t nsafe_functions;
};

/* A list of table names, each the way PostgreSQL's regclass input reads it: unquoted parts
 * lower-cased, quoted parts kept exactly and re-quoted only when needed ("My Table"),
 * "schema.table" when the statement qualified it, else just "table". Sorted, no duplicates. */
struct cache_sql_names {
	char **v;
	size_t n;
};

/* An integer expression over literals and $n parameters, as a stack program (cache_sql_keys.c). */
#define CACHE_SQL_KEXPR_MAX 16
enum { CACHE_SQL_KOP_NUM, CACHE_SQL_KOP_PARAM, CACHE_SQL_KOP_NEG, CACHE_SQL_KOP_ADD, CACHE_SQL_KOP_SUB,
       CACHE_SQL_KOP_MUL };
struct cache_sql_kexpr {
	uint8_t n;
	uint8_t op[CACHE_SQL_KEXPR_MAX];
	int64_t v[CACHE_SQL_KEXPR_MAX]; /* NUM: the value; PARAM: its number (1-based) */
};

/* A key constraint: the rows of `table` (named as in reads / writes) a statement can see or
 * change all have `column` (lower-case) equal to lo, or, for a range, between lo and hi. */
struct cache_sql_key {
	char *table;
	char *column;
	bool range;
	struct cache_sql_kexpr lo, hi;
};

struct cache_sql_info {
	/* The whole string normalized: comments removed, whitespace runs outside literals and
	 * quoted identifiers collapsed to one space, unquoted identifiers and keywords lower-cased,
	 * literals kept byte for byte, trailing semicolons dropped. Never NULL after success. */
	char *normalized;
	/* normalized with every literal (strings, numbers, typed literals' strings) as `?`;
	 * $n parameters are kept. */
	char *fingerprint;

	/* The hint, a block comment holding `tether:cache ttl=30s` (ttl optional: hint_ttl_ms 0
	 * means the configured default) or `tether:nocache`. */
	bool hint;
	bool hint_nocache;
	int64_t hint_ttl_ms;

	size_t nstatements; /* non-empty statements in the string */

	/* Cacheable read: exactly one SELECT / WITH...SELECT / VALUES / TABLE statement with no
	 * data-modifying CTE, no locking clause, no SELECT INTO, and only known read-only,
	 * non-volatile function calls. When false, why_not says why (a static string). */
	bool cacheable;
	const char *why_not;
	/* For a cacheable read: the tables named in FROM / JOIN / TABLE (syntactic: views are not
	 * expanded and CTE names are left out). reads_complete is false when the analysis met a
	 * FROM item it could not follow; then rely on the server's dependency list alone. */
	struct cache_sql_names reads;
	bool reads_complete;

	/* Invalidation: a write names its target tables in `writes`; when tether cannot tell
	 * what a statement changes (unknown functions, CALL, DO, EXECUTE, most DDL, unknown
	 * syntax) invalidate_all is set and why_all says why. Neither: nothing to invalidate. */
	struct cache_sql_names writes;
	bool invalidate_all;
	const char *why_all;

	/* The statement creates a temporary table (or other temporary object): results of reads
	 * on this session may differ from other sessions' with the same key, so the caller should
	 * stop caching for the session. */
	bool creates_temp;
	/* DDL or a privilege change (ALTER/DROP/CREATE/TRUNCATE/REFRESH/GRANT/REVOKE ...). */
	bool ddl;

	/* Key constraints (cache_sql_keys.c). For a cacheable read, per table it names once: the
	 * equality and BETWEEN conjuncts of its WHERE clause. For a single UPDATE or DELETE of one
	 * table: those of its WHERE clause, with the columns the UPDATE sets in wset (the
	 * constraint holds for a column the statement does not set). */
	struct cache_sql_key *rkeys, *wkeys;
	size_t nrkeys, nwkeys;
	char **wset;
	size_t nwset;
};

/* A parameter's integer value for cache_sql_key_eval: 0, or -1 when it has none. */
typedef int (*cache_sql_param_fn)(void *arg, int number, int64_t *value);
/* Evaluates x (64-bit, overflow fails). 0, or -1. */
int cache_sql_key_eval(const struct cache_sql_kexpr *x, cache_sql_param_fn param, void *arg, int64_t *out);
/* Whether the UPDATE of info sets column `col`. */
bool cache_sql_key_sets(const struct cache_sql_info *info, const char *col);

/* Analyzes `sql` (len bytes; NUL bytes end it). Returns 0, or -1 only when memory runs out.
 * A string tether cannot tokenize (an unterminated literal or comment) is analyzed as
 * "not cacheable, invalidate everything". Free with cache_sql_info_deinit. */
int cache_sql_analyze(const char *sql, size_t len, const struct cache_sql_opts *opts, struct cache_sql_info *out)
	__attribute__((warn_unused_result));
void cache_sql_info_deinit(struct cache_sql_info *info);

/* True when `name` (lower-case, unqualified) is a built-in function tether knows neither
 * writes nor depends on more than its arguments, the session and the clock. */
bool cache_sql_function_safe(const char *name);
/* True for an operator (its characters, as written) that PostgreSQL itself defines; a user's
 * operator runs a function tether does not know. */
bool cache_sql_operator_builtin(const char *op);
/* True when `name` is read-only but volatile or connection-dependent (random, nextval,
 * pg_sleep, txid_current, pg_advisory_lock ...): a statement calling it is never cached. */
bool cache_sql_function_volatile(const char *name);

#endif
