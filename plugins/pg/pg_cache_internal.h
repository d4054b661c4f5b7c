/* What the pg_cache*.c files share: the pool's statement analyses, a client's cache state, and
 * the helpers each file offers the others (pg_cache_stmt.c: analyses and names; pg_cache_write.c:
 * writes and commits; pg_cache.c: lookups, replay, capture). */
#ifndef TETHER_PG_CACHE_INTERNAL_H
#define TETHER_PG_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../cache/cache.h"
#include "pg_cache.h"

struct pg_catalog_req;

/* Requests larger than this are relayed without a lookup; a Query larger than this is not
 * analysed either, and counts as a write of everything. */
#define PG_CACHE_MAX_REQUEST (256 * 1024)
#define PG_CACHE_MAX_QUERY (1024 * 1024)

/* One analysed statement text (Parse body after the name: text, NUL, parameter types), shared
 * by the clients of a pool. */
struct pg_cache_stmt {
	struct pg_cache_stmt *next;
	uint64_t hash;
	uint32_t refs;
	bool session; /* SET / RESET / set_config / temporary objects */
	bool own;     /* a simple Query's analysis, not in the registry */
	struct cache_rule_memo rule; /* for this pool's database */
	struct cache_sql_info info;
	size_t body_len;
	size_t types_off; /* offset of the int16 count of parameter types in body */
	unsigned char body[];
};

struct pg_cache_pool {
	struct pg_catalog *cat;
	struct pg_cache_stmt **b;
	size_t nb, n;
};

/* A client's statement ('S' + name) or portal ('P' + name). */
struct pg_cache_name {
	struct pg_cache_name *next;
	struct pg_cache_stmt *st;
	char key[];
};

/* A read key constraint's values for the head request (pg_cache_rkeys_eval). */
#define PG_CACHE_MAX_RKEYS 8
struct pg_cache_rkv {
	int64_t lo, hi;
	bool ok;
};

/* A write that may be keyed: the statement changed only rows of `table` whose column
 * col[i] is value[i], for each i (it selected on all of them and set none); counted by key when
 * one of them is the table's key (the catalog says at the commit), else as the whole table. */
#define PG_CACHE_MAX_WKEYS 64
#define PG_CACHE_WKEY_COLS 4
struct pg_cache_wkey {
	char *table;
	char *col[PG_CACHE_WKEY_COLS];
	int64_t value[PG_CACHE_WKEY_COLS];
	size_t n;
};

/* A Bind's parameters, with its statement's declared types, for pg_cache_bind_param. */
struct pg_cache_binds {
	const unsigned char *rest; /* the Bind after its statement name */
	size_t len;
	const unsigned char *types; /* the Parse's int32 type OIDs, or NULL */
	size_t ntypes;
};

struct pg_cache_client {
	struct pg_client *c;
	struct pg_cache_name **names;
	size_t nb, n;
	struct pg_cache_stmt *unnamed, *portal; /* the unnamed statement and portal */
	bool off;                               /* no more caching for this session */
	bool mid_request;                       /* extended messages forwarded since Sync */
	bool decided;                           /* the head request was looked at */
	bool busy;
	/* the head request's lookup */
	int rule;
	int64_t ttl;
	int attempt;
	bool head_learnt; /* the head request's tables were asked about (known or not, go on) */
	bool head_session; /* the head Query changes the session: its server becomes tainted */
	unsigned char key[CACHE_KEY_LEN];
	unsigned char settings_digest[CACHE_KEY_LEN]; /* pg_cache_settings_digest */
	uint64_t settings_gen[2]; /* of the client's settings and the pool's, when digested */
	bool settings_valid;
	size_t req_len;
	size_t parse_len; /* the request's Parse (remembered on a hit) */
	bool unnamed_unsent; /* the unnamed statement was answered from the cache: no server has it */
	struct pg_cache_stmt *req_st;
	struct cache_lookup *lookup;
	struct pg_catalog_req *learn;
	/* a miss being filled from the server's answer */
	struct cache_fill *fill;
	int64_t fill_ttl;
	int fill_rule;
	struct evbuffer *cap;
	bool cap_bad, cap_big;
	struct pg_cache_rkv rk[PG_CACHE_MAX_RKEYS]; /* the head lookup's key values */
	size_t nrk;
	/* writes since the last ReadyForQuery outside a transaction: whole tables, and keyed */
	char **w;
	size_t nw, wcap;
	struct pg_cache_wkey *wk;
	size_t nwk, wkcap;
	struct pg_cache_wkey portal_wk; /* the unnamed portal's write by key (from its Bind), n 0: none */
	bool w_all;
	struct cache_inval *inval;
	struct pg_catalog_req *wlearn;
	bool wlearnt;
	struct pg_server *held;
	struct cache_flush_wait *flush_wait; /* a held commit waiting for Redis (write_wait) */
};


/* pg_cache_stmt.c */
bool pg_cache_changes_session(const struct cache_sql_info *info);
int pg_cache_analyze(const struct pg_client *c, const char *sql, size_t len, struct cache_sql_info *info);
/* The shared analysis of a Parse body (after the name), with a reference taken; NULL when it is
 * malformed or memory ran out. */
struct pg_cache_stmt *pg_cache_stmt_get(struct pg_client *c, const unsigned char *body, size_t len);
void pg_cache_stmt_unref(struct pg_cache_pool *cp, struct pg_cache_stmt *st);
/* The client's cache state, made on first need (NULL: no cache, or out of memory). */
struct pg_cache_client *pg_cache_client(struct pg_client *c);
/* A client's statement (kind 'S') or portal ('P'); "" is the unnamed one. */
struct pg_cache_stmt *pg_cache_name_get(struct pg_cache_client *cc, char kind, const char *name);
int pg_cache_name_put(struct pg_cache_client *cc, char kind, const char *name, struct pg_cache_stmt *st);
void pg_cache_name_del(struct pg_cache_client *cc, char kind, const char *name);
/* Every name of `kind` (0: both kinds). */
void pg_cache_names_clear(struct pg_cache_client *cc, char kind);

/* pg_cache_write.c */
/* Records what running `info` may change (`session`: it changes settings, caching stops): its
 * write targets, everything for statements tether cannot follow, and everything when it reads
 * a view that calls functions tether does not know (or a table not learnt yet). */
int pg_cache_track(struct pg_cache_client *cc, const struct cache_sql_info *info, bool session);
/* The same for a statement whose write may be followed by key value (b: its Bind, or NULL for
 * a simple Query's literals; wk: its keyed write made at its Bind, consumed, or NULL). */
int pg_cache_track_binds(struct pg_cache_client *cc, const struct cache_sql_info *info, bool session,
			 const struct pg_cache_binds *b, struct pg_cache_wkey *wk);

/* pg_cache_keys.c */
/* cache_sql_param_fn over a struct pg_cache_binds. */
int pg_cache_bind_param(void *arg, int number, int64_t *v);
/* b for st (its declared types) and the Bind after its statement name. */
void pg_cache_binds_of(struct pg_cache_binds *b, const struct pg_cache_stmt *st, const unsigned char *rest,
		       size_t len);
/* Evaluates the head request's read key constraints into cc->rk (b NULL: literals only). */
void pg_cache_rkeys_eval(struct pg_cache_client *cc, const struct cache_sql_info *info, const struct pg_cache_binds *b);
/* Whether the read of `name` (d: what the catalog knows of it) can depend on part of it only:
 * then *out says which part. */
struct pg_catalog_deps;
bool pg_cache_read_keyed(const struct pg_cache_client *cc, const struct cache_sql_info *info, const char *name,
			 const struct pg_catalog_deps *d, struct cache_keyed *out);
/* Records info's write as one that may be keyed when the statement selects on integer values of
 * columns it does not set: *done then (else the caller records the table). */
int pg_cache_track_keyed(struct pg_cache_client *cc, const struct cache_sql_info *info, const struct pg_cache_binds *b,
			 bool *done);
/* The candidate keyed write of info run with b into *w: 1 (made), 0 (none), -1 (no memory). */
int pg_cache_wkey_make(const struct cache_sql_info *info, const struct pg_cache_binds *b, struct pg_cache_wkey *w);
void pg_cache_wkey_free(struct pg_cache_wkey *w);
/* Moves *w into the client's writes (w is left empty). */
int pg_cache_wkey_add(struct pg_cache_client *cc, struct pg_cache_wkey *w);
/* The value w selected for `column` (the table's key), if it selected on that column. */
bool pg_cache_wkey_value(const struct pg_cache_wkey *w, const char *column, int64_t *v);
void pg_cache_wkeys_clear(struct pg_cache_client *cc);

#endif
