/* The admin database `tether`: a client that asked for it and passed postgres.auth talks to
 * tether itself over the simple query protocol (SHOW ..., RELOAD, PAUSE [db], RESUME [db]).
 * A connection keeps no state of its own: a PAUSE that waits leaves its Query at the head of the
 * input and re-runs it from the client's wait timer until the pool is quiet. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "pg_admin.h"
#include "pg_internal.h"

#define PG_ADMIN_MAX_INPUT (1024 * 1024) /* an admin client never needs more buffered */
#define PG_ADMIN_PAUSE_POLL_MS 20
#define PG_ADMIN_COMMANDS                                                                          \
	"SHOW POOLS|CLIENTS|SERVERS|STATS|DATABASES|CONFIG|VERSION|CACHE|HELP, RELOAD, PAUSE [db], RESUME [db], " \
	"CACHE PURGE [db [schema.table]]"

enum pg_admin_rc { PG_ADMIN_DONE, PG_ADMIN_WAIT };

bool pg_admin_wanted(const struct pg_client *c)
{
	return c->database && strcmp(c->database, PG_ADMIN_DB) == 0;
}

/* postgres.admin_users when set; otherwise only a unix-socket peer running as tetherd's own user
 * or root (whoever can already signal or read tetherd), whatever user name it claimed. */
static bool pg_admin_allowed(struct pg_client *c)
{
	const struct conf_strlist *l = &c->pg->conf->admin_users;
	if (l->n > 0) {
		for (size_t i = 0; i < l->n; i++)
			if (strcmp(l->items[i], c->user) == 0)
				return true;
		return false;
	}
	if (!c->unix_socket)
		return false;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(pg_client_fd(c), SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* An ErrorResponse into `out`; 0 or -1 (out of memory). */
static int pg_admin_error(struct evbuffer *out, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int pg_admin_error(struct evbuffer *out, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return pgproto_put_error(out, "ERROR", sqlstate, msg);
}

/* Pools named by a PAUSE/RESUME argument (NULL: all). Returns how many, 0 for an unknown name. */
static size_t pg_admin_targets(struct pg *pg, const char *db, struct pg_pool **first)
{
	if (!db) {
		*first = pg->pools;
		return pg->npools;
	}
	*first = pg_pool_find(pg, db);
	return *first ? 1 : 0;
}

/* Waiting clients ask again, in their order: each gets an idle server, or goes back to the tail
 * of the queue, which opens servers up to pool_size. */
static void pg_admin_kick(struct pg_pool *p)
{
	size_t n = p->nwaiting;
	for (size_t i = 0; i < n && p->wait_head && !p->paused; i++) {
		struct pg_client *c = p->wait_head;
		struct timespec since = c->wait_start;
		pg_pool_unwait(p, c);
		c->state = PG_CLIENT_IDLE;
		pg_pool_acquire(p, c);
		if (c->state == PG_CLIENT_WAITING)
			c->wait_start = since; /* it has waited since then, not since now */
	}
}

/* PAUSE: stop lending servers now, answer once no server is lent. c->wait_start marks a PAUSE
 * already under way (admin connections never wait for a server, so it is free). */
static int pg_admin_pause(struct pg_client *c, const char *db, struct evbuffer *res)
{
	struct pg_pool *first;
	size_t n = pg_admin_targets(c->pg, db, &first);
	if (db && n == 0) {
		return pg_admin_error(res, "3D000", "no database \"%s\" in tether's config", db) == 0 ? PG_ADMIN_DONE
													: -1;
	}
	bool again = c->wait_start.tv_sec != 0, quiet = true;
	for (size_t i = 0; i < n; i++) {
		struct pg_pool *p = &first[i];
		if (again && !p->paused) {
			c->wait_start.tv_sec = 0;
			return pg_admin_error(res, "57014", "PAUSE of %s was cancelled: a RESUME ran meanwhile",
					      p->name) == 0 ? PG_ADMIN_DONE : -1;
		}
		if (!p->paused) {
			p->paused = true;
			log_info(&c->log, "admin: pausing pool %s (user %s)", p->name, c->user);
		}
		if (p->nactive > 0)
			quiet = false;
	}
	if (!quiet) {
		if (!again)
			clock_gettime(CLOCK_MONOTONIC, &c->wait_start);
		struct timeval tv = { 0, PG_ADMIN_PAUSE_POLL_MS * 1000 };
		evtimer_add(c->wait_timer, &tv);
		return PG_ADMIN_WAIT;
	}
	c->wait_start.tv_sec = 0;
	log_info(&c->log, "admin: %s paused", db ? db : "every pool");
	if (pgproto_put_command_complete(res, "PAUSE") != 0)
		return -1;
	return PG_ADMIN_DONE;
}

static int pg_admin_resume(struct pg_client *c, const char *db, struct evbuffer *res)
{
	struct pg_pool *first;
	size_t n = pg_admin_targets(c->pg, db, &first);
	if (db && n == 0) {
		return pg_admin_error(res, "3D000", "no database \"%s\" in tether's config", db) == 0 ? PG_ADMIN_DONE
													: -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct pg_pool *p = &first[i];
		if (!p->paused)
			continue;
		p->paused = false;
		log_info(&c->log, "admin: resuming pool %s (user %s, clients waiting: %zu)", p->name, c->user,
			 p->nwaiting);
		pg_admin_kick(p);
	}
	if (pgproto_put_command_complete(res, "RESUME") != 0)
		return -1;
	return PG_ADMIN_DONE;
}

/* An identifier argument: bare, or in double quotes. */
static const char *pg_admin_ident(char *w)
{
	size_t l = strlen(w);
	if (l >= 2 && w[0] == '"' && w[l - 1] == '"') {
		w[l - 1] = '\0';
		return w + 1;
	}
	return w;
}

/* Runs one Query's text; its answer or error goes to `res` (the caller adds ReadyForQuery).
 * Returns PG_ADMIN_DONE, PG_ADMIN_WAIT or -1 (out of memory). */
static int pg_admin_query(struct pg_client *c, char *sql, struct evbuffer *res)
{
	size_t l = strlen(sql);
	while (l > 0 && (strchr(" \t\r\n;", sql[l - 1])))
		sql[--l] = '\0';
	if (strchr(sql, ';'))
		return pg_admin_error(res, "42601", "one admin command per query, please") == 0 ? PG_ADMIN_DONE : -1;
	char *words[4];
	size_t nw = 0;
	for (char *save = NULL, *w = strtok_r(sql, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (nw == 4) {
			nw++;
			break;
		}
		words[nw++] = w;
	}
	if (nw == 0)
		return pgproto_put_empty(res, 'I') == 0 ? PG_ADMIN_DONE : -1;
	const char *cmd = words[0];
	if (strcasecmp(cmd, "SHOW") == 0 && nw == 2) {
		struct pg_admin_table t = { .wire = res };
		int rc = pg_admin_show(c->pg, words[1], &t);
		if (rc == -2)
			return -1;
		if (rc == 0) {
			log_debug(&c->log, "admin: SHOW %s", words[1]);
			return PG_ADMIN_DONE;
		}
	} else if (strcasecmp(cmd, "RELOAD") == 0 && nw == 1) {
		/* the core has no reload call for plugins: the same path as SIGHUP, run by the loop
		 * right after this callback; its outcome is logged and counted there */
		log_info(&c->log, "admin: RELOAD (user %s)", c->user);
		raise(SIGHUP);
		return pgproto_put_command_complete(res, "RELOAD") == 0 ? PG_ADMIN_DONE : -1;
	} else if (strcasecmp(cmd, "PAUSE") == 0 && nw <= 2) {
		return pg_admin_pause(c, nw == 2 ? pg_admin_ident(words[1]) : NULL, res);
	} else if (strcasecmp(cmd, "RESUME") == 0 && nw <= 2) {
		return pg_admin_resume(c, nw == 2 ? pg_admin_ident(words[1]) : NULL, res);
	} else if (strcasecmp(cmd, "CACHE") == 0 && nw >= 2 && nw <= 4 && strcasecmp(words[1], "PURGE") == 0) {
		int rc = pg_admin_cache_purge(c, nw >= 3 ? pg_admin_ident(words[2]) : NULL, nw == 4 ? words[3] : NULL, res);
		return rc < 0 ? -1 : rc == 1 ? PG_ADMIN_WAIT : PG_ADMIN_DONE;
	}
	return pg_admin_error(res, "42601", "unknown admin command \"%.80s%s%.80s\"; tether's admin database knows "
			      PG_ADMIN_COMMANDS, cmd, nw > 1 ? " " : "", nw > 1 ? words[1] : "") == 0 ? PG_ADMIN_DONE : -1;
}

/* Ends an answer with ReadyForQuery; rc != 0 (out of memory) closes the connection instead. */
static void pg_admin_answer(struct pg_client *c, int rc)
{
	if (c->state == PG_CLIENT_CLOSED)
		return;
	if (rc != 0 || pgproto_put_ready_for_query(pg_client_output(c), 'I') != 0)
		pg_client_close(c);
}

/* Extended-protocol messages are refused as a server refuses a failed Parse: one ERROR, the rest
 * skipped through the next Sync, then ReadyForQuery. Returns 1 while the Sync is still to come. */
static int pg_admin_reject_extended(struct pg_client *c)
{
	struct evbuffer *in = pg_client_input(c);
	size_t end = pg_wire_request_end(in, "S");
	if (!end)
		return 1;
	evbuffer_drain(in, end);
	pg_admin_answer(c, pg_admin_error(pg_client_output(c), "0A000",
					  "tether's admin database speaks the simple query protocol "
					  "only (psql -c, or a driver's simple mode)"));
	return 0;
}

/* Answers the client's complete messages in order; stops at a PAUSE still waiting. */
static void pg_admin_process(struct pg_client *c)
{
	if (c->state == PG_CLIENT_CLOSED || (c->wait_timer && evtimer_pending(c->wait_timer, NULL)))
		return;
	struct evbuffer *in = pg_client_input(c);
	if (evbuffer_get_length(in) > PG_ADMIN_MAX_INPUT) {
		pg_client_fail(c, "54000", "more than %d bytes of admin commands queued", PG_ADMIN_MAX_INPUT);
		return;
	}
	while (c->state != PG_CLIENT_CLOSED && evbuffer_get_length(in) >= 5) {
		unsigned char h[5];
		evbuffer_copyout(in, h, 5);
		uint32_t len = pg_wire_u32(h + 1);
		if (len < 4 || len > PG_ADMIN_MAX_INPUT) {
			pg_client_fail(c, "08P01", "invalid message length %u", len);
			return;
		}
		switch (h[0]) {
		case 'X':
			pg_client_close(c);
			return;
		case 'd': case 'c': case 'f': /* COPY messages outside COPY are ignored, as by a server */
		case 'H':                     /* Flush: everything is flushed already */
			if (evbuffer_get_length(in) < (size_t)len + 1)
				return;
			evbuffer_drain(in, (size_t)len + 1);
			continue;
		case 'S': /* a Sync on its own: nothing failed, just ReadyForQuery */
			if (evbuffer_get_length(in) < (size_t)len + 1)
				return;
			evbuffer_drain(in, (size_t)len + 1);
			pg_admin_answer(c, 0);
			continue;
		case 'P': case 'B': case 'D': case 'E': case 'C':
			if (pg_admin_reject_extended(c) != 0)
				return;
			continue;
		case 'F': /* FunctionCall is answered on its own, no Sync follows */
			if (evbuffer_get_length(in) < (size_t)len + 1)
				return;
			evbuffer_drain(in, (size_t)len + 1);
			pg_admin_answer(c, pg_admin_error(pg_client_output(c), "0A000",
							  "tether's admin database has no functions to call"));
			continue;
		case 'Q':
			break;
		default:
			pg_client_fail(c, "08P01", "unknown message type 0x%02x", h[0]);
			return;
		}
		if (evbuffer_get_length(in) < (size_t)len + 1)
			return;
		const char *sql;
		unsigned char *msg = evbuffer_pullup(in, (ssize_t)len + 1);
		if (!msg || pgproto_parse_query(msg, (size_t)len + 1, &sql) != PGPROTO_OK) {
			pg_client_fail(c, "08P01", "malformed Query message");
			return;
		}
		char *copy = strdup(sql);
		struct evbuffer *res = evbuffer_new();
		int rc = copy && res ? pg_admin_query(c, copy, res) : -1;
		free(copy);
		if (rc == PG_ADMIN_WAIT) {
			evbuffer_free(res);
			return; /* the Query stays at the head; the wait timer runs it again */
		}
		evbuffer_drain(in, (size_t)len + 1);
		if (rc == 0 && evbuffer_add_buffer(pg_client_output(c), res) != 0)
			rc = -1;
		if (res)
			evbuffer_free(res);
		pg_admin_answer(c, rc);
	}
}

static void pg_admin_on_read(void *arg)
{
	pg_admin_process(arg);
}

static void pg_admin_on_event(void *arg, short what)
{
	struct pg_client *c = arg;
	log_debug(&c->log, "admin client went away");
	pg_client_close(c);
}

/* A PAUSE waiting for its pools to go quiet looks again. */
static void pg_admin_on_timer(evutil_socket_t fd, short what, void *arg)
{
	pg_admin_process(arg);
}

void pg_admin_login(struct pg_client *c)
{
	struct pg *pg = c->pg;
	if (!pg_admin_allowed(c)) {
		pg_client_fail(c, "28000", "user \"%s\" may not use the admin database (%s)", c->user,
			       pg->conf->admin_users.n ? "not in postgres.admin_users"
						       : "postgres.admin_users is empty: only unix-socket clients "
							 "running as tetherd's OS user");
		return;
	}
	/* what drivers read at login; server_version as the servers behind tether report it */
	const char *version = NULL;
	for (size_t i = 0; i < pg->npools && !version; i++)
		if (pg->pools[i].have_params)
			version = pg_params_get(&pg->pools[i].params, "server_version");
	const char *const params[] = {
		"server_version", version ? version : "16.0", "server_encoding", "UTF8", "client_encoding", "UTF8",
		"DateStyle", "ISO, MDY", "IntervalStyle", "postgres", "integer_datetimes", "on",
		"standard_conforming_strings", "on", "TimeZone", "UTC", "is_superuser", "off",
		"session_authorization", c->user, "application_name", c->application_name ? c->application_name : "",
		NULL,
	};
	struct evbuffer *out = pg_client_output(c);
	int rc = pgproto_put_auth_ok(out);
	for (size_t i = 0; rc == 0 && params[i]; i += 2)
		rc = pgproto_put_parameter_status(out, params[i], params[i + 1]);
	if (rc == 0)
		rc = pgproto_put_backend_key_data(out, (uint32_t)c->cancel_pid, (uint32_t)c->cancel_key);
	if (rc == 0)
		rc = pgproto_put_ready_for_query(out, 'I');
	/* the wait timer, never armed for a client without a pool, serves PAUSE */
	if (rc == 0 && c->wait_timer)
		rc = event_assign(c->wait_timer, core_base(pg->core), -1, 0, pg_admin_on_timer, c);
	else if (rc == 0)
		rc = (c->wait_timer = event_new(core_base(pg->core), -1, 0, pg_admin_on_timer, c)) ? 0 : -1;
	if (rc != 0) {
		pg_client_close(c);
		return;
	}
	c->state = PG_CLIENT_IDLE;
	c->wait_start.tv_sec = 0;
	static const struct pg_io_cbs cbs = { pg_admin_on_read, NULL, pg_admin_on_event, pg_client_io_idle };
	pg_io_setcb(&c->out, &cbs, c);
	log_info(&c->log, "admin client logged in as %s%s", c->user, c->unix_socket ? " (unix socket)" : "");
	pg_admin_process(c);
}
