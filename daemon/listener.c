/* Listeners: turn `unix:///path` and `tcp://host:port` URLs into listening sockets (or adopt the
 * ones systemd passed), refuse to steal a live unix socket or to expose a tcp port beyond loopback
 * by accident, and hand accepted connections to their owner on the event loop. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <systemd/sd-daemon.h>

#include "log.h"

static const struct log_src listener_log = { "listener", 0 };

struct listener {
	struct evconnlistener *evl;
	struct event *retry; /* re-enables accepting after EMFILE */
	char *url;
	struct listener_addr addr;
	bool inherited;
	bool created_file; /* unix: we created the socket file and remove it at exit */
	dev_t dev;
	ino_t ino;
	bool paused;
	listener_accept_fn cb;
	void *arg;
};

/* --- URL parsing --- */

int listener_parse_url(const char *url, uint16_t default_port, struct listener_addr *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(url, "unix://", 7) == 0) {
		const char *path = url + 7;
		if (path[0] != '/') {
			snprintf(err, errlen, "unix listener needs an absolute path: unix:///path/to/socket");
			return -1;
		}
		if (strlen(path) >= sizeof(out->path)) {
			snprintf(err, errlen, "unix socket path is longer than %zu bytes", sizeof(out->path) - 1);
			return -1;
		}
		if (path[strlen(path) - 1] == '/') {
			snprintf(err, errlen, "unix socket path must name a file, not a directory");
			return -1;
		}
		out->kind = LISTENER_UNIX;
		strcpy(out->path, path);
		return 0;
	}
	if (strncmp(url, "tcp://", 6) != 0) {
		snprintf(err, errlen, "listener URL must start with unix:// or tcp://");
		return -1;
	}
	const char *hp = url + 6;
	const char *portp;
	out->kind = LISTENER_TCP;
	if (hp[0] == '[') {
		const char *close = strchr(hp, ']');
		if (!close || close - hp - 1 <= 0 || (size_t)(close - hp - 1) >= sizeof(out->host)) {
			snprintf(err, errlen, "bad IPv6 address in listener URL");
			return -1;
		}
		memcpy(out->host, hp + 1, (size_t)(close - hp - 1));
		portp = close + 1;
		if (*portp && *portp != ':') {
			snprintf(err, errlen, "unexpected text after IPv6 address");
			return -1;
		}
	} else {
		const char *colon = strrchr(hp, ':');
		size_t hl = colon ? (size_t)(colon - hp) : strlen(hp);
		if (hl >= sizeof(out->host)) {
			snprintf(err, errlen, "host name too long");
			return -1;
		}
		memcpy(out->host, hp, hl);
		portp = colon ? colon : hp + hl;
	}
	if (strchr(out->host, '/')) {
		snprintf(err, errlen, "tcp listener URL takes no path");
		return -1;
	}
	if (*portp == ':') {
		char *end;
		errno = 0;
		long port = strtol(portp + 1, &end, 10);
		if (portp[1] == '\0' || *end != '\0' || errno || port < 1 || port > 65535) {
			snprintf(err, errlen, "port must be a number from 1 to 65535");
			return -1;
		}
		out->port = (uint16_t)port;
	} else if (default_port) {
		out->port = default_port;
	} else {
		snprintf(err, errlen, "tcp listener URL needs a port: tcp://host:port");
		return -1;
	}
	if (out->host[0] == '\0' || strcmp(out->host, "localhost") == 0)
		strcpy(out->host, "127.0.0.1");
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, out->host, &a4) != 1 && inet_pton(AF_INET6, out->host, &a6) != 1) {
		snprintf(err, errlen, "host must be an IP address or localhost, not \"%s\"", out->host);
		return -1;
	}
	return 0;
}

/* --- sockets passed by systemd --- */

struct listener_inherited_fd {
	int fd;
	char *name;
	bool used;
};
static struct listener_inherited_fd *listener_fds;
static size_t listener_nfds;

int listener_inherit_systemd(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	if (n <= 0) {
		free(names);
		return n < 0 ? 0 : n;
	}
	listener_fds = calloc((size_t)n, sizeof(*listener_fds));
	for (int i = 0; i < n; i++) {
		listener_fds[i].fd = SD_LISTEN_FDS_START + i;
		listener_fds[i].name = names && names[i] ? names[i] : strdup("unknown");
		fcntl(listener_fds[i].fd, F_SETFD, FD_CLOEXEC);
	}
	free(names);
	listener_nfds = (size_t)n;
	log_info(&listener_log, "systemd passed %d listening socket(s)", n);
	return n;
}

void listener_inherited_close_unused(void)
{
	for (size_t i = 0; i < listener_nfds; i++) {
		if (!listener_fds[i].used) {
			log_warn(&listener_log, "socket passed by systemd (name \"%s\") matches no listener; closing it",
				 listener_fds[i].name);
			close(listener_fds[i].fd);
		}
		free(listener_fds[i].name);
	}
	free(listener_fds);
	listener_fds = NULL;
	listener_nfds = 0;
}

static bool listener_fd_matches(int fd, const struct listener_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return false;
	if (a->kind == LISTENER_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
		return ss.ss_family == AF_UNIX && strncmp(un->sun_path, a->path, sizeof(un->sun_path)) == 0;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		struct in_addr want;
		return inet_pton(AF_INET, a->host, &want) == 1 && ntohs(in->sin_port) == a->port &&
		       in->sin_addr.s_addr == want.s_addr;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		struct in6_addr want;
		return inet_pton(AF_INET6, a->host, &want) == 1 && ntohs(in6->sin6_port) == a->port &&
		       memcmp(&in6->sin6_addr, &want, sizeof(want)) == 0;
	}
	return false;
}

/* An unused inherited socket bound to this address, or (with addr NULL) named `name`. */
static int listener_take_inherited(const struct listener_addr *a, const char *name)
{
	for (size_t i = 0; i < listener_nfds; i++) {
		struct listener_inherited_fd *f = &listener_fds[i];
		if (f->used)
			continue;
		if (a ? listener_fd_matches(f->fd, a) : (name && strcmp(f->name, name) == 0)) {
			f->used = true;
			return f->fd;
		}
	}
	return -1;
}

/* --- binding --- */

static bool listener_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static int listener_mkdirs(const char *path)
{
	char dir[sizeof(((struct listener_addr *)0)->path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(dir, 0755) != 0 && errno != EEXIST)
				return -1;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

static int listener_bind_unix(const struct listener_addr *a, const struct listener_opts *o, struct listener *l,
			      char *err, size_t errlen)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	strcpy(un.sun_path, a->path);

	struct stat st;
	if (lstat(a->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; refusing to replace it", a->path);
			return -1;
		}
		/* A socket file: live if something accepts on it, stale if the connect is refused. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return -1;
		}
		int rc = connect(probe, (struct sockaddr *)&un, sizeof(un));
		int e = errno;
		close(probe);
		if (rc == 0 || e == EAGAIN) {
			snprintf(err, errlen, "%s is in use by another running process", a->path);
			return -1;
		}
		if (e != ECONNREFUSED && e != ENOENT) {
			snprintf(err, errlen, "cannot probe existing socket %s: %s", a->path, strerror(e));
			return -1;
		}
		log_info(&listener_log, "removing stale socket %s", a->path);
		if (unlink(a->path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot remove stale socket %s: %s", a->path, strerror(errno));
			return -1;
		}
	}
	if (listener_mkdirs(a->path) != 0) {
		snprintf(err, errlen, "cannot create directory for %s: %s", a->path, strerror(errno));
		return -1;
	}

	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	if (o && o->owner && *o->owner) {
		struct passwd *pw = getpwnam(o->owner);
		if (!pw) {
			snprintf(err, errlen, "socket_owner: no user named \"%s\"", o->owner);
			return -1;
		}
		uid = pw->pw_uid;
	}
	if (o && o->group && *o->group) {
		struct group *gr = getgrnam(o->group);
		if (!gr) {
			snprintf(err, errlen, "socket_group: no group named \"%s\"", o->group);
			return -1;
		}
		gid = gr->gr_gid;
	}

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Create the file with no access at all, then open it up: no window with a wider mode. */
	mode_t old = umask(0777);
	int rc = bind(fd, (struct sockaddr *)&un, sizeof(un));
	int e = errno;
	umask(old);
	if (rc != 0) {
		snprintf(err, errlen, "bind %s: %s", a->path, strerror(e));
		close(fd);
		return -1;
	}
	if (lstat(a->path, &st) == 0) {
		l->dev = st.st_dev;
		l->ino = st.st_ino;
	}
	l->created_file = true;
	int mode = o && o->mode ? o->mode : 0660;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(a->path, uid, gid) != 0) {
		snprintf(err, errlen, "chown %s: %s", a->path, strerror(errno));
		goto fail;
	}
	if (chmod(a->path, (mode_t)mode) != 0) {
		snprintf(err, errlen, "chmod %s: %s", a->path, strerror(errno));
		goto fail;
	}
	if (listen(fd, o && o->backlog ? o->backlog : 511) != 0) {
		snprintf(err, errlen, "listen %s: %s", a->path, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	unlink(a->path);
	l->created_file = false;
	close(fd);
	return -1;
}

static int listener_bind_tcp(const struct listener_addr *a, const struct listener_opts *o, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, a->host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		sl = sizeof(*in);
	} else if (inet_pton(AF_INET6, a->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a->port);
		sl = sizeof(*in6);
	} else {
		snprintf(err, errlen, "bad address %s", a->host);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
		snprintf(err, errlen, "bind %s port %u: %s", a->host, a->port, strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, o && o->backlog ? o->backlog : 511) != 0) {
		snprintf(err, errlen, "listen %s port %u: %s", a->host, a->port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void listener_on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int salen,
			       void *arg)
{
	struct listener *l = arg;
	l->cb(fd, sa, salen, l->arg);
}

static void listener_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	if (!l->paused && l->evl)
		evconnlistener_enable(l->evl);
}

/* Out of file descriptors: back off for a moment instead of spinning on the readable socket. */
static void listener_on_error(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		log_warn(&listener_log, "%s: accept: %s; pausing accepts for 100ms", l->url, strerror(e));
		evconnlistener_disable(evl);
		struct timeval tv = { 0, 100000 };
		evtimer_add(l->retry, &tv);
		return;
	}
	log_warn(&listener_log, "%s: accept: %s", l->url, strerror(e));
}

static struct listener *listener_wrap(struct event_base *base, int fd, const char *url, listener_accept_fn cb,
				      void *arg, struct listener *l, char *err, size_t errlen)
{
	l->url = strdup(url);
	l->cb = cb;
	l->arg = arg;
	evutil_make_socket_nonblocking(fd);
	l->evl = evconnlistener_new(base, listener_on_accept, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	l->retry = evtimer_new(base, listener_on_retry, l);
	if (!l->evl || !l->retry || !l->url) {
		snprintf(err, errlen, "out of memory");
		if (!l->evl)
			close(fd);
		l->created_file = false;
		listener_destroy(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->evl, listener_on_error);
	return l;
}

struct listener *listener_create(struct event_base *base, const char *url, const struct listener_opts *opts,
				 listener_accept_fn cb, void *arg, char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (listener_parse_url(url, 0, &l->addr, err, errlen) != 0) {
		free(l);
		return NULL;
	}
	int fd = listener_take_inherited(&l->addr, NULL);
	if (fd >= 0) {
		l->inherited = true;
		log_info(&listener_log, "%s: using the socket passed by systemd", url);
		return listener_wrap(base, fd, url, cb, arg, l, err, errlen);
	}
	if (l->addr.kind == LISTENER_TCP && !listener_is_loopback(l->addr.host)) {
		if (!opts || !opts->allow_remote) {
			snprintf(err, errlen,
				 "%s is not a loopback address; set allow_remote: true to listen beyond this host",
				 l->addr.host);
			free(l);
			return NULL;
		}
		log_warn(&listener_log, "%s listens on a non-loopback address (allow_remote: true)", url);
	}
	fd = l->addr.kind == LISTENER_UNIX ? listener_bind_unix(&l->addr, opts, l, err, errlen)
					   : listener_bind_tcp(&l->addr, opts, err, errlen);
	if (fd < 0) {
		free(l);
		return NULL;
	}
	return listener_wrap(base, fd, url, cb, arg, l, err, errlen);
}

struct listener *listener_adopt_named(struct event_base *base, const char *name, listener_accept_fn cb, void *arg)
{
	int fd = listener_take_inherited(NULL, name);
	if (fd < 0)
		return NULL;
	struct listener *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->inherited = true;
	char url[160];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX) {
		snprintf(url, sizeof(url), "unix://%.140s", ((struct sockaddr_un *)&ss)->sun_path);
	} else if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "tcp://%s:%u", host, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "tcp://[%s]:%u", host, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	} else {
		snprintf(url, sizeof(url), "systemd:%s", name);
	}
	char err[64];
	log_info(&listener_log, "%s: adopted socket named \"%s\" from systemd", url, name);
	return listener_wrap(base, fd, url, cb, arg, l, err, sizeof(err));
}

void listener_stop(struct listener *l)
{
	l->paused = true;
	if (l->evl)
		evconnlistener_free(l->evl); /* closes the socket: new clients are refused at once */
	l->evl = NULL;
	if (l->retry)
		evtimer_del(l->retry);
}

void listener_destroy(struct listener *l)
{
	if (!l)
		return;
	if (l->evl)
		evconnlistener_free(l->evl);
	if (l->retry)
		event_free(l->retry);
	/* Remove the socket file only if it is still ours (a newer process may have replaced it). */
	struct stat st;
	if (l->created_file && lstat(l->addr.path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->addr.path);
	free(l->url);
	free(l);
}

const char *listener_url(const struct listener *l)
{
	return l->url;
}

bool listener_inherited(const struct listener *l)
{
	return l->inherited;
}
