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

#endif
