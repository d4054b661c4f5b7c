/* The SQL lexer behind the cache's statement analysis: splits PostgreSQL text into tokens the way
 * the server's scanner does (quoted identifiers, '' / E'' / B'' / X'' / U&'' / dollar-quoted
 * strings, nested comments, numbers, $n parameters), pulls the `tether:cache` hint out of a
 * comment, and renders the normalized text and the fingerprint. */
#include "cache_sql_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"

static bool cache_sql_lex_ident_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c >= 0x80;
}

static bool cache_sql_lex_ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

static bool cache_sql_lex_op_char(unsigned char c)
{
	return c && strchr("+-*/<>=~!@#%^&|`?", c) != NULL;
}

static int cache_sql_lex_push(struct cache_sql_lex *lx, enum cache_sql_tok_type t, size_t off, size_t len,
			      bool space, bool nl)
{
	if (lx->n == lx->cap) {
		size_t cap = lx->cap ? lx->cap * 2 : 64;
		struct cache_sql_tok *nt = realloc(lx->toks, cap * sizeof(*nt));
		if (!nt)
			return -1;
		lx->toks = nt;
		lx->cap = cap;
	}
	lx->toks[lx->n++] = (struct cache_sql_tok){ t, off, len, space, nl };
	return 0;
}

/* A comment's text: `tether:cache [ttl=DURATION]` or `tether:nocache` sets the hint (the first
 * such comment wins). */
static void cache_sql_lex_hint(struct cache_sql_lex *lx, const char *s, size_t len)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (lx->hint || lx->hint_nocache)
		return;
	if (len >= 14 && strncasecmp(s, "tether:nocache", 14) == 0 && (len == 14 || isspace((unsigned char)s[14]))) {
		lx->hint_nocache = true;
		return;
	}
	if (len < 12 || strncasecmp(s, "tether:cache", 12) != 0 || (len > 12 && !isspace((unsigned char)s[12])))
		return;
	lx->hint = true;
	size_t i = 12;
	while (i < len) {
		while (i < len && isspace((unsigned char)s[i]))
			i++;
		size_t w = i;
		while (i < len && !isspace((unsigned char)s[i]))
			i++;
		if (i - w > 4 && strncasecmp(s + w, "ttl=", 4) == 0 && i - w < 64) {
			char buf[64], err[128];
			memcpy(buf, s + w + 4, i - w - 4);
			buf[i - w - 4] = '\0';
			int64_t ms;
			if (conf_parse_duration(buf, &ms, err, sizeof(err)) == 0 && ms > 0)
				lx->hint_ttl_ms = ms;
		} else if (i - w == 3 && strncasecmp(s + w, "off", 3) == 0) {
			lx->hint = false;
			lx->hint_nocache = true;
			return;
		}
	}
}

/* Skips a quoted run starting at s[i] == q; `backslash` honours \x escapes. Returns the index
 * after the closing quote, or 0 when unterminated. */
static size_t cache_sql_lex_quoted(const char *s, size_t len, size_t i, char q, bool backslash)
{
	for (i++; i < len; i++) {
		if (backslash && s[i] == '\\') {
			i++;
			continue;
		}
		if (s[i] == q) {
			if (i + 1 < len && s[i + 1] == q) {
				i++;
				continue;
			}
			return i + 1;
		}
	}
	return 0;
}

/* A dollar-quote tag starting at s[i] == '$': its length including both '$', or 0. */
static size_t cache_sql_lex_dollar_tag(const char *s, size_t len, size_t i)
{
	size_t j = i + 1;
	if (j < len && s[j] == '$')
		return 2;
	if (j >= len || !cache_sql_lex_ident_start((unsigned char)s[j]))
		return 0;
	while (j < len && s[j] != '$') {
		unsigned char c = (unsigned char)s[j];
		if (!(isalnum(c) || c == '_' || c >= 0x80))
			return 0;
		j++;
	}
	return j < len ? j - i + 1 : 0;
}

static size_t cache_sql_lex_number(const char *s, size_t len, size_t i)
{
	if (s[i] == '0' && i + 1 < len && strchr("xXoObB", s[i + 1])) {
		for (i += 2; i < len && (isalnum((unsigned char)s[i]) || s[i] == '_');)
			i++;
		return i;
	}
	while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '_'))
		i++;
	if (i < len && s[i] == '.' && !(i + 1 < len && s[i + 1] == '.')) {
		i++;
		while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '_'))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t j = i + 1;
		if (j < len && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j < len && isdigit((unsigned char)s[j])) {
			while (j < len && isdigit((unsigned char)s[j]))
				j++;
			i = j;
		}
	}
	return i;
}

int cache_sql_lex_run(struct cache_sql_lex *lx, const char *src, size_t len, bool backslash_strings)
{
	memset(lx, 0, sizeof(*lx));
	const char *nul = memchr(src, '\0', len);
	if (nul)
		len = (size_t)(nul - src);
	lx->src = src;
	lx->len = len;
	bool space = false, nl = false;
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)src[i];
		size_t start = i, end = 0;
		enum cache_sql_tok_type t;
		if (isspace(c)) {
			space = true;
			nl = nl || c == '\n' || c == '\r';
			i++;
			continue;
		}
		if (c == '-' && i + 1 < len && src[i + 1] == '-') {
			size_t j = i + 2;
			while (j < len && src[j] != '\n')
				j++;
			cache_sql_lex_hint(lx, src + i + 2, j - i - 2);
			space = true;
			i = j;
			continue;
		}
		if (c == '/' && i + 1 < len && src[i + 1] == '*') {
			int depth = 1;
			size_t j = i + 2;
			while (j < len && depth > 0) {
				if (src[j] == '/' && j + 1 < len && src[j + 1] == '*')
					depth++, j += 2;
				else if (src[j] == '*' && j + 1 < len && src[j + 1] == '/')
					depth--, j += 2;
				else
					nl = nl || src[j] == '\n', j++;
			}
			if (depth > 0) {
				lx->bad = true;
				return 0;
			}
			cache_sql_lex_hint(lx, src + i + 2, j - i - 4);
			space = true;
			i = j;
			continue;
		}
		if ((c == 'u' || c == 'U') && i + 2 < len && src[i + 1] == '&' && (src[i + 2] == '\'' || src[i + 2] == '"')) {
			end = cache_sql_lex_quoted(src, len, i + 2, src[i + 2], false);
			t = src[i + 2] == '"' ? CACHE_SQL_QIDENT : CACHE_SQL_STRING;
		} else if (strchr("eEbBxXnN", c) && c && i + 1 < len && src[i + 1] == '\'') {
			bool bs = c == 'e' || c == 'E' || ((c == 'n' || c == 'N') && backslash_strings);
			end = cache_sql_lex_quoted(src, len, i + 1, '\'', bs);
			t = CACHE_SQL_STRING;
		} else if (c == '\'') {
			end = cache_sql_lex_quoted(src, len, i, '\'', backslash_strings);
			t = CACHE_SQL_STRING;
		} else if (c == '"') {
			end = cache_sql_lex_quoted(src, len, i, '"', false);
			t = CACHE_SQL_QIDENT;
		} else if (c == '$' && i + 1 < len && isdigit((unsigned char)src[i + 1])) {
			end = i + 1;
			while (end < len && isdigit((unsigned char)src[end]))
				end++;
			t = CACHE_SQL_PARAM;
		} else if (c == '$') {
			size_t tag = cache_sql_lex_dollar_tag(src, len, i);
			t = CACHE_SQL_STRING;
			if (tag) {
				const char *close = NULL;
				for (size_t j = i + tag; j + tag <= len; j++) {
					if (src[j] == '$' && memcmp(src + j, src + i, tag) == 0) {
						close = src + j;
						break;
					}
				}
				end = close ? (size_t)(close - src) + tag : 0;
			} else {
				end = i + 1;
				t = CACHE_SQL_OP;
			}
		} else if (isdigit(c) || (c == '.' && i + 1 < len && isdigit((unsigned char)src[i + 1]))) {
			end = cache_sql_lex_number(src, len, i);
			t = CACHE_SQL_NUMBER;
		} else if (cache_sql_lex_ident_start(c)) {
			end = i + 1;
			while (end < len && cache_sql_lex_ident_char((unsigned char)src[end]))
				end++;
			t = CACHE_SQL_IDENT;
		} else if (c == ':' && i + 1 < len && src[i + 1] == ':') {
			end = i + 2;
			t = CACHE_SQL_CAST;
		} else if (cache_sql_lex_op_char(c)) {
			end = i + 1;
			while (end < len && cache_sql_lex_op_char((unsigned char)src[end]) &&
			       !(src[end] == '-' && end + 1 < len && src[end + 1] == '-') &&
			       !(src[end] == '/' && end + 1 < len && src[end + 1] == '*'))
				end++;
			t = CACHE_SQL_OP;
		} else {
			end = i + 1;
			switch (c) {
			case '(': t = CACHE_SQL_LPAREN; break;
			case ')': t = CACHE_SQL_RPAREN; break;
			case '[': t = CACHE_SQL_LBRACK; break;
			case ']': t = CACHE_SQL_RBRACK; break;
			case ',': t = CACHE_SQL_COMMA; break;
			case ';': t = CACHE_SQL_SEMI; break;
			case '.': t = CACHE_SQL_DOT; break;
			default: t = CACHE_SQL_OP; break;
			}
		}
		if (end == 0) {
			lx->bad = true;
			return 0;
		}
		if (cache_sql_lex_push(lx, t, start, end - start, space && lx->n > 0, nl && lx->n > 0) != 0)
			return -1;
		space = nl = false;
		i = end;
	}
	return 0;
}

void cache_sql_lex_deinit(struct cache_sql_lex *lx)
{
	free(lx->toks);
	lx->toks = NULL;
	lx->n = lx->cap = 0;
}

bool cache_sql_lex_is(const struct cache_sql_lex *lx, size_t i, const char *word)
{
	if (i >= lx->n || lx->toks[i].type != CACHE_SQL_IDENT)
		return false;
	/* (called for every token against many words: the first byte usually decides) */
	const unsigned char *s = (const unsigned char *)lx->src + lx->toks[i].off;
	size_t n = lx->toks[i].len;
	for (size_t k = 0; k < n; k++) {
		unsigned char ch = s[k] >= 'A' && s[k] <= 'Z' ? (unsigned char)(s[k] + 32) : s[k];
		if (ch != (unsigned char)word[k])
			return false; /* (also where word ends first: its NUL never equals a name byte) */
	}
	return word[n] == 0;
}

char *cache_sql_lex_render(const struct cache_sql_lex *lx, bool fingerprint)
{
	size_t n = lx->n;
	while (n > 0 && lx->toks[n - 1].type == CACHE_SQL_SEMI)
		n--;
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap += lx->toks[i].len + 1;
	char *out = malloc(cap), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct cache_sql_tok *t = &lx->toks[i];
		const char *s = lx->src + t->off;
		if (i > 0 && t->space_before) {
			/* 'a'<newline>'b' is one string in PostgreSQL and 'a' 'b' an error: keep
			 * the newline so the two never share a key. */
			bool strings = t->type == CACHE_SQL_STRING && lx->toks[i - 1].type == CACHE_SQL_STRING;
			*o++ = strings && t->nl_before ? '\n' : ' ';
		}
		if (fingerprint && (t->type == CACHE_SQL_STRING || t->type == CACHE_SQL_NUMBER)) {
			*o++ = '?';
		} else if (t->type == CACHE_SQL_IDENT) {
			for (size_t k = 0; k < t->len; k++)
				*o++ = (char)((unsigned char)s[k] < 0x80 ? tolower((unsigned char)s[k]) : s[k]);
		} else {
			memcpy(o, s, t->len);
			o += t->len;
		}
	}
	*o = '\0';
	return out;
}
