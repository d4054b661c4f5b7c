/* Plain-socket I/O for clients and servers with fewer system calls than libevent's bufferevent:
 * output is written directly once the callbacks of this loop pass have queued their bytes, and
 * EV_WRITE is armed only while the kernel buffer is full (as daemon/http_server.c does); input is
 * read with one read call, without the FIONREAD ioctl libevent makes before every read. TLS
 * connections keep libevent's own paths. */
#include <errno.h>
#include <unistd.h>

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

#define PG_IN_READ 65536

/* The socket is readable: one read into a shared buffer, then only the bytes that came are
 * added to the bufferevent's input (a reserved chain per read would cost every connection its
 * full size at once under a burst), then the bufferevent's own read or event callback. */
static void pg_in_on_readable(evutil_socket_t fd, short what, void *arg)
{
	static unsigned char buf[PG_IN_READ];
	struct pg_out *o = arg;
	struct bufferevent *bev = o->bev;
	struct evbuffer *in = bufferevent_get_input(bev);
	ssize_t n = read(fd, buf, sizeof(buf));
	int err = errno;
	if (n > 0) {
		evbuffer_unfreeze(in, 0);
		int rc = evbuffer_add(in, buf, (size_t)n);
		evbuffer_freeze(in, 0);
		if (rc != 0) {
			n = -1;
			err = ENOMEM;
		}
	}
	bufferevent_data_cb readcb = NULL;
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;
	bufferevent_getcb(bev, &readcb, NULL, &eventcb, &cbarg);
	if (n > 0) {
		if (readcb)
			readcb(bev, cbarg);
		return;
	}
	if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
		return;
	if (n < 0)
		EVUTIL_SET_SOCKET_ERROR(err);
	if (eventcb)
		eventcb(bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), cbarg);
}

void pg_io_read_set(struct pg_out *o, bool on)
{
	if (!o->bev)
		return;
	if (!o->rev) {
		if (on)
			bufferevent_enable(o->bev, EV_READ);
		else
			bufferevent_disable(o->bev, EV_READ);
		return;
	}
	if (on != o->rd_on) {
		if (on)
			event_add(o->rev, NULL);
		else
			event_del(o->rev);
	}
	o->rd_on = on;
}

bool pg_io_read_on(const struct pg_out *o)
{
	if (!o->bev)
		return true;
	return o->rev ? o->rd_on : (bufferevent_get_enabled(o->bev) & EV_READ) != 0;
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
	/* reading: our own event on the socket instead of the bufferevent's */
	bool reading = (bufferevent_get_enabled(bev) & EV_READ) != 0;
	if (o->direct)
		o->rev = event_new(core_base(pg->core), bufferevent_getfd(bev), EV_READ | EV_PERSIST, pg_in_on_readable, o);
	if (o->rev) {
		bufferevent_disable(bev, EV_READ);
		o->rd_on = false;
		pg_io_read_set(o, reading);
	}
}

void pg_out_detach(struct pg_out *o)
{
	if (!o->bev)
		return;
	pg_out_unlink(o);
	if (o->direct)
		evbuffer_remove_cb(bufferevent_get_output(o->bev), pg_out_added, o);
	if (o->rev) {
		/* hand reading back to the bufferevent as it was (a TLS filter takes it over next) */
		bool reading = o->rd_on;
		event_free(o->rev);
		o->rev = NULL;
		if (reading)
			bufferevent_enable(o->bev, EV_READ);
	}
	o->direct = false;
	o->bev = NULL;
}

void pg_out_written(struct pg_out *o)
{
	if (o->direct && o->bev && evbuffer_get_length(bufferevent_get_output(o->bev)) == 0)
		bufferevent_disable(o->bev, EV_WRITE);
}
