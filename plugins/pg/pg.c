/* The pg plugin: listens on the postgres.listen URLs (a unix URL names a socket directory, as
 * with psql -h DIR) and multiplexes PostgreSQL clients onto per-database server pools. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "pg_admin.h"
#include "pg_internal.h"
#include "pg_cache.h"
#include "pg_catalog.h"
#include "plugin.h"

static void pg_collect(struct metrics_writer *w, void *arg)
{
	struct pg *pg = arg;
	for (size_t i = 0; i < pg->npools; i++) {
		struct pg_pool *p = &pg->pools[i];
		const char *kv[] = { "pool", p->name, NULL };
		metrics_write(w, "pg_clients", "gauge", "Client connections per pool.", kv, (double)p->nclients);
		metrics_write(w, "pg_clients_waiting", "gauge", "Clients waiting for a server.", kv, (double)p->nwaiting);
		metrics_write(w, "pg_servers_active", "gauge", "Server connections lent to clients.", kv,
			      (double)p->nactive);
		metrics_write(w, "pg_servers_idle", "gauge", "Idle server connections.", kv, (double)p->nidle);
		metrics_write(w, "pg_queries_total", "counter", "Simple-protocol queries relayed.", kv, (double)p->queries);
		metrics_write(w, "pg_transactions_total", "counter", "Transactions ended (transaction mode).", kv,
			      (double)p->transactions);
		metrics_write(w, "pg_bytes_in_total", "counter", "Bytes from clients to servers.", kv, (double)p->bytes_in);
		metrics_write(w, "pg_bytes_out_total", "counter", "Bytes from servers to clients.", kv, (double)p->bytes_out);
		struct pg_catalog *cat = pg_cache_pool_catalog(p);
		if (cat) {
			struct pg_catalog_stats cs;
			pg_catalog_get_stats(cat, &cs);
			metrics_write(w, "pg_catalog_queries_total", "counter",
				      "Questions the read cache asked the catalog (tables behind views, write reach).",
				      kv, (double)cs.queries);
			metrics_write(w, "pg_catalog_failures_total", "counter",
				      "Catalog questions that could not be answered (the cache bypassed, or "
				      "invalidated everything).", kv, (double)cs.failures);
			metrics_write(w, "pg_catalog_entries", "gauge", "Table names whose dependencies are known.", kv,
				      (double)cs.entries);
			metrics_write(w, "pg_catalog_connected", "gauge", "1 while the catalog connection is up.", kv,
				      cs.connected ? 1.0 : 0.0);
		}
		metrics_write(w, "pg_statements_prepared_total", "counter",
			      "Named statements tether prepared on a server for transaction-mode clients.", kv,
			      (double)p->prepares);
		metrics_write(w, "pg_statements", "gauge", "Distinct named statements clients hold (transaction mode).",
			      kv, (double)p->stmts.n);
		metrics_write(w, "pg_settings_applied_total", "counter",
			      "Queries tether ran to give a server the settings of the client it was lent to.", kv,
			      (double)p->guc_applies);
		metrics_write(w, "pg_server_checks_total", "counter",
			      "Idle servers checked with server_check_query before reuse.", kv, (double)p->checks);
	}
}

static void *pg_init(struct core *core, const void *conf)
{
	struct pg *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return NULL;
	pg->core = core;
	pg->conf = conf;
	pg->log = (struct log_src){ "pg", 0 };
	struct metrics *m = core_metrics(core);
	pg->m_clients_total =
		metrics_series(metrics_counter(m, "pg_client_connections_total", "Accepted client connections.", NULL));
	pg->m_refused = metrics_series(metrics_counter(m, "pg_client_refused_total",
						      "Client connections refused at accept (limits, draining).", NULL));
	pg->m_errors = metrics_counter(m, "pg_errors_total", "Errors by pool and SQLSTATE or kind.", "pool,kind");
	char err[512];
	if (pg_auth_load(&pg->auth, &pg->conf->auth, err, sizeof(err)) != 0) {
		log_error(&pg->log, "postgres.auth: %s", err);
		pg_auth_free(&pg->auth);
		free(pg);
		return NULL;
	}
	if (pg_pools_create(pg) != 0) {
		pg_auth_free(&pg->auth);
		free(pg);
		return NULL;
	}
	if (pg_out_start(pg) != 0 || pg_tls_init(pg, err, sizeof(err)) != 0) {
		log_error(&pg->log, "%s", err);
		pg_tls_free(pg);
		pg_out_stop(pg);
		pg_pools_destroy(pg);
		pg_auth_free(&pg->auth);
		free(pg);
		return NULL;
	}
	metrics_collector_add(m, pg_collect, pg);
	return pg;
}

static int pg_start(void *inst)
{
	struct pg *pg = inst;
	const struct pg_conf *pc = pg->conf;
	/* unix URLs name a directory: the socket inside is .s.PGSQL.<port> */
	struct core_listen_conf lc = pc->l;
	char **urls = calloc(pc->l.listen.n ? pc->l.listen.n : 1, sizeof(char *));
	if (!urls)
		return -1;
	for (size_t i = 0; i < pc->l.listen.n; i++) {
		const char *u = pc->l.listen.items[i];
		if (strncmp(u, "unix://", 7) == 0) {
			size_t l = strlen(u);
			const char *slash = l && u[l - 1] == '/' ? "" : "/";
			if (asprintf(&urls[i], "%s%s.s.PGSQL.%lld", u, slash, (long long)pc->port) < 0)
				urls[i] = NULL;
		} else {
			urls[i] = strdup(u);
		}
	}
	lc.listen.items = urls;
	/* the cache plugin (started before this one) is up now */
	for (size_t i = 0; i < pg->npools; i++) {
		if (pg_cache_pool_init(&pg->pools[i]) != 0) {
			log_error(&pg->log, "out of memory");
			for (size_t k = 0; k < pc->l.listen.n; k++)
				free(urls[k]);
			free(urls);
			return -1;
		}
	}
	int rc = core_listen(pg->core, "postgres", &lc, (uint16_t)pc->port, pg_client_accept, pg);
	for (size_t i = 0; i < pc->l.listen.n; i++)
		free(urls[i]);
	free(urls);
	if (rc == 0)
		rc = pg_janitor_start(pg);
	return rc != 0 ? rc : pg_admin_start(pg); /* /admin/pools, pool metrics, SHOW STATS periods */
}

static void pg_reload(void *inst, const void *conf)
{
	struct pg *pg = inst;
	const struct pg_conf *nc = conf;
	/* Pools read their settings live from p->db: point it at the new entry. A database added or
	 * removed needs a restart (the core warned); a removed one keeps its start-up entry. */
	for (size_t i = 0; i < pg->npools; i++) {
		struct pg_pool *p = &pg->pools[i];
		p->db = p->db_boot;
		for (size_t j = 0; j < nc->databases.n; j++) {
			const struct pg_conf_db *d = CONF_ARRAY_AT(&nc->databases, struct pg_conf_db, j);
			if (strcmp(d->name, p->name) == 0)
				p->db = d;
		}
	}
	struct pg_auth fresh;
	char err[512];
	if (pg_auth_load(&fresh, &nc->auth, err, sizeof(err)) != 0) {
		log_error(&pg->log, "postgres.auth: %s; keeping the users loaded before", err);
		pg_auth_free(&fresh);
	} else {
		pg_auth_free(&pg->auth);
		pg->auth = fresh;
	}
	pg->conf = conf;
}

void pg_maybe_drained(struct pg *pg)
{
	if (!pg->draining || !pg->drain_done)
		return;
	for (size_t i = 0; i < pg->npools; i++)
		if (pg->pools[i].nactive > 0)
			return;
	/* and every answer is written (a COMMIT's ReadyForQuery must not die in a buffer) */
	for (struct pg_client *c = pg->clients; c; c = c->all_next) {
		if (pg_io_unsent(&c->out) > 0)
			return;
	}
	if (pg->lingering)
		return;
	void (*done)(void *) = pg->drain_done;
	pg->drain_done = NULL;
	done(pg->drain_arg);
}

static void pg_drain(void *inst, void (*done)(void *arg), void *arg)
{
	struct pg *pg = inst;
	pg->draining = true;
	pg->drain_done = done;
	pg->drain_arg = arg;
	/* clients' write callbacks fire once their output is empty: the drain can end then (a bare
	 * socket's fire on every write while it is below PG_RELAY_LOW) */
	for (struct pg_client *c = pg->clients; c; c = c->all_next)
		if (c->bev)
			bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	/* idle servers close now; active ones finish their transaction */
	for (size_t i = 0; i < pg->npools; i++)
		while (pg->pools[i].idle)
			pg_server_close(pg->pools[i].idle, "draining");
	pg_maybe_drained(pg);
}

static void pg_stop(void *inst)
{
	struct pg *pg = inst;
	metrics_collector_remove(core_metrics(pg->core), pg_collect, pg);
	pg_admin_stop(pg);
	pg_admin_cache_forget(pg);
	pg_janitor_stop(pg);
	while (pg->clients)
		pg_client_close(pg->clients);
	pg_tls_free(pg); /* (open TLS connections keep their own reference to the context) */
	pg_pools_destroy(pg); /* servers still lent out or connecting after the drain timeout too */
	pg_tls_linger_stop(pg);
	pg_out_stop(pg);
	pg_pool_reap_now(pg);
	pg_auth_free(&pg->auth);
	free(pg);
}

static bool pg_ready(void *inst, char *reason, size_t len)
{
	struct pg *pg = inst;
	for (size_t i = 0; i < pg->npools; i++) {
		if (pg->pools[i].consecutive_failures > 0) {
			snprintf(reason, len, "database %s: cannot reach the server", pg->pools[i].name);
			return false;
		}
	}
	return true;
}

const struct plugin pg_plugin = {
	.name = "postgres",
	.description = "PostgreSQL connection pooler",
	.conf = &pg_conf_table,
	.init = pg_init,
	.start = pg_start,
	.reload = pg_reload,
	.drain = pg_drain,
	.stop = pg_stop,
	.ready = pg_ready,
};
