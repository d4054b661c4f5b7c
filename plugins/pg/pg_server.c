/* Server connections: connect over TCP or a unix socket directory, log in, then relay what the
 * server sends to the linked client while tracking ReadyForQuery (transaction boundaries). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "md5auth.h"
#include "pg_internal.h"
#include "pg_cache.h"

void pg_server_free(struct pg_server *s)
{
	if (s->sasl)
		scram_client_deinit(&s->scram);
	pg_out_detach(&s->out);
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->timer)
		event_free(s->timer);
	pg_params_clear(&s->params);
	pg_params_clear(&s->gucs);
	pg_params_clear(&s->guc_match);
	free(s->inject_error);
	free(s);
}

void pg_server_close(struct pg_server *s, const char *why)
{
	if (s->state == PG_SERVER_CLOSED)
		return;
	struct pg_pool *pool = s->pool;
	log_info(&s->log, "closing server connection: %s", why);
	enum pg_server_state was = s->state;
	s->state = PG_SERVER_CLOSED;
	pg_out_detach(&s->out);
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->timer)
		evtimer_del(s->timer);
	/* statements are the pool's: let go of them while the pool is sure to exist */
	pg_expect_clear(s);
	pg_stmt_set_clear(&s->stmts, &pool->stmts);
	if (was == PG_SERVER_IDLE) {
		for (struct pg_server **pp = &pool->idle; *pp; pp = &(*pp)->next) {
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		}
		pool->nidle--;
	} else if (was == PG_SERVER_ACTIVE || was == PG_SERVER_RESETTING) {
		pool->nactive--;
	}
	struct pg_client *c = s->client;
	s->client = NULL;
	pool->nservers--;
	if (s->all_prev)
		s->all_prev->all_next = s->all_next;
	else
		pool->servers = s->all_next;
	if (s->all_next)
		s->all_next->all_prev = s->all_prev;
	if (was == PG_SERVER_CONNECTING)
		pool->nconnecting--;
	s->next = pool->pg->dead_servers;
	pool->pg->dead_servers = s;
	pg_pool_reap(pool->pg);
	if (c) {
		c->server = NULL;
		pg_client_server_gone(c, why);
	}
	if (was == PG_SERVER_CONNECTING)
		pg_pool_server_failed(pool, s, why);
	else
		pg_pool_grow_for_waiters(pool); /* clients queued for it get another */
	pg_maybe_drained(pool->pg);
}

/* SCRAM-SHA-256 (AuthenticationSASL / SASLContinue / SASLFinal), keys cached per pool. */
static int pg_server_sasl(struct pg_server *s, uint32_t code, const unsigned char *data, size_t len)
{
	struct pg_pool *pool = s->pool;
	const char *out;
	size_t out_len;
	char why[160];
	int rc;
	if (code == 10) {
		bool offered = false;
		for (size_t i = 0; i < len && data[i];) {
			size_t l = strnlen((const char *)data + i, len - i);
			if (l == sizeof(SCRAM_MECHANISM) - 1 && memcmp(data + i, SCRAM_MECHANISM, l) == 0)
				offered = true;
			i += l + 1;
		}
		if (!offered) {
			pg_server_close(s, "server offers no SASL mechanism tether speaks (SCRAM-SHA-256 only)");
			return -1;
		}
		if (!pool->db->password) {
			pg_server_close(s, "the server asks for a password and none is configured");
			return -1;
		}
		if (s->sasl) {
			pg_server_close(s, "server restarted SASL authentication");
			return -1;
		}
		rc = scram_client_init(&s->scram, NULL, pool->db->password);
		if (rc == SCRAM_OK) {
			s->sasl = true;
			if (pool->have_scram_keys)
				scram_client_set_keys(&s->scram, &pool->scram_keys);
			rc = scram_client_start(&s->scram, &out, &out_len);
		}
		if (rc != SCRAM_OK)
			goto fail;
		if (pgproto_put_sasl_initial_response(bufferevent_get_output(s->bev), SCRAM_MECHANISM, out, out_len) != 0) {
			pg_server_close(s, "out of memory");
			return -1;
		}
		return 0;
	}
	if (!s->sasl) {
		pg_server_close(s, "SASL message without a SASL exchange");
		return -1;
	}
	if (code == 11) {
		rc = scram_client_continue(&s->scram, data, len, &out, &out_len);
		if (rc != SCRAM_OK)
			goto fail;
		if (pgproto_put_sasl_response(bufferevent_get_output(s->bev), out, out_len) != 0) {
			pg_server_close(s, "out of memory");
			return -1;
		}
		return 0;
	}
	rc = scram_client_finish(&s->scram, data, len);
	if (rc != SCRAM_OK)
		goto fail;
	pool->scram_keys = *scram_client_keys(&s->scram);
	pool->have_scram_keys = true;
	return 0;
fail:
	snprintf(why, sizeof(why), "SCRAM authentication to the server failed: %s", scram_strerror(rc));
	pg_server_close(s, why);
	return -1;
}

/* Login: authentication, ParameterStatus, BackendKeyData, up to the first ReadyForQuery. */
static int pg_server_login_msg(struct pg_server *s, char type, const unsigned char *body, size_t len)
{
	const struct pg_conf_db *db = s->pool->db;
	struct evbuffer *out = bufferevent_get_output(s->bev);
	switch (type) {
	case 'R': {
		if (len < 4)
			return -1;
		uint32_t code = pg_wire_u32(body);
		if (code == 0) {
			/* after SCRAM, believe AuthenticationOk only once the server proved it knows
			 * the password (a server that skips SASLFinal could be anyone) */
			if (s->sasl && !scram_client_verified(&s->scram)) {
				pg_server_close(s, "server accepted the login without proving it knows the password");
				return -1;
			}
			return 0;
		}
		if (code == 10 || code == 11 || code == 12)
			return pg_server_sasl(s, code, body + 4, len - 4);
		if (code == 3) {
			if (!db->password) {
				pg_server_close(s, "the server asks for a password and none is configured");
				return -1;
			}
			if (pgproto_put_password(out, db->password) != 0) {
				pg_server_close(s, "out of memory");
				return -1;
			}
			return 0;
		}
		if (code == 5 && len >= 8) {
			if (!db->password) {
				pg_server_close(s, "the server asks for a password and none is configured");
				return -1;
			}
			char hashed[MD5AUTH_BUFSIZE];
			if (md5auth_response(db->password, db->user, body + 4, hashed) != MD5AUTH_OK) {
				pg_server_close(s, "cannot compute the md5 password response");
				return -1;
			}
			int prc = pgproto_put_password(out, hashed);
			OPENSSL_cleanse(hashed, sizeof(hashed));
			if (prc != 0) {
				pg_server_close(s, "out of memory");
				return -1;
			}
			return 0;
		}
		char why[128];
		snprintf(why, sizeof(why), "server wants an authentication method tether does not speak yet (%u)",
			 code);
		pg_server_close(s, why);
		return -1;
	}
	case 'S': {
		const char *name = (const char *)body;
		size_t nl = strnlen(name, len);
		if (nl + 1 >= len)
			return -1;
		const char *value = name + nl + 1;
		if (strnlen(value, len - nl - 1) == len - nl - 1)
			return -1;
		pg_params_set(&s->params, name, value);
		s->reported_ok = false;
		return 0;
	}
	case 'K':
		if (len < 8)
			return -1;
		s->backend_pid = (int32_t)pg_wire_u32(body);
		s->backend_key = (int32_t)pg_wire_u32(body + 4);
		return 0;
	case 'E': {
		/* M field has the message; it never holds a password */
		char msg[256] = "login failed";
		for (size_t i = 0; i < len && body[i];) {
			char f = (char)body[i++];
			size_t fl = strnlen((const char *)body + i, len - i);
			if (f == 'M')
				snprintf(msg, sizeof(msg), "server refused login: %.*s", (int)fl, body + i);
			i += fl + 1;
		}
		pg_server_close(s, msg);
		return -1;
	}
	case 'Z':
		if (s->sasl) {
			scram_client_deinit(&s->scram); /* wipes what it derived */
			s->sasl = false;
		}
		s->tx_status = len ? (char)body[0] : 'I';
		s->state = PG_SERVER_IDLE; /* pg_pool_server_ready files it */
		s->pool->nconnecting--;
		log_debug(&s->log, "logged in (backend pid %d)", s->backend_pid);
		pg_pool_server_ready(s->pool, s);
		return 0;
	case 'N':
	case 'v': /* NegotiateProtocolVersion: we ask for 3.0 only */
		return 0;
	default:
		pg_server_close(s, "unexpected message during login");
		return -1;
	}
}

/* tether's own query finished (settings for the client, or a reset before going idle). */
static int pg_server_own_done(struct pg_server *s, struct pg_client *c)
{
	if (s->state == PG_SERVER_RESETTING) {
		if (s->pending_sync > 0)
			return 0;
		if (s->orphan) {
			pg_cache_orphan_done(s->pool);
			pg_server_close(s, "its client left while a write ran; the write has ended");
			return -1;
		}
		if (s->inject_error) {
			pg_server_close(s, "the reset query failed");
			return -1;
		}
		pg_pool_release(s->pool, s, true);
		return -1;
	}
	if (s->guc_pending) {
		pg_guc_applied(c, s);
		if (s->state == PG_SERVER_CLOSED || !s->client)
			return -1;
	}
	free(s->inject_error);
	s->inject_error = NULL;
	return 0;
}

int pg_server_client_ready(struct pg_server *s, struct pg_client *c)
{
	c->in_tx = s->tx_status != 'I';
	if (s->pending_sync == 0 && s->exp_n == 0 && s->unsynced == 0 && c->relay_remaining == 0 &&
	    s->tx_status == 'I' && s->pool->db->pool_mode == PG_POOL_TRANSACTION && !c->listening) {
		s->pool->transactions++;
		c->server = NULL;
		s->client = NULL;
		c->state = PG_CLIENT_IDLE;
		pg_pool_release(s->pool, s, true);
		/* the client may already have sent its next request */
		pg_client_process(c);
		return -1;
	}
	return 0;
}

/* ReadyForQuery, ParameterStatus, ParseComplete, CloseComplete and errors of tether's own
 * queries, whole in `in`. Returns -1 when the server or client is gone (stop relaying). */
static int pg_server_status_msg(struct pg_server *s, struct pg_client *c, struct evbuffer *to, struct evbuffer *in,
				uint8_t t, uint32_t len)
{
	size_t want = (size_t)len + 1;
	bool drop = pg_expect_head(s) == PG_EXP_QUERY_DROP || !to;
	const unsigned char *body = evbuffer_pullup(in, (ssize_t)want);
	if (!body) {
		pg_server_close(s, "out of memory");
		return -1;
	}
	body += 5;
	size_t bl = len - 4;
	enum pg_expect_action act = drop ? PG_EXP_DROP : PG_EXP_PASS;
	switch (t) {
	case 'S': {
		const char *name = (const char *)body;
		size_t nl = strnlen(name, bl);
		if (nl + 1 < bl && body[bl - 1] == 0) {
			(void)!pg_params_set(&s->params, name, name + nl + 1);
			s->reported_ok = false;
			if (!drop && c)
				pg_guc_reported(c, name, name + nl + 1);
		}
		if (!drop && c && c->cache)
			pg_cache_capture(c, in, want, t, true); /* (a setting changed: not stored) */
		break;
	}
	case 'E': /* inside tether's own query: remember why */
		if (!s->inject_error) {
			struct pgproto_notice n;
			if (pgproto_parse_notice(body - 5, want, 'E', &n) == PGPROTO_OK) {
				s->inject_error = strdup(n.message ? n.message : "unknown error");
				pgproto_notice_deinit(&n);
			} else {
				s->inject_error = strdup("malformed error");
			}
		}
		break;
	case '1':
	case '3':
		act = pg_expect_complete(s, t);
		if (act == PG_EXP_DESYNC) {
			pg_server_close(s, "unexpected ParseComplete/CloseComplete from server");
			return -1;
		}
		if (!to)
			act = PG_EXP_DROP;
		break;
	case 'Z': {
		bool own = pg_expect_head(s) == PG_EXP_QUERY_DROP;
		act = pg_expect_ready(s);
		if (act == PG_EXP_DESYNC) {
			pg_server_close(s, "unexpected ReadyForQuery from server");
			return -1;
		}
		s->tx_status = bl ? (char)body[0] : '?';
		evbuffer_drain(in, want);
		s->pool->bytes_out += want;
		if (own)
			return pg_server_own_done(s, c);
		if (!to && s->orphan && s->pending_sync == 0)
			return pg_server_own_done(s, c);
		if (!to)
			return 0;
		if (c->cache && pg_cache_ready(c, s, (uint8_t)s->tx_status) == 1)
			return -1; /* relayed by pg_server_unhold once the write is invalidated */
		if (pgproto_put_ready_for_query(to, (uint8_t)s->tx_status) != 0) {
			pg_server_close(s, "out of memory");
			return -1;
		}
		return pg_server_client_ready(s, c);
	}
	}
	s->pool->bytes_out += want;
	if (act == PG_EXP_PASS) {
		if (c && c->cache && t != 'S')
			pg_cache_capture(c, in, want, t, true);
		evbuffer_remove_buffer(in, to, want);
	} else {
		evbuffer_drain(in, want);
		if (act == PG_EXP_AS_PARSE && pgproto_put_empty(to, '1') != 0) {
			pg_server_close(s, "out of memory");
			return -1;
		}
		if (act == PG_EXP_AS_PARSE && c && c->cache)
			pg_cache_capture_bytes(c, "1\0\0\0\4", 5, '1');
	}
	return 0;
}

void pg_server_unhold(struct pg_server *s)
{
	s->held = false;
	struct pg_client *c = s->client;
	if (s->state != PG_SERVER_ACTIVE || !c || !pg_client_connected(c))
		return;
	if (pgproto_put_ready_for_query(pg_client_output(c), (uint8_t)s->tx_status) != 0) {
		pg_server_close(s, "out of memory");
		return;
	}
	if (pg_server_client_ready(s, c) != 0)
		return; /* back in the pool; the client went on with its next request */
	pg_server_resume(s);
}

size_t pg_server_plain_span(const unsigned char *p, size_t n, bool with_ready, char *ready)
{
	size_t off = 0;
	*ready = 0;
	while (off + 5 <= n) {
		uint8_t t = p[off];
		uint32_t len = pg_wire_u32(p + off + 1);
		if (t == 'Z' && with_ready && len == 5 && off + 6 <= n && p[off + 5]) {
			*ready = (char)p[off + 5];
			return off + 6;
		}
		if (t == 'Z' || t == 'S' || t == '1' || t == '3' || t == 'E' || len < 4 || len > 64 * 1024 ||
		    off + (size_t)len + 1 > n)
			break;
		off += (size_t)len + 1;
	}
	return off;
}

/* pg_server_plain_span of the first contiguous chunk of `in`. */
static size_t pg_server_plain_run(struct evbuffer *in, bool with_ready, char *ready)
{
	struct evbuffer_iovec v;
	*ready = 0;
	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return 0;
	return pg_server_plain_span(v.iov_base, v.iov_len, with_ready, ready);
}


/* Server bytes for the client, message by message, bodies not copied: answers to tether's own
 * messages are swallowed (see pg_expect.c), a large message streams as it arrives. */
static void pg_server_relay(struct pg_server *s, struct evbuffer *in)
{
	struct pg_client *c = s->client;
	struct evbuffer *to = c && pg_client_connected(c) ? pg_client_output(c) : NULL;
	if (c && pg_client_connected(c) && !to) {
		/* (a client with a server keeps its buffers: only a bare socket's allocation failing) */
		pg_server_close(s, "out of memory");
		return;
	}
	for (;;) {
		if (s->held)
			return; /* the client's ReadyForQuery waits for the cache (pg_cache_ready) */
		if (s->relay_remaining > 0) {
			size_t n = evbuffer_get_length(in);
			if (n > s->relay_remaining)
				n = s->relay_remaining;
			if (n == 0)
				return;
			if (to && !s->relay_drop && c->cache)
				pg_cache_capture(c, in, n, 0, false);
			if (to && !s->relay_drop)
				pg_buf_move(in, to, n);
			else
				evbuffer_drain(in, n);
			s->relay_remaining -= n;
			s->pool->bytes_out += n;
			continue;
		}
		if (evbuffer_get_length(in) < 5)
			return; /* (nothing for a run either) */
		bool drop = pg_expect_head(s) == PG_EXP_QUERY_DROP || !to;
		if (drop || !c->cache) {
			/* the messages passed on unread (rows, descriptions, completions) that lie whole
			 * in the first chunk of `in` move on in one piece, read in place */
			char ready;
			size_t run = pg_server_plain_run(in, !drop && pg_expect_head(s) == PG_EXP_SYNC, &ready);
			if (run > 0) {
				if (!drop)
					pg_buf_move(in, to, run);
				else
					evbuffer_drain(in, run);
				s->relay_drop = drop;
				s->pool->bytes_out += run;
				if (ready) {
					/* the client's own ReadyForQuery (the head is its SYNC, no cache):
					 * what pg_server_status_msg does for it, the message already moved */
					(void)pg_expect_ready(s);
					s->tx_status = ready;
					if (pg_server_client_ready(s, c) != 0)
						return;
				}
				continue;
			}
		}
		if (evbuffer_get_length(in) < 5)
			return;
		unsigned char h[5];
		pg_buf_head(in, h);
		uint32_t len = pg_wire_u32(h + 1);
		if (len < 4) {
			pg_server_close(s, "protocol error from server");
			return;
		}
		size_t want = (size_t)len + 1;
		uint8_t t = h[0];
		if (t == 'Z' || t == 'S' || t == '1' || t == '3' || (t == 'E' && drop && pg_expect_head(s))) {
			if (len > 64 * 1024) {
				pg_server_close(s, "protocol error from server (oversized status message)");
				return;
			}
			if (evbuffer_get_length(in) < want)
				return; /* small messages tether reads: wait until whole */
			if (pg_server_status_msg(s, c, to, in, t, len) != 0)
				return;
			continue;
		}
		if (t == 'E')
			pg_expect_error(s);
		/* any other message: forward it; a large one streams as it arrives */
		size_t n = evbuffer_get_length(in);
		if (n < want && want <= 64 * 1024)
			return; /* small: wait for the whole message */
		if (n > want)
			n = want;
		if (!drop && c->cache)
			pg_cache_capture(c, in, n, t, true);
		if (!drop)
			pg_buf_move(in, to, n);
		else
			evbuffer_drain(in, n);
		s->relay_drop = drop;
		s->relay_remaining = want - n;
		s->pool->bytes_out += n;
	}
}

void pg_server_resume(struct pg_server *s)
{
	if (s->state == PG_SERVER_ACTIVE && s->bev)
		pg_server_relay(s, bufferevent_get_input(s->bev));
}

static void pg_server_on_read(struct bufferevent *bev, void *arg);
static void pg_server_on_write(struct bufferevent *bev, void *arg);
static void pg_server_on_event(struct bufferevent *bev, short what, void *arg);

static void pg_server_send_startup(struct pg_server *s)
{
	pg_server_on_event(s->bev, BEV_EVENT_CONNECTED, s);
}

/* The server's one-byte answer to SSLRequest: 'S' starts TLS, 'N' is fatal unless sslmode is
 * prefer. */
static void pg_server_tls_answer(struct pg_server *s, struct evbuffer *in)
{
	if (evbuffer_get_length(in) < 1)
		return;
	unsigned char a;
	evbuffer_remove(in, &a, 1);
	if (a == 'S') {
		pg_out_detach(&s->out); /* TLS writes go through libevent's filter */
		if (pg_tls_server_start(s) != 0) {
			pg_server_close(s, "cannot start TLS (out of memory)");
			return;
		}
		bufferevent_setcb(s->bev, pg_server_on_read, pg_server_on_write, pg_server_on_event, s);
		bufferevent_setwatermark(s->bev, EV_WRITE, PG_RELAY_LOW, 0);
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		pg_out_attach(s->pool->pg, &s->out, s->bev, false);
		return;
	}
	if (a != 'N' || s->pool->db->sslmode >= PG_SSL_REQUIRE) {
		pg_server_close(s, a == 'N' ? "the server does not accept TLS connections (sslmode require)"
					    : "unexpected answer to SSLRequest");
		return;
	}
	s->tls = PG_TLS_REFUSED;
	pg_server_send_startup(s);
}

static void pg_server_on_read(struct bufferevent *bev, void *arg)
{
	struct pg_server *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (s->state == PG_SERVER_CONNECTING && s->tls == PG_TLS_REQUESTED) {
		pg_server_tls_answer(s, in);
		return;
	}
	if (s->state == PG_SERVER_CONNECTING) {
		while (s->state == PG_SERVER_CONNECTING && evbuffer_get_length(in) >= 5) {
			unsigned char h[5];
			evbuffer_copyout(in, h, 5);
			uint32_t len = pg_wire_u32(h + 1);
			if (len < 4 || len > 1024 * 1024) {
				pg_server_close(s, "protocol error from server during login");
				return;
			}
			if (evbuffer_get_length(in) < (size_t)len + 1)
				return;
			unsigned char *msg = evbuffer_pullup(in, (ssize_t)len + 1);
			int rc = pg_server_login_msg(s, (char)h[0], msg + 5, len - 4);
			if (s->state == PG_SERVER_CLOSED)
				return;
			evbuffer_drain(in, (size_t)len + 1);
			if (rc != 0) {
				pg_server_close(s, "bad login message from server");
				return;
			}
		}
		if (s->state == PG_SERVER_CONNECTING)
			return;
	}
	if (evbuffer_get_length(in) == 0)
		return;
	if (s->state == PG_SERVER_IDLE) {
		/* an idle server speaking up is closing (admin shutdown, idle timeout): drop it */
		pg_server_close(s, "server sent data while idle");
		return;
	}
	pg_server_relay(s, in);
	/* a slow client: stop reading the server until the client catches up */
	struct pg_client *c = s->state == PG_SERVER_ACTIVE ? s->client : NULL;
	if (c && pg_client_connected(c) && evbuffer_get_length(pg_client_output(c)) > PG_RELAY_HIGH)
		pg_io_read_set(&s->out, false);
}

/* The server took what the client sent: read the client again. */
static void pg_server_on_write(struct bufferevent *bev, void *arg)
{
	struct pg_server *s = arg;
	struct pg_client *c = s->client;
	pg_out_written(&s->out);
	if (c && pg_client_connected(c) && !pg_io_read_on(&c->out)) {
		pg_io_read_set(&c->out, true);
		pg_client_process(c);
	}
}

static void pg_server_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct pg_server *s = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->tls == PG_TLS_NONE && !s->out.bev) {
			s->out.cbs = &pg_relay_server_cbs; /* (the bufferevent keeps its own callbacks) */
			s->out.arg = s;
			pg_out_attach(s->pool->pg, &s->out, bev, true);
		}
		if (s->tls == PG_TLS_NONE && s->pool->tls_ctx) {
			/* SSLRequest; the answer is one byte (pg_server_tls_answer) */
			static const unsigned char req[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
			s->tls = PG_TLS_REQUESTED;
			if (bufferevent_write(bev, req, sizeof(req)) != 0)
				pg_server_close(s, "out of memory");
			return;
		}
		if (s->tls == PG_TLS_HANDSHAKE) {
			s->tls = PG_TLS_ON;
			log_debug(&s->log, "TLS to the server established");
		}
		const struct pg_conf_db *db = s->pool->db;
		const char *kv[] = { "user", db->user, "database", db->dbname ? db->dbname : db->name,
				     "application_name", "tether", NULL };
		if (pgproto_put_startup(bufferevent_get_output(bev), kv) != 0)
			pg_server_close(s, "out of memory");
		return;
	}
	/* what arrived with the close (a login ErrorResponse through TLS) says more than EOF */
	if (s->state == PG_SERVER_CONNECTING && evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		pg_server_on_read(bev, s);
		if (s->state == PG_SERVER_CLOSED)
			return;
	}
	char why[300];
	if (s->tls == PG_TLS_HANDSHAKE || (s->tls == PG_TLS_ON && (what & BEV_EVENT_ERROR)))
		pg_tls_error(bev, why, sizeof(why));
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "server closed the connection");
	else
		snprintf(why, sizeof(why), "server connection error: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	pg_server_close(s, why);
}

static void pg_server_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pg_server *s = arg;
	if (s->state == PG_SERVER_CONNECTING)
		pg_server_close(s, "connect_timeout reached");
}

/* The server's socket address: a unix socket in the `host` directory, or an IP address. */
int pg_server_address(const struct pg_conf_db *db, struct sockaddr_storage *ss, socklen_t *sl)
{
	memset(ss, 0, sizeof(*ss));
	if (db->host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%lld", db->host, (long long)db->port);
		*sl = sizeof(*un);
		return 0;
	}
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *host = strcmp(db->host, "localhost") == 0 ? "127.0.0.1" : db->host;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)db->port);
		*sl = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)db->port);
		*sl = sizeof(*in6);
		return 0;
	}
	return -1;
}

struct pg_server *pg_server_connect(struct pg_pool *pool)
{
	struct pg *pg = pool->pg;
	const struct pg_conf_db *db = pool->db;
	struct pg_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->pool = pool;
	s->id = ++pg->next_id;
	s->log = (struct log_src){ "pg", s->id };
	s->state = PG_SERVER_CONNECTING;
	s->created = s->last_used = time(NULL);
	s->all_next = pool->servers;
	if (pool->servers)
		pool->servers->all_prev = s;
	pool->servers = s;
	s->bev = bufferevent_socket_new(core_base(pg->core), -1, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(core_base(pg->core), pg_server_on_timer, s);
	pool->nservers++;
	pool->nconnecting++;
	if (!s->bev || !s->timer) {
		pg_server_close(s, "out of memory");
		return NULL;
	}
	bufferevent_setcb(s->bev, pg_server_on_read, pg_server_on_write, pg_server_on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, PG_RELAY_LOW, 0);
	/* EV_WRITE until connected (libevent learns of the connection through it); direct writes
	 * from then on (pg_server_on_event) */
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	struct sockaddr_storage ss;
	socklen_t sl;
	if (pg_server_address(db, &ss, &sl) != 0) {
		pg_server_close(s, "host must be an IP address, localhost or a socket directory");
		return NULL;
	}
	struct timeval tv = { db->connect_timeout / 1000, (db->connect_timeout % 1000) * 1000 };
	evtimer_add(s->timer, &tv);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, (int)sl) != 0) {
		char why[160];
		snprintf(why, sizeof(why), "connect: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		pg_server_close(s, why);
		return NULL;
	}
	if (db->host[0] != '/') {
		int one = 1;
		setsockopt(bufferevent_getfd(s->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return s;
}

void pg_server_link(struct pg_server *s, struct pg_client *c)
{
	s->client = c;
	s->state = PG_SERVER_ACTIVE;
	s->last_used = time(NULL);
	c->server = s;
	/* bytes the server sent before (none expected) are relayed now */
}
