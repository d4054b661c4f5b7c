/* Tests for the fast head scanner (http_scan.c) against libhttp-parser: every
 * head the scanner takes, libhttp-parser must parse to the same method, target,
 * status, headers, framing, keep-alive and head length; the common shapes must
 * be taken; incomplete heads, bare LFs, obs-fold, chunked bodies, Upgrade,
 * garbage and thousands of random mutations of real heads either agree or are
 * left to libhttp-parser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "http_scan.h"
#include "tap.h"

/* What libhttp-parser makes of a head, gathered from its callbacks. */
struct ref {
	char url[4096];
	size_t url_len;
	char names[HTTP_SCAN_MAX_HEADERS + 8][256], values[HTTP_SCAN_MAX_HEADERS + 8][512];
	size_t nlen[HTTP_SCAN_MAX_HEADERS + 8], vlen[HTTP_SCAN_MAX_HEADERS + 8];
	size_t n;
	int last; /* 1 field, 2 value */
	bool bad, done;
};

static int ref_append(char *dst, size_t *dlen, size_t cap, const char *at, size_t len)
{
	if (*dlen + len > cap)
		return -1;
	memcpy(dst + *dlen, at, len);
	*dlen += len;
	return 0;
}

static int ref_url(http_parser *p, const char *at, size_t len)
{
	struct ref *r = p->data;
	return ref_append(r->url, &r->url_len, sizeof(r->url), at, len);
}

static int ref_field(http_parser *p, const char *at, size_t len)
{
	struct ref *r = p->data;
	if (r->last != 1) {
		if (r->n == HTTP_SCAN_MAX_HEADERS + 8)
			return -1;
		r->nlen[r->n] = r->vlen[r->n] = 0;
		r->n++;
	}
	r->last = 1;
	return ref_append(r->names[r->n - 1], &r->nlen[r->n - 1], sizeof(r->names[0]), at, len);
}

static int ref_value(http_parser *p, const char *at, size_t len)
{
	struct ref *r = p->data;
	if (r->n == 0)
		return -1;
	r->last = 2;
	return ref_append(r->values[r->n - 1], &r->vlen[r->n - 1], sizeof(r->values[0]), at, len);
}

static int ref_headers_complete(http_parser *p)
{
	struct ref *r = p->data;
	r->done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings ref_settings = {
	.on_url = ref_url,
	.on_header_field = ref_field,
	.on_header_value = ref_value,
	.on_headers_complete = ref_headers_complete,
};

static int failures;

/* Checks one input: when the scanner takes it, libhttp-parser agrees field by
 * field. Returns whether the scanner took it. */
static bool agree(const char *buf, size_t len, enum http_parser_type type, const char *what)
{
	struct http_scan sc;
	bool took = type == HTTP_REQUEST ? http_scan_request(buf, len, &sc) : http_scan_response(buf, len, &sc);
	if (!took)
		return false;
	static struct ref r;
	memset(&r, 0, sizeof(r));
	http_parser p;
	http_parser_init(&p, type);
	p.data = &r;
	size_t done = http_parser_execute(&p, &ref_settings, buf, len);
	const char *why = NULL;
	if (!r.done)
		why = http_errno_name(HTTP_PARSER_ERRNO(&p));
	else if (done + 1 != sc.head_len) /* paused on the blank line's LF */
		why = "head length";
	else if (p.http_major != 1 || p.http_minor != sc.http_minor)
		why = "version";
	else if (type == HTTP_REQUEST && ((int)p.method != sc.method || r.url_len != sc.target.len ||
					  memcmp(r.url, buf + sc.target.at, r.url_len) != 0))
		why = "method or target";
	else if (type == HTTP_RESPONSE && (int)p.status_code != sc.status)
		why = "status";
	else if (r.n != sc.nheaders)
		why = "header count";
	else if ((sc.content_length >= 0) != !!(p.flags & F_CONTENTLENGTH) ||
		 (sc.content_length >= 0 && (uint64_t)sc.content_length != p.content_length) || (p.flags & F_CHUNKED) ||
		 p.upgrade)
		why = "framing";
	else if (sc.keep_alive != !!http_should_keep_alive(&p))
		why = "keep-alive";
	for (size_t i = 0; !why && i < r.n; i++) {
		const struct http_scan_header *h = &sc.headers[i];
		if (r.nlen[i] != h->name.len || memcmp(r.names[i], buf + h->name.at, h->name.len) != 0 ||
		    r.vlen[i] != h->value.len || memcmp(r.values[i], buf + h->value.at, h->value.len) != 0)
			why = "a header";
	}
	if (why) {
		failures++;
		if (failures <= 5)
			ok(0, "%s: scanner and libhttp-parser disagree (%s) on %.*s", what, why, (int)len, buf);
	}
	return true;
}

static void takes(const char *s, enum http_parser_type type, const char *what)
{
	int before = failures;
	bool took = agree(s, strlen(s), type, what);
	ok(took && failures == before, "taken and agreed: %s", what);
}

static void leaves(const char *s, enum http_parser_type type, const char *what)
{
	int before = failures;
	bool took = agree(s, strlen(s), type, what);
	ok(!took && failures == before, "left to libhttp-parser: %s", what);
}

static const char *req_base[] = {
	"GET /storage/v1/b/bench/o HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
	"GET /storage/v1/b/bench/o?prefix=a%2Fb&maxResults=3 "
	"HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: "
	"localhost\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n",
	"POST /upload/storage/v1/b/x/o?uploadType=media&name=y HTTP/1.1\r\nHost: "
	"h\r\nContent-Length: "
	"12\r\nContent-Type: application/octet-stream\r\nX-Request-Id: "
	"abc\r\n\r\nhello world!",
	"DELETE /v1/projects/p/topics/t "
	"HTTP/1.1\r\nhost:h\r\nAuthorization:\tBearer x y\r\nConnection: "
	"close\r\n\r\n",
	"HEAD /a HTTP/1.1\r\nHost: h\r\nX-Odd: a\tb \t c\r\n\r\n",
};

static const char *resp_base[] = {
	"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 04 Dec 2026 "
	"01:18:19 GMT\r\nContent-Type: "
	"application/json\r\nContent-Length: 61\r\nConnection: "
	"keep-alive\r\n\r\n{\"kind\":\"storage#objects\"}",
	"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: "
	"close\r\nContent-Length: 2\r\n\r\nno",
	"HTTP/1.1 200 \r\nX-Goog-Hash: "
	"crc32c=AAAAAA==,md5=1B2M2Y8AsgTpgAmY7PhCfg==\r\nContent-Length: "
	"5\r\n\r\nhello",
};

/* Random mutations of real heads: replaced, inserted and deleted bytes, biased
 * to the ones that matter (separators, whitespace, CR, LF, high bytes). */
static void fuzz(const char **base, size_t nbase, enum http_parser_type type, unsigned seed, int rounds)
{
	static const char special[] = " \t\r\n:;,/?#%\"\\\x7f\x80\xff\x01\x00-_.0123456789aZ";
	char buf[2048];
	srand(seed);
	int before = failures, taken = 0;
	for (int i = 0; i < rounds; i++) {
		const char *b = base[(size_t)rand() % nbase];
		size_t len = strlen(b);
		memcpy(buf, b, len);
		int edits = 1 + rand() % 3;
		for (int e = 0; e < edits && len > 2 && len < sizeof(buf) - 2; e++) {
			size_t at = (size_t)rand() % len;
			char ch = rand() % 2 ? special[rand() % (int)(sizeof(special) - 1)] : (char)(rand() % 256);
			switch (rand() % 3) {
			case 0:
				buf[at] = ch;
				break;
			case 1:
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = ch;
				len++;
				break;
			default:
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
		}
		taken += agree(buf, len, type, "mutation");
	}
	ok(failures == before, "%d mutations of %s heads (%d taken by the scanner): no disagreement", rounds,
	   type == HTTP_REQUEST ? "request" : "response", taken);
}

/* How many proper prefixes of the heads in base the scanner takes (it should
 * take none). */
static int prefixes(const char **base, size_t nbase, enum http_parser_type type)
{
	int taken = 0;
	for (size_t i = 0; i < nbase; i++) {
		const char *end = strstr(base[i], "\r\n\r\n") + 4;
		for (size_t n = 0; n < (size_t)(end - base[i]); n++)
			taken += agree(base[i], n, type, "prefix");
	}
	return taken;
}

int main(void)
{
	http_parser_set_max_header_size(1u << 30);
	for (size_t i = 0; i < sizeof(req_base) / sizeof(req_base[0]); i++)
		takes(req_base[i], HTTP_REQUEST, req_base[i]);
	for (size_t i = 0; i < sizeof(resp_base) / sizeof(resp_base[0]); i++)
		takes(resp_base[i], HTTP_RESPONSE, resp_base[i]);

	/* Every proper prefix of a head (a head split across reads) is left. */
	int prefix_taken = prefixes(req_base, sizeof(req_base) / sizeof(req_base[0]), HTTP_REQUEST) +
			   prefixes(resp_base, sizeof(resp_base) / sizeof(resp_base[0]), HTTP_RESPONSE);
	ok(prefix_taken == 0, "no incomplete head is taken (%d were)", prefix_taken);

	/* Pipelined: the first head is taken, its length stops where the next request
	 * begins. */
	const char *two = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_scan sc;
	ok(http_scan_request(two, strlen(two), &sc) && sc.head_len == 28 && sc.target.len == 2,
	   "pipelined requests: the first head ends at the second");

	static const struct {
		const char *head;
		enum http_parser_type type;
		const char *what;
	} left[] = {
		{"GET /a HTTP/1.1\nHost: h\r\n\r\n", HTTP_REQUEST, "bare LF after the request line"},
		{"GET /a HTTP/1.1\r\nHost: h\n\r\n", HTTP_REQUEST, "bare LF after a header"},
		{"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n", HTTP_REQUEST, "obs-fold"},
		{"POST /a HTTP/1.1\r\nTransfer-Encoding: "
		 "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		 HTTP_REQUEST, "chunked body"},
		{"GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", HTTP_REQUEST, "Upgrade"},
		{"GET /a HTTP/1.1\r\nConnection: keep-alive, x\r\n\r\n", HTTP_REQUEST, "Connection list"},
		{"GET /a HTTP/1.1\r\nProxy-Connection: close\r\n\r\n", HTTP_REQUEST, "Proxy-Connection"},
		{"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", HTTP_REQUEST,
		 "two Content-Lengths"},
		{"POST /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\nx", HTTP_REQUEST, "a bad Content-Length"},
		{"POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", HTTP_REQUEST,
		 "an overlong Content-Length"},
		{"GET /a HTTP/1.1\r\nX:\r\n\r\n", HTTP_REQUEST, "an empty value"},
		{"GET /a HTTP/1.1\r\nX: a \r\n\r\n", HTTP_REQUEST, "trailing whitespace"},
		{"GET /a HTTP/1.1\r\nX : a\r\n\r\n", HTTP_REQUEST, "space before the colon"},
		{"GET /a HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", HTTP_REQUEST, "UTF-8 in a value"},
		{"GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_REQUEST, "a fragment"},
		{"GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_REQUEST, "absolute form"},
		{"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_REQUEST, "asterisk form"},
		{"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_REQUEST, "an unknown method"},
		{"GET /a HTTP/2.0\r\nHost: h\r\n\r\n", HTTP_REQUEST, "another version"},
		{"\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n", HTTP_REQUEST, "an empty line first"},
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", HTTP_REQUEST, "garbage (a TLS hello)"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_RESPONSE, "chunked response"},
		{"HTTP/1.1 2000 OK\r\n\r\n", HTTP_RESPONSE, "a four-digit status"},
		{"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", HTTP_RESPONSE, "no reason phrase and no space"},
	};
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
		leaves(left[i].head, left[i].type, left[i].what);
	/* Oversized: more headers than the scanner keeps. */
	char big[8192];
	size_t n = (size_t)snprintf(big, sizeof(big), "GET /a HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_SCAN_MAX_HEADERS + 1; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: v\r\n", i);
	snprintf(big + n, sizeof(big) - n, "\r\n");
	leaves(big, HTTP_REQUEST, "more headers than the scanner keeps");
	{
		/* Every byte at every offset of a target and a value (short ones are read
		 * byte by byte, longer ones eight at a time): taken ones agree with
		 * libhttp-parser, and exactly the plain ones are taken. */
		int before = failures, wrong = 0;
		for (int ch = 1; ch < 256; ch++)
			for (int at = 0; at < 20; at++) {
				char t[128], v[24];
				memset(v, 'a', sizeof(v));
				v[at] = (char)ch;
				v[20] = '\0';
				int m = snprintf(t, sizeof(t), "GET /%s HTTP/1.1\r\nX: b%sb\r\n\r\n", v, v);
				bool plain_url = ch > 0x20 && ch < 0x7f && ch != '#';
				bool took = agree(t, (size_t)m, HTTP_REQUEST, "each byte");
				wrong += took != plain_url;
				m = snprintf(t, sizeof(t), "GET /a HTTP/1.1\r\nX: b%sb\r\n\r\n", v);
				bool plain_value = (ch >= 0x20 && ch < 0x7f) || ch == '\t';
				took = agree(t, (size_t)m, HTTP_REQUEST, "each byte");
				wrong += took != plain_value;
			}
		ok(failures == before, "each byte at each offset of a target and a value: no disagreement");
		ok(wrong == 0, "exactly the plain bytes are taken (%d cases otherwise)", wrong);
	}

	fuzz(req_base, sizeof(req_base) / sizeof(req_base[0]), HTTP_REQUEST, 1, 200000);
	fuzz(resp_base, sizeof(resp_base) / sizeof(resp_base[0]), HTTP_RESPONSE, 2, 200000);
	return tap_done();
}
