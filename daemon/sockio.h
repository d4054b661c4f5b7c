/* Writing an evbuffer to a socket with one sendmsg call. */
#ifndef TETHER_SOCKIO_H
#define TETHER_SOCKIO_H

#include <event2/buffer.h>
#include <event2/util.h>

/* What evbuffer_write does, with sendmsg(MSG_NOSIGNAL) rather than writev: the socket call
 * skips the VFS layer (about 5 % of what a small message costs the kernel) and a closed peer
 * gives EPIPE, never SIGPIPE. Up to SOCKIO_IOV chunks go per system call, and calls go on
 * while the socket takes all it is given; what it took is drained. Bytes written (0 when the
 * buffer is empty), or -1 with errno when nothing went (EAGAIN when the socket is full). The
 * buffer's start must not be frozen. */
#define SOCKIO_IOV 64
int sockio_send_evbuffer(struct evbuffer *b, evutil_socket_t fd);

#endif
