/* Unit tests for listener URL parsing and unix socket binding rules. */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "listener.h"
#include "log.h"
#include "tap.h"

static int parse(const char *url, struct listener_addr *a, char *err)
{
	return listener_parse_url(url, 0, a, err, 256);
}

static void accept_nothing(evutil_socket_t fd, const struct sockaddr *sa, int salen, void *arg)
{
	close(fd);
}

int main(void)
{
	struct listener_addr a;
	char err[256];
	log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, stderr);

	is_int(parse("unix:///run/tether/http.sock", &a, err), 0, "unix URL parses");
	is_int(a.kind, LISTENER_UNIX, "unix kind");
	is_str(a.path, "/run/tether/http.sock", "unix path");
	is_int(parse("unix:///cloudsql/my-project:us-central1:main/.s.PGSQL.5432", &a, err), 0,
	       "Cloud SQL style path with colons");
	is_int(parse("unix://relative.sock", &a, err), -1, "relative unix path rejected");
	has_str(err, "absolute path", "error says an absolute path is needed");
	is_int(parse("unix:///run/tether/", &a, err), -1, "directory path rejected");
	char longurl[300] = "unix:///";
	memset(longurl + 8, 'a', 200);
	longurl[208] = '\0';
	is_int(parse(longurl, &a, err), -1, "over-long unix path rejected");
	has_str(err, "longer than", "error names the length limit");

	is_int(parse("tcp://127.0.0.1:5432", &a, err), 0, "tcp URL parses");
	is_int(a.kind, LISTENER_TCP, "tcp kind");
	is_str(a.host, "127.0.0.1", "tcp host");
	is_int(a.port, 5432, "tcp port");
	is_int(parse("tcp://:8080", &a, err), 0, "empty host defaults");
	is_str(a.host, "127.0.0.1", "empty host is 127.0.0.1");
	is_int(parse("tcp://localhost:8080", &a, err), 0, "localhost accepted");
	is_str(a.host, "127.0.0.1", "localhost is 127.0.0.1");
	is_int(parse("tcp://[::1]:8080", &a, err), 0, "IPv6 literal");
	is_str(a.host, "::1", "IPv6 host");
	is_int(a.port, 8080, "IPv6 port");
	is_int(parse("tcp://0.0.0.0:80", &a, err), 0, "any-address parses (binding checks allow_remote)");
	is_int(parse("tcp://127.0.0.1", &a, err), -1, "missing port rejected");
	has_str(err, "needs a port", "error says a port is needed");
	is_int(listener_parse_url("tcp://127.0.0.1", 5432, &a, err, sizeof(err)), 0, "default port used");
	is_int(a.port, 5432, "default port value");
	is_int(parse("tcp://127.0.0.1:0", &a, err), -1, "port 0 rejected");
	is_int(parse("tcp://127.0.0.1:65536", &a, err), -1, "port 65536 rejected");
	is_int(parse("tcp://127.0.0.1:80x", &a, err), -1, "junk after port rejected");
	is_int(parse("tcp://example.com:80", &a, err), -1, "host names other than localhost rejected");
	has_str(err, "IP address", "error says an IP address is needed");
	is_int(parse("tcp://127.0.0.1:80/path", &a, err), -1, "path on tcp rejected");
	is_int(parse("http://127.0.0.1:80", &a, err), -1, "unknown scheme rejected");
	has_str(err, "unix:// or tcp://", "error lists the schemes");
	is_int(parse("tcp://[::1", &a, err), -1, "unterminated IPv6 rejected");

	/* Binding rules on a real socket in a temp dir. */
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/tether-listener-XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	char url[256], path[100];
	snprintf(path, sizeof(path), "%s/sub/a.sock", dir);
	snprintf(url, sizeof(url), "unix://%s", path);
	struct listener_opts o = { .mode = 0600 };
	struct listener *l = listener_create(base, url, &o, accept_nothing, NULL, err, sizeof(err));
	ok(l != NULL, "unix listener created (parent dir made)");
	struct stat st;
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "socket file mode is 0600 as configured");
	struct listener *l2 = listener_create(base, url, &o, accept_nothing, NULL, err, sizeof(err));
	ok(l2 == NULL, "second listener on a live socket refused");
	has_str(err, "in use", "error says the socket is in use");
	listener_destroy(l);
	ok(access(path, F_OK) != 0, "socket file removed on destroy");

	/* A stale socket file (nobody listening) is replaced. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	ok(bind(fd, (struct sockaddr *)&un, sizeof(un)) == 0, "stale socket file made");
	close(fd);
	l = listener_create(base, url, NULL, accept_nothing, NULL, err, sizeof(err));
	ok(l != NULL, "stale socket replaced");
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0660, "default mode is 0660");
	listener_destroy(l);

	/* A regular file in the way is never removed. */
	FILE *f = fopen(path, "w");
	fclose(f);
	l = listener_create(base, url, NULL, accept_nothing, NULL, err, sizeof(err));
	ok(l == NULL, "regular file at socket path refused");
	has_str(err, "not a socket", "error says it is not a socket");
	unlink(path);

	struct listener_opts ro = { .allow_remote = false };
	l = listener_create(base, "tcp://0.0.0.0:1", &ro, accept_nothing, NULL, err, sizeof(err));
	ok(l == NULL, "non-loopback refused without allow_remote");
	has_str(err, "allow_remote", "error names allow_remote");

	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
	event_base_free(base);
	return tap_done();
}
