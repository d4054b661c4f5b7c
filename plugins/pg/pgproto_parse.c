/* Parsers of PostgreSQL v3 messages: each takes one whole framed message and validates every
 * length, count and terminator before handing out pointers into it. */
#include "pgproto.h"
#include "pgproto_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- Parsers ------------------------------------------------------------------------------ */

/* A bounds-checked cursor over one message; every read fails rather than step past `end`. */
struct pgproto_rd {
	const uint8_t *p;
	size_t off, end;
};

static int pgproto_rd_open(const uint8_t *msg, size_t len, uint8_t type, struct pgproto_rd *r)
{
	if (!msg || len < 5)
		return PGPROTO_ERR_MALFORMED;
	if (msg[0] != type)
		return PGPROTO_ERR_TYPE;
	uint32_t l = pgproto_be32(msg + 1);
	if (l < 4)
		return PGPROTO_ERR_SHORT;
	if ((size_t)l != len - 1)
		return PGPROTO_ERR_MALFORMED;
	r->p = msg;
	r->off = 5;
	r->end = len;
	return PGPROTO_OK;
}

static bool pgproto_rd_str(struct pgproto_rd *r, const char **s, size_t *slen)
{
	if (r->off >= r->end)
		return false;
	const uint8_t *nul = memchr(r->p + r->off, 0, r->end - r->off);
	if (!nul)
		return false;
	*s = (const char *)(r->p + r->off);
	if (slen)
		*slen = (size_t)(nul - (r->p + r->off));
	r->off = (size_t)(nul - r->p) + 1;
	return true;
}

static bool pgproto_rd_skip(struct pgproto_rd *r, size_t n)
{
	if (n > r->end - r->off)
		return false;
	r->off += n;
	return true;
}

static bool pgproto_rd_u8(struct pgproto_rd *r, uint8_t *v)
{
	if (r->end - r->off < 1)
		return false;
	*v = r->p[r->off++];
	return true;
}

/* The protocol's Int16 counts are signed; a negative count is malformed. */
static bool pgproto_rd_count(struct pgproto_rd *r, uint16_t *v)
{
	if (r->end - r->off < 2)
		return false;
	*v = pgproto_be16(r->p + r->off);
	r->off += 2;
	return *v <= INT16_MAX;
}

static bool pgproto_rd_u32(struct pgproto_rd *r, uint32_t *v)
{
	if (r->end - r->off < 4)
		return false;
	*v = pgproto_be32(r->p + r->off);
	r->off += 4;
	return true;
}

static bool pgproto_rd_done(const struct pgproto_rd *r)
{
	return r->off == r->end;
}

int pgproto_parse_notice(const uint8_t *msg, size_t len, uint8_t type, struct pgproto_notice *n)
{
	struct pgproto_rd r;
	memset(n, 0, sizeof(*n));
	int rc = pgproto_rd_open(msg, len, type, &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (type != 'E' && type != 'N')
		return PGPROTO_ERR_TYPE;
	/* Validate on the message, then copy, so pointers into the copy are known to be sound. */
	for (;;) {
		uint8_t code;
		const char *s;
		if (!pgproto_rd_u8(&r, &code))
			return PGPROTO_ERR_MALFORMED;
		if (code == 0)
			break;
		if (!pgproto_rd_str(&r, &s, NULL))
			return PGPROTO_ERR_MALFORMED;
	}
	if (!pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	n->buf_len = len - 5;
	n->buf = malloc(n->buf_len);
	if (!n->buf)
		return PGPROTO_ERR_NOMEM;
	memcpy(n->buf, msg + 5, n->buf_len);
	n->severity = pgproto_notice_field(n, 'S');
	n->severity_nl = pgproto_notice_field(n, 'V');
	n->sqlstate = pgproto_notice_field(n, 'C');
	n->message = pgproto_notice_field(n, 'M');
	n->detail = pgproto_notice_field(n, 'D');
	n->hint = pgproto_notice_field(n, 'H');
	return PGPROTO_OK;
}

const char *pgproto_notice_field(const struct pgproto_notice *n, uint8_t code)
{
	if (!n->buf || !code)
		return NULL;
	for (size_t off = 0; off < n->buf_len && n->buf[off];) {
		const char *s = n->buf + off + 1;
		if ((uint8_t)n->buf[off] == code)
			return s;
		off += 1 + strlen(s) + 1;
	}
	return NULL;
}

void pgproto_notice_deinit(struct pgproto_notice *n)
{
	free(n->buf);
	memset(n, 0, sizeof(*n));
}

int pgproto_parse_parameter_status(const uint8_t *msg, size_t len, const char **name, const char **value)
{
	struct pgproto_rd r;
	int rc = pgproto_rd_open(msg, len, 'S', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_str(&r, name, NULL) || !pgproto_rd_str(&r, value, NULL) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

int pgproto_parse_backend_key_data(const uint8_t *msg, size_t len, uint32_t *pid, uint32_t *key)
{
	struct pgproto_rd r;
	int rc = pgproto_rd_open(msg, len, 'K', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_u32(&r, pid) || !pgproto_rd_u32(&r, key) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

int pgproto_parse_ready_for_query(const uint8_t *msg, size_t len, uint8_t *status)
{
	struct pgproto_rd r;
	int rc = pgproto_rd_open(msg, len, 'Z', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_u8(&r, status) || !pgproto_rd_done(&r) ||
	    (*status != 'I' && *status != 'T' && *status != 'E'))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

int pgproto_parse_auth(const uint8_t *msg, size_t len, struct pgproto_auth *a)
{
	struct pgproto_rd r;
	memset(a, 0, sizeof(*a));
	int rc = pgproto_rd_open(msg, len, 'R', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_u32(&r, &a->code))
		return PGPROTO_ERR_MALFORMED;
	a->data = msg + r.off;
	a->data_len = r.end - r.off;
	switch (a->code) {
	case PGPROTO_AUTH_OK:
	case PGPROTO_AUTH_KERBEROS_V5:
	case PGPROTO_AUTH_CLEARTEXT:
	case PGPROTO_AUTH_GSS:
	case PGPROTO_AUTH_SSPI:
		return a->data_len == 0 ? PGPROTO_OK : PGPROTO_ERR_MALFORMED;
	case PGPROTO_AUTH_MD5:
		return a->data_len == 4 ? PGPROTO_OK : PGPROTO_ERR_MALFORMED;
	case PGPROTO_AUTH_SASL:
		for (;;) {
			const char *mech;
			size_t mlen;
			if (!pgproto_rd_str(&r, &mech, &mlen))
				return PGPROTO_ERR_MALFORMED;
			if (mlen == 0)
				return pgproto_rd_done(&r) ? PGPROTO_OK : PGPROTO_ERR_MALFORMED;
		}
	default:
		return PGPROTO_OK;
	}
}

bool pgproto_auth_sasl_has(const struct pgproto_auth *a, const char *mech)
{
	if (a->code != PGPROTO_AUTH_SASL || !a->data || !mech)
		return false;
	for (size_t off = 0; off < a->data_len;) {
		const uint8_t *p = a->data + off;
		const uint8_t *nul = memchr(p, 0, a->data_len - off);
		if (!nul || nul == p)
			return false;
		if (strcmp((const char *)p, mech) == 0)
			return true;
		off += (size_t)(nul - p) + 1;
	}
	return false;
}

int pgproto_parse_password(const uint8_t *msg, size_t len, const char **password)
{
	struct pgproto_rd r;
	int rc = pgproto_rd_open(msg, len, 'p', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_str(&r, password, NULL) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

int pgproto_parse_sasl_initial_response(const uint8_t *msg, size_t len, const char **mech, const uint8_t **data,
					size_t *data_len)
{
	struct pgproto_rd r;
	uint32_t dlen;
	int rc = pgproto_rd_open(msg, len, 'p', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_str(&r, mech, NULL) || !pgproto_rd_u32(&r, &dlen))
		return PGPROTO_ERR_MALFORMED;
	if (dlen == UINT32_MAX) {
		*data = NULL;
		*data_len = 0;
	} else {
		*data = msg + r.off;
		*data_len = dlen;
		if (dlen > INT32_MAX || !pgproto_rd_skip(&r, dlen))
			return PGPROTO_ERR_MALFORMED;
	}
	return pgproto_rd_done(&r) ? PGPROTO_OK : PGPROTO_ERR_MALFORMED;
}

int pgproto_parse_sasl_response(const uint8_t *msg, size_t len, const uint8_t **data, size_t *data_len)
{
	struct pgproto_rd r;
	int rc = pgproto_rd_open(msg, len, 'p', &r);
	if (rc != PGPROTO_OK)
		return rc;
	*data = msg + r.off;
	*data_len = r.end - r.off;
	return PGPROTO_OK;
}

int pgproto_parse_parse(const uint8_t *msg, size_t len, struct pgproto_parse *p)
{
	struct pgproto_rd r;
	memset(p, 0, sizeof(*p));
	int rc = pgproto_rd_open(msg, len, 'P', &r);
	if (rc != PGPROTO_OK)
		return rc;
	p->name_off = r.off;
	if (!pgproto_rd_str(&r, &p->name, NULL) || !pgproto_rd_str(&r, &p->query, NULL) ||
	    !pgproto_rd_count(&r, &p->n_oids))
		return PGPROTO_ERR_MALFORMED;
	p->oids = msg + r.off;
	if (!pgproto_rd_skip(&r, (size_t)p->n_oids * 4) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

uint32_t pgproto_parse_oid(const struct pgproto_parse *p, uint16_t i)
{
	return i < p->n_oids ? pgproto_be32(p->oids + (size_t)i * 4) : 0;
}

int pgproto_parse_bind(const uint8_t *msg, size_t len, struct pgproto_bind *b)
{
	struct pgproto_rd r;
	uint16_t n;
	memset(b, 0, sizeof(*b));
	int rc = pgproto_rd_open(msg, len, 'B', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_str(&r, &b->portal, NULL))
		return PGPROTO_ERR_MALFORMED;
	b->stmt_off = r.off;
	if (!pgproto_rd_str(&r, &b->stmt, &b->stmt_len))
		return PGPROTO_ERR_MALFORMED;
	if (!pgproto_rd_count(&r, &n) || !pgproto_rd_skip(&r, (size_t)n * 2))
		return PGPROTO_ERR_MALFORMED;
	if (!pgproto_rd_count(&r, &b->n_params))
		return PGPROTO_ERR_MALFORMED;
	for (uint16_t i = 0; i < b->n_params; i++) {
		uint32_t vlen;
		if (!pgproto_rd_u32(&r, &vlen))
			return PGPROTO_ERR_MALFORMED;
		if (vlen == UINT32_MAX) /* SQL NULL */
			continue;
		if (vlen > INT32_MAX || !pgproto_rd_skip(&r, vlen))
			return PGPROTO_ERR_MALFORMED;
	}
	if (!pgproto_rd_count(&r, &n) || !pgproto_rd_skip(&r, (size_t)n * 2) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

int pgproto_parse_target(const uint8_t *msg, size_t len, uint8_t type, struct pgproto_target *t)
{
	struct pgproto_rd r;
	memset(t, 0, sizeof(*t));
	int rc = pgproto_rd_open(msg, len, type, &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_u8(&r, &t->kind) || (t->kind != 'S' && t->kind != 'P'))
		return PGPROTO_ERR_MALFORMED;
	t->name_off = r.off;
	if (!pgproto_rd_str(&r, &t->name, NULL) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

int pgproto_parse_close(const uint8_t *msg, size_t len, struct pgproto_target *t)
{
	return pgproto_parse_target(msg, len, 'C', t);
}

int pgproto_parse_describe(const uint8_t *msg, size_t len, struct pgproto_target *t)
{
	return pgproto_parse_target(msg, len, 'D', t);
}

int pgproto_parse_execute(const uint8_t *msg, size_t len, const char **portal, uint32_t *max_rows)
{
	struct pgproto_rd r;
	int rc = pgproto_rd_open(msg, len, 'E', &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_str(&r, portal, NULL) || !pgproto_rd_u32(&r, max_rows) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

static int pgproto_parse_one_str(const uint8_t *msg, size_t len, uint8_t type, const char **s)
{
	struct pgproto_rd r;
	int rc = pgproto_rd_open(msg, len, type, &r);
	if (rc != PGPROTO_OK)
		return rc;
	if (!pgproto_rd_str(&r, s, NULL) || !pgproto_rd_done(&r))
		return PGPROTO_ERR_MALFORMED;
	return PGPROTO_OK;
}

int pgproto_parse_query(const uint8_t *msg, size_t len, const char **sql)
{
	return pgproto_parse_one_str(msg, len, 'Q', sql);
}

int pgproto_parse_command_complete(const uint8_t *msg, size_t len, const char **tag)
{
	return pgproto_parse_one_str(msg, len, 'C', tag);
}

