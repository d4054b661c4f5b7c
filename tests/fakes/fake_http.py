"""Shared plumbing for tether's fakes of Google services: a threading HTTP/1.1 server with
keep-alive and optional TLS, a request-body reader that understands Content-Length and chunked
encoding (and can cut the connection after K bytes), JSON/raw responses that can be slowed down
or cut short, and the command line every fake takes (--host --port --port-file --data-dir
--tls-cert --tls-key; runs until SIGTERM)."""
import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 256 * 1024


class Dropped(Exception):
    """The fake was told to close the connection without a (complete) answer."""


class BodyReader:
    """Reads a request body as it arrives: Content-Length or chunked transfer coding. Counts
    the bytes handed out; drop_after makes it raise Dropped once that many bytes were read
    (the bytes before that point are returned first, so a handler can keep them)."""

    def __init__(self, rfile, headers, drop_after=None):
        self._rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length")
        self._left = None if self.chunked else int(length or 0)
        self._chunk_left = 0
        self._eof = False if self.chunked else self._left == 0
        self.count = 0
        self.drop_after = drop_after

    @property
    def done(self):
        return self._eof

    def _raw(self, n):
        if self.chunked:
            if self._chunk_left == 0:
                line = self._rfile.readline(1024)
                if not line:
                    raise ConnectionError("client closed during chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = self._rfile.read(min(n, self._chunk_left))
            if not data:
                raise ConnectionError("client closed during chunked body")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._rfile.readline(16)  # CRLF after the chunk
            return data
        data = self._rfile.read(min(n, self._left)) if self._left else b""
        if self._left and not data:
            raise ConnectionError("client closed during body")
        self._left -= len(data)
        if self._left == 0:
            self._eof = True
        return data

    def read(self, n=CHUNK):
        """Up to n bytes; b"" at the end of the body."""
        if self._eof:
            return b""
        if self.drop_after is not None:
            if self.count >= self.drop_after:
                raise Dropped(f"dropped after {self.count} request body bytes")
            n = min(n, self.drop_after - self.count)
        data = self._raw(n)
        self.count += len(data)
        return data

    def read_all(self, limit=64 * 1024 * 1024):
        parts = []
        size = 0
        while True:
            data = self.read()
            if not data:
                return b"".join(parts)
            size += len(data)
            if size > limit:
                raise ValueError("body too large to buffer")
            parts.append(data)

    def drain(self):
        while self.read():
            pass


class FakeHandler(BaseHTTPRequestHandler):
    """Base handler: parses the URL, answers with JSON or streamed bodies, honours per-request
    response faults (self.drop_response_after bytes, self.slow_bps bytes per second)."""
    protocol_version = "HTTP/1.1"
    server_version = "tether-fake/1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    # --- request side ---------------------------------------------------------------------

    def begin(self):
        """Per-request state; call first in every do_X."""
        parts = urlsplit(self.path)
        self.url_path = parts.path
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.drop_response_after = None
        self.slow_bps = None
        self.body = BodyReader(self.rfile, self.headers)
        self.status_sent = None

    def read_json(self):
        data = self.body.read_all(16 * 1024 * 1024)
        if not data.strip():
            return {}
        return json.loads(data)

    def finish_body(self):
        """Before answering: consume what is left of the request body so the connection can
        be reused, or mark it for closing when the rest is large."""
        if self.body.done:
            return
        left = getattr(self.body, "_left", None)
        if left is not None and left <= 1024 * 1024:
            try:
                self.body.drain()
                return
            except (ConnectionError, Dropped, OSError):
                pass
        self.close_connection = True

    # --- response side --------------------------------------------------------------------

    def base_url(self):
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        return f"{scheme}://{host}"

    def send_head(self, status, headers=(), length=0):
        self.finish_body()
        self.status_sent = status
        # GCS names 308 "Resume Incomplete"; http.server would say "Permanent Redirect".
        self.send_response(status, "Resume Incomplete" if status == 308 else None)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def write_body(self, chunks):
        """Writes an iterable of byte strings, applying the response faults."""
        sent = 0
        for data in chunks:
            if self.drop_response_after is not None:
                room = self.drop_response_after - sent
                if len(data) >= room:
                    self.wfile.write(data[:room])
                    self.wfile.flush()
                    raise Dropped(f"dropped after {self.drop_response_after} response bytes")
            if self.slow_bps:
                for i in range(0, len(data), 16384):
                    piece = data[i:i + 16384]
                    self.wfile.write(piece)
                    self.wfile.flush()
                    time.sleep(len(piece) / self.slow_bps)
            else:
                self.wfile.write(data)
            sent += len(data)
        if self.drop_response_after is not None and sent >= self.drop_response_after:
            raise Dropped("dropped at end of response")

    def send_bytes(self, status, data=b"", content_type="application/octet-stream",
                   headers=()):
        hdrs = list(headers)
        if data or content_type:
            hdrs.append(("Content-Type", content_type))
        self.send_head(status, hdrs, len(data))
        if self.command != "HEAD" and data:
            self.write_body([data])

    def send_json(self, status, doc, headers=()):
        data = (json.dumps(doc, indent=1) + "\n").encode()
        self.send_bytes(status, data, "application/json; charset=UTF-8", headers)

    def drop_connection(self):
        """Closes the socket without answering (RST if possible)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ssl_context = None

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ssl_context is not None:
            # The handshake happens on the first read, in the handler's thread, so a slow or
            # broken client cannot stall accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr


def parse_args(description, argv=None, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--data-dir", help="state directory (default: a new temp dir)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM)")
    p.add_argument("--tls-key", help="private key for --tls-cert (PEM)")
    if extra:
        extra(p)
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    args.own_data_dir = not args.data_dir
    if not args.data_dir:
        args.data_dir = tempfile.mkdtemp(prefix="tether-fake-")
    os.makedirs(args.data_dir, exist_ok=True)
    return args


def serve(server, args, name):
    """Wraps the socket in TLS if asked, writes the port file, serves until SIGTERM/SIGINT."""
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.ssl_context = ctx
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)  # readers never see a half-written file
    scheme = "https" if args.tls_cert else "http"
    sys.stderr.write(f"{name} listening on {scheme}://{args.host}:{port} "
                     f"(data {args.data_dir})\n")
    sys.stderr.flush()

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.own_data_dir:
            shutil.rmtree(args.data_dir, ignore_errors=True)
    sys.stderr.write(f"{name} stopped\n")
