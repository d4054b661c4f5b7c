"""The HTTP server through real sockets: admin endpoints, JSON 404/405/413/431/400, request ids,
keep-alive, and bodies streamed through the echo plugin in bounded memory."""
import json
import os
import socket
import threading
import time

import pytest

from httpc import connect, free_port, get_json, raw_socket, read_response, request


# ASan keeps freed memory in quarantine (256 MB by default): RSS bounds hold only without it.
UNDER_ASAN = "asan" in (os.environ.get("TETHERD") or "")


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def server(tetherd, tmp_path):
    admin, http = free_port(), free_port()
    sock = tmp_path / "http.sock"
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{admin}"]}}
http:
  listen: ["tcp://127.0.0.1:{http}", "unix://{sock}"]
  max_header_size: 4KiB
echo:
  max_body: 1GiB
""")
    t.admin = f"tcp://127.0.0.1:{admin}"
    t.http = f"tcp://127.0.0.1:{http}"
    t.unix = f"unix://{sock}"
    return t


def assert_google_error(body, code, status):
    doc = json.loads(body)
    assert doc["error"]["code"] == code
    assert doc["error"]["status"] == status
    assert doc["error"]["message"]


def test_unknown_route_is_json_404(server):
    for url in (server.http, server.unix, server.admin):
        status, hdrs, body = request(url, "GET", "/no/such/route")
        assert status == 404
        assert hdrs["content-type"].startswith("application/json")
        assert hdrs.get("x-request-id")
        assert_google_error(body, 404, "NOT_FOUND")


def test_admin_rejects_other_methods(server):
    status, hdrs, body = request(server.admin, "POST", "/healthz", body=b"x")
    assert status == 405
    assert_google_error(body, 405, json.loads(body)["error"]["status"])


def test_request_id_echoed_or_generated(server):
    _, hdrs, _ = request(server.admin, "GET", "/healthz", headers={"X-Request-Id": "abc-123"})
    assert hdrs["x-request-id"] == "abc-123"
    _, h1, _ = request(server.admin, "GET", "/healthz")
    _, h2, _ = request(server.admin, "GET", "/healthz")
    assert h1["x-request-id"] and h1["x-request-id"] != h2["x-request-id"]
    _, h3, _ = request(server.admin, "GET", "/healthz", headers={"X-Request-Id": "bad\x7fid" * 40})
    assert h3["x-request-id"] != "bad\x7fid" * 40


def test_keep_alive_and_echo(server):
    c = connect(server.http)
    for i in range(3):
        body = (b"%d" % i) * 1000
        c.request("POST", "/echo/x", body=body)
        r = c.getresponse()
        assert r.status == 200 and r.read() == body
    c.close()


def test_body_over_route_limit_is_413(tetherd):
    http = free_port()
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
http: {{listen: ["tcp://127.0.0.1:{http}"]}}
echo: {{max_body: 1KiB}}
""")
    url = f"tcp://127.0.0.1:{http}"
    status, _, body = request(url, "POST", "/echo/", body=b"x" * 2048)
    assert status == 413
    assert_google_error(body, 413, json.loads(body)["error"]["status"])
    # Chunked bodies are counted as they arrive.
    s = raw_socket(url)
    s.sendall(b"POST /echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    s.sendall(b"400\r\n" + b"y" * 1024 + b"\r\n" + b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n")
    status, _, body = read_response(s)
    assert status == 413
    s.close()
    # Within the limit still works afterwards.
    assert request(url, "POST", "/echo/", body=b"z" * 1000)[2] == b"z" * 1000


def test_header_too_large_is_431(server):
    s = raw_socket(server.http)
    s.sendall(b"GET /echo/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    status, _, body = read_response(s)
    assert status == 431
    s.close()


def test_garbage_gets_400_and_others_unaffected(server):
    other = connect(server.http)
    other.request("POST", "/echo/", body=b"before")
    assert other.getresponse().read() == b"before"
    s = raw_socket(server.http)
    s.sendall(b"\x16\x03\x01\x02\x00GARBAGE\r\n\r\n")
    status, _, body = read_response(s)
    assert status == 400
    assert_google_error(body, 400, "INVALID_ARGUMENT")
    s.close()
    other.request("POST", "/echo/", body=b"after")
    assert other.getresponse().read() == b"after"
    other.close()


def test_metrics_count_requests(server):
    request(server.http, "POST", "/echo/", body=b"hello")
    request(server.http, "GET", "/nope")
    text = request(server.admin, "GET", "/metrics")[2].decode()
    assert "# TYPE tether_http_requests_total counter" in text
    assert 'server="http"' in text and 'route="echo"' in text
    assert 'code="404"' in text
    assert "tether_http_request_duration_seconds_bucket" in text
    assert "tether_http_connections" in text
    assert "tether_process_resident_memory_bytes" in text


def test_streamed_upload_in_bounded_memory(server):
    """256 MiB through the echo route, chunked, read back as it flows: RSS stays small."""
    total = 256 * 1024 * 1024
    chunk = b"q" * (1024 * 1024)
    s = raw_socket(server.http, timeout=60)
    s.sendall(b"POST /echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    received = [0]

    def reader():
        f = s.makefile("rb")
        line = f.readline()
        assert b"200" in line
        while f.readline() not in (b"\r\n", b""):
            pass
        while True:
            size = int(f.readline().strip(), 16)
            if size == 0:
                break
            while size:
                got = f.read(min(size, 1 << 20))
                size -= len(got)
                received[0] += len(got)
            f.readline()

    th = threading.Thread(target=reader)
    th.start()
    sent = 0
    while sent < total:
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sent += len(chunk)
    s.sendall(b"0\r\n\r\n")
    th.join(120)
    s.close()
    assert received[0] == total
    peak = rss_kib(server.proc.pid, "VmHWM")
    assert UNDER_ASAN or peak < 64 * 1024, f"peak RSS {peak} KiB"


def test_slow_reader_does_not_grow_memory(server):
    s = raw_socket(server.http, timeout=30)
    s.sendall(b"GET /echo/?bytes=1073741824 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    for _ in range(20):
        got += len(s.recv(65536))
        time.sleep(0.05)
    rss = rss_kib(server.proc.pid)
    s.close()
    assert got > 0
    assert UNDER_ASAN or rss < 48 * 1024, f"RSS {rss} KiB while a 1 GiB response waits on a slow reader"
    # The server is still fine for others.
    assert get_json(server.admin, "/healthz")[0] == 200


def test_sigterm_drains_requests_in_flight(tetherd):
    """SIGTERM: new connections are refused, a request in flight still completes."""
    http, admin = free_port(), free_port()
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{admin}"]}}
http: {{listen: ["tcp://127.0.0.1:{http}"]}}
daemon: {{shutdown_timeout: 30s}}
echo: {{}}
""")
    url = f"tcp://127.0.0.1:{http}"
    s = raw_socket(url)
    s.sendall(b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
    time.sleep(0.3)
    t.proc.send_signal(15)
    t.wait_notify("STOPPING=1", timeout=10)
    with pytest.raises(OSError):
        for _ in range(50):  # the listener closes or stops accepting
            c = raw_socket(url, timeout=0.5)
            c.sendall(b"GET /echo/ HTTP/1.1\r\nHost: x\r\n\r\n")
            if not c.recv(1):
                raise ConnectionError("closed")
            c.close()
            time.sleep(0.1)
    assert t.proc.poll() is None, "exited with a request in flight"
    s.sendall(b"world")
    status, hdrs, body = read_response(s)
    assert status == 200 and body == b"helloworld"
    assert hdrs.get("connection") == "close"
    assert t.proc.wait(timeout=10) == 0


def test_sigterm_gives_up_after_shutdown_timeout(tetherd):
    http = free_port()
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
http: {{listen: ["tcp://127.0.0.1:{http}"]}}
daemon: {{shutdown_timeout: 1s}}
echo: {{}}
""")
    s = raw_socket(f"tcp://127.0.0.1:{http}")
    s.sendall(b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
    time.sleep(0.2)
    t.proc.send_signal(15)
    assert t.proc.wait(timeout=15) == 0
    assert "shutdown_timeout reached" in t.log_text()
    s.close()


def test_slow_request_head_gets_408_and_others_unaffected(tetherd):
    admin, http = free_port(), free_port()
    tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{admin}"]}}
http: {{listen: ["tcp://127.0.0.1:{http}"], header_timeout: 300ms}}
""")
    slow = raw_socket(f"tcp://127.0.0.1:{http}")
    slow.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
    status, _, body = read_response(slow)
    assert status == 408
    assert json.loads(body)["error"]["status"] == "DEADLINE_EXCEEDED"
    assert get_json(f"tcp://127.0.0.1:{admin}", "/healthz")[0] == 200


def test_connections_over_limit_get_503(tetherd):
    http = free_port()
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
http: {{listen: ["tcp://127.0.0.1:{http}"], max_connections: 2}}
""")
    url = f"tcp://127.0.0.1:{http}"
    held = [raw_socket(url), raw_socket(url)]
    time.sleep(0.2)
    extra = raw_socket(url)
    status, _, body = read_response(extra)
    assert status == 503
    assert "too many connections" in json.loads(body)["error"]["message"]
    for s in held:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 404  # the connections within the limit still work
        s.close()
