/* Writing to clients and servers without an epoll round per message: a plain socket's output is
 * written directly once the callbacks of this loop pass have queued their bytes, and EV_WRITE is
 * armed only while the kernel buffer is full (as daemon/http_server.c does). TLS connections keep
 * libevent's own write path. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "pg_internal.h"

static void pg_out_unlink(struct pg_out *o)
{
	if (!o->dirty)
		return;
	if (o->prev)
		o->prev->next = o->next;
	else
		o->pg->dirty = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->next = o->prev = NULL;
	o->dirty = false;
}

/* Writes what it can now; arms EV_WRITE for the rest. When everything went, the write callback
 * runs as libevent would have run it (it resumes a peer paused by back-pressure). */
static void pg_out_flush(struct pg_out *o)
{
	struct bufferevent *bev = o->bev;
	struct evbuffer *out = bufferevent_get_output(bev);
	if (evbuffer_get_length(out) > 0) {
		evbuffer_unfreeze(out, 1);
		int n = evbuffer_write(out, bufferevent_getfd(bev));
		evbuffer_freeze(out, 1);
		(void)n; /* an error shows on the EV_WRITE path below, as libevent reports it */
	}
	if (evbuffer_get_length(out) > 0) {
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	bufferevent_data_cb writecb = NULL;
	void *arg = NULL;
	bufferevent_getcb(bev, NULL, &writecb, NULL, &arg);
	if (writecb)
		writecb(bev, arg);
}

static void pg_out_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct pg *pg = arg;
	while (pg->dirty) {
		struct pg_out *o = pg->dirty;
		pg_out_unlink(o);
		pg_out_flush(o);
	}
}

static void pg_out_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct pg_out *o = arg;
	if (info->n_added == 0 || o->dirty || !o->direct)
		return;
	o->dirty = true;
	o->prev = NULL;
	o->next = o->pg->dirty;
	if (o->next)
		o->next->prev = o;
	o->pg->dirty = o;
	/* runs in this same loop pass, after the callback that queued the bytes */
	event_active(o->pg->flush_ev, 0, 0);
}

int pg_out_start(struct pg *pg)
{
	pg->flush_ev = event_new(core_base(pg->core), -1, 0, pg_out_on_flush, pg);
	return pg->flush_ev ? 0 : -1;
}

void pg_out_stop(struct pg *pg)
{
	while (pg->dirty)
		pg_out_unlink(pg->dirty);
	if (pg->flush_ev)
		event_free(pg->flush_ev);
	pg->flush_ev = NULL;
}

void pg_out_attach(struct pg *pg, struct pg_out *o, struct bufferevent *bev, bool direct)
{
	o->pg = pg;
	o->bev = bev;
	o->direct = direct && pg->flush_ev != NULL;
	if (o->direct && !evbuffer_add_cb(bufferevent_get_output(bev), pg_out_added, o))
		o->direct = false;
	if (o->direct)
		bufferevent_disable(bev, EV_WRITE);
	else
		bufferevent_enable(bev, EV_WRITE);
}

void pg_out_detach(struct pg_out *o)
{
	if (!o->bev)
		return;
	pg_out_unlink(o);
	if (o->direct)
		evbuffer_remove_cb(bufferevent_get_output(o->bev), pg_out_added, o);
	o->direct = false;
	o->bev = NULL;
}

void pg_out_written(struct pg_out *o)
{
	if (o->direct && o->bev && evbuffer_get_length(bufferevent_get_output(o->bev)) == 0)
		bufferevent_disable(o->bev, EV_WRITE);
}
