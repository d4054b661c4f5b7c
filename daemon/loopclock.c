/* One CLOCK_MONOTONIC read per pass of the event loop, shared by the pass's callbacks
 * (loopclock.h). libevent 2.1 has no hook at the start of a pass, but it already caches the
 * time it woke at for the pass (event_base_gettimeofday_cached, a copy): that cached value
 * changing is the sign of a new pass, and only then is the monotonic clock read again. Outside
 * a pass libevent reads the wall clock afresh on every call, so readings there stay fresh too. */
#include "loopclock.h"

static struct event_base *loopclock_base;
static struct timeval loopclock_key; /* libevent's cached time when loopclock_last was read */
static struct timespec loopclock_last;

void loopclock_bind(struct event_base *base)
{
	loopclock_base = base;
	loopclock_key = (struct timeval){ 0, 0 };
	loopclock_last = (struct timespec){ 0, 0 };
}

void loopclock_now(struct timespec *ts)
{
	struct timeval key;
	if (!loopclock_base || event_base_gettimeofday_cached(loopclock_base, &key) != 0) {
		clock_gettime(CLOCK_MONOTONIC, ts);
		return;
	}
	if (key.tv_sec != loopclock_key.tv_sec || key.tv_usec != loopclock_key.tv_usec) {
		clock_gettime(CLOCK_MONOTONIC, &loopclock_last);
		loopclock_key = key;
	}
	*ts = loopclock_last;
}

int64_t loopclock_now_ms(void)
{
	struct timespec ts;
	loopclock_now(&ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double loopclock_since(const struct timespec *since)
{
	struct timespec now;
	loopclock_now(&now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}
