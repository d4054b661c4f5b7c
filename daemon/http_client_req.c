/* Upstream HTTP requests: building one (method, URL, headers, a whole or streamed body),
 * feeding and pausing its bodies, and the libcurl callbacks that move bytes between curl and
 * the caller with back-pressure both ways. The transfer's life is in http_client.c. */
#include "http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "http_client_h1.h"
#include "http_client_internal.h"
#include "http_scan.h"
#include "http_retry.h"
#include "log.h"
#include "metrics.h"

/* Headers the client sets itself (body framing) or that are hop-by-hop: a forwarder copying an
 * application's request must not pass them on, and HTTP/2 forbids most of them. */
static const struct {
	const char *s;
	size_t n;
} http_client_req_managed[] = {
	{ "Content-Length", 14 }, { "Transfer-Encoding", 17 }, { "Connection", 10 }, { "Keep-Alive", 10 },
	{ "Proxy-Connection", 16 }, { "TE", 2 }, { "Upgrade", 7 }, { "Expect", 6 }, { "Trailer", 7 },
};

/* host + path of the URL for log lines into out (room for strlen(url) + 2); userinfo and the
 * query (signatures, upload ids) are left out. false when the URL is not http(s). A plain scan, not curl_url(): it ran for every
 * request and cost as much as curl's own parse of the same URL. */
static bool http_client_req_log_target(const char *url, char *out)
{
	const char *p;
	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return false;
	size_t alen = strcspn(p, "/?#");
	const char *at = memchr(p, '@', alen);
	if (at) {
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	const char *path = p + alen;
	/* the port goes too, as curl_url's host part had it */
	for (size_t i = alen; i > 0; i--) {
		if (p[i - 1] == ':' && i < alen && (p[0] != '[' || (i >= 2 && p[i - 2] == ']'))) {
			alen = i - 1;
			break;
		}
		if (p[i - 1] < '0' || p[i - 1] > '9')
			break;
	}
	if (alen == 0)
		return false;
	size_t plen = *path == '/' ? strcspn(path, "?#") : 0;
	memcpy(out, p, alen);
	if (plen)
		memcpy(out + alen, path, plen);
	else
		out[alen] = '/', plen = 1;
	out[alen + plen] = '\0';
	return true;
}

/* A method is an HTTP token: it goes verbatim into the request line. */
static bool http_client_req_token(const char *s)
{
	size_t n = http_scan_token_len(s);
	return n > 0 && s[n] == '\0';
}

struct http_client_req *http_client_req_create(struct http_client *c, const char *upstream, const char *method,
					       const char *url)
{
	if (!http_client_req_token(method)) {
		log_warn(&http_client_log, "(%s): invalid HTTP method", upstream ? upstream : "upstream");
		return NULL;
	}
	struct http_client_req *r = c->spare;
	if (r) {
		/* A freed request kept whole: its easy handle, event, buffers and arrays go on. */
		c->spare = r->next;
		c->nspare--;
		struct http_client_req keep = *r;
		memset(r, 0, sizeof(*r));
		r->easy = keep.easy;
		r->ev = keep.ev;
		r->body_in = keep.body_in;
		r->replay = keep.replay;
		r->chunk = keep.chunk;
		r->rh = keep.rh;
		r->caprh = keep.caprh;
		r->hbuf = keep.hbuf;
		r->hcap = keep.hcap;
		r->hdrs = keep.hdrs;
		r->hdrs_cap = keep.hdrs_cap;
		r->strs = keep.strs;
		r->strs_cap = keep.strs_cap;
	} else {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		r->body_in = evbuffer_new();
		r->replay = evbuffer_new();
		r->chunk = evbuffer_new();
		r->ev = evtimer_new(c->base, http_client_req_on_event, r);
	}
	r->c = c;
	r->state = HTTP_CLIENT_REQ_NEW;
	r->upstream = upstream ? upstream : "upstream";
	/* method, URL and log target in one buffer, kept with a pooled request */
	size_t mlen = strlen(method), ulen = strlen(url), need = mlen + 1 + 2 * (ulen + 2);
	if (need > r->strs_cap) {
		char *n = realloc(r->strs, need);
		if (n) {
			r->strs = n;
			r->strs_cap = need;
		}
	}
	bool target_ok = false;
	if (need <= r->strs_cap) {
		r->method = memcpy(r->strs, method, mlen + 1);
		r->url = memcpy(r->strs + mlen + 1, url, ulen + 1);
		r->log_target = r->url + ulen + 1;
		target_ok = http_client_req_log_target(url, r->log_target);
	}
	r->replayable = true;
	r->replay_max = c->opts.replay_max;
	r->timeout_ms = c->opts.timeout_ms;
	r->retry_delay_ms = -1;
	r->content_length = -1;
	/* Safe methods are idempotent; anything else only when the caller says so. PUT and DELETE
	 * are not assumed: Google's strategy retries them only with a precondition. */
	r->idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || strcmp(method, "OPTIONS") == 0;
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
	if (!r->method || !r->url || !r->body_in || !r->replay || !r->chunk || !r->ev) {
		http_client_req_free(r);
		return NULL;
	}
	if (!target_ok) {
		log_warn(&http_client_log, "%s (%s): not a valid http(s) URL", r->method, r->upstream);
		http_client_req_free(r);
		return NULL;
	}
	return r;
}

int http_client_req_header(struct http_client_req *r, const char *name, const char *value)
{
	if (r->state != HTTP_CLIENT_REQ_NEW || !http_client_req_token(name) || strpbrk(value, "\r\n"))
		return -1;
	size_t nlen = strlen(name), vlen = strlen(value);
	for (size_t i = 0; i < sizeof(http_client_req_managed) / sizeof(*http_client_req_managed); i++)
		if (http_client_req_managed[i].n == nlen && strcasecmp(name, http_client_req_managed[i].s) == 0)
			return 0;
	size_t need = r->hdrs_len + nlen + vlen + 3;
	if (need > r->hdrs_cap) {
		size_t cap = r->hdrs_cap ? r->hdrs_cap : 512;
		while (cap < need)
			cap *= 2;
		char *n = malloc(cap); /* (not realloc: the old copy may hold a token, it is wiped) */
		if (!n)
			return -1;
		if (r->hdrs) {
			memcpy(n, r->hdrs, r->hdrs_len);
			explicit_bzero(r->hdrs, r->hdrs_len);
			free(r->hdrs);
		}
		r->hdrs = n;
		r->hdrs_cap = cap;
	}
	char *line = r->hdrs + r->hdrs_len;
	memcpy(line, name, nlen);
	/* "Name:" alone would tell curl to drop the header; "Name;" sends it empty. */
	line[nlen] = vlen ? ':' : ';';
	line[nlen + 1] = ' ';
	memcpy(line + nlen + 2, value, vlen + 1);
	r->hdrs_len = need;
	return 0;
}

void http_client_req_header_remove(struct http_client_req *r, const char *name)
{
	if (r->state != HTTP_CLIENT_REQ_NEW)
		return; /* curl holds the list of a started request */
	size_t nlen = strlen(name), at = 0;
	while (at < r->hdrs_len) {
		char *h = r->hdrs + at;
		size_t len = strlen(h) + 1;
		if (strncasecmp(h, name, nlen) == 0 && (h[nlen] == ':' || h[nlen] == ';')) {
			memmove(h, h + len, r->hdrs_len - at - len);
			r->hdrs_len -= len;
			explicit_bzero(r->hdrs + r->hdrs_len, len);
		} else {
			at += len;
		}
	}
}

int http_client_req_body(struct http_client_req *r, const void *data, size_t len)
{
	if (r->state != HTTP_CLIENT_REQ_NEW)
		return -1;
	evbuffer_drain(r->body_in, evbuffer_get_length(r->body_in));
	if (len && evbuffer_add(r->body_in, data, len) != 0)
		return -1;
	r->has_body = true;
	r->streamed = false;
	r->body_ended = true;
	r->content_length = (int64_t)len;
	r->body_total = len;
	r->replay_max = SIZE_MAX; /* the caller handed it all over: always replayable */
	return 0;
}

void http_client_req_body_stream(struct http_client_req *r, int64_t content_length)
{
	if (r->state != HTTP_CLIENT_REQ_NEW)
		return;
	r->has_body = true;
	r->streamed = true;
	r->content_length = content_length < 0 ? -1 : content_length;
}

void http_client_req_idempotent(struct http_client_req *r, bool idempotent)
{
	r->idempotent = idempotent;
}

void http_client_req_timeout(struct http_client_req *r, int64_t ms)
{
	r->timeout_ms = ms > 0 ? ms : 0;
}

void http_client_req_callbacks(struct http_client_req *r, const struct http_client_cbs *cbs, void *arg)
{
	if (r->cancelled)
		return;
	r->cbs = *cbs;
	r->arg = arg;
}

CURL *http_client_easy_new(struct http_client *c)
{
	CURL *e = curl_easy_init();
	if (!e)
		return NULL;
	/* What every request of this client shares, set once per handle: handles are pooled with
	 * their request structs (http_client_req_free), so the per-request setup below only sets
	 * what differs. */
	CURLcode rc = CURLE_OK;
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
	rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
			       c->opts.http1_only ? (long)CURL_HTTP_VERSION_1_1 : (long)CURL_HTTP_VERSION_2TLS);
	rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->opts.connect_timeout_ms);
	rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	/* TLS is always verified; only the trust store is configurable. */
	rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	rc |= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca_file)
		rc |= curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->no_proxy_env)
		rc |= curl_easy_setopt(e, CURLOPT_PROXY, "");
	rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_client_req_header_cb);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_client_req_write_cb);
	rc |= curl_easy_setopt(e, CURLOPT_READFUNCTION, http_client_req_read_cb);
	rc |= curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, http_client_req_seek_cb);
	if (rc != CURLE_OK) {
		curl_easy_cleanup(e);
		return NULL;
	}
	return e;
}

/* The easy handle of a request going through curl, made on its first such use (a pooled struct
 * keeps it): options naming the struct are set here, as it stays paired with its handle. */
static CURL *http_client_req_easy(struct http_client_req *r)
{
	if (r->easy)
		return r->easy;
	CURL *e = http_client_easy_new(r->c);
	if (!e)
		return NULL;
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_READDATA, r);
	curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
	r->easy = e;
	return e;
}

/* The options that differ between requests; every one of them is set (or set back) here, since
 * the handle keeps what the previous request on it set. A plain http:// URL the client's own
 * HTTP/1.1 transport can take needs none of it (http_client_h1.c). */
static int http_client_req_setup(struct http_client_req *r)
{
	struct http_client *c = r->c;
	/* POST/PUT/PATCH without a body still say Content-Length: 0 (Google front ends want it). */
	if (!r->has_body && (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
			     strcmp(r->method, "PATCH") == 0))
		if (http_client_req_body(r, "", 0) != 0)
			return -1;
	r->native = c->native_http1 && http_client_h1_parse_url(r);
	if (r->native)
		return 0;
	CURL *e = http_client_req_easy(r);
	if (!e)
		return -1;
	for (size_t at = 0; at < r->hdrs_len; at += strlen(r->hdrs + at) + 1) {
		struct curl_slist *l = curl_slist_append(r->headers, r->hdrs + at);
		if (!l)
			return -1;
		r->headers = l;
	}
	/* "Expect:" with no value removes curl's own Expect: 100-continue, which would make every
	 * large or streamed upload wait up to a second for an answer many servers never send. */
	struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
	if (!l)
		return -1;
	r->headers = l;
	CURLcode rc = CURLE_OK;
	rc |= curl_easy_setopt(e, CURLOPT_URL, r->url);
	rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	/* Waiting to multiplex pays off only where HTTP/2 can appear: over TLS, where ALPN settles
	 * it during the handshake. On plain http curl would hold every further request to the host
	 * until the first one's response began. */
	rc |= curl_easy_setopt(e, CURLOPT_PIPEWAIT,
			       !c->opts.http1_only && strncasecmp(r->url, "https:", 6) == 0 ? 1L : 0L);
	/* (NOBODY 0 and UPLOAD set the method back to GET or PUT; CUSTOMREQUEST then names it.) */
	rc |= curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
	rc |= curl_easy_setopt(e, CURLOPT_UPLOAD, r->has_body ? 1L : 0L);
	rc |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(r->has_body ? r->content_length : -1));
	if (!r->has_body && strcmp(r->method, "HEAD") == 0)
		rc |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
			       r->has_body || (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) ? r->method
															: NULL);
	/* libcurl quietly sends a body-less request again when a reused connection turns out dead
	 * before any answer; a request that must not run twice gets a connection of its own (a body
	 * is safe: the seek callback refuses to rewind it). */
	rc |= curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, !r->idempotent && !r->has_body ? 1L : 0L);
	return rc == CURLE_OK ? 0 : -1;
}

int http_client_req_start(struct http_client_req *r)
{
	struct http_client *c = r->c;
	if (r->state != HTTP_CLIENT_REQ_NEW || r->cancelled)
		return -1; /* misuse (started twice, or cancelled): nothing changes */
	if (c->destroying || http_client_req_setup(r) != 0)
		goto fail;
	/* Replay costs memory only when it can pay off: an idempotent request whose body fits. */
	r->keep_replay = r->idempotent && (r->content_length < 0 || (uint64_t)r->content_length <= r->replay_max);
	if (c->metrics) {
		r->ms = http_client_series_for(c, r->upstream);
		r->m_inflight = r->ms ? r->ms->inflight : metrics_series(c->m_inflight, r->upstream);
	}
	r->start_at = 0;
	http_client_req_set_state(r, HTTP_CLIENT_REQ_WAITING);
	http_client_startq_add(r);
	return 0;
fail:
	log_warn(&http_client_log, "%s %s (%s): cannot start the request", r->method, r->log_target, r->upstream);
	http_client_req_free(r);
	return -1;
}

void http_client_req_cancel(struct http_client_req *r)
{
	if (!r || r->cancelled)
		return;
	r->cancelled = true;
	memset(&r->cbs, 0, sizeof(r->cbs));
	if (r->c->depth == 0 && r->state != HTTP_CLIENT_REQ_DONE) {
		http_client_req_free(r);
		return;
	}
	/* The caller may be inside one of our callbacks, possibly inside curl, where the handle
	 * cannot be removed: curl callbacks now abort, and the request's event frees it (or
	 * http_client_finish does, when on_done is on the stack). */
	if (r->state != HTTP_CLIENT_REQ_DONE) {
		r->ev_armed = true;
		event_active(r->ev, EV_TIMEOUT, 0);
	}
}

/* --- request body --- */

int http_client_req_body_write(struct http_client_req *r, struct evbuffer *buf)
{
	if (r->body_ended || !r->streamed || r->cancelled)
		return -1;
	size_t len = evbuffer_get_length(buf);
	if (r->content_length >= 0 && r->body_total + len > (uint64_t)r->content_length)
		return -1;
	if (evbuffer_add_buffer(r->body_in, buf) != 0)
		return -1;
	r->body_total += len;
	if (evbuffer_get_length(r->body_in) >= r->c->opts.body_high_water)
		r->want_drain = true;
	if (r->curl_send_paused && !r->unpause_pending) {
		r->unpause_pending = true;
		http_client_req_defer(r);
	}
	return 0;
}

int http_client_req_body_end(struct http_client_req *r)
{
	if (r->body_ended || !r->streamed || r->cancelled)
		return -1;
	r->body_ended = true;
	r->drain_pending = false;
	if (r->curl_send_paused && !r->unpause_pending) {
		r->unpause_pending = true;
		http_client_req_defer(r);
	}
	return 0;
}

bool http_client_req_body_full(const struct http_client_req *r)
{
	return evbuffer_get_length(r->body_in) >= r->c->opts.body_high_water;
}

size_t http_client_req_body_pending(const struct http_client_req *r)
{
	return evbuffer_get_length(r->body_in);
}

/* --- response body --- */

void http_client_req_pause_body(struct http_client_req *r)
{
	r->user_paused = true;
}

void http_client_req_resume_body(struct http_client_req *r)
{
	if (!r->user_paused)
		return;
	r->user_paused = false;
	if (r->curl_recv_paused)
		r->unpause_pending = true;
	if (evbuffer_get_length(r->chunk))
		r->deliver_pending = true;
	if (r->unpause_pending || r->deliver_pending || r->state == HTTP_CLIENT_REQ_HELD)
		http_client_req_defer(r);
}

void http_client_req_deliver(struct http_client_req *r)
{
	r->deliver_pending = false;
	if (!evbuffer_get_length(r->chunk))
		return;
	if (!r->cbs.on_body) {
		evbuffer_drain(r->chunk, evbuffer_get_length(r->chunk));
		return;
	}
	r->c->depth++;
	r->cbs.on_body(r, r->chunk, r->arg);
	r->c->depth--;
	/* A consumer that leaves a high-water mark's worth behind is paused, as if it had asked. */
	if (evbuffer_get_length(r->chunk) >= r->c->opts.body_high_water)
		r->user_paused = true;
}

/* --- libcurl callbacks (inside curl: never call curl from here, only flag and defer) --- */

/* Appends len bytes and a NUL to r->hbuf; the offset of the copy, or (size_t)-1. */
static size_t http_client_req_hbuf_add(struct http_client_req *r, const char *s, size_t len)
{
	if (r->hlen + len + 1 > r->hcap) {
		size_t cap = r->hcap ? r->hcap : 1024;
		while (cap < r->hlen + len + 1)
			cap *= 2;
		char *n = realloc(r->hbuf, cap);
		if (!n)
			return (size_t)-1;
		r->hbuf = n;
		r->hcap = cap;
	}
	size_t at = r->hlen;
	memcpy(r->hbuf + at, s, len);
	r->hbuf[at + len] = '\0';
	r->hlen += len + 1;
	return at;
}

static void http_client_req_add_resp_header(struct http_client_req *r, const char *line, size_t len)
{
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (len && (line[0] == ' ' || line[0] == '\t')) {
		/* obs-fold continuation (RFC 9110 5.5): joins the previous value with a space. */
		if (!r->nrh)
			return;
		while (len && (*line == ' ' || *line == '\t'))
			line++, len--;
		size_t prev = r->rh[r->nrh - 1].value, plen = strlen(r->hbuf + prev);
		size_t at = http_client_req_hbuf_add(r, r->hbuf + prev, plen); /* (a copy: hbuf may move) */
		if (at == (size_t)-1)
			return;
		r->hbuf[at + plen] = ' ';
		r->hlen--; /* the copy's NUL becomes the space; the continuation follows it */
		if (http_client_req_hbuf_add(r, line, len) == (size_t)-1) {
			r->hbuf[at + plen] = '\0';
			r->hlen = at + plen + 1;
			return;
		}
		r->rh[r->nrh - 1].value = at;
		return;
	}
	const char *colon = memchr(line, ':', len);
	if (!colon || colon == line)
		return;
	http_client_req_store_header(r, line, (size_t)(colon - line), colon + 1, (size_t)(line + len - colon - 1));
}

void http_client_req_store_header(struct http_client_req *r, const char *name, size_t nlen, const char *v,
				  size_t vlen)
{
	if (r->nrh == r->caprh) {
		size_t cap = r->caprh ? r->caprh * 2 : 16;
		struct http_client_resp_header *n = realloc(r->rh, cap * sizeof(*n));
		if (!n)
			return;
		r->rh = n;
		r->caprh = cap;
	}
	const char *end = v + vlen;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size_t mark = r->hlen;
	size_t at_name = http_client_req_hbuf_add(r, name, nlen);
	size_t at_value = at_name == (size_t)-1 ? at_name : http_client_req_hbuf_add(r, v, (size_t)(end - v));
	if (at_value == (size_t)-1) {
		r->hlen = mark;
		return;
	}
	r->rh[r->nrh].name = at_name;
	r->rh[r->nrh].value = at_value;
	r->nrh++;
}

size_t http_client_req_header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct http_client_req *r = arg;
	size_t len = size * n;
	if (r->cancelled)
		return 0;
	if (r->head_done)
		return len; /* trailers */
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* A new head: the first, or the final one after a 1xx. */
		r->nrh = 0;
		r->hlen = 0;
		return len;
	}
	if (!(len <= 2 && len > 0 && (buf[0] == '\r' || buf[0] == '\n'))) {
		http_client_req_add_resp_header(r, buf, len);
		return len;
	}
	long status = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200)
		return len; /* 100 Continue and friends */
	return http_client_req_head_complete(r, (int)status) ? len : 0;
}

bool http_client_req_head_complete(struct http_client_req *r, int status)
{
	r->status = status;
	r->head_done = true;
	if (http_retry_status(r->status)) {
		const char *ra = http_client_resp_header(r, "Retry-After");
		int64_t ra_ms = ra ? http_retry_after_ms(ra, time(NULL)) : -1;
		int64_t delay = http_client_retry_delay(r, ra_ms);
		if (delay >= 0) {
			r->discard = true;
			r->retry_delay_ms = delay;
			/* Stop sending the body too: the next attempt sends it again. */
			bool body_left = r->has_body && !(r->body_ended && evbuffer_get_length(r->body_in) == 0);
			return !body_left;
		}
	}
	r->delivered = true;
	if (r->cbs.on_headers)
		r->cbs.on_headers(r, r->status, r->arg);
	return !r->cancelled;
}

size_t http_client_req_write_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct http_client_req *r = arg;
	size_t len = size * n;
	if (r->cancelled)
		return 0;
	if (r->discard) {
		r->discarded += len;
		return r->discarded > HTTP_CLIENT_DISCARD_MAX ? 0 : len;
	}
	if (r->user_paused) {
		/* curl keeps these bytes and offers them again after curl_easy_pause(CONT). */
		r->curl_recv_paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (evbuffer_add(r->chunk, buf, len) != 0)
		return 0;
	http_client_req_deliver(r);
	/* A pause asked inside on_body applies from the next call: these bytes are taken. */
	return r->cancelled ? 0 : len;
}

/* The read callback's work for both transports: up to `max` body bytes copied to buf (curl) or
 * moved to dst (http_client_h1.c: evbuffer chains change hands, no copy unless kept for replay). */
static size_t http_client_req_take(struct http_client_req *r, char *buf, struct evbuffer *dst, size_t max)
{
	if (r->cancelled)
		return CURL_READFUNC_ABORT;
	size_t avail = evbuffer_get_length(r->body_in);
	if (avail == 0) {
		if (r->body_ended) {
			if (r->content_length >= 0 && r->sent < (uint64_t)r->content_length) {
				r->body_short = true;
				return CURL_READFUNC_ABORT;
			}
			return 0;
		}
		r->curl_send_paused = true;
		if (!r->drain_pending) {
			r->drain_pending = true;
			http_client_req_defer(r);
		}
		return CURL_READFUNC_PAUSE;
	}
	size_t at = dst ? evbuffer_get_length(dst) : 0;
	int got = buf ? evbuffer_remove(r->body_in, buf, max) : evbuffer_remove_buffer(r->body_in, dst, max);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	if (r->keep_replay && r->replayable && evbuffer_get_length(r->replay) + (size_t)got <= r->replay_max) {
		if (buf) {
			evbuffer_add(r->replay, buf, (size_t)got);
		} else {
			struct evbuffer_ptr p;
			struct evbuffer_iovec v[16];
			evbuffer_ptr_set(dst, &p, at, EVBUFFER_PTR_SET);
			for (size_t left = (size_t)got; left;) {
				int nv = evbuffer_peek(dst, (ev_ssize_t)left, &p, v, 16);
				for (int i = 0; i < nv && i < 16 && left; i++) {
					size_t k = v[i].iov_len < left ? v[i].iov_len : left;
					evbuffer_add(r->replay, v[i].iov_base, k);
					left -= k;
					at += k;
				}
				evbuffer_ptr_set(dst, &p, at, EVBUFFER_PTR_SET);
			}
		}
	} else if (r->replayable) {
		/* Handed over without a copy: from here on this request is never replayed. */
		evbuffer_drain(r->replay, evbuffer_get_length(r->replay));
		r->replayable = false;
	}
	r->sent += (uint64_t)got;
	if (r->want_drain && !r->drain_pending && !r->body_ended &&
	    evbuffer_get_length(r->body_in) < r->c->opts.body_high_water / 2) {
		r->drain_pending = true;
		http_client_req_defer(r);
	}
	return (size_t)got;
}

size_t http_client_req_read_cb(char *buf, size_t size, size_t n, void *arg)
{
	return http_client_req_take(arg, buf, NULL, size * n);
}

size_t http_client_req_read_into(struct http_client_req *r, struct evbuffer *dst, size_t max)
{
	return http_client_req_take(r, NULL, dst, max);
}

/* curl rewinds the body when it resends a request by itself (a reused connection found dead).
 * Possible only while everything sent is still in the replay buffer. */
int http_client_req_seek_cb(void *arg, curl_off_t offset, int origin)
{
	struct http_client_req *r = arg;
	if (origin != SEEK_SET || offset != 0)
		return CURL_SEEKFUNC_CANTSEEK;
	if (r->sent == 0)
		return CURL_SEEKFUNC_OK;
	if (!r->keep_replay || !r->replayable)
		return CURL_SEEKFUNC_CANTSEEK;
	evbuffer_prepend_buffer(r->body_in, r->replay);
	r->sent = 0;
	return CURL_SEEKFUNC_OK;
}

/* --- response accessors --- */

const char *http_client_resp_header(const struct http_client_req *r, const char *name)
{
	char c0 = (char)(name[0] | 0x20); /* the initial rules out most before strcasecmp */
	for (size_t i = 0; i < r->nrh; i++)
		if ((r->hbuf[r->rh[i].name] | 0x20) == c0 && strcasecmp(r->hbuf + r->rh[i].name, name) == 0)
			return r->hbuf + r->rh[i].value;
	return NULL;
}

size_t http_client_resp_header_count(const struct http_client_req *r)
{
	return r->nrh;
}

void http_client_resp_header_at(const struct http_client_req *r, size_t i, const char **name, const char **value)
{
	*name = i < r->nrh ? r->hbuf + r->rh[i].name : NULL;
	*value = i < r->nrh ? r->hbuf + r->rh[i].value : NULL;
}

int http_client_resp_status(const struct http_client_req *r)
{
	return r->status;
}

int http_client_req_attempts(const struct http_client_req *r)
{
	return r->attempts;
}

uint64_t http_client_req_body_sent(const struct http_client_req *r)
{
	return r->sent;
}
