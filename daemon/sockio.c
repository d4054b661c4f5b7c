/* Writes an evbuffer to a socket with one sendmsg call (see sockio.h). */
#include "sockio.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* (at most this much per call, so that the count returned fits an int) */
#define SOCKIO_MAX_CALL ((size_t)1 << 29)

int sockio_send_evbuffer(struct evbuffer *b, evutil_socket_t fd)
{
	struct evbuffer_iovec v[SOCKIO_IOV];
	struct iovec iov[SOCKIO_IOV];
	size_t total = 0;
	while (total < SOCKIO_MAX_CALL) {
		int n = evbuffer_peek(b, -1, NULL, v, SOCKIO_IOV);
		if (n <= 0)
			break;
		if (n > SOCKIO_IOV)
			n = SOCKIO_IOV;
		size_t given = 0;
		int k = 0;
		for (; k < n && given < SOCKIO_MAX_CALL; k++) {
			size_t len = v[k].iov_len;
			if (len > SOCKIO_MAX_CALL - given)
				len = SOCKIO_MAX_CALL - given;
			iov[k] = (struct iovec){ .iov_base = v[k].iov_base, .iov_len = len };
			given += len;
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)k };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0)
			return total > 0 ? (int)total : -1; /* (an error shows again on the next call) */
		if (evbuffer_drain(b, (size_t)w) != 0) {
			errno = ENOMEM;
			return -1;
		}
		total += (size_t)w;
		if ((size_t)w < given)
			break; /* the socket is full */
	}
	return (int)total;
}
