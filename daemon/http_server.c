/* The HTTP/1.1 server: accepts connections, parses requests with libhttp-parser on bufferevents,
 * routes them by prefix, streams bodies to handlers with back-pressure, keeps connections alive
 * and pipelined requests in order, and enforces the size and time limits. */
#include "http_internal.h"
#include "sockio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define HTTP_OUT_LOW_WATER (64 * 1024)

/* --- server --- */

static void http_server_defaults(struct http_server_limits *l)
{
	if (!l->max_header_size)
		l->max_header_size = 64 * 1024;
	if (!l->max_body)
		l->max_body = 1024 * 1024;
	if (!l->idle_timeout_ms)
		l->idle_timeout_ms = 60000;
	if (!l->header_timeout_ms)
		l->header_timeout_ms = 10000;
	if (!l->max_connections)
		l->max_connections = 10000;
	if (!l->body_high_water)
		l->body_high_water = 256 * 1024;
}

static void http_server_reap(evutil_socket_t fd, short what, void *arg);

struct http_server *http_server_create(struct event_base *base, struct metrics *metrics, const char *name,
				       const struct http_server_limits *limits)
{
	struct http_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->base = base;
	s->metrics = metrics;
	s->name = strdup(name);
	s->log = (struct log_src){ s->name, 0 };
	http_server_set_limits(s, limits);
	if (getrandom(s->rng, sizeof(s->rng), 0) != sizeof(s->rng)) {
		s->rng[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)s;
		s->rng[1] = 0x9e3779b97f4a7c15ULL;
	}
	s->rng[0] |= 1;
	http_parser_set_max_header_size(1u << 30); /* our own limit (max_header_size) applies */
	s->reap_ev = event_new(base, -1, 0, http_server_reap, s);
	s->m_requests = metrics_counter(metrics, "http_requests_total", "HTTP requests answered.",
					"server,route,method,code");
	s->m_duration = metrics_histogram(metrics, "http_request_duration_seconds",
					  "Time from a request's first byte to the end of its response.", "server,route",
					  NULL, 0);
	s->m_conns = metrics_series(metrics_gauge(metrics, "http_connections", "Open HTTP connections.", "server"),
				    name);
	s->m_conns_total = metrics_series(
		metrics_counter(metrics, "http_connections_total", "Accepted HTTP connections.", "server"), name);
	struct metric *errs = metrics_counter(metrics, "http_request_errors_total",
					      "Requests refused by the server itself, by kind.", "server,kind");
	s->m_err_bad_request = metrics_series(errs, name, "bad_request");
	s->m_err_header = metrics_series(errs, name, "header_too_large");
	s->m_err_body = metrics_series(errs, name, "body_too_large");
	s->m_err_timeout = metrics_series(errs, name, "timeout");
	s->m_err_conns = metrics_series(errs, name, "too_many_connections");
	s->notfound.r.name = "none";
	s->notfound.duration = metrics_series(s->m_duration, name, "none");
	return s;
}

void http_server_set_limits(struct http_server *s, const struct http_server_limits *limits)
{
	if (limits)
		s->lim = *limits;
	http_server_defaults(&s->lim);
}

int http_server_mount(struct http_server *s, const struct http_route *route)
{
	struct http_route_entry *n = realloc(s->routes, (s->nroutes + 1) * sizeof(*n));
	if (!n)
		return -1;
	s->routes = n;
	struct http_route_entry e = { .r = *route, .prefix_len = strlen(route->prefix) };
	if (!e.r.name)
		e.r.name = e.r.prefix;
	e.duration = metrics_series(s->m_duration, s->name, e.r.name);
	/* keep longest prefixes first so the first match wins */
	size_t i = 0;
	while (i < s->nroutes && s->routes[i].prefix_len >= e.prefix_len)
		i++;
	memmove(&s->routes[i + 1], &s->routes[i], (s->nroutes - i) * sizeof(*n));
	s->routes[i] = e;
	s->nroutes++;
	return 0;
}

void http_server_unmount(struct http_server *s, const char *prefix)
{
	for (size_t i = 0; i < s->nroutes; i++) {
		if (strcmp(s->routes[i].r.prefix, prefix) == 0) {
			memmove(&s->routes[i], &s->routes[i + 1], (s->nroutes - i - 1) * sizeof(s->routes[0]));
			s->nroutes--;
			return;
		}
	}
}

struct http_route_entry *http_server_route(struct http_server *s, const char *path)
{
	for (size_t i = 0; i < s->nroutes; i++) {
		struct http_route_entry *e = &s->routes[i];
		if (e->r.exact ? strcmp(path, e->r.prefix) == 0 : strncmp(path, e->r.prefix, e->prefix_len) == 0)
			return e;
	}
	return NULL;
}

size_t http_server_connections(const struct http_server *s)
{
	return s->nconns;
}

static void http_server_check_drained(struct http_server *s)
{
	if (s->draining && s->nconns == 0 && s->drain_done && s->drain_ev)
		event_active(s->drain_ev, 0, 0);
}

static void http_server_on_drained(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;
	void (*done)(void *) = s->drain_done;
	s->drain_done = NULL;
	if (done)
		done(s->drain_arg);
}

/* --- connections --- */

void http_conn_arm_timer(struct http_conn *c, int64_t ms)
{
	deadline_set(&c->timer, ms);
}

static void http_conn_unlink(struct http_conn *c)
{
	struct http_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	s->nconns--;
	metrics_set(s->m_conns, (double)s->nconns);
}

/* Closes now: the request (if unanswered) is aborted; memory is freed after the callback. */
void http_conn_close(struct http_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	c->state = HTTP_CONN_CLOSING;
	struct http_request *r = c->req;
	if (r && !r->resp_ended && r->on_abort) {
		http_event_fn fn = r->on_abort;
		r->on_abort = NULL;
		fn(r, r->abort_arg);
	}
	if (c->rev) {
		event_free(c->rev); /* before the bufferevent closes the socket */
		c->rev = NULL;
	}
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	deadline_stop(&c->timer);
	event_del(c->resume_ev);
	event_del(c->drain_ev);
	http_conn_unlink(c);
	struct http_server *s = c->srv;
	c->next = s->dead;
	s->dead = c;
	event_active(s->reap_ev, 0, 0);
	http_server_check_drained(s);
}

static void http_conn_free(struct http_conn *c)
{
	if (c->req)
		http_request_free(c->req);
	if (c->spare)
		http_request_free(c->spare);
	deadline_fini(&c->timer);
	event_free(c->resume_ev);
	event_free(c->drain_ev);
	free(c);
}

static void http_server_reap(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;
	while (s->dead) {
		struct http_conn *c = s->dead;
		s->dead = c->next;
		http_conn_free(c);
	}
}

void http_conn_flush(struct http_conn *c)
{
	if (c->dead || c->in_cb)
		return;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	bool wrote = false;
	if (evbuffer_get_length(out) > 0 && !(bufferevent_get_enabled(c->bev) & EV_WRITE)) {
		/* A socket bufferevent freezes its output's start so only it drains it; its write
		 * event is off here, so nothing else is writing. */
		evbuffer_unfreeze(out, 1);
		int n = sockio_send_evbuffer(out, bufferevent_getfd(c->bev));
		evbuffer_freeze(out, 1);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			http_conn_close(c);
			return;
		}
		wrote = n > 0;
		if (evbuffer_get_length(out) > 0) {
			bufferevent_enable(c->bev, EV_WRITE); /* the rest goes when the socket drains */
			return;
		}
	}
	if (evbuffer_get_length(out) == 0 && c->state == HTTP_CONN_CLOSING) {
		http_conn_close(c);
		return;
	}
	/* The socket took everything: a streaming response may produce more, on the next turn
	 * of the loop so other connections get theirs. */
	struct http_request *r = c->req;
	if (wrote && r && r->resp_started && !r->resp_ended && r->on_drain &&
	    !(bufferevent_get_enabled(c->bev) & EV_WRITE))
		event_active(c->drain_ev, 0, 0);
}

static void http_conn_on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	struct http_request *r = c->req;
	if (c->dead || !r || !r->resp_started || r->resp_ended || !r->on_drain)
		return;
	c->in_cb++;
	r->on_drain(r, r->drain_arg);
	c->in_cb--;
	http_conn_flush(c);
}

void http_conn_close_after_flush(struct http_conn *c)
{
	if (c->dead)
		return;
	c->keep_alive = false;
	c->state = HTTP_CONN_CLOSING;
	http_conn_reading(c, false);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		http_conn_close(c);
		return;
	}
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	http_conn_arm_timer(c, c->srv->lim.idle_timeout_ms);
	http_conn_flush(c);
}

/* Answers with an error the server produces itself, then closes the connection. */
static void http_conn_fail(struct http_conn *c, int status, struct metric_series *m, const char *msg)
{
	metrics_add(m, 1);
	struct http_request *r = c->req;
	if (!r || r->resp_started) {
		http_conn_close(c);
		return;
	}
	c->keep_alive = false;
	http_response_error(r, status, "%s", msg);
}

static void http_conn_process(struct http_conn *c);
static void http_conn_on_event(struct bufferevent *bev, short what, void *arg);
static void http_conn_on_drain(evutil_socket_t fd, short what, void *arg);

static void http_conn_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	if (c->dead)
		return;
	c->in_cb++;
	http_conn_process(c);
	c->in_cb--;
	http_conn_flush(c);
}

/* Feeds buffered input to the parser until it is empty or a request must wait. */
static void http_conn_process(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (!c->dead && !c->parse_blocked && !c->read_blocked && c->state != HTTP_CONN_CLOSING) {
		size_t len = evbuffer_get_length(in);
		if (len == 0)
			break;
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (c->state == HTTP_CONN_IDLE) {
			c->state = HTTP_CONN_HEAD;
			c->head_bytes = 0;
			http_conn_arm_timer(c, c->srv->lim.header_timeout_ms);
		}
		size_t n = http_conn_parse(c, v.iov_base, v.iov_len);
		if (c->dead)
			return;
		evbuffer_drain(in, n);
		if (c->state == HTTP_CONN_CLOSING)
			return; /* answered with an error; the rest is not read */
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			continue;
		}
		if (e != HPE_OK) {
			if (!c->req) {
				/* garbage before a request: make one to carry the error */
				c->req = c->spare ? c->spare : calloc(1, sizeof(struct http_request));
				c->spare = NULL;
				if (!c->req) {
					http_conn_close(c);
					return;
				}
				http_request_reset(c->req);
				c->req->conn = c;
				snprintf(c->req->method, sizeof(c->req->method), "?");
			}
			if (c->head_overflow || e == HPE_HEADER_OVERFLOW) {
				http_conn_fail(c, 431, c->srv->m_err_header,
					       "request line and headers are larger than http.max_header_size");
			} else {
				char msg[160];
				snprintf(msg, sizeof(msg), "malformed request: %s", http_errno_description(e));
				http_conn_fail(c, 400, c->srv->m_err_bad_request, msg);
			}
			return;
		}
		if (n < v.iov_len && !c->parse_blocked && !c->read_blocked) {
			http_conn_close(c); /* parser stopped without saying why */
			return;
		}
	}
}

static void http_conn_on_read(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	if (c->state == HTTP_CONN_ACTIVE && !c->req->body_done)
		http_conn_arm_timer(c, c->srv->lim.idle_timeout_ms); /* a body that stalls */
	c->in_cb++;
	http_conn_process(c);
	c->in_cb--;
	http_conn_flush(c);
}

/* The socket is read here, not by the bufferevent (which keeps the output side): libevent's
 * evbuffer_read asks FIONREAD before every read, one system call per request for nothing. */
static void http_conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (evbuffer_get_length(in) == 0) {
		/* The common case: parsed where it was read, the server's buffer, lent to the input
		 * buffer by reference (a 64 KiB chain malloc'ed and freed per request otherwise,
		 * with glibc consolidating its free lists each time). What the parser leaves (a
		 * pipelined request, a paused body) is copied before anyone else reads. */
		char *buf = c->srv->rbuf;
		ssize_t n = recv(fd, buf, HTTP_READ_SIZE, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			http_conn_on_event(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
			return;
		}
		if (evbuffer_add_reference(in, buf, (size_t)n, NULL, NULL) != 0) {
			http_conn_close(c);
			return;
		}
		http_conn_on_read(c->bev, c);
		if (c->dead)
			return;
		size_t left = evbuffer_get_length(in);
		if (left) {
			evbuffer_drain(in, left);
			if (evbuffer_add(in, buf + (size_t)n - left, left) != 0)
				http_conn_close(c);
		}
		return;
	}
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(in, HTTP_READ_SIZE, &v, 1) < 1) {
		http_conn_close(c);
		return;
	}
	ssize_t n = recv(fd, v.iov_base, v.iov_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		http_conn_on_event(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
		return;
	}
	v.iov_len = (size_t)n;
	evbuffer_commit_space(in, &v, 1);
	http_conn_on_read(c->bev, c);
}

void http_conn_reading(struct http_conn *c, bool on)
{
	if (!c->rev || on == c->reading)
		return;
	c->reading = on;
	if (on)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
}

static void http_conn_on_write(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	if (c->state == HTTP_CONN_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			http_conn_close(c);
		return;
	}
	struct http_request *r = c->req;
	if (r && r->resp_started && !r->resp_ended && r->on_drain) {
		c->in_cb++;
		r->on_drain(r, r->drain_arg);
		c->in_cb--;
		if (c->dead)
			return;
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE); /* back to writing directly */
	http_conn_flush(c);
}

static void http_conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;
	if (what & BEV_EVENT_EOF) {
		struct http_request *r = c->req;
		/* A client that half-closes after a complete request still gets its answer. */
		if (r && r->body_done && !r->resp_ended && c->state == HTTP_CONN_ACTIVE) {
			c->keep_alive = false;
			http_conn_reading(c, false);
			return;
		}
	}
	http_conn_close(c);
}

static void http_conn_on_timer_state(struct http_conn *c);

static void http_conn_on_timer(void *arg)
{
	struct http_conn *c = arg;
	c->in_cb++;
	http_conn_on_timer_state(c);
	c->in_cb--;
	http_conn_flush(c);
}

static void http_conn_on_timer_state(struct http_conn *c)
{
	switch (c->state) {
	case HTTP_CONN_IDLE:
		http_conn_close(c); /* idle keep-alive connection: close quietly */
		break;
	case HTTP_CONN_HEAD:
		if (!c->req) {
			c->req = c->spare ? c->spare : calloc(1, sizeof(struct http_request));
			c->spare = NULL;
			if (!c->req) {
				http_conn_close(c);
				return;
			}
			http_request_reset(c->req);
			c->req->conn = c;
			snprintf(c->req->method, sizeof(c->req->method), "?");
		}
		http_conn_fail(c, 408, c->srv->m_err_timeout, "request head not received within http.header_timeout");
		break;
	case HTTP_CONN_ACTIVE:
		metrics_add(c->srv->m_err_timeout, 1);
		log_debug(&c->log, "request body stalled; closing");
		http_conn_close(c);
		break;
	case HTTP_CONN_CLOSING:
		http_conn_close(c);
		break;
	}
}

void http_server_accept(evutil_socket_t fd, const struct sockaddr *sa, int salen, void *arg)
{
	struct http_server *s = arg;
	struct http_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->srv = s;
	c->id = ++s->next_conn_id;
	c->log = (struct log_src){ s->name, c->id };
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		char h[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &in->sin_addr, h, sizeof(h));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", h, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		char h[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &in6->sin6_addr, h, sizeof(h));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", h, ntohs(in6->sin6_port));
	} else {
		snprintf(c->peer, sizeof(c->peer), "unix");
	}
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, http_conn_on_readable, c);
	int tm = deadline_init(&c->timer, s->base, http_conn_on_timer, c);
	c->resume_ev = event_new(s->base, -1, 0, http_conn_on_resume, c);
	c->drain_ev = event_new(s->base, -1, 0, http_conn_on_drain, c);
	if (!c->bev || !c->rev || tm != 0 || !c->resume_ev || !c->drain_ev) {
		if (c->rev)
			event_free(c->rev);
		if (c->bev)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		deadline_fini(&c->timer);
		if (c->resume_ev)
			event_free(c->resume_ev);
		if (c->drain_ev)
			event_free(c->drain_ev);
		free(c);
		return;
	}
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->state = HTTP_CONN_IDLE;
	c->keep_alive = true;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	metrics_set(s->m_conns, (double)s->nconns);
	metrics_add(s->m_conns_total, 1);
	bufferevent_setcb(c->bev, http_conn_on_read, http_conn_on_write, http_conn_on_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, HTTP_OUT_LOW_WATER, 0);
	/* EV_WRITE (on by default) only while output waits on a full socket; reading is ours, so the
	 * input's end, which a socket bufferevent keeps frozen outside its own reads, is thawed */
	bufferevent_disable(c->bev, EV_WRITE | EV_READ);
	evbuffer_unfreeze(bufferevent_get_input(c->bev), 0);
	http_conn_reading(c, true);
	http_conn_arm_timer(c, s->lim.header_timeout_ms);
	if (s->nconns > s->lim.max_connections || s->draining) {
		/* over the limit: answer 503 from a throwaway request and close */
		c->state = HTTP_CONN_ACTIVE;
		c->req = calloc(1, sizeof(struct http_request));
		if (!c->req) {
			http_conn_close(c);
			return;
		}
		http_request_reset(c->req);
		c->req->conn = c;
		snprintf(c->req->method, sizeof(c->req->method), "?");
		c->keep_alive = false;
		http_conn_reading(c, false);
		if (!s->draining)
			metrics_add(s->m_err_conns, 1);
		http_response_error(c->req, 503, "%s", s->draining ? "shutting down" : "too many connections");
		http_conn_flush(c);
	}
}

/* A response ended: account for it, then serve the next request or close. */
void http_conn_response_done(struct http_conn *c)
{
	struct http_request *r = c->req;
	if (!r->recorded) {
		r->recorded = true;
		http_server_record(c->srv, r);
	}
	if (!r->body_done) {
		/* The handler answered before reading the whole body: skip a short rest, else close. */
		if (r->content_length < 0 || r->content_length - (int64_t)r->body_received > 64 * 1024 ||
		    !c->keep_alive) {
			http_conn_close_after_flush(c);
			return;
		}
		r->on_body = NULL;
		r->on_end = NULL;
		r->on_abort = NULL;
		return; /* message_complete finishes it */
	}
	c->req = NULL;
	if (c->spare)
		http_request_free(r);
	else {
		http_request_reset(r);
		c->spare = r;
	}
	if (!c->keep_alive || c->srv->draining) {
		http_conn_close_after_flush(c);
		return;
	}
	c->state = HTTP_CONN_IDLE;
	c->parse_blocked = false;
	http_conn_arm_timer(c, c->srv->lim.idle_timeout_ms);
	/* A pipelined request waits in the input: parsed on the next turn (the socket's own
	 * event does it when nothing waits). */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		event_active(c->resume_ev, 0, 0);
}

void http_server_drain(struct http_server *s, void (*done)(void *arg), void *arg)
{
	s->draining = true;
	s->drain_done = done;
	s->drain_arg = arg;
	if (!s->drain_ev)
		s->drain_ev = event_new(s->base, -1, 0, http_server_on_drained, s);
	for (struct http_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (c->state == HTTP_CONN_IDLE)
			http_conn_close(c);
		else
			c->keep_alive = false;
	}
	if (s->nconns == 0)
		event_active(s->drain_ev, 0, 0);
}

void http_server_destroy(struct http_server *s)
{
	if (!s)
		return;
	while (s->conns)
		http_conn_close(s->conns);
	http_server_reap(-1, 0, s);
	event_free(s->reap_ev);
	if (s->drain_ev)
		event_free(s->drain_ev);
	free(s->routes);
	free(s->name);
	free(s);
}
