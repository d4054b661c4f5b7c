/* HTTP requests as handlers see them (headers, body flow control) and the responses they write:
 * headers, known-length or chunked bodies, whole JSON answers, Google-shaped errors, and
 * per-route metrics. */
#include "http_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/bufferevent.h>

#include "loopclock.h"

/* --- request lifecycle --- */

void http_request_reset(struct http_request *r)
{
	struct evbuffer *body = r->body;
	struct http_header *headers = r->headers;
	size_t cap = r->capheaders, head_cap = r->head_cap, rh_cap = r->rh_cap;
	char *head = r->head, *rh = r->rh;
	memset(r, 0, sizeof(*r));
	r->headers = headers;
	r->capheaders = cap;
	r->head = head;
	r->head_cap = head_cap;
	r->rh = rh;
	r->rh_cap = rh_cap;
	r->body = body ? body : evbuffer_new();
	evbuffer_drain(r->body, evbuffer_get_length(r->body));
	r->query = "";
	r->content_length = 0;
}

void http_request_free(struct http_request *r)
{
	http_request_reset(r);
	free(r->headers);
	free(r->head);
	free(r->rh);
	evbuffer_free(r->body);
	free(r);
}

/* --- accessors --- */

const char *http_request_method(const struct http_request *r)
{
	return r->method;
}

const char *http_request_target(const struct http_request *r)
{
	return r->target ? r->target : "/";
}

const char *http_request_path(const struct http_request *r)
{
	return r->path ? r->path : "/";
}

const char *http_request_query(const struct http_request *r)
{
	return r->query ? r->query : "";
}

const struct http_route *http_request_route(const struct http_request *r)
{
	return r->route ? &r->route->r : NULL;
}

const char *http_request_header(const struct http_request *r, const char *name)
{
	char c0 = (char)(name[0] | 0x20); /* the initial rules out most before strcasecmp */
	for (size_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name && (r->headers[i].name[0] | 0x20) == c0 && strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

size_t http_request_header_count(const struct http_request *r)
{
	return r->nheaders;
}

void http_request_header_at(const struct http_request *r, size_t i, const char **name, const char **value)
{
	*name = r->headers[i].name;
	*value = r->headers[i].value;
}

int64_t http_request_content_length(const struct http_request *r)
{
	return r->content_length;
}

const char *http_request_id(const struct http_request *r)
{
	return r->id;
}

const char *http_request_peer(const struct http_request *r)
{
	return r->conn->peer;
}

uint64_t http_request_conn_id(const struct http_request *r)
{
	return r->conn->id;
}

/* --- statuses --- */

const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

const char *http_status_google(int status)
{
	switch (status) {
	case 400: case 411: case 413: case 431: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 405: case 501: return "UNIMPLEMENTED";
	case 408: case 504: return "DEADLINE_EXCEEDED";
	case 409: return "ABORTED";
	case 412: return "FAILED_PRECONDITION";
	case 416: return "OUT_OF_RANGE";
	case 429: return "RESOURCE_EXHAUSTED";
	case 499: return "CANCELLED";
	case 502: case 503: return "UNAVAILABLE";
	default: return status >= 500 ? "INTERNAL" : status >= 400 ? "FAILED_PRECONDITION" : "OK";
	}
}

/* --- responses --- */

static bool http_hop_by_hop(const char *name)
{
	static const struct {
		const char *s;
		size_t n;
	} hop[] = { { "Connection", 10 },    { "Keep-Alive", 10 }, { "Transfer-Encoding", 17 }, { "TE", 2 },
		    { "Trailer", 7 },        { "Upgrade", 7 },     { "Proxy-Connection", 16 },  { "X-Request-Id", 12 },
		    { "Content-Length", 14 } };
	char c0 = (char)(name[0] | 0x20); /* the initials above: most names fail this one test */
	if (c0 != 'c' && c0 != 'k' && c0 != 't' && c0 != 'u' && c0 != 'p' && c0 != 'x')
		return false;
	size_t nlen = strlen(name);
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (hop[i].n == nlen && strcasecmp(name, hop[i].s) == 0)
			return true;
	return false;
}

void http_response_header(struct http_request *r, const char *name, const char *value)
{
	if (r->resp_started || http_hop_by_hop(name))
		return;
	/* no header splitting: CR/LF in a value would end the header block */
	size_t nlen = strcspn(name, "\r\n:"), vlen = strcspn(value, "\r\n");
	if (name[nlen] || value[vlen])
		return;
	/* A forwarded response keeps its origin's Date (RFC 9110 6.6.1: a recipient adds one only
	 * when there is none); one Date at most. */
	if (nlen == 4 && strncasecmp(name, "Date", 4) == 0) {
		if (r->resp_date || !vlen)
			return;
		r->resp_date = true;
	}
	size_t need = r->rh_len + nlen + vlen + 4;
	if (need > r->rh_cap) {
		size_t cap = r->rh_cap ? r->rh_cap : 512;
		while (cap < need)
			cap *= 2;
		char *n = realloc(r->rh, cap);
		if (!n)
			return;
		r->rh = n;
		r->rh_cap = cap;
	}
	char *w = r->rh + r->rh_len;
	memcpy(w, name, nlen), w += nlen;
	*w++ = ':', *w++ = ' ';
	memcpy(w, value, vlen), w += vlen;
	*w++ = '\r', *w++ = '\n';
	r->rh_len = need;
}

/* The Date header's value, formatted once a second rather than once a response. */
static const char *http_response_date(void)
{
	static time_t last = -1;
	static char date[64];
	time_t now = time(NULL);
	if (now != last) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		last = now;
	}
	return date;
}

void http_response_begin(struct http_request *r, int status, int64_t content_length)
{
	struct http_conn *c = r->conn;
	if (r->resp_started || c->dead)
		return;
	r->resp_started = true;
	r->status = status;
	r->resp_length = content_length;
	bool http11 = c->parser.http_major == 1 && c->parser.http_minor >= 1;
	if (content_length < 0) {
		if (http11)
			r->resp_chunked = true;
		else
			c->keep_alive = false; /* HTTP/1.0: the end of the body is the end of the connection */
	}
	if (c->srv->draining)
		c->keep_alive = false;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	/* Built by hand in one piece of the output (evbuffer_add_printf's vfprintf was a visible
	 * share of a small response, and so were an evbuffer_add per piece). */
	const char *reason = http_status_reason(status), *date = http_response_date();
	size_t rlen = strlen(reason), dlen = strlen(date), ilen = strlen(r->id);
	if (status < 100 || status > 999)
		status = 500;
	struct evbuffer_iovec v;
	size_t max = 9 + 4 + rlen + 8 + dlen + 16 + ilen + 2 + r->rh_len + 48 + 28;
	if (evbuffer_reserve_space(out, (ev_ssize_t)max, &v, 1) < 1) {
		http_conn_close(c);
		return;
	}
	char *head = v.iov_base;
	size_t n;
	memcpy(head, http11 ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
	n = 9;
	head[n++] = (char)('0' + status / 100);
	head[n++] = (char)('0' + status / 10 % 10);
	head[n++] = (char)('0' + status % 10);
	head[n++] = ' ';
	memcpy(head + n, reason, rlen), n += rlen;
	if (!r->resp_date) {
		memcpy(head + n, "\r\nDate: ", 8), n += 8;
		memcpy(head + n, date, dlen), n += dlen;
	}
	memcpy(head + n, "\r\nX-Request-Id: ", 16), n += 16;
	memcpy(head + n, r->id, ilen), n += ilen; /* id: at most 131 bytes */
	memcpy(head + n, "\r\n", 2), n += 2;
	if (r->rh_len) /* (rh is NULL until the first header: memcpy's source must not be) */
		memcpy(head + n, r->rh, r->rh_len), n += r->rh_len;
	if (r->resp_chunked) {
		memcpy(head + n, "Transfer-Encoding: chunked\r\n", 28), n += 28;
	} else if (content_length >= 0 && status != 204 && status != 304) {
		char cl[24], *p = cl + sizeof(cl);
		uint64_t val = (uint64_t)content_length;
		do
			*--p = (char)('0' + val % 10);
		while ((val /= 10) > 0);
		memcpy(head + n, "Content-Length: ", 16), n += 16;
		memcpy(head + n, p, (size_t)(cl + sizeof(cl) - p)), n += (size_t)(cl + sizeof(cl) - p);
		memcpy(head + n, "\r\n", 2), n += 2;
	}
	if (!c->keep_alive)
		memcpy(head + n, "Connection: close\r\n\r\n", 21), n += 21;
	else if (!http11)
		memcpy(head + n, "Connection: keep-alive\r\n\r\n", 26), n += 26;
	else
		memcpy(head + n, "\r\n", 2), n += 2;
	v.iov_len = n;
	evbuffer_commit_space(out, &v, 1);
}

static bool http_response_has_body(const struct http_request *r)
{
	return !r->head_method && r->status != 204 && r->status != 304;
}

int http_response_write(struct http_request *r, const void *data, size_t len)
{
	struct http_conn *c = r->conn;
	if (c->dead || !r->resp_started || r->resp_ended)
		return -1;
	if (len == 0 || !http_response_has_body(r))
		return 0;
	if (r->resp_length >= 0 && r->resp_written + len > (uint64_t)r->resp_length) {
		log_error(&c->log, "handler wrote past its Content-Length; closing");
		http_conn_close(c);
		return -1;
	}
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (r->resp_chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (r->resp_chunked)
		evbuffer_add(out, "\r\n", 2);
	r->resp_written += len;
	http_conn_flush(c);
	return 0;
}

int http_response_write_buffer(struct http_request *r, struct evbuffer *buf)
{
	struct http_conn *c = r->conn;
	size_t len = evbuffer_get_length(buf);
	if (c->dead || !r->resp_started || r->resp_ended)
		return -1;
	if (len == 0)
		return 0;
	if (!http_response_has_body(r)) {
		evbuffer_drain(buf, len);
		return 0;
	}
	if (r->resp_length >= 0 && r->resp_written + len > (uint64_t)r->resp_length) {
		log_error(&c->log, "handler wrote past its Content-Length; closing");
		http_conn_close(c);
		return -1;
	}
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (r->resp_chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add_buffer(out, buf);
	if (r->resp_chunked)
		evbuffer_add(out, "\r\n", 2);
	r->resp_written += len;
	http_conn_flush(c);
	return 0;
}

size_t http_response_pending(const struct http_request *r)
{
	const struct http_conn *c = r->conn;
	return c->dead || !c->bev ? 0 : evbuffer_get_length(bufferevent_get_output(c->bev));
}

void http_response_set_drain_handler(struct http_request *r, http_event_fn on_drain, void *arg)
{
	r->on_drain = on_drain;
	r->drain_arg = arg;
}

void http_response_end(struct http_request *r)
{
	struct http_conn *c = r->conn;
	if (r->resp_ended || c->dead)
		return;
	if (!r->resp_started)
		http_response_begin(r, r->status ? r->status : 200, 0);
	r->resp_ended = true;
	r->on_drain = NULL;
	r->on_abort = NULL;
	if (r->resp_chunked && http_response_has_body(r))
		evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
	if (r->resp_length >= 0 && http_response_has_body(r) && r->resp_written < (uint64_t)r->resp_length) {
		log_error(&c->log, "response ended %llu bytes short of its Content-Length; closing",
			  (unsigned long long)((uint64_t)r->resp_length - r->resp_written));
		c->keep_alive = false;
	}
	if (!c->keep_alive) {
		http_conn_response_done(c);
		if (!c->dead && c->state != HTTP_CONN_CLOSING)
			http_conn_close_after_flush(c);
		return;
	}
	http_conn_response_done(c);
	http_conn_flush(c);
}

void http_response_send(struct http_request *r, int status, const char *content_type, const void *body, size_t len)
{
	if (content_type)
		http_response_header(r, "Content-Type", content_type);
	http_response_begin(r, status, (int64_t)len);
	http_response_write(r, body, len);
	http_response_end(r);
}

void http_response_json(struct http_request *r, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s) {
		http_response_send(r, 500, "application/json", "{}", 2);
		return;
	}
	size_t len = strlen(s);
	s[len] = '\n';
	http_response_send(r, status, "application/json", s, len + 1);
	free(s);
}

void http_response_error(struct http_request *r, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *body = json_pack("{s:{s:i,s:s,s:s}}", "error", "code", status, "message", msg, "status",
				 http_status_google(status));
	http_response_json(r, status, body);
}

/* --- metrics --- */

static const char *http_method_label(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

void http_server_record(struct http_server *s, struct http_request *r)
{
	struct http_route_entry *e = r->route ? r->route : &s->notfound;
	const char *method = http_method_label(r->method);
	/* The series of the route's last few (method, status) pairs: most requests hit one. */
	struct http_route_series *hit = NULL;
	for (size_t i = 0; i < HTTP_ROUTE_SERIES_CACHE && e->cache[i].series; i++)
		if (e->cache[i].status == r->status && e->cache[i].method == method)
			hit = &e->cache[i];
	if (!hit) {
		char code[8];
		snprintf(code, sizeof(code), "%d", r->status);
		hit = &e->cache[e->cache_next];
		e->cache_next = (e->cache_next + 1) % HTTP_ROUTE_SERIES_CACHE;
		hit->status = r->status;
		hit->method = method;
		hit->series = metrics_series(s->m_requests, s->name, e->r.name, method, code);
	}
	metrics_add(hit->series, 1);
	if (r->start.tv_sec) {
		metrics_observe(e->duration, loopclock_since(&r->start));
	}
}

/* --- body flow control, called by handlers --- */

void http_request_body_pause(struct http_request *r)
{
	r->body_paused = true;
}

void http_request_body_resume(struct http_request *r)
{
	struct http_conn *c = r->conn;
	if (!r->body_paused && !c->read_blocked)
		return;
	r->body_paused = false;
	if (r->on_body && evbuffer_get_length(r->body) > 0 && !r->resp_ended) {
		r->on_body(r, r->body, r->body_arg);
		if (c->dead || c->req != r)
			return;
	}
	if (r->body_done && r->on_end) {
		http_event_fn fn = r->on_end;
		r->on_end = NULL;
		fn(r, r->body_arg);
		return;
	}
	if (c->read_blocked && evbuffer_get_length(r->body) <= c->srv->lim.body_high_water / 2) {
		c->read_blocked = false;
		http_conn_reading(c, true);
		event_active(c->resume_ev, 0, 0);
	}
}

void http_request_set_body_handlers(struct http_request *r, http_body_fn on_body, http_event_fn on_end, void *arg)
{
	r->on_body = on_body;
	r->on_end = on_end;
	r->body_arg = arg;
	/* body that arrived before the handler asked for it */
	if (!r->in_handler && evbuffer_get_length(r->body) > 0 && on_body)
		http_request_body_resume(r);
}

struct evbuffer *http_request_body_buffer(struct http_request *r)
{
	return r->body;
}

void http_request_set_abort_handler(struct http_request *r, http_event_fn on_abort, void *arg)
{
	r->on_abort = on_abort;
	r->abort_arg = arg;
}
