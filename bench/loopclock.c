/* What a clock reading costs inside a libevent callback: loopclock_now (daemon/loopclock.c, the
 * time of the pass, cached) against clock_gettime(CLOCK_MONOTONIC) (the vDSO), 10 million of
 * each, three times. Not run in CI.
 * Build and run:
 *   cc -O2 -Idaemon bench/loopclock.c daemon/loopclock.c -levent -o /tmp/lc && /tmp/lc */
#include <stdio.h>
#include <time.h>

#include <event2/event.h>

#include "loopclock.h"

#define N 10000000

static double ns_since(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((double)(b.tv_sec - a->tv_sec) * 1e9 + (double)(b.tv_nsec - a->tv_nsec)) / N;
}

static void on_pass(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	struct timespec t0, x;
	volatile long sink = 0;
	for (int round = 0; round < 3; round++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < N; i++) {
			loopclock_now(&x);
			sink += x.tv_nsec;
		}
		double cached = ns_since(&t0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < N; i++) {
			clock_gettime(CLOCK_MONOTONIC, &x);
			sink += x.tv_nsec;
		}
		printf("loopclock_now %.1f ns, clock_gettime %.1f ns\n", cached, ns_since(&t0));
	}
}

int main(void)
{
	struct event_base *base = event_base_new();
	if (!base)
		return 1;
	loopclock_bind(base);
	struct timeval now = { 0, 0 };
	event_base_once(base, -1, EV_TIMEOUT, on_pass, NULL, &now);
	event_base_dispatch(base);
	loopclock_bind(NULL);
	event_base_free(base);
	return 0;
}
