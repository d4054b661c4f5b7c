"""Small HTTP/1.1 client helpers for the daemon tests: tcp:// or unix:// listener URLs, raw
sockets for protocol-level checks, and keep-alive connections."""
import http.client
import json
import socket

from harness import free_port  # noqa: F401  (one helper for the whole run: ports never repeat)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def connect(url, timeout=10):
    """An http.client connection to a listener URL (tcp://host:port or unix:///path)."""
    if url.startswith("unix://"):
        return UnixHTTPConnection(url[len("unix://"):], timeout=timeout)
    hostport = url[len("tcp://"):]
    host, port = hostport.rsplit(":", 1)
    return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)


def request(url, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection: (status, headers dict lower-cased, body bytes)."""
    c = connect(url, timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def get_json(url, path, headers=None):
    status, hdrs, body = request(url, "GET", path, headers=headers)
    return status, json.loads(body) if body else None


def raw_socket(url, timeout=10):
    if url.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(url[len("unix://"):])
        return s
    host, port = url[len("tcp://"):].rsplit(":", 1)
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def read_response(sock):
    """Reads one response from a raw socket: (status, headers dict, body bytes)."""
    r = http.client.HTTPResponse(sock)
    r.begin()
    body = r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body

