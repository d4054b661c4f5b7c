/* Plugin hosting: the `struct core` handle plugins get (event base, listeners, HTTP routes,
 * metrics, upstream HTTP client, credentials), and starting and stopping the plugins whose
 * sections are present. */
#include "core_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core_conf.h"
#include "credentials.h"
#include "credentials_conf.h"
#include "http_client.h"

static const struct log_src core_log = { "core", 0 };

struct event_base *core_base(struct core *c)
{
	return c->base;
}

struct metrics *core_metrics(struct core *c)
{
	return c->metrics;
}

struct http_server *core_http(struct core *c)
{
	return c->http;
}

struct http_server *core_admin(struct core *c)
{
	return c->admin;
}

struct http_client *core_http_client(struct core *c)
{
	return c->http_client;
}

struct credentials *core_credentials(struct core *c)
{
	return c->credentials;
}

/* The upstream HTTP client and the credentials: core services plugins may use from init on. */
static int core_services_start(struct core *c)
{
	const struct upstream_conf *uc = conf_section(c->conf, "upstream");
	const struct http_client_opts opts = {
		.ca_file = uc->ca_file,
		.connect_timeout_ms = uc->connect_timeout,
		.timeout_ms = uc->timeout,
		.max_host_connections = (long)uc->max_host_connections,
		.replay_max = (size_t)uc->replay_max,
		.backoff_initial_ms = uc->backoff_initial,
		.backoff_max_ms = uc->backoff_max,
		.retry_window_ms = uc->retry_window,
		.max_attempts = (int)uc->max_attempts,
		.retry_after_max_ms = uc->retry_after_max,
		.curl_only = !uc->own_http1,
	};
	c->http_client = http_client_create(c->base, c->metrics, &opts);
	if (!c->http_client)
		return -1;
	const struct credentials_conf *cc =
		conf_section_present(c->conf, "credentials") ? conf_section(c->conf, "credentials") : NULL;
	c->credentials = credentials_create(c->base, c->http_client, c->metrics, cc);
	if (!c->credentials)
		return -1;
	if (credentials_admin_mount(c) != 0)
		return -1;
	credentials_start(c->credentials);
	return 0;
}

void core_services_stop(struct core *c)
{
	credentials_destroy(c->credentials);
	c->credentials = NULL;
	http_client_destroy(c->http_client);
	c->http_client = NULL;
}

static int core_listener_add(struct core *c, struct listener *l, const char *owner)
{
	struct core_listener *n = realloc(c->listeners, (c->nlisteners + 1) * sizeof(*n));
	if (!n) {
		listener_destroy(l);
		return -1;
	}
	c->listeners = n;
	n[c->nlisteners].l = l;
	n[c->nlisteners].owner = strdup(owner);
	c->nlisteners++;
	log_info(&core_log, "%s listening on %s", owner, listener_url(l));
	return 0;
}

int core_listen(struct core *c, const char *owner, const struct core_listen_conf *lc, uint16_t default_port,
		listener_accept_fn cb, void *arg)
{
	struct listener_opts o = {
		.mode = lc->socket_mode,
		.owner = lc->socket_owner,
		.group = lc->socket_group,
		.allow_remote = lc->allow_remote,
		.name = owner,
	};
	for (size_t i = 0; i < lc->listen.n; i++) {
		char err[512];
		struct listener *l = listener_create(c->base, lc->listen.items[i], &o, cb, arg, err, sizeof(err));
		if (!l) {
			log_error(&core_log, "%s.listen %s: %s", owner, lc->listen.items[i], err);
			return -1;
		}
		if (core_listener_add(c, l, owner) != 0)
			return -1;
	}
	/* Sockets systemd passed under this owner's name serve it too, whatever their address. */
	struct listener *l;
	while ((l = listener_adopt_named(c->base, owner, cb, arg)) != NULL)
		if (core_listener_add(c, l, owner) != 0)
			return -1;
	return 0;
}

void core_listeners_stop(struct core *c)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (strcmp(c->listeners[i].owner, "admin") != 0)
			listener_stop(c->listeners[i].l);
}

void core_listeners_close(struct core *c)
{
	for (size_t i = 0; i < c->nlisteners; i++) {
		listener_destroy(c->listeners[i].l);
		free(c->listeners[i].owner);
	}
	free(c->listeners);
	c->listeners = NULL;
	c->nlisteners = 0;
}

static void core_http_limits(const struct http_conf *hc, struct http_server_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_header_size = (size_t)hc->max_header_size;
	lim->max_body = (size_t)hc->max_body;
	lim->idle_timeout_ms = hc->idle_timeout;
	lim->header_timeout_ms = hc->header_timeout;
	lim->max_connections = (size_t)hc->max_connections;
}

void core_apply_http_limits(struct core *c)
{
	if (!c->http)
		return;
	struct http_server_limits lim;
	core_http_limits(conf_section(c->conf, "http"), &lim);
	http_server_set_limits(c->http, &lim);
}

int core_start(struct core *c)
{
	if (admin_start(c) != 0 || core_services_start(c) != 0)
		return -1;
	if (conf_section_present(c->conf, "http")) {
		const struct http_conf *hc = conf_section(c->conf, "http");
		struct http_server_limits lim;
		core_http_limits(hc, &lim);
		c->http = http_server_create(c->base, c->metrics, "http", &lim);
		if (!c->http || core_listen(c, "http", &hc->l, 0, http_server_accept, c->http) != 0)
			return -1;
	}
	c->plugins = calloc(plugin_count ? plugin_count : 1, sizeof(*c->plugins));
	if (!c->plugins)
		return -1;
	for (size_t i = 0; i < plugin_count; i++) {
		const struct plugin *p = plugin_table[i];
		if (!p->conf || !conf_section_present(c->conf, p->conf->name))
			continue;
		struct core_plugin *cp = &c->plugins[c->nplugins++];
		cp->p = p;
		cp->inst = p->init(c, conf_section(c->conf, p->conf->name));
		if (!cp->inst) {
			log_error(&core_log, "plugin %s failed to initialise", p->name);
			return -1;
		}
		if (p->start && p->start(cp->inst) != 0) {
			log_error(&core_log, "plugin %s failed to start", p->name);
			return -1;
		}
		cp->started = true;
		log_info(&core_log, "plugin %s started", p->name);
	}
	listener_inherited_close_unused();
	return 0;
}

void core_plugins_stop(struct core *c)
{
	for (size_t i = c->nplugins; i-- > 0;) {
		struct core_plugin *cp = &c->plugins[i];
		if (cp->inst && cp->p->stop)
			cp->p->stop(cp->inst);
		cp->inst = NULL;
	}
	free(c->plugins);
	c->plugins = NULL;
	c->nplugins = 0;
}
