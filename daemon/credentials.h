/* Google credentials in the core: one credential (chosen by the `credentials` section, ADC order
 * for `auto`) and a token cache per scope set (access tokens) or audience (ID tokens). Each cache
 * refreshes ahead of expiry with jitter, keeps exactly one fetch in flight however many callers
 * wait, bounds every wait by fetch_timeout, backs off after failures and keeps serving the old
 * token while it is still valid. Tokens, keys and refresh tokens never reach logs, errors or
 * metrics.
 *
 * How a caller (a forwarding plugin) gets a token:
 *
 *     const char *tok = credentials_token_now(creds, scopes);   // hot path, no wait
 *     if (tok) { use it now (copy it if it must outlive this loop callback) }
 *     else w = credentials_get_token(creds, scopes, on_token, ctx);
 *     ...
 *     on_token(ctx, token, error): token != NULL: use it; else answer 503 with `error`.
 *     If the client goes away first: credentials_wait_cancel(w) (then no callback runs).
 *
 * The callback of credentials_get_token NEVER runs synchronously inside the call: always from
 * the loop, exactly once, unless cancelled first. After it ran the handle is gone. */
#ifndef TETHER_CREDENTIALS_H
#define TETHER_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct event_base;
struct metrics;
struct http_client;
struct credentials_conf;
struct credentials;
struct credentials_wait;

/* token: the bearer token (NULL on failure), valid only during the call (copy it to keep it).
 * error: NULL on success, else one human sentence without any secret, e.g. "no credentials
 * configured (credentials.source is none)" or "timed out after 10s waiting for an access token
 * from the metadata server at ...: <last error>". Callers answer it as a 503. */
typedef void (*credentials_token_fn)(void *arg, const char *token, const char *error);

/* Resolves the source (reading key files, the ADC chain, the static token) from `conf` (NULL =
 * no credentials, like source none). The conf is copied. NULL after logging a clear error that
 * names the file or setting at fault (never its secret contents). `http` is needed by every
 * source that fetches (may be NULL only with static / none); `metrics` may be NULL. */
struct credentials *credentials_create(struct event_base *base, struct http_client *http, struct metrics *metrics,
				       const struct credentials_conf *conf);
/* Starts the background fetch of the default scopes (credentials.prefetch). */
void credentials_start(struct credentials *cr);
/* Cancels fetches and frees everything. Waiters still queued are dropped without a callback:
 * their owners (plugins) must have cancelled them when they stopped. */
void credentials_destroy(struct credentials *cr);

/* false when source is none (every request for a token fails). */
bool credentials_configured(const struct credentials *cr);
/* "metadata", "service_account", "authorized_user", "static" or "none". */
const char *credentials_source_name(const struct credentials *cr);
/* The service account's email when known (key file; metadata once asked), else NULL. */
const char *credentials_email(const struct credentials *cr);

/* An access token for `scopes` (space or comma separated; NULL or "" = credentials.scopes).
 * Returns a handle for credentials_wait_cancel, or NULL (out of memory; no callback will run). */
struct credentials_wait *credentials_get_token(struct credentials *cr, const char *scopes, credentials_token_fn cb,
					       void *arg);
/* An ID token (JWT) whose audience is `audience` (metadata: /identity?format=full; service
 * account: JWT-bearer grant with target_audience). Same contract as credentials_get_token. */
struct credentials_wait *credentials_get_id_token(struct credentials *cr, const char *audience,
						  credentials_token_fn cb, void *arg);
/* Forgets a waiter: its callback will not run. Only before the callback has run. */
void credentials_wait_cancel(struct credentials_wait *w);

/* The hot path: the cached access token for `scopes` when it is valid for a while yet, else
 * NULL (and a fetch is started if none is running). The pointer is valid until control returns
 * to the loop. Never blocks, never calls back. */
const char *credentials_token_now(struct credentials *cr, const char *scopes);

/* An upstream answered 401 to `token`: drop it from its cache (if it is still the cached one)
 * so the next request fetches a fresh one. `token` NULL drops whatever is cached for `scopes`. */
void credentials_invalidate(struct credentials *cr, const char *scopes, const char *token);

/* For a plugin's ready callback: true once a token for the default scopes was obtained and is
 * still valid, or the source is static; false with a reason (the last error) otherwise. The
 * core's own /readyz does not include credentials: a sidecar whose token source is briefly
 * down still pools PostgreSQL connections. */
bool credentials_ready(struct credentials *cr, char *reason, size_t len);

/* State for /admin/credentials: source, origin, email, per cache its scopes, expires_in,
 * refresh counts, waiters and last error. Never a token. New reference. */
json_t *credentials_status(struct credentials *cr);

#endif
