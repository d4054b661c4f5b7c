/* Pool upkeep once a second: idle servers past server_lifetime or server_idle_timeout are
 * closed (keeping min_idle), pools are topped up to min_idle, and a pool that failed to connect
 * with nobody waiting is retried so it recovers by itself. */
#include <event2/event.h>

#include "pg_internal.h"

static void pg_janitor_pool(struct pg_pool *p, time_t now)
{
	const struct pg_conf_db *db = p->db;
	struct pg_server **pp = &p->idle;
	while (*pp) {
		struct pg_server *s = *pp;
		bool old = db->server_lifetime && (now - s->created) * 1000 >= db->server_lifetime;
		bool unused = db->server_idle_timeout && (now - s->last_used) * 1000 >= db->server_idle_timeout &&
			      p->nservers > (size_t)db->min_idle;
		if (old || unused) {
			pg_server_close(s, old ? "server_lifetime reached" : "server_idle_timeout reached");
			continue; /* it left the list: *pp is the next one */
		}
		pp = &s->next;
	}
	if (p->pg->draining || p->paused)
		return;
	size_t want = (size_t)(db->min_idle < db->pool_size ? db->min_idle : db->pool_size);
	if (p->consecutive_failures > 0) {
		/* backing off: one attempt at a time, and none while the retry timer is set */
		if (p->nconnecting == 0 && !evtimer_pending(p->retry_ev, NULL) && p->nservers < want)
			pg_server_connect(p);
		return;
	}
	while (p->nidle + p->nconnecting < want && p->nservers < (size_t)db->pool_size)
		if (!pg_server_connect(p))
			break;
}

static void pg_janitor_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pg *pg = arg;
	time_t now = time(NULL);
	for (size_t i = 0; i < pg->npools; i++)
		pg_janitor_pool(&pg->pools[i], now);
}

int pg_janitor_start(struct pg *pg)
{
	pg->janitor_ev = event_new(core_base(pg->core), -1, EV_PERSIST, pg_janitor_tick, pg);
	if (!pg->janitor_ev)
		return -1;
	struct timeval tv = { 1, 0 };
	event_add(pg->janitor_ev, &tv);
	pg_janitor_tick(-1, 0, pg); /* min_idle servers from the start */
	return 0;
}

void pg_janitor_stop(struct pg *pg)
{
	if (pg->janitor_ev)
		event_free(pg->janitor_ev);
	pg->janitor_ev = NULL;
}
