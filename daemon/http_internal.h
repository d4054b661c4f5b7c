/* Private structures shared by the HTTP server's connection code (http_server.c) and its
 * response code (http_response.c). */
#ifndef TETHER_HTTP_INTERNAL_H
#define TETHER_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <http_parser.h>

#include "deadline.h"
#include "http_server.h"
#include "log.h"
#include "metrics.h"

struct bufferevent;
struct event;

#define HTTP_ROUTE_SERIES_CACHE 4
#define HTTP_READ_SIZE (64 * 1024)
struct http_route_series {
	int status;
	const char *method; /* one of http_method_label's constants */
	struct metric_series *series;
};

struct http_route_entry {
	struct http_route r;
	size_t prefix_len;
	struct metric_series *duration;
	struct http_route_series cache[HTTP_ROUTE_SERIES_CACHE]; /* http_requests_total series */
	size_t cache_next;
};

struct http_conn;

struct http_server {
	struct event_base *base;
	struct metrics *metrics;
	char *name;
	struct log_src log;
	struct http_server_limits lim;
	struct http_route_entry *routes; /* longest prefix first */
	size_t nroutes;
	struct http_conn *conns;
	size_t nconns;
	uint64_t next_conn_id;
	uint64_t rng[2];
	struct http_conn *dead;     /* closed during callbacks; freed by reap_ev */
	struct event *reap_ev;
	bool draining;
	void (*drain_done)(void *arg);
	void *drain_arg;
	struct event *drain_ev;
	struct metric *m_requests;
	struct metric *m_duration;
	struct metric_series *m_conns, *m_conns_total;
	struct metric_series *m_err_bad_request, *m_err_header, *m_err_body, *m_err_timeout, *m_err_conns;
	struct http_route_entry notfound; /* metrics for unknown routes */
	char rbuf[HTTP_READ_SIZE];        /* one recv() at a time, parsed where it lands */
};

struct http_header {
	char *name; /* into r->head, set when the head is complete */
	char *value;
	size_t name_at, value_at; /* offsets into r->head while it grows */
};

/* The piece of the request head the parser is delivering (its pieces may come in fragments). */
enum http_head_piece { HTTP_PIECE_NONE, HTTP_PIECE_URL, HTTP_PIECE_FIELD, HTTP_PIECE_VALUE };

struct http_request {
	struct http_conn *conn;
	char method[16];
	char *target; /* target, path and the headers' names and values are NUL-terminated strings */
	char *path;   /* in one buffer, `head`, kept with the struct for the next request */
	const char *query;
	struct http_header *headers;
	size_t nheaders, capheaders;
	char *head;
	size_t head_len, head_cap, target_at;
	int64_t content_length;
	bool head_method;
	bool body_done;
	bool body_paused;
	uint64_t body_received;
	struct evbuffer *body;
	struct http_route_entry *route;
	char id[132];
	struct timespec start;
	http_body_fn on_body;
	http_event_fn on_end, on_abort, on_drain;
	void *body_arg, *abort_arg, *drain_arg;
	/* response */
	int status;
	char *rh; /* the handler's response headers, "Name: value\r\n" each (kept for the next request) */
	size_t rh_len, rh_cap;
	bool resp_started, resp_ended, resp_chunked;
	bool resp_date; /* the handler gave a Date (a forwarded upstream's): tether adds none */
	int64_t resp_length;
	uint64_t resp_written;
	bool in_handler;
	bool recorded;
};

enum http_conn_state {
	HTTP_CONN_IDLE,   /* waiting for a request's first byte (idle timer) */
	HTTP_CONN_HEAD,   /* reading a request head (header timer) */
	HTTP_CONN_ACTIVE, /* a request is being served */
	HTTP_CONN_CLOSING /* flushing output, then closed */
};

struct http_conn {
	struct http_conn *next, *prev;
	struct http_server *srv;
	struct bufferevent *bev; /* output; input is read by rev into its input buffer */
	struct event *rev;
	bool reading;
	uint64_t id;
	char peer[64];
	struct log_src log;
	http_parser parser;
	enum http_conn_state state;
	struct http_request *req;
	struct http_request *spare; /* recycled request struct */
	struct deadline timer; /* idle, head, stalled body or closing: by state */
	struct event *resume_ev; /* parse buffered input after a response ends */
	struct event *drain_ev;  /* a streaming response may produce more: the socket took it all */
	size_t head_bytes;
	enum http_head_piece piece; /* header callbacks: what the last fragment belonged to */
	bool head_overflow;
	bool keep_alive;
	bool parse_blocked; /* a request is complete and waits for its response */
	bool read_blocked;  /* body back-pressure */
	bool dead;
	int in_cb; /* inside a loop callback for this connection: flush when it returns */
};

/* http_response.c */
void http_response_write_head(struct http_request *r);
void http_request_reset(struct http_request *r);
void http_request_free(struct http_request *r);
/* http_server_head.c: libhttp-parser's callbacks for the head's pieces; at headers_complete,
 * http_head_done (-1: out of memory or over max_header_size), then the request id (the
 * app's X-Request-Id when sane, else a random one). */
int http_head_on_url(http_parser *p, const char *at, size_t len);
int http_head_on_header_field(http_parser *p, const char *at, size_t len);
int http_head_on_header_value(http_parser *p, const char *at, size_t len);
int http_head_done(struct http_conn *c);
struct http_scan;
/* The whole head from the fast scanner (pieces of buf), stored as the callbacks would. */
int http_head_fast(struct http_conn *c, const char *buf, const struct http_scan *sc);
void http_head_request_id(struct http_server *s, struct http_request *r);
/* http_server_msg.c: feeds len bytes of input to the request parser (the fast path for a
 * plain head between messages, else libhttp-parser), returning the bytes used; errors and
 * pauses are in c->parser's http_errno as libhttp-parser leaves them. */
size_t http_conn_parse(struct http_conn *c, const char *buf, size_t len);
/* http_server.c */
struct http_route_entry *http_server_route(struct http_server *s, const char *path);
void http_conn_arm_timer(struct http_conn *c, int64_t ms);
void http_conn_response_done(struct http_conn *c);
/* Writes queued output now; the write event is armed only when the socket is full. */
void http_conn_flush(struct http_conn *c);
void http_conn_close(struct http_conn *c);
void http_conn_close_after_flush(struct http_conn *c);
/* Whether the socket is read (back-pressure, closing). */
void http_conn_reading(struct http_conn *c, bool on);
void http_server_record(struct http_server *s, struct http_request *r);

#endif
