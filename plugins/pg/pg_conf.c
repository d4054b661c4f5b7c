/* The `postgres` config section's tables and cross-key checks. */
#include "pg_conf.h"

#include <stddef.h>
#include <string.h>

static const char *const pg_conf_methods[] = { "trust", "scram-sha-256", "md5", NULL };
static const char *const pg_conf_modes[] = { "session", "transaction", NULL };
static const char *const pg_conf_sslmodes[] = { "disable", "prefer", "require", "verify-ca", "verify-full", NULL };

static const struct conf_key pg_conf_user_keys[] = {
	{ "password", CONF_STRING, CONF_REQUIRED | CONF_RELOAD | CONF_SECRET, offsetof(struct pg_conf_user, password),
	  NULL, 0, 0, NULL, NULL,
	  "Plaintext password, a SCRAM verifier (SCRAM-SHA-256$iter:salt$stored:server) or md5<hex>." },
	{ NULL }
};

static const struct conf_table pg_conf_user_table = {
	.name = "user",
	.keys = pg_conf_user_keys,
	.size = sizeof(struct pg_conf_user),
};

static const struct conf_key pg_conf_auth_keys[] = {
	{ "method", CONF_ENUM, CONF_RELOAD, offsetof(struct pg_conf_auth, method), "trust", 0, 0, pg_conf_methods,
	  NULL, "Client authentication on tcp listeners: trust, scram-sha-256 or md5." },
	{ "unix_method", CONF_ENUM, CONF_RELOAD, offsetof(struct pg_conf_auth, unix_method), "trust", 0, 0,
	  pg_conf_methods, NULL,
	  "Client authentication on unix sockets (file permissions already guard them)." },
	{ "users_file", CONF_STRING, CONF_RELOAD, offsetof(struct pg_conf_auth, users_file), NULL, 0, 0, NULL, NULL,
	  "File of \"user\" \"password-or-verifier\" lines (PgBouncer auth_file format)." },
	{ "users", CONF_MAP, CONF_RELOAD, offsetof(struct pg_conf_auth, users), NULL, 0, 0, NULL, &pg_conf_user_table,
	  "Inline users: name: {password: ...}." },
	{ NULL }
};

static const struct conf_table pg_conf_auth_table = {
	.name = "auth",
	.keys = pg_conf_auth_keys,
	.size = sizeof(struct pg_conf_auth),
};

static const struct conf_key pg_conf_tls_keys[] = {
	{ "cert_file", CONF_STRING, 0, offsetof(struct pg_conf_tls, cert_file), NULL, 0, 0, NULL, NULL,
	  "Certificate (PEM) offered to clients that send SSLRequest; unset: answer 'N'." },
	{ "key_file", CONF_STRING, 0, offsetof(struct pg_conf_tls, key_file), NULL, 0, 0, NULL, NULL,
	  "Private key (PEM) for cert_file." },
	{ NULL }
};

static const struct conf_table pg_conf_tls_table = {
	.name = "tls",
	.keys = pg_conf_tls_keys,
	.size = sizeof(struct pg_conf_tls),
};

static int pg_conf_db_validate(void *obj, struct conf_errors *errs)
{
	struct pg_conf_db *db = obj;
	int rc = 0;
	if (db->min_idle > db->pool_size) {
		conf_errorf(errs, obj, "min_idle", "min_idle (%lld) is larger than pool_size (%lld)",
			    (long long)db->min_idle, (long long)db->pool_size);
		rc = -1;
	}
	if (db->sslmode >= PG_SSL_VERIFY_CA && (!db->sslrootcert || !*db->sslrootcert)) {
		conf_errorf(errs, obj, "sslrootcert", "sslmode verify-ca/verify-full needs sslrootcert");
		rc = -1;
	}
	return rc;
}

static const struct conf_key pg_conf_db_keys[] = {
	{ "host", CONF_STRING, CONF_REQUIRED, offsetof(struct pg_conf_db, host), NULL, 0, 0, NULL, NULL,
	  "Server address or host name, or a unix socket directory (starting with /)." },
	{ "port", CONF_INT, 0, offsetof(struct pg_conf_db, port), "5432", 1, 65535, NULL, NULL, "Server port." },
	{ "dbname", CONF_STRING, 0, offsetof(struct pg_conf_db, dbname), NULL, 0, 0, NULL, NULL,
	  "Database on the server (default: the name clients use)." },
	{ "user", CONF_STRING, CONF_REQUIRED, offsetof(struct pg_conf_db, user), NULL, 0, 0, NULL, NULL,
	  "User tether logs in as." },
	{ "password", CONF_STRING, CONF_RELOAD | CONF_SECRET, offsetof(struct pg_conf_db, password), NULL, 0, 0,
	  NULL, NULL, "Password for user; use ${ENV}." },
	{ "sslmode", CONF_ENUM, 0, offsetof(struct pg_conf_db, sslmode), "prefer", 0, 0, pg_conf_sslmodes, NULL,
	  "TLS to the server: disable, prefer, require, verify-ca or verify-full." },
	{ "sslrootcert", CONF_STRING, 0, offsetof(struct pg_conf_db, sslrootcert), NULL, 0, 0, NULL, NULL,
	  "CA bundle (PEM) that verifies the server for verify-ca/verify-full." },
	{ "pool_mode", CONF_ENUM, CONF_RELOAD, offsetof(struct pg_conf_db, pool_mode), "transaction", 0, 0,
	  pg_conf_modes, NULL,
	  "session: a client keeps its server until it disconnects; transaction: only for a transaction." },
	{ "pool_size", CONF_INT, CONF_RELOAD, offsetof(struct pg_conf_db, pool_size), "20", 1, 10000, NULL, NULL,
	  "Most server connections for this database." },
	{ "min_idle", CONF_INT, CONF_RELOAD, offsetof(struct pg_conf_db, min_idle), "0", 0, 10000, NULL, NULL,
	  "Server connections kept open even when idle." },
	{ "max_client_conn", CONF_INT, CONF_RELOAD, offsetof(struct pg_conf_db, max_client_conn), "0", 0, 1000000,
	  NULL, NULL, "Most client connections to this database (0: only the global limit)." },
	{ "server_lifetime", CONF_DURATION, CONF_RELOAD, offsetof(struct pg_conf_db, server_lifetime), "1h", 0, 0,
	  NULL, NULL, "Server connections older than this are closed when released (0: never)." },
	{ "server_idle_timeout", CONF_DURATION, CONF_RELOAD, offsetof(struct pg_conf_db, server_idle_timeout), "10m",
	  0, 0, NULL, NULL, "Idle server connections beyond min_idle are closed after this (0: never)." },
	{ "connect_timeout", CONF_DURATION, CONF_RELOAD, offsetof(struct pg_conf_db, connect_timeout), "5s", 100,
	  600000, NULL, NULL, "Bound on connecting and logging in to the server." },
	{ NULL }
};

static const struct conf_table pg_conf_db_table = {
	.name = "database",
	.keys = pg_conf_db_keys,
	.size = sizeof(struct pg_conf_db),
	.validate = pg_conf_db_validate,
};

static int pg_conf_validate(void *obj, struct conf_errors *errs)
{
	struct pg_conf *pc = obj;
	int rc = core_listen_conf_validate(&pc->l, obj, errs);
	if (pc->databases.n == 0) {
		conf_errorf(errs, obj, "databases", "no databases configured");
		rc = -1;
	}
	for (size_t i = 0; i < pc->databases.n; i++) {
		const struct pg_conf_db *db = CONF_ARRAY_AT(&pc->databases, struct pg_conf_db, i);
		if (strcmp(db->name, "tether") == 0) {
			conf_errorf(errs, obj, "databases", "\"tether\" is the admin database; choose another name");
			rc = -1;
		}
	}
	if ((pc->tls.cert_file == NULL) != (pc->tls.key_file == NULL)) {
		conf_errorf(errs, obj, "tls", "cert_file and key_file go together");
		rc = -1;
	}
	return rc;
}

static const struct conf_key pg_conf_keys[] = {
	CORE_LISTEN_KEYS(struct pg_conf, l, "[\"tcp://127.0.0.1:5432\"]"),
	{ "port", CONF_INT, 0, offsetof(struct pg_conf, port), "5432", 1, 65535, NULL, NULL,
	  "Port in unix socket file names (DIR/.s.PGSQL.<port>) and for tcp URLs without one. A unix "
	  "listen URL names the directory, as with psql -h DIR." },
	{ "auth", CONF_SECTION, CONF_RELOAD, offsetof(struct pg_conf, auth), NULL, 0, 0, NULL, &pg_conf_auth_table,
	  "How clients authenticate to tether." },
	{ "tls", CONF_SECTION, 0, offsetof(struct pg_conf, tls), NULL, 0, 0, NULL, &pg_conf_tls_table,
	  "TLS for clients." },
	{ "max_client_conn", CONF_INT, CONF_RELOAD, offsetof(struct pg_conf, max_client_conn), "10000", 1, 1000000,
	  NULL, NULL, "Most client connections in all; more are refused with an error." },
	{ "max_packet_size", CONF_SIZE, CONF_RELOAD, offsetof(struct pg_conf, max_packet_size), "256MiB", 1024,
	  1073741824, NULL, NULL, "Largest protocol message accepted from a client." },
	{ "max_prepared_statements", CONF_INT, CONF_RELOAD, offsetof(struct pg_conf, max_prepared_statements), "256",
	  0, 100000, NULL, NULL,
	  "Transaction mode: named prepared statements tether keeps on each server connection (least recently "
	  "used closed first); clients' statement names work across servers. 0 relays names unchanged "
	  "(then only session mode supports them)." },
	{ "query_wait_timeout", CONF_DURATION, CONF_RELOAD, offsetof(struct pg_conf, query_wait_timeout), "120s", 0,
	  0, NULL, NULL, "How long a client may queue for a server before it gets an error (0: forever)." },
	{ "server_check_delay", CONF_DURATION, CONF_RELOAD, offsetof(struct pg_conf, server_check_delay), "30s", 0,
	  0, NULL, NULL, "A server idle longer than this is checked before reuse." },
	{ "server_check_query", CONF_STRING, CONF_RELOAD, offsetof(struct pg_conf, server_check_query), ";", 0, 0,
	  NULL, NULL, "Query that checks an idle server (an empty query is cheapest)." },
	{ "server_reset_query", CONF_STRING, CONF_RELOAD, offsetof(struct pg_conf, server_reset_query), "DISCARD ALL",
	  0, 0, NULL, NULL, "Run when a session-mode client releases its server." },
	{ "server_connect_backoff_max", CONF_DURATION, CONF_RELOAD,
	  offsetof(struct pg_conf, server_connect_backoff_max), "10s", 100, 600000, NULL, NULL,
	  "Longest wait between attempts to reach a server that is down." },
	{ "admin_users", CONF_STRLIST, CONF_RELOAD, offsetof(struct pg_conf, admin_users), NULL, 0, 0, NULL, NULL,
	  "Users who may use the admin database `tether` (SHOW, RELOAD, PAUSE, RESUME) once authenticated. "
	  "Empty: only clients on a unix socket running as tetherd's own OS user or root." },
	{ "databases", CONF_MAP, 0, offsetof(struct pg_conf, databases), NULL, 0, 0, NULL, &pg_conf_db_table,
	  "Client-visible database name -> backend and pool settings." },
	{ NULL }
};

const struct conf_table pg_conf_table = {
	.name = "postgres",
	.desc = "The PostgreSQL pooler: applications connect with any PostgreSQL driver; tether "
		"multiplexes them onto a few server connections per database.",
	.keys = pg_conf_keys,
	.size = sizeof(struct pg_conf),
	.validate = pg_conf_validate,
};
