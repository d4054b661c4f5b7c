/* CancelRequest forwarding: a client's cancel key (random, its own) finds the client; the cancel
 * goes to the backend serving it, and only if that client still holds that backend when the
 * cancel connection is ready, so a cancel never lands on another client's query. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "pg_internal.h"

struct pg_cancel_req {
	struct pg *pg;
	struct bufferevent *bev;
	uint64_t client_id;
	int32_t backend_pid, backend_key;
	bool sent;
};

static struct pg_client *pg_cancel_find_client(struct pg *pg, uint64_t id)
{
	for (struct pg_client *c = pg->clients; c; c = c->all_next)
		if (c->id == id)
			return c;
	return NULL;
}

static void pg_cancel_done(struct pg_cancel_req *r)
{
	bufferevent_free(r->bev);
	free(r);
}

static void pg_cancel_on_write(struct bufferevent *bev, void *arg)
{
	struct pg_cancel_req *r = arg;
	/* libevent also calls this when the connect completes, before anything was queued */
	if (r->sent && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		pg_cancel_done(r); /* sent; the server closes its end */
}

static void pg_cancel_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct pg_cancel_req *r = arg;
	if (!(what & BEV_EVENT_CONNECTED)) {
		log_info(&r->pg->log, "could not deliver a cancel request to the server");
		pg_cancel_done(r);
		return;
	}
	struct pg_client *c = pg_cancel_find_client(r->pg, r->client_id);
	struct pg_server *s = c ? c->server : NULL;
	if (!s || s->backend_pid != r->backend_pid || s->backend_key != r->backend_key) {
		log_debug(&r->pg->log, "cancel dropped: the client no longer holds that server");
		pg_cancel_done(r);
		return;
	}
	if (pgproto_put_cancel_request(bufferevent_get_output(bev), (uint32_t)r->backend_pid,
				       (uint32_t)r->backend_key) != 0) {
		pg_cancel_done(r);
		return;
	}
	r->sent = true;
}

void pg_cancel(struct pg *pg, uint32_t pid, uint32_t key)
{
	struct pg_client *c = pg->clients;
	for (; c; c = c->all_next) {
		uint32_t k[2] = { (uint32_t)c->cancel_pid, (uint32_t)c->cancel_key }, want[2] = { pid, key };
		if (CRYPTO_memcmp(k, want, sizeof(k)) == 0)
			break;
	}
	if (!c || !c->server || c->state != PG_CLIENT_ACTIVE) {
		log_debug(&pg->log, "cancel request: %s", c ? "that client has no query running" : "no client has that key");
		return; /* unknown key, or nothing running: nothing to cancel */
	}
	log_debug(&c->log, "cancel request: forwarding to backend %d", c->server->backend_pid);
	struct pg_cancel_req *r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->pg = pg;
	r->client_id = c->id;
	r->backend_pid = c->server->backend_pid;
	r->backend_key = c->server->backend_key;
	r->bev = bufferevent_socket_new(core_base(pg->core), -1, BEV_OPT_CLOSE_ON_FREE);
	struct sockaddr_storage ss;
	socklen_t sl;
	if (!r->bev || pg_server_address(c->pool->db, &ss, &sl) != 0) {
		if (r->bev)
			bufferevent_free(r->bev);
		free(r);
		return;
	}
	bufferevent_setcb(r->bev, NULL, pg_cancel_on_write, pg_cancel_on_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&ss, (int)sl) != 0)
		pg_cancel_done(r);
}
