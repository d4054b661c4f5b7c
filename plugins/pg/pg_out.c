/* Plain-socket I/O for clients and servers with fewer system calls than libevent's bufferevent:
 * output is written directly once the callbacks of this loop pass have queued their bytes, and
 * EV_WRITE is armed only while the kernel buffer is full (as daemon/http_server.c does); input is
 * read with one recv call, without the FIONREAD ioctl libevent makes before every read. (recv
 * and send, and sendmsg for queued output, rather than read, write and libevent's writev: the
 * socket calls skip the VFS layer, about 5 % of what a small message costs the kernel on a unix
 * socket.) Plain client sockets have no bufferevent at
 * all ("bare": an fd, one event, and evbuffers only while the client is busy), which is most of
 * what an idle client costs otherwise. TLS connections keep libevent's own paths. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "pg_internal.h"
#include "sockio.h"

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
static void pg_io_bare_flush(struct pg_out *o);

static void pg_out_flush(struct pg_out *o)
{
	if (!o->bev) {
		if (o->bare)
			pg_io_bare_flush(o);
		return;
	}
	struct bufferevent *bev = o->bev;
	struct evbuffer *out = bufferevent_get_output(bev);
	if (evbuffer_get_length(out) > 0) {
		evbuffer_unfreeze(out, 1);
		int n = sockio_send_evbuffer(out, o->wfd);
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

static void pg_out_mark(struct pg_out *o, const struct evbuffer_cb_info *info)
{
	if (info->n_added == 0 || o->dirty || !o->direct)
		return;
	o->dirty = true;
	o->prev = NULL;
	o->next = o->pg->dirty;
	if (o->next)
		o->next->prev = o;
	o->pg->dirty = o;
	/* runs in this same loop pass, after the callback that queued the bytes (or, inside
	 * pg_out.c's own socket callbacks, as each of them returns) */
	if (!o->pg->in_io)
		event_active(o->pg->flush_ev, 0, 0);
}

/* Around a socket callback: what it queued is written as it returns, without another trip
 * through the event loop (nested calls leave it to the outermost). */
static bool pg_io_enter(struct pg *pg)
{
	bool outer = !pg->in_io;
	pg->in_io = true;
	return outer;
}

static void pg_io_leave(struct pg *pg, bool outer)
{
	if (!outer)
		return;
	if (pg->dirty)
		pg_out_on_flush(-1, 0, pg); /* (marks made meanwhile join its loop) */
	pg->in_io = false;
}

static void pg_out_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	pg_out_mark(arg, info);
}

static void pg_io_bare_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct pg_obuf *ob = arg;
	if (ob->o)
		pg_out_mark(ob->o, info);
}

#define PG_IN_READ 65536

/* The socket is readable: one read into a shared buffer, then only the bytes that came are
 * added to the bufferevent's input (a reserved chain per read would cost every connection its
 * full size at once under a burst), then the bufferevent's own read or event callback. */
static void pg_in_readable(struct pg_out *o, evutil_socket_t fd)
{
	static unsigned char buf[PG_IN_READ];
	struct bufferevent *bev = o->bev;
	struct evbuffer *in = bufferevent_get_input(bev);
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	int err = errno;
	size_t used = 0;
	if (n > 0 && o->cbs && o->cbs->take && evbuffer_get_length(in) == 0) {
		used = o->cbs->take(o->arg, buf, (size_t)n);
		if (o->bev != bev || used >= (size_t)n)
			return; /* all used, or the connection closed (its bufferevent freed) */
	}
	if (n > 0) {
		evbuffer_unfreeze(in, 0);
		int rc = evbuffer_add(in, buf + used, (size_t)n - used);
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

static void pg_in_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct pg_out *o = arg;
	struct pg *pg = o->pg;
	bool outer = pg_io_enter(pg);
	pg_in_readable(o, fd);
	pg_io_leave(pg, outer);
}

static void pg_io_arm(struct pg_out *o);

void pg_io_read_set(struct pg_out *o, bool on)
{
	if (!o->bev) {
		if (o->bare) {
			o->rd_on = on;
			pg_io_arm(o);
		}
		return;
	}
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
		return !o->bare || o->fd < 0 || o->rd_on;
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
	while (pg->nspare_in)
		evbuffer_free(pg->spare_in[--pg->nspare_in]);
	while (pg->nspare_out) {
		struct pg_obuf *ob = pg->spare_out[--pg->nspare_out];
		evbuffer_free(ob->b);
		free(ob);
	}
	while (pg->nspare_ev)
		event_free(pg->spare_ev[--pg->nspare_ev]);
	while (pg->nspare_client)
		free(pg->spare_client[--pg->nspare_client]);
	if (pg->flush_ev)
		event_free(pg->flush_ev);
	pg->flush_ev = NULL;
}

/* ---- a bufferevent's callbacks, when its connection uses pg_io_cbs ------------------------ */

static void pg_io_bev_read(struct bufferevent *bev, void *arg)
{
	struct pg_out *o = arg;
	o->cbs->read(o->arg);
}

static void pg_io_bev_write(struct bufferevent *bev, void *arg)
{
	struct pg_out *o = arg;
	if (o->cbs->write)
		o->cbs->write(o->arg);
}

static void pg_io_bev_event(struct bufferevent *bev, short what, void *arg)
{
	struct pg_out *o = arg;
	o->cbs->event(o->arg, what);
}

void pg_out_attach(struct pg *pg, struct pg_out *o, struct bufferevent *bev, bool direct)
{
	o->pg = pg;
	o->bev = bev;
	o->fd = -1;
	if (o->cbs && o->cbs->read)
		bufferevent_setcb(bev, pg_io_bev_read, pg_io_bev_write, pg_io_bev_event, o);
	o->direct = direct && pg->flush_ev != NULL;
	o->wfd = bufferevent_getfd(bev);
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

static void pg_io_bare_free(struct pg_out *o);

void pg_out_detach(struct pg_out *o)
{
	if (!o->bev) {
		if (o->bare)
			pg_io_bare_free(o);
		return;
	}
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
	/* (after every flush: disabling what is off already costs libevent's locks and event_del) */
	if (o->direct && o->bev && (bufferevent_get_enabled(o->bev) & EV_WRITE) &&
	    evbuffer_get_length(bufferevent_get_output(o->bev)) == 0)
		bufferevent_disable(o->bev, EV_WRITE);
}

/* ---- bare sockets -------------------------------------------------------------------------- */

/* The one event follows what is wanted: EV_READ while reading, EV_WRITE while the kernel buffer
 * was full. (Re-assigning a deleted event is allowed; with the changelist a delete and add in one
 * loop pass is one epoll_ctl.) */
static void pg_io_on_socket(evutil_socket_t fd, short what, void *arg);

static void pg_io_arm(struct pg_out *o)
{
	if (o->fd < 0 || !o->rev)
		return;
	uint8_t want = (uint8_t)((o->rd_on ? EV_READ : 0) | (o->wr_on ? EV_WRITE : 0));
	if (want == o->armed)
		return;
	if (o->armed)
		event_del(o->rev);
	o->armed = 0;
	if (!want)
		return;
	if (event_assign(o->rev, event_get_base(o->rev), o->fd, (short)(want | EV_PERSIST), pg_io_on_socket, o) == 0 &&
	    event_add(o->rev, NULL) == 0)
		o->armed = want;
}

/* A bare socket's buffers go back among the spares when empty (and while pg_out runs), else
 * are freed. */
static void pg_io_put_in(struct pg *pg, struct evbuffer *b)
{
	if (!pg->flush_ev || pg->nspare_in >= PG_IO_SPARE_KEEP) {
		evbuffer_free(b);
		return;
	}
	/* (what is left unread at a close, a client's Terminate say, is dropped anyway) */
	size_t left = evbuffer_get_length(b);
	if (left == 0 || evbuffer_drain(b, left) == 0)
		pg->spare_in[pg->nspare_in++] = b;
	else
		evbuffer_free(b);
}

static void pg_io_put_out(struct pg *pg, struct pg_obuf *ob)
{
	ob->o = NULL;
	if (pg->flush_ev && pg->nspare_out < PG_IO_SPARE_KEEP && evbuffer_get_length(ob->b) == 0) {
		pg->spare_out[pg->nspare_out++] = ob;
		return;
	}
	evbuffer_free(ob->b);
	free(ob);
}

/* Gives back whichever buffer is empty while the connection says it is idle. */
static void pg_io_trim(struct pg_out *o)
{
	if (o->fd < 0 || (!o->in && !o->ob) || (o->cbs->idle && !o->cbs->idle(o->arg)))
		return;
	if (o->in && evbuffer_get_length(o->in) == 0) {
		pg_io_put_in(o->pg, o->in);
		o->in = NULL;
	}
	if (o->ob && !o->dirty && evbuffer_get_length(o->ob->b) == 0) {
		pg_io_put_out(o->pg, o->ob);
		o->ob = NULL;
	}
}

/* Writes what it can. Returns false after reporting an error to the event callback. */
static bool pg_io_bare_write(struct pg_out *o)
{
	if (!o->ob || evbuffer_get_length(o->ob->b) == 0)
		return true;
	int n = sockio_send_evbuffer(o->ob->b, o->fd);
	if (n > 0)
		return true;
	int err = EVUTIL_SOCKET_ERROR();
	if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
		return true;
	/* as libevent's bufferevent reports it: 0 is taken as EOF */
	o->wr_on = o->rd_on = false;
	pg_io_arm(o);
	o->cbs->event(o->arg, BEV_EVENT_WRITING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR));
	return false;
}

/* After this loop pass's callbacks queued bytes: write now, EV_WRITE for the rest; the write
 * callback when everything went (it resumes a peer paused by back-pressure). */
static void pg_io_bare_flush(struct pg_out *o)
{
	if (o->fd < 0 || !pg_io_bare_write(o))
		return;
	if (o->ob && evbuffer_get_length(o->ob->b) > 0) {
		o->wr_on = true;
		pg_io_arm(o);
		return;
	}
	if (o->cbs->write)
		o->cbs->write(o->arg);
	pg_io_trim(o);
}

static void pg_io_socket(struct pg_out *o, evutil_socket_t fd, short what)
{
	static unsigned char buf[PG_IN_READ];
	if (what & EV_WRITE) {
		if (!pg_io_bare_write(o))
			return;
		size_t left = o->ob ? evbuffer_get_length(o->ob->b) : 0;
		if (left == 0) {
			o->wr_on = false;
			pg_io_arm(o);
		}
		if (left <= PG_RELAY_LOW && o->cbs->write)
			o->cbs->write(o->arg);
		if (o->fd < 0)
			return; /* closed by the callback */
		if (left == 0)
			pg_io_trim(o);
	}
	if (!(what & EV_READ) || !o->rd_on)
		return;
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	int err = errno;
	size_t used = 0;
	if (n > 0 && o->cbs->take && (!o->in || evbuffer_get_length(o->in) == 0)) {
		used = o->cbs->take(o->arg, buf, (size_t)n);
		if (o->fd < 0)
			return; /* closed by it */
		if (used >= (size_t)n) {
			pg_io_trim(o);
			return;
		}
	}
	if (n > 0) {
		/* both buffers now: the protocol code answers from inside the read callback */
		struct evbuffer *in = pg_io_input(o);
		if (!in || !pg_io_output(o) || evbuffer_add(in, buf + used, (size_t)n - used) != 0) {
			n = -1;
			err = ENOMEM;
		}
	}
	if (n > 0) {
		o->cbs->read(o->arg);
		pg_io_trim(o);
		return;
	}
	if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
		return;
	if (n < 0)
		EVUTIL_SET_SOCKET_ERROR(err);
	o->cbs->event(o->arg, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR));
}

static void pg_io_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct pg_out *o = arg;
	struct pg *pg = o->pg;
	bool outer = pg_io_enter(pg);
	pg_io_socket(o, fd, what);
	pg_io_leave(pg, outer);
}

int pg_io_attach_fd(struct pg *pg, struct pg_out *o, evutil_socket_t fd, const struct pg_io_cbs *cbs, void *arg)
{
	o->pg = pg;
	o->bev = NULL;
	o->bare = true;
	o->fd = fd;
	o->cbs = cbs;
	o->arg = arg;
	o->direct = true;
	o->armed = 0;
	o->wr_on = false;
	o->rd_on = true;
	/* (accepted sockets are non-blocking already) */
	/* (a spare event is assigned by pg_io_arm; it was made on this base) */
	if (pg->flush_ev && pg->nspare_ev)
		o->rev = pg->spare_ev[--pg->nspare_ev];
	if (!pg->flush_ev ||
	    (!o->rev && !(o->rev = event_new(core_base(pg->core), fd, EV_READ | EV_PERSIST, pg_io_on_socket, o)))) {
		pg_io_bare_free(o);
		return -1;
	}
	pg_io_arm(o);
	if (!o->armed) {
		pg_io_bare_free(o);
		return -1;
	}
	return 0;
}

void pg_io_read_now(struct pg_out *o)
{
	if (o->bare && o->fd >= 0 && o->rd_on)
		pg_io_on_socket(o->fd, EV_READ, o);
}

void pg_io_setcb(struct pg_out *o, const struct pg_io_cbs *cbs, void *arg)
{
	o->cbs = cbs;
	o->arg = arg;
	if (o->bev)
		bufferevent_setcb(o->bev, pg_io_bev_read, pg_io_bev_write, pg_io_bev_event, o);
}

static struct evbuffer *pg_io_bare_in(struct pg_out *o)
{
	if (o->in || !o->bare || o->fd < 0)
		return o->in;
	struct pg *pg = o->pg;
	o->in = pg->nspare_in ? pg->spare_in[--pg->nspare_in] : evbuffer_new();
	return o->in;
}

static struct evbuffer *pg_io_bare_out(struct pg_out *o)
{
	if (o->ob || !o->bare || o->fd < 0)
		return o->ob ? o->ob->b : NULL;
	struct pg *pg = o->pg;
	struct pg_obuf *ob = pg->nspare_out ? pg->spare_out[--pg->nspare_out] : NULL;
	if (!ob && (ob = calloc(1, sizeof(*ob))) != NULL) {
		ob->b = evbuffer_new();
		if (!ob->b || !evbuffer_add_cb(ob->b, pg_io_bare_added, ob)) {
			if (ob->b)
				evbuffer_free(ob->b);
			free(ob);
			ob = NULL;
		}
	}
	if (!ob)
		return NULL;
	ob->o = o;
	o->ob = ob;
	return ob->b;
}

struct evbuffer *pg_io_input(struct pg_out *o)
{
	return o->bev ? bufferevent_get_input(o->bev) : pg_io_bare_in(o);
}

struct evbuffer *pg_io_output(struct pg_out *o)
{
	return o->bev ? bufferevent_get_output(o->bev) : pg_io_bare_out(o);
}

int pg_io_send(struct pg_out *o, const void *p, size_t n)
{
	evutil_socket_t fd = -1;
	struct evbuffer *out = NULL;
	if (o->bare) {
		fd = o->fd;
		out = o->ob ? o->ob->b : NULL;
	} else if (o->bev && o->direct) {
		fd = o->wfd;
		out = bufferevent_get_output(o->bev);
	}
	size_t done = 0;
	if (fd >= 0 && (!out || evbuffer_get_length(out) == 0)) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0)
			done = (size_t)w;
		if (done == n)
			return 1;
	}
	out = pg_io_output(o); /* (a write error is seen again, and reported, by its flush) */
	return out && evbuffer_add(out, (const unsigned char *)p + done, n - done) == 0 ? 0 : -1;
}

void pg_io_sent(struct pg_out *o)
{
	if (o->bare) {
		if (o->fd < 0)
			return;
		if (o->cbs->write)
			o->cbs->write(o->arg);
		pg_io_trim(o);
		return;
	}
	if (o->bev && o->direct)
		pg_out_flush(o); /* (nothing to write: just its write callback) */
}

size_t pg_io_unread(const struct pg_out *o)
{
	if (!o->bev)
		return o->bare && o->in ? evbuffer_get_length(o->in) : 0;
	return evbuffer_get_length(bufferevent_get_input(o->bev));
}

size_t pg_io_unsent(const struct pg_out *o)
{
	if (!o->bev)
		return o->bare && o->ob ? evbuffer_get_length(o->ob->b) : 0;
	struct bufferevent *u = bufferevent_get_underlying(o->bev);
	return evbuffer_get_length(bufferevent_get_output(o->bev)) + (u ? evbuffer_get_length(bufferevent_get_output(u)) : 0);
}

bool pg_io_open(const struct pg_out *o)
{
	return o->bev || (o->bare && o->fd >= 0);
}

evutil_socket_t pg_io_fd(const struct pg_out *o)
{
	return o->bev ? bufferevent_getfd(o->bev) : o->bare ? o->fd : -1;
}

/* Frees a bare socket's event and buffers and closes it (nothing when already closed). */
static void pg_io_bare_free(struct pg_out *o)
{
	pg_out_unlink(o);
	if (o->rev) {
		struct pg *pg = o->pg;
		if (pg->flush_ev && pg->nspare_ev < PG_IO_SPARE_KEEP && event_del(o->rev) == 0)
			pg->spare_ev[pg->nspare_ev++] = o->rev;
		else
			event_free(o->rev);
	}
	o->rev = NULL;
	o->armed = 0;
	if (o->in)
		pg_io_put_in(o->pg, o->in);
	if (o->ob)
		pg_io_put_out(o->pg, o->ob);
	o->in = NULL;
	o->ob = NULL;
	if (o->fd >= 0)
		evutil_closesocket(o->fd);
	o->fd = -1;
	o->direct = o->rd_on = o->wr_on = o->bare = false;
}

struct bufferevent *pg_io_bufferevent(struct pg_out *o)
{
	if (o->bev) {
		struct bufferevent *bev = o->bev;
		pg_out_detach(o);
		return bev;
	}
	if (!o->bare || o->fd < 0)
		return NULL;
	struct bufferevent *bev = bufferevent_socket_new(core_base(o->pg->core), o->fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev) {
		o->fd = -1; /* the bufferevent's now */
		/* (unread input is not carried: TLS starts with none, a lingering close reads none) */
		if (o->ob && evbuffer_add_buffer(bufferevent_get_output(bev), o->ob->b) != 0) {
			bufferevent_free(bev);
			bev = NULL;
		}
	}
	pg_io_bare_free(o);
	return bev;
}

void pg_io_close(struct pg_out *o)
{
	struct bufferevent *bev = o->bev;
	pg_out_detach(o);
	if (bev)
		bufferevent_free(bev);
}
