/* Lifecycle: signals (SIGHUP reload, SIGTERM/SIGINT drain), config reload without dropping
 * anything, bounded drain on shutdown, and the systemd notify protocol (READY, RELOADING,
 * STOPPING, WATCHDOG). */
#include "core_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "core_conf.h"
#include "version.h"

static const struct log_src daemon_log = { "core", 0 };

static void daemon_apply_log(struct core *c)
{
	const struct log_conf *lc = conf_section(c->conf, "log");
	if (!c->log_level_forced)
		log_set_level((enum log_level)lc->level);
	if (!c->log_format_forced)
		log_setup(log_get_level(), (enum log_format)lc->format, stderr);
}

static void daemon_restart_required_clear(struct core *c)
{
	for (size_t i = 0; i < c->nrestart_required; i++)
		free(c->restart_required[i]);
	free(c->restart_required);
	c->restart_required = NULL;
	c->nrestart_required = 0;
}

/* Against the start-up config: keys that changed but only a restart applies. */
static void daemon_diff_boot(const char *path, bool reloadable, void *arg)
{
	struct core *c = arg;
	if (reloadable)
		return;
	char **n = realloc(c->restart_required, (c->nrestart_required + 1) * sizeof(char *));
	if (!n)
		return;
	c->restart_required = n;
	n[c->nrestart_required++] = strdup(path);
	log_warn(&daemon_log, "config key %s changed; it takes effect only after a restart", path);
}

/* Against the running config: what this reload applies. */
static void daemon_diff_running(const char *path, bool reloadable, void *arg)
{
	if (reloadable)
		log_info(&daemon_log, "config key %s changed; applied", path);
}

static void daemon_reload(struct core *c)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	if (!c->conf_path) {
		log_warn(&daemon_log, "SIGHUP: running on the embedded default config; nothing to reload");
		sd_notify(0, "READY=1");
		return;
	}
	log_info(&daemon_log, "SIGHUP: reloading %s", c->conf_path);
	const struct conf_table *const *tables;
	size_t nt = core_conf_tables(&tables);
	struct conf_errors errs;
	conf_errors_init(&errs);
	struct conf *n = conf_load_file(c->conf_path, tables, nt, &errs);
	if (!n) {
		for (size_t i = 0; i < errs.n; i++)
			log_error(&daemon_log, "reload: %s", errs.msgs[i]);
		log_error(&daemon_log, "reload failed (%zu error%s); the running config stays in effect", errs.n,
			  errs.n == 1 ? "" : "s");
		conf_errors_deinit(&errs);
		metrics_add(c->m_reload_failed, 1);
		sd_notify(0, "READY=1\nSTATUS=reload failed; running the previous config");
		return;
	}
	conf_errors_deinit(&errs);

	conf_diff(c->conf, n, daemon_diff_running, c);
	daemon_restart_required_clear(c);
	conf_diff(c->conf_boot, n, daemon_diff_boot, c);

	struct conf *old = c->conf;
	c->conf = n;
	daemon_apply_log(c);
	core_apply_http_limits(c);
	for (size_t i = 0; i < c->nplugins; i++) {
		struct core_plugin *cp = &c->plugins[i];
		if (cp->p->reload && conf_section_present(n, cp->p->conf->name))
			cp->p->reload(cp->inst, conf_section(n, cp->p->conf->name));
	}
	if (old != c->conf_boot)
		conf_destroy(old);
	metrics_add(c->m_reload_ok, 1);
	log_info(&daemon_log, "config reloaded%s", c->nrestart_required ? " (some keys need a restart)" : "");
	sd_notify(0, "READY=1\nSTATUS=running");
}

static void daemon_drain_done(void *arg)
{
	struct core *c = arg;
	if (c->drain_pending == 0)
		return;
	if (--c->drain_pending == 0) {
		log_info(&daemon_log, "drained; exiting");
		event_base_loopexit(c->base, NULL);
	}
}

static void daemon_on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct core *c = arg;
	log_warn(&daemon_log, "shutdown_timeout reached with work still in flight; closing it");
	event_base_loopexit(c->base, NULL);
}

static void daemon_shutdown(struct core *c, const char *signame)
{
	if (c->draining) {
		log_warn(&daemon_log, "%s again: exiting now", signame);
		event_base_loopexit(c->base, NULL);
		return;
	}
	c->draining = true;
	sd_notify(0, "STOPPING=1");
	const struct daemon_conf *dc = conf_section(c->conf, "daemon");
	log_info(&daemon_log, "%s: draining (up to %lldms), no longer accepting connections", signame,
		 (long long)dc->shutdown_timeout);
	core_listeners_stop(c);
	struct timeval tv = { dc->shutdown_timeout / 1000, (dc->shutdown_timeout % 1000) * 1000 };
	evtimer_add(c->ev_shutdown, &tv);

	c->drain_pending = 1; /* held until everything below has been asked */
	if (c->http) {
		c->drain_pending++;
		http_server_drain(c->http, daemon_drain_done, c);
	}
	for (size_t i = 0; i < c->nplugins; i++) {
		struct core_plugin *cp = &c->plugins[i];
		if (cp->p->drain) {
			c->drain_pending++;
			cp->p->drain(cp->inst, daemon_drain_done, c);
		}
	}
	daemon_drain_done(c);
}

static void daemon_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct core *c = arg;
	if (sig == SIGHUP)
		daemon_reload(c);
	else
		daemon_shutdown(c, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void daemon_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}

int daemon_run(struct core *c)
{
	signal(SIGPIPE, SIG_IGN);
	c->ev_hup = evsignal_new(c->base, SIGHUP, daemon_on_signal, c);
	c->ev_term = evsignal_new(c->base, SIGTERM, daemon_on_signal, c);
	c->ev_int = evsignal_new(c->base, SIGINT, daemon_on_signal, c);
	c->ev_shutdown = evtimer_new(c->base, daemon_on_shutdown_timeout, c);
	evsignal_add(c->ev_hup, NULL);
	evsignal_add(c->ev_term, NULL);
	evsignal_add(c->ev_int, NULL);

	struct metric *reloads = metrics_counter(c->metrics, "config_reloads_total",
						 "Config reloads by result (SIGHUP).", "result");
	c->m_reload_ok = metrics_series(reloads, "success");
	c->m_reload_failed = metrics_series(reloads, "failure");
	metrics_collector_add(c->metrics, admin_collect, c);
	daemon_apply_log(c);

	int rc = core_start(c);
	if (rc == 0) {
		uint64_t usec = 0;
		if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
			c->ev_watchdog = event_new(c->base, -1, EV_PERSIST, daemon_on_watchdog, c);
			struct timeval tv = { (time_t)(usec / 2 / 1000000), (suseconds_t)(usec / 2 % 1000000) };
			evtimer_add(c->ev_watchdog, &tv);
		}
		sd_notifyf(0, "READY=1\nSTATUS=running\nMAINPID=%lu", (unsigned long)getpid());
		log_info(&daemon_log, "tetherd %s ready (config: %s)", TETHER_VERSION,
			 c->conf_path ? c->conf_path : "embedded default");
		event_base_dispatch(c->base);
	} else {
		log_error(&daemon_log, "start-up failed; exiting");
		c->exit_code = 1;
	}

	core_plugins_stop(c);
	if (c->http)
		http_server_destroy(c->http);
	if (c->admin)
		http_server_destroy(c->admin);
	c->http = c->admin = NULL;
	core_services_stop(c);
	core_listeners_close(c);
	metrics_collector_remove(c->metrics, admin_collect, c);
	struct event *evs[] = { c->ev_hup, c->ev_term, c->ev_int, c->ev_shutdown, c->ev_watchdog };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	daemon_restart_required_clear(c);
	return c->exit_code;
}
