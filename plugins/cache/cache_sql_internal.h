/* The token stream shared by the SQL lexer/normalizer (cache_sql_lex.c) and the statement
 * classifier (cache_sql.c). */
#ifndef TETHER_CACHE_SQL_INTERNAL_H
#define TETHER_CACHE_SQL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "cache_sql.h"

enum cache_sql_tok_type {
	CACHE_SQL_IDENT,  /* unquoted identifier or keyword */
	CACHE_SQL_QIDENT, /* "quoted" or U&"quoted" identifier */
	CACHE_SQL_STRING, /* '..', E'..', B'..', X'..', N'..', U&'..', $tag$..$tag$ */
	CACHE_SQL_NUMBER,
	CACHE_SQL_PARAM,  /* $1 */
	CACHE_SQL_OP,     /* operator characters, and ':' */
	CACHE_SQL_LPAREN,
	CACHE_SQL_RPAREN,
	CACHE_SQL_LBRACK,
	CACHE_SQL_RBRACK,
	CACHE_SQL_COMMA,
	CACHE_SQL_SEMI,
	CACHE_SQL_DOT,
	CACHE_SQL_CAST, /* :: */
};

struct cache_sql_tok {
	enum cache_sql_tok_type type;
	size_t off, len;   /* in the source string */
	bool space_before; /* whitespace or a comment separated it from the previous token */
	bool nl_before;    /* ... and that separation held a newline */
};

struct cache_sql_lex {
	const char *src;
	size_t len;
	struct cache_sql_tok *toks;
	size_t n, cap;
	bool bad; /* unterminated literal, identifier or comment */
	bool hint, hint_nocache;
	int64_t hint_ttl_ms;
};

/* Tokenizes src[0..len). Returns 0, or -1 when memory runs out; lx->bad reports text it could
 * not tokenize. Free with cache_sql_lex_deinit. */
int cache_sql_lex_run(struct cache_sql_lex *lx, const char *src, size_t len, bool backslash_strings);
void cache_sql_lex_deinit(struct cache_sql_lex *lx);
/* The normalized text (fingerprint: literals as `?`) of the whole token stream; malloc'd. */
char *cache_sql_lex_render(const struct cache_sql_lex *lx, bool fingerprint);
/* True when token i is an unquoted identifier equal (case-insensitively) to `word`. */
bool cache_sql_lex_is(const struct cache_sql_lex *lx, size_t i, const char *word);

/* The (qualified) name at token i as reads and writes spell it, or NULL; *next: the token after. */
char *cache_sql_name_at(const struct cache_sql_lex *lx, size_t i, size_t e, size_t *next);
/* Key constraints of the one statement [b, e) already classified in info (cache_sql_keys.c);
 * match: each paren's partner. 0, or -1 when memory ran out. */
int cache_sql_keys(const struct cache_sql_lex *lx, const size_t *match, size_t b, size_t e,
		   struct cache_sql_info *info);
void cache_sql_key_set_add(struct cache_sql_info *info, const char *col);
void cache_sql_key_set_free(struct cache_sql_info *info);
void cache_sql_keys_free(struct cache_sql_info *info);

/* True when `word` (lower-case) may stand before '(' without being a function call. */
bool cache_sql_funcs_syntax_word(const char *word);

/* The statement classifier's state (cache_sql.c), shared with its DDL part (cache_sql_ddl.c). */
#define CACHE_SQL_MAX_DEPTH 64

struct cache_sql_ctx {
	const struct cache_sql_lex *lx;
	const struct cache_sql_opts *opts;
	struct cache_sql_info *info;
	size_t *match;  /* per token: index of the matching paren, or SIZE_MAX */
	bool *callpar;  /* per '(' token: it opens a function call's arguments */
	struct cache_sql_names ctes;
	bool oom;
};

static inline bool cache_sql_is(struct cache_sql_ctx *c, size_t i, const char *w)
{
	return cache_sql_lex_is(c->lx, i, w);
}

static inline enum cache_sql_tok_type cache_sql_type(struct cache_sql_ctx *c, size_t i)
{
	return c->lx->toks[i].type;
}

/* Everything is invalidated (the first reason is kept). */
void cache_sql_all(struct cache_sql_ctx *c, const char *why);
/* Some token in [b, e) is the unquoted word w. */
bool cache_sql_has_word(struct cache_sql_ctx *c, size_t b, size_t e, const char *w);
/* Records the table name at i as a write target; returns false when none is there. */
bool cache_sql_target(struct cache_sql_ctx *c, size_t i, size_t e, size_t *next);
/* Skips `if exists` / `if not exists`. */
size_t cache_sql_skip_if(struct cache_sql_ctx *c, size_t i);
/* TEMP or TEMPORARY at i. */
bool cache_sql_temp_word(struct cache_sql_ctx *c, size_t i);
/* Function calls in [b, e): unknown ones may write anything (invalidate everything, never
 * cache); volatile ones make a read uncacheable. */
void cache_sql_scan_calls(struct cache_sql_ctx *c, size_t b, size_t e);
/* TRUNCATE, REFRESH, DROP, ALTER, CREATE, GRANT ... [b, e): what they invalidate (cache_sql_ddl.c). */
void cache_sql_ddl(struct cache_sql_ctx *c, size_t b, size_t e);

#endif
