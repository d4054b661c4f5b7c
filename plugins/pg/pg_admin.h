/* The pooler's admin database `tether` (SHOW, RELOAD, PAUSE, RESUME over the simple query
 * protocol), the same figures as JSON at /admin/pools, and the pool metrics read at scrape time. */
#ifndef TETHER_PG_ADMIN_H
#define TETHER_PG_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct evbuffer;
struct pg;
struct pg_client;

#define PG_ADMIN_DB "tether"

/* pg_admin.c: the admin connection */

/* Whether a client that just sent its startup packet asked for the admin database. */
bool pg_admin_wanted(const struct pg_client *c);
/* The client authenticated per postgres.auth: check admin_users, greet it, take it over. */
void pg_admin_login(struct pg_client *c);

/* pg_admin_show.c: module state, SHOW tables, /admin/pools, metrics */

/* Mounts /admin/pools, adds the metrics collector and the stats period timer. 0 or -1. */
int pg_admin_start(struct pg *pg);
void pg_admin_stop(struct pg *pg);

/* pg_admin_table.c: a result table written as RowDescription + DataRow... + CommandComplete
 * (wire != NULL) or as a JSON array of objects (json != NULL). Cells are int8 ('i') or text ('t')
 * per `types`. */
struct pg_admin_table {
	struct evbuffer *wire;
	json_t *json;
	const char *const *cols;
	const char *types;
	size_t ncols, col, nrows;
	struct evbuffer *row;
	json_t *jrow;
	int err; /* out of memory somewhere: the caller drops what was written */
};
void pg_admin_table_begin(struct pg_admin_table *t, const char *const *cols, const char *types);
void pg_admin_table_int(struct pg_admin_table *t, int64_t v);
void pg_admin_table_text(struct pg_admin_table *t, const char *s); /* NULL: SQL NULL / JSON null */
void pg_admin_table_end_row(struct pg_admin_table *t);
/* CommandComplete `tag` on the wire; returns t->err. */
int pg_admin_table_end(struct pg_admin_table *t, const char *tag);

/* The SHOW commands by name ("POOLS", ...): 0, -1 for no such table, -2 out of memory. */
int pg_admin_show(struct pg *pg, const char *what, struct pg_admin_table *t);
/* NULL-terminated names of the SHOW tables, for SHOW HELP and error messages. */
extern const char *const pg_admin_show_names[];

/* pg_admin_cache.c: SHOW CACHE and CACHE PURGE */
int pg_admin_show_cache(struct pg *pg, struct pg_admin_table *t);
/* CACHE PURGE [db [schema.table]]: 0 answered into `res`, 1 still running (ask again), -1 out
 * of memory. */
int pg_admin_cache_purge(struct pg_client *c, const char *db, const char *table, struct evbuffer *res);
/* Drops purges still running (their invalidations still happen). */
void pg_admin_cache_forget(struct pg *pg);

#endif
