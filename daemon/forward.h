/* The forwarding engine the Google API plugins (storage, pubsub) share: proxies a request that
 * arrived on the HTTP listeners to `endpoint` + the same path and query, with tether's bearer
 * token for the plugin's scopes instead of any the app sent, hop-by-hop headers handled per
 * RFC 9110, bodies streamed both ways with back-pressure, the request id sent upstream, and
 * errors of tether's own in Google's JSON shape. Retries are the upstream HTTP client's job;
 * the plugin says which requests are idempotent.
 *
 * A plugin: fills a struct forward_conf from its section (FORWARD_CONF_KEYS), creates one
 * forward with a classify callback (route label for metrics, idempotency, or an error status
 * for paths it does not serve), mounts its prefixes, and hands reload/drain/ready/stop on. */
#ifndef TETHER_FORWARD_H
#define TETHER_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct core;
struct forward;
struct http_request;

enum forward_auth { FORWARD_AUTH_PASS = 0, FORWARD_AUTH_STRIP, FORWARD_AUTH_REJECT };
extern const char *const forward_auth_names[]; /* "pass", "strip", "reject" */

/* A forwarding plugin's section (the plugin's own struct may embed it first). */
struct forward_conf {
	char *endpoint;             /* scheme://host[:port][/base], no trailing slash needed */
	int auth_header;            /* enum forward_auth: what to do with the app's Authorization */
	bool token;                 /* inject tether's bearer token (false: emulators) */
	struct conf_strlist scopes; /* OAuth scopes of that token */
	uint64_t max_body;          /* request bodies over this get 413 */
	int64_t timeout;            /* ms, whole upstream request incl. retries; 0 = upstream.timeout */
	char *public_url;           /* base URL the app reaches tether at (Location rewriting);
				       NULL = http://<the request's Host> */
};

/* Key table entries for struct forward_conf at offset `field` of `type`. */
#define FORWARD_CONF_KEYS(type, field, def_endpoint, def_scopes, def_max_body)                               \
	{ "endpoint", CONF_STRING, CONF_RELOAD, offsetof(type, field.endpoint), def_endpoint, 0, 0, NULL, NULL,    \
	  "Upstream base URL (scheme://host[:port]); requests go to it with their path and query unchanged. "   \
	  "TLS is verified against upstream.ca_file or the system store." },                                   \
	{ "auth_header", CONF_ENUM, CONF_RELOAD, offsetof(type, field.auth_header), "strip", 0, 0,                \
	  forward_auth_names, NULL,                                                                          \
	  "An Authorization header the app sent: strip (drop it, send tether's token), pass (send the app's " \
	  "as is and no token of tether's) or reject (answer 400)." },                                         \
	{ "token", CONF_BOOL, CONF_RELOAD, offsetof(type, field.token), "true", 0, 0, NULL, NULL,                 \
	  "Send tether's bearer token (from the credentials section) with every request; false for "          \
	  "endpoints that take none, such as an emulator." },                                                  \
	{ "scopes", CONF_STRLIST, CONF_RELOAD, offsetof(type, field.scopes), def_scopes, 0, 0, NULL, NULL,        \
	  "OAuth scopes of the injected token (the same list as credentials.scopes shares its cache)." },      \
	{ "max_body", CONF_SIZE, 0, offsetof(type, field.max_body), def_max_body, 0, 0, NULL, NULL,               \
	  "Largest request body forwarded; larger ones get 413 (0: no limit)." },                                            \
	{ "timeout", CONF_DURATION, CONF_RELOAD, offsetof(type, field.timeout), "0s", 0, 0, NULL, NULL,           \
	  "Bound on one upstream request including retries (0: upstream.timeout). Keep it 0 or generous "     \
	  "where large bodies stream." },                                                                      \
	{ "public_url", CONF_STRING, CONF_RELOAD, offsetof(type, field.public_url), NULL, 0, 0, NULL, NULL,       \
	  "Base URL apps reach tether at, for rewriting upstream Location headers (resumable upload "          \
	  "sessions); default http://<the request's Host header>." }

/* Checks endpoint and public_url syntax (from a section's validate callback). */
int forward_conf_validate(const struct forward_conf *fc, const void *obj, struct conf_errors *errs);

/* What the plugin decided about one request. */
struct forward_call {
	const char *route; /* metrics label (a literal): "object", "upload", "topics"... */
	bool idempotent;   /* safe to send twice: the upstream client may retry it */
};

/* 0: forward with `call` filled. Otherwise the HTTP status tether answers itself (404 for a
 * path the plugin does not serve...) with `err` as the message. */
typedef int (*forward_classify_fn)(void *arg, struct http_request *r, struct forward_call *call, char *err,
				   size_t errlen);

struct forward_spec {
	const char *name; /* "storage": log component, upstream and metric name prefix (literal) */
	forward_classify_fn classify;
	void *arg;
	bool rewrite_location; /* Location headers on the endpoint are rewritten to public_url */
};

/* NULL after logging why. `conf` must stay valid until forward_set_conf replaces it. Registers
 * tether_<name>_requests_total{route,code}, _upstream_seconds{route}, _bytes_in_total,
 * _bytes_out_total, _token_waits_total, _token_failures_total, _errors_total{kind}. */
struct forward *forward_create(struct core *core, const struct forward_spec *spec, const struct forward_conf *conf);
/* Mounts a route prefix on the HTTP listeners (copied). 0, or -1 after logging. */
int forward_mount(struct forward *f, const char *prefix, const char *route_name);
/* Reload: new requests use `conf`; those in flight keep what they started with. */
void forward_set_conf(struct forward *f, const struct forward_conf *conf);
/* done(arg) once no request is in flight (possibly at once). */
void forward_drain(struct forward *f, void (*done)(void *arg), void *arg);
/* Not ready while the token this forward needs cannot be had (credentials' reason). */
bool forward_ready(struct forward *f, char *reason, size_t len);
size_t forward_active(const struct forward *f);
/* Unmounts, cancels requests in flight (their clients are left to the server) and frees. */
void forward_destroy(struct forward *f);

/* Helpers for classify callbacks. Value of query parameter `name` in `query` (no decoding) into
 * buf; true when present. */
bool forward_query_param(const char *query, const char *name, char *buf, size_t len);

/* Pure pieces, exposed for unit tests. */
/* True for a hop-by-hop header name (RFC 9110 7.6.1) or one named in `connection` (the
 * message's Connection header value, may be NULL). */
bool forward_hop_by_hop(const char *name, const char *connection);
/* What to pass forward_hop_by_hop for a message's Connection value: NULL when it names no
 * header beyond the hop-by-hop list (absent, or just "keep-alive", the usual value), so the
 * value is not searched once per header. */
const char *forward_connection_listed(const char *connection);
/* `location` rewritten onto `public_base` when it starts with `endpoint` (scheme and host
 * case-insensitive, followed by '/', '?' or the end); NULL when it does not (malloc'd). */
char *forward_rewrite_location(const char *location, const char *endpoint, const char *public_base);

#endif
