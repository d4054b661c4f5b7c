/* Writes an evbuffer to a socket with one sendmsg call (see sockio.h). */
#include "sockio.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

int sockio_send_evbuffer(struct evbuffer *b, evutil_socket_t fd)
{
	struct evbuffer_iovec v[SOCKIO_IOV];
	struct iovec iov[SOCKIO_IOV];
	int total = 0;
	for (;;) {
		int n = evbuffer_peek(b, -1, NULL, v, SOCKIO_IOV);
		if (n <= 0)
			return total;
		if (n > SOCKIO_IOV)
			n = SOCKIO_IOV;
		size_t given = 0;
		for (int i = 0; i < n; i++) {
			iov[i] = (struct iovec){ .iov_base = v[i].iov_base, .iov_len = v[i].iov_len };
			given += v[i].iov_len;
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0)
			return total > 0 ? total : -1; /* (an error shows again on the next call) */
		if (evbuffer_drain(b, (size_t)w) != 0) {
			errno = ENOMEM;
			return -1;
		}
		total += (int)w;
		if ((size_t)w < given || total > (1 << 30))
			return total; /* the socket is full (or enough for one call) */
	}
}
