/* The daemon's monotonic clock, read once per pass of the event loop: every callback of one pass
 * sees the time the pass began (as nginx's ngx_current_msec), instead of a clock_gettime of its
 * own: a forwarded request asked the clock about a dozen times (0.3 of its 20 us). */
#ifndef TETHER_LOOPCLOCK_H
#define TETHER_LOOPCLOCK_H

#include <stdint.h>
#include <time.h>

#include <event2/event.h>

/* From now on readings are shared within each pass of base's loop; NULL: every reading is a
 * fresh clock_gettime (unit tests, before the loop exists). */
void loopclock_bind(struct event_base *base);

/* CLOCK_MONOTONIC as of this pass of the loop (outside a pass: now). */
void loopclock_now(struct timespec *ts);

/* The same in milliseconds. */
int64_t loopclock_now_ms(void);

/* Seconds from since to loopclock_now. */
double loopclock_since(const struct timespec *since);

#endif
