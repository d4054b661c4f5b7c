/* Shared by the upstream HTTP client tests: one event base, an evhttp upstream (plain or TLS),
 * raw-socket fault servers, and per-request records for the client's callbacks. Included by
 * test_http_client.c and test_http_client_faults.c only. */
#ifndef TETHER_TEST_HTTP_CLIENT_HARNESS_H
#define TETHER_TEST_HTTP_CLIENT_HARNESS_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "http_client.h"
#include "log.h"
#include "metrics.h"
#include "tap.h"

#define MiB (1024 * 1024)
#define UPLOAD_SIZE (64ULL * MiB)
#define DOWNLOAD_SIZE (8 * MiB)
#define HIGH_WATER (256 * 1024)
#define WRITE_SIZE (64 * 1024)

static struct event_base *base;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
}

static int run_until(const int *flag, int64_t ms)
{
	int64_t end = now_ms() + ms;
	while (!*flag && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	return *flag;
}

static void run_for(int64_t ms)
{
	int never = 0;
	run_until(&never, ms);
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i % 251);
}

static void skip(const char *why)
{
	printf("ok %d # SKIP %s\n", ++tap_n, why);
}

/* --- the evhttp upstream --- */

struct upstream {
	struct evhttp *http;
	int port;
	SSL_CTX *ssl;
	int conns;                                     /* accepted connections */
	int flaky_hits, flaky_fail, ra_hits, post_hits, put_hits, always_hits;
	int64_t ra_time[2];
	size_t put_len[4];
	uint64_t upload_len;
	int upload_bad, uploads;
};

static struct bufferevent *upstream_bevcb(struct event_base *b, void *arg)
{
	struct upstream *u = arg;
	u->conns++;
	if (u->ssl)
		return bufferevent_openssl_socket_new(b, -1, SSL_new(u->ssl), BUFFEREVENT_SSL_ACCEPTING,
						      BEV_OPT_CLOSE_ON_FREE);
	return bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
}

static void reply(struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static void upstream_handle(struct evhttp_request *req, void *arg)
{
	struct upstream *u = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq *in = evhttp_request_get_input_headers(req), *out = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	if (strcmp(path, "/hello") == 0) {
		const char *x = evhttp_find_header(in, "X-Req");
		evhttp_add_header(out, "X-Test", "yes");
		evhttp_add_header(out, "X-Echo", x ? x : "");
		const char *ua = evhttp_find_header(in, "User-Agent");
		evhttp_add_header(out, "X-UA", ua ? ua : "");
		reply(req, 200, "hello world");
	} else if (strcmp(path, "/flaky") == 0) {
		u->flaky_hits++;
		reply(req, u->flaky_hits <= u->flaky_fail ? 503 : 200, u->flaky_hits <= u->flaky_fail ? "busy" : "ok");
	} else if (strcmp(path, "/ratelimit") == 0) {
		if (u->ra_hits < 2)
			u->ra_time[u->ra_hits] = now_ms();
		if (u->ra_hits++ == 0) {
			evhttp_add_header(out, "Retry-After", "1");
			reply(req, 429, "slow down");
		} else {
			reply(req, 200, "ok");
		}
	} else if (strcmp(path, "/post503") == 0) {
		u->post_hits++;
		reply(req, 503, "unavailable");
	} else if (strcmp(path, "/always503") == 0) {
		u->always_hits++;
		evhttp_add_header(out, "Retry-After", "5");
		reply(req, 503, "unavailable");
	} else if (strcmp(path, "/put") == 0) {
		if (u->put_hits < 4)
			u->put_len[u->put_hits] = evbuffer_get_length(body);
		reply(req, u->put_hits++ == 0 ? 503 : 200, "put");
	} else if (strcmp(path, "/upload") == 0) {
		/* Check the pattern extent by extent: 64 MiB is not copied again. */
		struct evbuffer_iovec v[64];
		struct evbuffer_ptr p;
		evbuffer_ptr_set(body, &p, 0, EVBUFFER_PTR_SET);
		uint64_t off = 0;
		int bad = 0;
		while (off < evbuffer_get_length(body)) {
			int n = evbuffer_peek(body, -1, &p, v, 64);
			for (int i = 0; i < n && i < 64; i++) {
				const uint8_t *d = v[i].iov_base;
				for (size_t j = 0; j < v[i].iov_len; j++)
					bad += d[j] != pattern(off + j);
				off += v[i].iov_len;
			}
			if (evbuffer_ptr_set(body, &p, off, EVBUFFER_PTR_SET) != 0)
				break;
		}
		u->upload_len = evbuffer_get_length(body);
		u->upload_bad = bad;
		u->uploads++;
		reply(req, 200, "stored");
	} else if (strcmp(path, "/big") == 0) {
		struct evbuffer *b = evbuffer_new();
		uint8_t buf[4096];
		for (uint64_t off = 0; off < DOWNLOAD_SIZE; off += sizeof(buf)) {
			for (size_t j = 0; j < sizeof(buf); j++)
				buf[j] = pattern(off + j);
			evbuffer_add(b, buf, sizeof(buf));
		}
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
	} else if (strcmp(path, "/hang") == 0) {
		/* never answered; evhttp frees it when the client goes away */
	} else {
		reply(req, 404, "not found");
	}
}

static int upstream_start(struct upstream *u, SSL_CTX *ssl)
{
	memset(u, 0, sizeof(*u));
	u->ssl = ssl;
	u->http = evhttp_new(base);
	evhttp_set_bevcb(u->http, upstream_bevcb, u);
	evhttp_set_gencb(u->http, upstream_handle, u);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(u->http, "127.0.0.1", 0);
	if (!bs)
		return -1;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &len);
	u->port = ntohs(sa.sin_port);
	return 0;
}

/* --- raw fault server: answers every request with a cut-off response, then closes --- */

enum raw_mode { RAW_DROP_HEAD, RAW_DROP_BODY, RAW_HANG };
struct raw {
	struct evconnlistener *l;
	int port, requests;
	enum raw_mode mode;
};

static void raw_event(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

static void raw_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void raw_read(struct bufferevent *bev, void *arg)
{
	struct raw *rs = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0)
		return;
	evbuffer_drain(in, evbuffer_get_length(in));
	rs->requests++;
	if (rs->mode == RAW_HANG)
		return; /* never answers; closes when the client does */
	if (rs->mode == RAW_DROP_HEAD) {
		bufferevent_write(bev, "HTTP/1.1 200 OK\r\nContent-Le", 27);
	} else {
		char body[1000];
		memset(body, 'x', sizeof(body));
		const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
		bufferevent_write(bev, head, strlen(head));
		bufferevent_write(bev, body, sizeof(body));
	}
	bufferevent_setcb(bev, NULL, raw_written, raw_event, rs);
}

static void raw_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, raw_read, NULL, raw_event, arg);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* A listener on a free loopback port. */
static struct evconnlistener *listen_loopback(evconnlistener_cb cb, void *arg, int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct evconnlistener *l = evconnlistener_new_bind(base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
							   -1, (struct sockaddr *)&sa, sizeof(sa));
	socklen_t len = sizeof(sa);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	return l;
}

static void raw_start(struct raw *rs, enum raw_mode mode)
{
	memset(rs, 0, sizeof(*rs));
	rs->mode = mode;
	rs->l = listen_loopback(raw_accept, rs, &rs->port);
}

/* --- the client side: one record per request --- */

enum cancel_at { CANCEL_NONE, CANCEL_HEADERS, CANCEL_BODY, CANCEL_DRAIN, CANCEL_DONE };

struct res {
	struct http_client_req *req;
	int headers, done, status, attempts, drains, pauses;
	enum http_client_result result;
	char err[512], x_test[64], x_echo[64], x_ua[64];
	struct evbuffer *body; /* small bodies are kept */
	uint64_t body_n;
	int pattern_bad;
	enum cancel_at cancel_at;
	/* slow consumer */
	bool slow, hoard, paused, done_while_paused;
	size_t budget, max_chunk;
	struct event *resume_ev;
	/* streamed upload producer */
	uint64_t total, produced;
	size_t max_pending;
	int write_fail;
};

static void copy_header(struct http_client_req *r, const char *name, char *out, size_t size)
{
	const char *v = http_client_resp_header(r, name);
	snprintf(out, size, "%s", v ? v : "");
}

static void on_headers(struct http_client_req *r, int status, void *arg)
{
	struct res *x = arg;
	x->headers++;
	x->status = status;
	copy_header(r, "x-test", x->x_test, sizeof(x->x_test));
	copy_header(r, "X-ECHO", x->x_echo, sizeof(x->x_echo));
	copy_header(r, "X-UA", x->x_ua, sizeof(x->x_ua));
	if (x->cancel_at == CANCEL_HEADERS)
		http_client_req_cancel(r);
}

static void consume(struct res *x, struct evbuffer *chunk, size_t n)
{
	uint8_t buf[16384];
	while (n > 0) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		evbuffer_remove(chunk, buf, k);
		for (size_t i = 0; i < k; i++)
			x->pattern_bad += buf[i] != pattern(x->body_n + i);
		if (x->body && evbuffer_get_length(x->body) < 4096)
			evbuffer_add(x->body, buf, k);
		x->body_n += k;
		n -= k;
	}
}

static void on_body(struct http_client_req *r, struct evbuffer *chunk, void *arg)
{
	struct res *x = arg;
	size_t len = evbuffer_get_length(chunk);
	if (x->paused)
		x->pattern_bad += 1000000; /* never called while paused */
	if (len > x->max_chunk)
		x->max_chunk = len;
	if (x->cancel_at == CANCEL_BODY && x->body_n > 100000) {
		http_client_req_cancel(r);
		return;
	}
	if (x->hoard)
		return; /* takes nothing and never pauses */
	if (!x->slow) {
		consume(x, chunk, len);
		return;
	}
	size_t take = len < x->budget ? len : x->budget;
	consume(x, chunk, take);
	x->budget -= take;
	if (x->budget == 0) {
		http_client_req_pause_body(r);
		x->paused = true;
		x->pauses++;
		struct timeval tv = { 0, 1000 };
		evtimer_add(x->resume_ev, &tv);
	}
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct res *x = arg;
	x->budget = 48 * 1024;
	x->paused = false;
	http_client_req_resume_body(x->req);
}

static void on_drain(struct http_client_req *r, void *arg)
{
	struct res *x = arg;
	x->drains++;
	if (x->cancel_at == CANCEL_DRAIN && x->produced > 0) {
		http_client_req_cancel(r);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	uint8_t buf[WRITE_SIZE];
	while (!http_client_req_body_full(r) && x->produced < x->total) {
		size_t n = x->total - x->produced < WRITE_SIZE ? (size_t)(x->total - x->produced) : WRITE_SIZE;
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(x->produced + i);
		evbuffer_add(b, buf, n);
		x->write_fail += http_client_req_body_write(r, b) != 0;
		x->produced += n;
		if (http_client_req_body_pending(r) > x->max_pending)
			x->max_pending = http_client_req_body_pending(r);
	}
	evbuffer_free(b);
	if (x->produced == x->total)
		x->write_fail += http_client_req_body_end(r) != 0;
}

static void on_done(struct http_client_req *r, enum http_client_result res, const char *error, void *arg)
{
	struct res *x = arg;
	x->done++;
	x->result = res;
	x->attempts = http_client_req_attempts(r);
	if (!x->status)
		x->status = http_client_resp_status(r);
	x->done_while_paused = x->paused;
	snprintf(x->err, sizeof(x->err), "%s", error ? error : "");
	if (x->cancel_at == CANCEL_DONE)
		http_client_req_cancel(r); /* allowed, and harmless */
}

static const struct http_client_cbs cbs = { on_headers, on_body, on_drain, on_done };

static struct http_client_req *req_new(struct http_client *c, struct res *x, const char *method, const char *url)
{
	memset(x, 0, sizeof(*x));
	x->body = evbuffer_new();
	x->resume_ev = evtimer_new(base, on_resume, x);
	x->req = http_client_req_create(c, "test", method, url);
	if (x->req)
		http_client_req_callbacks(x->req, &cbs, x);
	return x->req;
}

static void res_free(struct res *x)
{
	evbuffer_free(x->body);
	event_free(x->resume_ev);
}

/* Starts a request (optionally with a small body) and runs the loop until it is done. */
static void fetch(struct http_client *c, struct res *x, const char *method, const char *url, const char *body)
{
	if (!req_new(c, x, method, url))
		return;
	if (body)
		http_client_req_body(x->req, body, strlen(body));
	if (http_client_req_start(x->req) == 0)
		run_until(&x->done, 20000);
}

static char *body_str(struct res *x)
{
	static char s[4097];
	size_t n = evbuffer_copyout(x->body, s, sizeof(s) - 1);
	s[n] = '\0';
	return s;
}

/* --- the tests --- */

static char url_base[64];
static struct upstream up;

static const char *url(const char *path)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s%s", url_base, path);
	return buf[i];
}

static struct event *harness_tick;
static FILE *harness_log;
static struct metrics *harness_metrics;

/* The loop, the upstream and a client with quick retries; NULL when the upstream cannot listen. */
static struct http_client *harness_start(struct http_client_opts *o)
{
	harness_log = tmpfile();
	log_setup(LOG_LEVEL_DEBUG, LOG_FORMAT_TEXT, harness_log);
	base = event_base_new();
	harness_tick = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval tv = { 0, 20000 };
	event_add(harness_tick, &tv);
	if (upstream_start(&up, NULL) != 0) {
		ok(0, "upstream listening");
		return NULL;
	}
	snprintf(url_base, sizeof(url_base), "http://127.0.0.1:%d", up.port);
	harness_metrics = metrics_create();
	*o = (struct http_client_opts){
		.connect_timeout_ms = 2000,
		.backoff_initial_ms = 20,
		.backoff_max_ms = 100,
		.max_attempts = 3,
		.retry_window_ms = 20000,
		.body_high_water = HIGH_WATER,
		.replay_max = MiB,
	};
	struct http_client *c = http_client_create(base, harness_metrics, o);
	ok(c != NULL, "client created");
	return c;
}

/* Between the passes over both transports (own HTTP/1.1, then libcurl): the upstream's
 * per-test counters start again from zero. */
static void harness_reset(void)
{
	up.flaky_hits = up.flaky_fail = up.ra_hits = up.post_hits = up.put_hits = up.always_hits = 0;
	up.uploads = up.upload_bad = 0;
	up.upload_len = 0;
}

/* Pass 0 uses the client made by harness_start: plain http:// goes through the client's own
 * HTTP/1.1 transport; pass 1 makes one with curl_only, so the same tests run through libcurl. */
static struct http_client *harness_pass(struct http_client_opts *o, struct http_client *c, int pass)
{
	if (pass) {
		harness_reset();
		o->curl_only = true;
		c = http_client_create(base, harness_metrics, o);
	}
	printf("# transport: %s\n", o->curl_only ? "libcurl" : "own HTTP/1.1");
	return c;
}

static int harness_finish(void)
{
	metrics_destroy(harness_metrics);
	evhttp_free(up.http);
	event_free(harness_tick);
	event_base_free(base);
	libevent_global_shutdown();
	fclose(harness_log);
	return tap_done();
}

#endif
