/* Parsing of the packet a PostgreSQL client opens with: StartupMessage, SSLRequest,
 * GSSENCRequest or CancelRequest. */
#include "startup.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgproto.h"

static uint32_t startup_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* PostgreSQL's parse_bool for the replication key: a unique prefix of true/false/yes/no, on/off
 * or 1/0. Returns 1 (true), 0 (false) or -1 (neither). */
static int startup_bool(const char *v)
{
	size_t n = strlen(v);
	if (n == 0)
		return -1;
	if (strncasecmp(v, "true", n) == 0 || strncasecmp(v, "yes", n) == 0 || strcmp(v, "1") == 0)
		return 1;
	if (strncasecmp(v, "false", n) == 0 || strncasecmp(v, "no", n) == 0 || strcmp(v, "0") == 0)
		return 0;
	if (strcasecmp(v, "on") == 0)
		return 1;
	if (strcasecmp(v, "off") == 0 || strcasecmp(v, "of") == 0)
		return 0;
	return -1;
}

/* Walks the key/value list at body[0..n): counts pairs and checks the layout, so the second
 * pass over the copy can trust every terminator. */
static int startup_scan(const uint8_t *body, size_t n, size_t *pairs)
{
	size_t off = 0;
	*pairs = 0;
	for (;;) {
		if (off >= n)
			return STARTUP_ERR_UNTERMINATED;
		if (body[off] == 0)
			return off + 1 == n ? STARTUP_OK : STARTUP_ERR_TRAILING;
		const uint8_t *nul = memchr(body + off, 0, n - off);
		if (!nul)
			return STARTUP_ERR_UNTERMINATED;
		off = (size_t)(nul - body) + 1;
		/* Nothing, or only the list terminator, left: the key has no value. */
		if (off == n || (off == n - 1 && body[off] == 0))
			return STARTUP_ERR_ODD_PAIRS;
		nul = memchr(body + off, 0, n - off);
		if (!nul)
			return STARTUP_ERR_UNTERMINATED;
		off = (size_t)(nul - body) + 1;
		(*pairs)++;
	}
}

int startup_parse(const uint8_t *pkt, size_t len, struct startup *s)
{
	size_t pairs, n_params = 0, n_opts = 0;
	int rc;
	memset(s, 0, sizeof(*s));
	if (!pkt || len < 8)
		return STARTUP_ERR_SHORT;
	uint32_t word = startup_be32(pkt), code = startup_be32(pkt + 4);
	if (word > STARTUP_MAX_PACKET || len > STARTUP_MAX_PACKET)
		return STARTUP_ERR_TOO_LONG;
	if (word != len)
		return STARTUP_ERR_LENGTH;
	s->major = (uint16_t)(code >> 16);
	s->minor = (uint16_t)(code & 0xffff);
	switch (code) {
	case PGPROTO_SSL_CODE:
		s->kind = STARTUP_KIND_SSL;
		return len == 8 ? STARTUP_OK : STARTUP_ERR_LENGTH;
	case PGPROTO_GSSENC_CODE:
		s->kind = STARTUP_KIND_GSSENC;
		return len == 8 ? STARTUP_OK : STARTUP_ERR_LENGTH;
	case PGPROTO_CANCEL_CODE:
		s->kind = STARTUP_KIND_CANCEL;
		if (len != 16)
			return STARTUP_ERR_LENGTH;
		s->cancel_pid = startup_be32(pkt + 8);
		s->cancel_key = startup_be32(pkt + 12);
		return STARTUP_OK;
	}
	if (s->major != 3)
		return STARTUP_ERR_PROTOCOL;
	s->kind = STARTUP_KIND_MESSAGE;

	const uint8_t *body = pkt + 8;
	size_t n = len - 8;
	rc = startup_scan(body, n, &pairs);
	if (rc != STARTUP_OK)
		return rc;
	/* One block: the pair arrays, then a copy of the list the pairs point into. */
	size_t arr = (pairs + 1) * sizeof(struct startup_param);
	char *mem = malloc(2 * arr + n);
	if (!mem)
		return STARTUP_ERR_NOMEM;
	s->mem = mem;
	s->params = (struct startup_param *)(void *)mem;
	s->proto_opts = (struct startup_param *)(void *)(mem + arr);
	char *str = mem + 2 * arr;
	memcpy(str, body, n);

	size_t off = 0;
	for (size_t i = 0; i < pairs; i++) {
		const char *key = str + off;
		off += strlen(key) + 1;
		const char *val = str + off;
		off += strlen(val) + 1;
		if (strcmp(key, "user") == 0) {
			s->user = val;
		} else if (strcmp(key, "database") == 0) {
			s->database = val;
		} else if (strcmp(key, "options") == 0) {
			s->options = val;
		} else if (strcmp(key, "application_name") == 0) {
			s->application_name = val;
		} else if (strcmp(key, "replication") == 0) {
			/* Physical ("true") and logical ("database") replication both need a session
			 * the pooler cannot share; only an explicit "false" is harmless. */
			if (startup_bool(val) != 0) {
				rc = STARTUP_ERR_REPLICATION;
				goto fail;
			}
		} else if (strncmp(key, "_pq_.", 5) == 0) {
			s->proto_opts[n_opts++] = (struct startup_param){ key, val };
		} else {
			s->params[n_params++] = (struct startup_param){ key, val };
		}
	}
	s->n_params = n_params;
	s->n_proto_opts = n_opts;
	if (!s->user || !*s->user) {
		rc = STARTUP_ERR_NO_USER;
		goto fail;
	}
	if (!s->database || !*s->database)
		s->database = s->user;
	return STARTUP_OK;

fail:
	startup_deinit(s);
	return rc;
}

void startup_deinit(struct startup *s)
{
	uint16_t major = s->major, minor = s->minor;
	enum startup_kind kind = s->kind;
	free(s->mem);
	memset(s, 0, sizeof(*s));
	/* What was asked for stays readable, for the error message after a failed parse. */
	s->kind = kind;
	s->major = major;
	s->minor = minor;
}

const char *startup_get(const struct startup *s, const char *key)
{
	if (!key)
		return NULL;
	if (strcmp(key, "user") == 0)
		return s->user;
	if (strcmp(key, "database") == 0)
		return s->database;
	if (strcmp(key, "options") == 0)
		return s->options;
	if (strcmp(key, "application_name") == 0)
		return s->application_name;
	const char *found = NULL;
	for (size_t i = 0; i < s->n_params; i++)
		if (strcmp(s->params[i].key, key) == 0)
			found = s->params[i].value; /* the last one wins, as in PostgreSQL */
	for (size_t i = 0; i < s->n_proto_opts; i++)
		if (strcmp(s->proto_opts[i].key, key) == 0)
			found = s->proto_opts[i].value;
	return found;
}

const char *startup_strerror(int rc)
{
	switch (rc) {
	case STARTUP_OK:
		return "ok";
	case STARTUP_ERR_SHORT:
		return "invalid length of startup packet";
	case STARTUP_ERR_TOO_LONG:
		return "startup packet too long";
	case STARTUP_ERR_LENGTH:
		return "invalid length of startup packet";
	case STARTUP_ERR_PROTOCOL:
		return "unsupported frontend protocol: server supports 3.0";
	case STARTUP_ERR_NO_USER:
		return "no PostgreSQL user name specified in startup packet";
	case STARTUP_ERR_UNTERMINATED:
		return "invalid startup packet layout: unterminated string";
	case STARTUP_ERR_ODD_PAIRS:
		return "invalid startup packet layout: key without a value";
	case STARTUP_ERR_TRAILING:
		return "invalid startup packet layout: expected terminator as last byte";
	case STARTUP_ERR_REPLICATION:
		return "replication connections are not supported by tether";
	case STARTUP_ERR_NOMEM:
		return "out of memory";
	}
	return "invalid startup packet";
}

const char *startup_sqlstate(int rc)
{
	switch (rc) {
	case STARTUP_OK:
		return "00000";
	case STARTUP_ERR_PROTOCOL:
	case STARTUP_ERR_REPLICATION:
		return "0A000"; /* feature_not_supported */
	case STARTUP_ERR_NO_USER:
		return "28000"; /* invalid_authorization_specification */
	case STARTUP_ERR_NOMEM:
		return "53200"; /* out_of_memory */
	}
	return "08P01"; /* protocol_violation */
}
