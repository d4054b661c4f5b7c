/* The `postgres` config section: listeners, client authentication, limits, and the databases map
 * from client-visible names to backends with their pool settings. */
#ifndef TETHER_PG_CONF_H
#define TETHER_PG_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "core.h"

enum pg_auth_method { PG_AUTH_TRUST = 0, PG_AUTH_SCRAM, PG_AUTH_MD5 };
enum pg_pool_mode { PG_POOL_SESSION = 0, PG_POOL_TRANSACTION };
enum pg_sslmode { PG_SSL_DISABLE = 0, PG_SSL_PREFER, PG_SSL_REQUIRE, PG_SSL_VERIFY_CA, PG_SSL_VERIFY_FULL };

/* An inline user: name -> password or SCRAM verifier. */
struct pg_conf_user {
	char *name;
	char *password; /* plaintext, "SCRAM-SHA-256$..." or "md5<hex>" */
};

struct pg_conf_auth {
	int method;     /* enum pg_auth_method, for tcp listeners */
	int unix_method; /* enum pg_auth_method, for unix sockets */
	char *users_file;
	struct conf_array users; /* struct pg_conf_user */
};

struct pg_conf_tls {
	char *cert_file;
	char *key_file;
};

struct pg_conf_db {
	char *name; /* the database name clients use */
	char *host; /* address, name, or a socket directory (starts with '/') */
	int64_t port;
	char *dbname;
	char *user;
	char *password;
	int sslmode; /* enum pg_sslmode */
	char *sslrootcert;
	int pool_mode; /* enum pg_pool_mode */
	int64_t pool_size;
	int64_t min_idle;
	int64_t max_client_conn;
	int64_t server_lifetime;     /* ms */
	int64_t server_idle_timeout; /* ms */
	int64_t connect_timeout;     /* ms */
};

struct pg_conf {
	struct core_listen_conf l;
	int64_t port; /* in unix socket file names .s.PGSQL.<port>, and tcp default */
	struct pg_conf_auth auth;
	struct pg_conf_tls tls;
	int64_t max_client_conn;
	uint64_t max_packet_size;
	int64_t max_prepared_statements;
	int64_t query_wait_timeout;  /* ms */
	int64_t server_check_delay;  /* ms */
	char *server_check_query;
	char *server_reset_query;
	int64_t server_connect_backoff_max; /* ms */
	struct conf_strlist admin_users; /* who may use the admin database (pg_admin.c) */
	struct conf_array databases; /* struct pg_conf_db */
};

extern const struct conf_table pg_conf_table;

#endif
