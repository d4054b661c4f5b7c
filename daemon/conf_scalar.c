/* Scalar parsing for the config loader: durations, sizes, booleans, and ${VAR} expansion. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"

int conf_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* A non-negative decimal number with an optional fraction; the rest of the string in *end. */
static int conf_parse_number(const char *s, double *v, const char **end)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	char *e;
	errno = 0;
	*v = strtod(s, &e);
	if (errno || e == s || !isfinite(*v) || *v < 0)
		return -1;
	*end = e;
	return 0;
}

int conf_parse_duration(const char *s, int64_t *ms, char *err, size_t errlen)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 } };
	double v;
	const char *unit;
	if (conf_parse_number(s, &v, &unit) != 0) {
		snprintf(err, errlen, "not a duration (examples: 250ms, 30s, 5m, 1h)");
		return -1;
	}
	if (*unit == '\0') {
		if (v == 0) {
			*ms = 0;
			return 0;
		}
		snprintf(err, errlen, "a duration needs a unit: ms, s, m, h or d (e.g. 30s)");
		return -1;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			double r = v * units[i].ms;
			if (r > 9.2e18) {
				snprintf(err, errlen, "duration too large");
				return -1;
			}
			*ms = (int64_t)llround(r);
			return 0;
		}
	}
	snprintf(err, errlen, "unknown duration unit \"%s\" (use ms, s, m, h or d)", unit);
	return -1;
}

int conf_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
	static const struct {
		const char *unit;
		double mult;
	} units[] = { { "", 1 },	     { "B", 1 },	  { "KiB", 1024.0 },
		      { "MiB", 1048576.0 }, { "GiB", 1073741824.0 }, { "TiB", 1099511627776.0 },
		      { "KB", 1e3 },	     { "MB", 1e6 },	  { "GB", 1e9 },
		      { "TB", 1e12 },	     { "k", 1024.0 },	  { "K", 1024.0 } };
	double v;
	const char *unit;
	if (conf_parse_number(s, &v, &unit) != 0) {
		snprintf(err, errlen, "not a size (examples: 512, 64KiB, 4MiB, 1GiB)");
		return -1;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			double r = v * units[i].mult;
			if (r >= 1.8e19) {
				snprintf(err, errlen, "size too large");
				return -1;
			}
			if (r != floor(r)) {
				snprintf(err, errlen, "size is not a whole number of bytes");
				return -1;
			}
			*bytes = (uint64_t)r;
			return 0;
		}
	}
	snprintf(err, errlen, "unknown size unit \"%s\" (use B, KiB, MiB, GiB, KB, MB or GB)", unit);
	return -1;
}

int conf_expand_env(const char *in, char **out, char *err, size_t errlen)
{
	size_t cap = strlen(in) + 1, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
#define CONF_PUT(p, n)                                                                                     \
	do {                                                                                               \
		size_t n_ = (n);                                                                           \
		if (len + n_ + 1 > cap) {                                                                  \
			cap = (len + n_ + 1) * 2;                                                          \
			char *nb = realloc(buf, cap);                                                      \
			if (!nb)                                                                           \
				goto oom;                                                                  \
			buf = nb;                                                                          \
		}                                                                                          \
		memcpy(buf + len, (p), n_);                                                                \
		len += n_;                                                                                 \
	} while (0)
	for (const char *p = in; *p;) {
		if (p[0] == '$' && p[1] == '$') {
			CONF_PUT("$", 1);
			p += 2;
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			CONF_PUT(p, 1);
			p++;
			continue;
		}
		const char *close = strchr(p + 2, '}');
		if (!close) {
			snprintf(err, errlen, "unterminated ${...}");
			goto fail;
		}
		const char *name = p + 2;
		const char *def = strstr(name, ":-");
		if (def && def > close)
			def = NULL;
		size_t nl = (size_t)((def ? def : close) - name);
		char var[256];
		if (nl == 0 || nl >= sizeof(var)) {
			snprintf(err, errlen, "bad variable name in ${...}");
			goto fail;
		}
		memcpy(var, name, nl);
		var[nl] = '\0';
		for (size_t i = 0; i < nl; i++) {
			if (!(isalnum((unsigned char)var[i]) || var[i] == '_')) {
				snprintf(err, errlen, "bad variable name \"%s\" in ${...}", var);
				goto fail;
			}
		}
		const char *val = getenv(var);
		if (val) {
			CONF_PUT(val, strlen(val));
		} else if (def) {
			CONF_PUT(def + 2, (size_t)(close - def - 2));
		} else {
			snprintf(err, errlen, "environment variable %s is not set (use ${%s:-default} for a default)",
				 var, var);
			goto fail;
		}
		p = close + 1;
	}
#undef CONF_PUT
	buf[len] = '\0';
	*out = buf;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	free(buf);
	return -1;
}
