"""Cloud Storage JSON API forwarding (plugins/storage on daemon/forward.c) against the Storage
fake and the metadata/OAuth fake: the official Node client through tether with no credentials
of its own, tether's token on every upstream request and never the app's, hop-by-hop headers
and the request id, Location rewriting for resumable sessions, the token lifecycle seen through
forwarding (one fetch for 1,000 requests on a cold cache, a clear 503 while the metadata server
is down), retries of idempotent calls only, a resumable upload that survives a dropped upstream
connection, 1 GiB each way in bounded memory, and tether's own errors in Google's JSON shape.

The 1 GiB test runs by default (about 20 s here); TETHER_SKIP_1GIB=1 skips it."""
import asyncio
import base64
import email.utils
import hashlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import threading
import time

import pytest

from harness import REPO, TIMEOUT_SCALE, free_port, http_request, make_tempdir, scaled, wait_until

NODE_DIR = os.path.join(REPO, "tests", "node")
UNDER_ASAN = bool(os.environ.get("ASAN_OPTIONS"))
APP_TOKEN = "ya29.app-own-token-that-must-not-travel"
BUCKET = "fw-bucket"


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def clean_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {"GOOGLE_APPLICATION_CREDENTIALS": None, "GCE_METADATA_HOST": None,
            "GCE_METADATA_ROOT": None, "GCE_METADATA_IP": None,
            "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"), "HOME": str(home)}


@pytest.fixture
def fw(tetherd, clean_env, metadata_fake, gcs_fake, tetherd_logs):
    """fw(storage={}, credentials={}, upstream={}, http={}) -> Tetherd with .http (URL),
    forwarding /storage/v1/... to the Storage fake with tokens from the metadata fake. At the
    end every token the fake issued (and the app's) is registered as a secret for the
    session-wide log check, and this test's log is checked now."""
    started = []
    gcs_fake.create_bucket(BUCKET)
    gcs_fake.reset()  # the request log starts empty; the bucket stays

    def start(storage=None, credentials=None, upstream=None, http=None, wait_ready=True):
        port = free_port()
        cfg = {"log": {"level": "debug"},
               "admin": {"listen": [f"tcp://127.0.0.1:{free_port()}"]},
               "http": {"listen": [f"tcp://127.0.0.1:{port}"], **(http or {})},
               "credentials": {"source": "metadata", **(credentials or {})},
               "upstream": {"backoff_initial": "50ms", "backoff_max": "200ms", **(upstream or {})},
               "storage": {"endpoint": gcs_fake.url, **(storage or {})}}
        t = tetherd(cfg, env={**clean_env, "GCE_METADATA_HOST": metadata_fake.host},
                    wait_ready=wait_ready)
        t.http = f"http://127.0.0.1:{port}"
        t.http_port = port
        started.append(t)
        return t

    yield start
    secrets = [APP_TOKEN] + metadata_fake.issued_tokens()
    for t in started:
        text = t.log_text()
        for s in secrets:
            tetherd_logs.forbid(s)
            assert s not in text, f"a token ({s[:8]}...) is in tetherd's log"


def req(t, method, path, body=None, headers=None, timeout=30):
    """(status, headers, body) of one request to tether's http listener."""
    return http_request(t.http, method, path, body=body, headers=headers or {}, timeout=scaled(timeout))


def upstream_auth(gcs_fake):
    """The Authorization value of every request the Storage fake received."""
    return [next((v for k, v in r["headers"].items() if k.lower() == "authorization"), None)
            for r in gcs_fake.requests()]


def assert_tethers_token_only(gcs_fake, metadata_fake):
    issued = set(metadata_fake.issued_tokens())
    auths = upstream_auth(gcs_fake)
    assert auths, "no request reached the Storage fake"
    for a in auths:
        assert a and a.startswith("Bearer "), a
        assert a[7:] in issued, "an upstream request carried a token tether did not get"
        assert APP_TOKEN not in a


def google_error(body, code):
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert err["code"] == code and err["message"] and err["status"], err
    return err


def run_node(script, *args, env=None, timeout=180):
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        pytest.fail("node or tests/node/node_modules missing: run `make deps`", pytrace=False)
    home = make_tempdir("tether-nodehome-")
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("GOOGLE_", "GCE_", "PUBSUB_", "CLOUDSDK_"))}
    e.update(HOME=home, CLOUDSDK_CONFIG=os.path.join(home, "gcloud"),
             GCE_METADATA_HOST="127.0.0.1:1", NO_GCE_CHECK="true", **(env or {}))
    try:
        p = subprocess.run(["node", os.path.join(NODE_DIR, script), *args], cwd=NODE_DIR, env=e,
                           capture_output=True, text=True, timeout=scaled(timeout))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {"ok": False, "error": p.stderr[-2000:]}
    assert p.returncode == 0 and summary.get("ok"), f"{script}: {summary}\nstderr: {p.stderr[-2000:]}"
    return summary


# --- official client ---------------------------------------------------------------------

def test_node_storage_client_through_tether_100mb(fw, gcs_fake, metadata_fake):
    """gcs_check.js (small, multipart, 100 MB resumable, ranged downloads, list, metadata,
    compose, delete) through tether, the app sending a token of its own that tether strips."""
    t = fw()
    summary = run_node("gcs_check.js", "--endpoint", t.http, "--bucket", "fw-node", "--size-mb", "100",
                       "--chunk-mb", "8", "--timeout-s", str(int(scaled(150))),
                       env={"GCS_TOKEN": APP_TOKEN})
    steps = {s["step"] for s in summary["steps"]}
    assert {"large_resumable_upload", "download_range", "list_prefix_delimiter", "delete"} <= steps
    assert_tethers_token_only(gcs_fake, metadata_fake)
    # Chunk PUTs went to tether (rewritten session URI) and on to the fake's session.
    puts = [r for r in gcs_fake.requests() if r["method"] == "PUT" and "upload_id" in r["query"]]
    assert len(puts) >= 13, len(puts)


# own_http1: the fake is on 127.0.0.1, so tether's own HTTP/1.1 client carries these; false
# runs the same through libcurl.
@pytest.mark.parametrize("own_http1", [True, False])
def test_node_client_holding_no_credentials(fw, gcs_fake, metadata_fake, own_http1):
    """An app with no auth at all: the library's default paths (including its own resumable
    session start) work because tether authenticates."""
    t = fw(upstream={"own_http1": own_http1})
    run_node("storage_forward.js", "--endpoint", t.http, "--size-mb", "6", "--chunk-mb", "2")
    assert_tethers_token_only(gcs_fake, metadata_fake)


# --- headers -----------------------------------------------------------------------------

@pytest.mark.parametrize("own_http1", [True, False])
def test_headers_hop_by_hop_request_id_and_auth_strip(fw, gcs_fake, metadata_fake, own_http1):
    t = fw(upstream={"own_http1": own_http1})
    status, h, body = req(t, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=h.txt",
                          b"hello", {"Content-Type": "text/plain", "Authorization": "Bearer " + APP_TOKEN,
                                     "Connection": "keep-alive, X-Hop", "X-Hop": "1", "TE": "trailers",
                                     "Proxy-Authorization": "Basic eDp5", "X-Goog-Custom": "kept",
                                     "X-Request-Id": "req-abc-123"})
    assert status == 200, body
    assert h["x-request-id"] == "req-abc-123"
    (rec,) = gcs_fake.requests()
    hdrs = {k.lower(): v for k, v in rec["headers"].items()}
    assert hdrs["x-goog-custom"] == "kept" and hdrs["content-type"] == "text/plain"
    assert hdrs["x-request-id"] == "req-abc-123"
    for gone in ("x-hop", "te", "proxy-authorization", "keep-alive"):
        assert gone not in hdrs, gone
    assert hdrs["authorization"][7:] in metadata_fake.issued_tokens()
    # Response headers pass unchanged: x-goog-hash, ETag...
    status, h, body = req(t, "GET", f"/storage/v1/b/{BUCKET}/o/h.txt?alt=media", headers={"Range": "bytes=1-3"})
    assert status == 206 and body == b"ell"
    assert h["content-range"] == "bytes 1-3/5" and "crc32c=" in h["x-goog-hash"]
    # HEAD keeps the length of what GET would send.
    c = socket.create_connection(("127.0.0.1", t.http_port), timeout=10)
    c.sendall(f"HEAD /storage/v1/b/{BUCKET}/o/h.txt?alt=media HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = c.recv(65536).decode()
    c.close()
    assert head.startswith("HTTP/1.1 200") and re.search(r"(?im)^content-length: 5\r$", head), head
    # The origin's Date passes (RFC 9110 6.6.1: a proxy adds one only when there is none), once,
    # even from a server whose clock is three days off; tether's own answers carry its clock.
    gcs_fake.configure(clock_skew=-3 * 86400)
    c = socket.create_connection(("127.0.0.1", t.http_port), timeout=10)
    c.sendall(f"GET /storage/v1/b/{BUCKET}/o/h.txt HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = c.recv(65536).decode(errors="replace").split("\r\n\r\n")[0]
    c.close()
    dates = re.findall(r"(?im)^date: (.*)$", head)
    assert len(dates) == 1, head
    skewed = email.utils.parsedate_to_datetime(dates[0]).timestamp()
    assert abs(skewed - (time.time() - 3 * 86400)) < 120, head
    status, h, _ = req(t, "GET", "/no/such/route")  # tether's own 404
    assert status == 404 and abs(email.utils.parsedate_to_datetime(h["date"]).timestamp() - time.time()) < 120


def test_auth_header_pass_and_reject(fw, gcs_fake, metadata_fake):
    t = fw(storage={"auth_header": "pass"})
    status, _, _ = req(t, "GET", f"/storage/v1/b/{BUCKET}/o", headers={"Authorization": "Bearer " + APP_TOKEN})
    assert status == 200
    assert upstream_auth(gcs_fake) == ["Bearer " + APP_TOKEN]
    t2 = fw(storage={"auth_header": "reject"})
    status, _, body = req(t2, "GET", f"/storage/v1/b/{BUCKET}/o", headers={"Authorization": "Bearer x"})
    assert status == 400 and "Authorization" in google_error(body, 400)["message"]
    assert len(gcs_fake.requests()) == 1  # not forwarded
    status, _, _ = req(t2, "GET", f"/storage/v1/b/{BUCKET}/o")
    assert status == 200


def test_resumable_location_rewritten_and_chunks_forwarded(fw, gcs_fake):
    t = fw()
    status, h, _ = req(t, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name=r.bin",
                       b"{}", {"Content-Type": "application/json", "X-Upload-Content-Length": "300000"})
    assert status == 200
    loc = h["location"]
    assert loc.startswith(t.http + "/upload/storage/v1/b/"), loc
    assert "upload_id=" in loc
    data = os.urandom(300000)
    path = loc[len(t.http):]
    status, h, _ = req(t, "PUT", path, data[:262144], {"Content-Range": "bytes 0-262143/300000"})
    assert status == 308 and h["range"] == "bytes=0-262143"
    status, h, _ = req(t, "PUT", path, b"", {"Content-Range": "bytes */300000"})
    assert status == 308 and h["range"] == "bytes=0-262143"
    status, _, body = req(t, "PUT", path, data[262144:], {"Content-Range": "bytes 262144-299999/300000"})
    assert status == 200 and json.loads(body)["size"] == "300000"
    assert req(t, "GET", f"/storage/v1/b/{BUCKET}/o/r.bin?alt=media")[2] == data
    # public_url replaces the Host-derived base.
    t2 = fw(storage={"public_url": "http://tether.local:8080/"})
    _, h, _ = req(t2, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name=s.bin", b"{}",
                  {"Content-Type": "application/json"})
    assert h["location"].startswith("http://tether.local:8080/upload/storage/v1/b/"), h["location"]


# --- tether's own errors -----------------------------------------------------------------

def test_unknown_route_and_body_over_limit(fw, gcs_fake):
    t = fw(storage={"max_body": "1MiB"})
    status, _, body = req(t, "GET", "/storage/v2/b")
    assert status == 404 and google_error(body, 404)["status"] == "NOT_FOUND"
    s = socket.create_connection(("127.0.0.1", t.http_port), timeout=10)
    s.sendall(f"POST /upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=big HTTP/1.1\r\nHost: x\r\n"
              f"Content-Length: {2 * 1024 * 1024}\r\n\r\n".encode() + b"x" * 1000)
    answer = s.makefile("rb").read()
    s.close()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413") and google_error(body, 413)["status"] == "INVALID_ARGUMENT"
    status, _, body = req(t, "GET", "/storage/v1/b/../../_fake/config")
    assert status in (400, 404)
    assert not [r for r in gcs_fake.requests() if "big" in json.dumps(r["query"])]


def test_upstream_unreachable_is_503_json(fw):
    dead = free_port()
    t = fw(storage={"endpoint": f"http://127.0.0.1:{dead}"}, upstream={"max_attempts": 2})
    t0 = time.monotonic()
    status, _, body = req(t, "GET", f"/storage/v1/b/{BUCKET}/o")
    assert status == 503 and google_error(body, 503)["status"] == "UNAVAILABLE"
    assert time.monotonic() - t0 < scaled(5)
    status, _, body = req(t, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=x", b"x")
    assert status == 503 and "127.0.0.1" in google_error(body, 503)["message"]


def test_no_credentials_is_503_json(fw):
    t = fw(credentials={"source": "none"})
    status, _, body = req(t, "GET", f"/storage/v1/b/{BUCKET}/o")
    err = google_error(body, 503)
    assert status == 503 and err["status"] == "UNAVAILABLE" and "no credentials" in err["message"]
    code, doc = t.admin_json("/readyz")
    assert code == 503 and doc["plugins"]["storage"]["ready"] is False


# --- token lifecycle through forwarding --------------------------------------------------

async def _burst(port, path, n):
    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await w.drain()
        data = await r.read()
        w.close()
        return int(data.split(b" ", 2)[1])
    return await asyncio.gather(*(one() for _ in range(n)))


def test_cold_cache_1000_concurrent_requests_one_token_fetch(fw, gcs_fake, metadata_fake):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    metadata_fake.configure(delay=0.5)
    t = fw(credentials={"prefetch": False}, upstream={"max_host_connections": 16})
    before = metadata_fake.stats()["endpoints"].get("token", 0)
    assert before == 0
    statuses = asyncio.run(_burst(t.http_port, f"/storage/v1/b/{BUCKET}/o?maxResults=1", 1000))
    assert statuses == [200] * 1000, {s: statuses.count(s) for s in set(statuses)}
    assert metadata_fake.stats()["endpoints"]["token"] == 1
    assert len(set(upstream_auth(gcs_fake))) == 1
    _, _, metrics = t.admin_get("/metrics")
    m = re.search(r"tether_storage_token_waits_total (\d+)", metrics.decode())
    assert m and int(m.group(1)) >= 1, metrics.decode()[-2000:]


def test_metadata_down_clear_503_within_bound_then_recovery(fw, gcs_fake, metadata_fake):
    metadata_fake.configure(down=True)
    t = fw(credentials={"fetch_timeout": "2s", "backoff_initial": "200ms", "backoff_max": "1s"})
    t0 = time.monotonic()
    status, _, body = req(t, "GET", f"/storage/v1/b/{BUCKET}/o")
    elapsed = time.monotonic() - t0
    err = google_error(body, 503)
    assert status == 503 and err["status"] == "UNAVAILABLE"
    assert "metadata server" in err["message"], err
    assert elapsed < scaled(3.5), elapsed
    assert not gcs_fake.requests()  # nothing went upstream without a token
    metadata_fake.configure(down=False)
    wait_until(lambda: req(t, "GET", f"/storage/v1/b/{BUCKET}/o")[0] == 200, 10,
               "forwarding after the metadata server came back", t.log_path)
    _, _, metrics = t.admin_get("/metrics")
    assert re.search(r"tether_storage_token_failures_total [1-9]", metrics.decode())


def test_upstream_401_invalidates_the_token(fw, gcs_fake, metadata_fake):
    t = fw()
    assert req(t, "GET", f"/storage/v1/b/{BUCKET}/o")[0] == 200
    first = upstream_auth(gcs_fake)[-1]
    metadata_fake.configure(expires_in=1800)  # its next answer is a new token
    gcs_fake.configure(tokens=["no-such-token"])  # the fake now refuses tether's token
    assert req(t, "GET", f"/storage/v1/b/{BUCKET}/o")[0] == 401
    gcs_fake.configure(tokens=None)
    assert req(t, "GET", f"/storage/v1/b/{BUCKET}/o")[0] == 200
    assert upstream_auth(gcs_fake)[-1] != first
    assert "dropped the cached token" in t.log_text()


# --- retries -----------------------------------------------------------------------------

def test_idempotent_requests_retried_on_503_and_429(fw, gcs_fake):
    t = fw()
    assert req(t, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=r.txt", b"data")[0] == 200
    gcs_fake.reset()
    gcs_fake.fault(method="GET", path="/o/r.txt", status=503, times=2)
    gcs_fake.fault(method="GET", path="/o/r.txt", status=429, retry_after=1)
    status, _, body = req(t, "GET", f"/storage/v1/b/{BUCKET}/o/r.txt?alt=media")
    assert status == 200 and body == b"data"
    got = [r["status"] for r in gcs_fake.requests()]
    assert got == [503, 503, 429, 200], got
    # A write with ifGenerationMatch is idempotent too, body replayed.
    gcs_fake.reset()
    gcs_fake.fault(method="POST", path="uploadType=media", status=503)
    status, _, body = req(t, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=p.txt&ifGenerationMatch=0",
                          b"precondition")
    assert status == 200, body
    recs = gcs_fake.requests()
    assert [r["status"] for r in recs] == [503, 200] and recs[1]["body_size"] == len(b"precondition")


def test_non_idempotent_requests_not_replayed(fw, gcs_fake):
    t = fw()
    gcs_fake.fault(method="POST", path="uploadType=media", status=503)
    status, _, body = req(t, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=n.txt", b"once")
    assert status == 503 and google_error(body, 503)
    assert len(gcs_fake.requests()) == 1
    # A dropped connection on a non-idempotent DELETE is not replayed either, even with a
    # connection to the upstream already open (libcurl would resend a body-less request on a
    # reused connection that died before answering: such requests get a connection of their own).
    gcs_fake.reset()
    assert req(t, "GET", f"/storage/v1/b/{BUCKET}/o")[0] == 200  # leaves a connection to reuse
    gcs_fake.fault(method="DELETE", path="/o/n.txt", drop=True)
    status, _, body = req(t, "DELETE", f"/storage/v1/b/{BUCKET}/o/n.txt")
    assert status == 503 and google_error(body, 503)
    assert [r["method"] for r in gcs_fake.requests()] == ["GET", "DELETE"]


def test_connection_drop_during_resumable_upload_resumes(fw, gcs_fake, metadata_fake):
    """The fake drops the connection 1 MB into the second chunk PUT; the client learns where
    to resume through tether and the object's crc32c is that of what was sent (the script
    checks it against its own)."""
    t = fw()
    gcs_fake.fault(method="PUT", path="upload_id", after=1, drop_request_after=1_000_000)
    run_node("storage_forward.js", "--endpoint", t.http, "--size-mb", "12", "--chunk-mb", "4",
             "--name", "resumed.bin", "--retries", "5", "--precondition", "1")
    recs = gcs_fake.requests()
    assert any(r["status"] == "dropped" for r in recs), [r["status"] for r in recs]
    assert_tethers_token_only(gcs_fake, metadata_fake)


# --- streaming in bounded memory ---------------------------------------------------------

GIB = 1024 * 1024 * 1024


def _upload_stream(t, name, total, block):
    s = socket.create_connection(("127.0.0.1", t.http_port), timeout=scaled(120))
    s.sendall((f"POST /upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name} HTTP/1.1\r\n"
               f"Host: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n").encode())
    md5 = hashlib.md5()
    sent = 0
    while sent < total:
        b = block[: min(len(block), total - sent)]
        s.sendall(b)
        md5.update(b)
        sent += len(b)
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    doc = json.loads(f.read(length))
    s.close()
    return status, doc, base64.b64encode(md5.digest()).decode()


def _download_stream(t, name, slow=False):
    s = socket.create_connection(("127.0.0.1", t.http_port), timeout=scaled(120))
    s.sendall(f"GET /storage/v1/b/{BUCKET}/o/{name}?alt=media HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    f = s.makefile("rb")
    assert b" 200 " in f.readline()
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    md5 = hashlib.md5()
    got = 0
    while got < length:
        b = f.read(min(1 << 20, length - got))
        if not b:
            break
        md5.update(b)
        got += len(b)
    s.close()
    return got, base64.b64encode(md5.digest()).decode()


@pytest.mark.skipif(bool(os.environ.get("TETHER_SKIP_1GIB")), reason="TETHER_SKIP_1GIB is set")
def test_1gib_upload_and_download_in_bounded_memory(fw, gcs_fake):
    t = fw()
    block = os.urandom(1 << 20)
    t0 = time.monotonic()
    status, doc, md5 = _upload_stream(t, "gib.bin", GIB, block)
    up_s = time.monotonic() - t0
    assert status == 200 and doc["size"] == str(GIB) and doc["md5Hash"] == md5, doc
    t0 = time.monotonic()
    got, md5_down = _download_stream(t, "gib.bin")
    down_s = time.monotonic() - t0
    assert got == GIB and md5_down == md5
    peak = rss_kib(t.pid, "VmHWM")
    print(f"\n1 GiB through tether: upload {up_s:.1f} s, download {down_s:.1f} s, "
          f"tetherd peak RSS (VmHWM) {peak / 1024:.1f} MiB")
    assert UNDER_ASAN or peak < 64 * 1024, f"peak RSS {peak} KiB"


def test_slow_reader_does_not_grow_memory(fw, gcs_fake):
    t = fw()
    total = 128 * 1024 * 1024
    status, _, _ = _upload_stream(t, "slow.bin", total, os.urandom(1 << 20))
    assert status == 200
    base = rss_kib(t.pid)
    s = socket.create_connection(("127.0.0.1", t.http_port), timeout=scaled(30))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(f"GET /storage/v1/b/{BUCKET}/o/slow.bin?alt=media HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = 0
    for _ in range(30):
        got += len(s.recv(65536))
        time.sleep(0.05)
    rss = rss_kib(t.pid)
    s.close()
    assert got > 0
    assert UNDER_ASAN or rss < base + 8 * 1024, f"RSS {rss} KiB (was {base}) while 128 MiB wait on a slow reader"
    assert req(t, "GET", f"/storage/v1/b/{BUCKET}/o")[0] == 200


# --- metrics -----------------------------------------------------------------------------

def test_metrics_per_route(fw, gcs_fake):
    t = fw()
    req(t, "POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=m.txt", b"12345")
    req(t, "GET", f"/storage/v1/b/{BUCKET}/o/m.txt?alt=media")
    req(t, "GET", f"/storage/v1/b/{BUCKET}/o/none.txt")
    _, _, body = t.admin_get("/metrics")
    text = body.decode()
    assert 'tether_storage_requests_total{route="upload",code="2xx"} 1' in text
    assert 'tether_storage_requests_total{route="download",code="2xx"} 1' in text
    assert 'tether_storage_requests_total{route="objects",code="4xx"} 1' in text
    assert re.search(r'tether_storage_upstream_seconds_count\{route="download"\} 1', text)
    assert re.search(r"tether_storage_bytes_in_total 5\b", text)
    assert re.search(r"tether_storage_bytes_out_total [1-9]", text)
