/* Statement classification for the read cache: over the lexer's tokens, decides per statement
 * whether it is a cacheable read (and which tables it names), or what a write must invalidate:
 * its target tables, or everything when tether cannot tell (it always errs towards more). */
#include "cache_sql_internal.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What one statement is, for the whole-string verdict. */
enum cache_sql_kind { CACHE_SQL_K_READ, CACHE_SQL_K_OTHER };

static bool cache_sql_is_name(struct cache_sql_ctx *c, size_t i, size_t e)
{
	return i < e && (cache_sql_type(c, i) == CACHE_SQL_IDENT || cache_sql_type(c, i) == CACHE_SQL_QIDENT);
}

void cache_sql_all(struct cache_sql_ctx *c, const char *why)
{
	if (!c->info->invalidate_all) {
		c->info->invalidate_all = true;
		c->info->why_all = why;
	}
}

static void cache_sql_uncacheable(struct cache_sql_ctx *c, const char *why)
{
	if (!c->info->why_not)
		c->info->why_not = why;
}

static void cache_sql_names_add(struct cache_sql_ctx *c, struct cache_sql_names *l, char *name)
{
	if (!name)
		return;
	char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv) {
		free(name);
		c->oom = true;
		return;
	}
	l->v = nv;
	l->v[l->n++] = name;
}

static int cache_sql_names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void cache_sql_names_finish(struct cache_sql_names *l)
{
	if (l->n < 2)
		return;
	qsort(l->v, l->n, sizeof(*l->v), cache_sql_names_cmp);
	size_t o = 1;
	for (size_t i = 1; i < l->n; i++) {
		if (strcmp(l->v[i], l->v[o - 1]) == 0)
			free(l->v[i]);
		else
			l->v[o++] = l->v[i];
	}
	l->n = o;
}

static void cache_sql_names_free(struct cache_sql_names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool cache_sql_names_has(const struct cache_sql_names *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

/* One identifier token as PostgreSQL resolves it, written so regclass input reads it back:
 * unquoted lower-cased; quoted kept exactly, re-quoted unless it is a plain lower-case name. */
static size_t cache_sql_part(struct cache_sql_ctx *c, size_t i, char *out)
{
	const struct cache_sql_tok *t = &c->lx->toks[i];
	const char *s = c->lx->src + t->off;
	size_t o = 0;
	if (t->type == CACHE_SQL_IDENT) {
		for (size_t k = 0; k < t->len; k++)
			out[o++] = (char)((unsigned char)s[k] < 0x80 ? tolower((unsigned char)s[k]) : s[k]);
		return o;
	}
	if (t->len >= 2 && s[0] == '"') {
		bool plain = t->len > 2 && (islower((unsigned char)s[1]) || s[1] == '_');
		for (size_t k = 1; k + 1 < t->len; k++) {
			unsigned char ch = (unsigned char)s[k];
			if (!(islower(ch) || isdigit(ch) || ch == '_' || ch == '$'))
				plain = false;
		}
		if (plain) {
			memcpy(out, s + 1, t->len - 2);
			return t->len - 2;
		}
	}
	memcpy(out, s, t->len); /* already quoted (and U&"..." stays as written) */
	return t->len;
}

/* The (qualified) name starting at token i, or NULL; *next is the token after it. */
static char *cache_sql_qualname(struct cache_sql_ctx *c, size_t i, size_t e, size_t *next)
{
	*next = i;
	if (!cache_sql_is_name(c, i, e))
		return NULL;
	size_t j = i, cap = 1;
	for (;;) {
		cap += c->lx->toks[j].len + 1;
		if (j + 2 < e && cache_sql_type(c, j + 1) == CACHE_SQL_DOT && cache_sql_is_name(c, j + 2, e))
			j += 2;
		else
			break;
	}
	char *out = malloc(cap);
	if (!out) {
		c->oom = true;
		return NULL;
	}
	size_t o = 0;
	for (size_t k = i; k <= j; k += 2) {
		if (k > i)
			out[o++] = '.';
		o += cache_sql_part(c, k, out + o);
	}
	out[o] = '\0';
	*next = j + 1;
	return out;
}

char *cache_sql_name_at(const struct cache_sql_lex *lx, size_t i, size_t e, size_t *next)
{
	struct cache_sql_ctx c = { .lx = lx };
	return cache_sql_qualname(&c, i, e, next);
}

/* Skips `if exists` / `if not exists`. */
size_t cache_sql_skip_if(struct cache_sql_ctx *c, size_t i)
{
	if (cache_sql_is(c, i, "if") && cache_sql_is(c, i + 1, "exists"))
		return i + 2;
	if (cache_sql_is(c, i, "if") && cache_sql_is(c, i + 1, "not") && cache_sql_is(c, i + 2, "exists"))
		return i + 3;
	return i;
}

bool cache_sql_has_word(struct cache_sql_ctx *c, size_t b, size_t e, const char *w)
{
	for (size_t i = b; i < e; i++)
		if (cache_sql_is(c, i, w))
			return true;
	return false;
}

/* Records the table name at i as a write target; returns false when none is there. */
bool cache_sql_target(struct cache_sql_ctx *c, size_t i, size_t e, size_t *next)
{
	if (cache_sql_is(c, i, "only"))
		i++;
	char *name = cache_sql_qualname(c, i, e, next);
	if (!name)
		return false;
	cache_sql_names_add(c, &c->info->writes, name);
	return true;
}

/* Function calls in [b, e): unknown ones may write anything (invalidate everything, never
 * cache); volatile ones make a read uncacheable. */
void cache_sql_scan_calls(struct cache_sql_ctx *c, size_t b, size_t e)
{
	for (size_t i = b; i < e; i++) {
		if (cache_sql_type(c, i) != CACHE_SQL_OP)
			continue;
		const struct cache_sql_tok *t = &c->lx->toks[i];
		char op[64];
		bool known = false;
		if (t->len < sizeof(op)) {
			memcpy(op, c->lx->src + t->off, t->len);
			op[t->len] = 0;
			known = cache_sql_operator_builtin(op);
		}
		if (!known) {
			cache_sql_all(c, "uses an operator tether does not know");
			cache_sql_uncacheable(c, "uses an operator tether does not know");
		}
	}
	for (size_t i = b; i + 1 < e; i++) {
		if (!cache_sql_is_name(c, i, e) || cache_sql_type(c, i + 1) != CACHE_SQL_LPAREN)
			continue;
		size_t start = i;
		while (start >= b + 2 && cache_sql_type(c, start - 1) == CACHE_SQL_DOT &&
		       cache_sql_is_name(c, start - 2, e))
			start -= 2;
		if (start > b) {
			size_t p = start - 1;
			enum cache_sql_tok_type pt = cache_sql_type(c, p);
			if (pt == CACHE_SQL_CAST || pt == CACHE_SQL_QIDENT || pt == CACHE_SQL_RPAREN ||
			    pt == CACHE_SQL_STRING || pt == CACHE_SQL_NUMBER || pt == CACHE_SQL_RBRACK)
				continue; /* a type modifier or an alias's column list */
			if (pt == CACHE_SQL_IDENT) {
				char w[64];
				const struct cache_sql_tok *t = &c->lx->toks[p];
				if (t->len >= sizeof(w))
					continue;
				for (size_t k = 0; k < t->len; k++)
					w[k] = (char)tolower((unsigned char)c->lx->src[t->off + k]);
				w[t->len] = '\0';
				if (!cache_sql_funcs_syntax_word(w) || strcmp(w, "into") == 0 || strcmp(w, "as") == 0 ||
				    strcmp(w, "references") == 0 || strcmp(w, "with") == 0 ||
				    strcmp(w, "recursive") == 0 || strcmp(w, "table") == 0 || strcmp(w, "only") == 0)
					continue; /* `t x(a)`, `insert into t(a)`, `as t(a)`, `with t(a) as` */
				if (strcmp(w, "copy") == 0)
					continue;
			}
		}
		size_t close = c->match[i + 1];
		if (close != SIZE_MAX && cache_sql_is(c, close + 1, "as") && start > b &&
		    (cache_sql_is(c, start - 1, "with") || cache_sql_is(c, start - 1, "recursive") ||
		     cache_sql_type(c, start - 1) == CACHE_SQL_COMMA) &&
		    (cache_sql_type(c, close + 2) == CACHE_SQL_LPAREN || cache_sql_is(c, close + 2, "materialized") ||
		     cache_sql_is(c, close + 2, "not")))
			continue; /* a CTE's column list: `with t(a) as (...)`, `, t(a) as materialized (...)` */
		char part[256];
		const struct cache_sql_tok *t = &c->lx->toks[i];
		if (t->len >= sizeof(part) / 2) {
			cache_sql_all(c, "calls a function tether does not know");
			cache_sql_uncacheable(c, "calls a function tether does not know");
			continue;
		}
		size_t n = cache_sql_part(c, i, part);
		part[n] = '\0';
		bool qualified = start != i;
		if (qualified) {
			char schema[256];
			const struct cache_sql_tok *st = &c->lx->toks[i - 2];
			if (st->len >= sizeof(schema) / 2 || i - 2 != start)
				schema[0] = '\0';
			else
				schema[cache_sql_part(c, i - 2, schema)] = '\0';
			if (strcmp(schema, "pg_catalog") != 0) {
				cache_sql_all(c, "calls a function tether does not know");
				cache_sql_uncacheable(c, "calls a function tether does not know");
				continue;
			}
		} else if (t->type == CACHE_SQL_IDENT && cache_sql_funcs_syntax_word(part)) {
			continue;
		}
		if (cache_sql_function_volatile(part)) {
			cache_sql_uncacheable(c, "calls a volatile function");
			continue;
		}
		if (cache_sql_function_safe(part))
			continue;
		bool extra = false;
		for (size_t k = 0; c->opts && k < c->opts->nsafe_functions; k++)
			if (strcmp(c->opts->safe_functions[k], part) == 0)
				extra = true;
		if (!extra) {
			cache_sql_all(c, "calls a function tether does not know");
			cache_sql_uncacheable(c, "calls a function tether does not know");
		}
	}
}

/* CTE names (`with [recursive] x [(cols)] as [not] [materialized] (`), left out of reads. */
static void cache_sql_collect_ctes(struct cache_sql_ctx *c, size_t b, size_t e)
{
	for (size_t i = b; i + 2 < e; i++) {
		bool intro = cache_sql_is(c, i, "with") || cache_sql_is(c, i, "recursive") ||
			     cache_sql_type(c, i) == CACHE_SQL_COMMA;
		if (!intro || !cache_sql_is_name(c, i + 1, e))
			continue;
		size_t j = i + 2;
		if (j < e && cache_sql_type(c, j) == CACHE_SQL_LPAREN && c->match[j] != SIZE_MAX)
			j = c->match[j] + 1;
		if (!cache_sql_is(c, j, "as"))
			continue;
		j++;
		if (cache_sql_is(c, j, "not"))
			j++;
		if (cache_sql_is(c, j, "materialized"))
			j++;
		if (j < e && cache_sql_type(c, j) == CACHE_SQL_LPAREN) {
			size_t nx;
			cache_sql_names_add(c, &c->ctes, cache_sql_qualname(c, i + 1, e, &nx));
		}
	}
}

static bool cache_sql_clause_end(struct cache_sql_ctx *c, size_t i)
{
	static const char *const words[] = { "where", "group", "having", "window", "order", "limit", "offset",
					     "fetch", "for", "union", "intersect", "except", "returning", "select",
					     "into", NULL };
	for (size_t k = 0; words[k]; k++)
		if (cache_sql_is(c, i, words[k]))
			return true;
	return false;
}

/* The tables a read names in FROM / JOIN items (and TABLE x), walking nested subqueries. */
static void cache_sql_collect_reads(struct cache_sql_ctx *c, size_t b, size_t e)
{
	bool infrom[CACHE_SQL_MAX_DEPTH] = { false };
	size_t open[CACHE_SQL_MAX_DEPTH];
	int depth = 0;
	bool expect = false;
	c->info->reads_complete = true;
	if (cache_sql_is(c, b, "table")) {
		size_t nx, i = b + 1;
		if (cache_sql_is(c, i, "only"))
			i++;
		char *n = cache_sql_qualname(c, i, e, &nx);
		if (n)
			cache_sql_names_add(c, &c->info->reads, n);
		else
			c->info->reads_complete = false;
		return;
	}
	for (size_t i = b; i < e; i++) {
		enum cache_sql_tok_type t = cache_sql_type(c, i);
		if (t == CACHE_SQL_LPAREN) {
			bool item = expect;
			expect = false;
			if (depth + 1 >= CACHE_SQL_MAX_DEPTH) {
				c->info->reads_complete = false;
				return;
			}
			open[++depth] = i;
			infrom[depth] = false;
			if (item && !cache_sql_is(c, i + 1, "select") && !cache_sql_is(c, i + 1, "with") &&
			    !cache_sql_is(c, i + 1, "values") && !cache_sql_is(c, i + 1, "table") &&
			    !(i + 1 < e && cache_sql_type(c, i + 1) == CACHE_SQL_LPAREN)) {
				infrom[depth] = true; /* a parenthesized join: `from (a join b on ...)` */
				expect = true;
			}
			continue;
		}
		if (t == CACHE_SQL_RPAREN) {
			if (depth > 0)
				infrom[depth--] = false;
			expect = false;
			continue;
		}
		if (expect) {
			if (cache_sql_is(c, i, "only") || cache_sql_is(c, i, "lateral"))
				continue;
			expect = false;
			if (cache_sql_is(c, i, "rows") && cache_sql_is(c, i + 1, "from"))
				continue; /* ROWS FROM (f(), g()) */
			size_t nx;
			char *n = cache_sql_qualname(c, i, e, &nx);
			if (!n) {
				c->info->reads_complete = false;
				continue;
			}
			if (nx < e && cache_sql_type(c, nx) == CACHE_SQL_LPAREN) {
				free(n); /* a set-returning function */
			} else if (cache_sql_names_has(&c->ctes, n)) {
				free(n);
			} else {
				cache_sql_names_add(c, &c->info->reads, n);
			}
			i = nx - 1;
			continue;
		}
		if (cache_sql_is(c, i, "from")) {
			if (depth > 0 && c->callpar[open[depth]])
				continue; /* extract(x from y), substring(s from 2), trim(both from s) */
			if (i > b && cache_sql_is(c, i - 1, "distinct"))
				continue; /* IS DISTINCT FROM */
			infrom[depth] = true;
			expect = true;
		} else if (infrom[depth] && (cache_sql_is(c, i, "join") || t == CACHE_SQL_COMMA)) {
			expect = true;
		} else if (infrom[depth] && cache_sql_clause_end(c, i)) {
			infrom[depth] = false;
		}
	}
	if (expect)
		c->info->reads_complete = false;
}

/* Targets of INSERT/UPDATE/DELETE/MERGE anywhere in [b, e) (data-modifying CTEs included).
 * Returns how many DML keywords were found; sets *missed when one had no parsable target. */
static size_t cache_sql_dml_targets(struct cache_sql_ctx *c, size_t b, size_t e, bool *missed)
{
	size_t found = 0, nx;
	for (size_t i = b; i < e; i++) {
		bool dml = false;
		size_t at = 0;
		if ((cache_sql_is(c, i, "insert") || cache_sql_is(c, i, "merge")) && cache_sql_is(c, i + 1, "into")) {
			dml = true;
			at = i + 2;
		} else if (cache_sql_is(c, i, "delete") && cache_sql_is(c, i + 1, "from")) {
			dml = true;
			at = i + 2;
		} else if (cache_sql_is(c, i, "update") &&
			   (i == b || cache_sql_type(c, i - 1) == CACHE_SQL_LPAREN ||
			    cache_sql_type(c, i - 1) == CACHE_SQL_RPAREN)) {
			dml = true;
			at = i + 1;
		}
		if (!dml)
			continue;
		found++;
		if (!cache_sql_target(c, at, e, &nx))
			*missed = true;
	}
	return found;
}

static bool cache_sql_locking(struct cache_sql_ctx *c, size_t b, size_t e)
{
	for (size_t i = b; i + 1 < e; i++) {
		if (!cache_sql_is(c, i, "for"))
			continue;
		if (cache_sql_is(c, i + 1, "update") || cache_sql_is(c, i + 1, "share") ||
		    (cache_sql_is(c, i + 1, "no") && cache_sql_is(c, i + 2, "key")) ||
		    (cache_sql_is(c, i + 1, "key") && cache_sql_is(c, i + 2, "share")))
			return true;
	}
	return false;
}

bool cache_sql_temp_word(struct cache_sql_ctx *c, size_t i)
{
	return cache_sql_is(c, i, "temp") || cache_sql_is(c, i, "temporary");
}

/* SELECT / WITH / VALUES / TABLE. */
static enum cache_sql_kind cache_sql_read(struct cache_sql_ctx *c, size_t b, size_t e)
{
	bool missed = false;
	if (cache_sql_dml_targets(c, b, e, &missed) > 0) {
		cache_sql_uncacheable(c, "has a data-modifying WITH");
		if (missed)
			cache_sql_all(c, "a data-modifying WITH tether cannot follow");
		cache_sql_scan_calls(c, b, e);
		return CACHE_SQL_K_OTHER;
	}
	for (size_t i = b; i < e; i++) {
		if (cache_sql_is(c, i, "into")) {
			cache_sql_uncacheable(c, "SELECT INTO creates a table");
			cache_sql_all(c, "SELECT INTO creates a table that may shadow another");
			if (cache_sql_temp_word(c, i + 1))
				c->info->creates_temp = true;
			return CACHE_SQL_K_OTHER;
		}
	}
	if (cache_sql_locking(c, b, e))
		cache_sql_uncacheable(c, "has a locking clause (FOR UPDATE/SHARE)");
	cache_sql_scan_calls(c, b, e);
	cache_sql_collect_ctes(c, b, e);
	cache_sql_collect_reads(c, b, e);
	return CACHE_SQL_K_READ;
}

static enum cache_sql_kind cache_sql_statement(struct cache_sql_ctx *c, size_t b, size_t e, int level);

/* EXPLAIN [ANALYZE] [VERBOSE] [(options)] stmt: only ANALYZE runs the statement. */
static void cache_sql_explain(struct cache_sql_ctx *c, size_t b, size_t e, int level)
{
	size_t i = b + 1;
	bool analyze = false;
	if (i < e && cache_sql_type(c, i) == CACHE_SQL_LPAREN && c->match[i] != SIZE_MAX) {
		analyze = cache_sql_has_word(c, i, c->match[i], "analyze") || cache_sql_has_word(c, i, c->match[i], "analyse");
		i = c->match[i] + 1;
	}
	while (cache_sql_is(c, i, "analyze") || cache_sql_is(c, i, "analyse") || cache_sql_is(c, i, "verbose")) {
		analyze = analyze || !cache_sql_is(c, i, "verbose");
		i++;
	}
	if (analyze && i < e)
		cache_sql_statement(c, i, e, level + 1);
	cache_sql_uncacheable(c, "EXPLAIN");
}

static bool cache_sql_word_in(struct cache_sql_ctx *c, size_t i, const char *const *words)
{
	for (size_t k = 0; words[k]; k++)
		if (cache_sql_is(c, i, words[k]))
			return true;
	return false;
}

static enum cache_sql_kind cache_sql_statement(struct cache_sql_ctx *c, size_t b, size_t e, int level)
{
	static const char *const none[] = { "begin", "start", "end", "rollback", "abort", "savepoint", "release",
					    "set", "reset", "show", "discard", "deallocate", "listen", "unlisten",
					    "notify", "lock", "fetch", "move", "close", "checkpoint", "vacuum",
					    "analyze", "analyse", "cluster", "reindex", "comment", "prepare",
					    "security", NULL };
	static const char *const ddl[] = { "truncate", "drop", "alter", "create", "refresh", "grant", "revoke",
					   "reassign", "import", NULL };
	size_t first = b;
	if (level > 8) {
		cache_sql_all(c, "statement nested too deeply");
		return CACHE_SQL_K_OTHER;
	}
	while (first < e && cache_sql_type(c, first) == CACHE_SQL_LPAREN)
		first++;
	if (cache_sql_is(c, first, "select") || cache_sql_is(c, first, "with") || cache_sql_is(c, first, "values") ||
	    (cache_sql_is(c, first, "table") && first == b))
		return cache_sql_read(c, b, e);
	cache_sql_uncacheable(c, "not a SELECT");
	if (first != b) {
		cache_sql_all(c, "unknown syntax");
		return CACHE_SQL_K_OTHER;
	}
	if (cache_sql_is(c, b, "insert") || cache_sql_is(c, b, "update") || cache_sql_is(c, b, "delete") ||
	    cache_sql_is(c, b, "merge")) {
		bool missed = false;
		if (cache_sql_dml_targets(c, b, e, &missed) == 0 || missed)
			cache_sql_all(c, "a write tether cannot follow");
		cache_sql_scan_calls(c, b, e);
	} else if (cache_sql_is(c, b, "copy")) {
		size_t nx = b + 1;
		if (b + 1 < e && cache_sql_type(c, b + 1) == CACHE_SQL_LPAREN && c->match[b + 1] != SIZE_MAX) {
			size_t close = c->match[b + 1];
			cache_sql_statement(c, b + 2, close, level + 1);
			nx = close + 1;
		} else {
			char *name = cache_sql_qualname(c, b + 1, e, &nx);
			if (!name) {
				cache_sql_all(c, "COPY tether cannot follow");
				return CACHE_SQL_K_OTHER;
			}
			if (nx < e && cache_sql_type(c, nx) == CACHE_SQL_LPAREN && c->match[nx] != SIZE_MAX)
				nx = c->match[nx] + 1;
			if (cache_sql_is(c, nx, "from"))
				cache_sql_names_add(c, &c->info->writes, name);
			else if (cache_sql_is(c, nx, "to"))
				free(name);
			else {
				free(name);
				cache_sql_all(c, "COPY tether cannot follow");
			}
		}
		cache_sql_scan_calls(c, nx, e);
	} else if (cache_sql_is(c, b, "explain")) {
		cache_sql_explain(c, b, e, level);
	} else if (cache_sql_is(c, b, "commit")) {
		if (cache_sql_is(c, b + 1, "prepared"))
			cache_sql_all(c, "COMMIT PREPARED commits writes tether did not see");
	} else if (cache_sql_is(c, b, "declare")) {
		for (size_t i = b + 1; i < e; i++) {
			if (cache_sql_is(c, i, "for")) {
				cache_sql_statement(c, i + 1, e, level + 1);
				cache_sql_uncacheable(c, "DECLARE CURSOR");
				return CACHE_SQL_K_OTHER;
			}
		}
		cache_sql_all(c, "DECLARE tether cannot follow");
	} else if (cache_sql_word_in(c, b, none)) {
		if (cache_sql_is(c, b, "discard") && cache_sql_is(c, b + 1, "temp"))
			return CACHE_SQL_K_OTHER;
	} else if (cache_sql_word_in(c, b, ddl)) {
		cache_sql_ddl(c, b, e);
	} else if (cache_sql_is(c, b, "call") || cache_sql_is(c, b, "do") || cache_sql_is(c, b, "execute")) {
		cache_sql_all(c, "CALL, DO and EXECUTE run code tether cannot see");
	} else {
		cache_sql_all(c, "unknown statement");
	}
	return CACHE_SQL_K_OTHER;
}

/* Matching parens and which '(' open a function call's arguments. */
static int cache_sql_parens(struct cache_sql_ctx *c)
{
	size_t n = c->lx->n ? c->lx->n : 1;
	c->match = malloc(n * sizeof(*c->match));
	c->callpar = calloc(n, sizeof(*c->callpar));
	size_t *stack = malloc(n * sizeof(*stack));
	if (!c->match || !c->callpar || !stack) {
		free(stack);
		return -1;
	}
	size_t sp = 0;
	for (size_t i = 0; i < c->lx->n; i++) {
		c->match[i] = SIZE_MAX;
		enum cache_sql_tok_type t = c->lx->toks[i].type;
		if (t == CACHE_SQL_LPAREN || t == CACHE_SQL_LBRACK) {
			stack[sp++] = i;
			if (t == CACHE_SQL_LPAREN && i > 0 && c->lx->toks[i - 1].type == CACHE_SQL_QIDENT)
				c->callpar[i] = true;
			if (t == CACHE_SQL_LPAREN && i > 0 && c->lx->toks[i - 1].type == CACHE_SQL_IDENT) {
				char w[32];
				const struct cache_sql_tok *p = &c->lx->toks[i - 1];
				size_t l = p->len < sizeof(w) - 1 ? p->len : sizeof(w) - 1;
				for (size_t k = 0; k < l; k++)
					w[k] = (char)tolower((unsigned char)c->lx->src[p->off + k]);
				w[l] = '\0';
				c->callpar[i] = !cache_sql_funcs_syntax_word(w);
			}
		} else if ((t == CACHE_SQL_RPAREN || t == CACHE_SQL_RBRACK) && sp > 0) {
			size_t o = stack[--sp];
			c->match[o] = i;
			c->match[i] = o;
		}
	}
	free(stack);
	return 0;
}

int cache_sql_analyze(const char *sql, size_t len, const struct cache_sql_opts *opts, struct cache_sql_info *out)
{
	memset(out, 0, sizeof(*out));
	struct cache_sql_lex lx;
	struct cache_sql_ctx c = { .lx = &lx, .opts = opts, .info = out };
	size_t first_b = 0, first_e = 0; /* the first statement's tokens */
	if (cache_sql_lex_run(&lx, sql, len, opts && opts->backslash_strings) != 0)
		goto fail;
	out->normalized = cache_sql_lex_render(&lx, false);
	out->fingerprint = cache_sql_lex_render(&lx, true);
	if (!out->normalized || !out->fingerprint || cache_sql_parens(&c) != 0)
		goto fail;
	out->hint = lx.hint;
	out->hint_nocache = lx.hint_nocache;
	out->hint_ttl_ms = lx.hint_ttl_ms;
	if (lx.bad) {
		cache_sql_all(&c, "text tether cannot tokenize");
		cache_sql_uncacheable(&c, "text tether cannot tokenize");
	} else {
		size_t b = 0;
		enum cache_sql_kind last = CACHE_SQL_K_OTHER;
		int depth = 0;
		for (size_t i = 0; i <= lx.n; i++) {
			if (i < lx.n && lx.toks[i].type == CACHE_SQL_LPAREN)
				depth++;
			else if (i < lx.n && lx.toks[i].type == CACHE_SQL_RPAREN && depth > 0)
				depth--;
			if (i < lx.n && !(lx.toks[i].type == CACHE_SQL_SEMI && depth == 0))
				continue;
			if (i > b) {
				if (out->nstatements++ == 0)
					first_b = b, first_e = i;
				last = cache_sql_statement(&c, b, i, 0);
			}
			b = i + 1;
		}
		if (out->nstatements == 0)
			cache_sql_uncacheable(&c, "empty statement");
		else if (out->nstatements > 1)
			cache_sql_uncacheable(&c, "more than one statement");
		else if (last != CACHE_SQL_K_READ)
			cache_sql_uncacheable(&c, "not a SELECT");
	}
	if (c.oom)
		goto fail;
	out->cacheable = out->why_not == NULL;
	/* reads stay for uncacheable statements too: the pooler checks them for views that call
	 * functions */
	if (!out->cacheable)
		out->reads_complete = false;
	cache_sql_names_finish(&out->reads);
	cache_sql_names_finish(&out->writes);
	if (out->invalidate_all)
		cache_sql_names_free(&out->writes);
	if (!lx.bad && out->nstatements == 1 && cache_sql_keys(&lx, c.match, first_b, first_e, out) != 0)
		goto fail;
	cache_sql_names_free(&c.ctes);
	free(c.match);
	free(c.callpar);
	cache_sql_lex_deinit(&lx);
	return 0;
fail:
	cache_sql_names_free(&c.ctes);
	free(c.match);
	free(c.callpar);
	cache_sql_lex_deinit(&lx);
	cache_sql_info_deinit(out);
	return -1;
}

void cache_sql_info_deinit(struct cache_sql_info *info)
{
	free(info->normalized);
	free(info->fingerprint);
	cache_sql_names_free(&info->reads);
	cache_sql_names_free(&info->writes);
	cache_sql_keys_free(info);
	memset(info, 0, sizeof(*info));
}
