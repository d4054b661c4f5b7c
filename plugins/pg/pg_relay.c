/* The relay's shortcut: what a read brought goes from the read straight to the peer's socket,
 * without passing through the input and output evbuffers, whenever nothing waits before it on
 * either side and it is made of messages the relay would pass on unchanged: a server's rows and
 * completions up to the client's ReadyForQuery, a client's simple Queries. Everything else
 * (and whatever follows it in the same read) takes the usual way through pg_client_process and
 * pg_server_relay, which do the same bookkeeping for these messages. */
#include <stdlib.h>

#include "pg_internal.h"

/* A read while the server's input is empty: the run of whole messages pg_server_relay would
 * move on unread, up to and with the client's ReadyForQuery, goes to the socket of a plain
 * client with no cache (queued only when the client's output is not empty or the socket is
 * full), then the same bookkeeping. Returns the bytes used. */
static size_t pg_relay_server_take(void *arg, const unsigned char *p, size_t n)
{
	struct pg_server *s = arg;
	struct pg_client *c = s->client;
	if (s->state != PG_SERVER_ACTIVE || s->held || s->relay_remaining || !c || c->cache || !c->out.bare ||
	    c->out.fd < 0 || pg_expect_head(s) == PG_EXP_QUERY_DROP)
		return 0;
	char ready;
	size_t run = pg_server_plain_span(p, n, pg_expect_head(s) == PG_EXP_SYNC, &ready);
	if (run == 0)
		return 0;
	int sent = pg_io_send(&c->out, p, run);
	if (sent < 0) {
		pg_server_close(s, "out of memory");
		return n;
	}
	s->relay_drop = false;
	s->pool->bytes_out += run;
	if (ready) {
		/* the client's own ReadyForQuery: what pg_server_status_msg does for it */
		(void)pg_expect_ready(s);
		s->tx_status = ready;
		if (pg_server_client_ready(s, c) != 0) {
			if (sent > 0)
				pg_io_sent(&c->out);
			return run; /* back in the pool (the client may have gone on with its next request) */
		}
	}
	if (sent > 0)
		pg_io_sent(&c->out);
	else if (pg_client_connected(c) && pg_io_unsent(&c->out) > PG_RELAY_HIGH)
		pg_io_read_set(&s->out, false); /* a slow client, as pg_server_on_read checks */
	return run;
}

/* Servers keep their bufferevent's callbacks; only the shortcut is added. */
const struct pg_io_cbs pg_relay_server_cbs = { .take = pg_relay_server_take };

/* A plain client's read while its input is empty: the simple Queries at its front that
 * pg_client_process would relay unchanged (no cache, nothing tether rewrites or answers
 * itself) go to its server, lent from the idle ones first if need be, in one write; a
 * Terminate closes it. Stops at the first message that needs more. Returns the bytes used. */
size_t pg_relay_client_take(void *arg, const unsigned char *p, size_t n)
{
	struct pg_client *c = arg;
	if ((c->state != PG_CLIENT_IDLE && c->state != PG_CLIENT_ACTIVE) || !c->pool || c->pool->cache ||
	    c->relay_remaining || c->pg->draining)
		return 0;
	size_t off = 0;
	while (off + 5 <= n) {
		const unsigned char *m = p + off;
		uint32_t len = pg_wire_u32(m + 1);
		if (m[0] == 'X' && len == 4) {
			if (off > 0)
				break; /* (the usual way, once the queries before it are sent) */
			pg_client_close(c);
			return n;
		}
		if (m[0] != 'Q' || len < 5 || len > 4096 || len > c->pg->conf->max_packet_size || len >= n - off ||
		    m[len] != 0)
			break;
		const char *q = (const char *)m + 5;
		if (!pg_extended_query_plain(c, q))
			break;
		if (!c->server) {
			if (!c->pool->idle || c->pool->paused)
				break; /* it waits: pg_client_process queues it */
			pg_pool_acquire(c->pool, c);
			if (c->state == PG_CLIENT_WAITING)
				pg_client_wait_timer(c); /* (the server is checked first) */
			if (c->state != PG_CLIENT_ACTIVE || !c->server)
				return c->state == PG_CLIENT_CLOSED ? n : 0;
		}
		c->pool->queries++;
		if (pg_expect_push(c->server, PG_EXP_SYNC, NULL) != 0) {
			pg_client_fail(c, "53200", "out of memory");
			return n;
		}
		pg_extended_query_relayed(c, q, len - 5);
		off += (size_t)len + 1;
	}
	if (off == 0)
		return 0;
	struct pg_server *s = c->server;
	int sent = pg_io_send(&s->out, p, off);
	if (sent < 0) {
		pg_client_fail(c, "53200", "out of memory");
		return n;
	}
	c->pool->bytes_in += off;
	/* the server is slow to take what the client sends: stop reading the client */
	if (sent == 0 && pg_io_unsent(&s->out) > PG_RELAY_HIGH)
		pg_io_read_set(&c->out, false);
	return off;
}
