/* The upstream client's own HTTP/1.1 transport for plain http:// URLs (http_client_h1.c): what
 * http_client.c and http_client_req.c call instead of libcurl for a request whose `native` flag
 * is set. libcurl speaks HTTP/1.1 to such URLs too (HTTP/2 comes only by ALPN over TLS), so the
 * protocol on the wire is the same; https:// and everything unusual stays with libcurl. */
#ifndef TETHER_HTTP_CLIENT_H1_H
#define TETHER_HTTP_CLIENT_H1_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <http_parser.h>

#include "deadline.h"

struct event;
struct evbuffer;
struct http_client;
struct http_client_req;

#define HTTP_CLIENT_H1_READ_SIZE (64 * 1024)
#define H1_OUT_HIGH (64 * 1024) /* request bytes queued on a connection before pulling stops */
#define H1_IDLE_MS 118000       /* libcurl's CURLOPT_MAXAGE_CONN default */
#define H1_IDLE_MAX 256         /* idle connections kept in all */

/* One state per connection; the comment names the list it is on. */
enum http_client_h1_state {
	H1_QUEUED,     /* a request waiting for a free slot (max_host_connections): host->queue */
	H1_CONNECTING, /* non-blocking connect in progress, with a request: pool->conns */
	H1_BUSY,       /* a request on it: pool->conns */
	H1_IDLE,       /* kept for reuse: pool->conns and host->idle */
};

struct http_client_h1_host {
	struct http_client_h1_host *next;
	char key[80];  /* host (as in the URL) ":" port */
	size_t hostlen;
	uint16_t port;
	char hdr[80];  /* Host header value */
	struct sockaddr_storage addr[2];
	socklen_t addrlen[2];
	int naddr;
	struct http_client_h1_conn *idle; /* most recently used first */
	struct http_client_h1_conn *queue, *queue_tail;
	size_t nconns; /* connecting, busy and idle */
};

struct http_client_h1_conn {
	struct http_client_h1 *pool;
	struct http_client_h1_host *host;
	struct http_client_h1_conn *prev, *next; /* pool->conns (or host->queue: next only) */
	struct http_client_h1_conn *idle_next;
	enum http_client_h1_state state;
	int fd, addr_i, connect_errno;
	struct event *ev, *defer;
	struct deadline timer; /* connect, response or idle: by state (h1_arm_timer) */
	short evflags;
	struct http_client_req *r;
	bool reused;           /* served a request before this one */
	bool send_done;        /* the whole request is queued in out (body end included) */
	bool stop_send;        /* an early error answer: the rest of the body is not sent */
	bool msg_done;         /* the final response is complete */
	bool no_reuse;         /* close after this response */
	bool in_cb, dead;      /* inside our callback / closed meanwhile (freed when it returns) */
	bool chunked, head_seen;
	bool in_value;         /* parser: the last header piece was a value, */
	bool value_at_end;     /* ending where the bytes being parsed end (parse_end) */
	const char *parse_end;
	bool msg_start;        /* nothing of the response parsed yet (the fast path may take it) */
	bool fast;             /* the head was read by the scanner: the body is counted here, */
	bool fast_keep;        /* not by the parser, and this is its keep-alive verdict */
	uint64_t fast_left;    /* body bytes still to come */
	CURLcode pending;      /* an error found where it cannot be reported yet (see h1_defer) */
	http_parser parser;
	struct evbuffer *out;
	char *hbuf;            /* the header being parsed: name NUL value */
	size_t hnlen, hlen, hcap, head_bytes;
	uint64_t got;          /* response bytes received in this attempt */
	int64_t t_start, deadline, connect_deadline; /* monotonic ms; 0 = none */
};

struct http_client_h1 {
	struct http_client *c;
	struct http_client_h1_host *hosts;
	struct http_client_h1_conn *conns;
	size_t nidle;
	char rbuf[HTTP_CLIENT_H1_READ_SIZE]; /* one recv() at a time, parsed at once */
	char *wbuf; /* the request head being built */
	size_t wcap;
};

/* Whether r->url can go the native way (http://, an IP literal or localhost, a plain path);
 * fills r's h1_* fields when it can. */
bool http_client_h1_parse_url(struct http_client_req *r);
/* Starts an attempt (state RUNNING already): a pooled connection or a new one. Never calls
 * back before returning; `timeout_ms` (0 = none) bounds the attempt. -1: out of memory,
 * nothing started. */
int http_client_h1_start(struct http_client_req *r, int64_t timeout_ms);
/* The attempt is abandoned (cancel, destroy): its connection is closed, never reused. */
void http_client_h1_detach(struct http_client_req *r);
/* curl_easy_pause's counterpart: r->curl_recv_paused / curl_send_paused say what stays paused. */
void http_client_h1_unpause(struct http_client_req *r);
/* Closes the pooled connections and frees the pool (every request is gone already). */
void http_client_h1_destroy(struct http_client *c);

/* Between the two files: the attempt's first error (curl's code and wording), reported by the
 * connection code once it is safe; the head of k's request queued on k->out (-1: out of
 * memory); a fresh parser for the next response; n response bytes fed to it (0 = the end). */
void http_client_h1_fail(struct http_client_h1_conn *k, CURLcode rc, const char *msg);
int http_client_h1_msg_head(struct http_client_h1_conn *k);
void http_client_h1_msg_reset(struct http_client_h1_conn *k);
void http_client_h1_msg_parse(struct http_client_h1_conn *k, const char *buf, size_t n);

#endif
