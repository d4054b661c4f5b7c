/* PostgreSQL protocol messages tether writes itself (errors, login replies, startup, password,
 * simple queries) and the server-parameter table; everything else is relayed as received. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pg_internal.h"

static void pg_wire_header(struct evbuffer *out, char type, size_t body_len)
{
	uint32_t len = htonl((uint32_t)(body_len + 4));
	if (type)
		evbuffer_add(out, &type, 1);
	evbuffer_add(out, &len, 4);
}

uint32_t pg_wire_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void pg_wire_error(struct evbuffer *out, const char *severity, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t sl = strlen(severity) + 1, cl = strlen(sqlstate) + 1, ml = strlen(msg) + 1;
	pg_wire_header(out, 'E', 1 + sl + 1 + sl + 1 + cl + 1 + ml + 1);
	evbuffer_add(out, "S", 1);
	evbuffer_add(out, severity, sl);
	evbuffer_add(out, "V", 1);
	evbuffer_add(out, severity, sl);
	evbuffer_add(out, "C", 1);
	evbuffer_add(out, sqlstate, cl);
	evbuffer_add(out, "M", 1);
	evbuffer_add(out, msg, ml);
	evbuffer_add(out, "", 1);
}

void pg_wire_auth_ok(struct evbuffer *out)
{
	uint32_t zero = 0;
	pg_wire_header(out, 'R', 4);
	evbuffer_add(out, &zero, 4);
}

void pg_wire_param(struct evbuffer *out, const char *name, const char *value)
{
	size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
	pg_wire_header(out, 'S', nl + vl);
	evbuffer_add(out, name, nl);
	evbuffer_add(out, value, vl);
}

void pg_wire_backend_key(struct evbuffer *out, int32_t pid, int32_t key)
{
	uint32_t v[2] = { htonl((uint32_t)pid), htonl((uint32_t)key) };
	pg_wire_header(out, 'K', 8);
	evbuffer_add(out, v, 8);
}

void pg_wire_ready(struct evbuffer *out, char status)
{
	pg_wire_header(out, 'Z', 1);
	evbuffer_add(out, &status, 1);
}

void pg_wire_startup(struct evbuffer *out, const char *user, const char *database, const char *application_name)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t proto = htonl(196608);
	evbuffer_add(b, &proto, 4);
	evbuffer_add(b, "user", 5);
	evbuffer_add(b, user, strlen(user) + 1);
	evbuffer_add(b, "database", 9);
	evbuffer_add(b, database, strlen(database) + 1);
	if (application_name) {
		evbuffer_add(b, "application_name", 17);
		evbuffer_add(b, application_name, strlen(application_name) + 1);
	}
	evbuffer_add(b, "", 1);
	pg_wire_header(out, 0, evbuffer_get_length(b));
	evbuffer_add_buffer(out, b);
	evbuffer_free(b);
}

void pg_wire_password(struct evbuffer *out, const char *password)
{
	size_t l = strlen(password) + 1;
	pg_wire_header(out, 'p', l);
	evbuffer_add(out, password, l);
}

void pg_wire_query(struct evbuffer *out, const char *sql)
{
	size_t l = strlen(sql) + 1;
	pg_wire_header(out, 'Q', l);
	evbuffer_add(out, sql, l);
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
