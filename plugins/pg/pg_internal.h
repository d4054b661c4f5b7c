/* The pooler's objects: the plugin instance, a pool per configured database, client and server
 * connections with one state enum each, and the wire helpers they share. */
#ifndef TETHER_PG_INTERNAL_H
#define TETHER_PG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "core.h"
#include "pg_auth.h"
#include "pg_conf.h"
#include "pgproto.h"
#include "scram.h"

struct bufferevent;
struct evbuffer;
struct event;

#define PG_MAX_PARAMS 32
/* Relay back-pressure: stop reading one side while the other has this much unsent. */
#define PG_RELAY_HIGH (1024 * 1024)
#define PG_RELAY_LOW (256 * 1024)

/* Server parameters reported with ParameterStatus, as name/value pairs. */
struct pg_params {
	char *name[PG_MAX_PARAMS];
	char *value[PG_MAX_PARAMS];
	size_t n;
};

enum pg_client_state {
	PG_CLIENT_STARTUP,  /* reading the startup packet / SSLRequest */
	PG_CLIENT_AUTH,     /* proving who it is (md5 or SCRAM exchange) */
	PG_CLIENT_LOGIN,    /* waiting for the pool's first server to learn server parameters */
	PG_CLIENT_IDLE,     /* logged in, no server linked (pool->idle_clients not tracked) */
	PG_CLIENT_WAITING,  /* has a request queued for a server (on pool->waiting) */
	PG_CLIENT_ACTIVE,   /* linked to a server */
	PG_CLIENT_CLOSED,   /* freed after the callback (on pg->dead_clients) */
};

enum pg_server_state {
	PG_SERVER_CONNECTING, /* TCP/unix connect and login in progress */
	PG_SERVER_IDLE,       /* logged in, in pool->idle */
	PG_SERVER_ACTIVE,     /* linked to a client */
	PG_SERVER_RESETTING,  /* running the reset query before going idle */
	PG_SERVER_CLOSED,
};

struct pg_client;
struct pg_server;
struct pg_pool;

struct pg {
	struct core *core;
	const struct pg_conf *conf;
	struct log_src log;
	struct pg_pool *pools;
	size_t npools;
	size_t nclients;
	uint64_t next_id;
	bool draining;
	void (*drain_done)(void *);
	void *drain_arg;
	struct event *reap_ev;
	struct pg_client *dead_clients;
	struct pg_client *clients; /* every open client (all_next/all_prev) */
	struct pg_auth auth;
	struct pg_server *dead_servers;
	struct metric_series *m_clients_total, *m_refused;
	struct metric *m_errors;
};

struct pg_pool {
	struct pg *pg;
	const struct pg_conf_db *db;
	const struct pg_conf_db *db_boot; /* from the start-up config, which lives until exit */
	char *name;
	struct pg_params params; /* from the first server login: what clients are told */
	struct scram_keys scram_keys; /* from the last SCRAM login: saves PBKDF2 on the next */
	bool have_scram_keys;
	bool have_params;
	struct pg_server *idle;   /* LIFO list of idle servers */
	struct pg_client *wait_head, *wait_tail; /* FIFO of clients waiting for a server */
	struct pg_client *login_head; /* clients waiting for the first server parameters */
	size_t nservers, nidle, nactive, nwaiting, nclients, nconnecting;
	int consecutive_failures;
	struct event *retry_ev;
	bool paused;
	uint64_t queries, transactions, bytes_in, bytes_out;
	struct metric_series *m_wait;
};

struct pg_client {
	struct pg_client *next;     /* on a pool's wait or login list, or the dead list */
	struct pg_client *all_next, *all_prev;
	struct pg *pg;
	struct pg_pool *pool;
	struct bufferevent *bev;
	struct log_src log;
	enum pg_client_state state;
	struct pg_server *server;
	char *user;
	char *database;
	char *application_name;
	int32_t cancel_pid, cancel_key;
	struct timespec wait_start;
	struct event *wait_timer;
	bool unix_socket;
	int auth_step; /* 0: waiting for the first password message, 1: SCRAM client-final */
	struct scram_server scram;
	bool scram_active;
	uint8_t md5_salt[4];
	bool in_tx; /* last ReadyForQuery said T or E */
	size_t relay_remaining; /* bytes of a large message still to forward */
	uint64_t id;
};

struct pg_server {
	struct pg_server *next; /* on the pool's idle list or the dead list */
	struct pg_pool *pool;
	struct bufferevent *bev;
	struct log_src log;
	enum pg_server_state state;
	struct pg_client *client;
	int32_t backend_pid, backend_key;
	struct pg_params params;
	char tx_status;       /* from the last ReadyForQuery */
	uint32_t pending_sync; /* Query/Sync sent and not yet answered by ReadyForQuery */
	size_t relay_remaining; /* bytes of a large message still to forward */
	struct scram_client scram;
	bool sasl;             /* a SCRAM exchange started: AuthenticationOk needs its proof */
	time_t created, last_used;
	struct event *timer;
	uint64_t id;
};

/* pg_wire.c (messages are built with pgproto.h) */
void pg_wire_error(struct evbuffer *out, const char *severity, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
uint32_t pg_wire_u32(const unsigned char *p);
void pg_params_set(struct pg_params *p, const char *name, const char *value);
void pg_params_clear(struct pg_params *p);

/* pg_pool.c */
int pg_pools_create(struct pg *pg);
void pg_pools_destroy(struct pg *pg);
struct pg_pool *pg_pool_find(struct pg *pg, const char *name);
/* Gives the client a server now or queues it; the client is told with pg_client_linked. */
void pg_pool_acquire(struct pg_pool *pool, struct pg_client *c);
/* The client is done with its server (transaction end in transaction mode, disconnect). */
void pg_pool_release(struct pg_pool *pool, struct pg_server *s, bool reusable);
void pg_pool_server_ready(struct pg_pool *pool, struct pg_server *s);
void pg_pool_server_failed(struct pg_pool *pool, struct pg_server *s, const char *why);
void pg_pool_unwait(struct pg_pool *pool, struct pg_client *c);
void pg_pool_reap(struct pg *pg);
void pg_pool_reap_now(struct pg *pg);

/* pg_server.c */
int pg_server_address(const struct pg_conf_db *db, struct sockaddr_storage *ss, socklen_t *sl);
struct pg_server *pg_server_connect(struct pg_pool *pool);
void pg_server_close(struct pg_server *s, const char *why);
void pg_server_link(struct pg_server *s, struct pg_client *c);
void pg_server_free(struct pg_server *s);
/* The linked client drained: relay what the server sent meanwhile. */
void pg_server_resume(struct pg_server *s);

/* pg_cancel.c: forwards a CancelRequest to the backend serving that client now */
void pg_cancel(struct pg *pg, uint32_t pid, uint32_t key);

/* pg_client.c */
void pg_client_accept(evutil_socket_t fd, const struct sockaddr *sa, int salen, void *arg);
void pg_client_linked(struct pg_client *c);
void pg_client_login_done(struct pg_client *c);
void pg_client_fail(struct pg_client *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pg_client_close(struct pg_client *c);
/* Server bytes for the linked client: forwarded as they are. */
void pg_client_server_data(struct pg_client *c, struct evbuffer *data);
void pg_client_server_gone(struct pg_client *c, const char *why);
void pg_client_free(struct pg_client *c);
void pg_client_process(struct pg_client *c);

void pg_maybe_drained(struct pg *pg);

#endif
