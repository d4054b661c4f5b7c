/* Listeners: parse `unix:///path` and `tcp://host:port` URLs, bind them (socket file mode/owner,
 * stale-socket detection, loopback-only unless allowed) or adopt sockets passed by systemd, and
 * hand accepted connections to the owner's callback on the event loop. */
#ifndef TETHER_LISTENER_H
#define TETHER_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/util.h>

struct event_base;

enum listener_kind { LISTENER_UNIX, LISTENER_TCP };

struct listener_addr {
	enum listener_kind kind;
	char path[108]; /* LISTENER_UNIX */
	char host[256]; /* LISTENER_TCP: literal address or name; "" = 127.0.0.1 */
	uint16_t port;  /* LISTENER_TCP */
};

/* Parses a listener URL. `default_port` is used when a tcp URL has none (0 = port required). */
int listener_parse_url(const char *url, uint16_t default_port, struct listener_addr *out, char *err,
		       size_t errlen);

struct listener_opts {
	int mode;           /* unix socket file mode; 0 = 0660 */
	const char *owner;  /* user name or NULL */
	const char *group;  /* group name or NULL */
	bool allow_remote;  /* permit binding a non-loopback tcp address */
	const char *name;   /* systemd FileDescriptorName this owner matches (e.g. "http") */
	int backlog;        /* 0 = 511 */
};

typedef void (*listener_accept_fn)(evutil_socket_t fd, const struct sockaddr *sa, int salen, void *arg);

struct listener;

/* Binds (or adopts from systemd) the listener for `url`. NULL with `err` filled on failure. */
struct listener *listener_create(struct event_base *base, const char *url, const struct listener_opts *opts,
				 listener_accept_fn cb, void *arg, char *err, size_t errlen);
/* Adopts the next unused socket systemd passed under FileDescriptorName `name`, or NULL. */
struct listener *listener_adopt_named(struct event_base *base, const char *name, listener_accept_fn cb, void *arg);
/* Draining: closes the listening socket, so new clients are refused at once instead of waiting
 * in the backlog (a socket systemd passed in stays open in systemd, queueing for the next
 * instance). The socket file stays until listener_destroy. */
void listener_stop(struct listener *l);
/* Closes the socket; removes the unix socket file when this process created it. */
void listener_destroy(struct listener *l);
const char *listener_url(const struct listener *l);
bool listener_inherited(const struct listener *l);

/* Reads LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES once at start-up and keeps the sockets for
 * listener_create to adopt; returns how many were passed. Sockets never adopted are closed by
 * listener_inherited_close_unused() with a warning. */
int listener_inherit_systemd(void);
void listener_inherited_close_unused(void);

#endif
