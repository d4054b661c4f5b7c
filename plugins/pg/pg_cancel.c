/* CancelRequest forwarding: a client's cancel key (random, its own) finds the client; the cancel
 * goes to the backend serving it, only while that client has a request there and only if it
 * still holds that backend when the cancel connection is ready, so a cancel never lands on
 * another client's query. As with PostgreSQL itself, the canceller's connection closes only once
 * the server has closed the cancel connection (it has signalled the backend by then): a client
 * that waits for that close, as libpq does, cannot have its next query hit by the cancel. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>

#include "pg_internal.h"

struct pg_cancel_req {
	struct pg *pg;
	struct bufferevent *bev;
	uint64_t client_id;
	int32_t backend_pid, backend_key;
	evutil_socket_t hold_fd; /* the canceller's socket (a dup), closed when this is done; or -1 */
};

/* How long the server may take to close the cancel connection (it does so at once). */
#define PG_CANCEL_TIMEOUT_S 10

/* Something running on the client's server that a cancel may be for. */
static bool pg_cancel_busy(const struct pg_client *c)
{
	const struct pg_server *s = c->server;
	return s && c->state == PG_CLIENT_ACTIVE && (s->pending_sync > 0 || s->unsynced > 0 || s->exp_n > 0);
}

static struct pg_client *pg_cancel_find_client(struct pg *pg, uint64_t id)
{
	for (struct pg_client *c = pg->clients; c; c = c->all_next)
		if (c->id == id)
			return c;
	return NULL;
}

static void pg_cancel_done(struct pg_cancel_req *r)
{
	if (r->bev)
		bufferevent_free(r->bev);
	if (r->hold_fd >= 0)
		evutil_closesocket(r->hold_fd);
	free(r);
}

static void pg_cancel_on_read(struct bufferevent *bev, void *arg)
{
	(void)arg; /* a server says nothing on a cancel connection; whatever comes is dropped */
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void pg_cancel_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct pg_cancel_req *r = arg;
	if (!(what & BEV_EVENT_CONNECTED)) {
		if (!(what & BEV_EVENT_EOF))
			log_info(&r->pg->log, "could not deliver a cancel request to the server: %s",
				 what & BEV_EVENT_TIMEOUT ? "timed out" : "connection failed");
		pg_cancel_done(r); /* EOF: the server processed it and closed its end */
		return;
	}
	struct pg_client *c = pg_cancel_find_client(r->pg, r->client_id);
	struct pg_server *s = c ? c->server : NULL;
	if (!s || s->backend_pid != r->backend_pid || s->backend_key != r->backend_key || !pg_cancel_busy(c)) {
		log_debug(&r->pg->log, "cancel dropped: the client no longer has a request on that server");
		pg_cancel_done(r);
		return;
	}
	if (pgproto_put_cancel_request(bufferevent_get_output(bev), (uint32_t)r->backend_pid,
				       (uint32_t)r->backend_key) != 0)
		pg_cancel_done(r);
}

void pg_cancel(struct pg *pg, uint32_t pid, uint32_t key, evutil_socket_t hold_fd)
{
	struct pg_client *c = pg->clients;
	for (; c; c = c->all_next) {
		uint32_t k[2] = { (uint32_t)c->cancel_pid, (uint32_t)c->cancel_key }, want[2] = { pid, key };
		if (CRYPTO_memcmp(k, want, sizeof(k)) == 0)
			break;
	}
	if (!c || !pg_cancel_busy(c)) {
		log_debug(&pg->log, "cancel request: %s", c ? "that client has no query running" : "no client has that key");
		if (hold_fd >= 0)
			evutil_closesocket(hold_fd);
		return; /* unknown key, or nothing running: nothing to cancel */
	}
	log_debug(&c->log, "cancel request: forwarding to backend %d", c->server->backend_pid);
	struct pg_cancel_req *r = calloc(1, sizeof(*r));
	if (!r) {
		if (hold_fd >= 0)
			evutil_closesocket(hold_fd);
		return;
	}
	r->hold_fd = hold_fd;
	r->pg = pg;
	r->client_id = c->id;
	r->backend_pid = c->server->backend_pid;
	r->backend_key = c->server->backend_key;
	r->bev = bufferevent_socket_new(core_base(pg->core), -1, BEV_OPT_CLOSE_ON_FREE);
	struct sockaddr_storage ss;
	socklen_t sl;
	if (!r->bev || pg_server_address(c->pool->db, &ss, &sl) != 0) {
		pg_cancel_done(r);
		return;
	}
	struct timeval tv = { PG_CANCEL_TIMEOUT_S, 0 };
	bufferevent_set_timeouts(r->bev, &tv, &tv);
	bufferevent_setcb(r->bev, pg_cancel_on_read, NULL, pg_cancel_on_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&ss, (int)sl) != 0)
		pg_cancel_done(r);
}
