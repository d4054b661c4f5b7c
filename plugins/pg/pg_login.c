/* The answer to a client's login: AuthenticationOk, a ParameterStatus per setting (the pool's
 * values, prebuilt, with the client's own where it asked for some), BackendKeyData and
 * ReadyForQuery, then the client is idle. */
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "pg_internal.h"

/* AuthenticationOk and the ParameterStatus messages: the pool's values (prebuilt, copied in
 * runs), with the client's own settings where it asked for some, as pg_guc_expected says. */
static int pg_login_put_params(struct pg_client *c, struct evbuffer *out)
{
	struct pg_pool *p = c->pool;
	if (!out || pg_pool_login_msgs(p) != 0)
		return -1;
	int rc = 0;
	uint32_t from = 0; /* start of the prebuilt bytes not yet added */
	for (uint32_t i = 0; rc == 0 && i < p->params.n; i++) {
		const char *name = p->params.v[i].name;
		const char *v = pg_params_get(&c->gucs, name);
		if (!v && strcmp(name, "application_name") == 0)
			v = ""; /* servers log in as "tether"; a client that named itself nothing sees nothing */
		if (!v)
			continue;
		rc = evbuffer_add(out, p->login_msgs + from, p->login_off[i] - from);
		if (rc == 0)
			rc = pgproto_put_parameter_status(out, name, v);
		from = p->login_off[i + 1];
	}
	return rc == 0 ? evbuffer_add(out, p->login_msgs + from, p->login_off[p->params.n] - from) : rc;
}

static unsigned char *pg_login_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return p + 4;
}

#define PG_LOGIN_BUF 2048
#define PG_LOGIN_MAX_OVER 16

/* The whole login answer (what pg_login_put_params, BackendKeyData and ReadyForQuery add) built
 * in one piece and sent at once, byte for byte the same; 1 when it does not fit here (many or
 * long settings: the caller adds it message by message), else 0 or -1. */
static int pg_login_put_all(struct pg_client *c)
{
	struct pg_pool *p = c->pool;
	if (pg_pool_login_msgs(p) != 0)
		return -1;
	uint32_t n = p->params.n;
	/* the client's values that replace the pool's, by the pool's index in increasing order:
	 * each of its settings looked up once (names are unique on both sides) */
	struct {
		uint32_t i;
		const char *v;
	} ov[PG_LOGIN_MAX_OVER];
	uint32_t nov = 0;
	bool app = false;
	for (uint32_t j = 0; j < c->gucs.n; j++) {
		const char *name = c->gucs.v[j].name;
		uint32_t i = 0;
		while (i < n && (p->params.v[i].name[0] != name[0] || strcmp(p->params.v[i].name, name) != 0))
			i++;
		if (i == n)
			continue;
		if (nov == PG_LOGIN_MAX_OVER)
			return 1;
		uint32_t k = nov++;
		for (; k > 0 && ov[k - 1].i > i; k--)
			ov[k] = ov[k - 1];
		ov[k].i = i;
		ov[k].v = c->gucs.v[j].value;
		app = app || i == p->login_app;
	}
	if (!app && p->login_app < n) {
		/* servers log in as "tether"; a client that named itself nothing sees nothing */
		if (nov == PG_LOGIN_MAX_OVER)
			return 1;
		uint32_t k = nov++;
		for (; k > 0 && ov[k - 1].i > p->login_app; k--)
			ov[k] = ov[k - 1];
		ov[k].i = p->login_app;
		ov[k].v = "";
	}
	unsigned char buf[PG_LOGIN_BUF], *w = buf, *end = buf + sizeof(buf);
	uint32_t from = 0; /* start of the prebuilt bytes not yet copied */
	for (uint32_t k = 0; k < nov; k++) {
		uint32_t i = ov[k].i;
		size_t pre = p->login_off[i] - from, nl = strlen(p->params.v[i].name) + 1, vl = strlen(ov[k].v) + 1;
		if ((size_t)(end - w) < pre + 5 + nl + vl)
			return 1;
		memcpy(w, p->login_msgs + from, pre);
		w += pre;
		*w++ = 'S';
		w = pg_login_put_u32(w, (uint32_t)(4 + nl + vl));
		memcpy(w, p->params.v[i].name, nl);
		w += nl;
		memcpy(w, ov[k].v, vl);
		w += vl;
		from = p->login_off[i + 1];
	}
	size_t rest = p->login_off[n] - from;
	if ((size_t)(end - w) < rest + 13 + 6)
		return 1;
	memcpy(w, p->login_msgs + from, rest);
	w += rest;
	*w++ = 'K'; /* BackendKeyData */
	w = pg_login_put_u32(w, 12);
	w = pg_login_put_u32(w, (uint32_t)c->cancel_pid);
	w = pg_login_put_u32(w, (uint32_t)c->cancel_key);
	*w++ = 'Z'; /* ReadyForQuery, idle */
	w = pg_login_put_u32(w, 5);
	*w++ = 'I';
	/* (written from here when nothing is queued before it) */
	return pg_io_send(&c->out, buf, (size_t)(w - buf)) >= 0 ? 0 : -1;
}

void pg_login_done(struct pg_client *c)
{
	int rc = pg_login_put_all(c);
	if (rc > 0) {
		struct evbuffer *out = pg_client_output(c);
		rc = pg_login_put_params(c, out);
		if (rc == 0)
			rc = pgproto_put_backend_key_data(out, (uint32_t)c->cancel_pid, (uint32_t)c->cancel_key);
		if (rc == 0)
			rc = pgproto_put_ready_for_query(out, 'I');
	}
	if (rc != 0) {
		pg_client_close(c);
		return;
	}
	c->state = PG_CLIENT_IDLE;
	log_debug(&c->log, "client %s logged in to %s", c->user, c->database);
	pg_client_process(c);
}
