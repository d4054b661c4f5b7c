/* Tests for loopclock.c on a real event_base: unbound, and bound outside the loop, every reading
 * is fresh; inside one pass every reading is the same however long the pass runs; the next pass
 * reads anew; a reading is never ahead of CLOCK_MONOTONIC; and a deadline on the bound clock
 * fires no earlier than its time counted from the pass it was set in. */
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "deadline.h"
#include "loopclock.h"
#include "tap.h"

static int64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t clock_ns(void)
{
	struct timespec ts;
	loopclock_now(&ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void spin_ms(int ms)
{
	int64_t until = real_ns() + (int64_t)ms * 1000000;
	while (real_ns() < until)
		;
}

static struct event_base *base;
static int64_t pass1_first, pass1_last, pass1_real_end, pass2;
static struct deadline dl;
static int64_t dl_set_ms, dl_fired_real_ms;

static void on_dl(void *arg)
{
	(void)arg;
	dl_fired_real_ms = real_ns() / 1000000;
}

static void on_pass2(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	pass2 = clock_ns();
	ok(pass2 <= real_ns(), "a reading is never ahead of CLOCK_MONOTONIC");
}

static void on_pass1(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	pass1_first = clock_ns();
	spin_ms(3);
	pass1_last = clock_ns();
	pass1_real_end = real_ns();
	dl_set_ms = loopclock_now_ms();
	deadline_set(&dl, 20);
	struct timeval tv = { 0, 5000 };
	event_base_once(base, -1, EV_TIMEOUT, on_pass2, NULL, &tv);
}

int main(void)
{
	int64_t a = clock_ns();
	spin_ms(2);
	int64_t b = clock_ns();
	ok(b - a >= 2000000, "unbound: readings are fresh (%lld ns apart after 2 ms)", (long long)(b - a));

	base = event_base_new();
	ok(base != NULL, "event base");
	loopclock_bind(base);
	a = clock_ns();
	spin_ms(2);
	b = clock_ns();
	ok(b - a >= 2000000, "bound, outside the loop: readings are fresh");

	ok(deadline_init(&dl, base, on_dl, NULL) == 0, "deadline on the bound clock");
	struct timeval now = { 0, 0 };
	event_base_once(base, -1, EV_TIMEOUT, on_pass1, NULL, &now);
	struct timeval stop = { 0, 200000 };
	event_base_loopexit(base, &stop);
	event_base_dispatch(base);

	is_int(pass1_last, pass1_first, "one pass: the same reading after 3 ms of work");
	ok(pass1_first <= pass1_real_end - 3000000, "the pass's reading is from its start");
	ok(pass2 >= pass1_first + 5000000, "the next pass reads anew (%lld ns later)",
	   (long long)(pass2 - pass1_first));
	ok(dl_fired_real_ms >= dl_set_ms + 19, "the deadline: 20 ms from its pass, 1 early at most (%lld)",
	   (long long)(dl_fired_real_ms - dl_set_ms));
	ok(dl_fired_real_ms < dl_set_ms + 150, "and fires");

	deadline_fini(&dl);
	loopclock_bind(NULL);
	event_base_free(base);
	a = clock_ns();
	ok(a >= pass2, "unbound again: fresh readings");
	return tap_done();
}
