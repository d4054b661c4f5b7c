/* The core's own config sections (log, admin, http, daemon, upstream; credentials has its own
 * file) and the full table list handed to the loader: the core's sections followed by every
 * built-in plugin's. */
#ifndef TETHER_CORE_CONF_H
#define TETHER_CORE_CONF_H

#include <stdint.h>

#include "conf.h"
#include "core.h"

struct log_conf {
	int level;  /* enum log_level */
	int format; /* enum log_format */
};

struct admin_conf {
	struct core_listen_conf l;
	char *auth_token;
};

struct http_conf {
	struct core_listen_conf l;
	uint64_t max_header_size;
	uint64_t max_body;
	int64_t idle_timeout;
	int64_t header_timeout;
	int64_t max_connections;
};

struct daemon_conf {
	int64_t shutdown_timeout;
	int64_t max_open_files;
};

/* Options of the shared upstream HTTP client (struct http_client_opts). */
struct upstream_conf {
	char *ca_file;
	int64_t connect_timeout; /* ms */
	int64_t timeout;         /* ms, 0 = none */
	int64_t retry_window;    /* ms */
	int64_t max_attempts;
	int64_t backoff_initial; /* ms */
	int64_t backoff_max;     /* ms */
	int64_t retry_after_max; /* ms */
	uint64_t replay_max;
	int64_t max_host_connections;
	bool own_http1;
};

extern const struct conf_table core_conf_log, core_conf_admin, core_conf_http, core_conf_daemon,
	core_conf_upstream;

/* Every top-level table (core + plugins), in the order the reference config lists them. */
size_t core_conf_tables(const struct conf_table *const **out);
/* The config used when no file is found: the admin endpoint on 127.0.0.1:9090 and nothing else. */
extern const char core_conf_embedded_default[];

#endif
