/* The daemon's private state behind the `struct core` handle plugins receive; shared by core.c
 * (plugin hosting), daemon.c (lifecycle) and admin.c (admin endpoint). */
#ifndef TETHER_CORE_INTERNAL_H
#define TETHER_CORE_INTERNAL_H

#include <stdbool.h>
#include <time.h>

#include "conf.h"
#include "core.h"
#include "plugin.h"

struct event;
struct http_client;
struct credentials;

struct core_plugin {
	const struct plugin *p;
	void *inst;
	bool started;
	bool drained;
};

struct core_listener {
	struct listener *l;
	char *owner;
};

struct core {
	struct event_base *base;
	struct metrics *metrics;
	struct conf *conf;
	struct conf *conf_boot; /* the config at start-up: what non-reloadable keys really are */
	char *conf_path;        /* NULL = embedded default */
	bool log_level_forced;  /* --log-level given: config does not override it */
	bool log_format_forced;
	struct http_server *admin;
	struct http_server *http;
	struct http_client *http_client; /* upstream HTTP (the `upstream` section) */
	struct credentials *credentials; /* always set once started (source none without a section) */
	struct core_listener *listeners;
	size_t nlisteners;
	struct core_plugin *plugins;
	size_t nplugins;
	/* keys changed by a reload that only take effect after a restart */
	char **restart_required;
	size_t nrestart_required;
	bool draining;
	size_t drain_pending;
	time_t started_at;
	struct event *ev_hup, *ev_term, *ev_int, *ev_watchdog, *ev_shutdown;
	struct metric_series *m_reload_ok, *m_reload_failed;
	int exit_code;
};

int daemon_run(struct core *c);
int core_start(struct core *c);
void core_apply_http_limits(struct core *c);
void core_plugins_stop(struct core *c);
/* Frees the credentials and the upstream HTTP client (after the plugins and servers). */
void core_services_stop(struct core *c);
int credentials_admin_mount(struct core *c);
void core_listeners_close(struct core *c);
void core_listeners_stop(struct core *c);
int admin_start(struct core *c);
void admin_collect(struct metrics_writer *w, void *arg);

#endif
