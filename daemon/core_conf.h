/* The core's own config sections (log, admin, http, daemon) and the full table list handed to
 * the loader: the core's sections followed by every built-in plugin's. */
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

extern const struct conf_table core_conf_log, core_conf_admin, core_conf_http, core_conf_daemon;

/* Every top-level table (core + plugins), in the order the reference config lists them. */
size_t core_conf_tables(const struct conf_table *const **out);
/* The config used when no file is found: the admin endpoint on 127.0.0.1:9090 and nothing else. */
extern const char core_conf_embedded_default[];

#endif
