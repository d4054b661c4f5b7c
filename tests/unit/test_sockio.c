/* Tests for sockio_send_evbuffer (sockio.c) on a socketpair: an empty buffer, a buffer of more
 * chunks than one system call takes sent by one call and drained, a full socket (partial write, then EAGAIN with nothing
 * drained), and a closed peer (EPIPE, no SIGPIPE, the buffer untouched). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "sockio.h"
#include "tap.h"

static size_t drain_all(int fd, unsigned char *into, size_t cap)
{
	size_t got = 0;
	for (;;) {
		ssize_t n = recv(fd, into + got, cap - got, MSG_DONTWAIT);
		if (n <= 0)
			return got;
		got += (size_t)n;
	}
}

int main(void)
{
	int sv[2];
	ok(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	struct evbuffer *b = evbuffer_new();

	is_int(sockio_send_evbuffer(b, sv[0]), 0, "an empty buffer sends nothing");

	/* chunks of different sizes, added as references so each stays its own chunk */
	static unsigned char data[SOCKIO_IOV * 3][100];
	size_t total = 0;
	for (int i = 0; i < SOCKIO_IOV * 3; i++) {
		memset(data[i], 'a' + i % 26, sizeof(data[i]));
		evbuffer_add_reference(b, data[i], (size_t)(10 + i % 90), NULL, NULL);
		total += (size_t)(10 + i % 90);
	}
	size_t sent = 0;
	int calls = 0;
	while (evbuffer_get_length(b) > 0 && calls < 10) {
		int n = sockio_send_evbuffer(b, sv[0]);
		ok(n > 0, "call %d sent %d bytes", calls, n);
		sent += (size_t)(n > 0 ? n : 0);
		calls++;
	}
	is_int(sent, total, "every byte went");
	is_int(calls, 1, "%d chunks (%d per system call) took one call", SOCKIO_IOV * 3, SOCKIO_IOV);
	static unsigned char got[1 << 20];
	size_t n = drain_all(sv[1], got, sizeof(got));
	is_int(n, total, "the peer read them all");
	size_t off = 0, same = 1;
	for (int i = 0; i < SOCKIO_IOV * 3; i++) {
		same &= memcmp(got + off, data[i], (size_t)(10 + i % 90)) == 0;
		off += (size_t)(10 + i % 90);
	}
	ok(same, "in order");

	/* a full socket: some bytes go, the rest stay queued; then EAGAIN and nothing drained */
	int small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	static unsigned char big[1 << 20];
	memset(big, 'x', sizeof(big));
	evbuffer_add(b, big, sizeof(big));
	int w = sockio_send_evbuffer(b, sv[0]);
	ok(w > 0 && (size_t)w < sizeof(big), "a full socket takes part (%d of %zu)", w, sizeof(big));
	is_int(evbuffer_get_length(b), sizeof(big) - (size_t)w, "the rest stays queued");
	int again;
	do
		again = sockio_send_evbuffer(b, sv[0]);
	while (again > 0);
	ok(again == -1 && (errno == EAGAIN || errno == EWOULDBLOCK), "then EAGAIN (%d, %s)", again, strerror(errno));
	size_t left = evbuffer_get_length(b);
	ok(left > 0, "nothing drained by the failed call");

	/* the peer goes: EPIPE, and the process is not killed by SIGPIPE */
	signal(SIGPIPE, SIG_DFL);
	close(sv[1]);
	int e = sockio_send_evbuffer(b, sv[0]);
	ok(e == -1 && (errno == EPIPE || errno == ECONNRESET), "a closed peer is an error (%s)", strerror(errno));
	is_int(evbuffer_get_length(b), left, "and the buffer is untouched");

	evbuffer_free(b);
	close(sv[0]);
	return tap_done();
}
