/* Retry decisions and backoff arithmetic for upstream HTTP calls (see http_retry.h). */
#include "http_retry.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Ceilings stop doubling here when no maximum is set, so the arithmetic cannot overflow. */
#define HTTP_RETRY_CEILING_LIMIT ((int64_t)1 << 40)
/* Retry-After values are clamped to a year: anything longer is "not soon" all the same. */
#define HTTP_RETRY_AFTER_LIMIT_S (365LL * 86400)

bool http_retry_status(int status)
{
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

int64_t http_retry_backoff(const struct http_retry_policy *p, int attempt, int64_t retry_after_ms, double rnd)
{
	int64_t limit = p->max_ms > 0 ? p->max_ms : HTTP_RETRY_CEILING_LIMIT;
	int64_t ceiling = p->initial_ms > 0 ? p->initial_ms : 1;
	for (int i = 1; i < attempt && ceiling < limit; i++)
		ceiling *= 2;
	if (ceiling > limit)
		ceiling = limit;
	if (!(rnd >= 0 && rnd < 1)) /* also catches NaN */
		rnd = 0;
	int64_t d = (int64_t)(rnd * (double)(ceiling + 1));
	if (d > ceiling)
		d = ceiling;
	if (retry_after_ms > d)
		d = retry_after_ms;
	return d;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil), so
 * no libc time zone or locale state is involved. */
static int64_t http_retry_days(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int http_retry_month(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	for (int i = 0; i < 12; i++)
		if (strncmp(s, months + 3 * i, 3) == 0)
			return i + 1;
	return 0;
}

/* Reads exactly `n` digits (or 1..n when `n` < 0: up to -n). */
static const char *http_retry_num(const char *s, int n, int *out)
{
	int max = n < 0 ? -n : n, v = 0, i = 0;
	while (i < max && isdigit((unsigned char)s[i])) {
		v = v * 10 + (s[i] - '0');
		i++;
	}
	if (i == 0 || (n > 0 && i != n))
		return NULL;
	*out = v;
	return s + i;
}

static const char *http_retry_hms(const char *s, int *h, int *mi, int *sec)
{
	if (!(s = http_retry_num(s, 2, h)) || *s++ != ':' || !(s = http_retry_num(s, 2, mi)) || *s++ != ':' ||
	    !(s = http_retry_num(s, 2, sec)))
		return NULL;
	return s;
}

/* The three HTTP-date forms RFC 9110 5.6.7 says a recipient must accept: IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 * ("Sun Nov  6 08:49:37 1994"). Parsed by hand: strptime's %a/%b follow the locale. */
static bool http_retry_date(const char *s, int64_t *epoch)
{
	int y = 0, mon = 0, d = 0, h = 0, mi = 0, sec = 0;
	const char *p = s;
	while (isalpha((unsigned char)*p))
		p++;
	if (p - s < 3)
		return false;
	if (*p == ',') {
		if (*++p != ' ' || !(p = http_retry_num(p + 1, 2, &d)))
			return false;
		if (*p == ' ') { /* IMF-fixdate */
			if (!(mon = http_retry_month(p + 1)) || p[4] != ' ' || !(p = http_retry_num(p + 5, 4, &y)))
				return false;
		} else if (*p == '-') { /* RFC 850, two-digit year */
			if (!(mon = http_retry_month(p + 1)) || p[4] != '-' || !(p = http_retry_num(p + 5, 2, &y)))
				return false;
			y += y < 70 ? 2000 : 1900;
		} else {
			return false;
		}
		if (*p++ != ' ' || !(p = http_retry_hms(p, &h, &mi, &sec)) || strcmp(p, " GMT") != 0)
			return false;
	} else if (*p == ' ' && p - s == 3) { /* asctime */
		if (!(mon = http_retry_month(p + 1)) || p[4] != ' ')
			return false;
		p += 5;
		if (*p == ' ')
			p++;
		if (!(p = http_retry_num(p, -2, &d)) || *p++ != ' ' || !(p = http_retry_hms(p, &h, &mi, &sec)) ||
		    *p++ != ' ' || !(p = http_retry_num(p, 4, &y)) || *p)
			return false;
	} else {
		return false;
	}
	if (d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	*epoch = ((http_retry_days(y, mon, d) * 24 + h) * 60 + mi) * 60 + sec;
	return true;
}

int64_t http_retry_after_ms(const char *value, time_t now)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t len = strlen(value);
	while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	char buf[64];
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, value, len);
	buf[len] = '\0';
	if (isdigit((unsigned char)buf[0])) {
		char *end;
		errno = 0;
		long long s = strtoll(buf, &end, 10);
		if (*end)
			return -1;
		if (errno == ERANGE || s > HTTP_RETRY_AFTER_LIMIT_S)
			s = HTTP_RETRY_AFTER_LIMIT_S;
		return (int64_t)s * 1000;
	}
	int64_t t;
	if (!http_retry_date(buf, &t))
		return -1;
	int64_t delta = t - (int64_t)now;
	if (delta <= 0)
		return 0;
	return (delta > HTTP_RETRY_AFTER_LIMIT_S ? HTTP_RETRY_AFTER_LIMIT_S : delta) * 1000;
}
