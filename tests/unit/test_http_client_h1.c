/* Tests for the upstream client's own HTTP/1.1 transport on the wire, against a scripted server
 * that answers each request with canned bytes: the request head it writes, chunked, close-
 * delimited, bodiless and plain (fast-scanned) answers, 1xx, obs-fold, bytes past an answer, a
 * short body, a dead pooled connection (sent again once),
 * garbage, max_host_connections, and which URLs stay with libcurl. */
#include "http_client_harness.h"

#include "http_client_h1.h"
#include "http_client_internal.h"

/* --- a scripted server: request n on a connection gets answers[n] (the last one repeats) --- */

struct script {
	struct evconnlistener *l;
	int port, conns, requests;
	const char *answers[4];
	bool close_after;      /* close once an answer is written */
	bool drop_second;      /* a connection's second request: closed without an answer */
	char last_head[2048];  /* the last request head received */
};

struct script_conn {
	struct script *s;
	int n;         /* requests on this connection */
	bool answered; /* (the write callback also runs before anything was written) */
};

static void script_event(struct bufferevent *bev, short what, void *arg)
{
	free(arg);
	bufferevent_free(bev);
}

static void script_written(struct bufferevent *bev, void *arg)
{
	struct script_conn *sc = arg;
	if (sc->s->close_after && sc->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		free(sc);
		bufferevent_free(bev);
	}
}

static void script_read(struct bufferevent *bev, void *arg)
{
	struct script_conn *sc = arg;
	struct script *s = sc->s;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos < 0)
			return;
		size_t hl = (size_t)end.pos + 4, body = 0;
		size_t n = hl < sizeof(s->last_head) - 1 ? hl : sizeof(s->last_head) - 1;
		evbuffer_copyout(in, s->last_head, n);
		s->last_head[n] = '\0';
		const char *cl = strcasestr(s->last_head, "\r\nContent-Length: ");
		if (cl)
			body = (size_t)strtoul(cl + 18, NULL, 10);
		if (evbuffer_get_length(in) < hl + body)
			return;
		evbuffer_drain(in, hl + body);
		s->requests++;
		if (s->drop_second && sc->n++ == 1) {
			free(sc);
			bufferevent_free(bev);
			return;
		}
		int i = s->requests - 1 < 3 ? s->requests - 1 : 3;
		while (i > 0 && !s->answers[i])
			i--;
		bufferevent_write(bev, s->answers[i], strlen(s->answers[i]));
		sc->answered = true;
	}
}

static void script_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct script *s = arg;
	s->conns++;
	struct script_conn *sc = calloc(1, sizeof(*sc));
	sc->s = s;
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, script_read, script_written, script_event, sc);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static const char *script_start(struct script *s, const char *answer)
{
	memset(s, 0, sizeof(*s));
	s->answers[0] = answer;
	s->l = listen_loopback(script_accept, s, &s->port);
	static char u[128];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/p?q=1", s->port);
	return u;
}

static void script_stop(struct script *s)
{
	evconnlistener_free(s->l);
}

/* --- the tests --- */

static void test_request_head(struct http_client *c)
{
	struct script s;
	const char *u = script_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	struct res x;
	req_new(c, &x, "PUT", u);
	http_client_req_header(x.req, "X-One", "1");
	http_client_req_header(x.req, "X-Empty", "");
	http_client_req_header(x.req, "Accept", "application/json");
	http_client_req_body(x.req, "abc", 3);
	if (http_client_req_start(x.req) == 0)
		run_until(&x.done, 5000);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "PUT OK (%s)", x.err);
	char want[256];
	snprintf(want, sizeof(want), "PUT /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: tether/", s.port);
	ok(strncmp(s.last_head, want, strlen(want)) == 0, "request line, Host, User-Agent first");
	has_str(s.last_head, "\r\nX-One: 1\r\n", "the caller's header");
	has_str(s.last_head, "\r\nX-Empty:\r\n", "an empty value is sent empty");
	has_str(s.last_head, "\r\nAccept: application/json\r\n", "the caller's Accept");
	ok(!strstr(s.last_head, "*/*"), "replaces the default Accept");
	has_str(s.last_head, "\r\nContent-Length: 3\r\n\r\n", "body framing last");
	ok(!strstr(s.last_head, "Expect"), "no Expect: 100-continue");
	res_free(&x);

	/* A streamed body of unknown length goes chunked. */
	req_new(c, &x, "POST", u);
	x.total = 100000;
	http_client_req_body_stream(x.req, -1);
	if (http_client_req_start(x.req) == 0)
		run_until(&x.done, 5000);
	ok(x.result == HTTP_CLIENT_OK, "chunked upload OK (%s)", x.err);
	has_str(s.last_head, "\r\nTransfer-Encoding: chunked\r\n", "unknown length: chunked");
	res_free(&x);
	fetch(c, &x, "POST", u, NULL);
	has_str(s.last_head, "\r\nContent-Length: 0\r\n", "a POST without a body says Content-Length: 0");
	res_free(&x);
	script_stop(&s);
}

static void test_answers(struct http_client *c)
{
	struct script s;
	struct res x;
	const char *u = script_start(&s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
					 "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
	fetch(c, &x, "GET", u, NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "chunked answer OK");
	is_str(body_str(&x), "hello world", "chunked body decoded");
	res_free(&x);
	fetch(c, &x, "GET", u, NULL);
	is_int(s.conns, 1, "the connection was reused after a chunked answer");
	res_free(&x);
	script_stop(&s);

	u = script_start(&s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Test: a\r\n  b\r\n"
			     "Content-Length: 2\r\n\r\nok");
	fetch(c, &x, "GET", u, NULL);
	is_int(x.status, 201, "1xx skipped: the final status");
	is_int(x.headers, 1, "on_headers once");
	is_str(x.x_test, "a b", "obs-fold joined with one space");
	is_str(body_str(&x), "ok", "body after 1xx");
	res_free(&x);
	script_stop(&s);

	u = script_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
	fetch(c, &x, "HEAD", u, NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200 && x.body_n == 0, "HEAD: Content-Length without a body");
	res_free(&x);
	s.answers[1] = "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n";
	fetch(c, &x, "GET", u, NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 304 && x.body_n == 0, "304: no body whatever the length");
	res_free(&x);
	s.answers[2] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	fetch(c, &x, "GET", u, NULL);
	is_str(body_str(&x), "ok", "then a normal answer");
	is_int(s.conns, 1, "all three on one connection");
	res_free(&x);
	script_stop(&s);

	u = script_start(&s, "HTTP/1.0 200 OK\r\n\r\nuntil the end");
	s.close_after = true;
	fetch(c, &x, "GET", u, NULL);
	ok(x.result == HTTP_CLIENT_OK, "a body delimited by the close (%s)", x.err);
	is_str(body_str(&x), "until the end", "read to the end");
	res_free(&x);
	fetch(c, &x, "GET", u, NULL);
	is_int(s.conns, 2, "HTTP/1.0 without keep-alive: a new connection next time");
	res_free(&x);
	script_stop(&s);

	u = script_start(&s, "SSH-2.0-OpenSSH\r\n\r\n");
	fetch(c, &x, "GET", u, NULL);
	is_int(x.result, HTTP_CLIENT_FAIL, "not HTTP: FAIL");
	is_int(x.attempts, 1, "not retried");
	has_str(x.err, "Invalid response", "says so");
	res_free(&x);
	script_stop(&s);
}

/* Plain answers with a Content-Length, read by the fast scanner (the body counted by the
 * transport, not the parser). */
static void test_fast_answers(struct http_client *c)
{
	struct script s;
	struct res x;
	const char *u = script_start(&s, "HTTP/1.1 200 OK\r\nX-Test: \t v w\r\nContent-Length: 5\r\n\r\nhello");
	fetch(c, &x, "GET", u, NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "plain answer OK (%s)", x.err);
	is_str(x.x_test, "v w", "a value without its leading whitespace");
	is_str(body_str(&x), "hello", "the body, by its length");
	res_free(&x);
	fetch(c, &x, "GET", u, NULL);
	is_int(s.conns, 1, "the connection was reused");
	res_free(&x);
	script_stop(&s);

	/* Whether the connection is kept: the second request's connection count says. */
	static const struct {
		const char *answer, *body, *what;
		int conns;
	} kept[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", "ok",
		  "bytes past the length are not body, and the connection is not reused", 2 },
		{ "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok",
		  "Connection: close: a new connection next time", 2 },
		{ "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", "",
		  "HTTP/1.0 with keep-alive: reused", 1 },
	};
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		u = script_start(&s, kept[i].answer);
		fetch(c, &x, "GET", u, NULL);
		is_str(body_str(&x), kept[i].body, "%s: body", kept[i].what);
		res_free(&x);
		fetch(c, &x, "GET", u, NULL);
		is_int(s.conns, kept[i].conns, "%s", kept[i].what);
		res_free(&x);
		script_stop(&s);
	}

	u = script_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe");
	s.close_after = true;
	fetch(c, &x, "POST", u, NULL);
	ok(x.result != HTTP_CLIENT_OK, "closed 3 bytes short: an error");
	has_str(x.err, "transfer closed with 3 bytes remaining to read", "says how many");
	res_free(&x);
	script_stop(&s);
}

static void test_dead_pooled(struct http_client *c)
{
	struct script s;
	struct res x;
	const char *u = script_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	s.drop_second = true; /* as if its keep-alive timeout struck just as the request went out */
	fetch(c, &x, "GET", u, NULL);
	res_free(&x);
	fetch(c, &x, "GET", u, NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "GET on a dead pooled connection: sent again (%s)", x.err);
	is_int(x.attempts, 1, "within the same attempt");
	is_int(s.conns, 2, "on a new connection");
	res_free(&x);
	fetch(c, &x, "POST", u, NULL);
	ok(x.result == HTTP_CLIENT_OK, "POST without a body OK");
	is_int(s.conns, 3, "a request that must not run twice gets a connection of its own");
	res_free(&x);
	script_stop(&s);
}

static void test_host_limit(const struct http_client_opts *base_opts)
{
	struct http_client_opts o = *base_opts;
	o.max_host_connections = 1;
	struct http_client *c = http_client_create(base, NULL, &o);
	struct script s;
	const char *u = script_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	struct res xs[3];
	for (int i = 0; i < 3; i++) {
		req_new(c, &xs[i], "GET", u);
		if (http_client_req_start(xs[i].req) != 0)
			xs[i].done = 1;
	}
	int okays = 0;
	for (int i = 0; i < 3; i++) {
		run_until(&xs[i].done, 5000);
		okays += xs[i].result == HTTP_CLIENT_OK && xs[i].status == 200;
		res_free(&xs[i]);
	}
	is_int(okays, 3, "three concurrent GETs OK with max_host_connections 1");
	is_int(s.conns, 1, "over one connection, one after another");
	http_client_destroy(c);
	run_for(50); /* the server side sees the close and frees its end */
	script_stop(&s);
}

static bool native(struct http_client *c, const char *u)
{
	struct http_client_req *r = http_client_req_create(c, "test", "GET", u);
	bool n = r && http_client_h1_parse_url(r);
	if (r)
		http_client_req_cancel(r);
	return n;
}

static void test_which_urls(struct http_client *c)
{
	ok(native(c, "http://127.0.0.1:8080/storage/v1/b?x=1"), "IPv4 literal: own transport");
	ok(native(c, "http://[::1]:8080/x"), "IPv6 literal: own transport");
	ok(native(c, "http://LOCALHOST:8085/v1/projects/p/topics"), "localhost: own transport");
	ok(native(c, "http://127.0.0.1"), "no path");
	ok(!native(c, "https://127.0.0.1/x"), "https: libcurl (HTTP/2, TLS)");
	ok(!native(c, "http://storage.example/x"), "a name: libcurl's resolver");
	ok(!native(c, "http://u:p@127.0.0.1/x"), "userinfo: libcurl");
	ok(!native(c, "http://127.0.0.1/a/../b"), "dot segments: libcurl");
	ok(!native(c, "http://127.0.0.1/a#frag"), "a fragment: libcurl");
	ok(!native(c, "http://127.0.0.1:99999/x"), "a port out of range: libcurl (which refuses it)");
	/* The last authority is remembered; the path is still checked each time. */
	ok(native(c, "http://127.0.0.1:8080/a") && native(c, "http://127.0.0.1:8080/b?c"), "the same authority twice");
	ok(!native(c, "http://127.0.0.1:8080/a/../b"), "then dot segments: libcurl");
	ok(!native(c, "http://127.0.0.1:8080/a#f"), "then a fragment: libcurl");
	ok(!native(c, "http://u@127.0.0.1:8080/a"), "then userinfo before it: libcurl");
}

int main(void)
{
	struct http_client_opts o;
	struct http_client *c = harness_start(&o);
	if (!c)
		return tap_done();
	test_request_head(c);
	test_answers(c);
	test_fast_answers(c);
	test_dead_pooled(c);
	test_which_urls(c);
	is_int(http_client_active(c), 0, "nothing active at the end");
	http_client_destroy(c);
	run_for(50);
	test_host_limit(&o);
	return harness_finish();
}
