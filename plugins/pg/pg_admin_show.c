/* What the admin database shows: the SHOW tables computed from the live pools and clients,
 * GET /admin/pools, the pool metrics that are read at scrape time, and the per-period averages
 * of SHOW STATS. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "pg_admin.h"
#include "pg_internal.h"
#include "version.h"

#define PG_ADMIN_STATS_PERIOD 60 /* seconds: SHOW STATS averages over the last whole period */

struct pg_admin_counts {
	uint64_t xact, query, recv, sent;
};

struct pg_admin {
	struct pg *pg;
	struct event *period_ev;
	struct timespec period_start; /* when `last` was taken */
	bool full;                    /* a whole period passed: last - prev is its delta */
	struct pg_admin_counts *prev, *last; /* per pool */
};

const char *const pg_admin_show_names[] = { "POOLS",  "CLIENTS", "SERVERS", "STATS", "DATABASES",
					    "CONFIG", "VERSION", "HELP",    "CACHE", NULL };

/* ---- live figures ------------------------------------------------------------------------ */

/* Per pool, from one pass over the clients. */
struct pg_admin_pool_counts {
	int64_t cl_active, cl_waiting, cl_idle, cl_login, sv_linked, sv_used, maxwait_us;
};

static int64_t pg_admin_us_since(const struct timespec *since, const struct timespec *now)
{
	if (!since->tv_sec)
		return 0;
	return (int64_t)(now->tv_sec - since->tv_sec) * 1000000 + (now->tv_nsec - since->tv_nsec) / 1000;
}

static struct pg_admin_pool_counts *pg_admin_count(struct pg *pg)
{
	struct pg_admin_pool_counts *pc = calloc(pg->npools ? pg->npools : 1, sizeof(*pc));
	if (!pc)
		return NULL;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (struct pg_client *c = pg->clients; c; c = c->all_next) {
		if (!c->pool)
			continue;
		struct pg_admin_pool_counts *k = &pc[c->pool - pg->pools];
		switch (c->state) {
		case PG_CLIENT_ACTIVE:
			k->cl_active++;
			if (c->server)
				k->sv_linked++;
			break;
		case PG_CLIENT_WAITING: {
			k->cl_waiting++;
			int64_t w = pg_admin_us_since(&c->wait_start, &now);
			if (w > k->maxwait_us)
				k->maxwait_us = w;
			break;
		}
		case PG_CLIENT_IDLE:
			k->cl_idle++;
			break;
		case PG_CLIENT_STARTUP:
		case PG_CLIENT_AUTH:
		case PG_CLIENT_LOGIN:
			k->cl_login++;
			break;
		default:
			break;
		}
	}
	time_t wall = time(NULL);
	for (size_t i = 0; i < pg->npools; i++) {
		int64_t delay = pg->conf->server_check_delay;
		for (struct pg_server *s = pg->pools[i].idle; s && delay > 0; s = s->next)
			if ((int64_t)(wall - s->last_used) * 1000 >= delay)
				pc[i].sv_used++;
	}
	return pc;
}

static void pg_admin_counts_now(const struct pg_pool *p, struct pg_admin_counts *k)
{
	*k = (struct pg_admin_counts){ p->transactions, p->queries, p->bytes_in, p->bytes_out };
}

static void pg_admin_on_period(evutil_socket_t fd, short what, void *arg)
{
	struct pg_admin *a = arg;
	for (size_t i = 0; i < a->pg->npools; i++) {
		a->prev[i] = a->last[i];
		pg_admin_counts_now(&a->pg->pools[i], &a->last[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &a->period_start);
	a->full = true;
}

/* ---- the SHOW tables ------------------------------------------------------------------- */

static const char *pg_admin_mode(const struct pg_pool *p)
{
	return p->db->pool_mode == PG_POOL_SESSION ? "session" : "transaction";
}

static int pg_admin_show_pools(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "database",  "user",     "cl_active", "cl_waiting", "cl_idle",
					    "cl_login",  "sv_active", "sv_idle",  "sv_used",    "sv_tested",
					    "sv_login",  "maxwait",  "maxwait_us", "pool_mode", "paused", NULL };
	struct pg_admin_pool_counts *pc = pg_admin_count(pg);
	if (!pc)
		return -2;
	pg_admin_table_begin(t, cols, "ttiiiiiiiiiiiti");
	for (size_t i = 0; i < pg->npools; i++) {
		struct pg_pool *p = &pg->pools[i];
		struct pg_admin_pool_counts *k = &pc[i];
		int64_t tested = (int64_t)p->nactive > k->sv_linked ? (int64_t)p->nactive - k->sv_linked : 0;
		pg_admin_table_text(t, p->name);
		pg_admin_table_text(t, p->db->user);
		pg_admin_table_int(t, k->cl_active);
		pg_admin_table_int(t, k->cl_waiting);
		pg_admin_table_int(t, k->cl_idle);
		pg_admin_table_int(t, k->cl_login);
		pg_admin_table_int(t, k->sv_linked);
		pg_admin_table_int(t, (int64_t)p->nidle - k->sv_used);
		pg_admin_table_int(t, k->sv_used);
		pg_admin_table_int(t, tested);
		pg_admin_table_int(t, (int64_t)p->nconnecting);
		pg_admin_table_int(t, k->maxwait_us / 1000000);
		pg_admin_table_int(t, k->maxwait_us % 1000000);
		pg_admin_table_text(t, pg_admin_mode(p));
		pg_admin_table_int(t, p->paused);
		pg_admin_table_end_row(t);
	}
	free(pc);
	return 0;
}

static const char *pg_admin_client_state(const struct pg_client *c)
{
	switch (c->state) {
	case PG_CLIENT_ACTIVE: return "active";
	case PG_CLIENT_WAITING: return "waiting";
	case PG_CLIENT_IDLE: return "idle";
	default: return "login";
	}
}

/* The peer's address and port, "unix" for a unix socket. */
static void pg_admin_peer(const struct pg_client *c, char *addr, size_t len, int64_t *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	snprintf(addr, len, "unix");
	*port = c->pg->conf->port;
	if (!pg_client_connected(c) || getpeername(pg_client_fd(c), (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)len);
		*port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)len);
		*port = ntohs(in6->sin6_port);
	}
}

static int pg_admin_show_clients(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "type",       "user", "database",       "state",
					    "addr",       "port", "wait",           "wait_us",
					    "id",         "link", "remote_pid",     "in_transaction",
					    "application_name", NULL };
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pg_admin_table_begin(t, cols, "tttttiiiiiiit");
	for (struct pg_client *c = pg->clients; c && !t->err; c = c->all_next) {
		char addr[INET6_ADDRSTRLEN + 1];
		int64_t port;
		pg_admin_peer(c, addr, sizeof(addr), &port);
		int64_t w = c->state == PG_CLIENT_WAITING ? pg_admin_us_since(&c->wait_start, &now) : 0;
		pg_admin_table_text(t, "C");
		pg_admin_table_text(t, c->user);
		pg_admin_table_text(t, c->pool ? c->pool->name : c->database);
		pg_admin_table_text(t, pg_admin_client_state(c));
		pg_admin_table_text(t, addr);
		pg_admin_table_int(t, port);
		pg_admin_table_int(t, w / 1000000);
		pg_admin_table_int(t, w % 1000000);
		pg_admin_table_int(t, (int64_t)c->id);
		if (c->server)
			pg_admin_table_int(t, (int64_t)c->server->id);
		else
			pg_admin_table_text(t, NULL);
		if (c->server)
			pg_admin_table_int(t, c->server->backend_pid);
		else
			pg_admin_table_text(t, NULL);
		pg_admin_table_int(t, c->in_tx);
		pg_admin_table_text(t, c->application_name ? c->application_name : "");
		pg_admin_table_end_row(t);
	}
	return 0;
}

static void pg_admin_time(time_t when, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void pg_admin_server_row(struct pg_admin_table *t, const struct pg_server *s, const char *state)
{
	const struct pg_conf_db *db = s->pool->db;
	char connect[40], request[40];
	pg_admin_time(s->created, connect, sizeof(connect));
	pg_admin_time(s->last_used, request, sizeof(request));
	pg_admin_table_text(t, "S");
	pg_admin_table_text(t, db->user);
	pg_admin_table_text(t, s->pool->name);
	pg_admin_table_text(t, state);
	pg_admin_table_text(t, db->host);
	pg_admin_table_int(t, db->port);
	pg_admin_table_int(t, (int64_t)s->id);
	if (s->client)
		pg_admin_table_int(t, (int64_t)s->client->id);
	else
		pg_admin_table_text(t, NULL);
	pg_admin_table_int(t, s->backend_pid);
	pg_admin_table_text(t, connect);
	pg_admin_table_text(t, request);
	char tx[2] = { s->tx_status ? s->tx_status : 'I', 0 };
	pg_admin_table_text(t, tx);
	pg_admin_table_end_row(t);
}

/* Every open server of every pool, in the state it is in now. */
static int pg_admin_show_servers(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "type", "user",       "database",     "state",
					    "addr", "port",       "id",           "link",
					    "remote_pid", "connect_time", "request_time", "tx_status", NULL };
	pg_admin_table_begin(t, cols, "tttttiiiittt");
	time_t wall = time(NULL);
	int64_t delay = pg->conf->server_check_delay;
	for (size_t i = 0; i < pg->npools; i++) {
		for (struct pg_server *s = pg->pools[i].servers; s && !t->err; s = s->all_next) {
			const char *state = "closed";
			switch (s->state) {
			case PG_SERVER_CONNECTING: state = "login"; break;
			case PG_SERVER_IDLE:
				state = delay > 0 && (int64_t)(wall - s->last_used) * 1000 >= delay ? "used" : "idle";
				break;
			case PG_SERVER_ACTIVE: state = "active"; break;
			case PG_SERVER_RESETTING: state = "tested"; break;
			case PG_SERVER_CLOSED: break;
			}
			pg_admin_server_row(t, s, state);
		}
	}
	return 0;
}

static double pg_admin_rate(uint64_t now, uint64_t then, double seconds)
{
	return now >= then && seconds > 0 ? (double)(now - then) / seconds : 0;
}

static int pg_admin_show_stats(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "database",        "total_xact_count", "total_query_count",
					    "total_received",  "total_sent",       "avg_xact_count",
					    "avg_query_count", "avg_recv",         "avg_sent", NULL };
	struct pg_admin *a = pg->admin;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pg_admin_table_begin(t, cols, "tiiiiiiii");
	for (size_t i = 0; i < pg->npools; i++) {
		struct pg_admin_counts cur, from = { 0 }, to;
		pg_admin_counts_now(&pg->pools[i], &cur);
		double secs = PG_ADMIN_STATS_PERIOD;
		if (a && a->full) {
			from = a->prev[i];
			to = a->last[i];
		} else {
			/* before the first whole period: since start-up */
			if (a)
				from = a->last[i];
			to = cur;
			secs = a ? (double)pg_admin_us_since(&a->period_start, &now) / 1e6 : 0;
			if (secs < 1)
				secs = 1;
		}
		pg_admin_table_text(t, pg->pools[i].name);
		pg_admin_table_int(t, (int64_t)cur.xact);
		pg_admin_table_int(t, (int64_t)cur.query);
		pg_admin_table_int(t, (int64_t)cur.recv);
		pg_admin_table_int(t, (int64_t)cur.sent);
		pg_admin_table_int(t, (int64_t)(pg_admin_rate(to.xact, from.xact, secs) + 0.5));
		pg_admin_table_int(t, (int64_t)(pg_admin_rate(to.query, from.query, secs) + 0.5));
		pg_admin_table_int(t, (int64_t)(pg_admin_rate(to.recv, from.recv, secs) + 0.5));
		pg_admin_table_int(t, (int64_t)(pg_admin_rate(to.sent, from.sent, secs) + 0.5));
		pg_admin_table_end_row(t);
	}
	return 0;
}

static int pg_admin_show_databases(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "name",          "host",       "port",
					    "database",      "force_user", "pool_size",
					    "min_pool_size", "pool_mode",  "max_client_conn",
					    "current_connections", "current_clients", "paused", "disabled", NULL };
	pg_admin_table_begin(t, cols, "ttittiitiiiii");
	for (size_t i = 0; i < pg->npools; i++) {
		const struct pg_pool *p = &pg->pools[i];
		const struct pg_conf_db *db = p->db;
		pg_admin_table_text(t, p->name);
		pg_admin_table_text(t, db->host);
		pg_admin_table_int(t, db->port);
		pg_admin_table_text(t, db->dbname ? db->dbname : p->name);
		pg_admin_table_text(t, db->user);
		pg_admin_table_int(t, db->pool_size);
		pg_admin_table_int(t, db->min_idle);
		pg_admin_table_text(t, pg_admin_mode(p));
		pg_admin_table_int(t, db->max_client_conn);
		pg_admin_table_int(t, (int64_t)p->nservers);
		pg_admin_table_int(t, (int64_t)p->nclients);
		pg_admin_table_int(t, p->paused);
		pg_admin_table_int(t, 0);
		pg_admin_table_end_row(t);
	}
	return 0;
}

/* One row per leaf key, walking the table beside its JSON (where secrets are already masked). */
static void pg_admin_config_rows(struct pg_admin_table *t, const struct conf_table *tab, json_t *obj,
				 const char *prefix)
{
	for (const struct conf_key *k = tab->keys; k->name && !t->err; k++) {
		char path[512];
		snprintf(path, sizeof(path), "%s%s", prefix, k->name);
		json_t *v = json_object_get(obj, k->name);
		if (k->type == CONF_SECTION) {
			char sub[520];
			snprintf(sub, sizeof(sub), "%s.", path);
			pg_admin_config_rows(t, k->sub, v, sub);
			continue;
		}
		if (k->type == CONF_MAP) {
			const char *name;
			json_t *elem;
			json_object_foreach(v, name, elem) {
				char sub[1024];
				snprintf(sub, sizeof(sub), "%s.%s.", path, name);
				pg_admin_config_rows(t, k->sub, elem, sub);
			}
			continue;
		}
		char *dumped = NULL;
		const char *text = NULL;
		if (json_is_string(v))
			text = json_string_value(v);
		else if (v && !json_is_null(v))
			text = dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		pg_admin_table_text(t, path);
		pg_admin_table_text(t, text);
		pg_admin_table_text(t, k->def);
		pg_admin_table_text(t, k->flags & CONF_RELOAD ? "yes" : "no");
		pg_admin_table_end_row(t);
		free(dumped);
	}
}

static int pg_admin_show_config(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "key", "value", "default", "changeable", NULL };
	/* the core's printer masks every CONF_SECRET value; give it just this section */
	const struct conf_table *tabs[] = { &pg_conf_table };
	void *secs[] = { (void *)pg->conf };
	bool present[] = { true };
	struct conf cf = { .nsections = 1, .tables = tabs, .sections = secs, .present = present };
	json_t *all = conf_to_json(&cf);
	if (!all)
		return -2;
	pg_admin_table_begin(t, cols, "tttt");
	pg_admin_config_rows(t, &pg_conf_table, json_object_get(all, pg_conf_table.name), "postgres.");
	json_decref(all);
	return 0;
}

static int pg_admin_show_version(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "version", NULL };
	pg_admin_table_begin(t, cols, "t");
	pg_admin_table_text(t, "tether " TETHER_VERSION);
	pg_admin_table_end_row(t);
	return 0;
}

static int pg_admin_show_help(struct pg *pg, struct pg_admin_table *t)
{
	static const char *const cols[] = { "command", "description", NULL };
	static const char *const rows[][2] = {
		{ "SHOW POOLS", "clients and servers per pool, longest wait, paused" },
		{ "SHOW CLIENTS", "every client connection" },
		{ "SHOW SERVERS", "server connections: login, idle, used, active, tested" },
		{ "SHOW STATS", "transactions, queries and bytes per pool: totals and per-second averages" },
		{ "SHOW DATABASES", "the configured databases and their pool settings" },
		{ "SHOW CONFIG", "the postgres section in effect (secrets masked)" },
		{ "SHOW VERSION", "tether's version" },
		{ "SHOW CACHE", "read cache: lookups, hits, misses, bypasses and hit ratio per rule, and totals" },
		{ "SHOW HELP", "this list" },
		{ "RELOAD", "reload the config file, as SIGHUP does" },
		{ "PAUSE [db]", "let transactions finish, then lend no servers (clients queue)" },
		{ "RESUME [db]", "lend servers again" },
		{ "CACHE PURGE [db [schema.table]]", "invalidate cached reads: everything, a database, a table" },
	};
	pg_admin_table_begin(t, cols, "tt");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		pg_admin_table_text(t, rows[i][0]);
		pg_admin_table_text(t, rows[i][1]);
		pg_admin_table_end_row(t);
	}
	return 0;
}

int pg_admin_show(struct pg *pg, const char *what, struct pg_admin_table *t)
{
	static int (*const fns[])(struct pg *, struct pg_admin_table *) = {
		pg_admin_show_pools,     pg_admin_show_clients, pg_admin_show_servers, pg_admin_show_stats,
		pg_admin_show_databases, pg_admin_show_config,  pg_admin_show_version, pg_admin_show_help,
		pg_admin_show_cache,
	};
	for (size_t i = 0; pg_admin_show_names[i]; i++) {
		if (strcasecmp(what, pg_admin_show_names[i]) != 0)
			continue;
		int rc = fns[i](pg, t);
		if (rc != 0)
			return rc;
		return pg_admin_table_end(t, "SHOW") != 0 ? -2 : 0;
	}
	return -1;
}

/* ---- GET /admin/pools --------------------------------------------------------------------- */

/* A SHOW table as a JSON array, or NULL. */
static json_t *pg_admin_json_table(struct pg *pg, const char *what)
{
	struct pg_admin_table t = { .json = json_array() };
	if (!t.json)
		return NULL;
	if (pg_admin_show(pg, what, &t) != 0) {
		json_decref(t.json);
		return NULL;
	}
	return t.json;
}

static void pg_admin_http_pools(struct http_request *r, void *arg)
{
	struct pg *pg = arg;
	const char *m = http_request_method(r);
	if (!core_admin_authorized(pg->core, r))
		return;
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_response_header(r, "Allow", "GET, HEAD");
		http_response_error(r, 405, "%s is not allowed on /admin/pools; use GET", m);
		return;
	}
	/* one object per pool: SHOW POOLS, SHOW STATS and SHOW DATABASES side by side */
	json_t *pools = pg_admin_json_table(pg, "POOLS");
	json_t *stats = pg_admin_json_table(pg, "STATS");
	json_t *dbs = pg_admin_json_table(pg, "DATABASES");
	json_t *body = json_object();
	bool detail = strstr(http_request_query(r), "detail=1") != NULL;
	json_t *clients = detail ? pg_admin_json_table(pg, "CLIENTS") : NULL;
	json_t *servers = detail ? pg_admin_json_table(pg, "SERVERS") : NULL;
	if (!pools || !stats || !dbs || !body || (detail && (!clients || !servers))) {
		json_decref(pools);
		json_decref(stats);
		json_decref(dbs);
		json_decref(body);
		json_decref(clients);
		json_decref(servers);
		http_response_error(r, 500, "out of memory");
		return;
	}
	size_t i;
	json_t *p;
	int64_t waiting = 0, servers_n = 0, active = 0;
	json_array_foreach(pools, i, p) {
		json_object_update_missing(p, json_array_get(stats, i));
		json_object_update_missing(p, json_array_get(dbs, i));
		json_object_del(p, "name"); /* the same as "database" */
		waiting += (int64_t)json_integer_value(json_object_get(p, "cl_waiting"));
		active += (int64_t)json_integer_value(json_object_get(p, "cl_active"));
		servers_n += (int64_t)json_integer_value(json_object_get(p, "current_connections"));
	}
	json_decref(stats);
	json_decref(dbs);
	json_object_set_new(body, "pools", pools);
	json_object_set_new(body, "clients", json_integer((json_int_t)pg->nclients));
	json_object_set_new(body, "clients_active", json_integer((json_int_t)active));
	json_object_set_new(body, "clients_waiting", json_integer((json_int_t)waiting));
	json_object_set_new(body, "servers", json_integer((json_int_t)servers_n));
	json_object_set_new(body, "max_client_conn", json_integer((json_int_t)pg->conf->max_client_conn));
	json_object_set_new(body, "draining", json_boolean(pg->draining));
	if (detail) {
		json_object_set_new(body, "client_list", clients);
		json_object_set_new(body, "server_list", servers);
	}
	http_response_json(r, 200, body);
}

/* ---- metrics read at scrape time (pg.c's collector has the rest) ---------------------------- */

static void pg_admin_collect(struct metrics_writer *w, void *arg)
{
	struct pg *pg = arg;
	struct pg_admin_pool_counts *pc = pg_admin_count(pg);
	if (!pc)
		return;
	for (size_t i = 0; i < pg->npools; i++) {
		const struct pg_pool *p = &pg->pools[i];
		const char *kv[] = { "pool", p->name, NULL };
		metrics_write(w, "pg_clients_active", "gauge", "Clients linked to a server.", kv,
			      (double)pc[i].cl_active);
		metrics_write(w, "pg_servers_login", "gauge", "Server connections connecting or logging in.", kv,
			      (double)p->nconnecting);
		metrics_write(w, "pg_client_maxwait_seconds", "gauge", "How long the oldest waiting client has waited.",
			      kv, (double)pc[i].maxwait_us / 1e6);
		metrics_write(w, "pg_pool_paused", "gauge", "1 while the pool is paused (admin PAUSE).", kv,
			      p->paused ? 1 : 0);
	}
	free(pc);
}

/* ---- start and stop ----------------------------------------------------------------------- */

int pg_admin_start(struct pg *pg)
{
	struct pg_admin *a = calloc(1, sizeof(*a));
	if (!a)
		return -1;
	a->pg = pg;
	size_t n = pg->npools ? pg->npools : 1;
	a->prev = calloc(n, sizeof(*a->prev));
	a->last = calloc(n, sizeof(*a->last));
	a->period_ev = event_new(core_base(pg->core), -1, EV_PERSIST, pg_admin_on_period, a);
	pg->admin = a;
	if (!a->prev || !a->last || !a->period_ev) {
		log_error(&pg->log, "admin: out of memory");
		return -1;
	}
	for (size_t i = 0; i < pg->npools; i++)
		pg_admin_counts_now(&pg->pools[i], &a->last[i]);
	clock_gettime(CLOCK_MONOTONIC, &a->period_start);
	struct timeval tv = { PG_ADMIN_STATS_PERIOD, 0 };
	event_add(a->period_ev, &tv);
	metrics_collector_add(core_metrics(pg->core), pg_admin_collect, pg);
	const struct http_route route = { .prefix = "/admin/pools", .exact = true, .name = "/admin/pools",
					  .on_request = pg_admin_http_pools, .arg = pg };
	struct http_server *admin = core_admin(pg->core);
	if (admin && http_server_mount(admin, &route) != 0) {
		log_error(&pg->log, "admin: cannot mount /admin/pools");
		return -1;
	}
	return 0;
}

void pg_admin_stop(struct pg *pg)
{
	struct pg_admin *a = pg->admin;
	if (!a)
		return;
	struct http_server *admin = core_admin(pg->core);
	if (admin)
		http_server_unmount(admin, "/admin/pools");
	metrics_collector_remove(core_metrics(pg->core), pg_admin_collect, pg);
	if (a->period_ev)
		event_free(a->period_ev);
	free(a->prev);
	free(a->last);
	free(a);
	pg->admin = NULL;
}
