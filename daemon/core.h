/* What the core exposes to plugins: the event base, listener hand-off, HTTP route mounting,
 * metrics registration, logging, the admin endpoint's routes, the upstream HTTP client and the
 * Google credentials. Plugins see nothing else of the daemon. */
#ifndef TETHER_CORE_H
#define TETHER_CORE_H

#include "conf.h"
#include "http_server.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"

struct core;
struct http_client;
struct credentials;

struct event_base *core_base(struct core *c);
struct metrics *core_metrics(struct core *c);

/* Common listener keys, embedded by every section that listens (admin, http, postgres). */
struct core_listen_conf {
	struct conf_strlist listen;
	int socket_mode;
	char *socket_owner;
	char *socket_group;
	bool allow_remote;
};
/* Key table entries for struct core_listen_conf at `base` offset inside a section struct. */
#define CORE_LISTEN_KEYS(type, field, default_listen)                                                    \
	{ "listen", CONF_STRLIST, 0, offsetof(type, field.listen), default_listen, 0, 0, NULL, NULL,    \
	  "Listener URLs: unix:///path/to/socket or tcp://host:port (host defaults to 127.0.0.1)." },   \
	{ "socket_mode", CONF_FILEMODE, 0, offsetof(type, field.socket_mode), "0660", 0, 07777, NULL,  \
	  NULL, "File mode of unix socket files." },                                                   \
	{ "socket_owner", CONF_STRING, 0, offsetof(type, field.socket_owner), NULL, 0, 0, NULL, NULL,  \
	  "User that owns unix socket files (default: the daemon's user)." },                          \
	{ "socket_group", CONF_STRING, 0, offsetof(type, field.socket_group), NULL, 0, 0, NULL, NULL,  \
	  "Group that owns unix socket files (default: the daemon's group)." },                        \
	{ "allow_remote", CONF_BOOL, 0, offsetof(type, field.allow_remote), "false", 0, 0, NULL, NULL, \
	  "Allow tcp listeners on non-loopback addresses (logged as a warning)." }

/* Validates a listen list (URL syntax) from a section's conf validate callback. */
int core_listen_conf_validate(const struct core_listen_conf *lc, const void *obj, struct conf_errors *errs);

/* Opens every listener of `lc` for `owner` (also the systemd FileDescriptorName matched) and
 * hands accepted sockets to `cb`. The core pauses them on drain and closes them at exit.
 * Returns 0, or -1 after logging which URL failed and why. */
int core_listen(struct core *c, const char *owner, const struct core_listen_conf *lc, uint16_t default_port,
		listener_accept_fn cb, void *arg);

/* The HTTP server behind http.listen, where plugins mount their routes; NULL when the config
 * has no `http` section (a plugin that needs it reports that as a start error). */
struct http_server *core_http(struct core *c);
/* The admin endpoint's server, where plugins mount their /admin/<name> routes at start. */
struct http_server *core_admin(struct core *c);
/* For admin routes: true when the request carries admin.auth_token (or none is configured);
 * otherwise answers 401 itself and returns false. */
bool core_admin_authorized(struct core *c, struct http_request *r);

/* The shared upstream HTTP client (libcurl on the loop; the `upstream` section), created at
 * start before any plugin. Never NULL while plugins run. */
struct http_client *core_http_client(struct core *c);
/* The Google credentials (the `credentials` section; see credentials.h for getting a token).
 * Never NULL while plugins run: without credentials every token request fails with "no
 * credentials configured", which a forwarding plugin answers as 503. */
struct credentials *core_credentials(struct core *c);

#endif
