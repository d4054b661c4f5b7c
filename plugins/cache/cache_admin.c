/* The read cache's admin routes and metrics: GET /admin/cache (Redis and circuit state, hit
 * ratio, bypasses by reason, invalidations, per-rule match counts) and
 * POST /admin/cache/purge?database=D&table=T | ?database=D | ?all, answered once the
 * invalidation is in Redis or queued; the Prometheus collector reports the same counters. */
#include "cache_admin.h"
#include "http_query.h"

#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core.h"


static const char *cache_admin_circuit(int state)
{
	return state == 0 ? "closed" : state == 1 ? "open" : "half-open";
}

static json_t *cache_admin_status(struct cache *c)
{
	struct cache_stats s;
	cache_get_stats(c, &s);
	json_t *bypass = json_object();
	uint64_t nbypass = 0;
	for (int i = 0; i < CACHE_BYPASS_NREASONS; i++) {
		json_object_set_new(bypass, cache_bypass_reason_name((enum cache_bypass_reason)i),
				    json_integer((json_int_t)s.bypasses[i]));
		nbypass += s.bypasses[i];
	}
	uint64_t total = s.hits + s.misses + nbypass;
	json_t *rules = json_array();
	for (size_t i = 0; i <= c->nrules; i++) {
		struct cache_rule_info ri;
		if (i < c->nrules)
			cache_rule_get(c, i, &ri);
		else
			cache_rule_hint(c, &ri);
		json_t *r = json_object();
		if (i == c->nrules)
			json_object_set_new(r, "hint", json_true());
		json_object_set_new(r, "database", ri.database ? json_string(ri.database) : json_null());
		if (ri.match)
			json_object_set_new(r, "match", json_string(ri.match));
		if (ri.fingerprint)
			json_object_set_new(r, "fingerprint", json_string(ri.fingerprint));
		uint64_t lookups = ri.hits + ri.misses + ri.bypasses;
		json_object_set_new(r, "ttl_ms", json_integer(ri.ttl_ms));
		json_object_set_new(r, "matches", json_integer((json_int_t)ri.matches));
		json_object_set_new(r, "hits", json_integer((json_int_t)ri.hits));
		json_object_set_new(r, "misses", json_integer((json_int_t)ri.misses));
		json_object_set_new(r, "bypasses", json_integer((json_int_t)ri.bypasses));
		json_object_set_new(r, "hit_ratio", json_real(lookups ? (double)ri.hits / (double)lookups : 0.0));
		json_array_append_new(rules, r);
	}
	return json_pack("{s:{s:s,s:s,s:I},s:b,s:I,s:I,s:f,s:o,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:b,s:I},s:o,s:I}",
			 "redis", "state", s.redis_state, "circuit", cache_admin_circuit(s.circuit), "errors",
			 (json_int_t)s.redis_errors, "readable", cache_readable(c), "hits", (json_int_t)s.hits, "misses",
			 (json_int_t)s.misses, "hit_ratio", total ? (double)s.hits / (double)total : 0.0, "bypasses",
			 bypass, "single_flight_waits", (json_int_t)s.single_flight_waits, "stores",
			 (json_int_t)s.stores, "stored_bytes", (json_int_t)s.stored_bytes, "store_skipped",
			 (json_int_t)s.store_skipped, "invalidations", "durable", (json_int_t)s.invalidations_durable,
			 "queued", (json_int_t)s.invalidations_queued, "pending_tables", (json_int_t)s.pending_tables,
			 "pending_everything", s.pending_everything, "pending_applied", (json_int_t)s.pending_applied,
			 "rules", rules, "hint_matches", (json_int_t)c->hint_matches);
}

/* The status document plus the speculative GET counts. */
static json_t *cache_admin_doc(struct cache *c)
{
	json_t *doc = cache_admin_status(c);
	struct cache_stats s;
	cache_get_stats(c, &s);
	if (doc) {
		json_object_set_new(doc, "speculative_gets",
				    json_pack("{s:I,s:I}", "used", (json_int_t)s.speculative_used, "wasted",
					      (json_int_t)s.speculative_wasted));
		json_object_set_new(doc, "keyed", json_pack("{s:I,s:I}", "lookups", (json_int_t)s.keyed_lookups,
							     "writes", (json_int_t)s.keyed_writes));
	}
	return doc;
}

static void cache_admin_get(struct http_request *r, void *arg)
{
	struct cache *c = arg;
	const char *m = http_request_method(r);
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
		http_response_header(r, "Allow", "GET, HEAD");
		http_response_error(r, 405, "%s is not allowed on %s; use GET", m, http_request_path(r));
		return;
	}
	if (!core_admin_authorized(c->core, r))
		return;
	http_response_json(r, 200, cache_admin_doc(c));
}

struct cache_admin_purge {
	struct http_request *r;
	struct cache_inval *iv;
};

static void cache_admin_purge_abort(struct http_request *r, void *arg)
{
	struct cache_admin_purge *p = arg;
	cache_invalidate_cancel(p->iv);
	free(p);
}

static void cache_admin_purge_done(void *arg, enum cache_inval_outcome outcome)
{
	struct cache_admin_purge *p = arg;
	http_request_set_abort_handler(p->r, NULL, NULL);
	http_response_json(p->r, 200,
			   json_pack("{s:s}", "outcome", outcome == CACHE_INVAL_DURABLE ? "durable" : "queued"));
	free(p);
}

static void cache_admin_purge(struct http_request *r, void *arg)
{
	struct cache *c = arg;
	const char *m = http_request_method(r);
	if (strcmp(m, "POST") != 0) {
		http_response_header(r, "Allow", "POST");
		http_response_error(r, 405, "%s is not allowed on %s; use POST", m, http_request_path(r));
		return;
	}
	if (!core_admin_authorized(c->core, r))
		return;
	const char *q = http_request_query(r);
	char *all = http_query_param(q, "all"), *db = http_query_param(q, "database"),
	     *table = http_query_param(q, "table");
	struct cache_admin_purge *p = NULL;
	if (!all && !db) {
		http_response_error(r, 400, "purge needs ?all, ?database=D or ?database=D&table=T");
		goto out;
	}
	if (table && !strchr(table, '.')) {
		/* versions are kept per schema-qualified table, as the catalog names it */
		http_response_error(r, 400, "name the table with its schema: table=public.%s", table);
		goto out;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		http_response_error(r, 500, "out of memory");
		goto out;
	}
	p->r = r;
	http_request_set_abort_handler(r, cache_admin_purge_abort, p);
	const char *tables[1] = { table };
	if (all)
		p->iv = cache_invalidate_everything(c, cache_admin_purge_done, p);
	else
		p->iv = cache_invalidate(c, db, table ? tables : NULL, table ? 1 : 0, cache_admin_purge_done, p);
	if (!p->iv) { /* out of memory: "everything" was recorded as pending */
		http_request_set_abort_handler(r, NULL, NULL);
		free(p);
		http_response_json(r, 200, json_pack("{s:s}", "outcome", "queued"));
	}
	if (table)
		log_info(&c->log, "admin purge of %s %s", db, table);
	else
		log_info(&c->log, "admin purge of %s", all ? "everything" : db);
out:
	free(all);
	free(db);
	free(table);
}

static void cache_admin_collect(struct metrics_writer *w, void *arg)
{
	struct cache *c = arg;
	struct cache_stats s;
	cache_get_stats(c, &s);
	metrics_write(w, "cache_hits_total", "counter", "Lookups answered from Redis.", NULL, (double)s.hits);
	metrics_write(w, "cache_misses_total", "counter", "Lookups that ran the query to fill the cache.", NULL,
		      (double)s.misses);
	for (int i = 0; i < CACHE_BYPASS_NREASONS; i++) {
		const char *kv[] = { "reason", cache_bypass_reason_name((enum cache_bypass_reason)i), NULL };
		metrics_write(w, "cache_bypasses_total", "counter", "Lookups sent to PostgreSQL without the cache.",
			      kv, (double)s.bypasses[i]);
	}
	metrics_write(w, "cache_single_flight_waits_total", "counter",
		      "Lookups that waited for a concurrent miss of the same entry.", NULL,
		      (double)s.single_flight_waits);
	metrics_write(w, "cache_stores_total", "counter", "Results stored in Redis.", NULL, (double)s.stores);
	metrics_write(w, "cache_stored_bytes_total", "counter", "Bytes of results stored in Redis.", NULL,
		      (double)s.stored_bytes);
	const char *dur[] = { "outcome", "durable", NULL }, *que[] = { "outcome", "queued", NULL };
	metrics_write(w, "cache_invalidations_total", "counter", "Invalidations by outcome.", dur,
		      (double)s.invalidations_durable);
	metrics_write(w, "cache_invalidations_total", "counter", "Invalidations by outcome.", que,
		      (double)s.invalidations_queued);
	metrics_write(w, "cache_pending_invalidations", "gauge",
		      "Table invalidations waiting for Redis (-1: everything).", NULL,
		      s.pending_everything ? -1.0 : (double)s.pending_tables);
	metrics_write(w, "cache_keyed_lookups_total", "counter",
		      "Lookups that depended on primary-key values of a table rather than on all of it.", NULL,
		      (double)s.keyed_lookups);
	metrics_write(w, "cache_keyed_writes_total", "counter",
		      "Writes invalidated by primary-key value rather than as their whole table.", NULL,
		      (double)s.keyed_writes);
	const char *su[] = { "outcome", "used", NULL }, *sw[] = { "outcome", "wasted", NULL };
	metrics_write(w, "cache_speculative_gets_total", "counter",
		      "Entry GETs sent with the versions' MGET (one round trip per hit), by whether the versions "
		      "led to that entry.", su, (double)s.speculative_used);
	metrics_write(w, "cache_speculative_gets_total", "counter",
		      "Entry GETs sent with the versions' MGET (one round trip per hit), by whether the versions "
		      "led to that entry.", sw, (double)s.speculative_wasted);
	metrics_write(w, "cache_redis_errors_total", "counter", "Redis failures: errors, timeouts, lost connections.",
		      NULL, (double)s.redis_errors);
	metrics_write(w, "cache_circuit_state", "gauge", "Redis circuit breaker: 0 closed, 1 open, 2 half-open.",
		      NULL, (double)s.circuit);
}

int cache_admin_start(struct cache *c, struct core *core)
{
	c->core = core;
	struct http_server *admin = core_admin(core);
	const struct http_route routes[] = {
		{ .prefix = "/admin/cache", .exact = true, .name = "/admin/cache", .on_request = cache_admin_get,
		  .arg = c },
		{ .prefix = "/admin/cache/purge", .exact = true, .name = "/admin/cache/purge",
		  .on_request = cache_admin_purge, .arg = c },
	};
	for (size_t i = 0; admin && i < sizeof(routes) / sizeof(*routes); i++) {
		if (http_server_mount(admin, &routes[i]) != 0) {
			log_error(&c->log, "cannot mount %s", routes[i].prefix);
			return -1;
		}
	}
	metrics_collector_add(core_metrics(core), cache_admin_collect, c);
	return 0;
}

void cache_admin_stop(struct cache *c, struct core *core)
{
	struct http_server *admin = core_admin(core);
	if (admin) {
		http_server_unmount(admin, "/admin/cache");
		http_server_unmount(admin, "/admin/cache/purge");
	}
	metrics_collector_remove(core_metrics(core), cache_admin_collect, c);
}
