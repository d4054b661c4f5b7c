/* The core's config tables (log, admin, http, daemon, upstream) and the list of all top-level
 * tables (credentials' table lives in credentials_conf.c). */
#include "core_conf.h"

#include <stddef.h>
#include <stdlib.h>

#include "credentials_conf.h"
#include "listener.h"
#include "log.h"
#include "plugin.h"

static const char *const core_conf_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const core_conf_formats[] = { "text", "json", NULL };

static const struct conf_key core_conf_log_keys[] = {
	{ "level", CONF_ENUM, CONF_RELOAD, offsetof(struct log_conf, level), "info", 0, 0, core_conf_levels, NULL,
	  "Lowest severity written: error, warn, info or debug. --log-level overrides it." },
	{ "format", CONF_ENUM, CONF_RELOAD, offsetof(struct log_conf, format), "text", 0, 0, core_conf_formats,
	  NULL,
	  "text for terminals; json for one JSON object per line with severity, message and time, the "
	  "shape Cloud Logging reads from stdout. --log-format overrides it." },
	{ NULL }
};

const struct conf_table core_conf_log = {
	.name = "log",
	.desc = "Logging: every line names its component (and connection when there is one).",
	.keys = core_conf_log_keys,
	.size = sizeof(struct log_conf),
};

int core_listen_conf_validate(const struct core_listen_conf *lc, const void *obj, struct conf_errors *errs)
{
	int rc = 0;
	for (size_t i = 0; i < lc->listen.n; i++) {
		struct listener_addr a;
		char err[256];
		if (listener_parse_url(lc->listen.items[i], 0, &a, err, sizeof(err)) != 0) {
			conf_errorf(errs, obj, "listen", "\"%s\": %s", lc->listen.items[i], err);
			rc = -1;
		}
	}
	return rc;
}

static int core_conf_admin_validate(void *obj, struct conf_errors *errs)
{
	return core_listen_conf_validate(&((struct admin_conf *)obj)->l, obj, errs);
}

static const struct conf_key core_conf_admin_keys[] = {
	CORE_LISTEN_KEYS(struct admin_conf, l, "[\"tcp://127.0.0.1:9090\"]"),
	{ "auth_token", CONF_STRING, CONF_RELOAD | CONF_SECRET, offsetof(struct admin_conf, auth_token), NULL, 0, 0,
	  NULL, NULL,
	  "When set, /admin/* requires the header `Authorization: Bearer <token>` (other containers of a "
	  "pod share its loopback). Use ${ENV} rather than writing it in the file." },
	{ NULL }
};

const struct conf_table core_conf_admin = {
	.name = "admin",
	.desc = "The admin endpoint: /healthz, /readyz, /metrics (Prometheus) and /admin/config. Keep it "
		"on loopback or a unix socket; it shows the effective config (secrets masked).",
	.keys = core_conf_admin_keys,
	.size = sizeof(struct admin_conf),
	.validate = core_conf_admin_validate,
};

static int core_conf_http_validate(void *obj, struct conf_errors *errs)
{
	return core_listen_conf_validate(&((struct http_conf *)obj)->l, obj, errs);
}

static const struct conf_key core_conf_http_keys[] = {
	CORE_LISTEN_KEYS(struct http_conf, l, "[\"tcp://127.0.0.1:8080\"]"),
	{ "max_header_size", CONF_SIZE, CONF_RELOAD, offsetof(struct http_conf, max_header_size), "64KiB", 1024,
	  1 << 24, NULL, NULL, "Largest request line plus headers; larger requests get 431." },
	{ "max_body", CONF_SIZE, CONF_RELOAD, offsetof(struct http_conf, max_body), "1MiB", 0, 0, NULL, NULL,
	  "Default request body limit for routes that set none; larger bodies get 413." },
	{ "idle_timeout", CONF_DURATION, CONF_RELOAD, offsetof(struct http_conf, idle_timeout), "60s", 100,
	  86400000, NULL, NULL, "How long a keep-alive connection may sit idle before it is closed." },
	{ "header_timeout", CONF_DURATION, CONF_RELOAD, offsetof(struct http_conf, header_timeout), "10s", 100,
	  3600000, NULL, NULL, "How long a client may take to send a whole request head." },
	{ "max_connections", CONF_INT, CONF_RELOAD, offsetof(struct http_conf, max_connections), "10000", 1,
	  1000000, NULL, NULL, "Open client connections beyond this are answered 503 and closed." },
	{ NULL }
};

const struct conf_table core_conf_http = {
	.name = "http",
	.desc = "The HTTP listeners applications call (Pub/Sub and Cloud Storage forwarding mount their "
		"routes here). Absent: no HTTP listener is opened.",
	.keys = core_conf_http_keys,
	.size = sizeof(struct http_conf),
	.validate = core_conf_http_validate,
};

static const struct conf_key core_conf_daemon_keys[] = {
	{ "shutdown_timeout", CONF_DURATION, CONF_RELOAD, offsetof(struct daemon_conf, shutdown_timeout), "10s", 0,
	  3600000, NULL, NULL,
	  "On SIGTERM/SIGINT, how long to let work in flight finish before exiting anyway (Cloud Run "
	  "gives 10s)." },
	{ "max_open_files", CONF_INT, 0, offsetof(struct daemon_conf, max_open_files), "0", 0, 10000000, NULL, NULL,
	  "Raise RLIMIT_NOFILE to this at start-up; 0 raises it to the hard limit." },
	{ NULL }
};

const struct conf_table core_conf_daemon = {
	.name = "daemon",
	.desc = "Process lifecycle.",
	.keys = core_conf_daemon_keys,
	.size = sizeof(struct daemon_conf),
};

#define UC(f) offsetof(struct upstream_conf, f)

static const struct conf_key core_conf_upstream_keys[] = {
	{ "ca_file", CONF_STRING, 0, UC(ca_file), NULL, 0, 0, NULL, NULL,
	  "CA bundle (PEM) to verify upstream TLS with instead of the system store (tests, private "
	  "CAs). Verification is always on." },
	{ "connect_timeout", CONF_DURATION, 0, UC(connect_timeout), "10s", 100, 600000, NULL, NULL,
	  "Bound on one connection attempt (DNS, TCP, TLS)." },
	{ "timeout", CONF_DURATION, 0, UC(timeout), "0s", 0, 86400000, NULL, NULL,
	  "Default bound on a whole upstream request, retries included; 0 = none (streams of any "
	  "length). Routes may set their own." },
	{ "retry_window", CONF_DURATION, 0, UC(retry_window), "60s", 0, 3600000, NULL, NULL,
	  "No retry of an idempotent request starts later than this after its first attempt." },
	{ "max_attempts", CONF_INT, 0, UC(max_attempts), "10", 1, 100, NULL, NULL,
	  "Attempts per request, the first included (1 = never retry)." },
	{ "backoff_initial", CONF_DURATION, 0, UC(backoff_initial), "1s", 1, 3600000, NULL, NULL,
	  "First retry waits a random time up to this; the ceiling doubles per attempt (Google's "
	  "strategy)." },
	{ "backoff_max", CONF_DURATION, 0, UC(backoff_max), "60s", 1, 3600000, NULL, NULL,
	  "Ceiling of any one wait between attempts." },
	{ "retry_after_max", CONF_DURATION, 0, UC(retry_after_max), "60s", 1, 3600000, NULL, NULL,
	  "A Retry-After longer than this ends the retries instead of waiting." },
	{ "replay_max", CONF_SIZE, 0, UC(replay_max), "1MiB", 0, 1LL << 30, NULL, NULL,
	  "Streamed request bodies up to this size are kept so the request can be retried; larger "
	  "ones are sent once." },
	{ "max_host_connections", CONF_INT, 0, UC(max_host_connections), "0", 0, 100000, NULL, NULL,
	  "Connections per upstream host; 0 = unbounded (HTTP/2 multiplexes requests anyway)." },
	{ "own_http1", CONF_BOOL, 0, UC(own_http1), "true", 0, 0, NULL, NULL,
	  "Plain http:// upstreams named by an IP address or localhost (emulators, local gateways) "
	  "are spoken to by tether's own HTTP/1.1 client, at a third of libcurl's CPU per request; "
	  "https:// always uses libcurl (HTTP/2, TLS). false: libcurl for everything." },
	{ NULL }
};

const struct conf_table core_conf_upstream = {
	.name = "upstream",
	.desc = "The shared HTTP client tether calls Google with (forwarding, tokens): libcurl on the "
		"event loop (own_http1: its own HTTP/1.1 client for plain http:// to local upstreams), "
		"connection reuse, HTTP/2, and retries of idempotent requests on connection errors, 408, "
		"429 and 5xx. Keys need a restart.",
	.keys = core_conf_upstream_keys,
	.size = sizeof(struct upstream_conf),
};

const char core_conf_embedded_default[] = "admin:\n  listen: [\"tcp://127.0.0.1:9090\"]\n";

size_t core_conf_tables(const struct conf_table *const **out)
{
	static const struct conf_table **tables;
	static size_t n;
	if (!tables) {
		tables = calloc(6 + plugin_count, sizeof(*tables));
		if (!tables)
			abort();
		tables[n++] = &core_conf_log;
		tables[n++] = &core_conf_daemon;
		tables[n++] = &core_conf_admin;
		tables[n++] = &core_conf_http;
		tables[n++] = &core_conf_upstream;
		tables[n++] = &core_conf_credentials;
		for (size_t i = 0; i < plugin_count; i++)
			if (plugin_table[i]->conf)
				tables[n++] = plugin_table[i]->conf;
	}
	*out = (const struct conf_table *const *)tables;
	return n;
}
