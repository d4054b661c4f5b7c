"""The fixtures themselves: each real service answers over TCP and its unix socket, survives the
stop/kill/restart calls later tests use, and the tetherd factory works against a stand-in
daemon that speaks sd_notify (so these tests do not need tetherd built)."""
import base64
import http.server
import json
import os
import socketserver
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest

from harness import StartError, Tetherd, free_port, spawn, unix_http_get, wait_until


def test_postgres_tcp_with_scram_and_unix_socket(postgres):
    import psycopg2
    c = postgres.connect(postgres.app_user, postgres.app_db, postgres.app_password)
    with c.cursor() as cur:
        cur.execute("SELECT current_user, current_database(), inet_server_port()")
        assert cur.fetchone() == ("app", "appdb", postgres.port)
    c.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        postgres.connect(postgres.app_user, postgres.app_db, "wrong-password")
    # Through the socket directory, as the superuser.
    assert os.path.exists(os.path.join(postgres.socket_dir, f".s.PGSQL.{postgres.port}"))
    c = psycopg2.connect(host=postgres.socket_dir, port=postgres.port, user="postgres",
                         dbname="appdb")
    with c.cursor() as cur:
        cur.execute("SELECT inet_server_port() IS NULL, current_setting('max_connections')")
        assert cur.fetchone() == (True, "200")
    c.close()
    assert postgres.query("SELECT rolname FROM pg_roles WHERE rolname = 'app'") == [("app",)]


def test_postgres_kill_and_restart(postgres):
    import psycopg2
    c = postgres.connect(unix=True)
    postgres.kill()
    with pytest.raises(psycopg2.Error):
        with c.cursor() as cur:
            cur.execute("SELECT 1")
    with pytest.raises(psycopg2.OperationalError):
        postgres.connect(connect_timeout=1)
    postgres.start()
    assert postgres.query("SELECT 1") == [(1,)]
    postgres.restart()
    assert postgres.query("SELECT count(*) FROM pg_database WHERE datname = 'appdb'") == [(1,)]
    postgres.stop()  # left stopped on purpose: the next test gets it running again


def test_postgres_is_running_again(postgres):
    assert postgres.running and postgres.query("SELECT 2") == [(2,)]


def test_redis_tcp_and_unix(redis):
    assert redis.command("PING") == "PONG"
    assert redis.command("PING", unix=True) == "PONG"
    assert redis.command("SET", "fixture:k", "v") == "OK"
    assert redis.command("GET", "fixture:k", unix=True) == b"v"
    assert redis.command("CONFIG", "GET", "bind")[1] == b"127.0.0.1"
    assert redis.command("CONFIG", "GET", "save")[1] == b""


def test_redis_restart_keeps_data_only_when_asked(redis):
    redis.command("SET", "fixture:kept", "1")
    redis.restart(keep_data=True)
    assert redis.command("GET", "fixture:kept") == b"1"
    redis.restart(keep_data=False)
    assert redis.command("GET", "fixture:kept") is None
    redis.command("SET", "fixture:kept", "2")
    redis.stop()
    with pytest.raises(OSError):
        redis.command("PING")
    redis.start()
    assert redis.command("GET", "fixture:kept", unix=True) is None


def _rest(url, method, doc=None):
    req = urllib.request.Request(url, method=method,
                                 data=json.dumps(doc).encode() if doc is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def test_pubsub_emulator_topic_publish_pull(pubsub_emulator):
    emu = pubsub_emulator
    base = f"{emu.url}/v1/projects/{emu.project}"
    topic = _rest(f"{base}/topics/fixture-topic", "PUT", {})
    assert topic["name"] == f"projects/{emu.project}/topics/fixture-topic"
    _rest(f"{base}/subscriptions/fixture-sub", "PUT",
          {"topic": topic["name"], "ackDeadlineSeconds": 10})
    data = base64.b64encode(b"hello tether").decode()
    ids = _rest(f"{base}/topics/fixture-topic:publish", "POST",
                {"messages": [{"data": data, "attributes": {"k": "v"}}]})["messageIds"]
    assert len(ids) == 1
    got = emu.pull("fixture-sub")
    assert [m["message"]["messageId"] for m in got] == ids
    assert base64.b64decode(got[0]["message"]["data"]) == b"hello tether"
    assert got[0]["message"]["attributes"] == {"k": "v"}
    with pytest.raises(urllib.error.HTTPError) as e:
        _rest(f"{base}/topics/fixture-topic", "PUT", {})
    assert e.value.code == 409
    e.value.close()
    assert emu.env["PUBSUB_EMULATOR_HOST"] == emu.host_port


def test_unix_http_get(tmp_path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def get_request(self):  # BaseHTTPRequestHandler wants a (host, port) client address
            conn, _ = super().get_request()
            return conn, ("local", 0)

    path = str(tmp_path / "h.sock")
    srv = Server(path, Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, hdrs, body = unix_http_get(path, "/readyz?x=1")
        assert status == 200 and hdrs["content-type"] == "application/json"
        assert json.loads(body) == {"path": "/readyz?x=1"}
    finally:
        srv.shutdown()
        srv.server_close()


def test_wait_until_fails_fast_with_log_tail(tmp_path):
    log = str(tmp_path / "svc.log")
    proc = spawn(["sh", "-c", "echo 'FATAL: cannot bind'; exit 3"], log)
    t0 = time.monotonic()
    with pytest.raises(StartError) as e:
        wait_until(lambda: False, 30, "svc", log, proc)
    assert time.monotonic() - t0 < 5
    assert "exited with status 3" in str(e.value) and "FATAL: cannot bind" in str(e.value)
    with pytest.raises(StartError, match="not ready after"):
        wait_until(lambda: False, 0.2, "svc")


# A stand-in for tetherd: sd_notify over NOTIFY_SOCKET, admin /healthz on the first quoted
# string of its config, SIGHUP -> RELOADING=1 then READY=1, SIGTERM -> STOPPING=1 and exit 0.
STAND_IN = textwrap.dedent("""\
    import http.server, os, re, signal, socket, socketserver, sys, threading
    cfg = open(sys.argv[sys.argv.index("-c") + 1]).read()
    url = re.search(r"(?:tcp|unix)://[\\w./:${}-]+", cfg).group(0)
    url = url.replace("${SOCK_DIR}", os.environ.get("SOCK_DIR", ""))
    def notify(msg):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(msg.encode(), os.environ["NOTIFY_SOCKET"])
        s.close()
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "15")
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}')
        def log_message(self, *a):
            pass
    if url.startswith("unix://"):
        class S(socketserver.UnixStreamServer):
            def get_request(self):
                return self.socket.accept()[0], ("local", 0)
        srv = S(url[7:], H)
    else:
        host, port = url[6:].rsplit(":", 1)
        srv = socketserver.TCPServer((host, int(port)), H)
    def hup(*a):
        notify("RELOADING=1\\nMONOTONIC_USEC=1")
        print("config reloaded", flush=True)
        notify("READY=1")
    def term(*a):
        notify("STOPPING=1")
        print("exited", flush=True)
        os._exit(0)
    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, term)
    print("starting with", os.environ.get("EXTRA"), sys.argv[3:], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    notify("STATUS=starting")
    notify("READY=1\\nSTATUS=serving")
    while True:
        signal.pause()
""")


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / "fake-tetherd"
    path.write_text(f"#!{sys.executable}\n" + STAND_IN)
    path.chmod(0o755)
    return str(path)


def test_tetherd_factory_tcp(tetherd, stand_in, tetherd_logs):
    port = free_port()
    t = tetherd(f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\n', env={"EXTRA": "x1"},
                args=["--log-level", "debug"], binary=stand_in)
    assert t.admin_url == f"tcp://127.0.0.1:{port}"
    assert t.admin_json("/healthz") == (200, {"status": "ok"})
    t.reload()
    t.wait_notify("RELOADING=1", timeout=5)
    t.wait_notify("READY=1", timeout=5)
    assert "config reloaded" in t.log_text()
    assert "x1" in t.log_text() and "--log-level" in t.log_text()
    assert t.terminate() == 0
    t.wait_notify("STOPPING=1", timeout=5)  # sent before exit, still readable after
    assert tetherd_logs.grep("config reloaded")[-1][1] == t.log_path
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="exited with status 0 before READY=1"):
        t.wait_notify("READY=1", timeout=5)
    assert time.monotonic() - t0 < 2


def test_tetherd_factory_unix_and_dict_config(tetherd, stand_in, tmp_path):
    sock = tmp_path / "admin.sock"
    t = tetherd({"admin": {"listen": ["unix://${SOCK_DIR}/admin.sock"]}},
                env={"SOCK_DIR": str(tmp_path)}, binary=stand_in)
    assert t.admin_url == f"unix://{sock}"  # ${...} expanded as tetherd would
    assert t.admin_get("/healthz")[0] == 200
    t.kill()
    os.unlink(sock)
    t2 = tetherd(f'admin: {{listen: ["unix://{sock}"]}}\n', binary=stand_in)
    assert t2.admin_get("/readyz")[0] == 200
    assert t2.config_path != t.config_path
    # t2 is left running: the fixture's teardown stops it.


def test_tetherd_reports_early_exit(tmp_path):
    """A daemon that exits before READY=1 fails the wait at once, with its log."""
    t = Tetherd("/bin/sh", str(tmp_path / "d"), "x: 1\n")
    try:
        t0 = time.monotonic()
        with pytest.raises(AssertionError, match="exited with status") as e:
            t.wait_notify("READY=1", timeout=20)
        assert time.monotonic() - t0 < 5
        assert "tetherd.log (tail)" in str(e.value)
    finally:
        t.close()
