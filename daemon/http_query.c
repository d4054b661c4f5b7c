/* Query strings of requests to tether's own routes: one parameter, percent- and plus-decoded. */
#include <stdlib.h>
#include <string.h>

#include "http_query.h"

static int http_query_hex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

char *http_query_param(const char *query, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = query; p && *p;) {
		const char *end = strchr(p, '&');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len >= nl && strncmp(p, name, nl) == 0 && (len == nl || p[nl] == '=')) {
			const char *v = len == nl ? p + nl : p + nl + 1;
			size_t vl = len == nl ? 0 : len - nl - 1;
			char *out = malloc(vl + 1), *o = out;
			if (!out)
				return NULL;
			for (size_t i = 0; i < vl; i++) {
				int h1, h2;
				if (v[i] == '+')
					*o++ = ' ';
				else if (v[i] == '%' && i + 2 < vl && (h1 = http_query_hex(v[i + 1])) >= 0 &&
					 (h2 = http_query_hex(v[i + 2])) >= 0) {
					*o++ = (char)(h1 << 4 | h2);
					i += 2;
				} else
					*o++ = v[i];
			}
			*o = '\0';
			return out;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}
