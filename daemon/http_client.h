/* Upstream HTTP client: libcurl's multi-socket API driven by the libevent loop (connection
 * reuse, HTTP/2 where offered, TLS always verified), request and response bodies streamed with
 * back-pressure in both directions, and the one place where upstream calls are retried
 * (Google's strategy: idempotent requests only, on connection errors, 408, 429 and 5xx, with
 * exponential backoff, full jitter and Retry-After, bounded in time).
 *
 * Lifecycle of a request: create, set method/headers/body/callbacks, start. Exactly one of
 * on_done (after start) or nothing (after http_client_req_cancel) ends it; the client frees the
 * request when on_done returns, so the caller forgets the pointer there. Callbacks never run
 * from inside a call the caller made into this API, except on_done from http_client_destroy.
 * Calling http_client_req_cancel from inside any callback of the same request is allowed;
 * http_client_destroy from inside a callback is not (it aborts the process).
 *
 * A streamed forward, in short: req_create, req_header (per header), req_body_stream(len),
 * req_callbacks, req_start; write the body in on_drain while !req_body_full, then
 * req_body_end; relay on_headers, move bytes out of `chunk` in on_body and pause/resume when
 * the downstream is full/drained; on_done reports the outcome. */
#ifndef TETHER_HTTP_CLIENT_H
#define TETHER_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct metrics;
struct http_client;
struct http_client_req;

struct http_client_opts {
	const char *ca_file;             /* CA bundle (PEM) instead of the system store; NULL = system */
	int64_t connect_timeout_ms;      /* per connection attempt; 0 = 10 s */
	int64_t timeout_ms;              /* default whole-request bound incl. retries; 0 = none */
	long max_host_connections;       /* 0 = unbounded (HTTP/2 multiplexes anyway) */
	size_t replay_max;               /* streamed bodies up to this size can be retried; 0 = 1 MiB */
	int64_t backoff_initial_ms;      /* 0 = 1 s */
	int64_t backoff_max_ms;          /* 0 = 60 s */
	int64_t retry_window_ms;         /* no attempt starts later than this; 0 = 60 s */
	int max_attempts;                /* first attempt included; 0 = 10 */
	int64_t retry_after_max_ms;      /* longer Retry-After ends retries; 0 = 60 s */
	size_t body_high_water;          /* http_client_req_body_full() above this; 0 = 256 KiB */
	const char *user_agent;          /* NULL = "tether/<version>" */
	bool http1_only;                 /* tests: no HTTP/2 negotiation */
	bool curl_only;                  /* libcurl for plain http:// too, not the own HTTP/1.1 client */
};

/* Final outcome of a request, one meaning each. */
enum http_client_result {
	HTTP_CLIENT_OK = 0, /* a complete response was delivered (any status: look at it; a 503
			       that could not be retried arrives here too) */
	HTTP_CLIENT_RETRY,  /* transient transport failure (connect, reset, timeout) that was not or
			       no longer retried; if on_headers ran, the response was cut short */
	HTTP_CLIENT_FAIL,   /* permanent: bad URL, TLS verification, body ended short of its
			       length, client shut down */
};
const char *http_client_result_name(enum http_client_result r);

struct http_client_cbs {
	/* Final response head (1xx are skipped; status >= 200). Headers via http_client_resp_*. */
	void (*on_headers)(struct http_client_req *req, int status, void *arg);
	/* Response body bytes: drain what you can take. Bytes left in `chunk` stay there (it is the
	 * same buffer each time, owned by the request). Call http_client_req_pause_body to stop the
	 * transfer and http_client_req_resume_body when you can take more; leaving body_high_water
	 * bytes or more in `chunk` pauses the same way. After a resume, bytes left in `chunk` are
	 * offered again. A response that completes while paused holds on_done until the resume. */
	void (*on_body)(struct http_client_req *req, struct evbuffer *chunk, void *arg);
	/* Streamed request body: the client consumed what was queued (fell under the low-water mark
	 * or is waiting for data); write more. Not called after http_client_req_body_end. */
	void (*on_drain)(struct http_client_req *req, void *arg);
	/* The end. `error` is a human sentence (never a header value or body) or NULL on OK. */
	void (*on_done)(struct http_client_req *req, enum http_client_result res, const char *error, void *arg);
};

/* `metrics` may be NULL. NULL on failure (logged). Metrics, labelled by `upstream` only (never
 * a URL): tether_upstream_requests_total{upstream,result=ok|retry|fail,code=2xx..5xx|none},
 * tether_upstream_retries_total{upstream,reason}, tether_upstream_errors_total{upstream,kind},
 * tether_upstream_requests_in_flight{upstream}, tether_upstream_request_duration_seconds{upstream}. */
struct http_client *http_client_create(struct event_base *base, struct metrics *metrics,
				       const struct http_client_opts *opts);
/* Aborts every transfer: on_done(FAIL, "client shut down") for each started request. */
void http_client_destroy(struct http_client *c);
/* Started requests not yet done. */
size_t http_client_active(const struct http_client *c);

/* `upstream` labels metrics and logs ("storage", "pubsub", "metadata", "oauth2"); literal or
 * otherwise outliving the request. The URL is copied. */
struct http_client_req *http_client_req_create(struct http_client *c, const char *upstream, const char *method,
					       const char *url);
/* Adds a request header (copied). Never logged. Before start only; -1 for a name that is not a
 * token or a value with CR/LF. Body framing and hop-by-hop headers (Content-Length,
 * Transfer-Encoding, Connection, Keep-Alive, Proxy-Connection, TE, Upgrade, Expect, Trailer)
 * are the client's own: adding one is ignored (0). */
int http_client_req_header(struct http_client_req *r, const char *name, const char *value);
/* Removes every header named `name` added so far (case-insensitive). Before start only. */
void http_client_req_header_remove(struct http_client_req *r, const char *name);
/* Whole body, copied: replayable, so the request can be retried. Before start only. POST, PUT
 * and PATCH without a body are sent with Content-Length: 0. */
int http_client_req_body(struct http_client_req *r, const void *data, size_t len);
/* Streamed body of `content_length` bytes (-1 = unknown: chunked on HTTP/1.1), fed with
 * http_client_req_body_write / _body_end after (or before) start. Such a request is retried
 * only while every byte sent so far is still kept for replay: bodies of up to replay_max
 * bytes (unknown length: until more than that was sent). */
void http_client_req_body_stream(struct http_client_req *r, int64_t content_length);
/* The caller asserts that sending this request twice is harmless (a precondition such as
 * ifGenerationMatch, a resumable-upload chunk...), or says it is not. Only idempotent requests
 * are retried. Default: true for GET, HEAD and OPTIONS, false for every other method (PUT and
 * DELETE too: Google retries them only with a precondition). */
void http_client_req_idempotent(struct http_client_req *r, bool idempotent);
/* Bound on the whole request including retries and backoff; 0 = none. Overrides the default. */
void http_client_req_timeout(struct http_client_req *r, int64_t ms);
void http_client_req_callbacks(struct http_client_req *r, const struct http_client_cbs *cbs, void *arg);
/* Starts the first attempt (on the next loop iteration). 0, or -1 (the request is freed, no
 * callback will run). Starting a started or cancelled request is misuse: -1, nothing changes. */
int http_client_req_start(struct http_client_req *r) __attribute__((warn_unused_result));
/* Frees the request without any further callback; aborts the transfer if one is running.
 * Outside callbacks the memory is freed at once, inside one when the loop gets back. */
void http_client_req_cancel(struct http_client_req *r);

/* Streamed body: moves all of `buf` into the request. Keep writing while
 * http_client_req_body_full() is false; on_drain says when to go on. 0, or -1 (nothing moved)
 * when the body was already ended or would exceed the declared length. A body ended short of
 * its declared length fails the request (HTTP_CLIENT_FAIL). */
int http_client_req_body_write(struct http_client_req *r, struct evbuffer *buf);
int http_client_req_body_end(struct http_client_req *r);
bool http_client_req_body_full(const struct http_client_req *r);
size_t http_client_req_body_pending(const struct http_client_req *r);

/* Response back-pressure (see on_body). Safe from inside on_body. */
void http_client_req_pause_body(struct http_client_req *r);
void http_client_req_resume_body(struct http_client_req *r);

/* The final response's headers, valid from on_headers until the request is freed. Names are as
 * the server sent them (HTTP/2: lowercase); lookup is case-insensitive. They are the raw
 * headers: a forwarder drops hop-by-hop ones (Transfer-Encoding, Connection...) itself. */
const char *http_client_resp_header(const struct http_client_req *r, const char *name);
size_t http_client_resp_header_count(const struct http_client_req *r);
void http_client_resp_header_at(const struct http_client_req *r, size_t i, const char **name, const char **value);
int http_client_resp_status(const struct http_client_req *r);
/* Attempts made so far (1 = no retry); useful in tests and logs. */
int http_client_req_attempts(const struct http_client_req *r);
/* Bytes of request body handed to curl in the current attempt. */
uint64_t http_client_req_body_sent(const struct http_client_req *r);

#endif
