/* The upstream client's own HTTP/1.1 transport for plain http:// upstreams (emulators, local
 * gateways, the fakes): keep-alive connections pooled per host on the event loop, the request
 * written with one send(), the response parsed by libhttp-parser and handed to the same request
 * code as curl's callbacks, so bodies, back-pressure, retries and errors behave alike. It
 * exists because libcurl spends ~90k instructions and 8 syscalls on each small request; here it
 * is a few thousand and 2. https:// (HTTP/2 by ALPN, TLS) always goes through libcurl. */
#include "http_client_h1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <http_parser.h>

#include "http_client_internal.h"
#include "sockio.h"

static void h1_close(struct http_client_h1_conn *k);
static void h1_connect(struct http_client_h1_conn *k);
static void h1_send(struct http_client_h1_conn *k);

/* --- the pool --- */

static struct http_client_h1 *h1_pool(struct http_client *c)
{
	if (!c->h1) {
		c->h1 = calloc(1, sizeof(*c->h1));
		if (c->h1)
			c->h1->c = c;
	}
	return c->h1;
}

static struct http_client_h1_host *h1_host_for(struct http_client_h1 *pool, struct http_client_req *r)
{
	const char *host = r->url + r->h1_host;
	for (struct http_client_h1_host *h = pool->hosts; h; h = h->next)
		if (h->port == r->h1_port && h->hostlen == r->h1_hostlen && memcmp(h->key, host, h->hostlen) == 0)
			return h;
	char key[80];
	int n = snprintf(key, sizeof(key), "%.*s:%u", (int)r->h1_hostlen, host, r->h1_port);
	if (n < 0 || (size_t)n >= sizeof(key))
		return NULL;
	struct http_client_h1_host *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	memcpy(h->key, key, (size_t)n + 1);
	h->hostlen = r->h1_hostlen;
	h->port = r->h1_port;
	if (r->h1_port == 80)
		snprintf(h->hdr, sizeof(h->hdr), "%.*s", (int)r->h1_hostlen, r->url + r->h1_host);
	else
		memcpy(h->hdr, key, (size_t)n + 1);
	char name[64];
	snprintf(name, sizeof(name), "%.*s", (int)r->h1_hostlen, r->url + r->h1_host);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addr[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addr[0];
	if (name[0] == '[') {
		name[strlen(name) - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(r->h1_port);
		inet_pton(AF_INET6, name + 1, &s6->sin6_addr);
		h->addrlen[0] = sizeof(*s6);
		h->naddr = 1;
	} else if (strcasecmp(name, "localhost") == 0) {
		/* libcurl answers localhost itself too: IPv4 loopback first, then IPv6. */
		s4->sin_family = AF_INET;
		s4->sin_port = htons(r->h1_port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		h->addrlen[0] = sizeof(*s4);
		s6 = (struct sockaddr_in6 *)&h->addr[1];
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(r->h1_port);
		s6->sin6_addr = in6addr_loopback;
		h->addrlen[1] = sizeof(*s6);
		h->naddr = 2;
	} else {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(r->h1_port);
		inet_pton(AF_INET, name, &s4->sin_addr);
		h->addrlen[0] = sizeof(*s4);
		h->naddr = 1;
	}
	h->next = pool->hosts;
	pool->hosts = h;
	return h;
}

static void h1_on_event(evutil_socket_t fd, short what, void *arg);
static void h1_on_timer(void *arg);
static void h1_on_defer(evutil_socket_t fd, short what, void *arg);

static struct http_client_h1_conn *h1_conn_new(struct http_client_h1 *pool, struct http_client_h1_host *host)
{
	struct http_client_h1_conn *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->pool = pool;
	k->host = host;
	k->fd = -1;
	int tm = deadline_init(&k->timer, pool->c->base, h1_on_timer, k);
	k->defer = event_new(pool->c->base, -1, 0, h1_on_defer, k);
	k->out = evbuffer_new();
	if (tm != 0 || !k->defer || !k->out) {
		deadline_fini(&k->timer);
		if (k->defer)
			event_free(k->defer);
		if (k->out)
			evbuffer_free(k->out);
		free(k);
		return NULL;
	}
	return k;
}

static void h1_list_add(struct http_client_h1_conn *k)
{
	struct http_client_h1 *pool = k->pool;
	k->prev = NULL;
	k->next = pool->conns;
	if (pool->conns)
		pool->conns->prev = k;
	pool->conns = k;
}

static void h1_idle_remove(struct http_client_h1_conn *k)
{
	for (struct http_client_h1_conn **pp = &k->host->idle; *pp; pp = &(*pp)->idle_next)
		if (*pp == k) {
			*pp = k->idle_next;
			k->pool->nidle--;
			return;
		}
}

/* Which events the socket needs: reading unless the consumer paused (an idle connection reads
 * to notice the server closing it), writing while connecting or while output waits. */
static void h1_events(struct http_client_h1_conn *k)
{
	if (k->fd < 0)
		return;
	short want = 0;
	if (k->state == H1_CONNECTING)
		want = EV_WRITE;
	else if (k->state == H1_IDLE || !k->r || !k->r->curl_recv_paused)
		want = EV_READ;
	if (k->state == H1_BUSY && evbuffer_get_length(k->out))
		want |= EV_WRITE;
	if (want == k->evflags)
		return;
	if (k->evflags)
		event_del(k->ev);
	k->evflags = want;
	if (want) {
		event_assign(k->ev, k->pool->c->base, k->fd, want | EV_PERSIST, h1_on_event, k);
		event_add(k->ev, NULL);
	}
}

static void h1_arm_timer(struct http_client_h1_conn *k)
{
	int64_t at = k->deadline;
	if (k->state == H1_CONNECTING && k->connect_deadline && (!at || k->connect_deadline < at))
		at = k->connect_deadline;
	if (k->state == H1_IDLE)
		deadline_set(&k->timer, H1_IDLE_MS);
	else if (!at)
		deadline_clear(&k->timer);
	else
		deadline_set_at(&k->timer, at);
}

static void h1_free(struct http_client_h1_conn *k)
{
	deadline_fini(&k->timer);
	event_free(k->defer);
	if (k->ev)
		event_free(k->ev);
	evbuffer_free(k->out);
	free(k->hbuf);
	free(k);
}

/* A slot of the host came free: the first queued request gets an idle connection or a new one. */
static void h1_dequeue(struct http_client_h1_host *h)
{
	while (h->queue) {
		struct http_client_h1_conn *q = h->queue;
		long max = q->pool->c->opts.max_host_connections;
		if (!h->idle && max > 0 && h->nconns >= (size_t)max)
			return;
		h->queue = q->next;
		if (!h->queue)
			h->queue_tail = NULL;
		q->next = NULL;
		struct http_client_req *r = q->r;
		if (h->idle && !r->h1_fresh) {
			struct http_client_h1_conn *k = h->idle;
			h1_idle_remove(k);
			k->r = r;
			k->deadline = q->deadline;
			k->t_start = q->t_start;
			r->h1 = k;
			q->r = NULL;
			h1_free(q);
			k->state = H1_BUSY;
			h1_send(k);
			continue;
		}
		if (max > 0 && h->nconns >= (size_t)max) {
			/* an idle one exists but this request wants a fresh connection: make room */
			struct http_client_h1_conn *k = h->idle;
			h1_idle_remove(k);
			k->state = H1_BUSY; /* (any state off the idle list) */
			h1_close(k);
		}
		h1_list_add(q);
		h->nconns++;
		h1_connect(q);
	}
}

/* Closes the socket and frees the connection (at the end of its own callback if inside it). */
static void h1_close(struct http_client_h1_conn *k)
{
	if (k->dead)
		return;
	struct http_client_h1_host *h = k->host;
	if (k->r) {
		k->r->h1 = NULL;
		k->r = NULL;
	}
	if (k->state == H1_QUEUED) {
		for (struct http_client_h1_conn **pp = &h->queue, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next)
			if (*pp == k) {
				*pp = k->next;
				if (h->queue_tail == k)
					h->queue_tail = prev;
				break;
			}
	} else {
		if (k->state == H1_IDLE)
			h1_idle_remove(k);
		if (k->prev)
			k->prev->next = k->next;
		else
			k->pool->conns = k->next;
		if (k->next)
			k->next->prev = k->prev;
		h->nconns--;
	}
	if (k->ev && k->evflags)
		event_del(k->ev);
	k->evflags = 0;
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	deadline_stop(&k->timer);
	event_del(k->defer);
	k->dead = true;
	if (!k->in_cb)
		h1_free(k);
	if (h->queue && !k->pool->c->destroying)
		h1_dequeue(h);
}

/* --- ending an attempt --- */

/* Records the attempt's first error (curl's code and wording); h1_settle reports it. */
void http_client_h1_fail(struct http_client_h1_conn *k, CURLcode rc, const char *msg)
{
	if (k->pending)
		return;
	k->pending = rc;
	if (k->r)
		snprintf(k->r->errbuf, sizeof(k->r->errbuf), "%s", msg);
}

/* The attempt is over: the connection goes back to the pool (a clean end) or is closed, then
 * the request hears of it. Nothing of k is touched after that. */
static void h1_complete(struct http_client_h1_conn *k, CURLcode rc)
{
	struct http_client_req *r = k->r;
	struct http_client *c = k->pool->c;
	bool keep = rc == CURLE_OK && !k->no_reuse && !k->stop_send &&
		    (k->fast ? k->fast_keep : http_should_keep_alive(&k->parser)) &&
		    evbuffer_get_length(k->out) == 0 && k->pool->nidle < H1_IDLE_MAX && !c->destroying;
	k->r = NULL;
	if (r)
		r->h1 = NULL;
	if (keep) {
		k->state = H1_IDLE;
		k->reused = true;
		k->deadline = 0;
		k->idle_next = k->host->idle;
		k->host->idle = k;
		k->pool->nidle++;
		h1_events(k);
		h1_arm_timer(k);
		if (k->host->queue)
			h1_dequeue(k->host);
	} else {
		h1_close(k);
	}
	if (r)
		http_client_attempt_done(r, rc); /* (from the loop, as curl's check_done) */
}

/* A reused connection that died before any answer (the server closed it as we sent): like
 * libcurl, send the request once more on a new connection when the body can be rewound. true
 * when that was done (k is gone then). Outside k's callbacks only. */
static bool h1_resend(struct http_client_h1_conn *k)
{
	struct http_client_req *r = k->r;
	if (!r || !k->reused || k->got || r->h1_fresh || r->cancelled ||
	    (k->pending != CURLE_SEND_ERROR && k->pending != CURLE_RECV_ERROR && k->pending != CURLE_GOT_NOTHING))
		return false;
	if (http_client_req_seek_cb(r, 0, SEEK_SET) != CURL_SEEKFUNC_OK) {
		k->pending = CURLE_SEND_FAIL_REWIND;
		snprintf(r->errbuf, sizeof(r->errbuf), "necessary data rewind wasn't possible");
		return false;
	}
	int64_t deadline = k->deadline;
	h1_close(k); /* detaches r */
	r->h1_fresh = true;
	r->errbuf[0] = '\0';
	r->curl_send_paused = false;
	int64_t left = deadline ? deadline - http_client_now_ms() : 0;
	if (http_client_h1_start(r, deadline ? (left > 0 ? left : 1) : 0) != 0)
		http_client_attempt_done(r, CURLE_OUT_OF_MEMORY);
	return true;
}

/* --- writing the request --- */

/* Moves request body bytes from the request (through its read callback, which keeps the replay
 * copy and pauses) to the connection's output, up to H1_OUT_HIGH queued. */
static void h1_pull(struct http_client_h1_conn *k)
{
	struct http_client_req *r = k->r;
	while (r && !k->send_done && !k->stop_send && !k->pending && !r->curl_send_paused &&
	       evbuffer_get_length(k->out) < H1_OUT_HIGH) {
		if (!r->has_body) {
			k->send_done = true;
			break;
		}
		/* A chunk's size goes before its bytes: it is what is queued now, up to the limit. */
		size_t avail = evbuffer_get_length(r->body_in), want = avail < H1_OUT_HIGH ? avail : H1_OUT_HIGH;
		if (k->chunked && want) {
			char hex[20];
			int m = snprintf(hex, sizeof(hex), "%zx\r\n", want);
			evbuffer_add(k->out, hex, (size_t)m);
		}
		size_t got = http_client_req_read_into(r, k->out, want ? want : H1_OUT_HIGH);
		if (got == CURL_READFUNC_PAUSE)
			break;
		if (got == CURL_READFUNC_ABORT) {
			http_client_h1_fail(k, CURLE_ABORTED_BY_CALLBACK, "Operation was aborted by an application callback");
			break;
		}
		if (got == 0) {
			if (k->chunked)
				evbuffer_add(k->out, "0\r\n\r\n", 5);
			k->send_done = true;
			break;
		}
		if (k->chunked)
			evbuffer_add(k->out, "\r\n", 2);
	}
}

/* Writes what is queued (send(): no SIGPIPE); then pulls more of the body while it drains. */
static void h1_flush(struct http_client_h1_conn *k)
{
	for (;;) {
		h1_pull(k);
		size_t left = evbuffer_get_length(k->out);
		if (left == 0 || k->pending)
			break;
		int n = sockio_send_evbuffer(k->out, k->fd);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			char msg[96];
			snprintf(msg, sizeof(msg), "Send failure: %s", strerror(errno));
			http_client_h1_fail(k, CURLE_SEND_ERROR, msg);
			break;
		}
		if ((size_t)n < left)
			break; /* the kernel buffer is full */
	}
	h1_events(k);
}

/* A request on a connected socket: the head (and a small body) go out at once. */
static void h1_send(struct http_client_h1_conn *k)
{
	k->send_done = k->stop_send = k->msg_done = k->no_reuse = k->head_seen = false;
	k->got = 0;
	http_client_h1_msg_reset(k);
	h1_arm_timer(k);
	if (http_client_h1_msg_head(k) != 0)
		http_client_h1_fail(k, CURLE_OUT_OF_MEMORY, "out of memory");
	else
		h1_flush(k);
	if (k->pending)
		event_active(k->defer, EV_TIMEOUT, 0);
}

static void h1_connect(struct http_client_h1_conn *k)
{
	struct http_client_h1_host *h = k->host;
	k->state = H1_CONNECTING;
	if (!k->connect_deadline)
		k->connect_deadline = http_client_now_ms() + k->pool->c->opts.connect_timeout_ms;
	h1_arm_timer(k);
	int err = k->connect_errno;
	while (k->addr_i < h->naddr) {
		const struct sockaddr *sa = (const struct sockaddr *)&h->addr[k->addr_i];
		int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
		if (fd < 0)
			break;
		int one = 1, idle = 60;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof(idle));
		if (connect(fd, sa, h->addrlen[k->addr_i]) == 0 || errno == EINPROGRESS) {
			k->fd = fd;
			if (!k->ev)
				k->ev = event_new(k->pool->c->base, fd, EV_WRITE | EV_PERSIST, h1_on_event, k);
			if (!k->ev) {
				http_client_h1_fail(k, CURLE_OUT_OF_MEMORY, "out of memory");
				break;
			}
			k->evflags = 0;
			h1_events(k);
			return;
		}
		err = errno;
		close(fd);
		k->addr_i++;
	}
	char msg[200];
	snprintf(msg, sizeof(msg), "Failed to connect to %s after %lld ms: %s", h->key,
		 (long long)(http_client_now_ms() - k->t_start), strerror(err ? err : ECONNREFUSED));
	http_client_h1_fail(k, CURLE_COULDNT_CONNECT, msg);
	event_active(k->defer, EV_TIMEOUT, 0);
}

/* The non-blocking connect finished: on to the request, or the next address. */
static void h1_connected(struct http_client_h1_conn *k)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		k->connect_errno = err;
		event_del(k->ev);
		k->evflags = 0;
		close(k->fd);
		k->fd = -1;
		k->addr_i++;
		h1_connect(k);
		return;
	}
	k->state = H1_BUSY;
	h1_send(k);
}

static void h1_read(struct http_client_h1_conn *k)
{
	char *buf = k->pool->rbuf;
	ssize_t n = recv(k->fd, buf, HTTP_CLIENT_H1_READ_SIZE, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (k->state == H1_IDLE) {
		h1_close(k); /* the server closed it (or talks out of turn) */
		return;
	}
	if (n < 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "Recv failure: %s", strerror(errno));
		http_client_h1_fail(k, CURLE_RECV_ERROR, msg);
		return;
	}
	if (n > 0) {
		k->got += (uint64_t)n;
		k->head_seen = true;
	}
	http_client_h1_msg_parse(k, buf, (size_t)n);
	if (!k->dead && k->r && !k->msg_done && n == 0 && !k->pending)
		http_client_h1_fail(k, CURLE_RECV_ERROR, "connection closed");
}

/* After any progress: report an error, or the end once the response and request are through. */
static void h1_settle(struct http_client_h1_conn *k)
{
	if (k->dead || !k->r)
		return;
	if (k->pending) {
		if (!h1_resend(k))
			h1_complete(k, k->pending);
		return;
	}
	if (k->msg_done && (k->stop_send || (k->send_done && evbuffer_get_length(k->out) == 0))) {
		h1_complete(k, CURLE_OK);
		return;
	}
	if (k->r->user_paused && !k->msg_done)
		k->r->curl_recv_paused = true; /* stop reading until the consumer resumes */
	h1_events(k);
}

static void h1_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct http_client_h1_conn *k = arg;
	struct http_client *c = k->pool->c;
	k->in_cb = true;
	c->depth++;
	if (k->state == H1_CONNECTING) {
		if (what & EV_WRITE)
			h1_connected(k);
	} else {
		if ((what & EV_WRITE) && !k->dead && k->state == H1_BUSY)
			h1_flush(k);
		if ((what & EV_READ) && !k->dead)
			h1_read(k);
	}
	c->depth--;
	k->in_cb = false;
	if (k->dead)
		h1_free(k);
	else
		h1_settle(k);
}

static void h1_on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct http_client_h1_conn *k = arg;
	if (k->state == H1_BUSY && !k->pending) {
		k->in_cb = true;
		k->pool->c->depth++;
		h1_flush(k);
		k->pool->c->depth--;
		k->in_cb = false;
		if (k->dead) {
			h1_free(k);
			return;
		}
	}
	h1_settle(k);
}

static void h1_on_timer(void *arg)
{
	struct http_client_h1_conn *k = arg;
	if (k->state == H1_IDLE) {
		h1_close(k);
		return;
	}
	int64_t now = http_client_now_ms();
	char msg[160];
	if (k->state == H1_CONNECTING && k->connect_deadline && now >= k->connect_deadline &&
	    (!k->deadline || k->connect_deadline <= k->deadline)) {
		snprintf(msg, sizeof(msg), "Connection timed out after %lld milliseconds", (long long)(now - k->t_start));
	} else if (k->deadline && now >= k->deadline) {
		snprintf(msg, sizeof(msg), "Operation timed out after %lld milliseconds with %llu bytes received",
			 (long long)(now - k->t_start), (unsigned long long)k->got);
	} else {
		h1_arm_timer(k);
		return;
	}
	http_client_h1_fail(k, CURLE_OPERATION_TIMEDOUT, msg);
	h1_settle(k);
}

/* --- the transport's entry points --- */

int http_client_h1_start(struct http_client_req *r, int64_t timeout_ms)
{
	struct http_client *c = r->c;
	struct http_client_h1 *pool = h1_pool(c);
	struct http_client_h1_host *h = pool ? h1_host_for(pool, r) : NULL;
	struct http_client_h1_conn *k = NULL;
	int64_t now = http_client_now_ms();
	if (h && h->idle && !r->h1_fresh) {
		k = h->idle;
		h1_idle_remove(k);
		k->state = H1_BUSY;
	} else if (h) {
		k = h1_conn_new(pool, h);
	}
	if (!k)
		return -1;
	k->r = r;
	r->h1 = k;
	k->t_start = now;
	k->deadline = timeout_ms > 0 ? now + timeout_ms : 0;
	k->pending = CURLE_OK;
	if (k->state == H1_BUSY) {
		h1_send(k);
		return 0;
	}
	long max = c->opts.max_host_connections;
	if (max > 0 && h->nconns >= (size_t)max && !(h->idle && r->h1_fresh)) {
		k->state = H1_QUEUED;
		if (h->queue_tail)
			h->queue_tail->next = k;
		else
			h->queue = k;
		h->queue_tail = k;
		h1_arm_timer(k);
		return 0;
	}
	if (max > 0 && h->nconns >= (size_t)max) {
		struct http_client_h1_conn *old = h->idle;
		h1_idle_remove(old);
		old->state = H1_BUSY;
		h1_close(old);
	}
	h1_list_add(k);
	h->nconns++;
	h1_connect(k);
	return 0;
}

void http_client_h1_detach(struct http_client_req *r)
{
	struct http_client_h1_conn *k = r->h1;
	if (!k)
		return;
	h1_close(k);
}

void http_client_h1_unpause(struct http_client_req *r)
{
	struct http_client_h1_conn *k = r->h1;
	if (!k || k->dead || k->state != H1_BUSY)
		return;
	/* From the request's own event: progress is made from the connection's, so that the end
	 * of the attempt is never reported inside this call. */
	event_active(k->defer, EV_TIMEOUT, 0);
}

void http_client_h1_destroy(struct http_client *c)
{
	struct http_client_h1 *pool = c->h1;
	if (!pool)
		return;
	while (pool->conns)
		h1_close(pool->conns);
	while (pool->hosts) {
		struct http_client_h1_host *h = pool->hosts;
		while (h->queue)
			h1_close(h->queue);
		pool->hosts = h->next;
		free(h);
	}
	free(pool->wbuf);
	free(pool);
	c->h1 = NULL;
}
