"""The upstream of bench/http.sh's 1 GiB transfers, for tether, nginx proxy_pass and curl alike:
GET /storage/v1/b/bench/o/big.bin sends FILE with sendfile(2), and a POST reads every byte of its
body (Content-Length or chunked) before it answers {"name":"up"}. nginx's `return 200` answers
at once and drops the rest of the body, and a proxy that sees such an early answer may drop the
body too instead of forwarding it: its upload would be timed at discarding speed.
Usage: python3 bench/http_sink.py PORT FILE   (a thread per connection, keep-alive)."""
import os
import socket
import sys
import threading

ANSWER = b'{"name":"up"}\n'


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(1 << 20)
        self.view = memoryview(self.buf)
        self.pending = b""

    def fill(self):
        n = self.sock.recv_into(self.view)
        if n == 0:
            raise EOFError
        self.pending += bytes(self.view[:n])

    def line(self):
        while b"\r\n" not in self.pending:
            self.fill()
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line

    def skip(self, n):
        """Reads and drops n body bytes."""
        take = min(n, len(self.pending))
        self.pending = self.pending[take:]
        n -= take
        if n <= 0:
            return
        while n > 0:  # MSG_WAITALL: woken per MiB, not per burst of segments
            got = self.sock.recv_into(self.view, min(n, len(self.buf)), socket.MSG_WAITALL)
            if got == 0:
                raise EOFError
            n -= got

    def body(self, headers):
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass  # trailers, up to the empty line
                    return
                self.skip(size)
                self.line()
        self.skip(int(headers.get(b"content-length", b"0")))

    def serve(self, path):
        while True:
            request = self.line().split()
            headers = {}
            while True:
                h = self.line()
                if not h:
                    break
                name, _, value = h.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if headers.get(b"expect", b"").lower() == b"100-continue":
                self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # else curl waits 1 s
            self.body(headers)
            if request[0] == b"GET" and request[1].split(b"?")[0] == b"/storage/v1/b/bench/o/big.bin":
                size = os.path.getsize(path)
                self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                  b"Content-Length: %d\r\n\r\n" % size)
                with open(path, "rb") as f:
                    self.sock.sendfile(f)
            elif request[0] == b"POST":
                self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER)
            else:
                self.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def handle(sock, path):
    with sock:
        try:
            Conn(sock).serve(path)
        except (EOFError, OSError):
            pass


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(64)
    while True:
        sock, _ = s.accept()
        threading.Thread(target=handle, args=(sock, sys.argv[2]), daemon=True).start()


if __name__ == "__main__":
    main()
