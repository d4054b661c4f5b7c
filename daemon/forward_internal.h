/* The forwarding engine's own structs (forward.c) and the lifetime of a request struct
 * (forward_req.c), shared by those two files only. */
#ifndef TETHER_FORWARD_INTERNAL_H
#define TETHER_FORWARD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "forward.h"
#include "log.h"

struct credentials_wait;
struct http_client_req;
struct metric;
struct metric_series;

/* A route's metric series: routes are the plugins' literals, a handful per plugin. */
#define FORWARD_ROUTE_CACHE 16
struct forward_series {
	const char *route;
	struct metric_series *upstream, *requests[6]; /* requests by forward_status_class */
};

struct forward {
	struct core *core;
	struct forward_spec spec;
	const struct forward_conf *conf;
	struct log_src log;
	char *endpoint;   /* without trailing '/' */
	char *scopes;     /* space separated; "" = credentials.scopes */
	char *public_url; /* without trailing '/', or NULL */
	char **prefixes;
	size_t nprefixes;
	struct forward_req *reqs; /* in flight */
	size_t nreqs;
	size_t nwaiting; /* requests waiting for a token (see forward_on_request) */
	void (*drain_done)(void *arg);
	void *drain_arg;
	struct metric *m_requests, *m_upstream, *m_errors;
	struct forward_series routes[FORWARD_ROUTE_CACHE]; /* series per route, looked up once */
	size_t nroutes;
	struct metric_series *m_bytes_in, *m_bytes_out, *m_token_waits, *m_token_failures;
	struct forward_req *spare; /* finished requests kept for reuse with their buffers */
	size_t nspare;
};

struct forward_req {
	struct forward *f;
	struct forward_req *prev, *next; /* f->reqs while not finished */
	struct log_src log;
	struct http_request *r;     /* the app's request; NULL once answered or gone */
	struct http_client_req *up; /* NULL before start and after on_done */
	struct credentials_wait *wait;
	char *url, *scopes, *token;            /* token: a copy while the request may need to invalidate it */
	char *token_buf;                       /* token points here when set */
	size_t url_cap, scopes_cap, token_cap; /* the buffers' sizes (kept with a spare) */
	bool no_spare;                         /* finished while its forward went: freed, not kept */
	char method[16];
	char path[160]; /* for log lines: path only, never the query (upload ids, signatures) */
	struct forward_call call;
	bool has_body, body_done, resp_paused, resp_started, finished;
	int busy; /* callbacks on the stack: freeing waits for 0 */
	int status;
	struct timespec t0, t_up;
	uint64_t bytes_in, bytes_out;
};

/* A request struct, spare or new, zeroed but for its kept buffers; NULL when out of memory. */
struct forward_req *forward_req_new(struct forward *f);
/* Keeps the struct as a spare (its token buffer wiped) or frees it with its buffers. */
void forward_req_free(struct forward_req *fr);
/* Frees the struct and its buffers, the token buffer wiped first. */
void forward_req_release(struct forward_req *fr);
/* *buf holds at least `need` bytes (its size in *cap; what it held is wiped, not copied). */
char *forward_req_buf_fit(char **buf, size_t *cap, size_t need);
/* Copies n bytes and a NUL into *buf, grown to fit. */
char *forward_req_buf_set(char **buf, size_t *cap, const char *src, size_t n);

#endif
