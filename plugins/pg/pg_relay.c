/* The relay's shortcut: what a read brought goes from the read straight to the peer's socket,
 * without passing through the input and output evbuffers, whenever nothing waits before it on
 * either side and it is made of messages the relay would pass on unchanged (or with only a
 * statement renamed): a server's rows and completions up to the client's ReadyForQuery, a
 * client's simple Queries and extended-protocol requests. Everything else (and whatever follows
 * it in the same read) takes the usual way through pg_client_process and pg_server_relay, which
 * do the same bookkeeping for these messages. */
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* A read while the server's input is empty: the run of whole messages pg_server_relay would
 * move on unread (and the ParseComplete and CloseComplete it would pass), up to and with the
 * client's ReadyForQuery, goes to the socket of a plain client with no cache (queued only when
 * the client's output is not empty or the socket is full), then the same bookkeeping. Returns
 * the bytes used. */
static size_t pg_relay_server_take(void *arg, const unsigned char *p, size_t n)
{
	struct pg_server *s = arg;
	struct pg_client *c = s->client;
	if (s->state != PG_SERVER_ACTIVE || s->held || s->relay_remaining || !c || c->cache || !c->out.bare ||
	    c->out.fd < 0 || pg_expect_head(s) == PG_EXP_QUERY_DROP)
		return 0;
	char ready = 0;
	size_t run = 0;
	for (;;) {
		run += pg_server_plain_span(p + run, n - run, pg_expect_head(s) == PG_EXP_SYNC, &ready);
		if (ready)
			break;
		/* a ParseComplete or CloseComplete that answers the client's own Parse or Close (the head
		 * of what the server owes) passes as pg_server_status_msg would pass it */
		const unsigned char *m = p + run;
		if (run + 5 > n || (m[0] != '1' && m[0] != '3') || pg_wire_u32(m + 1) != 4 ||
		    pg_expect_head(s) != (m[0] == '1' ? PG_EXP_PARSE : PG_EXP_CLOSE))
			break;
		(void)pg_expect_complete(s, m[0]); /* (PG_EXP_PASS) */
		run += 5;
	}
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

/* Room for what a read (at most 64 KiB) becomes when Binds and Describes are renamed. */
#define PG_RELAY_OUT (2 * 65536 + 4096)

/* A Parse the shortcut may pass as it is: any where tether does not map statement names; else
 * only the unnamed statement's, of a text that is not a DEALLOCATE, DISCARD ... (the same bytes
 * pg_extended_client_msg would build again). */
static bool pg_relay_parse_plain(const struct pg_client *c, const unsigned char *m, size_t total)
{
	if (!pg_extended_renames(c))
		return true;
	const char *q = (const char *)m + 6;
	return total >= 7 && m[5] == 0 && strnlen(q, total - 6) < total - 6 && pg_extended_query_plain(c, q);
}

/* The bookkeeping pg_client_process does for a client message it forwards (and
 * pg_extended_client_msg for a Query, Parse or Close it relays unchanged: LISTEN in the text of
 * a Query or an unnamed statement); -1: out of memory. */
static int pg_relay_client_sent(struct pg_client *c, const unsigned char *m, size_t total)
{
	struct pg_server *s = c->server;
	switch (m[0]) {
	case 'Q':
		c->pool->queries++;
		if (pg_expect_push(s, PG_EXP_SYNC, NULL) != 0)
			return -1;
		pg_extended_query_relayed(c, (const char *)m + 5, total - 6);
		return 0;
	case 'S':
		s->unsynced = 0;
		return pg_expect_push(s, PG_EXP_SYNC, NULL);
	case 'P':
		if (pg_extended_renames(c)) /* (the unnamed statement's text, as for a Query) */
			pg_extended_query_relayed(c, (const char *)m + 6, strlen((const char *)m + 6));
		/* fall through */
	case 'C':
		if (pg_expect_push(s, m[0] == 'P' ? PG_EXP_PARSE : PG_EXP_CLOSE, NULL) != 0)
			return -1;
		/* fall through */
	default: /* B, D, E, H */
		s->unsynced++;
		return 0;
	}
}

/* A plain client's read while its input is empty: the messages at its front that
 * pg_client_process would forward unchanged or with only a statement renamed (no cache, no
 * statement to prepare first, nothing tether answers itself) go to its server, lent from the
 * idle ones first if need be, in one write; a Terminate closes it. Stops at the first message
 * that needs more. Returns the bytes used. */
size_t pg_relay_client_take(void *arg, const unsigned char *p, size_t n)
{
	static unsigned char out[PG_RELAY_OUT];
	struct pg_client *c = arg;
	if ((c->state != PG_CLIENT_IDLE && c->state != PG_CLIENT_ACTIVE) || !c->pool || c->pool->cache ||
	    c->relay_remaining || c->pg->draining)
		return 0;
	size_t off = 0, w = 0; /* w: bytes in `out`, once a message was renamed (all go there then) */
	bool renamed = false;
	while (off + 5 <= n) {
		const unsigned char *m = p + off;
		uint32_t len = pg_wire_u32(m + 1);
		size_t total = (size_t)len + 1;
		uint8_t t = m[0];
		if (t == 'X' && len == 4) {
			if (off > 0)
				break; /* (the usual way, once the messages before it are sent) */
			pg_client_close(c);
			return n;
		}
		if (!memchr("QBDEHSPC", t, 8) || len < 4 || len > c->pg->conf->max_packet_size || total > n - off)
			break;
		if (t == 'Q' && (len < 5 || len > 4096 || m[len] != 0 || !pg_extended_query_plain(c, (const char *)m + 5)))
			break;
		if (t == 'C' && pg_extended_renames(c))
			break;
		if (t == 'P' && !pg_relay_parse_plain(c, m, total))
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
		if (t == 'B' || t == 'D') {
			if (!renamed) {
				memcpy(out, p, off);
				w = off;
				renamed = true;
			}
			ssize_t ml = pg_extended_rewrite(c, m, total, out + w, sizeof(out) - w);
			if (ml < 0)
				break;
			w += (size_t)ml;
		} else if (renamed) {
			if (total > sizeof(out) - w)
				break;
			memcpy(out + w, m, total);
			w += total;
		}
		if (pg_relay_client_sent(c, m, total) != 0) {
			pg_client_fail(c, "53200", "out of memory");
			return n;
		}
		off += total;
	}
	if (off == 0)
		return 0;
	struct pg_server *s = c->server;
	int sent = renamed ? pg_io_send(&s->out, out, w) : pg_io_send(&s->out, p, off);
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
