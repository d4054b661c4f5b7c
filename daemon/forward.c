/* The forwarding engine (see forward.h): one struct forward_req per request, from the request
 * head through the token, the upstream request and the streamed bodies to the end, with every
 * callback of the three parties (HTTP server, credentials, upstream client) landing here. */
#include "forward.h"
#include "forward_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "core.h"
#include "credentials.h"
#include "http_client.h"
#include "http_internal.h" /* http_conn_close: cutting a response short (see forward_req_cut) */
#include "http_server.h"
#include "log.h"
#include "loopclock.h"
#include "metrics.h"

/* A header name (of length nlen) against a literal: the length rules out most at once. */
#define FORWARD_NAME_IS(name, nlen, lit) ((nlen) == sizeof(lit) - 1 && strcasecmp((name), (lit)) == 0)

/* Response bytes queued to a slow client before the upstream transfer is paused. */
#define FORWARD_RESP_HIGH_WATER (256 * 1024)

/* Content-Length = 1*DIGIT (RFC 9110 8.6), up to 18 digits; -1 for anything else. strtoll took
 * 0.6 % of a forwarded request's instructions, and let a sign and blanks through. */
static int64_t forward_content_length(const char *v)
{
	int64_t n = 0;
	size_t i = 0;
	for (; v[i] >= '0' && v[i] <= '9'; i++) {
		if (i == 18)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return i && !v[i] ? n : -1;
}

static const char *const forward_classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx", "aborted" };

static size_t forward_status_index(int status)
{
	return status >= 100 && status < 600 ? (size_t)(status / 100 - 1) : 5;
}

/* The cached series of a route (NULL when the cache is full: callers look up as before). */
static struct forward_series *forward_series_for(struct forward *f, const char *route)
{
	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i].route == route || strcmp(f->routes[i].route, route) == 0)
			return &f->routes[i];
	if (f->nroutes == FORWARD_ROUTE_CACHE)
		return NULL;
	struct forward_series *fs = &f->routes[f->nroutes++];
	memset(fs, 0, sizeof(*fs));
	fs->route = route; /* a literal (struct forward_call) */
	fs->upstream = metrics_series(f->m_upstream, route);
	for (size_t i = 0; i < 6; i++)
		fs->requests[i] = metrics_series(f->m_requests, route, forward_classes[i]);
	return fs;
}

/* --- request lifetime --- */

static void forward_enter(struct forward_req *fr)
{
	fr->busy++;
}

static void forward_leave(struct forward_req *fr)
{
	if (--fr->busy == 0 && fr->finished)
		forward_req_free(fr);
}

/* The request is over for this module: metrics, the log line, out of the list; freed once no
 * callback of it is on the stack. */
static void forward_req_finish(struct forward_req *fr, int status)
{
	struct forward *f = fr->f;
	if (fr->finished)
		return;
	fr->finished = true;
	if (fr->wait) {
		credentials_wait_cancel(fr->wait);
		fr->wait = NULL;
		f->nwaiting--;
	}
	if (fr->up) {
		http_client_req_cancel(fr->up);
		fr->up = NULL;
	}
	struct forward_series *fs = forward_series_for(f, fr->call.route ? fr->call.route : "none");
	size_t cls = forward_status_index(status);
	metrics_add(fs ? fs->requests[cls]
		       : metrics_series(f->m_requests, fr->call.route ? fr->call.route : "none", forward_classes[cls]),
		    1);
	metrics_add(f->m_bytes_in, (double)fr->bytes_in);
	metrics_add(f->m_bytes_out, (double)fr->bytes_out);
	log_debug(&fr->log, "%s %s -> %d in %.3f s (%llu bytes in, %llu out)", fr->method, fr->path, status,
		  loopclock_since(&fr->t0), (unsigned long long)fr->bytes_in, (unsigned long long)fr->bytes_out);
	if (fr->prev)
		fr->prev->next = fr->next;
	else
		f->reqs = fr->next;
	if (fr->next)
		fr->next->prev = fr->prev;
	f->nreqs--;
	if (f->nreqs == 0 && f->drain_done) {
		void (*done)(void *) = f->drain_done;
		f->drain_done = NULL;
		done(f->drain_arg);
	}
	if (fr->busy == 0)
		forward_req_free(fr);
}

/* Forgets the app's request: no more callbacks from the server. Body bytes still buffered are
 * dropped and reading resumed, so the server can skip the rest of the body or close. */
static struct http_request *forward_req_detach(struct forward_req *fr)
{
	struct http_request *r = fr->r;
	if (!r)
		return NULL;
	fr->r = NULL;
	http_request_set_abort_handler(r, NULL, NULL);
	http_request_set_body_handlers(r, NULL, NULL, NULL);
	http_response_set_drain_handler(r, NULL, NULL);
	struct evbuffer *rest = http_request_body_buffer(r);
	evbuffer_drain(rest, evbuffer_get_length(rest));
	http_request_body_resume(r);
	return r;
}

/* Answers with tether's own error (Google's JSON shape) and finishes. */
static void forward_req_error(struct forward_req *fr, int status, const char *kind, const char *msg)
{
	metrics_add(metrics_series(fr->f->m_errors, kind), 1);
	struct http_request *r = forward_req_detach(fr);
	if (r)
		http_response_error(r, status, "%s", msg);
	forward_req_finish(fr, status);
}

/* The upstream response broke after its head went out: the only honest signal left is to close
 * the connection, so the app sees a truncated response rather than a complete-looking one.
 * http_server.h has no call for it; http_conn_close is the server's own (an API gap noted in
 * the forwarding issue). */
static void forward_req_cut(struct forward_req *fr)
{
	struct http_request *r = forward_req_detach(fr);
	if (r)
		http_conn_close(r->conn);
}

/* --- the app's side --- */

static void forward_on_abort(struct http_request *r, void *arg)
{
	struct forward_req *fr = arg;
	forward_enter(fr);
	fr->r = NULL; /* the server frees it when we return */
	metrics_add(metrics_series(fr->f->m_errors, "client_gone"), 1);
	log_debug(&fr->log, "%s %s: the client went away", fr->method, fr->path);
	forward_req_finish(fr, fr->resp_started ? fr->status : 0);
	forward_leave(fr);
}

static void forward_on_body(struct http_request *r, struct evbuffer *data, void *arg)
{
	struct forward_req *fr = arg;
	if (!fr->up) {
		http_request_body_pause(r); /* the upstream request is not started yet */
		return;
	}
	size_t n = evbuffer_get_length(data);
	if (n && http_client_req_body_write(fr->up, data) == 0)
		fr->bytes_in += n;
	else if (n)
		evbuffer_drain(data, n); /* body over its declared length: the client's framing is
					    checked by the parser, so this is the upstream's end */
	if (http_client_req_body_full(fr->up))
		http_request_body_pause(r);
}

static void forward_on_end(struct http_request *r, void *arg)
{
	struct forward_req *fr = arg;
	fr->body_done = true;
	if (!fr->up)
		return;
	struct evbuffer *rest = http_request_body_buffer(r);
	size_t n = evbuffer_get_length(rest);
	if (n && http_client_req_body_write(fr->up, rest) == 0)
		fr->bytes_in += n;
	http_client_req_body_end(fr->up);
}

/* Installed only while the upstream body is paused, so a response that never fills the client's
 * socket costs no drain callback (the server schedules one after every complete write). */
static void forward_on_resp_drain(struct http_request *r, void *arg)
{
	struct forward_req *fr = arg;
	http_response_set_drain_handler(r, NULL, NULL);
	if (fr->up && fr->resp_paused) {
		fr->resp_paused = false;
		http_client_req_resume_body(fr->up);
	}
}

/* --- the upstream side --- */

static void forward_up_headers(struct http_client_req *up, int status, void *arg)
{
	struct forward_req *fr = arg;
	struct forward *f = fr->f;
	forward_enter(fr);
	fr->status = status;
	struct forward_series *fs = forward_series_for(f, fr->call.route);
	metrics_observe(fs ? fs->upstream : metrics_series(f->m_upstream, fr->call.route), loopclock_since(&fr->t_up));
	if (status == 401 && fr->token)
		credentials_invalidate(core_credentials(f->core), fr->scopes, fr->token);
	struct http_request *r = fr->r;
	if (!r)
		goto out;
	const char *connection = forward_connection_listed(http_client_resp_header(up, "Connection"));
	int64_t len = -1;
	bool chunked = http_client_resp_header(up, "Transfer-Encoding") != NULL;
	size_t n = http_client_resp_header_count(up);
	for (size_t i = 0; i < n; i++) {
		const char *name, *value;
		http_client_resp_header_at(up, i, &name, &value);
		size_t nlen = strlen(name);
		if (forward_hop_by_hop(name, connection) || FORWARD_NAME_IS(name, nlen, "Alt-Svc"))
			continue;
		if (FORWARD_NAME_IS(name, nlen, "Content-Length")) {
			int64_t v = forward_content_length(value);
			if (!chunked && v >= 0)
				len = v;
			continue;
		}
		if (f->spec.rewrite_location && FORWARD_NAME_IS(name, nlen, "Location")) {
			char base[300];
			const char *host = http_request_header(r, "Host");
			char *loc = NULL;
			if (f->public_url)
				loc = forward_rewrite_location(value, f->endpoint, f->public_url);
			else if (host && strlen(host) < 256 && host[strspn(host, "abcdefghijklmnopqrstuvwxyz"
									     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]_")] ==
									 '\0') {
				snprintf(base, sizeof(base), "http://%s", host);
				loc = forward_rewrite_location(value, f->endpoint, base);
			}
			if (loc) {
				http_response_header(r, name, loc);
				free(loc);
				continue;
			}
		}
		http_response_header(r, name, value);
	}
	if (status == 204 || status == 304)
		len = 0;
	fr->resp_started = true;
	http_response_begin(r, status, len);
out:
	forward_leave(fr);
}

static void forward_up_body(struct http_client_req *up, struct evbuffer *chunk, void *arg)
{
	struct forward_req *fr = arg;
	size_t n = evbuffer_get_length(chunk);
	if (!fr->r) {
		evbuffer_drain(chunk, n);
		return;
	}
	forward_enter(fr);
	fr->bytes_out += n;
	if (http_response_write_buffer(fr->r, chunk) != 0)
		evbuffer_drain(chunk, evbuffer_get_length(chunk)); /* the client is gone: its abort follows */
	else if (fr->r && http_response_pending(fr->r) >= FORWARD_RESP_HIGH_WATER) {
		fr->resp_paused = true;
		http_response_set_drain_handler(fr->r, forward_on_resp_drain, fr);
		http_client_req_pause_body(up);
	}
	forward_leave(fr);
}

static void forward_up_drain(struct http_client_req *up, void *arg)
{
	struct forward_req *fr = arg;
	if (!fr->r)
		return;
	forward_enter(fr);
	http_request_body_resume(fr->r);
	forward_leave(fr);
}

static void forward_up_done(struct http_client_req *up, enum http_client_result res, const char *error, void *arg)
{
	struct forward_req *fr = arg;
	forward_enter(fr);
	fr->up = NULL; /* the client frees it when we return */
	if (res == HTTP_CLIENT_OK) {
		struct http_request *r = forward_req_detach(fr);
		if (r)
			http_response_end(r);
		forward_req_finish(fr, fr->status);
	} else if (fr->resp_started) {
		log_warn(&fr->log, "%s %s: upstream response cut short: %s", fr->method, fr->path, error);
		metrics_add(metrics_series(fr->f->m_errors, "upstream_cut"), 1);
		forward_req_cut(fr);
		forward_req_finish(fr, fr->status);
	} else {
		/* RETRY: unreachable, reset, timed out (retries used up or not allowed): 503, which
		 * client libraries retry; FAIL: bad URL, TLS verification...: 502. */
		int status = res == HTTP_CLIENT_RETRY ? 503 : 502;
		log_warn(&fr->log, "%s %s: %s", fr->method, fr->path, error ? error : "upstream request failed");
		forward_req_error(fr, status, res == HTTP_CLIENT_RETRY ? "upstream_unavailable" : "upstream_failed",
				  error ? error : "upstream request failed");
	}
	forward_leave(fr);
}

static const struct http_client_cbs forward_up_cbs = {
	.on_headers = forward_up_headers,
	.on_body = forward_up_body,
	.on_drain = forward_up_drain,
	.on_done = forward_up_done,
};

/* Copies the app's headers onto the upstream request: not hop-by-hop ones, not what the client
 * sets itself, the app's Authorization only under auth_header: pass. */
static void forward_copy_headers(struct forward_req *fr, struct http_client_req *up, struct http_request *r)
{
	const char *connection = forward_connection_listed(http_request_header(r, "Connection"));
	size_t n = http_request_header_count(r);
	for (size_t i = 0; i < n; i++) {
		const char *name, *value;
		http_request_header_at(r, i, &name, &value);
		if (!name || !value || forward_hop_by_hop(name, connection))
			continue;
		size_t nlen = strlen(name);
		if (FORWARD_NAME_IS(name, nlen, "Host") || FORWARD_NAME_IS(name, nlen, "Content-Length") ||
		    FORWARD_NAME_IS(name, nlen, "Expect") || FORWARD_NAME_IS(name, nlen, "X-Request-Id"))
			continue;
		if (FORWARD_NAME_IS(name, nlen, "Authorization") && fr->f->conf->auth_header != FORWARD_AUTH_PASS)
			continue;
		(void)http_client_req_header(up, name, value); /* -1: not a token / CR LF: dropped */
	}
	http_client_req_header(up, "X-Request-Id", http_request_id(r));
}

static void forward_req_start(struct forward_req *fr, const char *token)
{
	struct forward *f = fr->f;
	struct http_request *r = fr->r;
	struct http_client_req *up =
		http_client_req_create(core_http_client(f->core), f->spec.name, fr->method, fr->url);
	if (!up) {
		forward_req_error(fr, 502, "upstream_failed", "cannot build the upstream request");
		return;
	}
	forward_copy_headers(fr, up, r);
	if (token) {
		size_t tlen = strlen(token);
		char small[512], *auth = tlen + 8 <= sizeof(small) ? small : malloc(tlen + 8);
		if (!auth) {
			http_client_req_cancel(up);
			forward_req_error(fr, 500, "internal", "out of memory");
			return;
		}
		memcpy(auth, "Bearer ", 7);
		memcpy(auth + 7, token, tlen + 1);
		http_client_req_header(up, "Authorization", auth);
		explicit_bzero(auth, tlen + 7);
		if (auth != small)
			free(auth);
		/* to invalidate it after a 401; never logged (out of memory: no invalidation) */
		fr->token = forward_req_buf_set(&fr->token_buf, &fr->token_cap, token, tlen);
	}
	if (fr->has_body)
		http_client_req_body_stream(up, http_request_content_length(r));
	http_client_req_idempotent(up, fr->call.idempotent);
	if (f->conf->timeout > 0)
		http_client_req_timeout(up, f->conf->timeout);
	http_client_req_callbacks(up, &forward_up_cbs, fr);
	if (http_client_req_start(up) != 0) {
		forward_req_error(fr, 502, "upstream_failed", "cannot start the upstream request");
		return;
	}
	fr->up = up;
	loopclock_now(&fr->t_up);
	if (fr->has_body) {
		if (fr->body_done)
			forward_on_end(r, fr); /* the whole body arrived while the token was awaited */
		else
			http_request_body_resume(r); /* hands over what waited, then streams */
	}
}

static void forward_on_token(void *arg, const char *token, const char *error)
{
	struct forward_req *fr = arg;
	forward_enter(fr);
	fr->wait = NULL;
	fr->f->nwaiting--;
	if (!token) {
		metrics_add(fr->f->m_token_failures, 1);
		log_warn(&fr->log, "%s %s: no access token: %s", fr->method, fr->path, error);
		forward_req_error(fr, 503, "no_token", error ? error : "no access token");
	} else if (fr->r) {
		forward_req_start(fr, token);
	}
	forward_leave(fr);
}

/* A path with "." or ".." segments would be squashed by the URL parser into another resource
 * than the one the route was chosen for. */
static bool forward_path_ok(const char *path)
{
	if (path[0] != '/')
		return false;
	for (const char *p = path; p; p = strchr(p + 1, '/')) {
		const char *seg = p + 1;
		size_t len = strcspn(seg, "/");
		if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
	}
	return true;
}

/* snprintf(dst, size, "%s", src) without the cost of a printf on every request. */
static void forward_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void forward_on_request(struct http_request *r, void *arg)
{
	struct forward *f = arg;
	const struct forward_conf *conf = f->conf;
	struct forward_req *fr = forward_req_new(f);
	if (!fr) {
		http_response_error(r, 500, "out of memory");
		return;
	}
	fr->f = f;
	fr->r = r;
	fr->log = (struct log_src){ f->spec.name, http_request_conn_id(r) };
	loopclock_now(&fr->t0);
	forward_copy(fr->method, sizeof(fr->method), http_request_method(r));
	forward_copy(fr->path, sizeof(fr->path), http_request_path(r));
	fr->next = f->reqs;
	if (f->reqs)
		f->reqs->prev = fr;
	f->reqs = fr;
	f->nreqs++;
	forward_enter(fr);

	char err[256] = "";
	int status = f->spec.classify(f->spec.arg, r, &fr->call, err, sizeof(err));
	if (status) {
		forward_req_error(fr, status, status == 404 ? "not_found" : "rejected", err[0] ? err : "not forwarded");
		goto out;
	}
	if (!forward_path_ok(http_request_path(r))) {
		forward_req_error(fr, 400, "rejected", "the path has \".\" or \"..\" segments");
		goto out;
	}
	const char *app_auth = http_request_header(r, "Authorization");
	if (app_auth && conf->auth_header == FORWARD_AUTH_REJECT) {
		forward_req_error(fr, 400, "rejected",
				  "tether holds the credentials for this API: send no Authorization header "
				  "(auth_header: reject)");
		goto out;
	}
	const char *q = http_request_query(r), *path = http_request_path(r);
	size_t elen = strlen(f->endpoint), plen = strlen(path), qlen = strlen(q);
	char *u = forward_req_buf_fit(&fr->url, &fr->url_cap, elen + plen + qlen + 2);
	if (u) {
		memcpy(u, f->endpoint, elen), u += elen;
		memcpy(u, path, plen), u += plen;
		if (qlen)
			*u++ = '?', memcpy(u, q, qlen), u += qlen;
		*u = '\0';
	}
	if (!u || !forward_req_buf_set(&fr->scopes, &fr->scopes_cap, f->scopes, strlen(f->scopes))) {
		forward_req_error(fr, 500, "internal", "out of memory");
		goto out;
	}
	fr->has_body = http_request_content_length(r) != 0;
	http_request_set_abort_handler(r, forward_on_abort, fr);
	http_request_set_body_handlers(r, forward_on_body, forward_on_end, fr);

	bool inject = conf->token && !(app_auth && conf->auth_header == FORWARD_AUTH_PASS);
	if (!inject) {
		forward_req_start(fr, NULL);
		goto out;
	}
	struct credentials *cr = core_credentials(f->core);
	/* While requests already wait, the token is being fetched: join them without asking
	 * credentials_token_now, which would ask for another fetch after this one (it marks the
	 * cache for a fetch even while one is running). */
	const char *tok = f->nwaiting ? NULL : credentials_token_now(cr, fr->scopes);
	if (tok) {
		forward_req_start(fr, tok);
		goto out;
	}
	metrics_add(f->m_token_waits, 1);
	fr->wait = credentials_get_token(cr, fr->scopes, forward_on_token, fr);
	if (fr->wait)
		f->nwaiting++;
	else
		forward_req_error(fr, 503, "no_token", "cannot wait for an access token (out of memory)");
out:
	forward_leave(fr);
}

/* --- the instance --- */

static char *forward_trim(const char *url)
{
	if (!url)
		return NULL;
	size_t n = strlen(url);
	while (n && url[n - 1] == '/')
		n--;
	return strndup(url, n);
}

void forward_set_conf(struct forward *f, const struct forward_conf *conf)
{
	size_t len = 1;
	for (size_t i = 0; i < conf->scopes.n; i++)
		len += strlen(conf->scopes.items[i]) + 1;
	char *scopes = calloc(1, len), *endpoint = forward_trim(conf->endpoint);
	char *pub = forward_trim(conf->public_url);
	if (!scopes || !endpoint || (conf->public_url && !pub)) {
		log_error(&f->log, "out of memory applying the configuration; keeping the previous one");
		free(scopes);
		free(endpoint);
		free(pub);
		return;
	}
	for (size_t i = 0; i < conf->scopes.n; i++) {
		if (i)
			strcat(scopes, " ");
		strcat(scopes, conf->scopes.items[i]);
	}
	free(f->scopes);
	free(f->endpoint);
	free(f->public_url);
	f->scopes = scopes;
	f->endpoint = endpoint;
	f->public_url = pub;
	f->conf = conf;
}

struct forward *forward_create(struct core *core, const struct forward_spec *spec, const struct forward_conf *conf)
{
	struct forward *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->core = core;
	f->spec = *spec;
	f->log = (struct log_src){ spec->name, 0 };
	forward_set_conf(f, conf);
	if (!f->conf) {
		free(f);
		return NULL;
	}
	struct metrics *m = core_metrics(core);
	char name[96], help[160];
#define FORWARD_METRIC(kind, var, suffix, what, labels)                                                 \
	snprintf(name, sizeof(name), "%s_%s", spec->name, suffix);                                     \
	snprintf(help, sizeof(help), what " (%s forwarding).", spec->name);                            \
	var = metrics_##kind(m, name, help, labels)
	FORWARD_METRIC(counter, f->m_requests, "requests_total", "Forwarded requests answered, by route and status class",
		       "route,code");
	FORWARD_METRIC(counter, f->m_errors, "errors_total", "Requests tether answered itself or cut, by kind", "kind");
	snprintf(name, sizeof(name), "%s_upstream_seconds", spec->name);
	snprintf(help, sizeof(help), "Time from starting the upstream request to its response head, retries included (%s).",
		 spec->name);
	f->m_upstream = metrics_histogram(m, name, help, "route", NULL, 0);
	struct metric *c;
	FORWARD_METRIC(counter, c, "bytes_in_total", "Request body bytes sent upstream", NULL);
	f->m_bytes_in = metrics_series(c);
	FORWARD_METRIC(counter, c, "bytes_out_total", "Response body bytes relayed to apps", NULL);
	f->m_bytes_out = metrics_series(c);
	FORWARD_METRIC(counter, c, "token_waits_total", "Requests that waited for an access token", NULL);
	f->m_token_waits = metrics_series(c);
	FORWARD_METRIC(counter, c, "token_failures_total", "Requests answered 503 for want of an access token", NULL);
	f->m_token_failures = metrics_series(c);
#undef FORWARD_METRIC
	return f;
}

int forward_mount(struct forward *f, const char *prefix, const char *route_name)
{
	struct http_server *http = core_http(f->core);
	if (!http) {
		log_error(&f->log, "forwarding needs the http section (http.listen)");
		return -1;
	}
	char **n = realloc(f->prefixes, (f->nprefixes + 1) * sizeof(*n));
	if (!n)
		return -1;
	f->prefixes = n;
	if (!(n[f->nprefixes] = strdup(prefix)))
		return -1;
	struct http_route route = {
		.prefix = n[f->nprefixes],
		.name = route_name,
		.max_body = f->conf->max_body ? (size_t)f->conf->max_body : SIZE_MAX,
		.on_request = forward_on_request,
		.arg = f,
	};
	f->nprefixes++;
	if (http_server_mount(http, &route) != 0) {
		log_error(&f->log, "cannot mount %s", prefix);
		return -1;
	}
	return 0;
}

void forward_drain(struct forward *f, void (*done)(void *arg), void *arg)
{
	if (f->nreqs == 0) {
		done(arg);
		return;
	}
	f->drain_done = done;
	f->drain_arg = arg;
}

bool forward_ready(struct forward *f, char *reason, size_t len)
{
	if (!f->conf->token)
		return true;
	return credentials_ready(core_credentials(f->core), reason, len);
}

size_t forward_active(const struct forward *f)
{
	return f->nreqs;
}

void forward_destroy(struct forward *f)
{
	if (!f)
		return;
	f->drain_done = NULL;
	while (f->reqs) {
		struct forward_req *fr = f->reqs;
		fr->no_spare = true; /* (freed, not kept: now, or once no callback of it is on the stack) */
		forward_req_detach(fr); /* the server closes the connection itself later */
		forward_req_finish(fr, 0);
	}
	while (f->spare) {
		struct forward_req *fr = f->spare;
		f->spare = fr->next;
		forward_req_release(fr);
	}
	struct http_server *http = core_http(f->core);
	for (size_t i = 0; i < f->nprefixes; i++) {
		if (http)
			http_server_unmount(http, f->prefixes[i]);
		free(f->prefixes[i]);
	}
	free(f->prefixes);
	free(f->scopes);
	free(f->endpoint);
	free(f->public_url);
	free(f);
}
