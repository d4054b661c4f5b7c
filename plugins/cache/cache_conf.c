/* The `cache` config section's key tables, its checks (the Redis URL, each rule's regex and
 * shape), and the Redis URL parser. */
#include "cache_conf.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cache_conf_hint_modes[] = { "allow", "forbid", NULL };

void cache_conf_addr_deinit(struct cache_conf_addr *a)
{
	free(a->host);
	free(a->path);
	free(a->user);
	free(a->password);
	memset(a, 0, sizeof(*a));
}

static char *cache_conf_strndup(const char *s, size_t n)
{
	char *o = malloc(n + 1);
	if (o) {
		memcpy(o, s, n);
		o[n] = '\0';
	}
	return o;
}

static int cache_conf_number(const char *s, size_t n, long max, int *out)
{
	if (n == 0 || n > 9)
		return -1;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (int)v;
	return 0;
}

int cache_conf_parse_addr(const char *url, struct cache_conf_addr *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->port = 6379;
	if (strncmp(url, "unix://", 7) == 0) {
		const char *p = url + 7, *q = strchr(p, '?');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == 0 || p[0] != '/') {
			snprintf(err, errlen, "unix:// needs an absolute socket path (unix:///path/to/redis.sock)");
			return -1;
		}
		out->unix_socket = true;
		out->path = cache_conf_strndup(p, n);
		if (q) {
			if (strncmp(q, "?db=", 4) != 0 || cache_conf_number(q + 4, strlen(q + 4), 1000000, &out->db) != 0) {
				snprintf(err, errlen, "unix URL options: only ?db=N");
				goto fail;
			}
		}
		return out->path ? 0 : -1;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen, "expected redis://[:password@]host[:port][/db] or unix:///path");
		return -1;
	}
	const char *p = url + 8, *at = strrchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon) {
			snprintf(err, errlen, "credentials in the URL must be [user]:password@");
			return -1;
		}
		if (colon > p)
			out->user = cache_conf_strndup(p, (size_t)(colon - p));
		out->password = cache_conf_strndup(colon + 1, (size_t)(at - colon - 1));
		p = at + 1;
	}
	const char *slash = strchr(p, '/');
	size_t hl = slash ? (size_t)(slash - p) : strlen(p);
	const char *hend = p + hl;
	const char *colon = NULL;
	if (*p == '[') { /* [::1]:6379 */
		const char *rb = memchr(p, ']', hl);
		if (!rb) {
			snprintf(err, errlen, "unterminated [IPv6 address]");
			goto fail;
		}
		out->host = cache_conf_strndup(p + 1, (size_t)(rb - p - 1));
		colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(p, ':', hl);
		out->host = cache_conf_strndup(p, colon ? (size_t)(colon - p) : hl);
	}
	if (!out->host || !*out->host) {
		snprintf(err, errlen, "missing host");
		goto fail;
	}
	if (colon && cache_conf_number(colon + 1, (size_t)(hend - colon - 1), 65535, &out->port) != 0) {
		snprintf(err, errlen, "bad port");
		goto fail;
	}
	if (out->port == 0) {
		snprintf(err, errlen, "bad port");
		goto fail;
	}
	if (slash && slash[1] && cache_conf_number(slash + 1, strlen(slash + 1), 1000000, &out->db) != 0) {
		snprintf(err, errlen, "the path must be a database number (/0)");
		goto fail;
	}
	return 0;
fail:
	cache_conf_addr_deinit(out);
	return -1;
}

static int cache_conf_rule_validate(void *obj, struct conf_errors *errs)
{
	struct cache_conf_rule *r = obj;
	int rc = 0;
	if ((r->match == NULL) == (r->fingerprint == NULL)) {
		conf_errorf(errs, obj, NULL, "a rule needs exactly one of match or fingerprint");
		rc = -1;
	}
	if (r->match) {
		regex_t re;
		int e = regcomp(&re, r->match, REG_EXTENDED | REG_ICASE | REG_NOSUB);
		if (e != 0) {
			char buf[256];
			regerror(e, &re, buf, sizeof(buf));
			conf_errorf(errs, obj, "match", "invalid regular expression: %s", buf);
			rc = -1;
		} else {
			regfree(&re);
		}
	}
	return rc;
}

static const struct conf_key cache_conf_rule_keys[] = {
	{ "database", CONF_STRING, CONF_RELOAD, offsetof(struct cache_conf_rule, database), NULL, 0, 0, NULL, NULL,
	  "Client-visible database the rule applies to (unset: every database)." },
	{ "match", CONF_STRING, CONF_RELOAD, offsetof(struct cache_conf_rule, match), NULL, 0, 0, NULL, NULL,
	  "POSIX extended regular expression (case-insensitive) on the normalized statement: comments gone, "
	  "whitespace collapsed, keywords and unquoted names lower-case, literals as written." },
	{ "fingerprint", CONF_STRING, CONF_RELOAD, offsetof(struct cache_conf_rule, fingerprint), NULL, 0, 0, NULL,
	  NULL, "Exact normalized statement with literals replaced by ? ($n parameters kept)." },
	{ "ttl", CONF_DURATION, CONF_RELOAD, offsetof(struct cache_conf_rule, ttl), "0s", 0, 31536000000LL, NULL,
	  NULL, "How long a result stays cached (0s: default_ttl)." },
	{ NULL }
};

static const struct conf_table cache_conf_rule_table = {
	.name = "rule",
	.keys = cache_conf_rule_keys,
	.size = sizeof(struct cache_conf_rule),
	.validate = cache_conf_rule_validate,
};

static int cache_conf_validate(void *obj, struct conf_errors *errs)
{
	struct cache_conf *cc = obj;
	int rc = 0;
	if (cc->redis) {
		struct cache_conf_addr a;
		char err[200];
		if (cache_conf_parse_addr(cc->redis, &a, err, sizeof(err)) != 0) {
			conf_errorf(errs, obj, "redis", "%s", err);
			rc = -1;
		} else {
			if (a.password && cc->password) {
				conf_errorf(errs, obj, "password", "the redis URL already has a password");
				rc = -1;
			}
			cache_conf_addr_deinit(&a);
		}
	}
	if (cc->key_prefix && strpbrk(cc->key_prefix, " \r\n")) {
		conf_errorf(errs, obj, "key_prefix", "no spaces or line breaks");
		rc = -1;
	}
	return rc;
}

static const struct conf_key cache_conf_keys[] = {
	{ "redis", CONF_STRING, CONF_REQUIRED, offsetof(struct cache_conf, redis), NULL, 0, 0, NULL, NULL,
	  "redis://host:port/db or unix:///path/to/redis.sock[?db=N]. Put the password in `password`, where it "
	  "is masked, rather than in the URL." },
	{ "password", CONF_STRING, CONF_SECRET, offsetof(struct cache_conf, password), NULL, 0, 0, NULL, NULL,
	  "Redis password (AUTH); use ${ENV}." },
	{ "connect_timeout", CONF_DURATION, 0, offsetof(struct cache_conf, connect_timeout), "1s", 10, 60000, NULL,
	  NULL, "Bound on connecting to Redis (TCP or unix socket, AUTH, SELECT, PING)." },
	{ "command_timeout", CONF_DURATION, 0, offsetof(struct cache_conf, command_timeout), "250ms", 5, 60000, NULL,
	  NULL, "Bound on one Redis reply; a late reply counts as a failure and drops the connection." },
	{ "key_prefix", CONF_STRING, 0, offsetof(struct cache_conf, key_prefix), "\"tether:\"", 0, 0, NULL, NULL,
	  "Prefix of every Redis key tether writes (versions <prefix>v:..., entries <prefix>e:...). Every "
	  "tether sharing a Redis and a database must use the same prefix." },
	{ "max_entry_size", CONF_SIZE, CONF_RELOAD, offsetof(struct cache_conf, max_entry_size), "1MiB", 1,
	  536870912, NULL, NULL, "Results larger than this are not cached." },
	{ "default_ttl", CONF_DURATION, CONF_RELOAD, offsetof(struct cache_conf, default_ttl), "60s", 1,
	  31536000000LL, NULL, NULL,
	  "TTL of rules and hints that set none; it also bounds staleness from writes made outside tether." },
	{ "hints", CONF_ENUM, CONF_RELOAD, offsetof(struct cache_conf, hints), "allow", 0, 0, cache_conf_hint_modes,
	  NULL, "allow: a statement comment /* tether:cache ttl=30s */ caches it without a rule; forbid: only "
	  "rules do. /* tether:nocache */ always prevents caching." },
	{ "rules", CONF_LIST, CONF_RELOAD, offsetof(struct cache_conf, rules), NULL, 0, 0, NULL, &cache_conf_rule_table,
	  "Statements to cache: {database, match | fingerprint, ttl}; the first matching rule wins. Only "
	  "single read-only SELECTs are ever cached, whatever a rule says." },
	{ "safe_functions", CONF_STRLIST, CONF_RELOAD, offsetof(struct cache_conf, safe_functions), NULL, 0, 0, NULL,
	  NULL, "Your own functions (lower-case names) that write nothing and may be cached; any other "
	  "function tether does not know makes a statement uncacheable and invalidates everything." },
	{ "failure_threshold", CONF_INT, CONF_RELOAD, offsetof(struct cache_conf, failure_threshold), "3", 1, 1000,
	  NULL, NULL, "Consecutive Redis failures that open the circuit breaker." },
	{ "open_for", CONF_DURATION, CONF_RELOAD, offsetof(struct cache_conf, open_for), "5s", 10, 600000, NULL, NULL,
	  "While open, every read goes to PostgreSQL at once; then one reconnect probes Redis (half-open)." },
	{ "single_flight_wait", CONF_DURATION, CONF_RELOAD, offsetof(struct cache_conf, single_flight_wait), "5s", 0,
	  600000, NULL, NULL,
	  "Concurrent misses of one entry wait this long for the first one's result, then run the query "
	  "themselves." },
	{ "max_pending", CONF_INT, CONF_RELOAD, offsetof(struct cache_conf, max_pending), "10000", 1, 10000000, NULL,
	  NULL, "Table invalidations kept in memory while Redis is unreachable; beyond it tether records "
	  "\"everything\" instead." },
	{ "schema_ttl", CONF_DURATION, CONF_RELOAD, offsetof(struct cache_conf, schema_ttl), "30s", 0, 86400000,
	  NULL, NULL,
	  "How long the pooler trusts what it learnt from the catalog: the tables behind a view, the "
	  "tables a write reaches through foreign keys and partitions, which tables have triggers. DDL "
	  "through any tether drops it at once; DDL made outside tether is seen within this time." },
	{ "write_wait", CONF_DURATION, CONF_RELOAD, offsetof(struct cache_conf, write_wait), "2s", 0, 600000, NULL,
	  NULL,
	  "When Redis cannot take a write's invalidation, the commit's acknowledgement waits up to this long for "
	  "Redis to come back and the invalidation to land, so other tethers never read what it replaced; past "
	  "it the write is acknowledged and other tethers are bounded by the TTL. 0: do not wait." },
	{ NULL }
};

const struct conf_table cache_conf_table = {
	.name = "cache",
	.desc = "Read cache in Redis for queries through the PostgreSQL pooler: rules choose statements, "
		"writes through any tether sharing the Redis invalidate them before the commit is "
		"acknowledged.",
	.keys = cache_conf_keys,
	.size = sizeof(struct cache_conf),
	.validate = cache_conf_validate,
	.reference_commented = true,
};
