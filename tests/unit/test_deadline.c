/* Tests for the lazy timeouts of deadline.c on a real event_base: a deadline fires once and not
 * before its time; moved later it fires at the later time only (the armed timer re-arms itself);
 * moved earlier it fires at the earlier time; cleared it never fires, though its timer may wake
 * the loop; stopped it leaves nothing on the loop; and a callback may set the deadline again. */
#include <stdlib.h>

#include <event2/event.h>

#include "deadline.h"
#include "tap.h"

struct probe {
	struct deadline d;
	int fired;
	int64_t at;  /* when cb ran */
	int again;   /* > 0: cb sets the deadline again, that many ms ahead, once */
};

static void probe_cb(void *arg)
{
	struct probe *p = arg;
	p->fired++;
	p->at = deadline_now_ms();
	if (p->again > 0) {
		int ms = p->again;
		p->again = 0;
		deadline_set(&p->d, ms);
	}
}

static struct event_base *base;

static void run_for(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

int main(void)
{
	base = event_base_new();
	ok(base != NULL, "event base");
	struct probe p = { 0 };
	ok(deadline_init(&p.d, base, probe_cb, &p) == 0, "init");
	ok(!deadline_is_set(&p.d), "a new deadline is not set");

	int64_t t0 = deadline_now_ms();
	deadline_set(&p.d, 40);
	ok(deadline_is_set(&p.d), "set");
	run_for(120);
	is_int(p.fired, 1, "fires once");
	ok(p.at - t0 >= 39, "not before its time (%lld ms)", (long long)(p.at - t0));
	ok(!deadline_is_set(&p.d), "not set after firing");

	/* moved later: no libevent call, the first timer re-arms for the rest */
	p.fired = 0;
	t0 = deadline_now_ms();
	deadline_set(&p.d, 30);
	deadline_set(&p.d, 90);
	run_for(60);
	is_int(p.fired, 0, "moved later: nothing at the first time");
	run_for(100);
	is_int(p.fired, 1, "moved later: fires at the later time");
	ok(p.at - t0 >= 89, "moved later: not before it (%lld ms)", (long long)(p.at - t0));

	/* moved earlier: re-armed at once */
	p.fired = 0;
	t0 = deadline_now_ms();
	deadline_set(&p.d, 5000);
	deadline_set(&p.d, 30);
	run_for(200);
	is_int(p.fired, 1, "moved earlier: fires at the earlier time");
	ok(p.at - t0 < 1000, "moved earlier: well before the first (%lld ms)", (long long)(p.at - t0));

	/* an absolute time */
	p.fired = 0;
	t0 = deadline_now_ms();
	deadline_set_at(&p.d, t0 + 30);
	run_for(150);
	is_int(p.fired, 1, "set_at fires");
	ok(p.at >= t0 + 29, "set_at: not before it");

	/* cleared: its timer may still wake the loop, but cb never runs */
	p.fired = 0;
	deadline_set(&p.d, 20);
	deadline_clear(&p.d);
	run_for(80);
	is_int(p.fired, 0, "cleared: never fires");
	deadline_set(&p.d, 20);
	run_for(80);
	is_int(p.fired, 1, "set again after a clear: fires");

	/* stopped: nothing left on the loop (dispatch returns at once with no events) */
	p.fired = 0;
	deadline_set(&p.d, 20);
	deadline_stop(&p.d);
	ok(event_base_dispatch(base) == 1, "stopped: no event left on the loop");
	is_int(p.fired, 0, "stopped: never fires");

	/* a callback that sets the deadline again */
	p.fired = 0;
	p.again = 30;
	deadline_set(&p.d, 10);
	run_for(150);
	is_int(p.fired, 2, "set again from its callback: fires again");

	/* a cleared deadline's timer, once fired, leaves nothing on the loop either */
	deadline_set(&p.d, 10);
	deadline_clear(&p.d);
	run_for(50);
	ok(event_base_dispatch(base) == 1, "a cleared deadline's timer went off the loop when it fired");

	deadline_fini(&p.d);
	deadline_fini(&p.d); /* harmless twice */
	struct deadline z = { 0 };
	deadline_fini(&z); /* and on an all-zero one */
	event_base_free(base);
	return tap_done();
}
