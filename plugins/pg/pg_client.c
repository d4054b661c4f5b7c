/* Client connections: the startup packet (SSLRequest, GSSENCRequest and CancelRequest too),
 * login, then relaying the client's messages to whichever server the pool lends it, holding
 * back its Terminate so the server stays open for the next client. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "pg_internal.h"
#include "pg_cache.h"
#include "pg_admin.h"
#include "md5auth.h"
#include "startup.h"


void pg_client_free(struct pg_client *c)
{
	if (c->scram) {
		scram_server_deinit(c->scram);
		free(c->scram);
	}
	pg_io_close(&c->out);
	c->bev = NULL;
	if (c->wait_timer)
		event_free(c->wait_timer);
	free(c->user); /* (database and application_name are in the same allocation) */
	pg_params_clear(&c->gucs);
	struct pg *pg = c->pg;
	if (pg->flush_ev && pg->nspare_client < PG_IO_SPARE_KEEP)
		pg->spare_client[pg->nspare_client++] = c; /* (pg_out_stop frees the spares) */
	else
		free(c);
}

void pg_client_close(struct pg_client *c)
{
	if (c->state == PG_CLIENT_CLOSED)
		return;
	struct pg *pg = c->pg;
	enum pg_client_state was = c->state;
	c->state = PG_CLIENT_CLOSED;
	bool writes = pg_cache_has_writes(c);
	pg_cache_client_close(c); /* before its server is released: a held one is let go */
	if (c->pool) {
		if (was == PG_CLIENT_WAITING || was == PG_CLIENT_LOGIN)
			pg_pool_unwait(c->pool, c);
		if (was != PG_CLIENT_STARTUP)
			c->pool->nclients--;
	}
	if (c->wait_timer)
		evtimer_del(c->wait_timer);
	if (c->pool)
		pg_stmt_map_clear(&c->stmts, &c->pool->stmts);
	struct pg_server *s = c->server;
	c->server = NULL;
	if (s) {
		s->client = NULL;
		/* Never hand a server to another client mid-transaction: an open transaction with no
		 * answer outstanding is rolled back (and a session reset) before reuse; anything
		 * less clean is closed by pg_pool_release. */
		const char *reset = c->pool->db->pool_mode == PG_POOL_SESSION ? pg->conf->server_reset_query
				    : c->listening                             ? "UNLISTEN *"
									       : NULL;
		bool quiet = s->pending_sync == 0 && s->exp_n == 0 && s->unsynced == 0 && s->relay_remaining == 0 &&
			     !c->relay_remaining;
		if (quiet && (s->tx_status != 'I' || (reset && *reset))) {
			struct evbuffer *out = bufferevent_get_output(s->bev);
			s->state = PG_SERVER_RESETTING;
			bool ok = true;
			if (s->tx_status != 'I')
				ok = pgproto_put_query(out, "ROLLBACK") == 0 && pg_expect_push(s, PG_EXP_QUERY_DROP, NULL) == 0;
			if (ok && reset && *reset) {
				ok = pgproto_put_query(out, reset) == 0 && pg_expect_push(s, PG_EXP_QUERY_DROP, NULL) == 0;
				if (pg_extended_resets_settings(reset))
					pg_guc_server_reset(s);
			}
			if (!ok)
				pg_server_close(s, "out of memory while resetting");
		} else if (!quiet && writes && !c->relay_remaining && s->relay_remaining == 0) {
			/* a write may still commit after the client left: let the server answer, then
			 * invalidate (pg_server.c) and close it */
			s->state = PG_SERVER_RESETTING;
			s->orphan = true;
			if (s->unsynced &&
			    (pgproto_put_sync(bufferevent_get_output(s->bev)) != 0 || pg_expect_push(s, PG_EXP_QUERY_DROP, NULL) != 0))
				pg_server_close(s, "out of memory while draining");
		} else {
			pg_pool_release(c->pool, s, quiet);
		}
	}
	pg_io_close(&c->out);
	c->bev = NULL;
	pg->nclients--;
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		pg->clients = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	c->next = pg->dead_clients;
	pg->dead_clients = c;
	pg_pool_reap(pg);
	pg_maybe_drained(pg);
}

/* Sends an ErrorResponse and closes after it is written. */
void pg_client_fail(struct pg_client *c, const char *sqlstate, const char *fmt, ...)
{
	if (c->state == PG_CLIENT_CLOSED || !pg_client_connected(c))
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info(&c->log, "refusing client: %s", msg);
	metrics_add(metrics_series(c->pg->m_errors, c->pool ? c->pool->name : "", sqlstate), 1);
	/* the connection lingers until the error is written (through TLS if need be) */
	struct evbuffer *out = pg_client_output(c);
	if (out)
		pg_wire_error(out, "FATAL", sqlstate, "%s", msg);
	struct bufferevent *bev = pg_io_bufferevent(&c->out);
	c->bev = NULL;
	pg_client_close(c);
	if (bev)
		pg_tls_linger(c->pg, bev);
}

/* Drops the client's queued request (through its Query or Sync) and answers it with an ERROR and
 * ReadyForQuery, so the client can retry on the same connection. Returns -1 when the request is
 * not complete in the buffer (the caller closes the connection instead). */
static int pg_client_reject_request(struct pg_client *c, const char *sqlstate, const char *msg)
{
	struct evbuffer *in = pg_client_input(c);
	size_t end = pg_wire_request_end(in, "QS");
	if (!end)
		return -1;
	evbuffer_drain(in, end);
	pg_cache_request_done(c);
	struct evbuffer *out = pg_client_output(c);
	if (pgproto_put_error(out, "ERROR", sqlstate, msg) != 0 || pgproto_put_ready_for_query(out, 'I') != 0)
		return -1;
	c->state = PG_CLIENT_IDLE;
	return 0;
}

static void pg_client_on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pg_client *c = arg;
	if (c->state != PG_CLIENT_WAITING)
		return;
	char msg[160];
	snprintf(msg, sizeof(msg), "no server connection became free within query_wait_timeout (%lldms)",
		 (long long)c->pg->conf->query_wait_timeout);
	log_info(&c->log, "%s", msg);
	metrics_add(metrics_series(c->pg->m_errors, c->pool->name, "query_wait_timeout"), 1);
	pg_pool_unwait(c->pool, c);
	if (pg_client_reject_request(c, "57014", msg) != 0)
		pg_client_fail(c, "57014", "%s", msg);
	else
		pg_client_process(c); /* a request queued behind it asks for a server again */
}

void pg_client_wait_timer(struct pg_client *c)
{
	if (c->pg->conf->query_wait_timeout <= 0)
		return;
	/* (made on first need: an idle client carries no timer) */
	if (!c->wait_timer)
		c->wait_timer = evtimer_new(core_base(c->pg->core), pg_client_on_wait_timeout, c);
	int64_t ms = c->pg->conf->query_wait_timeout;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	if (c->wait_timer)
		evtimer_add(c->wait_timer, &tv);
}

/* Relays complete client messages to the linked server; asks the pool for one when needed. */
void pg_client_process(struct pg_client *c)
{
	if (c->state == PG_CLIENT_CLOSED || c->state == PG_CLIENT_STARTUP || c->state == PG_CLIENT_LOGIN ||
	    c->state == PG_CLIENT_WAITING || pg_cache_busy(c))
		return;
	bool cache = c->pool && c->pool->cache;
	if (!cache && pg_io_unread(&c->out) == 0)
		return; /* (nothing to relay: no input buffer made for it, as after the relay shortcut) */
	struct evbuffer *in = pg_client_input(c);
	struct pg_server *s = c->server;
	if (cache && !c->relay_remaining && pg_cache_before(c) != 0)
		return; /* a lookup runs (or more of the request must come first) */
	while (!s && evbuffer_get_length(in) >= 5) {
		/* Terminate on an idle client needs no server, nor does DEALLOCATE */
		unsigned char h[5];
		pg_buf_head(in, h);
		if (h[0] == 'X') {
			pg_client_close(c);
			return;
		}
		if (h[0] == 'Q') {
			int rc = pg_extended_idle_query(c, in, pg_wire_u32(h + 1));
			if (rc < 0) {
				pg_client_close(c);
				return;
			}
			if (rc > 0) {
				pg_cache_request_done(c);
				if (cache && pg_cache_before(c) != 0)
					return;
				continue;
			}
		}
		if (c->pg->draining) {
			pg_client_fail(c, "57P01", "tether is shutting down");
			return;
		}
		pg_pool_acquire(c->pool, c);
		if (c->state == PG_CLIENT_WAITING)
			pg_client_wait_timer(c);
		return; /* pg_client_linked continues */
	}
	if (!s)
		return;
	struct evbuffer *to = bufferevent_get_output(s->bev);
	for (;;) {
		if (c->relay_remaining > 0) {
			size_t n = evbuffer_get_length(in);
			if (n > c->relay_remaining)
				n = c->relay_remaining;
			if (n == 0)
				break;
			pg_buf_move(in, to, n);
			c->relay_remaining -= n;
			c->pool->bytes_in += n;
			continue;
		}
		if (evbuffer_get_length(in) < 5)
			break;
		if (cache && pg_cache_before(c) != 0)
			return;
		unsigned char h[5];
		pg_buf_head(in, h);
		uint32_t len = pg_wire_u32(h + 1);
		if (len < 4 || len > c->pg->conf->max_packet_size) {
			pg_client_fail(c, "08P01", "invalid message length %u (max_packet_size is %llu)", len,
				       (unsigned long long)c->pg->conf->max_packet_size);
			return;
		}
		size_t want = (size_t)len + 1, avail = evbuffer_get_length(in);
		switch (h[0]) {
		case 'X':
			evbuffer_drain(in, want);
			pg_client_close(c);
			return;
		case 'Q':
		case 'P':
		case 'B':
		case 'D':
		case 'C': {
			/* whole (Bind: its head) for rewriting named statements; a long Query is not
			 * one tether looks at */
			size_t need = h[0] == 'B' ? (want < 2053 ? want : 2053) : h[0] == 'Q' && len > 4096 ? 0 : want;
			if (cache && h[0] == 'Q' && len <= 1024 * 1024)
				need = want; /* the cache reads every statement it may have to invalidate for */
			if (avail < need)
				goto out;
			if (cache && pg_cache_forward(c, in, h[0], len) != 0) {
				pg_client_fail(c, "53200", "out of memory");
				return;
			}
			int rc = pg_extended_client_msg(c, in, h[0], len);
			if (rc < 0) {
				if (c->state != PG_CLIENT_CLOSED)
					pg_client_fail(c, "53200", "out of memory");
				return;
			}
			if (h[0] != 'Q')
				s->unsynced++;
			if (rc > 0)
				continue;
			if (h[0] == 'Q') {
				c->pool->queries++;
				if (pg_expect_push(s, PG_EXP_SYNC, NULL) != 0) {
					pg_client_fail(c, "53200", "out of memory");
					return;
				}
			}
			break;
		}
		case 'S': /* Sync */
		case 'F': /* FunctionCall */
			if (cache && pg_cache_forward(c, in, h[0], len) != 0) {
				pg_client_fail(c, "53200", "out of memory");
				return;
			}
			if (h[0] == 'S')
				s->unsynced = 0;
			if (pg_expect_push(s, PG_EXP_SYNC, NULL) != 0) {
				pg_client_fail(c, "53200", "out of memory");
				return;
			}
			break;
		case 'E': case 'H':
			if (cache && h[0] == 'E' && avail < want && want <= 2048)
				goto out; /* the portal's name says what it runs */
			if (cache && pg_cache_forward(c, in, h[0], len) != 0) {
				pg_client_fail(c, "53200", "out of memory");
				return;
			}
			s->unsynced++;
			break;
		case 'd': case 'c': case 'f': case 'p':
			break;
		default:
			pg_client_fail(c, "08P01", "unknown message type 0x%02x", h[0]);
			return;
		}
		size_t n = avail;
		if (n > want)
			n = want;
		pg_buf_move(in, to, n);
		c->relay_remaining = want - n;
		c->pool->bytes_in += n;
	}
out:
	/* the server is slow to take what the client sends (COPY IN): stop reading the client */
	if (evbuffer_get_length(to) > PG_RELAY_HIGH)
		pg_io_read_set(&c->out, false);
}

void pg_client_linked(struct pg_client *c)
{
	if (c->wait_timer)
		evtimer_del(c->wait_timer);
	c->state = PG_CLIENT_ACTIVE;
	/* the server may have other settings than this client asked for */
	if (pg_guc_apply(c, c->server) != 0) {
		pg_client_fail(c, "53200", "out of memory");
		return;
	}
	pg_client_process(c);
}

void pg_client_server_gone(struct pg_client *c, const char *why)
{
	if (c->state == PG_CLIENT_CLOSED)
		return;
	pg_client_fail(c, "08006", "the database server connection was lost: %s", why);
}

static void pg_client_auth_begin(struct pg_client *c);
static void pg_client_authenticated(struct pg_client *c);
static void pg_client_on_read(void *arg);
static void pg_client_on_write(void *arg);
static void pg_client_on_event(void *arg, short what);
static const struct pg_io_cbs pg_client_cbs = { pg_client_on_read, pg_client_on_write, pg_client_on_event,
						 pg_client_io_idle, pg_relay_client_take };

/* The startup packet: SSLRequest / GSSENCRequest get 'N', CancelRequest, or StartupMessage. */
static void pg_client_startup(struct pg_client *c)
{
	struct evbuffer *in = pg_client_input(c);
	while (c->state == PG_CLIENT_STARTUP && evbuffer_get_length(in) >= 8) {
		unsigned char h[8];
		evbuffer_copyout(in, h, 8);
		uint32_t len = pg_wire_u32(h);
		if (len < 8 || len > STARTUP_MAX_PACKET) {
			pg_client_fail(c, "08P01", "invalid startup packet length %u (at most %d bytes)", len,
				       STARTUP_MAX_PACKET);
			return;
		}
		if (evbuffer_get_length(in) < len)
			return;
		struct startup st;
		int rc = startup_parse(evbuffer_pullup(in, len), len, &st);
		evbuffer_drain(in, len);
		if (rc != STARTUP_OK) {
			pg_client_fail(c, startup_sqlstate(rc), "%s", startup_strerror(rc));
			return;
		}
		if (st.kind == STARTUP_KIND_SSL && pg_tls_client_offered(c->pg) && !c->tls) {
			/* 'S', then everything else inside TLS on a filter over this connection */
			startup_deinit(&st);
			if (evbuffer_get_length(in) > 0) {
				pg_client_fail(c, "08P01", "data after SSLRequest before the TLS handshake");
				return;
			}
			if (pg_tls_client_start(c) != 0) /* 'S' first, then the handshake */
				pg_client_close(c);
			return;
		}
		if (st.kind == STARTUP_KIND_SSL || st.kind == STARTUP_KIND_GSSENC) {
			startup_deinit(&st);
			struct evbuffer *out = pg_client_output(c);
			if (!out || evbuffer_add(out, "N", 1) != 0) {
				pg_client_close(c);
				return;
			}
			continue;
		}
		if (st.kind == STARTUP_KIND_CANCEL) {
			/* the canceller sees its connection close when the server has the cancel */
			evutil_socket_t fd = c->out.bare ? c->out.fd : c->bev ? bufferevent_getfd(c->bev) : -1;
			pg_cancel(c->pg, st.cancel_pid, st.cancel_key, fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1);
			startup_deinit(&st);
			pg_client_close(c);
			return;
		}
		/* one allocation for the three names an idle client keeps */
		size_t ul = strlen(st.user) + 1, dl = strlen(st.database) + 1;
		size_t al = st.application_name ? strlen(st.application_name) + 1 : 0;
		c->user = malloc(ul + dl + al);
		if (c->user) {
			memcpy(c->user, st.user, ul);
			c->database = memcpy(c->user + ul, st.database, dl);
			if (st.application_name)
				c->application_name = memcpy(c->user + ul + dl, st.application_name, al);
		}
		char err[160];
		rc = pg_guc_startup(c, &st, err, sizeof(err));
		if (rc == 0 && (st.minor != 0 || st.n_proto_opts > 0)) {
			/* protocol 3.x with x > 0, or _pq_ options: tether speaks 3.0 and none of them */
			const char *names[64];
			size_t n = 0;
			for (; n < st.n_proto_opts && n < 64; n++)
				names[n] = st.proto_opts[n].key;
			if (pgproto_put_negotiate_protocol_version(pg_client_output(c), 0, names, n) != 0)
				snprintf(err, sizeof(err), "out of memory"), rc = -1;
		}
		startup_deinit(&st);
		if (rc != 0) {
			pg_client_fail(c, "08P01", "%s", err);
			return;
		}
		if (!c->user || !c->database) {
			pg_client_fail(c, "53200", "out of memory");
			return;
		}
		c->pool = pg_pool_find(c->pg, c->database);
		if (!c->pool && pg_admin_wanted(c)) {
			pg_client_auth_begin(c); /* then pg_client_authenticated hands it to pg_admin_login */
			return;
		}
		if (!c->pool) {
			pg_client_fail(c, "3D000", "database \"%s\" does not exist in tether's config", c->database);
			return;
		}
		c->pool->nclients++;
		if (c->pool->db->max_client_conn && c->pool->nclients > (size_t)c->pool->db->max_client_conn) {
			pg_client_fail(c, "53300", "too many client connections for database \"%s\" (max_client_conn %lld)",
				       c->database, (long long)c->pool->db->max_client_conn);
			return;
		}
		log_debug(&c->log, "startup: user %s database %s", c->user, c->database);
		pg_client_auth_begin(c);
		return;
	}
}

/* Authenticated (or trusted): finish logging in once the pool knows the server parameters. */
static void pg_client_authenticated(struct pg_client *c)
{
	if (!c->pool) { /* the admin database */
		pg_admin_login(c);
		return;
	}
	if (c->pool->have_params) {
		pg_login_done(c);
		return;
	}
	c->state = PG_CLIENT_LOGIN;
	c->next = c->pool->login_head;
	c->pool->login_head = c;
	if (c->pool->nconnecting == 0)
		pg_server_connect(c->pool);
}

static void pg_client_auth_failed(struct pg_client *c)
{
	/* the same words whatever went wrong: unknown user, wrong password, malformed exchange */
	pg_client_fail(c, "28P01", "password authentication failed for user \"%s\"", c->user);
}

static void pg_client_auth_begin(struct pg_client *c)
{
	const struct pg_conf_auth *ac = &c->pg->conf->auth;
	int method = c->unix_socket ? ac->unix_method : ac->method;
	struct evbuffer *out = pg_client_output(c);
	if (method == PG_AUTH_TRUST) {
		pg_client_authenticated(c);
		return;
	}
	c->state = PG_CLIENT_AUTH;
	c->auth_step = 0;
	const struct pg_auth_user *u = pg_auth_find(&c->pg->auth, c->user);
	int rc;
	if (method == PG_AUTH_MD5) {
		if (RAND_bytes(c->md5_salt, 4) != 1 || pgproto_put_auth_md5(out, c->md5_salt) != 0) {
			pg_client_close(c);
			return;
		}
		return;
	}
	/* SCRAM: an unknown user, or one stored only as an md5 hash, goes through a mock exchange */
	/* (the exchange's state lives only while it runs: idle clients stay small) */
	c->scram = calloc(1, sizeof(*c->scram));
	if (!c->scram) {
		pg_client_fail(c, "53200", "out of memory");
		return;
	}
	if (u && u->have_verifier)
		rc = scram_server_init(c->scram, &u->verifier);
	else
		rc = scram_server_init_mock(c->scram, c->user, c->pg->auth.mock_secret,
					    sizeof(c->pg->auth.mock_secret));
	if (rc != SCRAM_OK) {
		free(c->scram);
		c->scram = NULL;
		pg_client_fail(c, "XX000", "cannot start SCRAM authentication: %s", scram_strerror(rc));
		return;
	}
	static const char *const mechs[] = { SCRAM_MECHANISM, NULL };
	if (pgproto_put_auth_sasl(out, mechs) != 0)
		pg_client_close(c);
}

/* PasswordMessage / SASLInitialResponse / SASLResponse during authentication. */
static void pg_client_auth_read(struct pg_client *c)
{
	struct evbuffer *in = pg_client_input(c);
	struct evbuffer *out = pg_client_output(c);
	while (c->state == PG_CLIENT_AUTH && evbuffer_get_length(in) >= 5) {
		unsigned char h[5];
		evbuffer_copyout(in, h, 5);
		uint32_t len = pg_wire_u32(h + 1);
		if (h[0] != 'p' || len < 4 || len > 8192) {
			if (h[0] == 'X') {
				pg_client_close(c);
				return;
			}
			pg_client_fail(c, "08P01", "expected a password message during authentication");
			return;
		}
		if (evbuffer_get_length(in) < (size_t)len + 1)
			return;
		unsigned char *m = evbuffer_pullup(in, (ssize_t)len + 1) + 5;
		size_t ml = len - 4;
		const char *reply;
		size_t reply_len;
		int rc;
		if (c->scram && c->auth_step == 0) {
			/* SASLInitialResponse: mechanism\0, int32 length, client-first-message */
			size_t nl = strnlen((const char *)m, ml);
			if (nl + 5 > ml || strcmp((const char *)m, SCRAM_MECHANISM) != 0 ||
			    pg_wire_u32(m + nl + 1) != ml - nl - 5) {
				evbuffer_drain(in, (size_t)len + 1);
				pg_client_fail(c, "08P01", "malformed SASLInitialResponse (tether offers SCRAM-SHA-256)");
				return;
			}
			rc = scram_server_first(c->scram, m + nl + 5, ml - nl - 5, &reply, &reply_len);
			evbuffer_drain(in, (size_t)len + 1);
			if (rc != SCRAM_OK || pgproto_put_auth_sasl_continue(out, reply, reply_len) != 0) {
				pg_client_auth_failed(c);
				return;
			}
			c->auth_step = 1;
			continue;
		}
		if (c->scram) {
			rc = scram_server_final(c->scram, m, ml, &reply, &reply_len);
			evbuffer_drain(in, (size_t)len + 1);
			if (rc != SCRAM_OK || pgproto_put_auth_sasl_final(out, reply, reply_len) != 0) {
				pg_client_auth_failed(c);
				return;
			}
			scram_server_deinit(c->scram);
			free(c->scram);
			c->scram = NULL;
			pg_client_authenticated(c);
			return;
		}
		/* md5: the response is a NUL-terminated "md5<hex>" */
		const struct pg_auth_user *u = pg_auth_find(&c->pg->auth, c->user);
		bool ok = u && strnlen((const char *)m, ml) < ml &&
			  md5auth_verify(u->secret, c->user, c->md5_salt, (const char *)m) == MD5AUTH_OK;
		evbuffer_drain(in, (size_t)len + 1);
		if (!ok) {
			pg_client_auth_failed(c);
			return;
		}
		pg_client_authenticated(c);
		return;
	}
}

static void pg_client_on_read(void *arg)
{
	struct pg_client *c = arg;
	if (c->state == PG_CLIENT_STARTUP)
		pg_client_startup(c);
	else if (c->state == PG_CLIENT_AUTH)
		pg_client_auth_read(c);
	else
		pg_client_process(c);
}

/* The client took what the server sent: let the server's data flow again. */
static void pg_client_on_write(void *arg)
{
	struct pg_client *c = arg;
	struct pg_server *s = c->server;
	pg_out_written(&c->out);
	if (s && s->bev && !pg_io_read_on(&s->out)) {
		pg_io_read_set(&s->out, true);
		pg_server_resume(s);
	}
	if (c->pg->draining)
		pg_maybe_drained(c->pg);
}

static void pg_client_on_event(void *arg, short what)
{
	struct pg_client *c = arg;
	if (what & BEV_EVENT_CONNECTED)
		return; /* the TLS handshake finished */
	if (c->tls && c->bev && (what & BEV_EVENT_ERROR)) {
		char why[256];
		pg_tls_error(c->bev, why, sizeof(why));
		log_info(&c->log, "client TLS: %s", why);
	} else {
		log_debug(&c->log, "client went away");
	}
	pg_client_close(c);
}

/* A bare socket's empty buffers go while nothing is under way (a client waiting for a server,
 * a cache lookup or an admin PAUSE keeps them, so that their answers find them). */
bool pg_client_io_idle(void *arg)
{
	struct pg_client *c = arg;
	return c->state == PG_CLIENT_IDLE && !c->server && !c->relay_remaining && !pg_cache_busy(c) &&
	       !(c->wait_timer && evtimer_pending(c->wait_timer, NULL));
}

void pg_client_accept(evutil_socket_t fd, const struct sockaddr *sa, int salen, void *arg)
{
	struct pg *pg = arg;
	metrics_add(pg->m_clients_total, 1);
	if (pg->draining || pg->nclients >= (size_t)pg->conf->max_client_conn) {
		/* refuse before reading anything: one ErrorResponse, then close */
		struct evbuffer *b = evbuffer_new();
		pg_wire_error(b, "FATAL", pg->draining ? "57P01" : "53300", "%s",
			      pg->draining ? "tether is shutting down" : "too many client connections (max_client_conn)");
		evbuffer_write(b, fd);
		evbuffer_free(b);
		evutil_closesocket(fd);
		metrics_add(pg->m_refused, 1);
		return;
	}
	struct pg_client *c = pg->nspare_client ? pg->spare_client[--pg->nspare_client] : malloc(sizeof(*c));
	if (c)
		memset(c, 0, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->pg = pg;
	c->id = ++pg->next_id;
	c->log = (struct log_src){ "pg", c->id };
	c->state = PG_CLIENT_STARTUP;
	c->unix_socket = sa->sa_family == AF_UNIX;
	if (pg->nrandom < 2) { /* one system call for the next PG_RANDOM / 2 clients */
		ssize_t got = getrandom(pg->random, sizeof(pg->random), 0);
		pg->nrandom = got > 0 ? (uint32_t)((size_t)got / sizeof(pg->random[0])) : 0;
	}
	if (pg->nrandom >= 2) {
		c->cancel_pid = pg->random[--pg->nrandom];
		c->cancel_key = pg->random[--pg->nrandom];
	} else {
		c->cancel_key = (int32_t)c->id;
	}
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	pg->nclients++;
	c->all_next = pg->clients;
	if (pg->clients)
		pg->clients->all_prev = c;
	pg->clients = c;
	/* a bare socket (no bufferevent) until an SSLRequest asks for TLS */
	if (pg_io_attach_fd(pg, &c->out, fd, &pg_client_cbs, c) != 0) {
		pg_client_close(c); /* (the socket is closed already) */
		return;
	}
	if (c->unix_socket)
		pg_io_read_now(&c->out); /* (may close c) */
}
