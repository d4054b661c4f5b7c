/* Result tables for the admin database: columns and rows written either as PostgreSQL
 * RowDescription / DataRow / CommandComplete messages or as a JSON array of objects, so SHOW
 * and /admin/pools give the same figures from the same code. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pg_admin.h"
#include "pgproto.h"

#define PG_ADMIN_OID_INT8 20
#define PG_ADMIN_OID_TEXT 25

static void pg_admin_table_put16(struct pg_admin_table *t, struct evbuffer *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	if (evbuffer_add(b, x, 2) != 0)
		t->err = -1;
}

static void pg_admin_table_put32(struct pg_admin_table *t, struct evbuffer *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	if (evbuffer_add(b, x, 4) != 0)
		t->err = -1;
}

/* Appends type, length word, column count and `body` (drained) to t->wire. */
static void pg_admin_table_put_msg(struct pg_admin_table *t, uint8_t type, struct evbuffer *body)
{
	size_t len = evbuffer_get_length(body);
	if (evbuffer_add(t->wire, &type, 1) != 0)
		t->err = -1;
	pg_admin_table_put32(t, t->wire, (uint32_t)(4 + 2 + len));
	pg_admin_table_put16(t, t->wire, (uint16_t)t->ncols);
	if (evbuffer_add_buffer(t->wire, body) != 0)
		t->err = -1;
}

void pg_admin_table_begin(struct pg_admin_table *t, const char *const *cols, const char *types)
{
	t->cols = cols;
	t->types = types;
	t->ncols = t->col = t->nrows = 0;
	t->jrow = NULL;
	t->row = NULL;
	t->err = 0;
	while (cols[t->ncols])
		t->ncols++;
	if (strlen(types) != t->ncols)
		t->err = -1; /* a table definition out of step with its types */
	if (!t->wire)
		return;
	t->row = evbuffer_new();
	if (!t->row) {
		t->err = -1;
		return;
	}
	/* RowDescription: name, table oid, column number, type oid, type size, typmod, format */
	for (size_t i = 0; i < t->ncols; i++) {
		bool num = types[i] == 'i';
		if (evbuffer_add(t->row, cols[i], strlen(cols[i]) + 1) != 0)
			t->err = -1;
		pg_admin_table_put32(t, t->row, 0);
		pg_admin_table_put16(t, t->row, 0);
		pg_admin_table_put32(t, t->row, num ? PG_ADMIN_OID_INT8 : PG_ADMIN_OID_TEXT);
		pg_admin_table_put16(t, t->row, num ? 8 : 0xffff);
		pg_admin_table_put32(t, t->row, 0xffffffff);
		pg_admin_table_put16(t, t->row, 0);
	}
	pg_admin_table_put_msg(t, 'T', t->row);
}

/* JSON strings must be UTF-8; names clients chose need not be. */
static json_t *pg_admin_table_json_str(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static void pg_admin_table_cell_json(struct pg_admin_table *t, json_t *v)
{
	if (!t->jrow)
		t->jrow = json_object();
	if (!t->jrow || !v || json_object_set_new(t->jrow, t->cols[t->col], v) != 0)
		t->err = -1;
}

void pg_admin_table_text(struct pg_admin_table *t, const char *s)
{
	if (t->col >= t->ncols) {
		t->err = -1;
		return;
	}
	if (t->json) {
		pg_admin_table_cell_json(t, s ? pg_admin_table_json_str(s) : json_null());
	} else if (t->row) {
		pg_admin_table_put32(t, t->row, s ? (uint32_t)strlen(s) : 0xffffffff);
		if (s && evbuffer_add(t->row, s, strlen(s)) != 0)
			t->err = -1;
	}
	t->col++;
}

void pg_admin_table_int(struct pg_admin_table *t, int64_t v)
{
	if (t->json) {
		if (t->col >= t->ncols) {
			t->err = -1;
			return;
		}
		pg_admin_table_cell_json(t, json_integer((json_int_t)v));
		t->col++;
		return;
	}
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	pg_admin_table_text(t, buf);
}

void pg_admin_table_end_row(struct pg_admin_table *t)
{
	if (t->col != t->ncols)
		t->err = -1;
	t->col = 0;
	t->nrows++;
	if (t->json) {
		if (!t->jrow || json_array_append_new(t->json, t->jrow) != 0)
			t->err = -1;
		t->jrow = NULL;
	} else if (t->row) {
		pg_admin_table_put_msg(t, 'D', t->row);
	}
}

int pg_admin_table_end(struct pg_admin_table *t, const char *tag)
{
	if (t->row)
		evbuffer_free(t->row);
	t->row = NULL;
	if (t->jrow)
		json_decref(t->jrow);
	t->jrow = NULL;
	if (t->wire && pgproto_put_command_complete(t->wire, tag) != 0)
		t->err = -1;
	return t->err;
}
