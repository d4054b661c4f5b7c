/* Small helpers the pooler shares: a printf-style ErrorResponse over pgproto, big-endian reads,
 * and name/value tables (server parameters, client and server settings). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pg_internal.h"
#include "pgproto.h"

uint32_t pg_wire_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint32_t pg_wire_header_at(struct evbuffer *in, size_t off, unsigned char h[5])
{
	struct evbuffer_ptr p;
	evbuffer_ptr_set(in, &p, off, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(in, &p, h, 5);
	return pg_wire_u32(h + 1);
}

bool pg_wire_bind_names(const unsigned char *m, size_t len, const char **portal, const char **stmt)
{
	if (len < 5)
		return false;
	const char *p = (const char *)m + 5;
	size_t pl = strnlen(p, len - 5);
	if (5 + pl + 1 >= len)
		return false;
	const char *s = p + pl + 1;
	if (strnlen(s, len - 5 - pl - 1) >= len - 5 - pl - 1)
		return false;
	*portal = p;
	*stmt = s;
	return true;
}

size_t pg_wire_request_end(struct evbuffer *in, const char *ends)
{
	size_t off = 0, total = evbuffer_get_length(in);
	while (off + 5 <= total) {
		unsigned char h[5];
		uint32_t len = pg_wire_header_at(in, off, h);
		if (len < 4 || off + len + 1 > total)
			return 0;
		off += (size_t)len + 1;
		if (strchr(ends, h[0]))
			return off;
	}
	return 0;
}

/* A printf-style ErrorResponse; a message that cannot be queued (no memory) is dropped, the
 * connection is closed right after anyway. */
void pg_wire_error(struct evbuffer *out, const char *severity, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(void)!pgproto_put_error(out, severity, sqlstate, msg);
}

/* A pair is one allocation, "name\0value\0" (value points into it): a client's startup settings
 * stay small. */
static char *pg_param_pair(const char *name, const char *value, char **v)
{
	size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
	char *n = malloc(nl + vl);
	if (!n)
		return NULL;
	memcpy(n, name, nl);
	*v = memcpy(n + nl, value, vl);
	return n;
}

/* The last generation handed out: one sequence for every set, so a generation never stands for
 * two different contents, even of a set cleared and filled again. */
static uint64_t pg_params_gens;

int pg_params_set(struct pg_params *p, const char *name, const char *value)
{
	char *v;
	for (uint32_t i = 0; i < p->n; i++) {
		if (strcmp(p->v[i].name, name) == 0) {
			if (strcmp(p->v[i].value, value) == 0)
				return 0;
			char *n = pg_param_pair(name, value, &v); /* (name may be the old pair's) */
			if (!n)
				return -1;
			free(p->v[i].name);
			p->v[i] = (struct pg_param){ n, v };
			p->gen = ++pg_params_gens;
			return 0;
		}
	}
	if (p->n == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 1; /* most clients set one thing, if any */
		struct pg_param *nv = realloc(p->v, cap * sizeof(*nv));
		if (!nv)
			return -1;
		p->v = nv;
		p->cap = cap;
	}
	char *n = pg_param_pair(name, value, &v);
	if (!n)
		return -1;
	p->v[p->n++] = (struct pg_param){ n, v };
	p->gen = ++pg_params_gens;
	return 0;
}

const char *pg_params_get(const struct pg_params *p, const char *name)
{
	for (uint32_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].name, name) == 0)
			return p->v[i].value;
	return NULL;
}

void pg_params_del(struct pg_params *p, const char *name)
{
	for (uint32_t i = 0; i < p->n; i++) {
		if (strcmp(p->v[i].name, name) == 0) {
			free(p->v[i].name); /* (and its value) */
			p->v[i] = p->v[--p->n];
			p->gen = ++pg_params_gens;
			return;
		}
	}
}

void pg_params_clear(struct pg_params *p)
{
	for (uint32_t i = 0; i < p->n; i++)
		free(p->v[i].name); /* (and its value) */
	free(p->v);
	memset(p, 0, sizeof(*p));
	p->gen = ++pg_params_gens;
}
