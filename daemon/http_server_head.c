/* The HTTP server's request heads (http_server.c parses, this file keeps): the target, names
 * and values gathered in one buffer per request struct as libhttp-parser hands out fragments,
 * turned into strings once the head is complete, and the request id. */
#include "http_internal.h"
#include "http_scan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends to the request's head buffer (one allocation kept across requests instead of one per
 * name and value); `counted` bytes count toward max_header_size. */
static int http_head_reserve(struct http_request *r, size_t need)
{
	if (need > r->head_cap) {
		size_t cap = r->head_cap ? r->head_cap : 1024;
		while (cap < need)
			cap *= 2;
		char *n = realloc(r->head, cap);
		if (!n)
			return -1;
		r->head = n;
		r->head_cap = cap;
	}
	return 0;
}

static int http_head_put(struct http_conn *c, const char *at, size_t len, size_t counted)
{
	struct http_request *r = c->req;
	c->head_bytes += counted;
	if (c->head_bytes > c->srv->lim.max_header_size) {
		c->head_overflow = true;
		return -1;
	}
	if (http_head_reserve(r, r->head_len + len) != 0)
		return -1;
	memcpy(r->head + r->head_len, at, len);
	r->head_len += len;
	return 0;
}

/* A fragment of `piece` arrives: the previous piece, if another, gets its NUL. */
static int http_head_piece(struct http_conn *c, enum http_head_piece piece)
{
	if (c->piece == piece)
		return 0;
	int rc = c->piece == HTTP_PIECE_NONE ? 0 : http_head_put(c, "", 1, 0);
	c->piece = piece;
	return rc;
}

int http_head_on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	if (c->piece != HTTP_PIECE_URL) {
		if (http_head_piece(c, HTTP_PIECE_URL) != 0)
			return -1;
		c->req->target_at = c->req->head_len;
	}
	return http_head_put(c, at, len, len);
}

int http_head_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	struct http_request *r = c->req;
	if (c->piece != HTTP_PIECE_FIELD) {
		if (http_head_piece(c, HTTP_PIECE_FIELD) != 0)
			return -1;
		if (r->nheaders == r->capheaders) {
			size_t cap = r->capheaders ? r->capheaders * 2 : 16;
			struct http_header *n = realloc(r->headers, cap * sizeof(*n));
			if (!n)
				return -1;
			r->headers = n;
			r->capheaders = cap;
		}
		r->headers[r->nheaders].name = r->headers[r->nheaders].value = NULL; /* until the head is done */
		r->headers[r->nheaders].name_at = r->head_len;
		r->headers[r->nheaders].value_at = SIZE_MAX;
		r->nheaders++;
		c->head_bytes += 4; /* ": " and CRLF count toward the limit */
	}
	return http_head_put(c, at, len, len);
}

int http_head_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	struct http_request *r = c->req;
	if (c->piece != HTTP_PIECE_VALUE) {
		if (http_head_piece(c, HTTP_PIECE_VALUE) != 0)
			return -1;
		r->headers[r->nheaders - 1].value_at = r->head_len;
	}
	return http_head_put(c, at, len, len);
}

/* The fast scanner's pieces (http_server_msg.c), stored as the callbacks above would store
 * them (same layout, same max_header_size count) with one capacity check for all. */
int http_head_fast(struct http_conn *c, const char *buf, const struct http_scan *sc)
{
	struct http_request *r = c->req;
	size_t need = r->head_len + sc->target.len + 1, count = sc->target.len;
	for (size_t i = 0; i < sc->nheaders; i++) {
		need += sc->headers[i].name.len + sc->headers[i].value.len + 2;
		count += sc->headers[i].name.len + sc->headers[i].value.len + 4;
	}
	if (r->nheaders + sc->nheaders > r->capheaders) {
		size_t cap = r->capheaders ? r->capheaders : 16;
		while (cap < r->nheaders + sc->nheaders)
			cap *= 2;
		struct http_header *n = realloc(r->headers, cap * sizeof(*n));
		if (!n)
			return -1;
		r->headers = n;
		r->capheaders = cap;
	}
	c->head_bytes += count - sc->target.len - 1; /* (the put below counts the rest) */
	if (http_head_put(c, buf + sc->target.at, sc->target.len, sc->target.len + 1) != 0)
		return -1;
	r->target_at = r->head_len - sc->target.len;
	if (http_head_reserve(r, need) != 0)
		return -1;
	char *w = r->head + r->head_len;
	*w++ = '\0';
	for (size_t i = 0; i < sc->nheaders; i++) {
		const struct http_scan_header *h = &sc->headers[i];
		struct http_header *hd = &r->headers[r->nheaders++];
		hd->name = hd->value = NULL; /* until the head is done */
		hd->name_at = (size_t)(w - r->head);
		memcpy(w, buf + h->name.at, h->name.len), w += h->name.len;
		*w++ = '\0';
		hd->value_at = (size_t)(w - r->head);
		memcpy(w, buf + h->value.at, h->value.len), w += h->value.len;
		*w++ = '\0';
	}
	r->head_len = (size_t)(w - r->head);
	c->piece = HTTP_PIECE_NONE; /* every piece has its NUL */
	return 0;
}

/* The head is complete: the path gets its copy, then the strings their pointers (the buffer
 * does not move any more). */
int http_head_done(struct http_conn *c)
{
	struct http_request *r = c->req;
	if (http_head_piece(c, HTTP_PIECE_NONE) != 0)
		return -1;
	size_t empty = r->head_len;
	if (http_head_put(c, "/", 2, 0) != 0) /* "/": no target; "": no value */
		return -1;
	size_t target = r->target_at != SIZE_MAX ? r->target_at : empty;
	size_t tlen = strlen(r->head + target), plen = strcspn(r->head + target, "?");
	size_t path = r->head_len;
	if (http_head_put(c, r->head + target, plen, 0) != 0 || http_head_put(c, "", 1, 0) != 0)
		return -1;
	r->target = r->head + target;
	r->path = r->head + path;
	r->query = plen < tlen ? r->target + plen + 1 : "";
	for (size_t i = 0; i < r->nheaders; i++) {
		struct http_header *h = &r->headers[i];
		h->name = r->head + h->name_at;
		h->value = r->head + (h->value_at == SIZE_MAX ? empty + 1 : h->value_at);
	}
	return 0;
}

static bool http_request_id_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 128)
		return false;
	for (; *v; v++)
		if (*v < 0x21 || *v > 0x7e)
			return false;
	return true;
}

static uint64_t http_server_random(struct http_server *s)
{
	/* xorshift128+: request ids need uniqueness, not secrecy */
	uint64_t x = s->rng[0], y = s->rng[1];
	s->rng[0] = y;
	x ^= x << 23;
	s->rng[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
	return s->rng[1] + y;
}

/* 32 hex digits and a NUL (snprintf's %016llx, without vfprintf's cost on every request). */
static void http_server_hex_id(char *out, uint64_t a, uint64_t b)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, a >>= 4)
		out[i] = hex[a & 15];
	for (int i = 31; i >= 16; i--, b >>= 4)
		out[i] = hex[b & 15];
	out[32] = '\0';
}

void http_head_request_id(struct http_server *s, struct http_request *r)
{
	const char *rid = http_request_header(r, "X-Request-Id");
	if (rid && http_request_id_ok(rid))
		snprintf(r->id, sizeof(r->id), "%s", rid);
	else
		http_server_hex_id(r->id, http_server_random(s), http_server_random(s));
}
