/* A timeout whose deadline moves on nearly every request without a libevent call each time:
 * moving it later only records the new time, and the armed timer, when it fires early, re-arms
 * itself for what is left (the lazy timer of nginx's ngx_add_timer, without its 300 ms slack). */
#ifndef TETHER_DEADLINE_H
#define TETHER_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

struct deadline {
	struct event *ev;
	int64_t at;    /* monotonic ms when cb is due; 0: not set */
	int64_t armed; /* monotonic ms ev fires at; 0: ev not pending */
	void (*cb)(void *arg);
	void *arg;
};

/* Monotonic milliseconds (loopclock.h: CLOCK_MONOTONIC as of this pass of the loop), the clock
 * every deadline is on. */
int64_t deadline_now_ms(void);

/* 0, or -1 when out of memory (d is then all zero, and deadline_fini is harmless on it). */
int deadline_init(struct deadline *d, struct event_base *base, void (*cb)(void *arg), void *arg);
void deadline_fini(struct deadline *d);

/* cb runs once, from the loop, when ms have passed (deadline_set) or the clock reaches at
 * (deadline_set_at), unless the deadline is set again or cleared first. */
void deadline_set(struct deadline *d, int64_t ms);
void deadline_set_at(struct deadline *d, int64_t at);

/* No cb until set again. The timer may still wake the loop once, at its armed time. */
void deadline_clear(struct deadline *d);

/* Like deadline_clear, and the timer is taken off the loop too (an object being closed). */
void deadline_stop(struct deadline *d);

static inline bool deadline_is_set(const struct deadline *d)
{
	return d->at != 0;
}

#endif
