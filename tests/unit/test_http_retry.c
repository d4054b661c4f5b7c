/* Unit tests for the upstream retry strategy: retryable statuses, full-jitter backoff bounds
 * over many draws, and Retry-After as delta-seconds and HTTP dates. */
#include <stdint.h>
#include <stdlib.h>

#include "http_retry.h"
#include "tap.h"

/* A small deterministic generator, so a failure can be reproduced. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static double rng01(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) / 9007199254740992.0; /* 2^53 */
}

static void test_status(void)
{
	ok(http_retry_status(408), "408 is retryable");
	ok(http_retry_status(429), "429 is retryable");
	ok(http_retry_status(500) && http_retry_status(502) && http_retry_status(503) && http_retry_status(504),
	   "500, 502, 503, 504 are retryable");
	ok(http_retry_status(599), "599 is retryable");
	ok(!http_retry_status(200) && !http_retry_status(201) && !http_retry_status(204), "2xx are not");
	ok(!http_retry_status(308), "308 (resumable upload incomplete) is not");
	ok(!http_retry_status(400) && !http_retry_status(401) && !http_retry_status(403) && !http_retry_status(404),
	   "400, 401, 403, 404 are not");
	ok(!http_retry_status(409) && !http_retry_status(412), "409 and 412 are not");
	ok(!http_retry_status(600) && !http_retry_status(0) && !http_retry_status(-1), "out of range is not");
}

static void test_backoff(void)
{
	struct http_retry_policy p = { .initial_ms = 1000, .max_ms = 60000, .window_ms = 600000, .max_attempts = 0,
				       .retry_after_max_ms = 60000 };
	int64_t want_ceiling[] = { 0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000 };
	for (int attempt = 1; attempt <= 9; attempt++) {
		int64_t ceiling = want_ceiling[attempt], lo = INT64_MAX, hi = -1;
		double sum = 0;
		int n = 20000, bad = 0;
		for (int i = 0; i < n; i++) {
			int64_t d = http_retry_backoff(&p, attempt, -1, rng01());
			if (d < 0 || d > ceiling)
				bad++;
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			sum += (double)d;
		}
		is_int(bad, 0, "attempt %d: %d draws all within [0, %lld]", attempt, n, (long long)ceiling);
		/* Full jitter: the draws spread over the whole range, mean near the middle. */
		ok(lo < ceiling / 20 && hi > ceiling - ceiling / 20, "attempt %d: draws reach both ends (%lld..%lld)",
		   attempt, (long long)lo, (long long)hi);
		double mean = sum / n;
		ok(mean > ceiling * 0.45 && mean < ceiling * 0.55, "attempt %d: mean %.0f near %lld", attempt, mean,
		   (long long)ceiling / 2);
	}
	is_int(http_retry_backoff(&p, 1, -1, 0.0), 0, "rnd 0 gives 0");
	is_int(http_retry_backoff(&p, 1, -1, 0.999999999), 1000, "rnd just under 1 gives the ceiling");
	is_int(http_retry_backoff(&p, 3, -1, 0.5), 2000, "rnd 0.5 at attempt 3 is half of 4 s");
	is_int(http_retry_backoff(&p, 1000, -1, 0.999999999), 60000, "a huge attempt number stays at max");
	is_int(http_retry_backoff(&p, 1, -1, 1.0), 0, "out-of-range rnd (1.0) is treated as 0");
	is_int(http_retry_backoff(&p, 1, -1, -0.5), 0, "negative rnd is treated as 0");

	/* Retry-After raises the delay; it never lowers it. */
	is_int(http_retry_backoff(&p, 1, 5000, 0.5), 5000, "Retry-After above the jitter wins");
	is_int(http_retry_backoff(&p, 5, 100, 0.5), 8000, "Retry-After below the jitter does not lower it");
	is_int(http_retry_backoff(&p, 1, 0, 0.0), 0, "Retry-After: 0 with no jitter is 0");
	int bad = 0;
	for (int i = 0; i < 5000; i++) {
		int64_t d = http_retry_backoff(&p, 2, 1500, rng01());
		if (d < 1500 || d > 2000)
			bad++;
	}
	is_int(bad, 0, "with Retry-After 1.5 s at attempt 2 every draw is in [1500, 2000]");

	/* Degenerate policies. */
	struct http_retry_policy nomax = { .initial_ms = 100, .max_ms = 0 };
	is_int(http_retry_backoff(&nomax, 4, -1, 0.999999999), 800, "no maximum: the ceiling keeps doubling");
	ok(http_retry_backoff(&nomax, 200, -1, 0.999999999) > 0, "no maximum: no overflow at attempt 200");
	struct http_retry_policy zero = { 0 };
	ok(http_retry_backoff(&zero, 1, -1, 0.999999999) <= 1, "zero policy: tiny delays, no division by zero");
}

static void test_retry_after(void)
{
	time_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
	is_int(http_retry_after_ms("120", now), 120000, "delta-seconds");
	is_int(http_retry_after_ms("0", now), 0, "zero seconds");
	is_int(http_retry_after_ms("1", now), 1000, "one second");
	is_int(http_retry_after_ms("  7 ", now), 7000, "surrounding whitespace ignored");
	is_int(http_retry_after_ms("99999999999999999999999", now), 365LL * 86400 * 1000, "huge delta clamped");
	is_int(http_retry_after_ms("-5", now), -1, "negative delta unparsable");
	is_int(http_retry_after_ms("1.5", now), -1, "fractional delta unparsable");
	is_int(http_retry_after_ms("12abc", now), -1, "trailing junk unparsable");
	is_int(http_retry_after_ms("", now), -1, "empty unparsable");
	is_int(http_retry_after_ms(NULL, now), -1, "NULL unparsable");
	is_int(http_retry_after_ms("soon", now), -1, "word unparsable");

	is_int(http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now), 0, "IMF-fixdate equal to now is 0");
	is_int(http_retry_after_ms("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000, "IMF-fixdate 30 s ahead");
	is_int(http_retry_after_ms("Thu, 22 Oct 2015 07:28:00 GMT", now), 86400000, "IMF-fixdate a day ahead");
	is_int(http_retry_after_ms("Tue, 20 Oct 2015 07:28:00 GMT", now), 0, "a date in the past is 0");
	is_int(http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777), 0, "RFC 9110 example date");
	is_int(http_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 3), 3000, "RFC 9110 example, 3 s");
	is_int(http_retry_after_ms("Sunday, 06-Nov-94 08:49:40 GMT", 784111777), 3000, "RFC 850 form");
	is_int(http_retry_after_ms("Sun Nov  6 08:49:40 1994", 784111777), 3000, "asctime form");
	is_int(http_retry_after_ms("Thu, 29 Feb 2024 00:00:01 GMT", 1709164800), 1000, "leap day 2024");
	is_int(http_retry_after_ms("Fri, 01 Jan 2100 00:00:00 GMT", now), 365LL * 86400 * 1000,
	       "far-future date clamped to a year");
	is_int(http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 UTC", now), -1, "zone other than GMT unparsable");
	is_int(http_retry_after_ms("Wed, 21 Foo 2015 07:28:00 GMT", now), -1, "bad month unparsable");
	is_int(http_retry_after_ms("Wed, 32 Oct 2015 07:28:00 GMT", now), -1, "day 32 unparsable");
	is_int(http_retry_after_ms("Wed, 21 Oct 2015 25:28:00 GMT", now), -1, "hour 25 unparsable");
	is_int(http_retry_after_ms("Wed, 21 Oct 2015 07:28 GMT", now), -1, "missing seconds unparsable");
	is_int(http_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT junk", now), -1, "trailing junk unparsable");
	is_int(http_retry_after_ms("Wed, 21 Oct 15 07:28:00 GMT", now), -1, "two-digit year in IMF form unparsable");
}

int main(void)
{
	test_status();
	test_backoff();
	test_retry_after();
	return tap_done();
}
