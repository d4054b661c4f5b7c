/* What DDL invalidates for the read cache: the tables TRUNCATE, REFRESH, DROP and ALTER name,
 * and everything for what can shadow a table or change results in ways tether cannot follow
 * (CREATE, renames, CASCADE, privileges). */
#include "cache_sql_internal.h"

/* A comma-separated list of tables (each may be ONLY t or t *) as write targets; anything else
 * there invalidates everything. */
static void cache_sql_ddl_names(struct cache_sql_ctx *c, size_t i, size_t e, const char *why)
{
	size_t nx;
	for (;;) {
		if (cache_sql_is(c, i, "only"))
			i++;
		if (!cache_sql_target(c, i, e, &nx)) {
			cache_sql_all(c, why);
			return;
		}
		i = nx;
		if (i < e && cache_sql_type(c, i) == CACHE_SQL_OP && c->lx->src[c->lx->toks[i].off] == '*')
			i++;
		if (i < e && cache_sql_type(c, i) == CACHE_SQL_COMMA)
			i++;
		else
			return;
	}
}

/* The object kind after ALTER / DROP when it holds rows: 1 or 2 words, else 0. */
static size_t cache_sql_ddl_relkind(struct cache_sql_ctx *c, size_t i)
{
	if (cache_sql_is(c, i, "table") || cache_sql_is(c, i, "view"))
		return 1;
	if ((cache_sql_is(c, i, "materialized") && cache_sql_is(c, i + 1, "view")) ||
	    (cache_sql_is(c, i, "foreign") && cache_sql_is(c, i + 1, "table")))
		return 2;
	return 0;
}

void cache_sql_ddl(struct cache_sql_ctx *c, size_t b, size_t e)
{
	c->info->ddl = true;
	size_t i = b + 1, k;
	if (cache_sql_is(c, b, "truncate")) {
		if (cache_sql_is(c, i, "table"))
			i++;
		cache_sql_ddl_names(c, i, e, "TRUNCATE tether cannot follow");
		if (cache_sql_has_word(c, i, e, "cascade"))
			cache_sql_all(c, "TRUNCATE ... CASCADE empties referencing tables");
	} else if (cache_sql_is(c, b, "refresh")) {
		if (!cache_sql_is(c, i, "materialized") || !cache_sql_is(c, i + 1, "view")) {
			cache_sql_all(c, "unknown REFRESH");
			return;
		}
		i += 2;
		if (cache_sql_is(c, i, "concurrently"))
			i++;
		size_t nx;
		if (!cache_sql_target(c, i, e, &nx))
			cache_sql_all(c, "REFRESH tether cannot follow");
	} else if (cache_sql_is(c, b, "drop")) {
		if ((k = cache_sql_ddl_relkind(c, i)) == 0) {
			if (cache_sql_is(c, i, "index") || cache_sql_is(c, i, "sequence") ||
			    cache_sql_is(c, i, "statistics"))
				return;
			cache_sql_all(c, "DROP of an object that can change query results");
			return;
		}
		cache_sql_ddl_names(c, cache_sql_skip_if(c, i + k), e, "DROP tether cannot follow");
		if (cache_sql_has_word(c, i, e, "cascade"))
			cache_sql_all(c, "DROP ... CASCADE drops dependent objects");
	} else if (cache_sql_is(c, b, "alter")) {
		if ((k = cache_sql_ddl_relkind(c, i)) == 0) {
			if (cache_sql_is(c, i, "index") || cache_sql_is(c, i, "sequence") ||
			    cache_sql_is(c, i, "statistics"))
				return;
			cache_sql_all(c, "ALTER of an object that can change query results");
			return;
		}
		i = cache_sql_skip_if(c, i + k);
		size_t nx;
		if (cache_sql_is(c, i, "all") || !cache_sql_target(c, i, e, &nx)) {
			cache_sql_all(c, "ALTER tether cannot follow");
			return;
		}
		for (size_t j = nx; j < e; j++) {
			if (cache_sql_is(c, j, "rename") || (cache_sql_is(c, j, "set") && cache_sql_is(c, j + 1, "schema"))) {
				cache_sql_all(c, "renaming or moving a table may shadow another");
				return;
			}
		}
		cache_sql_scan_calls(c, nx, e);
	} else if (cache_sql_is(c, b, "create")) {
		for (size_t j = i; j < e && j < i + 4; j++)
			if (cache_sql_temp_word(c, j))
				c->info->creates_temp = true;
		for (size_t j = i; j < e && j < i + 5; j++) {
			if (cache_sql_is(c, j, "index") || cache_sql_is(c, j, "sequence") || cache_sql_is(c, j, "statistics"))
				return; /* no query result changes */
			if (cache_sql_is(c, j, "table") || cache_sql_is(c, j, "view") || cache_sql_is(c, j, "as"))
				break;
		}
		cache_sql_all(c, "CREATE may shadow a table on the search_path or change results");
	} else {
		cache_sql_all(c, "privilege or catalog change");
	}
}
