/* The read cache inside the pooler: which client requests are looked up in Redis (a simple Query,
 * or Parse/Bind/Describe/Execute/Sync of one read), replaying a hit byte for byte without a
 * server, capturing what the server answers a miss, remembering what each client's statements
 * write, and holding the ReadyForQuery that ends a writing transaction until the tables it
 * touched are invalidated. Everything here is skipped when the config has no `cache` section. */
#ifndef TETHER_PG_CACHE_H
#define TETHER_PG_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct pg_client;
struct pg_pool;
struct pg_server;
struct pg_catalog;

/* Per pool (NULL without a cache): the statement analyses its clients share and its catalog. */
int pg_cache_pool_init(struct pg_pool *p);
void pg_cache_pool_deinit(struct pg_pool *p);
struct pg_catalog *pg_cache_pool_catalog(const struct pg_pool *p);

/* True while a lookup or dependency question for the client's next request is in flight: its
 * input waits. */
bool pg_cache_busy(const struct pg_client *c);

/* At a request boundary (no message half forwarded): looks at the request at the head of the
 * input. 0: relay it as usual; 1: stop here (a lookup runs, more bytes are needed, or the client
 * was closed). */
int pg_cache_before(struct pg_client *c);

/* The client message of `type` whose first `avail` bytes (all of it for P, C, E, Q up to the
 * size tether reads) are at the front of `in` is being forwarded: record what it prepares,
 * binds and writes. -1 when memory ran out. */
int pg_cache_forward(struct pg_client *c, struct evbuffer *in, uint8_t type, uint32_t len);
/* The head request was answered by tether itself (an error, DEALLOCATE) or dropped. */
void pg_cache_request_done(struct pg_client *c);

/* Server bytes about to be relayed to the client: the first `n` bytes of `in`, which start a
 * message of `type` (start) or continue one. */
void pg_cache_capture(struct pg_client *c, struct evbuffer *in, size_t n, uint8_t type, bool start);
/* The same for bytes tether made up in the server's place (a ParseComplete). */
void pg_cache_capture_bytes(struct pg_client *c, const void *data, size_t n, uint8_t type);

/* The client's ReadyForQuery (status) came from `s`, not yet relayed. Stores a miss's answer;
 * after a write, starts the invalidation and returns 1: then `s` is held (s->held) and
 * pg_server_unhold relays the ReadyForQuery once the invalidation is in Redis (or queued). */
int pg_cache_ready(struct pg_client *c, struct pg_server *s, uint8_t status);

/* Whether the client's statements since its last commit may have written something. */
bool pg_cache_has_writes(const struct pg_client *c);
/* A server whose client left while a write ran has answered: that write is over (committed or
 * not), so everything in the database is invalidated. */
void pg_cache_orphan_done(struct pg_pool *p);

/* The client is closing: lookups and questions are cancelled, a fill abandoned; invalidations
 * still happen. */
void pg_cache_client_close(struct pg_client *c);

#endif
