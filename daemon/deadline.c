/* Lazy timeouts (deadline.h): a connection's deadline moves on every request, and an event_add
 * plus an event_del each time (the timer heap's sift up and down) was about 5 % of a forwarded
 * request's instructions. Here setting a later deadline is a store; the libevent timer stays
 * where it was and, when it fires before the deadline, is armed once more for the rest. */
#include "deadline.h"

#include "loopclock.h"

int64_t deadline_now_ms(void)
{
	return loopclock_now_ms();
}

static void deadline_arm(struct deadline *d, int64_t now)
{
	int64_t left = d->at > now ? d->at - now : 0;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
	if (evtimer_add(d->ev, &tv) == 0)
		d->armed = d->at;
}

static void deadline_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct deadline *d = arg;
	d->armed = 0;
	if (!d->at)
		return;
	int64_t now = deadline_now_ms();
	/* libevent's clock may run a millisecond behind ours: that early is due, not early */
	if (d->at > now + 1) {
		deadline_arm(d, now);
		return;
	}
	d->at = 0;
	d->cb(d->arg);
}

int deadline_init(struct deadline *d, struct event_base *base, void (*cb)(void *arg), void *arg)
{
	d->at = d->armed = 0;
	d->cb = cb;
	d->arg = arg;
	d->ev = evtimer_new(base, deadline_on_timer, d);
	return d->ev ? 0 : -1;
}

void deadline_fini(struct deadline *d)
{
	if (d->ev)
		event_free(d->ev);
	d->ev = NULL;
	d->at = d->armed = 0;
}

void deadline_set_at(struct deadline *d, int64_t at)
{
	if (at <= 0)
		at = 1; /* 0 means "not set" */
	d->at = at;
	if (d->armed && d->armed <= at)
		return; /* fires first and re-arms for the rest */
	deadline_arm(d, deadline_now_ms());
}

void deadline_set(struct deadline *d, int64_t ms)
{
	int64_t now = deadline_now_ms();
	d->at = now + (ms > 0 ? ms : 0);
	if (d->at <= 0)
		d->at = 1;
	if (d->armed && d->armed <= d->at)
		return;
	deadline_arm(d, now);
}

void deadline_clear(struct deadline *d)
{
	d->at = 0;
}

void deadline_stop(struct deadline *d)
{
	d->at = 0;
	if (d->armed && d->ev)
		evtimer_del(d->ev);
	d->armed = 0;
}
