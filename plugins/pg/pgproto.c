/* PostgreSQL v3 wire-protocol framing and message builders (the parsers are in
 * pgproto_parse.c); pure code over byte buffers and evbuffers, no I/O. */
#include "pgproto.h"
#include "pgproto_internal.h"

#include <stdlib.h>
#include <string.h>


const char *pgproto_strerror(int rc)
{
	static const char *const msgs[] = { "ok", "invalid message length (too short)", "message longer than max_packet_size",
					    "malformed message", "unexpected message type", "out of memory" };
	if (rc == PGPROTO_INCOMPLETE)
		return "incomplete message";
	return rc <= 0 && rc >= PGPROTO_ERR_NOMEM ? msgs[-rc] : "unknown error";
}


static const char *pgproto_nz(const char *s)
{
	return s ? s : "";
}

/* ---- Framing ------------------------------------------------------------------------------ */

int pgproto_frame_read(const uint8_t *data, size_t len, bool startup, uint32_t max_packet_size,
		       struct pgproto_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->hdr = startup ? 4 : 5;
	if (len < f->hdr)
		return PGPROTO_INCOMPLETE;
	f->type = startup ? 0 : data[0];
	f->len = pgproto_be32(data + f->hdr - 4);
	/* A startup packet carries at least its protocol code after the length. */
	if (f->len < (startup ? 8u : 4u))
		return PGPROTO_ERR_SHORT;
	if (f->len > max_packet_size)
		return PGPROTO_ERR_LONG;
	f->total = f->hdr - 4 + (size_t)f->len;
	return len >= f->total ? PGPROTO_OK : PGPROTO_INCOMPLETE;
}

int pgproto_frame_peek(struct evbuffer *in, bool startup, uint32_t max_packet_size, struct pgproto_frame *f)
{
	uint8_t h[5];
	ev_ssize_t n = evbuffer_copyout(in, h, startup ? 4 : 5);
	if (n < 0)
		n = 0;
	int rc = pgproto_frame_read(h, (size_t)n, startup, max_packet_size, f);
	if (rc != PGPROTO_INCOMPLETE || f->total == 0)
		return rc;
	return evbuffer_get_length(in) >= f->total ? PGPROTO_OK : PGPROTO_INCOMPLETE;
}

/* ---- Builders ----------------------------------------------------------------------------- */

/* Messages are written into space reserved in one piece, so a failure leaves `out` untouched
 * rather than holding half a message that would desynchronise the stream. */
struct pgproto_w {
	struct evbuffer *out;
	struct evbuffer_iovec v;
	uint8_t *p;
	size_t off, total;
};

/* Accumulates a length, refusing anything PostgreSQL would refuse. */
static bool pgproto_add(size_t *acc, size_t n)
{
	if (n > PGPROTO_MAX_LEN || *acc > PGPROTO_MAX_LEN - n)
		return false;
	*acc += n;
	return true;
}

static bool pgproto_w_begin(struct pgproto_w *w, struct evbuffer *out, uint8_t type, size_t body)
{
	size_t len = 4;
	if (!out || !pgproto_add(&len, body))
		return false;
	w->out = out;
	w->total = len + (type ? 1 : 0);
	w->off = 0;
	if (evbuffer_reserve_space(out, (ev_ssize_t)w->total, &w->v, 1) < 1 || w->v.iov_len < w->total)
		return false;
	w->p = w->v.iov_base;
	if (type)
		w->p[w->off++] = type;
	w->p[w->off++] = (uint8_t)(len >> 24);
	w->p[w->off++] = (uint8_t)(len >> 16);
	w->p[w->off++] = (uint8_t)(len >> 8);
	w->p[w->off++] = (uint8_t)len;
	return true;
}

static void pgproto_w_u8(struct pgproto_w *w, uint8_t b)
{
	w->p[w->off++] = b;
}

static void pgproto_w_u16(struct pgproto_w *w, uint16_t v)
{
	w->p[w->off++] = (uint8_t)(v >> 8);
	w->p[w->off++] = (uint8_t)v;
}

static void pgproto_w_u32(struct pgproto_w *w, uint32_t v)
{
	w->p[w->off++] = (uint8_t)(v >> 24);
	w->p[w->off++] = (uint8_t)(v >> 16);
	w->p[w->off++] = (uint8_t)(v >> 8);
	w->p[w->off++] = (uint8_t)v;
}

static void pgproto_w_mem(struct pgproto_w *w, const void *p, size_t n)
{
	if (n)
		memcpy(w->p + w->off, p, n);
	w->off += n;
}

static void pgproto_w_str(struct pgproto_w *w, const char *s)
{
	pgproto_w_mem(w, s, strlen(s) + 1);
}

static int pgproto_w_end(struct pgproto_w *w)
{
	/* Every builder computes its size first; on a mismatch (a bug) nothing is committed. */
	if (w->off != w->total)
		return -1;
	w->v.iov_len = w->total;
	return evbuffer_commit_space(w->out, &w->v, 1) == 0 ? 0 : -1;
}

int pgproto_put_notice(struct evbuffer *out, uint8_t type, const char *severity, const char *sqlstate,
		       const char *message, const char *detail, const char *hint)
{
	const char *vals[6] = { pgproto_nz(severity), pgproto_nz(severity), pgproto_nz(sqlstate),
				pgproto_nz(message), detail, hint };
	static const uint8_t codes[6] = { 'S', 'V', 'C', 'M', 'D', 'H' };
	size_t body = 1;
	struct pgproto_w w;
	if (type != 'E' && type != 'N')
		return -1;
	for (int i = 0; i < 6; i++)
		if (vals[i] && !pgproto_add(&body, 2 + strlen(vals[i])))
			return -1;
	if (!pgproto_w_begin(&w, out, type, body))
		return -1;
	for (int i = 0; i < 6; i++) {
		if (!vals[i])
			continue;
		pgproto_w_u8(&w, codes[i]);
		pgproto_w_str(&w, vals[i]);
	}
	pgproto_w_u8(&w, 0);
	return pgproto_w_end(&w);
}

int pgproto_put_error(struct evbuffer *out, const char *severity, const char *sqlstate, const char *message)
{
	return pgproto_put_notice(out, 'E', severity, sqlstate, message, NULL, NULL);
}

static int pgproto_put_auth_data(struct evbuffer *out, uint32_t code, const void *data, size_t len)
{
	struct pgproto_w w;
	size_t body = 4;
	if ((len && !data) || !pgproto_add(&body, len) || !pgproto_w_begin(&w, out, 'R', body))
		return -1;
	pgproto_w_u32(&w, code);
	pgproto_w_mem(&w, data, len);
	return pgproto_w_end(&w);
}

int pgproto_put_auth_ok(struct evbuffer *out)
{
	return pgproto_put_auth_data(out, PGPROTO_AUTH_OK, NULL, 0);
}

int pgproto_put_auth_cleartext(struct evbuffer *out)
{
	return pgproto_put_auth_data(out, PGPROTO_AUTH_CLEARTEXT, NULL, 0);
}

int pgproto_put_auth_md5(struct evbuffer *out, const uint8_t salt[4])
{
	return pgproto_put_auth_data(out, PGPROTO_AUTH_MD5, salt, 4);
}

int pgproto_put_auth_sasl(struct evbuffer *out, const char *const *mechs)
{
	struct pgproto_w w;
	size_t body = 4 + 1;
	for (size_t i = 0; mechs && mechs[i]; i++)
		if (!pgproto_add(&body, strlen(mechs[i]) + 1))
			return -1;
	if (!pgproto_w_begin(&w, out, 'R', body))
		return -1;
	pgproto_w_u32(&w, PGPROTO_AUTH_SASL);
	for (size_t i = 0; mechs && mechs[i]; i++)
		pgproto_w_str(&w, mechs[i]);
	pgproto_w_u8(&w, 0);
	return pgproto_w_end(&w);
}

int pgproto_put_auth_sasl_continue(struct evbuffer *out, const void *data, size_t len)
{
	return pgproto_put_auth_data(out, PGPROTO_AUTH_SASL_CONTINUE, data, len);
}

int pgproto_put_auth_sasl_final(struct evbuffer *out, const void *data, size_t len)
{
	return pgproto_put_auth_data(out, PGPROTO_AUTH_SASL_FINAL, data, len);
}

/* A message whose body is a list of NUL-terminated strings (count given or NULL-terminated). */
static int pgproto_put_strs(struct evbuffer *out, uint8_t type, const char *const *s, size_t n)
{
	struct pgproto_w w;
	size_t body = 0;
	for (size_t i = 0; i < n; i++)
		if (!pgproto_add(&body, strlen(pgproto_nz(s[i])) + 1))
			return -1;
	if (!pgproto_w_begin(&w, out, type, body))
		return -1;
	for (size_t i = 0; i < n; i++)
		pgproto_w_str(&w, pgproto_nz(s[i]));
	return pgproto_w_end(&w);
}

int pgproto_put_parameter_status(struct evbuffer *out, const char *name, const char *value)
{
	const char *s[2] = { name, value };
	return pgproto_put_strs(out, 'S', s, 2);
}

int pgproto_put_backend_key_data(struct evbuffer *out, uint32_t pid, uint32_t key)
{
	struct pgproto_w w;
	if (!pgproto_w_begin(&w, out, 'K', 8))
		return -1;
	pgproto_w_u32(&w, pid);
	pgproto_w_u32(&w, key);
	return pgproto_w_end(&w);
}

int pgproto_put_ready_for_query(struct evbuffer *out, uint8_t status)
{
	struct pgproto_w w;
	if (!pgproto_w_begin(&w, out, 'Z', 1))
		return -1;
	pgproto_w_u8(&w, status);
	return pgproto_w_end(&w);
}

int pgproto_put_command_complete(struct evbuffer *out, const char *tag)
{
	return pgproto_put_strs(out, 'C', &tag, 1);
}

int pgproto_put_negotiate_protocol_version(struct evbuffer *out, uint16_t minor, const char *const *options,
					   size_t n_options)
{
	struct pgproto_w w;
	size_t body = 8;
	if (n_options > INT32_MAX)
		return -1;
	for (size_t i = 0; i < n_options; i++)
		if (!pgproto_add(&body, strlen(pgproto_nz(options[i])) + 1))
			return -1;
	if (!pgproto_w_begin(&w, out, 'v', body))
		return -1;
	pgproto_w_u32(&w, PGPROTO_VERSION(3, minor));
	pgproto_w_u32(&w, (uint32_t)n_options);
	for (size_t i = 0; i < n_options; i++)
		pgproto_w_str(&w, pgproto_nz(options[i]));
	return pgproto_w_end(&w);
}

int pgproto_put_byte(struct evbuffer *out, uint8_t b)
{
	return evbuffer_add(out, &b, 1) == 0 ? 0 : -1;
}

int pgproto_put_empty(struct evbuffer *out, uint8_t type)
{
	struct pgproto_w w;
	if (!type || !pgproto_w_begin(&w, out, type, 0))
		return -1;
	return pgproto_w_end(&w);
}

int pgproto_put_sync(struct evbuffer *out)
{
	return pgproto_put_empty(out, 'S');
}

int pgproto_put_terminate(struct evbuffer *out)
{
	return pgproto_put_empty(out, 'X');
}

int pgproto_put_password(struct evbuffer *out, const char *password)
{
	return pgproto_put_strs(out, 'p', &password, 1);
}

int pgproto_put_sasl_initial_response(struct evbuffer *out, const char *mech, const void *data, size_t len)
{
	struct pgproto_w w;
	size_t body = 4;
	mech = pgproto_nz(mech);
	if (!pgproto_add(&body, strlen(mech) + 1) || (data && !pgproto_add(&body, len)) ||
	    !pgproto_w_begin(&w, out, 'p', body))
		return -1;
	pgproto_w_str(&w, mech);
	pgproto_w_u32(&w, data ? (uint32_t)len : UINT32_MAX);
	if (data)
		pgproto_w_mem(&w, data, len);
	return pgproto_w_end(&w);
}

int pgproto_put_sasl_response(struct evbuffer *out, const void *data, size_t len)
{
	struct pgproto_w w;
	if ((len && !data) || !pgproto_w_begin(&w, out, 'p', len))
		return -1;
	pgproto_w_mem(&w, data, len);
	return pgproto_w_end(&w);
}

int pgproto_put_startup(struct evbuffer *out, const char *const *kv)
{
	struct pgproto_w w;
	size_t body = 4 + 1, n = 0;
	while (kv && kv[n])
		n++;
	if (n % 2)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!pgproto_add(&body, strlen(kv[i]) + 1))
			return -1;
	if (!pgproto_w_begin(&w, out, 0, body))
		return -1;
	pgproto_w_u32(&w, PGPROTO_V3);
	for (size_t i = 0; i < n; i++)
		pgproto_w_str(&w, kv[i]);
	pgproto_w_u8(&w, 0);
	return pgproto_w_end(&w);
}

int pgproto_put_cancel_request(struct evbuffer *out, uint32_t pid, uint32_t key)
{
	struct pgproto_w w;
	if (!pgproto_w_begin(&w, out, 0, 12))
		return -1;
	pgproto_w_u32(&w, PGPROTO_CANCEL_CODE);
	pgproto_w_u32(&w, pid);
	pgproto_w_u32(&w, key);
	return pgproto_w_end(&w);
}

int pgproto_put_query(struct evbuffer *out, const char *sql)
{
	return pgproto_put_strs(out, 'Q', &sql, 1);
}

int pgproto_put_parse(struct evbuffer *out, const char *name, const char *query, const uint32_t *oids,
		      uint16_t n_oids)
{
	struct pgproto_w w;
	size_t body = 2 + (size_t)n_oids * 4;
	name = pgproto_nz(name);
	query = pgproto_nz(query);
	if (n_oids > INT16_MAX || (n_oids && !oids) || !pgproto_add(&body, strlen(name) + 1) ||
	    !pgproto_add(&body, strlen(query) + 1) || !pgproto_w_begin(&w, out, 'P', body))
		return -1;
	pgproto_w_str(&w, name);
	pgproto_w_str(&w, query);
	pgproto_w_u16(&w, n_oids);
	for (uint16_t i = 0; i < n_oids; i++)
		pgproto_w_u32(&w, oids[i]);
	return pgproto_w_end(&w);
}

int pgproto_put_bind(struct evbuffer *out, const char *portal, const char *stmt, uint16_t n_formats,
		     const int16_t *formats, uint16_t n_params, const uint8_t *const *values,
		     const uint32_t *lengths, uint16_t n_result_formats, const int16_t *result_formats)
{
	struct pgproto_w w;
	size_t body = 2 + (size_t)n_formats * 2 + 2 + (size_t)n_params * 4 + 2 + (size_t)n_result_formats * 2;
	portal = pgproto_nz(portal);
	stmt = pgproto_nz(stmt);
	if (n_formats > INT16_MAX || n_params > INT16_MAX || n_result_formats > INT16_MAX ||
	    (n_formats && !formats) || (n_params && (!values || !lengths)) ||
	    (n_result_formats && !result_formats))
		return -1;
	if (!pgproto_add(&body, strlen(portal) + 1) || !pgproto_add(&body, strlen(stmt) + 1))
		return -1;
	for (uint16_t i = 0; i < n_params; i++)
		if (values[i] && (lengths[i] > INT32_MAX || !pgproto_add(&body, lengths[i])))
			return -1;
	if (!pgproto_w_begin(&w, out, 'B', body))
		return -1;
	pgproto_w_str(&w, portal);
	pgproto_w_str(&w, stmt);
	pgproto_w_u16(&w, n_formats);
	for (uint16_t i = 0; i < n_formats; i++)
		pgproto_w_u16(&w, (uint16_t)formats[i]);
	pgproto_w_u16(&w, n_params);
	for (uint16_t i = 0; i < n_params; i++) {
		pgproto_w_u32(&w, values[i] ? lengths[i] : UINT32_MAX);
		if (values[i])
			pgproto_w_mem(&w, values[i], lengths[i]);
	}
	pgproto_w_u16(&w, n_result_formats);
	for (uint16_t i = 0; i < n_result_formats; i++)
		pgproto_w_u16(&w, (uint16_t)result_formats[i]);
	return pgproto_w_end(&w);
}

static int pgproto_put_target(struct evbuffer *out, uint8_t type, uint8_t kind, const char *name)
{
	struct pgproto_w w;
	size_t body = 1;
	name = pgproto_nz(name);
	if ((kind != 'S' && kind != 'P') || !pgproto_add(&body, strlen(name) + 1) ||
	    !pgproto_w_begin(&w, out, type, body))
		return -1;
	pgproto_w_u8(&w, kind);
	pgproto_w_str(&w, name);
	return pgproto_w_end(&w);
}

int pgproto_put_describe(struct evbuffer *out, uint8_t kind, const char *name)
{
	return pgproto_put_target(out, 'D', kind, name);
}

int pgproto_put_close(struct evbuffer *out, uint8_t kind, const char *name)
{
	return pgproto_put_target(out, 'C', kind, name);
}

int pgproto_put_execute(struct evbuffer *out, const char *portal, uint32_t max_rows)
{
	struct pgproto_w w;
	size_t body = 4;
	portal = pgproto_nz(portal);
	if (max_rows > INT32_MAX || !pgproto_add(&body, strlen(portal) + 1) || !pgproto_w_begin(&w, out, 'E', body))
		return -1;
	pgproto_w_str(&w, portal);
	pgproto_w_u32(&w, max_rows);
	return pgproto_w_end(&w);
}

int pgproto_rewrite_name(struct evbuffer *out, const uint8_t *msg, size_t len, const char *name)
{
	size_t off, old_len, new_len, total;
	int rc;
	if (!msg || len < 1)
		return PGPROTO_ERR_MALFORMED;
	switch (msg[0]) {
	case 'P': {
		struct pgproto_parse p;
		rc = pgproto_parse_parse(msg, len, &p);
		off = p.name_off;
		old_len = rc == PGPROTO_OK ? strlen(p.name) : 0;
		break;
	}
	case 'B': {
		struct pgproto_bind b;
		rc = pgproto_parse_bind(msg, len, &b);
		off = b.stmt_off;
		old_len = b.stmt_len;
		break;
	}
	case 'C':
	case 'D': {
		struct pgproto_target t;
		rc = pgproto_parse_target(msg, len, msg[0], &t);
		off = t.name_off;
		old_len = rc == PGPROTO_OK ? strlen(t.name) : 0;
		break;
	}
	default:
		return PGPROTO_ERR_TYPE;
	}
	if (rc != PGPROTO_OK)
		return rc;
	name = pgproto_nz(name);
	new_len = strlen(name);
	/* body = everything after the length word, with the old name swapped for the new one */
	total = len - 5 - old_len;
	if (!pgproto_add(&total, new_len) || total > PGPROTO_MAX_LEN - 4)
		return PGPROTO_ERR_LONG;
	struct pgproto_w w;
	if (!pgproto_w_begin(&w, out, msg[0], total))
		return PGPROTO_ERR_NOMEM;
	pgproto_w_mem(&w, msg + 5, off - 5);
	pgproto_w_mem(&w, name, new_len);
	pgproto_w_mem(&w, msg + off + old_len, len - off - old_len);
	return pgproto_w_end(&w) == 0 ? PGPROTO_OK : PGPROTO_ERR_NOMEM;
}
