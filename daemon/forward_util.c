/* The I/O-free parts of forwarding: which headers are hop-by-hop (RFC 9110 7.6.1), rewriting an
 * upstream Location onto tether's own address, query parameters, and checking a forwarding
 * section's URLs. */
#include "forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const forward_auth_names[] = { "pass", "strip", "reject", NULL };

/* Is `name` (nlen long) one of the comma-separated tokens of a Connection header value? */
static bool forward_connection_names(const char *connection, const char *name, size_t nlen)
{
	const char *p = connection;
	if (strnlen(connection, nlen) < nlen)
		return false; /* shorter than the name ("keep-alive" and most names) */
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p;
		while (*end && *end != ',')
			end++;
		const char *tail = end;
		while (tail > p && (tail[-1] == ' ' || tail[-1] == '\t'))
			tail--;
		if ((size_t)(tail - p) == nlen && strncasecmp(p, name, nlen) == 0)
			return true;
		p = end;
	}
	return false;
}

const char *forward_connection_listed(const char *connection)
{
	return connection && strcasecmp(connection, "keep-alive") == 0 ? NULL : connection;
}

bool forward_hop_by_hop(const char *name, const char *connection)
{
	static const struct {
		const char *s;
		size_t n;
	} hop[] = { { "Connection", 10 }, { "Keep-Alive", 10 }, { "TE", 2 },		{ "Trailer", 7 },
		    { "Transfer-Encoding", 17 }, { "Upgrade", 7 }, { "Proxy-Connection", 16 } };
	size_t nlen = strlen(name);
	/* Every name above starts with c, k, t, u or p: most headers are ruled out by one test. */
	char c0 = (char)(name[0] | 0x20);
	if (c0 != 'c' && c0 != 'k' && c0 != 't' && c0 != 'u' && c0 != 'p')
		return connection && forward_connection_names(connection, name, nlen);
	for (size_t i = 0; i < sizeof(hop) / sizeof(*hop); i++)
		if (hop[i].n == nlen && strcasecmp(name, hop[i].s) == 0)
			return true;
	/* Proxy-Authorization, Proxy-Authenticate...: meant for the hop, never for Google. */
	if (strncasecmp(name, "Proxy-", 6) == 0)
		return true;
	return connection && forward_connection_names(connection, name, nlen);
}

/* Length of the "scheme://authority" part of a URL, or 0 when it has none. */
static size_t forward_origin_len(const char *url)
{
	const char *s = strstr(url, "://");
	if (!s)
		return 0;
	s += 3;
	s += strcspn(s, "/?#");
	return (size_t)(s - url);
}

char *forward_rewrite_location(const char *location, const char *endpoint, const char *public_base)
{
	size_t olen = forward_origin_len(endpoint), elen = strlen(endpoint);
	while (elen > olen && endpoint[elen - 1] == '/')
		elen--;
	if (!olen || strlen(location) < elen)
		return NULL;
	/* scheme and host compare case-insensitively, a base path exactly */
	if (strncasecmp(location, endpoint, olen) != 0 || strncmp(location + olen, endpoint + olen, elen - olen) != 0)
		return NULL;
	char next = location[elen];
	if (next != '\0' && next != '/' && next != '?')
		return NULL; /* https://storage.googleapis.com.evil/... */
	size_t blen = strlen(public_base);
	while (blen && public_base[blen - 1] == '/')
		blen--;
	char *out;
	if (asprintf(&out, "%.*s%s", (int)blen, public_base, location + elen) < 0)
		return NULL;
	return out;
}

bool forward_query_param(const char *query, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = query;
	while (p && *p) {
		const char *end = strchr(p, '&');
		size_t plen = end ? (size_t)(end - p) : strlen(p);
		if (plen >= nlen && strncmp(p, name, nlen) == 0 && (plen == nlen || p[nlen] == '=')) {
			const char *v = plen == nlen ? "" : p + nlen + 1;
			size_t vlen = plen == nlen ? 0 : plen - nlen - 1;
			if (buf && len) {
				size_t n = vlen < len - 1 ? vlen : len - 1;
				memcpy(buf, v, n);
				buf[n] = '\0';
			}
			return true;
		}
		p = end ? end + 1 : NULL;
	}
	return false;
}

static bool forward_url_ok(const char *url)
{
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return false;
	const char *host = strstr(url, "://") + 3;
	size_t hlen = strcspn(host, "/?#");
	if (hlen == 0 || memchr(host, '@', hlen))
		return false;
	return !strpbrk(url, "?# \t\r\n") ;
}

int forward_conf_validate(const struct forward_conf *fc, const void *obj, struct conf_errors *errs)
{
	int rc = 0;
	if (!fc->endpoint || !forward_url_ok(fc->endpoint)) {
		conf_errorf(errs, obj, "endpoint",
			    "not an http(s) base URL without credentials, query or fragment (e.g. https://storage.googleapis.com)");
		rc = -1;
	}
	if (fc->public_url && !forward_url_ok(fc->public_url)) {
		conf_errorf(errs, obj, "public_url", "not an http(s) base URL (e.g. http://127.0.0.1:8080)");
		rc = -1;
	}
	return rc;
}
