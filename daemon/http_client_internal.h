/* Private state of the upstream HTTP client, shared by http_client.c (the multi handle on the
 * loop, attempts, retries, metrics) and http_client_req.c (the request API and libcurl's
 * per-transfer callbacks). Nothing outside those two files includes this. */
#ifndef TETHER_HTTP_CLIENT_INTERNAL_H
#define TETHER_HTTP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/util.h>

#include "http_client.h"
#include "http_retry.h"
#include "log.h"

/* A retryable answer's body is read and thrown away up to this much; past it the transfer is
 * cut (the connection is lost, but a huge error body is not worth reading). */
#define HTTP_CLIENT_DISCARD_MAX (64 * 1024)

/* One state per request, changed only by http_client_req_set_state. "Active" states count in
 * http_client_active() and the in-flight gauge. Every request is on c->reqs until freed. */
enum http_client_req_state {
	HTTP_CLIENT_REQ_NEW,     /* created, not started; not active */
	HTTP_CLIENT_REQ_WAITING, /* start or backoff timer armed on r->ev; active */
	HTTP_CLIENT_REQ_RUNNING, /* easy handle in the multi; active */
	HTTP_CLIENT_REQ_HELD,    /* transfer complete while the consumer paused: on_done waits for
				    http_client_req_resume_body; active */
	HTTP_CLIENT_REQ_DONE,    /* finishing (on_done running) or being freed; not active */
};

/* Offsets into r->hbuf, where each header is stored as "name\0value\0". */
struct http_client_resp_header {
	size_t name, value;
};

struct http_client_req {
	struct http_client *c;
	struct http_client_req *prev, *next; /* c->reqs */
	enum http_client_req_state state;
	CURL *easy;
	char *method, *url, *log_target; /* log_target: host + path, never userinfo or query */
	char *strs; /* the three above, NUL-separated (kept with a pooled request) */
	size_t strs_cap;
	const char *upstream;
	/* The caller's headers as "Name: value" (or "Name; " for an empty value) strings one after
	 * another, NUL-terminated; kept with a pooled struct. curl gets a list made from them. */
	char *hdrs;
	size_t hdrs_len, hdrs_cap;
	struct curl_slist *headers;
	struct http_client_cbs cbs;
	void *arg;
	bool idempotent;
	int64_t timeout_ms;
	struct metric_series *m_inflight;

	/* Request body. body_in: queued by the caller and not yet handed to curl. replay: what this
	 * attempt handed to curl, kept (while keep_replay) so another attempt can send it again.
	 * replayable turns false for good once a byte was handed over without being kept. */
	bool has_body, streamed, body_ended, body_short;
	bool replayable, keep_replay;
	int64_t content_length; /* -1 = unknown */
	uint64_t body_total;    /* bytes the caller handed over in all (streamed bodies) */
	struct evbuffer *body_in, *replay;
	size_t replay_max;
	uint64_t sent; /* handed to curl in this attempt */
	bool want_drain, drain_pending;

	/* Response of the current attempt. */
	int status;
	struct http_client_resp_header *rh;
	size_t nrh, caprh;
	char *hbuf; /* the response head's names and values (rh holds offsets) */
	size_t hlen, hcap;
	bool head_done, delivered, discard;
	int64_t retry_delay_ms;
	size_t discarded;
	struct evbuffer *chunk;

	/* Pausing: what the consumer asked, what curl has paused now, and deferred work. */
	bool user_paused, curl_recv_paused, curl_send_paused, unpause_pending, deliver_pending;

	int attempts;
	int64_t t_first, t_attempt, start_at; /* monotonic ms */
	struct event *ev;                      /* backoff and deferred work */
	bool ev_armed;                         /* ev is pending or active: free must delete it */
	struct http_client_req *sq_next, **sq_pprev; /* on c's start queue (sq_pprev != NULL) */
	struct http_client_series *ms;         /* this upstream's cached metric series, or NULL */
	bool cancelled;
	char errbuf[CURL_ERROR_SIZE];

	/* The native HTTP/1.1 transport (http_client_h1.c) instead of curl: plain http:// only. */
	bool native;
	bool h1_fresh;                 /* this attempt wants a new connection, not a pooled one */
	struct http_client_h1_conn *h1; /* the connection of the running attempt, or NULL */
	uint16_t h1_port;
	size_t h1_host, h1_hostlen, h1_path; /* offsets into url: host (brackets kept), path */
};

struct http_client_sock {
	struct http_client_sock *prev, *next; /* c->socks */
	struct event *ev;
	short what;
};

/* Freed requests kept for reuse with their easy handle (options that never change already set),
 * buffers, event and header arrays: a request then costs no allocation of its own. None under
 * AddressSanitizer: a reused struct would hide a use after free from it. */
#define HTTP_CLIENT_SPARE_REQS 64
static inline size_t http_client_spare_keep(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 0;
#else
	return HTTP_CLIENT_SPARE_REQS;
#endif
}

/* The metric series of one upstream label, looked up once instead of per request. */
#define HTTP_CLIENT_SERIES_CACHE 8
struct http_client_series {
	char upstream[32]; /* a copy: the caller's string need only outlive its requests */
	struct metric_series *inflight, *duration;
	struct metric_series *requests[3][6]; /* [result][status class: none, 1xx..5xx] */
};

struct http_client {
	struct event_base *base;
	struct metrics *metrics;
	CURLM *multi;
	struct event *timer;
	struct http_client_opts opts;
	char *ca_file, *user_agent;
	struct http_retry_policy policy;
	struct http_client_req *reqs;
	struct http_client_sock *socks;
	size_t active;
	int depth; /* > 0 inside a libcurl call or a caller's callback: frees must be deferred */
	bool destroying;
	struct http_client_req *spare; /* freed requests for reuse (next-linked), see above */
	/* Requests started since the loop last ran start_ev: one event per turn of the loop
	 * starts them all, instead of one activation and one callback per request. */
	struct http_client_req *sq_head, **sq_tail;
	struct event *start_ev;
	size_t nspare;
	bool no_proxy_env; /* no proxy variables at start: curl is told so, saving its getenv()s */
	struct http_client_h1 *h1; /* the native transport's pool (http_client_h1.c), or NULL */
	bool native_http1;         /* plain http:// URLs may use it */
	char h1_auth[64];          /* the last authority http_client_h1_parse_url took (most */
	size_t h1_auth_len, h1_auth_hostlen; /* requests name the same one), its host part and */
	uint16_t h1_auth_port;     /* port; h1_auth_len 0: none yet */
	struct http_client_series series[HTTP_CLIENT_SERIES_CACHE];
	size_t nseries;
	struct metric *m_requests, *m_retries, *m_errors, *m_inflight, *m_duration;
};

extern const struct log_src http_client_log;

int64_t http_client_now_ms(void);
void http_client_req_set_state(struct http_client_req *r, enum http_client_req_state to);
void http_client_req_free(struct http_client_req *r);
/* The cached series of an upstream label (NULL when metrics are off or the cache is full). */
struct http_client_series *http_client_series_for(struct http_client *c, const char *upstream);
/* A new easy handle with the options every request of this client shares. */
CURL *http_client_easy_new(struct http_client *c);
/* Runs r's deferred work (drain notice, unpausing, delivery, freeing) on the next loop turn. */
void http_client_req_defer(struct http_client_req *r);
void http_client_req_on_event(evutil_socket_t fd, short what, void *arg);
/* The start queue (c->sq_head): add is a no-op for a queued request, remove for one not queued. */
void http_client_startq_add(struct http_client_req *r);
void http_client_startq_remove(struct http_client_req *r);
/* Delay before another attempt (Retry-After in ms or -1), or -1 when there must not be one. */
int64_t http_client_retry_delay(struct http_client_req *r, int64_t retry_after_ms);

/* libcurl callbacks for one transfer (http_client_req.c). */
size_t http_client_req_header_cb(char *buf, size_t size, size_t n, void *arg);
size_t http_client_req_write_cb(char *buf, size_t size, size_t n, void *arg);
size_t http_client_req_read_cb(char *buf, size_t size, size_t n, void *arg);
int http_client_req_seek_cb(void *arg, curl_off_t offset, int origin);
/* The read callback for http_client_h1.c: body bytes moved into dst, same return values. */
size_t http_client_req_read_into(struct http_client_req *r, struct evbuffer *dst, size_t max);
/* Hands the consumer the response bytes waiting in r->chunk (depth-guarded). */
void http_client_req_deliver(struct http_client_req *r);
/* One response header, trimmed and stored (both transports). */
void http_client_req_store_header(struct http_client_req *r, const char *name, size_t nlen, const char *value,
				  size_t vlen);
/* The final head (status >= 200) is complete: the retry decision, then on_headers. false: stop
 * the transfer (a retry discards it, or the request was cancelled). */
bool http_client_req_head_complete(struct http_client_req *r, int status);
/* One attempt ended: retry, hold for a paused consumer, or report (may free r). */
void http_client_attempt_done(struct http_client_req *r, CURLcode rc);

#endif
