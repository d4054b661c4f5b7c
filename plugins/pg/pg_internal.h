/* The pooler's objects: the plugin instance, a pool per configured database, client and server
 * connections with one state enum each, and the wire helpers they share. */
#ifndef TETHER_PG_INTERNAL_H
#define TETHER_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <event2/buffer.h>

#include "core.h"
#include "pg_auth.h"
#include "pg_conf.h"
#include "pg_stmt.h"
#include "pgproto.h"
#include "scram.h"

struct bufferevent;
struct evbuffer;
struct event;
struct startup;
struct ssl_ctx_st;
struct pg_linger;

/* Relay back-pressure: stop reading one side while the other has this much unsent. */
#define PG_RELAY_HIGH (1024 * 1024)
#define PG_RELAY_LOW (256 * 1024)

/* Name/value pairs: parameters a server reported with ParameterStatus, settings a client asked
 * for, settings tether applied to a server. */
struct pg_param {
	char *name;  /* one allocation with the value (pg_params_set) */
	char *value;
};
struct pg_params {
	struct pg_param *v;
	uint32_t n, cap;
	uint64_t gen; /* changes with every change of the set, unique in the process (0: never set) */
};

/* How many settings PostgreSQL reports with ParameterStatus that a client may set (pg_guc.c). */
#define PG_GUC_NREPORTED 7

/* What tether expects a server to answer next, in order, for the messages whose answers it
 * must recognise: Parse, Close, and everything that ends in ReadyForQuery. */
enum pg_expect_kind {
	PG_EXP_SYNC = 1,      /* a client's Query, Sync or FunctionCall: ReadyForQuery relayed */
	PG_EXP_PARSE,         /* a client's Parse: ParseComplete relayed */
	PG_EXP_PARSE_DROP,    /* tether prepared a statement the client's Bind/Describe needs */
	PG_EXP_CLOSE,         /* a client's Close: CloseComplete relayed */
	PG_EXP_CLOSE_AS_PARSE,/* the client's Parse of a statement the server already has: the
				 CloseComplete of a no-op Close stands in for its ParseComplete */
	PG_EXP_CLOSE_DROP,    /* tether evicted or re-prepared a statement */
	PG_EXP_QUERY_DROP,    /* tether's own query: everything through ReadyForQuery swallowed */
};
struct pg_expect {
	uint8_t kind;
	struct pg_stmt *stmt; /* PARSE and PARSE_DROP: forgotten if the server refuses it */
};

/* What a bare socket (or a bufferevent set up with pg_io_setcb) tells its connection. */
struct pg_io_cbs {
	void (*read)(void *arg);              /* bytes were added to the input */
	void (*write)(void *arg);             /* the output went down to PG_RELAY_LOW (or empty) */
	void (*event)(void *arg, short what); /* BEV_EVENT_* as a bufferevent reports them */
	bool (*idle)(void *arg);              /* bare: may its empty buffers be freed now? */
	/* Optional, for a bare socket or a direct bufferevent: the bytes of a read before they are
	 * added to an empty input, to use what it can at once (the relay's shortcut); returns how
	 * many it used, and the rest goes to the input and `read` as usual. A bufferevent whose
	 * cbs have no `read` keeps its own callbacks. */
	size_t (*take)(void *arg, const unsigned char *p, size_t n);
};

/* A bare socket's output buffer: its "bytes added" callback's argument names the connection
 * it is lent to, so the pair is kept whole among pg's spares (pg_out.c). */
struct pg_obuf {
	struct evbuffer *b;
	struct pg_out *o; /* NULL while spare */
};
/* Emptied bare-socket buffers kept for the next busy connection (each kind). */
#define PG_IO_SPARE 64
/* How many are kept. None under AddressSanitizer: a reused client struct or buffer would hide
 * a use after free from it. */
static inline size_t pg_io_spare_keep(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 0;
#else
	return PG_IO_SPARE;
#endif
}
#define PG_IO_SPARE_KEEP pg_io_spare_keep()

/* A connection's socket I/O (pg_out.c). Servers and TLS clients: a bufferevent, written
 * directly when plain. Plain client sockets ("bare"): just the fd and one event, with input and
 * output evbuffers that exist only while bytes are in them or the connection is busy, so an
 * idle client costs no buffers at all. */
struct pg_out {
	struct pg_out *next, *prev; /* on pg->dirty while bytes wait for the flush */
	struct pg *pg;
	struct bufferevent *bev;    /* NULL for a bare socket */
	struct event *rev;          /* bev: our read event (the bufferevent's is off); bare: the
				       socket's one event, EV_READ and/or EV_WRITE */
	struct evbuffer *in;        /* bare: made (or taken from pg's spares) on first need */
	struct pg_obuf *ob;         /* bare: the output, likewise (pg_io_input / pg_io_output) */
	const struct pg_io_cbs *cbs;
	void *arg;
	evutil_socket_t fd; /* bare; -1 once closed */
	evutil_socket_t wfd; /* bev, direct: the socket pg_out_flush writes (asked once at attach) */
	bool dirty, direct, rd_on, wr_on;
	bool bare;     /* no bufferevent: fd, rev, in and outb are the connection */
	uint8_t armed; /* bare: the EV_READ / EV_WRITE the event is added with */
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

#define PG_RANDOM 64

struct pg_client;
struct pg_server;
struct pg_pool;
struct pg_cache_client;
struct pg_cache_pool;
struct pg_admin_purge;

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
	struct event *janitor_ev;
	struct ssl_ctx_st *tls_ctx;  /* for clients, when postgres.tls has a certificate */
	struct pg_linger *lingering; /* closing connections still writing their last message */
	struct event *flush_ev;      /* writes what this loop pass queued (pg_out.c) */
	struct pg_out *dirty;
	bool in_io; /* inside pg_out.c's socket callbacks: they flush on their way out */
	/* pg_out.c: empty buffers a bare socket gave back, so that a transaction does not pay for
	 * evbuffer_new / evbuffer_add_cb / evbuffer_free each time (an idle client holds none) */
	struct evbuffer *spare_in[PG_IO_SPARE];
	struct pg_obuf *spare_out[PG_IO_SPARE];
	uint32_t nspare_in, nspare_out;
	/* ... and, likewise for a connection per transaction, a bare socket's deleted event and
	 * the client structs freed (pg_client.c takes and gives those; pg_out_stop frees both) */
	struct event *spare_ev[PG_IO_SPARE];
	struct pg_client *spare_client[PG_IO_SPARE];
	uint32_t nspare_ev, nspare_client;
	/* random numbers for clients' cancel keys, read PG_RANDOM at a time (pg_client_accept) */
	int32_t random[PG_RANDOM];
	uint32_t nrandom;
	struct pg_client *dead_clients;
	struct pg_client *clients; /* every open client (all_next/all_prev) */
	struct pg_auth auth;
	struct pg_server *dead_servers;
	struct metric_series *m_clients_total, *m_refused;
	struct metric *m_errors;
	struct pg_admin *admin; /* pg_admin_show.c: /admin/pools, SHOW STATS periods */
	struct pg_admin_purge *purges; /* pg_admin_cache.c: CACHE PURGE in flight */
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
	struct pg_server *servers; /* every open server (all_next/all_prev) */
	struct ssl_ctx_st *tls_ctx; /* for servers, per sslmode; NULL: plain */
	struct pg_client *wait_head, *wait_tail; /* FIFO of clients waiting for a server */
	struct pg_client *login_head; /* clients waiting for the first server parameters */
	size_t nservers, nidle, nactive, nwaiting, nclients, nconnecting;
	int consecutive_failures;
	struct event *retry_ev;
	bool paused;
	uint64_t queries, transactions, bytes_in, bytes_out;
	struct metric_series *m_wait;
	struct pg_stmt_registry stmts; /* named statements of transaction-mode clients */
	uint64_t prepares, guc_applies; /* statements tether prepared, settings queries it ran */
	uint64_t checks;                /* idle servers checked before reuse */
	struct pg_cache_pool *cache;    /* pg_cache.c; NULL without a `cache` section */
	/* AuthenticationOk and a ParameterStatus per params entry, as a client with no settings of
	 * its own is told them at login; login_off[i]: where params.v[i]'s message starts,
	 * login_off[params.n]: the end (pg_pool_login_msgs, once have_params) */
	unsigned char *login_msgs;
	uint32_t *login_off;
	uint32_t login_app; /* params' index of application_name (params.n: none) */
	/* params' values of the reported settings by pg_guc.c's index, once have_params */
	const char *reported[PG_GUC_NREPORTED];
	bool reported_ok;
};

/* Ordered to leave no holes: an idle client is this, one event and its strings. */
struct pg_client {
	struct pg_client *next;     /* on a pool's wait or login list, or the dead list */
	struct pg_client *all_next, *all_prev;
	struct pg *pg;
	struct pg_pool *pool;
	struct bufferevent *bev; /* TLS clients only (the filter); plain ones are bare sockets */
	struct log_src log;
	struct pg_server *server;
	char *user;             /* user, database and application_name share one allocation */
	char *database;
	char *application_name;
	struct timespec wait_start;
	struct event *wait_timer;
	struct scram_server *scram; /* while a SCRAM exchange runs */
	struct pg_out out;
	size_t relay_remaining; /* bytes of a large message still to forward */
	uint64_t id;
	struct pg_params gucs;       /* settings asked for at startup or since reported */
	struct pg_stmt_map stmts;    /* transaction mode: its statement names */
	struct pg_cache_client *cache; /* pg_cache.c, made on first need when the pool caches */
	enum pg_client_state state;
	int32_t cancel_pid, cancel_key;
	uint8_t md5_salt[4];
	uint8_t auth_step; /* 0: waiting for the first password message, 1: SCRAM client-final */
	bool unix_socket;
	bool in_tx; /* last ReadyForQuery said T or E */
	bool listening; /* ran LISTEN in transaction mode: keeps its server */
	bool tls;       /* SSLRequest accepted: bev is a TLS filter */
};

struct pg_server {
	struct pg_server *next; /* on the pool's idle list or the dead list */
	struct pg_server *all_next, *all_prev; /* every open server of the pool */
	struct pg_pool *pool;
	struct bufferevent *bev;
	struct log_src log;
	enum pg_server_state state;
	struct pg_client *client;
	int32_t backend_pid, backend_key;
	struct pg_params params;
	/* params' values of the reported settings (pg_guc.c), valid while reported_ok: cleared on
	 * every change of params */
	const char *reported[PG_GUC_NREPORTED];
	bool reported_ok;
	uint8_t reported_same; /* bit i: reported[i] is the pool's value too (both unset or equal) */
	char tx_status;       /* from the last ReadyForQuery */
	uint32_t pending_sync; /* ReadyForQuery answers expected (SYNC and QUERY_DROP entries) */
	size_t relay_remaining; /* bytes of a large message still to forward */
	bool relay_drop;        /* ... and that message is swallowed */
	struct pg_expect *exp;  /* ring of expected answers */
	uint32_t exp_head, exp_n, exp_cap;
	bool skip_till_sync;    /* an error made the server ignore messages until the next Sync */
	uint32_t unsynced;      /* extended-protocol messages forwarded since the last Sync */
	char *inject_error;     /* why tether's own query failed, if it did */
	bool guc_pending;       /* tether's settings query for the client is in flight */
	struct pg_params gucs;  /* settings tether SET that are not reported by ParameterStatus */
	/* the settings of the last client pg_guc_apply found it to have already (pg_guc.c), valid
	 * while guc_match_ok and reported_ok */
	struct pg_params guc_match;
	bool guc_match_ok;
	struct pg_stmt_set stmts; /* statements prepared on it (transaction mode) */
	uint8_t tls;              /* enum pg_tls_state */
	struct pg_out out;
	struct scram_client scram;
	bool sasl;             /* a SCRAM exchange started: AuthenticationOk needs its proof */
	time_t created, last_used;
	struct event *timer;
	uint64_t id;
	bool held; /* the client's ReadyForQuery waits for the cache's invalidation (pg_cache.c) */
	bool orphan; /* RESETTING: the client left while a write ran; invalidate once it answers */
	bool tainted; /* a client changed its session (SET, set_config ...) in ways tether does not
			 track: names resolve and results read differently until DISCARD/RESET ALL */
};

enum pg_tls_state { PG_TLS_NONE = 0, PG_TLS_REQUESTED, PG_TLS_HANDSHAKE, PG_TLS_ON, PG_TLS_REFUSED };

/* pg_out.c */
int pg_out_start(struct pg *pg);
void pg_out_stop(struct pg *pg);
/* Plain sockets: direct writes, EV_WRITE only when full. Call again after a TLS wrap (which
 * must detach first): TLS filters keep EV_WRITE on. With callbacks set (pg_io_setcb) the
 * bufferevent's are pointed at them. */
void pg_out_attach(struct pg *pg, struct pg_out *o, struct bufferevent *bev, bool direct);
void pg_out_detach(struct pg_out *o);
/* From the write callback: output empty, EV_WRITE off again. */
void pg_out_written(struct pg_out *o);
/* Reading on or off (back-pressure), whichever path reads the connection. */
void pg_io_read_set(struct pg_out *o, bool on);
bool pg_io_read_on(const struct pg_out *o);
/* A bare socket: `o` owns `fd` from now on (closed by pg_io_close, also on failure); reading. */
int pg_io_attach_fd(struct pg *pg, struct pg_out *o, evutil_socket_t fd, const struct pg_io_cbs *cbs, void *arg);
/* A bare socket just accepted: one read now, as if the loop had found it readable (on a unix
 * socket a client's first packet, sent as soon as connect() returned, is nearly always there
 * already, and a loop pass is saved on every new connection; over loopback TCP it is there less
 * often than not). The callbacks may close `o` (and free its owner). */
void pg_io_read_now(struct pg_out *o);
/* The callbacks of a bare socket or of the bufferevent attached with pg_out_attach. */
void pg_io_setcb(struct pg_out *o, const struct pg_io_cbs *cbs, void *arg);
/* The connection's input and output buffers, made on first need for a bare socket; NULL once
 * closed (or when a bare socket's buffer cannot be allocated). */
struct evbuffer *pg_io_input(struct pg_out *o);
struct evbuffer *pg_io_output(struct pg_out *o);
/* Sends `n` bytes: written at once when nothing is queued before them (no copy into the output
 * buffer), else, and for what the socket does not take, queued and flushed as usual (a write
 * error shows there). 1: all written; 0: some queued; -1: out of memory (nothing queued). */
int pg_io_send(struct pg_out *o, const void *p, size_t n);
/* After pg_io_send wrote everything: what a flush that emptied the output does (the write
 * callback, a bare socket's idle buffers given back). */
void pg_io_sent(struct pg_out *o);
/* Bytes read and not yet taken from the input; makes nothing. */
size_t pg_io_unread(const struct pg_out *o);
/* Bytes queued and not yet written (a TLS filter's underlying buffer too); makes nothing. */
size_t pg_io_unsent(const struct pg_out *o);
bool pg_io_open(const struct pg_out *o);
evutil_socket_t pg_io_fd(const struct pg_out *o);
/* Takes the connection away from `o` as a bufferevent holding the output still queued (a bare
 * socket becomes one; its unread input is dropped); NULL when closed or out of memory (the
 * socket is closed then). */
struct bufferevent *pg_io_bufferevent(struct pg_out *o);
/* Detaches and frees the bufferevent or bare socket with its buffers. */
void pg_io_close(struct pg_out *o);

/* The client's buffers and socket, whichever I/O it uses (bare socket or TLS bufferevent):
 * protocol code calls these instead of bufferevent_get_input/output(c->bev), bufferevent_getfd
 * and `c->bev != NULL`. */
static inline struct evbuffer *pg_client_input(struct pg_client *c)
{
	return pg_io_input(&c->out);
}
static inline struct evbuffer *pg_client_output(struct pg_client *c)
{
	return pg_io_output(&c->out);
}
static inline bool pg_client_connected(const struct pg_client *c)
{
	return pg_io_open(&c->out);
}
static inline evutil_socket_t pg_client_fd(const struct pg_client *c)
{
	return pg_io_fd(&c->out);
}

/* pg_tls.c */
int pg_tls_init(struct pg *pg, char *err, size_t errlen);
void pg_tls_free(struct pg *pg);
bool pg_tls_client_offered(const struct pg *pg);
/* Answers an SSLRequest with 'S' and puts a TLS filter over the client's socket: c->bev from
 * then on, with the client's pg_io_cbs. On failure the caller closes the client. */
int pg_tls_client_start(struct pg_client *c);
/* After the server's 'S': the server's bev becomes a TLS filter (callbacks to set again). */
int pg_tls_server_start(struct pg_server *s);
void pg_tls_error(struct bufferevent *bev, char *buf, size_t len);
/* Frees `bev` once what is queued on it was written (at most a second from now). */
void pg_tls_linger(struct pg *pg, struct bufferevent *bev);
void pg_tls_linger_stop(struct pg *pg);

/* evbuffer_remove_buffer(in, to, n), calling straight into libevent's own shortcut (moving
 * every chain) when all of `in` goes, as it mostly does for a message relayed whole. */
static inline void pg_buf_move(struct evbuffer *in, struct evbuffer *to, size_t n)
{
	if (n >= evbuffer_get_length(in))
		evbuffer_add_buffer(to, in);
	else
		evbuffer_remove_buffer(in, to, n);
}

/* The first 5 bytes of `in`, which has them (a message's type and length word). */
static inline void pg_buf_head(struct evbuffer *in, unsigned char h[5])
{
	const unsigned char *p = evbuffer_pullup(in, 5); /* (in place when the first chain has them) */
	if (p)
		memcpy(h, p, 5);
	else
		evbuffer_copyout(in, h, 5);
}

/* pg_wire.c (messages are built with pgproto.h) */
void pg_wire_error(struct evbuffer *out, const char *severity, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
uint32_t pg_wire_u32(const unsigned char *p);
/* Bytes up to and including the first whole message in `in` whose type is in `ends` (a Sync,
 * a Query); 0 when that message has not fully arrived. */
size_t pg_wire_request_end(struct evbuffer *in, const char *ends);
/* The 5-byte header (type, length) of the message at `off` in `in`, which must have 5 bytes
 * there; returns the length word. */
uint32_t pg_wire_header_at(struct evbuffer *in, size_t off, unsigned char h[5]);
/* A Bind's portal and statement names from its first `len` bytes (type and length word
 * included); false when they are not both NUL-terminated within them. */
bool pg_wire_bind_names(const unsigned char *m, size_t len, const char **portal, const char **stmt);
int pg_params_set(struct pg_params *p, const char *name, const char *value);
const char *pg_params_get(const struct pg_params *p, const char *name);
void pg_params_del(struct pg_params *p, const char *name);
void pg_params_clear(struct pg_params *p);

/* pg_expect.c: the queue of answers a server owes, and what to do with each answer */
int pg_expect_push(struct pg_server *s, enum pg_expect_kind kind, struct pg_stmt *st);
/* The kind of the next answer expected, 0 when none (inline: asked for every server message). */
static inline int pg_expect_head(const struct pg_server *s)
{
	return s->exp_n ? s->exp[s->exp_head].kind : 0;
}
void pg_expect_clear(struct pg_server *s);
enum pg_expect_action { PG_EXP_PASS, PG_EXP_DROP, PG_EXP_AS_PARSE, PG_EXP_DESYNC };
/* ParseComplete ('1') or CloseComplete ('3') arrived. */
enum pg_expect_action pg_expect_complete(struct pg_server *s, uint8_t type);
/* An ErrorResponse arrived (not inside tether's own query): forget what the server will skip. */
void pg_expect_error(struct pg_server *s);
/* ReadyForQuery arrived: PASS for a client's, DROP for tether's own, DESYNC. */
enum pg_expect_action pg_expect_ready(struct pg_server *s);

/* pg_extended.c: a transaction-mode client's named statements, kept across servers */
/* Handles one complete client message of type P, B, D, C or Q that is at the front of `in`;
 * returns 1 when it consumed (and forwarded or answered) it, 0 to relay it unchanged, -1 when
 * the client was failed. */
int pg_extended_client_msg(struct pg_client *c, struct evbuffer *in, uint8_t type, uint32_t len);
/* DEALLOCATE / DEALLOCATE ALL from a client with no server: answered by tether. 1 when done. */
int pg_extended_idle_query(struct pg_client *c, struct evbuffer *in, uint32_t len);
/* A Parse message (whole, `len` bytes) answered by the cache: its name is recorded for the
 * client as if a server had seen it. 0 or -1 (memory). */
int pg_extended_remember(struct pg_client *c, const unsigned char *msg, size_t len);
/* The text of a simple Query (at most 4096 bytes) that pg_extended_client_msg would relay
 * unchanged, with no effect on the client's statements or the server's settings: true; then
 * pg_extended_query_relayed (`n`: the text's length) does the rest of what it does for it
 * (LISTEN). */
bool pg_extended_query_plain(const struct pg_client *c, const char *q);
/* Whether the client's statement names are tether's to map (transaction mode with
 * max_prepared_statements): its Parse and Close are then pg_extended_client_msg's. */
bool pg_extended_renames(const struct pg_client *c);
/* A Bind or Describe whole at m[0..total) from a client with a server, into `out` (`room`
 * bytes) as pg_extended_client_msg would forward it: its statement under the server's name,
 * or as it is. Returns the bytes written, or -1 when it needs more (a statement the server has
 * not prepared yet, a malformed Describe, no room): then nothing changed. */
ssize_t pg_extended_rewrite(struct pg_client *c, const unsigned char *m, size_t total, unsigned char *out,
			    size_t room);
void pg_extended_query_relayed(struct pg_client *c, const char *q, size_t n);
/* True for a reset query that resets session settings (DISCARD ALL, RESET ALL). */
bool pg_extended_resets_settings(const char *sql);

/* pg_guc.c: client settings re-applied on whichever server a client is given */
int pg_guc_startup(struct pg_client *c, const struct startup *st, char *err, size_t errlen);
/* Queues tether's own query to bring `s` to the client's settings; 0 or -1 (memory). */
int pg_guc_apply(struct pg_client *c, struct pg_server *s);
/* The value of a reported setting the client was told (its own, else the pool's). */
const char *pg_guc_expected(const struct pg_client *c, const char *name);
/* A ParameterStatus the server sent to the linked client. */
void pg_guc_reported(struct pg_client *c, const char *name, const char *value);
/* tether's settings query finished on `s` for `c` (failed when s->inject_error is set). */
void pg_guc_applied(struct pg_client *c, struct pg_server *s);
/* The server's session settings were reset (DISCARD ALL, RESET ALL). */
void pg_guc_server_reset(struct pg_server *s);

/* pg_pool.c */
int pg_pools_create(struct pg *pg);
void pg_pools_destroy(struct pg *pg);
struct pg_pool *pg_pool_find(struct pg *pg, const char *name);
/* Gives the client a server now or queues it; the client is told with pg_client_linked. */
void pg_pool_acquire(struct pg_pool *pool, struct pg_client *c);
/* The client is done with its server (transaction end in transaction mode, disconnect). */
void pg_pool_release(struct pg_pool *pool, struct pg_server *s, bool reusable);
void pg_pool_server_ready(struct pg_pool *pool, struct pg_server *s);
/* Builds pool->login_msgs once the pool has its params; 0 or -1 (memory). */
int pg_pool_login_msgs(struct pg_pool *pool);
void pg_pool_server_failed(struct pg_pool *pool, struct pg_server *s, const char *why);
void pg_pool_unwait(struct pg_pool *pool, struct pg_client *c);
void pg_pool_reap(struct pg *pg);
void pg_pool_reap_now(struct pg *pg);
void pg_pool_close_all(struct pg_pool *p, const char *why);

/* pg_server.c */
int pg_server_address(const struct pg_conf_db *db, struct sockaddr_storage *ss, socklen_t *sl);
struct pg_server *pg_server_connect(struct pg_pool *pool);
void pg_server_close(struct pg_server *s, const char *why);
void pg_server_link(struct pg_server *s, struct pg_client *c);
void pg_server_free(struct pg_server *s);
/* The linked client drained: relay what the server sent meanwhile. */
void pg_server_resume(struct pg_server *s);
/* The cache's invalidation after a commit is done: relay the held ReadyForQuery and go on. */
void pg_server_unhold(struct pg_server *s);
/* The client's request is answered: in transaction mode the server goes back to the pool once
 * the transaction is over and nothing else is in flight (then -1, and the client goes on with
 * its next request; else 0). */
int pg_server_client_ready(struct pg_server *s, struct pg_client *c);
/* Bytes at the front of p[0..n) that are whole messages pg_server_relay forwards (or drops)
 * without looking inside: not ReadyForQuery, ParameterStatus, ParseComplete, CloseComplete or an
 * error (each has its own bookkeeping), none malformed, none larger than 64 KiB. With
 * `with_ready` the run may end with a well-formed ReadyForQuery, whose status byte goes to *ready
 * (else *ready is 0): the caller does its bookkeeping after moving it on with the rest, the same
 * bytes tether would write again. */
size_t pg_server_plain_span(const unsigned char *p, size_t n, bool with_ready, char *ready);

/* pg_relay.c: the relay's shortcut past the input and output buffers (pg_io_cbs.take) */
extern const struct pg_io_cbs pg_relay_server_cbs;
size_t pg_relay_client_take(void *arg, const unsigned char *p, size_t n);

/* pg_login.c: the client is authenticated and the pool knows its servers' parameters: the
 * login answer (AuthenticationOk ... ReadyForQuery), then it is idle */
void pg_login_done(struct pg_client *c);

/* pg_cancel.c: forwards a CancelRequest to the backend serving that client now; hold_fd (owned
 * from now on, or -1) is a dup of the canceller's socket, closed once the server has it */
void pg_cancel(struct pg *pg, uint32_t pid, uint32_t key, evutil_socket_t hold_fd);

/* pg_client.c */
void pg_client_accept(evutil_socket_t fd, const struct sockaddr *sa, int salen, void *arg);
void pg_client_linked(struct pg_client *c);
void pg_client_fail(struct pg_client *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pg_client_close(struct pg_client *c);
/* Server bytes for the linked client: forwarded as they are. */
void pg_client_server_data(struct pg_client *c, struct evbuffer *data);
void pg_client_server_gone(struct pg_client *c, const char *why);
void pg_client_free(struct pg_client *c);
void pg_client_process(struct pg_client *c);
/* Arms the client's query_wait_timeout timer (made on first need) once it waits for a server. */
void pg_client_wait_timer(struct pg_client *c);
/* pg_io_cbs.idle for clients: nothing under way that an answer will be written for. */
bool pg_client_io_idle(void *arg);

void pg_maybe_drained(struct pg *pg);

/* pg_janitor.c: once a second, idle servers past server_lifetime / server_idle_timeout close,
 * and pools are topped up to min_idle */
int pg_janitor_start(struct pg *pg);
void pg_janitor_stop(struct pg *pg);
/* Opens servers for the clients waiting, up to pool_size (not while backing off). */
void pg_pool_grow_for_waiters(struct pg_pool *p);

#endif
