/* The cache's one Redis connection (hiredis async on the event loop): connects and
 * authenticates, bounds every command by a timeout, reconnects with backoff, and keeps a
 * circuit breaker that fails calls fast while Redis is unhealthy. */
#ifndef TETHER_CACHE_REDIS_H
#define TETHER_CACHE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache_conf.h"
#include "log.h"

struct event_base;
struct redisReply;
struct cache_redis;

enum cache_redis_breaker { CACHE_BREAKER_CLOSED = 0, CACHE_BREAKER_OPEN, CACHE_BREAKER_HALF_OPEN };

struct cache_redis_opts {
	struct event_base *base;
	const struct cache_conf_addr *addr; /* copied */
	const char *password;               /* overrides addr->password; copied */
	int64_t connect_timeout_ms, command_timeout_ms;
	int64_t failure_threshold, open_for_ms;
	const struct log_src *log;
	/* The connection became usable (handshake done); called from the loop. */
	void (*on_ready)(void *arg);
	void *arg;
};

/* `reply` is NULL on failure (err says why: timeout, connection lost, circuit open); a Redis
 * error reply arrives as a reply of type REDIS_REPLY_ERROR with err set too. The reply is freed
 * after the callback returns. */
typedef void (*cache_redis_fn)(void *arg, struct redisReply *reply, const char *err);

struct cache_redis *cache_redis_create(const struct cache_redis_opts *o);
/* Starts connecting. */
void cache_redis_start(struct cache_redis *r);
/* Fails every command in flight (callbacks run with NULL) and frees. */
void cache_redis_destroy(struct cache_redis *r);
void cache_redis_set_limits(struct cache_redis *r, int64_t failure_threshold, int64_t open_for_ms);

/* True when commands may be sent: connected, handshake done, breaker not open. */
bool cache_redis_usable(const struct cache_redis *r);
enum cache_redis_breaker cache_redis_breaker(const struct cache_redis *r);
const char *cache_redis_state_name(const struct cache_redis *r);
uint64_t cache_redis_errors(const struct cache_redis *r);

/* True once after the handshake saw a different run_id than the previous connection: Redis
 * restarted (maybe from an older snapshot) or failed over to a replica that may lag, so
 * versions may have gone back in time together with their entries. */
bool cache_redis_take_restarted(struct cache_redis *r);

/* Sends one command. Returns 0 when sent (cb runs exactly once, never inside this call), or -1
 * when Redis is not usable (cb never runs). */
int cache_redis_command(struct cache_redis *r, cache_redis_fn cb, void *arg, int argc, const char **argv,
			const size_t *argvlen) __attribute__((warn_unused_result));

#endif
