/* The cache's admin routes (GET /admin/cache, POST /admin/cache/purge) and its metrics. */
#ifndef TETHER_CACHE_ADMIN_H
#define TETHER_CACHE_ADMIN_H

struct cache;
struct core;

/* Mounts the routes on the admin server and registers the metrics collector. 0, or -1. */
int cache_admin_start(struct cache *c, struct core *core);
void cache_admin_stop(struct cache *c, struct core *core);

#endif
