/* Upstream HTTP client core: one libcurl multi handle driven by the libevent loop (curl's
 * hiperfifo pattern), the life of a request across attempts, the retry decision and metrics.
 * The request API and libcurl's per-transfer callbacks are in http_client_req.c. */
#include "http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "deadline.h"
#include "http_client_h1.h"
#include "http_client_internal.h"
#include "http_retry.h"
#include "log.h"
#include "metrics.h"

#include "version.h"

const struct log_src http_client_log = { "upstream", 0 };

static const double http_client_duration_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
						       1,     2.5,  5,     10,   30,  60,   300 };

int64_t http_client_now_ms(void)
{
	return deadline_now_ms(); /* the clock of the h1 connections' deadlines too */
}

static double http_client_rand01(void)
{
	return (double)arc4random() / 4294967296.0;
}

const char *http_client_result_name(enum http_client_result r)
{
	switch (r) {
	case HTTP_CLIENT_OK:
		return "OK";
	case HTTP_CLIENT_RETRY:
		return "RETRY";
	default:
		return "FAIL";
	}
}

/* --- the multi handle on the loop --- */

static void http_client_check_done(struct http_client *c);

static void http_client_socket_action(struct http_client *c, curl_socket_t fd, int flags)
{
	int running = 0;
	c->depth++;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	c->depth--;
	http_client_check_done(c);
}

static void http_client_on_socket(evutil_socket_t fd, short what, void *arg)
{
	int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	http_client_socket_action(arg, fd, flags);
}

static void http_client_on_timer(evutil_socket_t fd, short what, void *arg)
{
	http_client_socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void http_client_sock_free(struct http_client *c, struct http_client_sock *si)
{
	if (si->prev)
		si->prev->next = si->next;
	else
		c->socks = si->next;
	if (si->next)
		si->next->prev = si->prev;
	event_free(si->ev);
	free(si);
}

/* CURLMOPT_SOCKETFUNCTION: one persistent event per socket curl wants watched. */
static int http_client_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct http_client_sock *si = socketp;
	if (what == CURL_POLL_REMOVE) {
		/* May come after curl closed the fd: libevent's epoll backend ignores EBADF on delete.
		 * curl forgets socketp itself once it said REMOVE. */
		if (si)
			http_client_sock_free(c, si);
		return 0;
	}
	short kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) | EV_PERSIST);
	if (!si) {
		si = calloc(1, sizeof(*si));
		if (!si)
			return -1;
		si->ev = event_new(c->base, s, kind, http_client_on_socket, c);
		if (!si->ev) {
			free(si);
			return -1;
		}
		si->next = c->socks;
		if (c->socks)
			c->socks->prev = si;
		c->socks = si;
		curl_multi_assign(c->multi, s, si);
	} else if (si->what != kind) {
		event_del(si->ev);
		event_assign(si->ev, c->base, s, kind, http_client_on_socket, c);
	} else {
		return 0;
	}
	si->what = kind;
	if (kind & (EV_READ | EV_WRITE))
		event_add(si->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer; curl is never re-entered from here (0 = a zero timer). */
static int http_client_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct http_client *c = userp;
	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	evtimer_add(c->timer, &tv);
	return 0;
}

/* --- metrics --- */

static const char *http_client_error_kind(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return "dns";
	case CURLE_COULDNT_CONNECT:
		return "connect";
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return "tls";
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SEND_FAIL_REWIND:
		return "reset";
	case CURLE_WRITE_ERROR:
	case CURLE_READ_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		return "aborted";
	default:
		return "other";
	}
}

/* Failures where the same request may well succeed a moment later. */
static bool http_client_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SEND_FAIL_REWIND: /* a reused connection died and the body could not be resent */
		return true;
	default:
		return false;
	}
}

/* "2xx" .. "5xx" for a status, "none" without one: labels stay few and carry no URL. */
static const char *http_client_status_class(int status)
{
	static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	return status >= 100 && status <= 599 ? classes[status / 100 - 1] : "none";
}

static const char *http_client_result_label(enum http_client_result r)
{
	return r == HTTP_CLIENT_OK ? "ok" : r == HTTP_CLIENT_RETRY ? "retry" : "fail";
}

struct http_client_series *http_client_series_for(struct http_client *c, const char *upstream)
{
	if (!c->metrics)
		return NULL;
	for (size_t i = 0; i < c->nseries; i++)
		if (strcmp(c->series[i].upstream, upstream) == 0)
			return &c->series[i];
	if (c->nseries == HTTP_CLIENT_SERIES_CACHE || strlen(upstream) >= sizeof(c->series[0].upstream))
		return NULL;
	struct http_client_series *s = &c->series[c->nseries];
	memset(s, 0, sizeof(*s));
	strcpy(s->upstream, upstream);
	s->inflight = metrics_series(c->m_inflight, upstream);
	s->duration = metrics_series(c->m_duration, upstream);
	if (!s->inflight || !s->duration)
		return NULL;
	c->nseries++;
	return s;
}

/* --- request lifetime --- */

static bool http_client_state_active(enum http_client_req_state s)
{
	return s == HTTP_CLIENT_REQ_WAITING || s == HTTP_CLIENT_REQ_RUNNING || s == HTTP_CLIENT_REQ_HELD;
}

void http_client_req_set_state(struct http_client_req *r, enum http_client_req_state to)
{
	struct http_client *c = r->c;
	if (r->state == to)
		return;
	if (r->state == HTTP_CLIENT_REQ_RUNNING && r->native) {
		http_client_h1_detach(r);
	} else if (r->state == HTTP_CLIENT_REQ_RUNNING) {
		c->depth++;
		curl_multi_remove_handle(c->multi, r->easy);
		c->depth--;
	}
	bool was = http_client_state_active(r->state), is = http_client_state_active(to);
	if (was != is) {
		if (is)
			c->active++;
		else
			c->active--;
		if (r->m_inflight)
			metrics_add(r->m_inflight, is ? 1 : -1);
	}
	r->state = to;
}

static void http_client_req_release(struct http_client_req *r);
static void http_client_req_run(struct http_client_req *r);

void http_client_req_free(struct http_client_req *r)
{
	struct http_client *c = r->c;
	http_client_startq_remove(r);
	http_client_req_set_state(r, HTTP_CLIENT_REQ_DONE);
	if (r->prev)
		r->prev->next = r->next;
	else
		c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	curl_slist_free_all(r->headers); /* (curl's copy: the list holds its own strings) */
	r->headers = NULL;
	if (r->hdrs)
		explicit_bzero(r->hdrs, r->hdrs_len); /* an Authorization token, likely */
	r->hdrs_len = 0;
	r->method = r->url = r->log_target = NULL; /* (in r->strs, kept) */
	if (!c->destroying && c->nspare < http_client_spare_keep() && r->ev && r->body_in && r->replay && r->chunk) {
		/* Kept whole for the next request (http_client_req_create): the easy handle keeps its
		 * options, curl's caches and connection pool stay in the multi handle. */
		if (r->ev_armed)
			event_del(r->ev);
		r->ev_armed = false;
		if (r->easy)
			curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL); /* the list is freed above */
		evbuffer_drain(r->body_in, evbuffer_get_length(r->body_in));
		evbuffer_drain(r->replay, evbuffer_get_length(r->replay));
		evbuffer_drain(r->chunk, evbuffer_get_length(r->chunk));
		r->next = c->spare;
		c->spare = r;
		c->nspare++;
		return;
	}
	http_client_req_release(r);
}

/* Frees a request struct and what it owns (off every list already). */
static void http_client_req_release(struct http_client_req *r)
{
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->ev)
		event_free(r->ev);
	free(r->rh);
	free(r->strs);
	free(r->hbuf);
	free(r->hdrs);
	if (r->body_in)
		evbuffer_free(r->body_in);
	if (r->replay)
		evbuffer_free(r->replay);
	if (r->chunk)
		evbuffer_free(r->chunk);
	free(r);
}

void http_client_req_defer(struct http_client_req *r)
{
	if (r->state != HTTP_CLIENT_REQ_NEW && r->state != HTTP_CLIENT_REQ_DONE) {
		r->ev_armed = true;
		event_active(r->ev, EV_TIMEOUT, 0);
	}
}

static void http_client_req_arm(struct http_client_req *r, int64_t delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };
	r->ev_armed = true;
	evtimer_add(r->ev, &tv);
}

void http_client_startq_add(struct http_client_req *r)
{
	struct http_client *c = r->c;
	if (r->sq_pprev)
		return;
	if (!c->sq_head)
		event_active(c->start_ev, EV_TIMEOUT, 0);
	r->sq_next = NULL;
	r->sq_pprev = c->sq_tail;
	*c->sq_tail = r;
	c->sq_tail = &r->sq_next;
}

void http_client_startq_remove(struct http_client_req *r)
{
	struct http_client *c = r->c;
	if (!r->sq_pprev)
		return;
	*r->sq_pprev = r->sq_next;
	if (r->sq_next)
		r->sq_next->sq_pprev = r->sq_pprev;
	else
		c->sq_tail = r->sq_pprev;
	r->sq_next = NULL;
	r->sq_pprev = NULL;
}

/* The start queue's turn: each request waiting there runs as its own event would have. A request
 * queued by a callback of this pass goes on the queue again and is started in this pass too. */
static void http_client_on_start(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	while (c->sq_head) {
		struct http_client_req *r = c->sq_head;
		http_client_startq_remove(r);
		http_client_req_run(r);
	}
}

static void http_client_reset_response(struct http_client_req *r)
{
	r->nrh = 0;
	r->hlen = 0;
	r->status = 0;
	r->head_done = false;
}

int64_t http_client_retry_delay(struct http_client_req *r, int64_t retry_after_ms)
{
	const struct http_retry_policy *p = &r->c->policy;
	if (!r->idempotent || !r->replayable || r->delivered || r->c->destroying)
		return -1;
	if (p->max_attempts > 0 && r->attempts >= p->max_attempts)
		return -1;
	if (retry_after_ms > p->retry_after_max_ms)
		return -1;
	int64_t delay = http_retry_backoff(p, r->attempts, retry_after_ms, http_client_rand01());
	int64_t at = http_client_now_ms() + delay;
	if (at > r->t_first + p->window_ms)
		return -1;
	if (r->timeout_ms > 0 && at >= r->t_first + r->timeout_ms)
		return -1;
	return delay;
}

static void http_client_finish(struct http_client_req *r, enum http_client_result res, const char *error)
{
	struct http_client *c = r->c;
	http_client_req_set_state(r, HTTP_CLIENT_REQ_DONE);
	if (c->metrics && r->attempts > 0) {
		int status = r->delivered ? r->status : 0;
		int cls = status >= 100 && status <= 599 ? status / 100 : 0;
		struct metric_series **req = r->ms ? &r->ms->requests[res == HTTP_CLIENT_OK ? 0 : res == HTTP_CLIENT_RETRY ? 1 : 2][cls]
						   : NULL;
		if (req && !*req)
			*req = metrics_series(c->m_requests, r->upstream, http_client_result_label(res),
					      http_client_status_class(status));
		metrics_add(req ? *req
				: metrics_series(c->m_requests, r->upstream, http_client_result_label(res),
						 http_client_status_class(status)),
			    1);
		metrics_observe(r->ms ? r->ms->duration : metrics_series(c->m_duration, r->upstream),
				(double)(http_client_now_ms() - r->t_first) / 1000.0);
	}
	if (res == HTTP_CLIENT_OK)
		log_debug(&http_client_log, "%s %s (%s) -> %d in %.3f s, %d attempt(s)", r->method, r->log_target,
			  r->upstream, r->status, (double)(http_client_now_ms() - r->t_first) / 1000.0, r->attempts);
	else
		log_debug(&http_client_log, "%s %s (%s): %s: %s", r->method, r->log_target, r->upstream,
			  http_client_result_name(res), error);
	if (r->cbs.on_done && !r->cancelled) {
		c->depth++;
		r->cbs.on_done(r, res, res == HTTP_CLIENT_OK ? NULL : error, r->arg);
		c->depth--;
	}
	http_client_req_free(r);
}

static void http_client_attempt_start(struct http_client_req *r)
{
	struct http_client *c = r->c;
	int64_t now = http_client_now_ms();
	if (r->attempts == 0)
		r->t_first = now;
	long timeout = 0;
	if (r->timeout_ms > 0) {
		int64_t left = r->t_first + r->timeout_ms - now;
		if (left <= 0) {
			http_client_finish(r, HTTP_CLIENT_RETRY, "deadline exceeded before the request could start");
			return;
		}
		timeout = (long)left;
	}
	if (!r->native)
		curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout);
	http_client_reset_response(r);
	r->discard = false;
	r->discarded = 0;
	r->retry_delay_ms = -1;
	r->curl_recv_paused = r->curl_send_paused = false;
	r->unpause_pending = r->drain_pending = r->deliver_pending = false;
	r->errbuf[0] = '\0';
	/* The bytes a failed attempt sent go out again first, then whatever the caller queued. */
	if (evbuffer_get_length(r->replay))
		evbuffer_prepend_buffer(r->body_in, r->replay);
	r->sent = 0;
	r->attempts++;
	r->t_attempt = now;
	if (r->native) {
		/* Like FRESH_CONNECT below (http_client_req_setup): no pooled connection for a request
		 * that must not run twice, since a dead one would make it go out again. */
		r->h1_fresh = !r->idempotent && !r->has_body;
		http_client_req_set_state(r, HTTP_CLIENT_REQ_RUNNING);
		if (http_client_h1_start(r, timeout) != 0)
			http_client_finish(r, HTTP_CLIENT_FAIL, "could not start the transfer");
		return;
	}
	c->depth++;
	CURLMcode mc = curl_multi_add_handle(c->multi, r->easy);
	c->depth--;
	if (mc != CURLM_OK) {
		http_client_finish(r, HTTP_CLIENT_FAIL, "could not start the transfer");
		return;
	}
	http_client_req_set_state(r, HTTP_CLIENT_REQ_RUNNING);
}

/* The sentence on_done gets for a failed request: curl's error text (names host and port at
 * most, never headers or bodies), the upstream label and the attempts made. */
static void http_client_fail_message(struct http_client_req *r, CURLcode rc, char *msg, size_t size)
{
	const char *why = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
	if (r->body_short)
		snprintf(msg, size, "upstream %s: request body ended after %llu of %lld bytes", r->upstream,
			 (unsigned long long)r->sent, (long long)r->content_length);
	else if (rc == CURLE_OPERATION_TIMEDOUT && r->timeout_ms > 0 &&
		 http_client_now_ms() >= r->t_first + r->timeout_ms - 5)
		snprintf(msg, size, "upstream %s: deadline of %lld ms exceeded after %d attempt(s): %s", r->upstream,
			 (long long)r->timeout_ms, r->attempts, why);
	else if (r->delivered)
		snprintf(msg, size, "upstream %s: response cut short: %s", r->upstream, why);
	else
		snprintf(msg, size, "upstream %s: %s (%d attempt(s))", r->upstream, why, r->attempts);
}

/* One attempt ended (curl said DONE): retry, hold for a paused consumer, or report. */
void http_client_attempt_done(struct http_client_req *r, CURLcode rc)
{
	struct http_client *c = r->c;
	http_client_req_set_state(r, HTTP_CLIENT_REQ_WAITING);
	if (r->cancelled) {
		http_client_req_free(r);
		return;
	}
	if (rc == CURLE_OK && !r->head_done) {
		/* The connection closed inside the response head: curl calls that a (bodiless)
		 * response, but nothing usable arrived, so it is a dropped connection. */
		rc = CURLE_RECV_ERROR;
		snprintf(r->errbuf, sizeof(r->errbuf), "connection closed before the response head was complete");
	}
	bool transport_error = rc != CURLE_OK && !r->discard && !r->body_short;
	if (c->metrics && transport_error)
		metrics_add(metrics_series(c->m_errors, r->upstream, http_client_error_kind(rc)), 1);
	int64_t delay = -1;
	if (r->discard)
		delay = r->retry_delay_ms;
	else if (transport_error && !r->delivered && http_client_transient(rc))
		delay = http_client_retry_delay(r, -1);
	if (delay >= 0) {
		const char *reason = r->discard ? http_client_status_class(r->status) : http_client_error_kind(rc);
		log_debug(&http_client_log, "%s %s (%s): attempt %d got %s %d, retrying in %lld ms", r->method,
			  r->log_target, r->upstream, r->attempts, r->discard ? "status" : "error",
			  r->discard ? r->status : (int)rc, (long long)delay);
		if (c->metrics)
			metrics_add(metrics_series(c->m_retries, r->upstream, reason), 1);
		r->start_at = http_client_now_ms() + delay;
		http_client_req_arm(r, delay);
		return;
	}
	if (rc == CURLE_OK && r->delivered) {
		if (r->user_paused) {
			/* The consumer has not taken everything yet: on_done waits for its resume. */
			http_client_req_set_state(r, HTTP_CLIENT_REQ_HELD);
			return;
		}
		http_client_finish(r, HTTP_CLIENT_OK, NULL);
		return;
	}
	char msg[CURL_ERROR_SIZE + 200];
	http_client_fail_message(r, rc, msg, sizeof(msg));
	bool transient = http_client_transient(rc) && !r->body_short;
	http_client_finish(r, transient ? HTTP_CLIENT_RETRY : HTTP_CLIENT_FAIL, msg);
}

static void http_client_check_done(struct http_client *c)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURLcode rc = m->data.result;
		struct http_client_req *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r && r->state == HTTP_CLIENT_REQ_RUNNING)
			http_client_attempt_done(r, rc);
	}
}

/* Resumes what curl has paused once there is a reason: the consumer resumed, or body bytes
 * (or the body's end) arrived. Runs from the loop, never inside curl. */
static void http_client_req_unpause(struct http_client_req *r)
{
	struct http_client *c = r->c;
	r->unpause_pending = false;
	bool recv = r->curl_recv_paused && r->user_paused;
	bool send = r->curl_send_paused && evbuffer_get_length(r->body_in) == 0 && !r->body_ended;
	if (recv == r->curl_recv_paused && send == r->curl_send_paused)
		return;
	r->curl_recv_paused = recv;
	r->curl_send_paused = send;
	if (r->native) {
		http_client_h1_unpause(r);
		return;
	}
	c->depth++;
	curl_easy_pause(r->easy, (recv ? CURLPAUSE_RECV : 0) | (send ? CURLPAUSE_SEND : 0));
	c->depth--;
}

/* Deferred work for one request: its start or retry, drain notices, unpausing, delivering
 * held bytes, freeing after a cancel. */
void http_client_req_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct http_client_req *r = arg;
	r->ev_armed = false;
	http_client_req_run(r);
}

static void http_client_req_run(struct http_client_req *r)
{
	struct http_client *c = r->c;
	if (r->cancelled) {
		http_client_req_free(r);
		return;
	}
	switch (r->state) {
	case HTTP_CLIENT_REQ_WAITING: {
		int64_t wait = r->start_at ? r->start_at - http_client_now_ms() : 0; /* 0: start now */
		if (wait > 0)
			http_client_req_arm(r, wait);
		else
			http_client_attempt_start(r);
		return;
	}
	case HTTP_CLIENT_REQ_HELD:
		if (r->user_paused)
			return;
		http_client_req_deliver(r);
		if (r->cancelled) {
			http_client_req_free(r);
			return;
		}
		if (!r->user_paused)
			http_client_finish(r, HTTP_CLIENT_OK, NULL);
		return;
	case HTTP_CLIENT_REQ_RUNNING:
		break;
	default:
		return;
	}
	if (r->drain_pending && !r->body_ended && r->cbs.on_drain) {
		r->drain_pending = false;
		r->want_drain = false;
		c->depth++;
		r->cbs.on_drain(r, r->arg);
		c->depth--;
		if (r->cancelled) {
			http_client_req_free(r);
			return;
		}
	}
	http_client_req_unpause(r);
	if (r->cancelled) {
		http_client_req_free(r);
		return;
	}
	if (r->deliver_pending && !r->user_paused && r->state == HTTP_CLIENT_REQ_RUNNING) {
		http_client_req_deliver(r);
		if (r->cancelled) {
			http_client_req_free(r);
			return;
		}
	}
	/* Unpausing may have finished the transfer inside curl. */
	http_client_check_done(c);
}

/* --- the client --- */

struct http_client *http_client_create(struct event_base *base, struct metrics *metrics,
				       const struct http_client_opts *opts)
{
	struct http_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(c);
		log_error(&http_client_log, "cannot initialise libcurl");
		return NULL;
	}
	c->base = base;
	c->metrics = metrics;
	if (opts)
		c->opts = *opts;
	struct http_client_opts *o = &c->opts;
	if (o->connect_timeout_ms <= 0)
		o->connect_timeout_ms = 10000;
	if (!o->replay_max)
		o->replay_max = 1 << 20;
	if (!o->body_high_water)
		o->body_high_water = 256 * 1024;
	c->policy.initial_ms = o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 1000;
	c->policy.max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 60000;
	c->policy.window_ms = o->retry_window_ms > 0 ? o->retry_window_ms : 60000;
	c->policy.max_attempts = o->max_attempts > 0 ? o->max_attempts : 10;
	c->policy.retry_after_max_ms = o->retry_after_max_ms > 0 ? o->retry_after_max_ms : 60000;
	c->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	c->user_agent = strdup(o->user_agent ? o->user_agent : "tether/" TETHER_VERSION);
	o->ca_file = o->user_agent = NULL; /* the copies above are what the client uses */
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, http_client_on_timer, c);
	c->start_ev = event_new(base, -1, 0, http_client_on_start, c);
	c->sq_tail = &c->sq_head;
	if (!c->multi || !c->timer || !c->start_ev || !c->user_agent || (opts && opts->ca_file && !c->ca_file))
		goto fail;
	/* libcurl reads the proxy variables for every transfer; the environment does not change
	 * under a running daemon, so when none is set curl is told "no proxy" once. */
	static const char *const proxy_env[] = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
						 "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY" };
	c->no_proxy_env = true;
	for (size_t i = 0; i < sizeof(proxy_env) / sizeof(*proxy_env); i++)
		if (getenv(proxy_env[i]))
			c->no_proxy_env = false;
	/* The own HTTP/1.1 transport knows no proxies: with one configured, curl takes everything. */
	c->native_http1 = !o->curl_only && c->no_proxy_env;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, http_client_sock_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, http_client_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	if (o->max_host_connections > 0)
		curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, o->max_host_connections);
	if (metrics) {
		c->m_requests = metrics_counter(metrics, "upstream_requests_total",
						"Upstream HTTP requests by outcome (ok, retry, fail) and final status class.",
						"upstream,result,code");
		c->m_retries = metrics_counter(metrics, "upstream_retries_total",
					       "Upstream HTTP attempts retried, by what the failed attempt got.",
					       "upstream,reason");
		c->m_errors = metrics_counter(metrics, "upstream_errors_total",
					      "Upstream HTTP transport failures by kind, per attempt.", "upstream,kind");
		c->m_inflight = metrics_gauge(metrics, "upstream_requests_in_flight",
					      "Upstream HTTP requests started and not finished.", "upstream");
		c->m_duration = metrics_histogram(metrics, "upstream_request_duration_seconds",
						  "Duration of upstream HTTP requests, retries and bodies included.",
						  "upstream", http_client_duration_buckets,
						  sizeof(http_client_duration_buckets) / sizeof(double));
		if (!c->m_requests || !c->m_retries || !c->m_errors || !c->m_inflight || !c->m_duration)
			c->metrics = NULL;
	}
	return c;
fail:
	log_error(&http_client_log, "cannot create the upstream HTTP client (out of memory)");
	http_client_destroy(c);
	return NULL;
}

void http_client_destroy(struct http_client *c)
{
	if (!c)
		return;
	if (c->depth > 0) {
		/* The contract forbids it: the caller's stack is inside a request about to be freed. */
		log_error(&http_client_log, "http_client_destroy called from inside a callback");
		abort();
	}
	c->destroying = true;
	while (c->reqs) {
		struct http_client_req *r = c->reqs;
		if (http_client_state_active(r->state) && !r->cancelled)
			http_client_finish(r, HTTP_CLIENT_FAIL, "upstream HTTP client shut down");
		else
			http_client_req_free(r);
	}
	/* Cached connections are closed by curl_multi_cleanup; drop our events for their sockets
	 * first and silence the callbacks, so nothing of ours outlives the client. */
	while (c->socks)
		http_client_sock_free(c, c->socks);
	http_client_h1_destroy(c);
	while (c->spare) {
		struct http_client_req *r = c->spare;
		c->spare = r->next;
		c->nspare--;
		http_client_req_release(r);
	}
	if (c->multi) {
		curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, NULL);
		curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, NULL);
		curl_multi_cleanup(c->multi);
	}
	if (c->timer)
		event_free(c->timer);
	if (c->start_ev)
		event_free(c->start_ev);
	free(c->ca_file);
	free(c->user_agent);
	free(c);
	curl_global_cleanup();
}

size_t http_client_active(const struct http_client *c)
{
	return c->active;
}
