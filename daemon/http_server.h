/* HTTP/1.1 server on the event loop (libhttp-parser on bufferevents): keep-alive, pipelined
 * requests answered in order, request and response bodies streamed with back-pressure, route
 * prefixes mounted by plugins, JSON errors in Google's shape, a request id on every response,
 * and per-route metrics. */
#ifndef TETHER_HTTP_SERVER_H
#define TETHER_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>
#include <jansson.h>

struct event_base;
struct evbuffer;
struct metrics;
struct http_server;
struct http_request;

struct http_server_limits {
	size_t max_header_size;   /* request line + headers; over it: 431 and close. 0 = 64 KiB */
	size_t max_body;          /* default per-route body limit; over it: 413. 0 = 1 MiB */
	int64_t idle_timeout_ms;  /* keep-alive idle before close. 0 = 60 s */
	int64_t header_timeout_ms; /* whole request head must arrive within. 0 = 10 s */
	size_t max_connections;   /* beyond it new connections get 503 and close. 0 = 10000 */
	size_t body_high_water;   /* stop reading the socket while this much body is unconsumed.
				     0 = 256 KiB */
};

/* A mounted route. The longest matching prefix wins; "/" matches everything not matched. */
struct http_route {
	const char *prefix;  /* "/storage/v1/" or an exact path like "/healthz" (see `exact`) */
	bool exact;          /* match the path exactly rather than as a prefix */
	const char *name;    /* metrics label "route" (defaults to prefix) */
	size_t max_body;     /* 0 = server default; a body over it gets 413 */
	/* Called once the request head is complete and the route matched. The handler answers now
	 * or later; if it keeps `req` past this call it must set an abort handler. */
	void (*on_request)(struct http_request *req, void *arg);
	void *arg;
};

/* `name` labels metrics and log lines ("admin", "http"). */
struct http_server *http_server_create(struct event_base *base, struct metrics *metrics, const char *name,
				       const struct http_server_limits *limits);
void http_server_set_limits(struct http_server *s, const struct http_server_limits *limits);
/* Routes are copied; strings must outlive the server (use literals or plugin-owned memory). */
int http_server_mount(struct http_server *s, const struct http_route *route);
void http_server_unmount(struct http_server *s, const char *prefix);
/* The listener callback: hands an accepted socket to the server (arg = the server). */
void http_server_accept(evutil_socket_t fd, const struct sockaddr *sa, int salen, void *arg);
/* Stop keep-alive, close idle connections, let requests in flight finish; `done` runs once no
 * connection is left (possibly immediately, never from inside this call). */
void http_server_drain(struct http_server *s, void (*done)(void *arg), void *arg);
size_t http_server_connections(const struct http_server *s);
/* Closes every connection (aborting requests) and frees the server. */
void http_server_destroy(struct http_server *s);

/* --- the request --- */
const char *http_request_method(const struct http_request *r);  /* "GET" */
const char *http_request_target(const struct http_request *r);  /* raw "/path?query" */
const char *http_request_path(const struct http_request *r);    /* "/path" (not decoded) */
const char *http_request_query(const struct http_request *r);   /* after '?', or "" */
const struct http_route *http_request_route(const struct http_request *r);
/* First header with that name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *r, const char *name);
size_t http_request_header_count(const struct http_request *r);
void http_request_header_at(const struct http_request *r, size_t i, const char **name, const char **value);
/* Content-Length, or -1 when the body is chunked; 0 when there is no body. */
int64_t http_request_content_length(const struct http_request *r);
/* The client's X-Request-Id when it is sane (<= 128 printable chars), else a generated one. */
const char *http_request_id(const struct http_request *r);
/* Peer description for logs ("unix" or "127.0.0.1:53412"). */
const char *http_request_peer(const struct http_request *r);
uint64_t http_request_conn_id(const struct http_request *r);

/* Body streaming. Body bytes arrive in `on_body` as an evbuffer the handler drains as far as it
 * wants; while more than body_high_water bytes stay undrained the server stops reading the socket
 * (back-pressure) until http_request_body_resume(). `on_end` runs once the whole body has arrived
 * and the handler is not paused, even if the handler left bytes undrained (they stay in
 * http_request_body_buffer() for it to take). If no body
 * handler is set by the time the body arrives, the body is read and discarded. A body over the
 * route's limit never reaches the handler: the client gets 413. */
typedef void (*http_body_fn)(struct http_request *r, struct evbuffer *data, void *arg);
typedef void (*http_event_fn)(struct http_request *r, void *arg);
void http_request_set_body_handlers(struct http_request *r, http_body_fn on_body, http_event_fn on_end, void *arg);
void http_request_body_pause(struct http_request *r);
struct evbuffer *http_request_body_buffer(struct http_request *r);
void http_request_body_resume(struct http_request *r);
/* The client went away or the server is closing: `on_abort` runs once and the request is freed
 * when it returns; the handler must forget the pointer. Not called after http_response_end(). */
void http_request_set_abort_handler(struct http_request *r, http_event_fn on_abort, void *arg);

/* --- the response --- */
/* Adds a header to the response (before begin). Hop-by-hop headers set by handlers are ignored;
 * the server manages Connection, Transfer-Encoding, Date and X-Request-Id. */
void http_response_header(struct http_request *r, const char *name, const char *value);
/* Sends the status line and headers. content_length -1 = unknown (chunked encoding). */
void http_response_begin(struct http_request *r, int status, int64_t content_length);
/* Queues body bytes (copied / moved). Returns 0, or -1 if the client is gone. */
int http_response_write(struct http_request *r, const void *data, size_t len);
int http_response_write_buffer(struct http_request *r, struct evbuffer *buf);
/* Bytes queued to the client and not yet sent; a streaming handler stops producing while this is
 * high and resumes in the drain callback (called when it falls under the low-water mark). */
size_t http_response_pending(const struct http_request *r);
void http_response_set_drain_handler(struct http_request *r, http_event_fn on_drain, void *arg);
/* Finishes the response. The request is freed once its body has also been consumed. */
void http_response_end(struct http_request *r);

/* Whole responses in one call. */
void http_response_send(struct http_request *r, int status, const char *content_type, const void *body, size_t len);
void http_response_json(struct http_request *r, int status, json_t *body); /* steals the reference */
/* {"error":{"code":status,"message":msg,"status":"NOT_FOUND"}} — Google's error shape. */
void http_response_error(struct http_request *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The canonical Google status name for an HTTP status ("NOT_FOUND", "UNAVAILABLE", ...). */
const char *http_status_google(int status);
const char *http_status_reason(int status);

#endif
