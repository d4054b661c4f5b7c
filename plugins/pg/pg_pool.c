/* Pools: one per configured database. Idle servers are reused most-recently-used first, clients
 * that find none wait in FIFO order, new servers are opened up to pool_size, and a server that
 * cannot be reached is retried with backoff while waiting clients keep their place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "pg_internal.h"
#include "pg_cache.h"

static void pg_pool_on_retry(evutil_socket_t fd, short what, void *arg);

int pg_pools_create(struct pg *pg)
{
	const struct conf_array *dbs = &pg->conf->databases;
	pg->pools = calloc(dbs->n ? dbs->n : 1, sizeof(struct pg_pool));
	if (!pg->pools)
		return -1;
	struct metric *wait = metrics_histogram(core_metrics(pg->core), "pg_client_wait_seconds",
						"Time clients waited for a server.", "pool", NULL, 0);
	for (size_t i = 0; i < dbs->n; i++) {
		struct pg_pool *p = &pg->pools[i];
		p->pg = pg;
		p->db = p->db_boot = CONF_ARRAY_AT(dbs, struct pg_conf_db, i);
		p->name = strdup(p->db->name);
		p->retry_ev = evtimer_new(core_base(pg->core), pg_pool_on_retry, p);
		p->m_wait = metrics_series(wait, p->name);
	}
	pg->npools = dbs->n;
	return 0;
}

void pg_pools_destroy(struct pg *pg)
{
	for (size_t i = 0; i < pg->npools; i++) {
		struct pg_pool *p = &pg->pools[i];
		pg_pool_close_all(p, "shutting down");
		pg_cache_pool_deinit(p);
		pg_params_clear(&p->params);
		free(p->login_msgs);
		free(p->login_off);
		pg_stmt_registry_free(&p->stmts);
		OPENSSL_cleanse(&p->scram_keys, sizeof(p->scram_keys));
		event_free(p->retry_ev);
		free(p->name);
	}
	free(pg->pools);
	pg->pools = NULL;
	pg->npools = 0;
}

struct pg_pool *pg_pool_find(struct pg *pg, const char *name)
{
	for (size_t i = 0; i < pg->npools; i++)
		if (strcmp(pg->pools[i].name, name) == 0)
			return &pg->pools[i];
	return NULL;
}

static void pg_pool_grow(struct pg_pool *p)
{
	if (p->nservers >= (size_t)p->db->pool_size || p->consecutive_failures > 0)
		return; /* full, or backing off: the retry timer opens the next one */
	pg_server_connect(p);
}

/* Closes every server of the pool (shutdown: lent ones too). */
void pg_pool_close_all(struct pg_pool *p, const char *why)
{
	while (p->servers)
		pg_server_close(p->servers, why);
}

static void pg_pool_wait_append(struct pg_pool *p, struct pg_client *c)
{
	c->next = NULL;
	if (p->wait_tail)
		p->wait_tail->next = c;
	else
		p->wait_head = c;
	p->wait_tail = c;
	p->nwaiting++;
}

void pg_pool_unwait(struct pg_pool *p, struct pg_client *c)
{
	struct pg_client *prev = NULL;
	for (struct pg_client *it = p->wait_head; it; prev = it, it = it->next) {
		if (it != c)
			continue;
		if (prev)
			prev->next = it->next;
		else
			p->wait_head = it->next;
		if (p->wait_tail == it)
			p->wait_tail = prev;
		p->nwaiting--;
		c->next = NULL;
		return;
	}
	for (struct pg_client **pp = &p->login_head; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			c->next = NULL;
			return;
		}
	}
}

static void pg_pool_give(struct pg_pool *p, struct pg_server *s, struct pg_client *c)
{
	if (c->wait_start.tv_sec) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		metrics_observe(p->m_wait, (double)(now.tv_sec - c->wait_start.tv_sec) +
						   (double)(now.tv_nsec - c->wait_start.tv_nsec) / 1e9);
		c->wait_start.tv_sec = 0;
	}
	p->nactive++;
	pg_server_link(s, c);
	pg_client_linked(c);
}

void pg_pool_grow_for_waiters(struct pg_pool *p)
{
	while (!p->pg->draining && !p->paused && p->nwaiting > p->nconnecting &&
	       p->nservers < (size_t)p->db->pool_size && p->consecutive_failures == 0)
		if (!pg_server_connect(p))
			break;
}

/* A server idle longer than server_check_delay runs server_check_query before it is lent; the
 * client waits at the head of the queue meanwhile. True when that check started. */
static bool pg_pool_check(struct pg_pool *p, struct pg_server *s, struct pg_client *c)
{
	const struct pg_conf *pc = p->pg->conf;
	if (!pc->server_check_delay || !pc->server_check_query || !*pc->server_check_query ||
	    (time(NULL) - s->last_used) * 1000 < pc->server_check_delay)
		return false;
	s->state = PG_SERVER_RESETTING;
	p->nactive++;
	if (pgproto_put_query(bufferevent_get_output(s->bev), pc->server_check_query) != 0 ||
	    pg_expect_push(s, PG_EXP_QUERY_DROP, NULL) != 0) {
		pg_server_close(s, "out of memory");
		return false;
	}
	p->checks++;
	clock_gettime(CLOCK_MONOTONIC, &c->wait_start);
	c->state = PG_CLIENT_WAITING;
	c->next = p->wait_head;
	p->wait_head = c;
	if (!p->wait_tail)
		p->wait_tail = c;
	p->nwaiting++;
	return true;
}

void pg_pool_acquire(struct pg_pool *p, struct pg_client *c)
{
	while (p->idle && !p->paused) {
		struct pg_server *s = p->idle;
		p->idle = s->next;
		s->next = NULL;
		p->nidle--;
		if (pg_pool_check(p, s, c))
			return;
		if (s->state == PG_SERVER_CLOSED)
			continue;
		pg_pool_give(p, s, c);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &c->wait_start);
	c->state = PG_CLIENT_WAITING;
	pg_pool_wait_append(p, c);
	if (!p->paused && p->nwaiting > p->nconnecting)
		pg_pool_grow(p);
}

/* A server logged in or came back from a client: serve the first waiter or go idle. */
static void pg_pool_file(struct pg_pool *p, struct pg_server *s)
{
	if (p->pg->draining && !p->wait_head) {
		pg_server_close(s, "draining");
		return;
	}
	if (p->wait_head && !p->paused) {
		struct pg_client *c = p->wait_head;
		p->wait_head = c->next;
		if (!p->wait_head)
			p->wait_tail = NULL;
		p->nwaiting--;
		c->next = NULL;
		pg_pool_give(p, s, c);
		return;
	}
	s->state = PG_SERVER_IDLE;
	s->last_used = time(NULL);
	s->next = p->idle;
	p->idle = s;
	p->nidle++;
	pg_maybe_drained(p->pg);
}

int pg_pool_login_msgs(struct pg_pool *p)
{
	if (p->login_msgs)
		return 0;
	if (!p->have_params)
		return -1;
	/* the same builders as for a client's own values, so that the bytes are the same */
	struct evbuffer *b = evbuffer_new();
	uint32_t *off = malloc(((size_t)p->params.n + 1) * sizeof(*off));
	int rc = b && off ? pgproto_put_auth_ok(b) : -1;
	for (uint32_t i = 0; rc == 0 && i < p->params.n; i++) {
		off[i] = (uint32_t)evbuffer_get_length(b);
		rc = pgproto_put_parameter_status(b, p->params.v[i].name, p->params.v[i].value);
	}
	unsigned char *msgs = NULL;
	if (rc == 0) {
		size_t n = evbuffer_get_length(b);
		off[p->params.n] = (uint32_t)n;
		msgs = malloc(n);
		if (msgs)
			evbuffer_copyout(b, msgs, n);
	}
	if (b)
		evbuffer_free(b);
	if (!msgs) {
		free(off);
		return -1;
	}
	p->login_msgs = msgs;
	p->login_off = off;
	p->login_app = p->params.n;
	for (uint32_t i = 0; i < p->params.n; i++)
		if (strcmp(p->params.v[i].name, "application_name") == 0)
			p->login_app = i;
	return 0;
}

void pg_pool_server_ready(struct pg_pool *p, struct pg_server *s)
{
	p->consecutive_failures = 0;
	if (!p->have_params) {
		for (uint32_t i = 0; i < s->params.n; i++)
			(void)!pg_params_set(&p->params, s->params.v[i].name, s->params.v[i].value);
		p->have_params = true;
	}
	/* clients that were waiting to learn the server parameters finish logging in */
	while (p->login_head) {
		struct pg_client *c = p->login_head;
		p->login_head = c->next;
		c->next = NULL;
		pg_login_done(c);
	}
	pg_pool_file(p, s);
}

void pg_pool_release(struct pg_pool *p, struct pg_server *s, bool reusable)
{
	s->client = NULL;
	if (s->state == PG_SERVER_ACTIVE || s->state == PG_SERVER_RESETTING)
		p->nactive--;
	s->state = PG_SERVER_IDLE;
	time_t now = time(NULL);
	if (!reusable || s->tx_status != 'I' || s->pending_sync != 0 || s->relay_remaining != 0) {
		p->nactive++; /* pg_server_close counts it down from active */
		s->state = PG_SERVER_ACTIVE;
		char why[160];
		snprintf(why, sizeof(why), "released in the middle of a transaction (status %c, %u answers pending%s)",
			 s->tx_status ? s->tx_status : '?', s->pending_sync, s->relay_remaining ? ", mid-message" : "");
		pg_server_close(s, why);
		return;
	}
	if (p->db->server_lifetime && (now - s->created) * 1000 >= p->db->server_lifetime) {
		p->nactive++;
		s->state = PG_SERVER_ACTIVE;
		pg_server_close(s, "server_lifetime reached");
		return;
	}
	pg_pool_file(p, s);
}

static void pg_pool_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct pg_pool *p = arg;
	if ((p->wait_head || p->login_head) && p->nconnecting == 0 && p->nservers < (size_t)p->db->pool_size)
		pg_server_connect(p);
}

void pg_pool_server_failed(struct pg_pool *p, struct pg_server *s, const char *why)
{
	p->consecutive_failures++;
	metrics_add(metrics_series(p->pg->m_errors, p->name, "server_connect"), 1);
	/* Clients still logging in cannot proceed without a server: tell them now. */
	while (p->login_head && !p->have_params) {
		struct pg_client *c = p->login_head;
		p->login_head = c->next;
		c->next = NULL;
		pg_client_fail(c, "08006", "tether could not connect to the database server: %s", why);
	}
	if (p->wait_head || p->login_head) {
		int shift = p->consecutive_failures < 10 ? p->consecutive_failures : 10;
		int64_t ms = 100LL << (shift - 1);
		if (ms > p->pg->conf->server_connect_backoff_max)
			ms = p->pg->conf->server_connect_backoff_max;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
		evtimer_add(p->retry_ev, &tv);
		log_warn(&p->pg->log, "pool %s: cannot reach the server (%s); retrying in %lldms", p->name, why,
			 (long long)ms);
	}
}

/* Frees connections closed during callbacks, after the callbacks returned. */
static void pg_pool_on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct pg *pg = arg;
	while (pg->dead_servers) {
		struct pg_server *s = pg->dead_servers;
		pg->dead_servers = s->next;
		pg_server_free(s);
	}
	while (pg->dead_clients) {
		struct pg_client *c = pg->dead_clients;
		pg->dead_clients = c->next;
		pg_client_free(c);
	}
}

void pg_pool_reap(struct pg *pg)
{
	if (!pg->reap_ev)
		pg->reap_ev = event_new(core_base(pg->core), -1, 0, pg_pool_on_reap, pg);
	event_active(pg->reap_ev, 0, 0);
}

void pg_pool_reap_now(struct pg *pg)
{
	pg_pool_on_reap(-1, 0, pg);
	if (pg->reap_ev)
		event_free(pg->reap_ev);
	pg->reap_ev = NULL;
}
