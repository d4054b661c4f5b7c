/* The messages of the upstream client's own HTTP/1.1 transport (connections: http_client_h1.c):
 * which URLs it takes, the request head as libcurl would write it, and the response parsed by
 * libhttp-parser into the request's header store and body callbacks. */
#include "http_client_h1.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <http_parser.h>

#include "http_client_internal.h"
#include "http_scan.h"

static const http_parser_settings h1_settings;

bool http_client_h1_parse_url(struct http_client_req *r)
{
	const char *u = r->url;
	if (strncasecmp(u, "http://", 7) != 0)
		return false;
	size_t alen = strcspn(u + 7, "/?#");
	const char *a = u + 7, *path = a + alen;
	if (alen == 0 || *path == '#')
		return false;
	struct http_client *c = r->c;
	size_t hlen = alen;
	long port = 80;
	if (alen == c->h1_auth_len && memcmp(a, c->h1_auth, alen) == 0) {
		hlen = c->h1_auth_hostlen; /* checked when it was first seen */
		port = c->h1_auth_port;
		goto path;
	}
	if (memchr(a, '@', alen))
		return false;
	const char *colon = NULL;
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', alen);
		if (!rb)
			return false;
		hlen = (size_t)(rb - a) + 1;
		if (hlen < alen) {
			if (a[hlen] != ':')
				return false;
			colon = a + hlen;
		}
	} else if ((colon = memchr(a, ':', alen))) {
		hlen = (size_t)(colon - a);
	}
	if (colon) {
		size_t plen = alen - hlen - 1;
		if (plen == 0 || plen > 5 || strspn(colon + 1, "0123456789") < plen)
			return false;
		port = strtol(colon + 1, NULL, 10);
		if (port < 1 || port > 65535)
			return false;
	}
	char host[64];
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, a, hlen);
	host[hlen] = '\0';
	struct in_addr v4;
	struct in6_addr v6;
	if (host[0] == '[') {
		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &v6) != 1)
			return false;
	} else if (strcasecmp(host, "localhost") != 0 && inet_pton(AF_INET, host, &v4) != 1) {
		return false; /* a name: libcurl's resolver (threaded, cached) looks it up */
	}
	if (alen < sizeof(c->h1_auth)) {
		memcpy(c->h1_auth, a, alen);
		c->h1_auth_len = alen;
		c->h1_auth_hostlen = hlen;
		c->h1_auth_port = (uint16_t)port;
	}
path:
	/* libcurl would squash dot segments and drop a fragment: such paths stay with it. */
	for (const char *p = path; *p && *p != '?'; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '#')
			return false;
		if (*p == '/' && p[1] == '.' && (p[2] == '/' || p[2] == '?' || !p[2] ||
						 (p[2] == '.' && (p[3] == '/' || p[3] == '?' || !p[3]))))
			return false;
	}
	for (const char *p = path; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '#')
			return false;
	r->h1_port = (uint16_t)port;
	r->h1_host = 7;
	r->h1_hostlen = hlen;
	r->h1_path = (size_t)(path - u);
	return true;
}

/* --- the request --- */

static bool h1_wbuf_fit(struct http_client_h1 *pool, size_t need)
{
	if (need <= pool->wcap)
		return true;
	size_t cap = pool->wcap ? pool->wcap : 4096;
	while (cap < need)
		cap *= 2;
	char *n = realloc(pool->wbuf, cap);
	if (!n)
		return false;
	pool->wbuf = n;
	pool->wcap = cap;
	return true;
}

#define H1_PUT(s, n) (memcpy(w + len, (s), (n)), len += (n))

/* Request line and headers as libcurl writes them for HTTP/1.1: Host, User-Agent, Accept, the
 * caller's headers (which replace those three by name), then the body framing. */
int http_client_h1_msg_head(struct http_client_h1_conn *k)
{
	struct http_client_req *r = k->r;
	struct http_client_h1 *pool = k->pool;
	const char *path = r->url + r->h1_path, *ua = pool->c->user_agent;
	size_t need = strlen(r->method) + strlen(path) + strlen(k->host->hdr) + strlen(ua) + 96;
	bool own_host = true, own_ua = true, own_accept = true;
	for (size_t at = 0; at < r->hdrs_len;) {
		const char *h = r->hdrs + at;
		size_t n = strlen(h);
		at += n + 1;
		need += n + 3;
		char c0 = (char)(h[0] | 0x20); /* the initial rules out most before strncasecmp */
		if (c0 == 'h' && n >= 5 && strncasecmp(h, "Host", 4) == 0 && (h[4] == ':' || h[4] == ';'))
			own_host = false;
		else if (c0 == 'u' && n >= 11 && strncasecmp(h, "User-Agent", 10) == 0 && (h[10] == ':' || h[10] == ';'))
			own_ua = false;
		else if (c0 == 'a' && n >= 7 && strncasecmp(h, "Accept", 6) == 0 && (h[6] == ':' || h[6] == ';'))
			own_accept = false;
	}
	if (!h1_wbuf_fit(pool, need))
		return -1;
	char *w = pool->wbuf;
	size_t len = 0, n = strlen(r->method);
	H1_PUT(r->method, n);
	w[len++] = ' ';
	if (*path != '/')
		w[len++] = '/'; /* "http://host" or "http://host?q" */
	n = strlen(path);
	H1_PUT(path, n);
	H1_PUT(" HTTP/1.1\r\n", 11);
	if (own_host) {
		H1_PUT("Host: ", 6);
		n = strlen(k->host->hdr);
		H1_PUT(k->host->hdr, n);
		H1_PUT("\r\n", 2);
	}
	if (own_ua) {
		H1_PUT("User-Agent: ", 12);
		n = strlen(ua);
		H1_PUT(ua, n);
		H1_PUT("\r\n", 2);
	}
	if (own_accept)
		H1_PUT("Accept: */*\r\n", 13);
	for (size_t at = 0, hn; at < r->hdrs_len; at += hn + 1) {
		const char *hd = r->hdrs + at, *sep = hd + strcspn(hd, ":;");
		hn = strlen(hd);
		if (!*sep)
			continue;
		if (*sep == ';') { /* "Name;" = the header with an empty value */
			if (sep[strspn(sep + 1, " ") + 1])
				continue;
			H1_PUT(hd, (size_t)(sep - hd));
			H1_PUT(":\r\n", 3);
			continue;
		}
		const char *v = sep + 1;
		while (*v == ' ')
			v++;
		if (!*v)
			continue; /* "Name:" removes a header libcurl would add */
		H1_PUT(hd, hn);
		H1_PUT("\r\n", 2);
	}
	k->chunked = false;
	if (r->has_body && r->content_length >= 0) {
		char num[24];
		int m = snprintf(num, sizeof(num), "%lld", (long long)r->content_length);
		H1_PUT("Content-Length: ", 16);
		H1_PUT(num, (size_t)m);
		H1_PUT("\r\n", 2);
	} else if (r->has_body) {
		H1_PUT("Transfer-Encoding: chunked\r\n", 28);
		k->chunked = true;
	}
	H1_PUT("\r\n", 2);
	return evbuffer_add(k->out, w, len);
}

/* --- the response --- */

void http_client_h1_msg_reset(struct http_client_h1_conn *k)
{
	k->hlen = k->hnlen = 0;
	k->in_value = false;
	k->msg_start = true;
	k->fast = false;
	http_parser_init(&k->parser, HTTP_RESPONSE);
	k->parser.data = k;
}

static void h1_header_flush(struct http_client_h1_conn *k)
{
	if (!k->hnlen || !k->r)
		return;
	http_client_req_store_header(k->r, k->hbuf, k->hnlen, k->hbuf + k->hnlen + 1, k->hlen - k->hnlen - 1);
	k->hlen = k->hnlen = 0;
}

/* Bound on a response head, as libcurl's CURL_MAX_HTTP_HEADER (the server side lifts
 * libhttp-parser's own limit for every parser in the process). */
#define H1_HEAD_MAX (100 * 1024)

static int h1_hbuf_add(struct http_client_h1_conn *k, const char *at, size_t len)
{
	k->head_bytes += len;
	if (k->head_bytes > H1_HEAD_MAX) {
		http_client_h1_fail(k, CURLE_WEIRD_SERVER_REPLY, "response head over 100 KiB");
		return -1;
	}
	if (k->hlen + len + 2 > k->hcap) {
		size_t cap = k->hcap ? k->hcap : 256;
		while (cap < k->hlen + len + 2)
			cap *= 2;
		char *n = realloc(k->hbuf, cap);
		if (!n)
			return -1;
		k->hbuf = n;
		k->hcap = cap;
	}
	memcpy(k->hbuf + k->hlen, at, len);
	k->hlen += len;
	return 0;
}

static int h1_on_message_begin(http_parser *p)
{
	struct http_client_h1_conn *k = p->data;
	k->hlen = k->hnlen = 0;
	k->head_bytes = 0;
	k->in_value = false;
	if (k->r) {
		k->r->nrh = 0;
		k->r->hlen = 0;
	}
	return 0;
}

static int h1_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_client_h1_conn *k = p->data;
	if (k->in_value) {
		h1_header_flush(k);
		k->in_value = false;
	}
	return h1_hbuf_add(k, at, len);
}

static int h1_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_client_h1_conn *k = p->data;
	if (!k->in_value) {
		k->hnlen = k->hlen;
		if (h1_hbuf_add(k, "", 1) != 0)
			return -1;
		k->in_value = true;
	} else if (!k->value_at_end) {
		/* The last piece ended at a line end, not at the end of the bytes read: this is an
		 * obs-fold continuation (RFC 9110 5.5), joined with one space as curl's path does. */
		while (k->hlen > k->hnlen + 1 && (k->hbuf[k->hlen - 1] == ' ' || k->hbuf[k->hlen - 1] == '\t'))
			k->hlen--;
		while (len && (*at == ' ' || *at == '\t'))
			at++, len--;
		if (h1_hbuf_add(k, " ", 1) != 0)
			return -1;
	}
	k->value_at_end = at + len == k->parse_end;
	return h1_hbuf_add(k, at, len);
}

static int h1_on_headers_complete(http_parser *p)
{
	struct http_client_h1_conn *k = p->data;
	struct http_client_req *r = k->r;
	if (k->in_value)
		h1_header_flush(k);
	k->in_value = false;
	if (!r || r->cancelled)
		return -1;
	int status = p->status_code;
	if (status < 200) {
		r->nrh = 0; /* 100 Continue and friends: the final head follows */
		r->hlen = 0;
		return 1;
	}
	if (!k->send_done || evbuffer_get_length(k->out)) {
		if (status >= 300) {
			/* An error before the body was all sent: libcurl stops sending too. */
			k->stop_send = true;
			k->no_reuse = true;
			evbuffer_drain(k->out, evbuffer_get_length(k->out));
		}
	}
	if (!http_client_req_head_complete(r, status))
		return -1;
	bool bodiless = status == 204 || status == 304 || strcmp(r->method, "HEAD") == 0;
	return bodiless ? 1 : 0;
}

static int h1_on_body(http_parser *p, const char *at, size_t len)
{
	struct http_client_h1_conn *k = p->data;
	struct http_client_req *r = k->r;
	if (!r || r->cancelled)
		return -1;
	if (r->discard) {
		r->discarded += len;
		return r->discarded > HTTP_CLIENT_DISCARD_MAX ? -1 : 0;
	}
	if (evbuffer_add(r->chunk, at, len) != 0)
		return -1;
	if (!r->user_paused)
		http_client_req_deliver(r);
	return r->cancelled ? -1 : 0;
}

static int h1_on_message_complete(http_parser *p)
{
	struct http_client_h1_conn *k = p->data;
	if (p->status_code < 200)
		return 0;
	k->msg_done = true;
	http_parser_pause(p, 1); /* whatever follows is not ours */
	return 0;
}

static const http_parser_settings h1_settings = {
	.on_message_begin = h1_on_message_begin,
	.on_header_field = h1_on_header_field,
	.on_header_value = h1_on_header_value,
	.on_headers_complete = h1_on_headers_complete,
	.on_body = h1_on_body,
	.on_message_complete = h1_on_message_complete,
};

/* Body bytes of a response whose head the scanner read: up to its Content-Length, the end then;
 * bytes past it mean the connection is not clean. */
static void h1_fast_body(struct http_client_h1_conn *k, const char *buf, size_t n)
{
	size_t take = n < k->fast_left ? n : (size_t)k->fast_left;
	if (take && !k->msg_done) {
		k->fast_left -= take;
		if (h1_on_body(&k->parser, buf, take) != 0) {
			if (!k->dead && k->r && !k->pending)
				k->pending = CURLE_WRITE_ERROR;
			return;
		}
		if (k->dead || !k->r)
			return;
	}
	if (k->fast_left == 0)
		k->msg_done = true;
	if (take < n)
		k->no_reuse = true;
}

/* A whole plain response head with a Content-Length at the start of the response: the
 * callbacks libhttp-parser would make, from one pass of the scanner. false: the parser reads it
 * (anything 1xx, bodiless, chunked, unframed or unusual). */
static bool h1_parse_fast(struct http_client_h1_conn *k, const char *buf, size_t n)
{
	struct http_client_req *r = k->r;
	struct http_scan sc;
	if (!r || !http_scan_response(buf, n, &sc) || sc.content_length < 0 || sc.status < 200 || sc.status == 204 ||
	    sc.status == 304 || sc.head_len > H1_HEAD_MAX || strcmp(r->method, "HEAD") == 0)
		return false;
	http_parser *p = &k->parser;
	k->fast = true;
	k->fast_keep = sc.keep_alive;
	k->fast_left = (uint64_t)sc.content_length;
	k->parse_end = NULL;
	h1_on_message_begin(p);
	for (size_t i = 0; i < sc.nheaders; i++) {
		const struct http_scan_header *h = &sc.headers[i];
		if (h1_on_header_field(p, buf + h->name.at, h->name.len) != 0 ||
		    h1_on_header_value(p, buf + h->value.at, h->value.len) != 0) {
			char msg[160];
			snprintf(msg, sizeof(msg), "Invalid response: %s", http_errno_description(HPE_CB_header_field));
			http_client_h1_fail(k, CURLE_WEIRD_SERVER_REPLY, msg);
			return true;
		}
	}
	p->http_major = 1;
	p->http_minor = (unsigned short)sc.http_minor;
	p->status_code = (unsigned short)sc.status;
	if (h1_on_headers_complete(p) != 0) {
		if (!k->dead && k->r && !k->pending)
			k->pending = CURLE_WRITE_ERROR;
		return true;
	}
	if (k->dead || !k->r)
		return true;
	h1_fast_body(k, buf + sc.head_len, n - sc.head_len);
	return true;
}

/* Feeds n bytes (0: the end of the stream) to the parser. */
void http_client_h1_msg_parse(struct http_client_h1_conn *k, const char *buf, size_t n)
{
	struct http_client_req *r = k->r;
	if (k->msg_start && n) {
		k->msg_start = false;
		if (h1_parse_fast(k, buf, n))
			return;
	}
	if (k->fast) {
		if (n) {
			h1_fast_body(k, buf, n);
		} else if (!k->msg_done) {
			char msg[96];
			snprintf(msg, sizeof(msg), "transfer closed with %llu bytes remaining to read",
				 (unsigned long long)k->fast_left);
			http_client_h1_fail(k, CURLE_PARTIAL_FILE, msg);
		}
		return;
	}
	k->parse_end = buf + n;
	size_t done = http_parser_execute(&k->parser, &h1_settings, buf, n);
	enum http_errno e = HTTP_PARSER_ERRNO(&k->parser);
	if (k->dead || !k->r)
		return;
	if (e == HPE_PAUSED) {
		if (done < n)
			k->no_reuse = true; /* bytes after the response: the connection is not clean */
		return;
	}
	if (e == HPE_OK && n == 0 && !k->msg_done)
		e = HPE_INVALID_EOF_STATE;
	if (e == HPE_OK)
		return;
	if (r->cancelled || e == HPE_CB_headers_complete || e == HPE_CB_body) {
		if (!k->pending)
			k->pending = CURLE_WRITE_ERROR;
		return;
	}
	if (n == 0 && !k->head_seen) {
		http_client_h1_fail(k, CURLE_GOT_NOTHING, "Empty reply from server");
		return;
	}
	if (n == 0 && !r->head_done) {
		http_client_h1_fail(k, CURLE_RECV_ERROR, "connection closed before the response head was complete");
		return;
	}
	if (n == 0) {
		char msg[96];
		if (k->parser.flags & F_CHUNKED)
			snprintf(msg, sizeof(msg), "transfer closed with outstanding read data remaining");
		else
			snprintf(msg, sizeof(msg), "transfer closed with %llu bytes remaining to read",
				 (unsigned long long)k->parser.content_length);
		http_client_h1_fail(k, CURLE_PARTIAL_FILE, msg);
		return;
	}
	char msg[160];
	snprintf(msg, sizeof(msg), "Invalid response: %s", http_errno_description(e));
	http_client_h1_fail(k, r->head_done ? CURLE_RECV_ERROR : CURLE_WEIRD_SERVER_REPLY, msg);
}
