/* Tests for the upstream HTTP client's bad days: dropped and stalled connections, closed ports,
 * timeouts, cancel from every callback, destroy with requests in flight (no events or sockets
 * left), and TLS verification against a CA made with the openssl CLI. */
#include "http_client_harness.h"

static void test_faults(struct http_client *c)
{
	struct raw rs;
	char u[128];
	struct res x;

	raw_start(&rs, RAW_DROP_HEAD);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", rs.port);
	fetch(c, &x, "GET", u, NULL);
	is_int(x.result, HTTP_CLIENT_RETRY, "connection dropped mid-response head: RETRY");
	is_int(x.attempts, 3, "after all three attempts");
	is_int(rs.requests, 3, "the server saw three requests");
	is_int(x.headers, 0, "no on_headers");
	ok(x.err[0] != '\0', "with an error sentence: %s", x.err);
	res_free(&x);
	evconnlistener_free(rs.l);

	raw_start(&rs, RAW_DROP_BODY);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", rs.port);
	fetch(c, &x, "GET", u, NULL);
	is_int(x.result, HTTP_CLIENT_RETRY, "connection dropped mid-body: RETRY");
	is_int(x.headers, 1, "on_headers had run");
	is_int(x.attempts, 1, "a delivered response is never replayed");
	is_int(x.body_n, 1000, "the bytes before the drop were delivered");
	has_str(x.err, "cut short", "error says the response was cut short");
	res_free(&x);
	evconnlistener_free(rs.l);

	/* A port nobody listens on. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &len);
	close(fd);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
	fetch(c, &x, "GET", u, NULL);
	is_int(x.result, HTTP_CLIENT_RETRY, "closed port: RETRY");
	is_int(x.attempts, 3, "connect retried until attempts ran out");
	ok(x.err[0] != '\0', "error: %s", x.err);
	res_free(&x);
	fetch(c, &x, "POST", u, "x");
	ok(x.result == HTTP_CLIENT_RETRY && x.attempts == 1, "closed port, POST: RETRY after one attempt");
	res_free(&x);

	/* An upstream that never answers, bounded by the total timeout. */
	req_new(c, &x, "GET", url("/hang"));
	http_client_req_timeout(x.req, 300);
	int64_t t0 = now_ms();
	if (http_client_req_start(x.req) == 0)
		run_until(&x.done, 10000);
	int64_t took = now_ms() - t0;
	is_int(x.result, HTTP_CLIENT_RETRY, "no answer within the timeout: RETRY");
	has_str(x.err, "deadline", "error names the deadline");
	ok(took >= 250 && took < 8000, "ended by the timeout (%lld ms)", (long long)took);
	res_free(&x);
}

static void test_cancel(struct http_client *c)
{
	struct res x;
	static const char *const names[] = { "", "on_headers", "on_body", "on_drain", "on_done" };
	for (int at = CANCEL_HEADERS; at <= CANCEL_DONE; at++) {
		req_new(c, &x, at == CANCEL_DRAIN ? "POST" : "GET", url(at == CANCEL_DRAIN ? "/upload" : "/big"));
		x.cancel_at = at;
		if (at == CANCEL_DRAIN) {
			x.total = 32 * MiB;
			http_client_req_body_stream(x.req, (int64_t)x.total);
		}
		if (http_client_req_start(x.req) != 0)
			continue;
		run_until(&x.done, at == CANCEL_DONE ? 10000 : 500);
		if (at == CANCEL_DONE)
			is_int(x.done, 1, "cancel inside on_done is harmless");
		else
			is_int(x.done, 0, "cancel inside %s: no on_done", names[at]);
		is_int(http_client_active(c), 0, "cancel inside %s: nothing active", names[at]);
		res_free(&x);
	}
	req_new(c, &x, "GET", url("/hello"));
	is_int(http_client_req_start(x.req), 0, "started");
	http_client_req_cancel(x.req);
	is_int(http_client_active(c), 0, "cancel right after start: nothing active at once");
	run_for(100);
	ok(x.done == 0 && x.headers == 0, "cancel right after start: no callback at all");
	res_free(&x);

	struct res after;
	fetch(c, &after, "GET", url("/hello"), NULL);
	ok(after.result == HTTP_CLIENT_OK && after.status == 200, "the client still works after cancels");
	res_free(&after);
}

static int count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

static int count_events(void)
{
	return event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
}

static void test_destroy(const struct http_client_opts *o)
{
	struct raw rs;
	char hang[128];
	raw_start(&rs, RAW_HANG);
	snprintf(hang, sizeof(hang), "http://127.0.0.1:%d/hang", rs.port);
	run_for(50);
	int fds = count_fds(), events = count_events();
	struct http_client *c = http_client_create(base, NULL, o);
	struct res x[4];
	req_new(c, &x[0], "GET", hang);
	req_new(c, &x[1], "GET", hang);
	req_new(c, &x[2], "GET", url("/always503"));
	req_new(c, &x[3], "GET", url("/hello")); /* never started */
	int started = 0;
	for (int i = 0; i < 3; i++)
		started += http_client_req_start(x[i].req) == 0;
	is_int(started, 3, "three requests started");
	run_until(&up.always_hits, 5000);
	for (int i = 0; i < 50 && rs.requests < 2; i++)
		run_for(100);
	is_int(rs.requests, 2, "both hanging requests reached the upstream (no waiting on one another)");
	run_for(50);
	is_int(http_client_active(c), 3, "three in flight (two waiting on the upstream, one backing off)");
	http_client_destroy(c);
	int fails = 0;
	for (int i = 0; i < 3; i++)
		fails += x[i].done == 1 && x[i].result == HTTP_CLIENT_FAIL && strstr(x[i].err, "shut down");
	is_int(fails, 3, "destroy: on_done(FAIL, shut down) for each started request");
	is_int(x[3].done, 0, "destroy: no callback for a request never started");
	for (int i = 0; i < 4; i++)
		res_free(&x[i]);
	run_for(100); /* the upstream notices the closed connections */
	is_int(count_events(), events, "destroy: no libevent event of the client left on the base");
	is_int(count_fds(), fds, "destroy: every socket closed");
	evconnlistener_free(rs.l);
}

/* --- TLS, with a CA made at test time --- */

static int sh(const char *dir, const char *cmd)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "cd '%s' && %s >/dev/null 2>&1", dir, cmd);
	return system(buf);
}

static int make_certs(const char *dir)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	char cmd[512];
	FILE *f;
	char path[256];
	snprintf(path, sizeof(path), "%s/ext.cnf", dir);
	if (!(f = fopen(path, "w")))
		return -1;
	fputs("subjectAltName=IP:127.0.0.1\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=tether-test-ca", ec);
	if (sh(dir, cmd))
		return -1;
	snprintf(cmd, sizeof(cmd), "openssl req %s -keyout srv.key -out srv.csr -subj /CN=127.0.0.1", ec);
	if (sh(dir, cmd))
		return -1;
	if (sh(dir, "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 "
		    "-extfile ext.cnf"))
		return -1;
	snprintf(cmd, sizeof(cmd), "openssl req -x509 %s -keyout other.key -out other.pem -days 2 -subj /CN=other-ca",
		 ec);
	return sh(dir, cmd) ? -1 : 0;
}

static void test_tls(const struct http_client_opts *base_opts)
{
	if (system("openssl version >/dev/null 2>&1") != 0) {
		skip("TLS: no openssl CLI");
		return;
	}
	char dir[] = "/tmp/tether-http-client-XXXXXX", path[256];
	if (!mkdtemp(dir) || make_certs(dir) != 0) {
		ok(0, "certificates generated with the openssl CLI");
		return;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	snprintf(path, sizeof(path), "%s/srv.pem", dir);
	int loaded = SSL_CTX_use_certificate_chain_file(ctx, path) == 1;
	snprintf(path, sizeof(path), "%s/srv.key", dir);
	loaded = loaded && SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) == 1;
	ok(loaded, "TLS server certificate loaded");
	struct upstream tls;
	ok(upstream_start(&tls, ctx) == 0, "TLS upstream listening");
	char u[128];
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/hello", tls.port);

	struct http_client_opts o = *base_opts;
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	o.ca_file = path;
	o.http1_only = false; /* offers h2 by ALPN; this upstream speaks HTTP/1.1 */
	struct http_client *c = http_client_create(base, NULL, &o);
	struct res x;
	fetch(c, &x, "GET", u, NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "HTTPS GET verified against the test CA (%s)", x.err);
	is_str(body_str(&x), "hello world", "HTTPS body");
	res_free(&x);
	fetch(c, &x, "GET", u, NULL);
	is_int(tls.conns, 1, "the TLS connection was reused");
	res_free(&x);
	http_client_destroy(c);

	snprintf(path, sizeof(path), "%s/other.pem", dir);
	o.ca_file = path;
	c = http_client_create(base, NULL, &o);
	fetch(c, &x, "GET", u, NULL);
	is_int(x.result, HTTP_CLIENT_FAIL, "wrong CA: verification fails, FAIL");
	is_int(x.attempts, 1, "a verification failure is not retried");
	ok(x.err[0] != '\0', "error: %s", x.err);
	res_free(&x);
	http_client_destroy(c);

	o.ca_file = NULL; /* the system store does not know the test CA */
	c = http_client_create(base, NULL, &o);
	fetch(c, &x, "GET", u, NULL);
	is_int(x.result, HTTP_CLIENT_FAIL, "system CA store: verification fails, FAIL");
	res_free(&x);
	http_client_destroy(c);

	run_for(50);
	evhttp_free(tls.http);
	SSL_CTX_free(ctx);
	static const char *const files[] = { "ca.key", "ca.pem", "ca.srl", "srv.key", "srv.csr", "srv.pem",
					     "other.key", "other.pem", "ext.cnf" };
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* Nothing secret in logs or metrics: no token, no query string, no body. */

/* The faults above show in the metrics (the rest is checked in test_http_client.c). */
static void test_fault_metrics(struct metrics *m)
{
	struct evbuffer *out = evbuffer_new();
	metrics_render(m, out);
	evbuffer_add(out, "", 1);
	const char *mt = (const char *)evbuffer_pullup(out, -1);
	has_str(mt, "tether_upstream_requests_total{upstream=\"test\",result=\"retry\",code=\"none\"}",
		"transport failures counted");
	has_str(mt, "tether_upstream_errors_total{upstream=\"test\",kind=\"connect\"}", "connect errors counted");
	evbuffer_free(out);
}

int main(void)
{
	struct http_client_opts o;
	struct http_client *c = harness_start(&o);
	if (!c)
		return tap_done();
	for (int pass = 0; pass < 2; pass++) {
		c = harness_pass(&o, c, pass);
		test_faults(c);
		test_cancel(c);
		is_int(http_client_active(c), 0, "nothing active at the end");
		test_fault_metrics(harness_metrics);
		http_client_destroy(c);
		test_destroy(&o);
	}
	test_tls(&o);
	return harness_finish();
}
