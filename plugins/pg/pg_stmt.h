/* Named prepared statements in transaction mode: a pool-wide registry of distinct statements
 * (query text and parameter types) each with one server-side name, the map from a client's own
 * statement names to them, and the set each server has prepared (bounded, least recently used
 * evicted first). */
#ifndef TETHER_PG_STMT_H
#define TETHER_PG_STMT_H

#include <stddef.h>
#include <stdint.h>

/* One distinct statement. `body` is the Parse message body after the statement name: query
 * text with its NUL, int16 count, int32 type OIDs. Kept alive by the client maps and server
 * sets that hold it. */
struct pg_stmt {
	struct pg_stmt *next; /* registry hash chain */
	uint64_t hash;
	uint32_t refs;
	uint32_t body_len;
	char sname[32]; /* "tether_<id>", what servers know it by */
	unsigned char body[];
};

struct pg_stmt_registry {
	struct pg_stmt **b;
	size_t nb, n;
	uint64_t next_id;
};

/* Finds or adds the statement with this Parse body; returns it with a reference taken (drop it
 * with pg_stmt_unref), or NULL when out of memory. */
struct pg_stmt *pg_stmt_intern(struct pg_stmt_registry *r, const unsigned char *body, size_t len);
void pg_stmt_ref(struct pg_stmt *st);
void pg_stmt_unref(struct pg_stmt_registry *r, struct pg_stmt *st);
void pg_stmt_registry_free(struct pg_stmt_registry *r);

/* A client's statement names. */
struct pg_stmt_name;
struct pg_stmt_map {
	struct pg_stmt_name **b;
	size_t nb, n;
};
struct pg_stmt *pg_stmt_map_get(const struct pg_stmt_map *m, const char *name);
/* Binds `name` to `st` (taking a reference; a previous binding is dropped). 0 or -1 (memory). */
int pg_stmt_map_put(struct pg_stmt_map *m, struct pg_stmt_registry *r, const char *name, struct pg_stmt *st);
/* 1 when the name was bound, 0 when not. */
int pg_stmt_map_del(struct pg_stmt_map *m, struct pg_stmt_registry *r, const char *name);
void pg_stmt_map_clear(struct pg_stmt_map *m, struct pg_stmt_registry *r);

/* The statements one server has prepared, in least-recently-used order. */
struct pg_stmt_slot;
struct pg_stmt_set {
	struct pg_stmt_slot **b;
	size_t nb, n;
	struct pg_stmt_slot *lru_head, *lru_tail; /* head = most recently used */
};
/* True (and marked as just used) when the server has `st` prepared. */
int pg_stmt_set_has(struct pg_stmt_set *s, const struct pg_stmt *st);
/* Records `st` as prepared (taking a reference). 0 or -1 (memory). */
int pg_stmt_set_add(struct pg_stmt_set *s, struct pg_stmt *st);
void pg_stmt_set_del(struct pg_stmt_set *s, struct pg_stmt_registry *r, const struct pg_stmt *st);
/* The least recently used statement, to evict (still in the set), or NULL. */
struct pg_stmt *pg_stmt_set_oldest(const struct pg_stmt_set *s);
void pg_stmt_set_clear(struct pg_stmt_set *s, struct pg_stmt_registry *r);

#endif
