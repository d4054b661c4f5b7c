/* The cache's Redis connection on the event loop: hiredis async with its libevent adapter,
 * handshake (AUTH, SELECT, PING) under a connect timeout, a timeout on the oldest command in
 * flight (replies come in order, so one timer covers them all), reconnect with exponential
 * backoff, and the circuit breaker (closed -> open after N consecutive failures -> half-open
 * probe after open_for -> closed on success). */
#include "cache_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "loopclock.h"

enum cache_redis_state { CACHE_REDIS_DOWN, CACHE_REDIS_CONNECTING, CACHE_REDIS_READY };

struct cache_redis_cmd {
	struct cache_redis *r;
	cache_redis_fn cb; /* NULL: a handshake command */
	void *arg;
	int64_t deadline; /* monotonic ms */
	struct cache_redis_cmd *next;
};

struct cache_redis {
	struct event_base *base;
	struct cache_conf_addr addr;
	char *password;
	int64_t connect_timeout, command_timeout, failure_threshold, open_for;
	struct log_src log;
	void (*on_ready)(void *arg);
	void *arg;

	redisAsyncContext *ac;
	enum cache_redis_state state;
	enum cache_redis_breaker breaker;
	int64_t failures;   /* consecutive */
	int attempts;       /* reconnect attempts since the last success */
	int64_t open_until; /* breaker open until (monotonic ms) */
	bool conn_failed;   /* this connection's loss was counted already */
	const char *drop_reason;
	struct cache_redis_cmd *head, *tail; /* FIFO, the order replies arrive in */
	struct event *cmd_timer, *retry_timer;
	uint64_t errors;
	bool destroying;
	char run_id[64];   /* INFO server's run_id of the Redis last connected to */
	bool restarted;    /* the run_id changed: Redis restarted or failed over */
};

static int64_t cache_redis_now(void)
{
	return loopclock_now_ms();
}

static void cache_redis_arm(struct event *ev, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	evtimer_add(ev, &tv);
}

static void cache_redis_connect(struct cache_redis *r);

static void cache_redis_schedule(struct cache_redis *r)
{
	if (r->destroying || r->state != CACHE_REDIS_DOWN)
		return;
	int64_t delay;
	if (r->breaker == CACHE_BREAKER_OPEN) {
		delay = r->open_until - cache_redis_now();
	} else {
		int shift = r->attempts < 10 ? r->attempts : 10;
		delay = (int64_t)50 << shift;
		if (delay > r->open_for)
			delay = r->open_for;
		delay = delay / 2 + (int64_t)(rand() % (int)(delay / 2 + 1)); /* jitter */
		r->attempts++;
	}
	cache_redis_arm(r->retry_timer, delay);
}

/* Closes the connection: every command in flight fails with `reason`. */
static void cache_redis_drop(struct cache_redis *r, const char *reason)
{
	redisAsyncContext *ac = r->ac;
	r->ac = NULL;
	r->state = CACHE_REDIS_DOWN;
	evtimer_del(r->cmd_timer);
	if (ac) {
		/* hiredis runs the pending callbacks with NULL replies, now or (inside one of its
		 * callbacks) as soon as that callback returns; they are not counted again. */
		r->drop_reason = reason;
		r->conn_failed = true;
		ac->data = NULL;
		redisAsyncFree(ac);
	} else {
		while (r->head) {
			struct cache_redis_cmd *c = r->head;
			r->head = c->next;
			if (c->cb)
				c->cb(c->arg, NULL, reason);
			free(c);
		}
		r->tail = NULL;
	}
	cache_redis_schedule(r);
}

static void cache_redis_failure(struct cache_redis *r, const char *why)
{
	r->errors++;
	r->failures++;
	if (r->breaker == CACHE_BREAKER_HALF_OPEN ||
	    (r->breaker == CACHE_BREAKER_CLOSED && r->failures >= r->failure_threshold)) {
		r->breaker = CACHE_BREAKER_OPEN;
		r->open_until = cache_redis_now() + r->open_for;
		log_warn(&r->log, "redis circuit open for %lldms after %lld consecutive failures (last: %s)",
			 (long long)r->open_for, (long long)r->failures, why);
		if (r->ac || r->state != CACHE_REDIS_DOWN)
			cache_redis_drop(r, "circuit open");
		else {
			evtimer_del(r->retry_timer);
			cache_redis_schedule(r);
		}
	}
}

static void cache_redis_success(struct cache_redis *r)
{
	r->failures = 0;
	if (r->breaker != CACHE_BREAKER_CLOSED) {
		r->breaker = CACHE_BREAKER_CLOSED;
		log_info(&r->log, "redis circuit closed");
	}
}

static void cache_redis_rearm(struct cache_redis *r)
{
	evtimer_del(r->cmd_timer);
	if (r->head)
		cache_redis_arm(r->cmd_timer, r->head->deadline - cache_redis_now());
}

static void cache_redis_unlink(struct cache_redis *r, struct cache_redis_cmd *c)
{
	struct cache_redis_cmd **pp = &r->head, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = c->next;
	if (r->tail == c)
		r->tail = prev;
}

static void cache_redis_handshake_reply(struct cache_redis *r, redisReply *reply)
{
	if (r->state != CACHE_REDIS_CONNECTING)
		return;
	if (!reply)
		return; /* the drop that caused this handles it */
	if (reply->type == REDIS_REPLY_ERROR) {
		log_error(&r->log, "redis handshake failed: %.*s", (int)reply->len, reply->str);
		cache_redis_failure(r, "handshake error");
		if (r->ac)
			cache_redis_drop(r, "handshake failed");
		return;
	}
	if (reply->type == REDIS_REPLY_STRING) { /* INFO server */
		const char *p = strstr(reply->str, "run_id:");
		char id[64] = "";
		if (p) {
			size_t n = strcspn(p + 7, "\r\n");
			if (n < sizeof(id)) {
				memcpy(id, p + 7, n);
				id[n] = '\0';
			}
		}
		if (r->run_id[0] && strcmp(id, r->run_id) != 0) {
			log_warn(&r->log, "redis restarted or failed over (run_id changed)");
			r->restarted = true;
		} else if (r->run_id[0]) {
			/* back after a failure: another tether may have had to queue invalidations
			 * meanwhile, and cannot have applied them yet */
			log_warn(&r->log, "redis reachable again after a failure");
			r->restarted = true;
		}
		snprintf(r->run_id, sizeof(r->run_id), "%s", id);
		return;
	}
	if (reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
		r->state = CACHE_REDIS_READY;
		r->attempts = 0;
		cache_redis_success(r);
		if (r->addr.unix_socket)
			log_info(&r->log, "redis connected (%s, db %d)", r->addr.path, r->addr.db);
		else
			log_info(&r->log, "redis connected (%s:%d, db %d)", r->addr.host, r->addr.port, r->addr.db);
		if (r->on_ready)
			r->on_ready(r->arg);
	}
}

static void cache_redis_on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct cache_redis_cmd *c = privdata;
	struct cache_redis *r = c->r;
	redisReply *reply = reply_;
	cache_redis_unlink(r, c);
	const char *err = NULL;
	if (!reply) {
		err = r->drop_reason ? r->drop_reason : "connection lost";
		if (!r->conn_failed && !r->drop_reason && !r->destroying) {
			r->conn_failed = true;
			cache_redis_failure(r, err);
		}
	} else if (reply->type == REDIS_REPLY_ERROR) {
		err = reply->str;
		cache_redis_failure(r, err);
	} else if (r->state == CACHE_REDIS_READY || !c->cb) {
		cache_redis_success(r);
	}
	if (r->ac == ac)
		cache_redis_rearm(r);
	if (c->cb)
		c->cb(c->arg, reply, err);
	else
		cache_redis_handshake_reply(r, reply);
	free(c);
}

/* "<mark><n>\r\n" at p; returns the end. */
static char *cache_redis_resp_len(char *p, char mark, size_t n)
{
	char d[20];
	size_t k = 0;
	do {
		d[k++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	*p++ = mark;
	while (k)
		*p++ = d[--k];
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

static int cache_redis_send(struct cache_redis *r, cache_redis_fn cb, void *arg, int argc, const char **argv,
			    const size_t *argvlen, int64_t timeout)
{
	struct cache_redis_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	*c = (struct cache_redis_cmd){ r, cb, arg, cache_redis_now() + timeout, NULL };
	/* RESP written here rather than by redisAsyncCommandArgv, whose sds formatting cost more
	 * than the rest of a cache hit's Redis work */
	size_t need = 1 + 20 + 2;
	for (int i = 0; i < argc; i++)
		need += 1 + 20 + 2 + argvlen[i] + 2;
	char stack[1024], *buf = need <= sizeof(stack) ? stack : malloc(need), *p = buf;
	if (!buf) {
		free(c);
		return -1;
	}
	p = cache_redis_resp_len(p, '*', (size_t)argc);
	for (int i = 0; i < argc; i++) {
		p = cache_redis_resp_len(p, '$', argvlen[i]);
		memcpy(p, argv[i], argvlen[i]);
		p += argvlen[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	int rc = redisAsyncFormattedCommand(r->ac, cache_redis_on_reply, c, buf, (size_t)(p - buf));
	if (buf != stack)
		free(buf);
	if (rc != REDIS_OK) {
		free(c);
		return -1;
	}
	if (r->tail)
		r->tail->next = c;
	else
		r->head = c;
	r->tail = c;
	if (r->head == c)
		cache_redis_rearm(r);
	return 0;
}

static void cache_redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct cache_redis *r = ac->data;
	if (!r || r->ac != ac || status == REDIS_OK)
		return;
	/* hiredis frees the context after this returns and fails its commands. */
	log_warn(&r->log, "redis connect failed: %s", ac->errstr[0] ? ac->errstr : "unknown error");
	r->ac = NULL;
	r->state = CACHE_REDIS_DOWN;
	r->drop_reason = "connect failed";
	((redisAsyncContext *)ac)->data = NULL;
	cache_redis_failure(r, "connect failed");
	cache_redis_schedule(r);
}

static void cache_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct cache_redis *r = ac->data;
	if (!r || r->ac != ac)
		return;
	log_warn(&r->log, "redis connection lost: %s", ac->errstr[0] ? ac->errstr : "closed");
	r->ac = NULL;
	r->state = CACHE_REDIS_DOWN;
	if (!r->conn_failed)
		cache_redis_failure(r, "connection lost");
	while (r->head) { /* hiredis already failed them; nothing should be left */
		struct cache_redis_cmd *c = r->head;
		r->head = c->next;
		if (c->cb)
			c->cb(c->arg, NULL, "connection lost");
		free(c);
	}
	r->tail = NULL;
	evtimer_del(r->cmd_timer);
	cache_redis_schedule(r);
}

static void cache_redis_connect(struct cache_redis *r)
{
	if (r->destroying || r->state != CACHE_REDIS_DOWN)
		return;
	r->drop_reason = NULL;
	r->conn_failed = false;
	redisAsyncContext *ac = r->addr.unix_socket ? redisAsyncConnectUnix(r->addr.path)
						    : redisAsyncConnect(r->addr.host, r->addr.port);
	if (!ac || ac->err) {
		log_warn(&r->log, "redis connect failed: %s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		cache_redis_failure(r, "connect failed");
		cache_redis_schedule(r);
		return;
	}
	ac->data = r;
	redisLibeventAttach(ac, r->base);
	redisAsyncSetConnectCallback(ac, cache_redis_on_connect);
	redisAsyncSetDisconnectCallback(ac, cache_redis_on_disconnect);
	r->ac = ac;
	r->state = CACHE_REDIS_CONNECTING;
	int rc = 0;
	if (r->password) {
		const char *argv[3] = { "AUTH", r->addr.user ? r->addr.user : r->password, r->password };
		size_t lens[3] = { 4, strlen(argv[1]), strlen(r->password) };
		rc |= cache_redis_send(r, NULL, NULL, r->addr.user ? 3 : 2, argv, lens, r->connect_timeout);
	}
	if (r->addr.db) {
		char db[16];
		snprintf(db, sizeof(db), "%d", r->addr.db);
		const char *argv[2] = { "SELECT", db };
		size_t lens[2] = { 6, strlen(db) };
		rc |= cache_redis_send(r, NULL, NULL, 2, argv, lens, r->connect_timeout);
	}
	const char *info[2] = { "INFO", "server" };
	size_t ilen[2] = { 4, 6 };
	rc |= cache_redis_send(r, NULL, NULL, 2, info, ilen, r->connect_timeout);
	const char *ping[1] = { "PING" };
	size_t plen[1] = { 4 };
	rc |= cache_redis_send(r, NULL, NULL, 1, ping, plen, r->connect_timeout);
	if (rc != 0)
		cache_redis_drop(r, "out of memory");
}

static void cache_redis_on_cmd_timer(evutil_socket_t fd, short what, void *arg)
{
	struct cache_redis *r = arg;
	if (!r->head)
		return;
	if (r->head->deadline > cache_redis_now()) {
		cache_redis_rearm(r);
		return;
	}
	const char *why = r->state == CACHE_REDIS_CONNECTING ? "connect timeout" : "command timeout";
	log_warn(&r->log, "redis %s", why);
	cache_redis_failure(r, why);
	if (r->ac)
		cache_redis_drop(r, why);
}

static void cache_redis_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct cache_redis *r = arg;
	if (r->breaker == CACHE_BREAKER_OPEN) {
		r->breaker = CACHE_BREAKER_HALF_OPEN;
		log_info(&r->log, "redis circuit half-open: probing");
	}
	cache_redis_connect(r);
}

struct cache_redis *cache_redis_create(const struct cache_redis_opts *o)
{
	struct cache_redis *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->base = o->base;
	r->addr = *o->addr;
	r->addr.host = o->addr->host ? strdup(o->addr->host) : NULL;
	r->addr.path = o->addr->path ? strdup(o->addr->path) : NULL;
	r->addr.user = o->addr->user ? strdup(o->addr->user) : NULL;
	r->addr.password = NULL;
	const char *pw = o->password && *o->password ? o->password : o->addr->password;
	if (pw && !*pw)
		pw = NULL; /* an empty password (unset ${ENV:-}) means no AUTH */
	r->password = pw ? strdup(pw) : NULL;
	r->connect_timeout = o->connect_timeout_ms;
	r->command_timeout = o->command_timeout_ms;
	r->failure_threshold = o->failure_threshold;
	r->open_for = o->open_for_ms;
	r->log = o->log ? *o->log : (struct log_src){ "cache", 0 };
	r->on_ready = o->on_ready;
	r->arg = o->arg;
	r->cmd_timer = evtimer_new(r->base, cache_redis_on_cmd_timer, r);
	r->retry_timer = evtimer_new(r->base, cache_redis_on_retry, r);
	if (!r->cmd_timer || !r->retry_timer || (r->addr.unix_socket ? !r->addr.path : !r->addr.host) ||
	    (pw && !r->password)) {
		cache_redis_destroy(r);
		return NULL;
	}
	return r;
}

void cache_redis_start(struct cache_redis *r)
{
	cache_redis_connect(r);
}

void cache_redis_destroy(struct cache_redis *r)
{
	if (!r)
		return;
	r->destroying = true;
	if (r->ac || r->head)
		cache_redis_drop(r, "shutting down");
	if (r->cmd_timer)
		event_free(r->cmd_timer);
	if (r->retry_timer)
		event_free(r->retry_timer);
	cache_conf_addr_deinit(&r->addr);
	free(r->password);
	free(r);
}

void cache_redis_set_limits(struct cache_redis *r, int64_t failure_threshold, int64_t open_for_ms)
{
	r->failure_threshold = failure_threshold;
	r->open_for = open_for_ms;
}

bool cache_redis_usable(const struct cache_redis *r)
{
	return r->state == CACHE_REDIS_READY && r->ac && r->breaker != CACHE_BREAKER_OPEN;
}

enum cache_redis_breaker cache_redis_breaker(const struct cache_redis *r)
{
	return r->breaker;
}

const char *cache_redis_state_name(const struct cache_redis *r)
{
	switch (r->state) {
	case CACHE_REDIS_DOWN: return "down";
	case CACHE_REDIS_CONNECTING: return "connecting";
	default: return "ready";
	}
}

uint64_t cache_redis_errors(const struct cache_redis *r)
{
	return r->errors;
}

int cache_redis_command(struct cache_redis *r, cache_redis_fn cb, void *arg, int argc, const char **argv,
			const size_t *argvlen)
{
	if (!cache_redis_usable(r))
		return -1;
	return cache_redis_send(r, cb, arg, argc, argv, argvlen, r->command_timeout);
}

bool cache_redis_take_restarted(struct cache_redis *r)
{
	bool was = r->restarted;
	r->restarted = false;
	return was;
}
