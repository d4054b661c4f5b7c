/* The HTTP server's request messages (connections: http_server.c):
 * libhttp-parser's callbacks from the message's start to its end, and the fast
 * path that reads a whole plain head in one pass (http_scan.c) and makes the
 * same calls, leaving every other head to libhttp-parser. */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "http_scan.h"
#include "loopclock.h"

static struct http_request *http_conn_new_request(struct http_conn *c)
{
	struct http_request *r = c->spare;
	c->spare = NULL;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
	}
	http_request_reset(r);
	r->conn = c;
	loopclock_now(&r->start);
	return r;
}

static int http_on_message_begin(http_parser *p)
{
	struct http_conn *c = p->data;
	c->req = http_conn_new_request(c);
	c->head_bytes = 0;
	c->head_overflow = false;
	c->piece = HTTP_PIECE_NONE;
	if (!c->req)
		return -1;
	c->req->target_at = SIZE_MAX; /* no target yet */
	return 0;
}

/* The head is complete (from libhttp-parser or the fast scanner): the request
 * is routed and handed to its handler. content_length -1: chunked. */
static int http_conn_head_complete(struct http_conn *c, int method, unsigned http_minor, int64_t content_length,
				   bool keep_alive)
{
	struct http_server *s = c->srv;
	struct http_request *r = c->req;
	if (http_head_done(c) != 0)
		return -1;
	/* a bounded copy (snprintf's "%s" cost about 1,000 instructions a request) */
	const char *m = http_method_str((enum http_method)method);
	size_t mlen = strnlen(m, sizeof(r->method) - 1);
	memcpy(r->method, m, mlen);
	r->method[mlen] = '\0';
	r->head_method = method == HTTP_HEAD;
	r->content_length = content_length;
	http_head_request_id(s, r);
	c->keep_alive = keep_alive && !s->draining;
	c->state = HTTP_CONN_ACTIVE;
	deadline_clear(&c->timer);
	if (r->content_length != 0)
		http_conn_arm_timer(c, s->lim.idle_timeout_ms);

	r->route = http_server_route(s, r->path);
	if (!r->route) {
		r->route = &s->notfound;
		http_response_error(r, 404, "no route for %s %s", r->method, r->path);
		return 0;
	}
	size_t limit = r->route->r.max_body ? r->route->r.max_body : s->lim.max_body;
	if (r->content_length > 0 && (uint64_t)r->content_length > limit) {
		metrics_add(s->m_err_body, 1);
		c->keep_alive = false;
		http_response_error(r, 413, "request body of %lld bytes is over this route's limit of %zu bytes",
				    (long long)r->content_length, limit);
		return 0;
	}
	const char *expect = http_request_header(r, "Expect");
	if (expect && strcasecmp(expect, "100-continue") == 0 && http_minor >= 1)
		bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	log_debug(&c->log, "%s %s from %s", r->method, r->path, c->peer);
	r->in_handler = true;
	r->route->r.on_request(r, r->route->r.arg);
	r->in_handler = false;
	return c->dead ? -1 : 0;
}

static int http_on_headers_complete(http_parser *p)
{
	int64_t length = (p->flags & F_CHUNKED) ? -1 : (p->flags & F_CONTENTLENGTH) ? (int64_t)p->content_length : 0;
	return http_conn_head_complete(p->data, p->method, p->http_minor, length, http_should_keep_alive(p));
}

/* Hands buffered body bytes to the handler unless it paused; blocks reading when too much waits. */
static void http_request_deliver(struct http_request *r)
{
	struct http_conn *c = r->conn;
	if (r->resp_ended || !r->on_body) {
		evbuffer_drain(r->body, evbuffer_get_length(r->body));
	} else if (!r->body_paused && evbuffer_get_length(r->body) > 0) {
		r->on_body(r, r->body, r->body_arg);
		if (c->dead)
			return;
	}
	if (evbuffer_get_length(r->body) > c->srv->lim.body_high_water) {
		if (!c->read_blocked) {
			c->read_blocked = true;
			http_parser_pause(&c->parser, 1);
			http_conn_reading(c, false);
		}
	}
}

static int http_on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	struct http_request *r = c->req;
	r->body_received += len;
	size_t limit = r->route->r.max_body ? r->route->r.max_body : c->srv->lim.max_body;
	if (r->body_received > limit && !r->resp_ended) {
		metrics_add(c->srv->m_err_body, 1);
		c->keep_alive = false;
		if (r->resp_started) {
			http_conn_close(c);
			return -1;
		}
		http_event_fn abort_fn = r->on_abort;
		r->on_abort = NULL;
		r->on_body = NULL;
		r->on_end = NULL;
		if (abort_fn)
			abort_fn(r, r->abort_arg);
		http_response_error(r, 413, "request body is over this route's limit of %zu bytes", limit);
		return -1; /* stop reading; the connection closes after the 413 */
	}
	if (r->resp_ended)
		return 0; /* discarding the rest of an answered request */
	evbuffer_add(r->body, at, len);
	http_request_deliver(r);
	return c->dead ? -1 : 0;
}

static int http_on_message_complete(http_parser *p)
{
	struct http_conn *c = p->data;
	struct http_request *r = c->req;
	r->body_done = true;
	if (r->content_length != 0)
		deadline_clear(&c->timer);
	/* no further request is parsed until this one is answered */
	c->parse_blocked = true;
	http_parser_pause(p, 1);
	if (r->resp_ended) {
		evbuffer_drain(r->body, evbuffer_get_length(r->body));
		http_conn_response_done(c);
		return 0;
	}
	if (!r->body_paused && r->on_body && evbuffer_get_length(r->body) > 0) {
		r->on_body(r, r->body, r->body_arg);
		if (c->dead)
			return -1;
	}
	if (!r->body_paused && r->on_end) {
		http_event_fn fn = r->on_end;
		r->on_end = NULL;
		fn(r, r->body_arg);
	}
	return c->dead ? -1 : 0;
}

static const http_parser_settings http_settings = {
	.on_message_begin = http_on_message_begin,
	.on_url = http_head_on_url,
	.on_header_field = http_head_on_header_field,
	.on_header_value = http_head_on_header_value,
	.on_headers_complete = http_on_headers_complete,
	.on_body = http_on_body,
	.on_message_complete = http_on_message_complete,
};

/* A whole plain head without a body at the start of buf (the connection between
 * messages): the callbacks libhttp-parser would make, in its order, from one
 * pass of the scanner. The parser is left paused by message_complete, as after
 * its own run. Returns the bytes used, 0 when the head is left to
 * libhttp-parser. */
static size_t http_conn_parse_fast(struct http_conn *c, const char *buf, size_t len)
{
	struct http_scan sc;
	if (!http_scan_request(buf, len, &sc) || sc.content_length > 0 ||
	    sc.head_len + sc.nheaders > c->srv->lim.max_header_size) /* (never counted over the limit) */
		return 0;
	http_parser *p = &c->parser;
	enum http_errno fail = HPE_OK;
	if (http_on_message_begin(p) != 0)
		fail = HPE_CB_message_begin;
	else if (http_head_fast(c, buf, &sc) != 0)
		fail = HPE_CB_header_value;
	if (fail == HPE_OK) {
		/* what the rest of the server reads from the parser */
		p->http_major = 1;
		p->http_minor = (unsigned short)sc.http_minor;
		p->method = (unsigned)sc.method;
		if (http_conn_head_complete(c, sc.method, sc.http_minor, 0, sc.keep_alive) != 0)
			fail = HPE_CB_headers_complete;
		else if (!c->dead && http_on_message_complete(p) != 0)
			fail = HPE_CB_message_complete;
	}
	if (fail != HPE_OK && !c->dead)
		p->http_errno = fail; /* reported as libhttp-parser's own callback failures are */
	return sc.head_len;
}

size_t http_conn_parse(struct http_conn *c, const char *buf, size_t len)
{
	if (!c->req) { /* between messages: the parser has seen nothing of the next
			  one */
		size_t n = http_conn_parse_fast(c, buf, len);
		if (n)
			return n;
	}
	return http_parser_execute(&c->parser, &http_settings, buf, len);
}
