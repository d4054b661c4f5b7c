/* Key values for the read cache's finer invalidation: the integer parameters of a Bind (text,
 * or binary int2/int4/int8), the analyzer's key constraints evaluated with them, and which of
 * them the catalog confirms (the constraint is on the table's one-column integer primary key). */
#include <stdlib.h>
#include <string.h>

#include "pg_cache_internal.h"
#include "pg_catalog.h"
#include "pg_internal.h"

static uint16_t pg_cache_u16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t pg_cache_u32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* A strict decimal integer (optional '-', 1 to 18 digits), as PostgreSQL's integer input reads
 * it: anything else (spaces, '+', a fraction) is no value here. */
static int pg_cache_text_int(const unsigned char *s, size_t n, int64_t *v)
{
	size_t i = 0;
	bool neg = n > 0 && s[0] == '-';
	if (neg)
		i = 1;
	if (n == i || n - i > 18)
		return -1;
	int64_t x = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (s[i] - '0');
	}
	*v = neg ? -x : x;
	return 0;
}

int pg_cache_bind_param(void *arg, int number, int64_t *v)
{
	const struct pg_cache_binds *b = arg;
	const unsigned char *p = b->rest, *end = b->rest + b->len;
	if (!p || number < 1 || end - p < 2)
		return -1;
	uint16_t nf = pg_cache_u16(p);
	p += 2;
	if ((size_t)(end - p) < 2u * nf + 2)
		return -1;
	const unsigned char *fmts = p;
	p += 2u * nf;
	uint16_t np = pg_cache_u16(p);
	p += 2;
	if (number > np)
		return -1;
	if (nf > 1 && nf != np)
		return -1;
	int16_t fmt = nf == 0 ? 0 : (int16_t)pg_cache_u16(fmts + 2 * (nf == 1 ? 0 : (size_t)(number - 1)));
	uint32_t oid = 0;
	if (b->types && (size_t)number <= b->ntypes)
		oid = pg_cache_u32(b->types + 4 * (size_t)(number - 1));
	/* the parameter's type: unspecified (the server infers the column's or the operator's
	 * integer type) or an integer type; others are not followed */
	if (oid != 0 && oid != 20 && oid != 21 && oid != 23)
		return -1;
	for (int k = 1; k <= np; k++) {
		if (end - p < 4)
			return -1;
		int32_t len = (int32_t)pg_cache_u32(p);
		p += 4;
		if (len > 0 && end - p < len)
			return -1;
		if (k == number) {
			if (len < 0)
				return -1; /* NULL matches no row: nothing to key */
			if (fmt == 0)
				return pg_cache_text_int(p, (size_t)len, v);
			if (fmt != 1)
				return -1;
			if (len == 2 && (oid == 0 || oid == 21))
				*v = (int16_t)pg_cache_u16(p);
			else if (len == 4 && (oid == 0 || oid == 23))
				*v = (int32_t)pg_cache_u32(p);
			else if (len == 8 && (oid == 0 || oid == 20))
				*v = (int64_t)(((uint64_t)pg_cache_u32(p) << 32) | pg_cache_u32(p + 4));
			else
				return -1;
			return 0;
		}
		if (len > 0)
			p += len;
	}
	return -1;
}

void pg_cache_binds_of(struct pg_cache_binds *b, const struct pg_cache_stmt *st, const unsigned char *rest,
		       size_t len)
{
	b->rest = rest;
	b->len = len;
	b->types = NULL;
	b->ntypes = 0;
	if (st && st->types_off + 2 <= st->body_len) {
		size_t nt = pg_cache_u16(st->body + st->types_off);
		if (st->types_off + 2 + 4 * nt <= st->body_len) {
			b->types = st->body + st->types_off + 2;
			b->ntypes = nt;
		}
	}
}

void pg_cache_rkeys_eval(struct pg_cache_client *cc, const struct cache_sql_info *info, const struct pg_cache_binds *b)
{
	cc->nrk = 0;
	for (size_t i = 0; i < info->nrkeys && i < PG_CACHE_MAX_RKEYS; i++) {
		struct pg_cache_rkv *k = &cc->rk[cc->nrk++];
		cache_sql_param_fn fn = b ? pg_cache_bind_param : NULL;
		k->ok = cache_sql_key_eval(&info->rkeys[i].lo, fn, (void *)b, &k->lo) == 0 &&
			cache_sql_key_eval(&info->rkeys[i].hi, fn, (void *)b, &k->hi) == 0;
	}
}

bool pg_cache_read_keyed(const struct pg_cache_client *cc, const struct cache_sql_info *info, const char *name,
			 const struct pg_catalog_deps *d, struct cache_keyed *out)
{
	if (!d->found || d->nocache || d->calls || d->nreads != 1 || !d->key_column)
		return false;
	for (size_t j = 0; j < cc->nrk && j < info->nrkeys; j++) {
		const struct cache_sql_key *k = &info->rkeys[j];
		if (cc->rk[j].ok && strcmp(k->table, name) == 0 && strcmp(k->column, d->key_column) == 0) {
			*out = (struct cache_keyed){ d->reads[0], cc->rk[j].lo, cc->rk[j].hi, k->range };
			return true;
		}
	}
	return false;
}

int pg_cache_wkey_make(const struct cache_sql_info *info, const struct pg_cache_binds *b, struct pg_cache_wkey *w)
{
	memset(w, 0, sizeof(*w));
	if (info->nwkeys == 0 || info->writes.n != 1 || info->invalidate_all || info->ddl)
		return 0;
	for (size_t i = 0; i < info->nwkeys && w->n < PG_CACHE_WKEY_COLS; i++) {
		const struct cache_sql_key *k = &info->wkeys[i];
		int64_t v;
		if (k->range || strcmp(k->table, info->writes.v[0]) != 0 || cache_sql_key_sets(info, k->column) ||
		    cache_sql_key_eval(&k->lo, b ? pg_cache_bind_param : NULL, (void *)b, &v) != 0)
			continue;
		if (!(w->col[w->n] = strdup(k->column)))
			goto oom;
		w->value[w->n++] = v;
	}
	if (!w->n)
		return 0;
	if (!(w->table = strdup(info->writes.v[0])))
		goto oom;
	return 1;
oom:
	pg_cache_wkey_free(w);
	return -1;
}

void pg_cache_wkey_free(struct pg_cache_wkey *w)
{
	free(w->table);
	for (size_t i = 0; i < w->n; i++)
		free(w->col[i]);
	memset(w, 0, sizeof(*w));
}

int pg_cache_wkey_add(struct pg_cache_client *cc, struct pg_cache_wkey *w)
{
	for (size_t j = 0; j < cc->nwk; j++) {
		const struct pg_cache_wkey *o = &cc->wk[j];
		bool same = o->n == w->n && strcmp(o->table, w->table) == 0;
		for (size_t i = 0; same && i < w->n; i++)
			same = o->value[i] == w->value[i] && strcmp(o->col[i], w->col[i]) == 0;
		if (same) {
			pg_cache_wkey_free(w);
			return 0;
		}
	}
	if (cc->nwk == cc->wkcap) {
		size_t cap = cc->wkcap ? cc->wkcap * 2 : 4;
		struct pg_cache_wkey *nv = realloc(cc->wk, cap * sizeof(*nv));
		if (!nv) {
			pg_cache_wkey_free(w);
			return -1;
		}
		cc->wk = nv;
		cc->wkcap = cap;
	}
	cc->wk[cc->nwk++] = *w; /* moved */
	memset(w, 0, sizeof(*w));
	return 0;
}

int pg_cache_track_keyed(struct pg_cache_client *cc, const struct cache_sql_info *info, const struct pg_cache_binds *b,
			 bool *done)
{
	*done = false;
	if (cc->nwk >= PG_CACHE_MAX_WKEYS)
		return 0; /* many: the whole table */
	struct pg_cache_wkey w;
	int rc = pg_cache_wkey_make(info, b, &w);
	if (rc <= 0)
		return rc;
	*done = true;
	return pg_cache_wkey_add(cc, &w);
}

bool pg_cache_wkey_value(const struct pg_cache_wkey *w, const char *column, int64_t *v)
{
	for (size_t i = 0; column && i < w->n; i++) {
		if (strcmp(w->col[i], column) == 0) {
			*v = w->value[i];
			return true;
		}
	}
	return false;
}

void pg_cache_wkeys_clear(struct pg_cache_client *cc)
{
	for (size_t i = 0; i < cc->nwk; i++)
		pg_cache_wkey_free(&cc->wk[i]);
	cc->nwk = 0;
}
