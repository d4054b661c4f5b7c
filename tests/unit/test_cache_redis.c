/* The read cache's store against a real redis-server on a unix socket in a temp dir: miss ->
 * store -> hit, bumps, entries stored under pre-query versions, flushed or evicted version keys,
 * single flight, the circuit breaker with Redis killed, queued invalidations applied before the
 * first hit after a restart, command timeouts. Skipped when redis-server is not installed. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "../../plugins/cache/cache.h"
#include "../../plugins/cache/cache_conf.h"
#include "log.h"
#include "tap.h"

#define REDIS_BIN "/usr/bin/redis-server"

static char dir[256], sock[300], url[320];
static pid_t redis_pid;
static struct event_base *base;
static struct cache *cache;

static void redis_start(void)
{
	redis_pid = fork();
	if (redis_pid == 0) {
		int fd = open("/dev/null", 1);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(REDIS_BIN, REDIS_BIN, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
		      "--dir", dir, "--dbfilename", "dump.rdb", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		redisContext *rc = redisConnectUnix(sock);
		bool up = rc && !rc->err;
		if (up) {
			redisReply *r = redisCommand(rc, "PING");
			up = r && r->type == REDIS_REPLY_STATUS;
			freeReplyObject(r);
		}
		redisFree(rc);
		if (up)
			return;
		usleep(10000);
	}
	printf("# redis-server did not start\n");
}

static void redis_kill(void)
{
	kill(redis_pid, SIGKILL);
	waitpid(redis_pid, NULL, 0);
	unlink(sock);
}

/* A synchronous command on a fresh connection; returns the reply (caller frees). */
static redisReply *redis_sync(const char *fmt, ...)
{
	redisContext *rc = redisConnectUnix(sock);
	if (!rc || rc->err) {
		redisFree(rc);
		return NULL;
	}
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(rc, fmt, ap);
	va_end(ap);
	redisFree(rc);
	return r;
}

static void redis_sync_ok(const char *fmt, const char *arg)
{
	freeReplyObject(redis_sync(fmt, arg));
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tick(evutil_socket_t fd, short w, void *arg)
{
}

/* Runs the loop until *flag or the deadline; returns *flag. */
static bool run_until(const bool *flag, int64_t ms)
{
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timeval tv = { 0, 5000 };
	event_add(t, &tv);
	int64_t end = now_ms() + ms;
	while (!*flag && now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return *flag;
}

static void run_for(int64_t ms)
{
	bool never = false;
	run_until(&never, ms);
}

struct got {
	bool done;
	struct cache_result res;
	char data[256];
	struct cache_fill *fill;
};

static void on_result(void *arg, const struct cache_result *res)
{
	struct got *g = arg;
	g->done = true;
	g->res = *res;
	g->fill = res->fill;
	if (res->kind == CACHE_HIT) {
		size_t n = res->len < sizeof(g->data) ? res->len : sizeof(g->data);
		memcpy(g->data, res->data, n);
		g->res.data = NULL;
	}
}

static const unsigned char K1[CACHE_KEY_LEN] = { 1 }, K2[CACHE_KEY_LEN] = { 2 }, K3[CACHE_KEY_LEN] = { 3 };

static struct got lookup(const char *db, const char *table, const unsigned char *key)
{
	struct got g = { 0 };
	const char *tables[1] = { table };
	ok(cache_lookup(cache, db, tables, table ? 1 : 0, key, on_result, &g) != NULL, "lookup started");
	ok(!g.done, "no callback inside cache_lookup");
	run_until(&g.done, 3000);
	return g;
}

struct inv {
	bool done;
	enum cache_inval_outcome outcome;
};

static void on_inval(void *arg, enum cache_inval_outcome o)
{
	struct inv *i = arg;
	i->done = true;
	i->outcome = o;
}

static enum cache_inval_outcome invalidate(const char *db, const char *table)
{
	struct inv i = { 0 };
	const char *tables[1] = { table };
	cache_invalidate(cache, db, table ? tables : NULL, table ? 1 : 0, on_inval, &i);
	run_until(&i.done, 3000);
	ok(i.done, "invalidation answered");
	return i.outcome;
}

static bool wait_readable(int64_t ms)
{
	int64_t end = now_ms() + ms;
	while (!cache_readable(cache) && now_ms() < end)
		run_for(10);
	return cache_readable(cache);
}

/* miss -> store -> hit for key/table, storing `val` (binary-safe: len given). */
static void fill(const char *db, const char *table, const unsigned char *key, const char *val, size_t len)
{
	struct got g = lookup(db, table, key);
	is_int(g.res.kind, CACHE_MISS, "miss before the fill");
	if (g.res.kind == CACHE_MISS)
		cache_store(cache, g.fill, val, len, 60000);
	run_for(30);
}

static void basics(void)
{
	static const char bin[] = "row\0bytes\xff\x00end";
	fill("app", "products", K1, bin, sizeof(bin));
	struct got g = lookup("app", "products", K1);
	is_int(g.res.kind, CACHE_HIT, "hit after the store");
	is_int(g.res.len, sizeof(bin), "hit length");
	ok(memcmp(g.data, bin, sizeof(bin)) == 0, "hit returns the stored bytes exactly (NULs included)");

	is_int(invalidate("app", "orders"), CACHE_INVAL_DURABLE, "bump of another table is durable");
	g = lookup("app", "products", K1);
	is_int(g.res.kind, CACHE_HIT, "another table's bump keeps the entry");
	g = lookup("other_db", "products", K1);
	is_int(g.res.kind, CACHE_MISS, "same key in another database is another entry");
	cache_fill_abandon(cache, g.fill);

	is_int(invalidate("app", "products"), CACHE_INVAL_DURABLE, "bump durable");
	g = lookup("app", "products", K1);
	is_int(g.res.kind, CACHE_MISS, "a bumped table misses");
	cache_store(cache, g.fill, "v2", 2, 60000);
	run_for(30);
	g = lookup("app", "products", K1);
	ok(g.res.kind == CACHE_HIT && memcmp(g.data, "v2", 2) == 0, "refilled");

	is_int(invalidate("app", NULL), CACHE_INVAL_DURABLE, "database epoch bump");
	g = lookup("app", "products", K1);
	is_int(g.res.kind, CACHE_MISS, "epoch bump invalidates every table of the database");
	cache_store(cache, g.fill, "v3", 2, 60000);
	run_for(30);
	struct inv i = { 0 };
	cache_invalidate_everything(cache, on_inval, &i);
	run_until(&i.done, 3000);
	ok(i.done && i.outcome == CACHE_INVAL_DURABLE, "global epoch bump");
	g = lookup("app", "products", K1);
	is_int(g.res.kind, CACHE_MISS, "global bump invalidates everything");
	cache_fill_abandon(cache, g.fill);

	/* no tables: depends on the epochs only */
	fill("app", NULL, K3, "x", 1);
	g = lookup("app", NULL, K3);
	is_int(g.res.kind, CACHE_HIT, "statement with no tables hits");

	/* versions are random strings, never counters */
	redisReply *r = redis_sync("GET tether:v:app:products");
	ok(r && r->type == REDIS_REPLY_STRING && r->len == 32, "version is 128 random bits in hex");
	freeReplyObject(r);
	r = redis_sync("TTL tether:v:app:products");
	ok(r && r->type == REDIS_REPLY_INTEGER && r->integer == -1, "versions have no TTL");
	freeReplyObject(r);
}

static void pre_query_versions(void)
{
	/* A write commits while the miss's query runs: its entry goes under the old versions. */
	struct got g = lookup("app", "stock", K2);
	is_int(g.res.kind, CACHE_MISS, "miss");
	is_int(invalidate("app", "stock"), CACHE_INVAL_DURABLE, "concurrent write's bump");
	struct cache_stats before, after;
	cache_get_stats(cache, &before);
	cache_store(cache, g.fill, "stale", 5, 60000);
	run_for(50);
	cache_get_stats(cache, &after);
	is_int(after.stores, before.stores + 1, "the stale result was stored...");
	g = lookup("app", "stock", K2);
	is_int(g.res.kind, CACHE_MISS, "...but under versions nobody reads any more");
	cache_fill_abandon(cache, g.fill);
}

static void flushed_versions(void)
{
	fill("app", "users", K1, "old", 3);
	is_int(invalidate("app", "users"), CACHE_INVAL_DURABLE, "bump");
	fill("app", "users", K1, "new", 3);
	/* the version key is evicted: a fresh random one is created, neither entry is reachable */
	redis_sync_ok("DEL %s", "tether:v:app:users");
	struct got g = lookup("app", "users", K1);
	is_int(g.res.kind, CACHE_MISS, "evicted version key: miss, no old entry resurrected");
	cache_store(cache, g.fill, "newest", 6, 60000);
	run_for(30);
	g = lookup("app", "users", K1);
	ok(g.res.kind == CACHE_HIT && memcmp(g.data, "newest", 6) == 0, "refilled after eviction");

	/* FLUSHALL with an entry key put back afterwards (as if it had survived): unreachable */
	redisReply *keys = redis_sync("KEYS tether:e:*");
	ok(keys && keys->type == REDIS_REPLY_ARRAY && keys->elements > 0, "entries exist");
	size_t n = keys ? keys->elements : 0;
	char **saved = calloc(n + 1, sizeof(*saved));
	for (size_t i = 0; i < n; i++)
		saved[i] = strdup(keys->element[i]->str);
	freeReplyObject(keys);
	redis_sync_ok("FLUSHALL", NULL);
	for (size_t i = 0; i < n; i++)
		freeReplyObject(redis_sync("SET %s resurrected", saved[i]));
	g = lookup("app", "users", K1);
	is_int(g.res.kind, CACHE_MISS, "after FLUSHALL no old entry is reachable");
	cache_fill_abandon(cache, g.fill);
	g = lookup("app", "products", K1);
	is_int(g.res.kind, CACHE_MISS, "nor for another table");
	cache_fill_abandon(cache, g.fill);
	for (size_t i = 0; i < n; i++)
		free(saved[i]);
	free(saved);
}

static void single_flight(void)
{
	struct got a = { 0 }, b = { 0 }, c2 = { 0 };
	const char *t[1] = { "sf" };
	cache_lookup(cache, "app", t, 1, K1, on_result, &a);
	cache_lookup(cache, "app", t, 1, K1, on_result, &b);
	struct cache_lookup *lc = cache_lookup(cache, "app", t, 1, K1, on_result, &c2);
	run_until(&a.done, 3000);
	run_for(50);
	ok(a.done && a.res.kind == CACHE_MISS, "first concurrent lookup is told to run the query");
	ok(!b.done, "the second waits for it");
	cache_lookup_cancel(lc);
	cache_store(cache, a.fill, "shared", 6, 60000);
	run_until(&b.done, 3000);
	ok(b.done && b.res.kind == CACHE_HIT && memcmp(b.data, "shared", 6) == 0, "the waiter gets the result");
	run_for(20);
	ok(!c2.done, "a cancelled waiter is never called");

	/* abandoned fill: the waiter runs the query itself */
	invalidate("app", "sf");
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	cache_lookup(cache, "app", t, 1, K1, on_result, &a);
	cache_lookup(cache, "app", t, 1, K1, on_result, &b);
	run_until(&a.done, 3000);
	run_for(30);
	cache_fill_abandon(cache, a.fill);
	run_until(&b.done, 3000);
	ok(b.res.kind == CACHE_BYPASS && b.res.reason == CACHE_BYPASS_FILL_FAILED, "abandoned fill: waiter bypasses");

	/* slow fill: the waiter gives up after single_flight_wait (300ms here) */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	cache_lookup(cache, "app", t, 1, K2, on_result, &a);
	cache_lookup(cache, "app", t, 1, K2, on_result, &b);
	run_until(&a.done, 3000);
	int64_t t0 = now_ms();
	run_until(&b.done, 3000);
	ok(b.res.kind == CACHE_BYPASS && b.res.reason == CACHE_BYPASS_WAIT_TIMEOUT, "slow fill: waiter times out");
	ok(now_ms() - t0 < 1000, "within the bound");
	cache_store(cache, a.fill, "late", 4, 60000);
	run_for(30);
	struct got g = lookup("app", "sf", K2);
	ok(g.res.kind == CACHE_HIT, "the slow fill still stores");

	/* too large */
	g = lookup("app", "big", K1);
	static char big[5000];
	cache_store(cache, g.fill, big, sizeof(big), 60000);
	run_for(30);
	g = lookup("app", "big", K1);
	is_int(g.res.kind, CACHE_MISS, "results over max_entry_size are not stored");
	cache_fill_abandon(cache, g.fill);
}

static void outage(void)
{
	fill("app", "orders", K3, "before", 6);
	struct got g = lookup("app", "orders", K3);
	is_int(g.res.kind, CACHE_HIT, "hit before the outage");
	freeReplyObject(redis_sync("SAVE"));
	redis_kill();
	run_for(100);

	/* every lookup bypasses fast; invalidations queue */
	int64_t t0 = now_ms();
	g = lookup("app", "orders", K3);
	ok(g.res.kind == CACHE_BYPASS, "redis down: bypass (%s)", cache_bypass_reason_name(g.res.reason));
	ok(now_ms() - t0 < 50, "bypass is fast (%lldms)", (long long)(now_ms() - t0));
	is_int(invalidate("app", "orders"), CACHE_INVAL_QUEUED, "invalidation queued while redis is down");
	struct cache_stats s;
	cache_get_stats(cache, &s);
	is_int(s.pending_tables, 1, "one table pending");
	run_for(700); /* reconnect attempts fail until the breaker opens */
	cache_get_stats(cache, &s);
	is_int(s.circuit, 1, "circuit open after repeated failures");
	t0 = now_ms();
	for (int i = 0; i < 20; i++) {
		g = lookup("app", "orders", K3);
		ok(g.res.kind == CACHE_BYPASS, "open circuit: bypass");
	}
	ok(now_ms() - t0 < 100, "20 bypasses with the circuit open took %lldms", (long long)(now_ms() - t0));

	/* Redis comes back with its data (the old entry and versions): the queued bump must reach
	 * it before any read is served, so the old entry is never seen. */
	redis_start();
	int hits = 0, served = 0;
	int64_t end = now_ms() + 4000;
	while (now_ms() < end && !cache_readable(cache)) {
		struct got q = { 0 };
		const char *t[1] = { "orders" };
		cache_lookup(cache, "app", t, 1, K3, on_result, &q);
		run_until(&q.done, 3000);
		served++;
		if (q.res.kind == CACHE_HIT)
			hits++;
		if (q.res.kind == CACHE_MISS)
			cache_fill_abandon(cache, q.fill);
		run_for(2);
	}
	ok(cache_readable(cache), "readable again after the restart (%d lookups meanwhile)", served);
	is_int(hits, 0, "no hit while queued invalidations were pending");
	g = lookup("app", "orders", K3);
	is_int(g.res.kind, CACHE_MISS, "first lookup after the restart misses: the queued bump was applied");
	cache_fill_abandon(cache, g.fill);
	cache_get_stats(cache, &s);
	ok(s.pending_applied >= 1 && s.pending_tables == 0, "pending applied and empty");
	is_int(s.circuit, 0, "circuit closed");

	/* Restart from an older snapshot: the snapshot holds an old version and the entry stored
	 * under it, both consistent with each other but older than a durable bump. */
	fill("app", "orders", K3, "snap", 4);
	freeReplyObject(redis_sync("SAVE"));
	is_int(invalidate("app", "orders"), CACHE_INVAL_DURABLE, "durable bump after the snapshot");
	fill("app", "orders", K3, "later", 5);
	redis_kill();
	run_for(100);
	redis_start();
	ok(wait_readable(4000), "readable after a restart from an older snapshot");
	g = lookup("app", "orders", K3);
	is_int(g.res.kind, CACHE_MISS, "restart from an older snapshot: the snapshot's entry is not served");
	cache_fill_abandon(cache, g.fill);

	/* restart without data: everything misses, nothing breaks */
	fill("app", "orders", K3, "again", 5);
	redis_kill();
	char dump[320];
	snprintf(dump, sizeof(dump), "%s/dump.rdb", dir);
	unlink(dump);
	run_for(100);
	redis_start();
	ok(wait_readable(4000), "readable after a restart without data");
	g = lookup("app", "orders", K3);
	is_int(g.res.kind, CACHE_MISS, "restart without data: miss");
	cache_fill_abandon(cache, g.fill);
}

static void overflow(void)
{
	fill("other", "x", K1, "o", 1);
	redis_kill();
	run_for(100);
	for (int i = 0; i < 5; i++) {
		char t[16];
		snprintf(t, sizeof(t), "t%d", i);
		is_int(invalidate("app", t), CACHE_INVAL_QUEUED, "queued");
	}
	struct cache_stats s;
	cache_get_stats(cache, &s);
	ok(s.pending_everything, "queue over max_pending becomes \"everything\"");
	freeReplyObject(redis_sync("PING"));
	redis_start();
	ok(wait_readable(8000), "readable after restart");
	struct got g = lookup("other", "x", K1);
	is_int(g.res.kind, CACHE_MISS, "\"everything\" reached every database");
	cache_fill_abandon(cache, g.fill);
}

static void timeouts(void)
{
	fill("app", "slow", K1, "s", 1);
	kill(redis_pid, SIGSTOP);
	int64_t t0 = now_ms();
	struct got g = lookup("app", "slow", K1);
	ok(g.res.kind == CACHE_BYPASS && g.res.reason == CACHE_BYPASS_REDIS_ERROR, "stuck redis: bypass after the timeout");
	ok(now_ms() - t0 < 400, "bounded by command_timeout (%lldms)", (long long)(now_ms() - t0));
	is_int(invalidate("app", "slow"), CACHE_INVAL_QUEUED, "invalidation during the stall is queued");
	kill(redis_pid, SIGCONT);
	ok(wait_readable(8000), "readable once redis answers again");
	g = lookup("app", "slow", K1);
	is_int(g.res.kind, CACHE_MISS, "queued bump applied");
	cache_fill_abandon(cache, g.fill);
}

int main(void)
{
	if (access(REDIS_BIN, X_OK) != 0) {
		printf("1..0 # SKIP %s not installed\n", REDIS_BIN);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, stderr);
	snprintf(dir, sizeof(dir), "/tmp/tether-cache-test-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	snprintf(url, sizeof(url), "unix://%s", sock);
	redis_start();

	base = event_base_new();
	struct cache_conf conf = {
		.redis = url,
		.connect_timeout = 200,
		.command_timeout = 150,
		.key_prefix = "tether:",
		.max_entry_size = 4096,
		.default_ttl = 60000,
		.failure_threshold = 3,
		.open_for = 300,
		.single_flight_wait = 300,
		.max_pending = 3,
	};
	cache = cache_create(base, &conf, NULL);
	ok(cache != NULL, "cache created");
	ok(wait_readable(3000), "connected to redis");

	basics();
	pre_query_versions();
	flushed_versions();
	single_flight();
	outage();
	overflow();
	timeouts();

	struct cache_stats s;
	cache_get_stats(cache, &s);
	ok(s.hits > 0 && s.misses > 0 && s.single_flight_waits > 0 && s.redis_errors > 0, "counters moved");
	cache_destroy(cache);
	event_base_free(base);
	redis_kill();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
