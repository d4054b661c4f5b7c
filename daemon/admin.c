/* The admin endpoint: /healthz (process alive), /readyz (each plugin ready or why not),
 * /metrics (Prometheus text) and /admin/config (effective config, secrets masked). */
#include "core_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

#include "core_conf.h"
#include "version.h"

static bool admin_get_only(struct http_request *r)
{
	const char *m = http_request_method(r);
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return true;
	http_response_header(r, "Allow", "GET, HEAD");
	http_response_error(r, 405, "%s is not allowed on %s; use GET", m, http_request_path(r));
	return false;
}

static void admin_healthz(struct http_request *r, void *arg)
{
	if (!admin_get_only(r))
		return;
	static const char body[] = "{\"status\":\"ok\"}\n";
	http_response_send(r, 200, "application/json", body, sizeof(body) - 1);
}

static void admin_readyz(struct http_request *r, void *arg)
{
	struct core *c = arg;
	if (!admin_get_only(r))
		return;
	bool all = !c->draining;
	json_t *plugins = json_object();
	for (size_t i = 0; i < c->nplugins; i++) {
		struct core_plugin *cp = &c->plugins[i];
		char reason[256] = "";
		bool ok = cp->started && (!cp->p->ready || cp->p->ready(cp->inst, reason, sizeof(reason)));
		if (!cp->started)
			snprintf(reason, sizeof(reason), "not started");
		json_t *o = json_pack("{s:b}", "ready", ok);
		if (!ok)
			json_object_set_new(o, "reason", json_string(reason));
		json_object_set_new(plugins, cp->p->name, o);
		all = all && ok;
	}
	json_t *body = json_pack("{s:b,s:o}", "ready", all, "plugins", plugins);
	if (c->draining)
		json_object_set_new(body, "reason", json_string("shutting down"));
	http_response_json(r, all ? 200 : 503, body);
}

static void admin_metrics(struct http_request *r, void *arg)
{
	struct core *c = arg;
	if (!admin_get_only(r))
		return;
	struct evbuffer *out = evbuffer_new();
	metrics_render(c->metrics, out);
	http_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	http_response_begin(r, 200, (int64_t)evbuffer_get_length(out));
	http_response_write_buffer(r, out);
	http_response_end(r);
	evbuffer_free(out);
}

/* Admin paths, when admin.auth_token is set: the bearer token must match (compared in constant time). */
bool core_admin_authorized(struct core *c, struct http_request *r)
{
	const struct admin_conf *ac = conf_section(c->conf, "admin");
	if (!ac->auth_token || !*ac->auth_token)
		return true;
	const char *h = http_request_header(r, "Authorization");
	size_t want = strlen(ac->auth_token);
	if (h && strncasecmp(h, "Bearer ", 7) == 0 && strlen(h + 7) == want &&
	    CRYPTO_memcmp(h + 7, ac->auth_token, want) == 0)
		return true;
	http_response_header(r, "WWW-Authenticate", "Bearer");
	http_response_error(r, 401, "this admin path needs Authorization: Bearer <admin.auth_token>");
	return false;
}

static void admin_config(struct http_request *r, void *arg)
{
	struct core *c = arg;
	if (!admin_get_only(r) || !core_admin_authorized(c, r))
		return;
	json_t *restart = json_array();
	for (size_t i = 0; i < c->nrestart_required; i++)
		json_array_append_new(restart, json_string(c->restart_required[i]));
	json_t *body = json_pack("{s:s?,s:o,s:o}", "path", c->conf_path, "config", conf_to_json(c->conf),
				 "restart_required", restart);
	http_response_json(r, 200, body);
}

/* Process figures read at scrape time. */
void admin_collect(struct metrics_writer *w, void *arg)
{
	struct core *c = arg;
	metrics_write(w, "start_time_seconds", "gauge", "Unix time the daemon started.", NULL,
		      (double)c->started_at);
	const char *bi[] = { "version", TETHER_VERSION, NULL };
	metrics_write(w, "build_info", "gauge", "Build version.", bi, 1);
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		unsigned long size, resident;
		if (fscanf(f, "%lu %lu", &size, &resident) == 2)
			metrics_write(w, "process_resident_memory_bytes", "gauge", "Resident set size.", NULL,
				      (double)resident * (double)sysconf(_SC_PAGESIZE));
		fclose(f);
	}
	metrics_write(w, "draining", "gauge", "1 while shutting down.", NULL, c->draining ? 1 : 0);
}

int admin_start(struct core *c)
{
	const struct admin_conf *ac = conf_section(c->conf, "admin");
	struct http_server_limits lim = { .max_body = 64 * 1024, .max_connections = 256 };
	c->admin = http_server_create(c->base, c->metrics, "admin", &lim);
	if (!c->admin)
		return -1;
	const struct http_route routes[] = {
		{ .prefix = "/healthz", .exact = true, .name = "/healthz", .on_request = admin_healthz, .arg = c },
		{ .prefix = "/readyz", .exact = true, .name = "/readyz", .on_request = admin_readyz, .arg = c },
		{ .prefix = "/metrics", .exact = true, .name = "/metrics", .on_request = admin_metrics, .arg = c },
		{ .prefix = "/admin/config", .exact = true, .name = "/admin/config", .on_request = admin_config,
		  .arg = c },
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (http_server_mount(c->admin, &routes[i]) != 0)
			return -1;
	return core_listen(c, "admin", &ac->l, 0, http_server_accept, c->admin);
}
