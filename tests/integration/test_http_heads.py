"""Request heads through the HTTP server's two readers (the fast scanner for a plain head in
one read, libhttp-parser for everything else) on real sockets: pipelined requests in one
write, mixed with chunked bodies; heads split across reads; values with leading whitespace;
HTTP/1.0 keep-alive; the max_header_size edge; garbage after a good request."""
import socket
import time

import pytest

from httpc import free_port, raw_socket


@pytest.fixture
def server(tetherd):
    admin, http = free_port(), free_port()
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{admin}"]}}
http:
  listen: ["tcp://127.0.0.1:{http}"]
  max_header_size: 1KiB
echo:
  max_body: 1MiB
""")
    t.http = f"tcp://127.0.0.1:{http}"
    return t


def read_responses(s, n, timeout=10):
    """n responses (Content-Length framed) from s: [(status, headers, body)]; the connection
    may close after the last one."""
    buf, out = b"", []
    deadline = time.time() + timeout
    while len(out) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            lines = buf[:head_end].decode().split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if len(buf) >= head_end + 4 + length:
                out.append((int(lines[0].split()[1]), headers, buf[head_end + 4:head_end + 4 + length]))
                buf = buf[head_end + 4 + length:]
                continue
        assert time.time() < deadline, f"timed out with {len(out)} of {n} responses"
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return out


def closed(s):
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pipelined_plain_and_chunked_requests_in_one_write(server):
    s = raw_socket(server.http)
    s.sendall(b"GET /echo/?bytes=3 HTTP/1.1\r\nHost: x\r\nX-Request-Id: one\r\n\r\n"
              b"POST /echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Request-Id: two\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n"
              b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nX-Request-Id: three\r\n\r\nbody"
              b"GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Request-Id: four\r\n\r\n"
              b"GET /echo/?bytes=2 HTTP/1.1\r\nHost: x\r\nX-Request-Id: five\r\n\r\n")
    rs = read_responses(s, 5)
    assert [r[0] for r in rs] == [200, 200, 200, 404, 200]
    assert [r[1]["x-request-id"] for r in rs] == ["one", "two", "three", "four", "five"]
    assert len(rs[0][2]) == 3 and rs[1][2] == b"hello" and rs[2][2] == b"body" and len(rs[4][2]) == 2
    s.close()


def test_head_split_across_reads(server):
    head = b"GET /echo/?bytes=4 HTTP/1.1\r\nHost: x\r\nX-Request-Id: split-" + b"a" * 40 + b"\r\n\r\n"
    for cut in (1, 20, len(head) - 3, len(head) - 1):
        s = raw_socket(server.http)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head[:cut])
        time.sleep(0.05)
        s.sendall(head[cut:])
        (status, headers, body), = read_responses(s, 1)
        assert status == 200 and len(body) == 4
        assert headers["x-request-id"] == "split-" + "a" * 40
        s.close()


def test_values_lose_leading_whitespace_only(server):
    s = raw_socket(server.http)
    s.sendall(b"GET /echo/?bytes=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id:\t  id-1\r\n\r\n"
              b"GET /echo/?bytes=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id:id-2\r\n\r\n")
    rs = read_responses(s, 2)
    assert [r[1]["x-request-id"] for r in rs] == ["id-1", "id-2"]
    s.close()


def test_http10_keep_alive_and_close(server):
    s = raw_socket(server.http)
    s.sendall(b"GET /echo/?bytes=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    (status, headers, _), = read_responses(s, 1)
    assert status == 200 and headers.get("connection", "").lower() == "keep-alive"
    s.sendall(b"GET /echo/?bytes=1 HTTP/1.0\r\n\r\n")
    (status, _, _), = read_responses(s, 1)
    assert status == 200
    assert closed(s), "HTTP/1.0 without keep-alive: closed after the answer"
    s = raw_socket(server.http)
    s.sendall(b"GET /echo/?bytes=1 HTTP/1.1\r\nConnection: close\r\n\r\n")
    (status, headers, _), = read_responses(s, 1)
    assert status == 200 and headers.get("connection", "").lower() == "close"
    assert closed(s)


@pytest.mark.parametrize("extra,status", [(0, 200), (2000, 431)])
def test_max_header_size_edge(server, extra, status):
    # 1 KiB limit: a head just under it is served, one over it refused, by either reader.
    pad = b"p" * (1024 - 120 + extra)
    s = raw_socket(server.http)
    s.sendall(b"GET /echo/?bytes=1 HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + b"\r\n\r\n")
    (got, _, _), = read_responses(s, 1)
    assert got == status
    s.close()


def test_garbage_after_a_good_request(server):
    s = raw_socket(server.http)
    s.sendall(b"GET /echo/?bytes=2 HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nBad Header\r\n\r\n")
    rs = read_responses(s, 2)
    assert [r[0] for r in rs] == [200, 400]
    assert closed(s)
