/* Key constraints for the read cache's finer invalidation: in a cacheable read, the conjuncts
 * `[alias.]col = expr` and `[alias.]col BETWEEN expr AND expr` of the WHERE clause of the query
 * block that names a table (named once in the whole statement), and in a single UPDATE or
 * DELETE, the same conjuncts on its target with the columns an UPDATE sets. expr is integer
 * arithmetic over literals and $n parameters (+ - * and parentheses), kept as a small program
 * the pooler evaluates with the request's parameter values. Anything else yields no constraint,
 * and the table is then invalidated and depended on whole. */
#include "cache_sql_internal.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cache_sql_kctx {
	const struct cache_sql_lex *lx;
	const size_t *match;
	struct cache_sql_info *info;
	bool oom;
};

static bool kx_is(struct cache_sql_kctx *k, size_t i, size_t e, const char *w)
{
	return i < e && cache_sql_lex_is(k->lx, i, w);
}

static enum cache_sql_tok_type kx_type(struct cache_sql_kctx *k, size_t i)
{
	return k->lx->toks[i].type;
}

static bool kx_op(struct cache_sql_kctx *k, size_t i, size_t e, char ch)
{
	return i < e && kx_type(k, i) == CACHE_SQL_OP && k->lx->toks[i].len == 1 && k->lx->src[k->lx->toks[i].off] == ch;
}

/* The token after token i at the same paren depth (a '(' skips to after its ')'). */
static size_t kx_next(struct cache_sql_kctx *k, size_t i)
{
	if (kx_type(k, i) == CACHE_SQL_LPAREN && k->match[i] != SIZE_MAX)
		return k->match[i] + 1;
	return i + 1;
}

/* An unquoted identifier token, lower-cased into out (at most n - 1 bytes), or false. */
static bool kx_ident(struct cache_sql_kctx *k, size_t i, size_t e, char *out, size_t n)
{
	if (i >= e || kx_type(k, i) != CACHE_SQL_IDENT || k->lx->toks[i].len >= n)
		return false;
	const struct cache_sql_tok *t = &k->lx->toks[i];
	for (size_t j = 0; j < t->len; j++)
		out[j] = (char)tolower((unsigned char)k->lx->src[t->off + j]);
	out[t->len] = 0;
	return true;
}

/* --- expressions --- */

static bool kx_emit(struct cache_sql_kexpr *x, uint8_t op, int64_t v)
{
	if (x->n >= CACHE_SQL_KEXPR_MAX)
		return false;
	x->op[x->n] = op;
	x->v[x->n++] = v;
	return true;
}

static bool kx_sum(struct cache_sql_kctx *k, size_t *i, size_t e, struct cache_sql_kexpr *x, int depth);

static bool kx_primary(struct cache_sql_kctx *k, size_t *i, size_t e, struct cache_sql_kexpr *x, int depth)
{
	if (*i >= e || depth > 8)
		return false;
	const struct cache_sql_tok *t = &k->lx->toks[*i];
	const char *s = k->lx->src + t->off;
	if (kx_op(k, *i, e, '-') || kx_op(k, *i, e, '+')) {
		bool neg = s[0] == '-';
		(*i)++;
		return kx_primary(k, i, e, x, depth + 1) && (!neg || kx_emit(x, CACHE_SQL_KOP_NEG, 0));
	}
	if (t->type == CACHE_SQL_NUMBER || t->type == CACHE_SQL_PARAM) {
		size_t d = t->type == CACHE_SQL_PARAM ? 1 : 0;
		if (t->len <= d || t->len - d > 18)
			return false;
		int64_t v = 0;
		for (size_t j = d; j < t->len; j++) {
			if (!isdigit((unsigned char)s[j]))
				return false; /* 1.5, 1e3, 0x1f, 1_000: not an integer tether evaluates */
			v = v * 10 + (s[j] - '0');
		}
		(*i)++;
		return kx_emit(x, t->type == CACHE_SQL_PARAM ? CACHE_SQL_KOP_PARAM : CACHE_SQL_KOP_NUM, v);
	}
	if (t->type == CACHE_SQL_LPAREN && k->match[*i] != SIZE_MAX && k->match[*i] < e) {
		size_t close = k->match[*i], j = *i + 1;
		if (!kx_sum(k, &j, close, x, depth + 1) || j != close)
			return false;
		*i = close + 1;
		return true;
	}
	return false;
}

static bool kx_product(struct cache_sql_kctx *k, size_t *i, size_t e, struct cache_sql_kexpr *x, int depth)
{
	if (!kx_primary(k, i, e, x, depth))
		return false;
	while (kx_op(k, *i, e, '*')) {
		(*i)++;
		if (!kx_primary(k, i, e, x, depth) || !kx_emit(x, CACHE_SQL_KOP_MUL, 0))
			return false;
	}
	return true;
}

static bool kx_sum(struct cache_sql_kctx *k, size_t *i, size_t e, struct cache_sql_kexpr *x, int depth)
{
	if (!kx_product(k, i, e, x, depth))
		return false;
	while (kx_op(k, *i, e, '+') || kx_op(k, *i, e, '-')) {
		uint8_t op = k->lx->src[k->lx->toks[*i].off] == '+' ? CACHE_SQL_KOP_ADD : CACHE_SQL_KOP_SUB;
		(*i)++;
		if (!kx_product(k, i, e, x, depth) || !kx_emit(x, op, 0))
			return false;
	}
	return true;
}

/* The whole of [b, e) as one expression. */
static bool kx_expr(struct cache_sql_kctx *k, size_t b, size_t e, struct cache_sql_kexpr *x)
{
	memset(x, 0, sizeof(*x));
	size_t i = b;
	return b < e && kx_sum(k, &i, e, x, 0) && i == e;
}

static bool kx_mul(int64_t a, int64_t b, int64_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

int cache_sql_key_eval(const struct cache_sql_kexpr *x, cache_sql_param_fn param, void *arg, int64_t *out)
{
	int64_t st[CACHE_SQL_KEXPR_MAX];
	size_t sp = 0;
	for (size_t i = 0; i < x->n; i++) {
		int64_t a, b, r;
		switch (x->op[i]) {
		case CACHE_SQL_KOP_NUM:
			st[sp++] = x->v[i];
			break;
		case CACHE_SQL_KOP_PARAM:
			if (!param || param(arg, (int)x->v[i], &st[sp]) != 0)
				return -1;
			sp++;
			break;
		case CACHE_SQL_KOP_NEG:
			if (sp < 1 || st[sp - 1] == INT64_MIN)
				return -1;
			st[sp - 1] = -st[sp - 1];
			break;
		default:
			if (sp < 2)
				return -1;
			b = st[--sp];
			a = st[--sp];
			if (x->op[i] == CACHE_SQL_KOP_ADD ? __builtin_add_overflow(a, b, &r)
			    : x->op[i] == CACHE_SQL_KOP_SUB ? __builtin_sub_overflow(a, b, &r)
							    : !kx_mul(a, b, &r))
				return -1;
			st[sp++] = r;
		}
	}
	if (sp != 1)
		return -1;
	*out = st[0];
	return 0;
}

/* --- conjuncts --- */

static void kx_add(struct cache_sql_kctx *k, struct cache_sql_key **v, size_t *n, const struct cache_sql_key *key)
{
	if (*n >= 8) {
		free(key->table);
		free(key->column);
		return;
	}
	struct cache_sql_key *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv) {
		free(key->table);
		free(key->column);
		k->oom = true;
		return;
	}
	*v = nv;
	nv[(*n)++] = *key;
}

static const char *const kx_clause_words[] = { "group", "having", "window", "order", "limit", "offset", "fetch",
					       "for", "union", "intersect", "except", "returning", NULL };

static bool kx_clause_end(struct cache_sql_kctx *k, size_t i, size_t e)
{
	for (size_t w = 0; kx_clause_words[w]; w++)
		if (kx_is(k, i, e, kx_clause_words[w]))
			return true;
	return false;
}

/* One conjunct [b, e) of a WHERE clause: `[q.]col = expr` or `[q.]col BETWEEN expr AND expr`
 * where q is `qual` (the table's alias or name); added to (v, n) for `table`. */
static void kx_conjunct(struct cache_sql_kctx *k, size_t b, size_t e, const char *table, const char *qual,
			struct cache_sql_key **v, size_t *n)
{
	char q[64], col[64];
	size_t i = b;
	if (i + 2 < e && kx_type(k, i + 1) == CACHE_SQL_DOT) {
		if (!kx_ident(k, i, e, q, sizeof(q)) || strcmp(q, qual) != 0)
			return;
		i += 2;
	}
	if (!kx_ident(k, i, e, col, sizeof(col)))
		return;
	i++;
	struct cache_sql_key key = { 0 };
	if (kx_op(k, i, e, '=')) {
		if (!kx_expr(k, i + 1, e, &key.lo))
			return;
		key.hi = key.lo;
	} else if (kx_is(k, i, e, "between") && !kx_is(k, i + 1, e, "symmetric")) {
		size_t a = i + 1, j = a;
		while (j < e && !kx_is(k, j, e, "and"))
			j = kx_next(k, j);
		if (j >= e || !kx_expr(k, a, j, &key.lo) || !kx_expr(k, j + 1, e, &key.hi))
			return;
		key.range = true;
	} else {
		return;
	}
	key.table = strdup(table);
	key.column = strdup(col);
	if (!key.table || !key.column) {
		free(key.table);
		free(key.column);
		k->oom = true;
		return;
	}
	kx_add(k, v, n, &key);
}

/* The WHERE clause from token w ("where") to the clause's end, split at top-level AND (not
 * BETWEEN's); nothing when it has a top-level OR. */
static void kx_where(struct cache_sql_kctx *k, size_t w, size_t e, const char *table, const char *qual,
		     struct cache_sql_key **v, size_t *n)
{
	size_t end = w + 1;
	while (end < e && !kx_clause_end(k, end, e))
		end = kx_next(k, end);
	for (size_t i = w + 1; i < end; i = kx_next(k, i))
		if (kx_is(k, i, end, "or") || kx_is(k, i, end, "current"))
			return;
	size_t cb = w + 1;
	bool between = false;
	for (size_t i = w + 1; i <= end; i = i < end ? kx_next(k, i) : end + 1) {
		if (i < end && kx_is(k, i, end, "between")) {
			between = true;
			continue;
		}
		if (i < end && !kx_is(k, i, end, "and"))
			continue;
		if (i < end && between) {
			between = false; /* BETWEEN's own AND */
			continue;
		}
		kx_conjunct(k, cb, i, table, qual, v, n);
		cb = i + 1;
		between = false;
	}
}

/* Words that follow a FROM item rather than name its alias. */
static bool kx_not_alias(struct cache_sql_kctx *k, size_t i, size_t e)
{
	static const char *const words[] = { "where", "join", "inner", "left", "right", "full", "cross", "natural",
					     "on", "using", "group", "having", "window", "order", "limit", "offset",
					     "fetch", "for", "union", "intersect", "except", "tablesample", "set",
					     "returning", NULL };
	for (size_t w = 0; words[w]; w++)
		if (kx_is(k, i, e, words[w]))
			return true;
	return false;
}

/* The alias after a table name ending before token i (`[as] alias`), or the name's last part. */
static size_t kx_alias(struct cache_sql_kctx *k, size_t i, size_t e, size_t name_last, char *out, size_t n)
{
	if (kx_is(k, i, e, "as") && kx_ident(k, i + 1, e, out, n))
		return i + 2;
	if (i < e && kx_type(k, i) == CACHE_SQL_IDENT && !kx_not_alias(k, i, e) && kx_ident(k, i, e, out, n))
		return i + 1;
	if (!kx_ident(k, name_last, e, out, n))
		out[0] = 0; /* a quoted name: no qualifier matches */
	return i;
}

/* How often identifier tokens spell the last part of `name` in [b, e), other than as a
 * qualifier (followed by '.': of a column, or a schema of something else). */
static size_t kx_count(struct cache_sql_kctx *k, size_t b, size_t e, const char *last)
{
	size_t count = 0;
	for (size_t i = b; i < e; i++) {
		if (i + 1 < e && kx_type(k, i + 1) == CACHE_SQL_DOT)
			continue;
		if (cache_sql_lex_is(k->lx, i, last) || kx_type(k, i) == CACHE_SQL_QIDENT)
			count++; /* (any quoted identifier counts: it could spell the name) */
	}
	return count;
}

static const char *kx_last_part(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? dot + 1 : name;
}

/* Reads: for each table the statement names once, the conjuncts of its block's WHERE. */
static void kx_reads(struct cache_sql_kctx *k, size_t b, size_t e)
{
	struct cache_sql_info *info = k->info;
	for (size_t t = 0; t < info->reads.n; t++) {
		const char *name = info->reads.v[t], *last = kx_last_part(name);
		if (strchr(name, '"') || kx_count(k, b, e, last) != 1)
			continue;
		size_t p = SIZE_MAX; /* the name's (only) occurrence, at its last part */
		for (size_t i = b; i < e && p == SIZE_MAX; i++)
			if (!(i + 1 < e && kx_type(k, i + 1) == CACHE_SQL_DOT) && cache_sql_lex_is(k->lx, i, last))
				p = i;
		if (p == SIZE_MAX)
			continue;
		/* the block: back to its SELECT at this depth, forward to its end */
		size_t s = p;
		bool found = false;
		while (s > b) {
			s--;
			enum cache_sql_tok_type ty = kx_type(k, s);
			if (ty == CACHE_SQL_RPAREN && k->match[s] != SIZE_MAX && k->match[s] >= b) {
				s = k->match[s];
				continue;
			}
			if (ty == CACHE_SQL_LPAREN)
				break; /* the enclosing paren: no SELECT of this block before it */
			if (kx_is(k, s, e, "select")) {
				found = true;
				break;
			}
		}
		if (!found)
			continue;
		/* its end: the enclosing ')' or a set operation; NATURAL / USING joins: not followed */
		size_t end = p;
		bool plain = true;
		while (end < e && kx_type(k, end) != CACHE_SQL_RPAREN && !kx_is(k, end, e, "union") &&
		       !kx_is(k, end, e, "intersect") && !kx_is(k, end, e, "except")) {
			if (kx_is(k, end, e, "natural") || kx_is(k, end, e, "using"))
				plain = false;
			end = kx_next(k, end);
		}
		if (end > e)
			end = e;
		for (size_t i = s; i < p; i = kx_next(k, i))
			if (kx_is(k, i, p, "natural") || kx_is(k, i, p, "using"))
				plain = false;
		if (!plain)
			continue;
		char qual[64];
		size_t i = kx_alias(k, p + 1, end, p, qual, sizeof(qual));
		for (; i < end; i = kx_next(k, i)) {
			if (kx_is(k, i, end, "where")) {
				kx_where(k, i, end, name, qual, &info->rkeys, &info->nrkeys);
				break;
			}
		}
	}
}

/* The columns an UPDATE's SET list assigns, [b, e); false when it cannot tell. */
static bool kx_set_cols(struct cache_sql_kctx *k, size_t b, size_t e)
{
	struct cache_sql_info *info = k->info;
	size_t i = b;
	while (i < e) {
		char col[64];
		if (kx_type(k, i) == CACHE_SQL_LPAREN && k->match[i] != SIZE_MAX && k->match[i] < e) {
			for (size_t j = i + 1; j < k->match[i]; j++) {
				if (kx_type(k, j) == CACHE_SQL_COMMA)
					continue;
				if (!kx_ident(k, j, e, col, sizeof(col)))
					return false;
				cache_sql_key_set_add(info, col);
			}
		} else if (kx_ident(k, i, e, col, sizeof(col))) {
			cache_sql_key_set_add(info, col);
		} else {
			return false;
		}
		while (i < e && kx_type(k, i) != CACHE_SQL_COMMA)
			i = kx_next(k, i);
		i++;
	}
	return true;
}

/* A single UPDATE (no FROM) or DELETE (no USING) with a WHERE clause, no WITH. */
static void kx_write(struct cache_sql_kctx *k, size_t b, size_t e)
{
	struct cache_sql_info *info = k->info;
	size_t i = b, nx;
	bool update = kx_is(k, b, e, "update");
	if (update)
		i = b + 1;
	else if (kx_is(k, b, e, "delete") && kx_is(k, b + 1, e, "from"))
		i = b + 2;
	else
		return;
	if (kx_is(k, i, e, "only"))
		i++;
	char *name = cache_sql_name_at(k->lx, i, e, &nx);
	if (!name)
		return;
	char qual[64];
	i = kx_alias(k, nx, e, nx - 1, qual, sizeof(qual));
	size_t where = SIZE_MAX;
	if (update) {
		if (!kx_is(k, i, e, "set")) {
			free(name);
			return;
		}
		size_t s = i + 1, j = s;
		while (j < e && !kx_is(k, j, e, "where") && !kx_is(k, j, e, "from") && !kx_is(k, j, e, "returning"))
			j = kx_next(k, j);
		if (!kx_is(k, j, e, "where") || !kx_set_cols(k, s, j)) {
			free(name);
			cache_sql_key_set_free(info);
			return;
		}
		where = j;
	} else {
		if (kx_is(k, i, e, "where"))
			where = i;
	}
	if (where != SIZE_MAX)
		kx_where(k, where, e, name, qual, &info->wkeys, &info->nwkeys);
	free(name);
	if (!info->nwkeys)
		cache_sql_key_set_free(info);
}

int cache_sql_keys(const struct cache_sql_lex *lx, const size_t *match, size_t b, size_t e, struct cache_sql_info *info)
{
	struct cache_sql_kctx k = { lx, match, info, false };
	if (info->cacheable && info->reads_complete)
		kx_reads(&k, b, e);
	else if (!info->invalidate_all && !info->ddl && info->writes.n == 1 && info->nstatements == 1)
		kx_write(&k, b, e);
	return k.oom ? -1 : 0;
}

void cache_sql_key_set_add(struct cache_sql_info *info, const char *col)
{
	if (info->nwset == SIZE_MAX)
		return; /* already "every column" */
	char **nv = realloc(info->wset, (info->nwset + 1) * sizeof(*nv));
	char *d = strdup(col);
	if (nv)
		info->wset = nv;
	if (!nv || !d) {
		free(d);
		for (size_t i = 0; i < info->nwset; i++)
			free(info->wset[i]);
		info->nwset = SIZE_MAX; /* unknown: every column */
		return;
	}
	nv[info->nwset++] = d;
}

void cache_sql_key_set_free(struct cache_sql_info *info)
{
	for (size_t i = 0; info->nwset != SIZE_MAX && i < info->nwset; i++)
		free(info->wset[i]);
	free(info->wset);
	info->wset = NULL;
	info->nwset = 0;
}

bool cache_sql_key_sets(const struct cache_sql_info *info, const char *col)
{
	if (info->nwset == SIZE_MAX)
		return true;
	for (size_t i = 0; i < info->nwset; i++)
		if (strcmp(info->wset[i], col) == 0)
			return true;
	return false;
}

static void kx_free_keys(struct cache_sql_key *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].table);
		free(v[i].column);
	}
	free(v);
}

void cache_sql_keys_free(struct cache_sql_info *info)
{
	kx_free_keys(info->rkeys, info->nrkeys);
	kx_free_keys(info->wkeys, info->nwkeys);
	info->rkeys = info->wkeys = NULL;
	info->nrkeys = info->nwkeys = 0;
	cache_sql_key_set_free(info);
}
