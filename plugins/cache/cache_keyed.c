/* The read cache's dependencies by key value: the version keys of a table's key values and
 * buckets (they expire), and lookups that depend on them besides whole tables. */
#include "cache_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t cache_store_value_ttl(const struct cache *c)
{
	/* longer than any entry's TTL from the rules: a value key that expires only makes the
	 * entries under it unreachable (misses), never stale */
	int64_t t = c->conf->default_ttl;
	for (size_t i = 0; i < c->nrules; i++)
		if (c->rules[i].ttl > t)
			t = c->rules[i].ttl;
	t *= 2;
	return t < 60000 ? 60000 : t;
}

int64_t cache_store_bucket(int64_t v)
{
	int64_t q = v / CACHE_KEY_BUCKET;
	return (v % CACHE_KEY_BUCKET < 0) ? q - 1 : q;
}

static int cache_str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends <version key of db, table><suffix>[<n>] to the buffer at *p (room bytes left) and
 * returns it, or NULL when it does not fit. */
static char *cache_store_value_key_in(struct cache *c, const char *db, const char *table, const char *suffix,
				      int64_t n, char **p, size_t *room)
{
	size_t kl = cache_store_version_key_len(c, db, table), sl = strlen(suffix);
	if (kl + sl + 22 > *room)
		return NULL;
	char *k = *p;
	cache_store_version_key_to(c, db, table, k);
	memcpy(k + kl, suffix, sl + 1);
	size_t len = kl + sl;
	if (strcmp(suffix, CACHE_VKEY_KEYED) != 0)
		len += (size_t)snprintf(k + len, 22, "%lld", (long long)n);
	*p += len + 1;
	*room -= len + 1;
	return k;
}

char *cache_store_value_key(struct cache *c, const char *db, const char *table, const char *suffix, int64_t n)
{
	size_t room = cache_store_version_key_len(c, db, table) + strlen(suffix) + 22;
	char *k = malloc(room), *p = k;
	if (k && !cache_store_value_key_in(c, db, table, suffix, n, &p, &room)) {
		free(k);
		return NULL;
	}
	return k;
}

#define CACHE_LOOKUP_MAX_KEYED 8

struct cache_lookup *cache_lookup_keyed(struct cache *c, const char *database, const char *const *tables,
					size_t ntables, const struct cache_keyed *keyed, size_t nkeyed,
					const unsigned char key[CACHE_KEY_LEN], cache_lookup_fn cb, void *arg)
{
	if (!nkeyed)
		return cache_lookup(c, database, tables, ntables, key, cb, arg);
	/* whole tables, with keyed ranges too wide to follow added; the "!k" key of each keyed
	 * table (persistent); then the value or bucket keys (expiring). Built on the stack: a
	 * keyed part that does not fit counts as its whole table. */
	const char *all_stack[32], **all = ntables + nkeyed <= 32 ? all_stack : calloc(ntables + nkeyed, sizeof(*all));
	if (!all)
		return NULL;
	char buf[4096], *bp = buf;
	size_t room = sizeof(buf), na = 0, np = 0, ne = 0;
	char *xk[CACHE_LOOKUP_MAX_KEYED * (CACHE_KEY_MAX_BUCKETS + 2)];
	char *exp[CACHE_LOOKUP_MAX_KEYED * (CACHE_KEY_MAX_BUCKETS + 1)];
	for (size_t i = 0; i < ntables; i++)
		all[na++] = tables[i];
	for (size_t i = 0; i < nkeyed; i++) {
		const struct cache_keyed *k = &keyed[i];
		int64_t b0 = cache_store_bucket(k->lo), b1 = cache_store_bucket(k->hi);
		size_t want = !k->range ? 1 : k->lo > k->hi ? 0 : (size_t)(b1 - b0 + 1);
		if (i >= CACHE_LOOKUP_MAX_KEYED || (k->range && k->lo <= k->hi && b1 - b0 >= CACHE_KEY_MAX_BUCKETS)) {
			all[na++] = k->table; /* too wide (or too many): the whole table */
			continue;
		}
		char *save_p = bp;
		size_t save_room = room, save_ne = ne;
		bool fit = (xk[np] = cache_store_value_key_in(c, database, k->table, CACHE_VKEY_KEYED, 0, &bp, &room));
		for (size_t j = 0; fit && j < want; j++)
			fit = (exp[ne++] = cache_store_value_key_in(c, database, k->table, k->range ? "~" : "=",
								    k->range ? b0 + (int64_t)j : k->lo, &bp, &room));
		if (!fit) {
			bp = save_p, room = save_room, ne = save_ne;
			all[na++] = k->table;
			continue;
		}
		np++;
	}
	struct cache_lookup *l;
	if (np) {
		qsort(xk, np, sizeof(*xk), cache_str_ptr_cmp);
		size_t o = 0;
		for (size_t i = 0; i < np; i++)
			if (o == 0 || strcmp(xk[o - 1], xk[i]) != 0)
				xk[o++] = xk[i];
		np = o;
		qsort(exp, ne, sizeof(*exp), cache_str_ptr_cmp);
		o = 0;
		for (size_t i = 0; i < ne; i++)
			if (o == 0 || strcmp(exp[o - 1], exp[i]) != 0)
				xk[np + o++] = exp[i];
		ne = o;
	}
	l = cache_lookup_make(c, database, all, na, xk, np, ne, key, cb, arg);
	if (l && np)
		c->stats.keyed_lookups++;
	if (all != all_stack)
		free(all);
	return l;
}

