/* Google's retry strategy as pure functions: which outcomes are worth another attempt,
 * exponential backoff with full jitter, and Retry-After parsing. The HTTP client is their only
 * caller; they are separate so they can be tested without a network. */
#ifndef TETHER_HTTP_RETRY_H
#define TETHER_HTTP_RETRY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct http_retry_policy {
	int64_t initial_ms; /* first backoff ceiling (Google: 1 s) */
	int64_t max_ms;     /* ceiling of any one backoff (Google: 60 s); <= 0 = no ceiling */
	int64_t window_ms;  /* no new attempt starts later than this after the first one */
	int max_attempts;   /* attempts in all, first included; 0 = bounded by the window only */
	int64_t retry_after_max_ms; /* a longer Retry-After ends the retries instead */
};

/* 408, 429 and 5xx. */
bool http_retry_status(int status);

/* Delay before attempt number `attempt` + 1 (attempt >= 1 just failed): a uniformly random
 * value in [0, min(max, initial * 2^(attempt-1))] ("full jitter"), raised to `retry_after_ms`
 * when the server asked for that (>= 0; -1 = no Retry-After). `rnd` is a uniform value in
 * [0, 1). */
int64_t http_retry_backoff(const struct http_retry_policy *p, int attempt, int64_t retry_after_ms, double rnd);

/* Retry-After as milliseconds from `now`: delta-seconds ("120") or an HTTP date in any of the
 * three forms of RFC 9110 5.6.7 ("Wed, 21 Oct 2015 07:28:00 GMT", "Wednesday, 21-Oct-15
 * 07:28:00 GMT", "Wed Oct 21 07:28:00 2015"; a date in the past is 0), parsed without the
 * locale. Clamped to a year. -1 when unparsable. */
int64_t http_retry_after_ms(const char *value, time_t now);

#endif
