/* Small helpers the pooler shares: a printf-style ErrorResponse over pgproto, big-endian reads,
 * and the table of server parameters reported with ParameterStatus. */
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

void pg_params_set(struct pg_params *p, const char *name, const char *value)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->name[i], name) == 0) {
			free(p->value[i]);
			p->value[i] = strdup(value);
			return;
		}
	}
	if (p->n < PG_MAX_PARAMS) {
		p->name[p->n] = strdup(name);
		p->value[p->n] = strdup(value);
		p->n++;
	}
}

void pg_params_clear(struct pg_params *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->name[i]);
		free(p->value[i]);
	}
	p->n = 0;
}
