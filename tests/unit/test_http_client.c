/* Tests for the upstream HTTP client against a real local evhttp upstream on the same event
 * base: headers, connection reuse, streamed bodies with back-pressure both ways, retries by
 * Google's strategy, and metrics and logs free of secrets (faults, cancel, destroy and TLS are in
 * test_http_client_faults.c). */
#include "http_client_harness.h"

static void test_get(struct http_client *c)
{
	struct res x;
	req_new(c, &x, "GET", url("/hello?sig=QUERYSECRET"));
	ok(x.req != NULL, "GET request created");
	is_int(http_client_req_header(x.req, "X-Req", "abc"), 0, "request header added");
	is_int(http_client_req_header(x.req, "Authorization", "Bearer TOKENSECRET"), 0, "Authorization added");
	is_int(http_client_req_header(x.req, "X-Bad", "a\r\nInjected: 1"), -1, "CR/LF in a value refused");
	is_int(http_client_req_header(x.req, "Bad Name", "v"), -1, "a name that is not a token refused");
	is_int(http_client_req_header(x.req, "Content-Length", "5"), 0, "framing header ignored, not an error");
	is_int(http_client_req_start(x.req), 0, "started");
	is_int(http_client_active(c), 1, "one request active");
	ok(run_until(&x.done, 10000), "GET done");
	is_int(x.result, HTTP_CLIENT_OK, "GET is OK");
	is_int(x.status, 200, "status 200");
	is_int(x.headers, 1, "on_headers once");
	is_str(x.x_test, "yes", "response header, case-insensitive lookup");
	is_str(x.x_echo, "abc", "request header reached the upstream");
	has_str(x.x_ua, "tether/", "default User-Agent");
	is_str(body_str(&x), "hello world", "body delivered");
	is_str(x.err, "", "no error on OK");
	is_int(x.attempts, 1, "one attempt");
	is_int(http_client_active(c), 0, "nothing active afterwards");
	res_free(&x);

	ok(http_client_req_create(c, "test", "GET", "ftp://127.0.0.1/x") == NULL, "non-http URL refused");
	ok(http_client_req_create(c, "test", "GET", "not a url") == NULL, "garbage URL refused");
	ok(http_client_req_create(c, "test", "GE T", url("/hello")) == NULL, "bad method refused");
}

static void test_reuse(struct http_client *c)
{
	int before = up.conns, okays = 0;
	for (int i = 0; i < 5; i++) {
		struct res x;
		fetch(c, &x, "GET", url("/hello"), NULL);
		okays += x.result == HTTP_CLIENT_OK && x.status == 200;
		res_free(&x);
	}
	is_int(okays, 5, "five sequential GETs OK");
	is_int(up.conns - before, 0, "all five reused the open connection");

	/* Concurrent requests each need a connection on HTTP/1.1; afterwards they are reused too. */
	struct res xs[3];
	for (int i = 0; i < 3; i++) {
		req_new(c, &xs[i], "GET", url("/hello"));
		if (http_client_req_start(xs[i].req) != 0)
			xs[i].done = 1;
	}
	for (int i = 0; i < 3; i++)
		run_until(&xs[i].done, 10000);
	int conns_after = up.conns;
	for (int i = 0; i < 3; i++) {
		ok(xs[i].result == HTTP_CLIENT_OK && xs[i].status == 200, "concurrent GET %d OK", i);
		res_free(&xs[i]);
		fetch(c, &xs[i], "GET", url("/hello"), NULL);
		res_free(&xs[i]);
	}
	is_int(up.conns, conns_after, "later GETs reuse the pooled connections");
}

static void test_upload(struct http_client *c)
{
	struct res x;
	req_new(c, &x, "POST", url("/upload"));
	x.total = UPLOAD_SIZE;
	http_client_req_body_stream(x.req, (int64_t)UPLOAD_SIZE);
	is_int(http_client_req_start(x.req), 0, "64 MiB streamed upload started");
	ok(run_until(&x.done, 25000), "upload done");
	is_int(x.result, HTTP_CLIENT_OK, "upload OK");
	is_int(x.status, 200, "upload status 200");
	is_int(up.upload_len, UPLOAD_SIZE, "upstream got all 64 MiB");
	is_int(up.upload_bad, 0, "upstream got the bytes in order");
	is_int(x.write_fail, 0, "every write accepted");
	ok(x.drains > 100, "the producer was asked for more many times (%d)", x.drains);
	ok(x.max_pending <= HIGH_WATER + WRITE_SIZE, "queued body never above high water + one write (max %zu)",
	   x.max_pending);
	res_free(&x);

	/* Unknown length (chunked), idempotent PUT: kept for replay until replay_max, then not. */
	req_new(c, &x, "PUT", url("/upload"));
	x.total = 3 * MiB + 123;
	http_client_req_body_stream(x.req, -1);
	http_client_req_idempotent(x.req, true);
	is_int(http_client_req_start(x.req), 0, "chunked upload started");
	ok(run_until(&x.done, 20000), "chunked upload done");
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "chunked upload OK");
	is_int(up.upload_len, 3 * MiB + 123, "upstream got the chunked body");
	is_int(up.upload_bad, 0, "chunked body in order");
	res_free(&x);

	/* Declared length enforced both ways. */
	req_new(c, &x, "POST", url("/upload"));
	http_client_req_body_stream(x.req, 100);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, "0123456789", 10);
	is_int(http_client_req_body_write(x.req, b), 0, "10 of 100 bytes written");
	uint8_t big[200] = { 0 };
	evbuffer_add(b, big, sizeof(big));
	is_int(http_client_req_body_write(x.req, b), -1, "writing past the declared length refused");
	is_int(evbuffer_get_length(b), 200, "nothing moved on refusal");
	is_int(http_client_req_body_end(x.req), 0, "body ended short");
	is_int(http_client_req_body_end(x.req), -1, "ending twice refused");
	evbuffer_free(b);
	int uploads = up.uploads;
	is_int(http_client_req_start(x.req), 0, "short body started");
	ok(run_until(&x.done, 10000), "short body done");
	is_int(x.result, HTTP_CLIENT_FAIL, "a body ended short of its length is FAIL");
	has_str(x.err, "ended after 10 of 100", "error says how short");
	is_int(up.uploads, uploads, "the upstream never saw a complete request");
	res_free(&x);
}

static void test_download(struct http_client *c)
{
	struct res x;
	req_new(c, &x, "GET", url("/big"));
	x.slow = true;
	x.budget = 48 * 1024;
	is_int(http_client_req_start(x.req), 0, "8 MiB slow download started");
	ok(run_until(&x.done, 25000), "slow download done");
	is_int(x.result, HTTP_CLIENT_OK, "slow download OK");
	is_int(x.body_n, DOWNLOAD_SIZE, "all 8 MiB consumed");
	is_int(x.pattern_bad, 0, "in order, and on_body never ran while paused");
	ok(x.pauses > 50, "the consumer paused many times (%d)", x.pauses);
	ok(x.max_chunk <= HIGH_WATER + 64 * 1024, "client-side buffering stayed bounded (max %zu)", x.max_chunk);
	ok(!x.done_while_paused, "on_done waited for the consumer's resume");
	res_free(&x);

	/* A consumer that never drains and never pauses is paused at the high-water mark. */
	req_new(c, &x, "GET", url("/big"));
	x.hoard = true;
	is_int(http_client_req_start(x.req), 0, "hoarding download started");
	run_for(300);
	ok(x.max_chunk <= HIGH_WATER + 64 * 1024, "a consumer that takes nothing holds at most high water (max %zu)",
	   x.max_chunk);
	http_client_req_cancel(x.req);
	run_for(20);
	is_int(x.done, 0, "cancelled: no on_done");
	res_free(&x);
}

static void test_retries(struct http_client *c)
{
	struct res x;
	up.flaky_fail = 2;
	fetch(c, &x, "GET", url("/flaky"), NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "GET after two 503s ends 200");
	is_int(x.attempts, 3, "three attempts");
	is_int(up.flaky_hits, 3, "the upstream saw three requests");
	is_int(x.headers, 1, "on_headers only for the final answer");
	is_str(body_str(&x), "ok", "only the final body delivered");
	res_free(&x);

	fetch(c, &x, "GET", url("/ratelimit"), NULL);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "429 then 200");
	is_int(x.attempts, 2, "two attempts");
	ok(up.ra_hits == 2 && up.ra_time[1] - up.ra_time[0] >= 900, "Retry-After: 1 honoured (%lld ms apart)",
	   (long long)(up.ra_time[1] - up.ra_time[0]));
	res_free(&x);

	fetch(c, &x, "POST", url("/post503"), "BODYSECRET");
	ok(x.result == HTTP_CLIENT_OK && x.status == 503, "POST answered 503 is delivered as 503");
	is_int(x.attempts, 1, "POST not retried");
	is_int(up.post_hits, 1, "the upstream saw one POST");
	res_free(&x);

	fetch(c, &x, "PUT", url("/put"), "BODYSECRET put");
	ok(x.result == HTTP_CLIENT_OK && x.status == 503, "PUT without the idempotent flag: 503 delivered");
	is_int(x.attempts, 1, "PUT is not idempotent by default");
	res_free(&x);

	up.put_hits = 0;
	req_new(c, &x, "PUT", url("/put"));
	http_client_req_body(x.req, "BODYSECRET put", 14);
	http_client_req_idempotent(x.req, true);
	if (http_client_req_start(x.req) == 0)
		run_until(&x.done, 10000);
	ok(x.result == HTTP_CLIENT_OK && x.status == 200, "idempotent PUT retried to 200");
	is_int(x.attempts, 2, "two attempts");
	ok(up.put_len[0] == 14 && up.put_len[1] == 14, "the whole body was sent both times (%zu, %zu)", up.put_len[0],
	   up.put_len[1]);
	res_free(&x);
}


static void test_secrets(FILE *logf, struct metrics *m)
{
	fflush(logf);
	long size = ftell(logf);
	char *text = calloc(1, (size_t)size + 1);
	rewind(logf);
	size_t n = fread(text, 1, (size_t)size, logf);
	text[n] = '\0';
	has_str(text, "127.0.0.1/hello", "debug log names host and path");
	ok(!strstr(text, "TOKENSECRET"), "the Authorization header is never logged");
	ok(!strstr(text, "QUERYSECRET"), "query strings are never logged");
	ok(!strstr(text, "BODYSECRET"), "request bodies are never logged");
	free(text);

	struct evbuffer *out = evbuffer_new();
	metrics_render(m, out);
	evbuffer_add(out, "", 1);
	const char *mt = (const char *)evbuffer_pullup(out, -1);
	has_str(mt, "tether_upstream_requests_total{upstream=\"test\",result=\"ok\",code=\"2xx\"}",
		"requests counted by result and status class");
	has_str(mt, "tether_upstream_retries_total{upstream=\"test\",reason=\"5xx\"}", "retries counted by reason");
	has_str(mt, "tether_upstream_requests_in_flight{upstream=\"test\"} 0", "nothing left in flight");
	has_str(mt, "tether_upstream_request_duration_seconds_bucket{upstream=\"test\"", "duration histogram");
	ok(!strstr(mt, "127.0.0.1") && !strstr(mt, "/hello") && !strstr(mt, "SECRET"), "no URL in metric labels");
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
		test_get(c);
		test_reuse(c);
		test_upload(c);
		test_download(c);
		test_retries(c);
		is_int(http_client_active(c), 0, "nothing active at the end");
		test_secrets(harness_log, harness_metrics);
		http_client_destroy(c);
	}
	return harness_finish();
}
