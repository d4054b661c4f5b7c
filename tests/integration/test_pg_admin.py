"""The pooler's admin database `tether` (SHOW, RELOAD, PAUSE, RESUME), /admin/pools and the pool
metrics, against a real PostgreSQL: every table's columns and a value that proves it is live, who
may connect, errors that leave the connection usable, and no secret in any output."""
import json
import socket
import struct
import subprocess
import threading
import time

import psycopg2
import pytest

from httpc import free_port, request

APP_PW = "app-secret-pw"  # the test cluster's password for `app` (conftest.Postgres)

POOLS_COLS = ["database", "user", "cl_active", "cl_waiting", "cl_idle", "cl_login", "sv_active",
              "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode",
              "paused"]
CLIENTS_COLS = ["type", "user", "database", "state", "addr", "port", "wait", "wait_us", "id", "link",
                "remote_pid", "in_transaction", "application_name"]
SERVERS_COLS = ["type", "user", "database", "state", "addr", "port", "id", "link", "remote_pid",
                "connect_time", "request_time", "tx_status"]
STATS_COLS = ["database", "total_xact_count", "total_query_count", "total_received", "total_sent",
              "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent"]
DATABASES_COLS = ["name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
                  "pool_mode", "max_client_conn", "current_connections", "current_clients", "paused",
                  "disabled"]


def config(postgres, sockdir, admin_port, tcp_port, pool_size=2, mode="transaction", extra="",
           tcp_server=False, admin_token=None):
    backend = (f"host: 127.0.0.1\n      password: ${{PGPW:-{APP_PW}}}" if tcp_server
               else f"host: {postgres.socket_dir}")
    return f"""
admin: {{listen: ["tcp://127.0.0.1:{admin_port}"]{f", auth_token: {admin_token}" if admin_token else ""}}}
log: {{level: debug}}
postgres:
  listen: ["unix://{sockdir}", "tcp://127.0.0.1:{tcp_port}"]
  port: 5432
{extra}
  databases:
    appdb:
      {backend}
      port: {postgres.port}
      user: app
      pool_mode: {mode}
      pool_size: {pool_size}
"""


@pytest.fixture
def pooler(tetherd, postgres, tmp_path):
    def start(**kw):
        sockdir = tmp_path / "pg"
        admin, tcp = free_port(), free_port()
        text = config(postgres, sockdir, admin, tcp, **kw)
        t = tetherd(text)
        t.config_text = text
        t.dsn = f"host={sockdir} port=5432 user=app dbname=appdb"
        t.admin_dsn = f"host={sockdir} port=5432 user=admin dbname=tether"
        t.tcp_admin_dsn = f"host=127.0.0.1 port={tcp} user=admin dbname=tether"
        t.admin = f"tcp://127.0.0.1:{admin}"
        t.sockdir = str(sockdir)
        return t
    return start


def admin_conn(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def show(conn, what):
    """(column names, rows as dicts) of SHOW <what>."""
    with conn.cursor() as cur:
        cur.execute(f"SHOW {what}")
        cols = [d.name for d in cur.description]
        return cols, [dict(zip(cols, r)) for r in cur.fetchall()]


def pool_row(conn):
    return show(conn, "POOLS")[1][0]


def backend_pid(conn):
    with conn.cursor() as cur:
        cur.execute("select pg_backend_pid()")
        return cur.fetchone()[0]


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


def test_show_pools_clients_servers_are_live(pooler):
    t = pooler(pool_size=1)
    adm = admin_conn(t.admin_dsn)
    cols, rows = show(adm, "POOLS")
    assert cols == POOLS_COLS
    assert rows[0]["database"] == "appdb" and rows[0]["user"] == "app"
    assert rows[0]["pool_mode"] == "transaction" and rows[0]["paused"] == 0
    assert rows[0]["cl_active"] == 0

    a = psycopg2.connect(t.dsn, application_name="holder")
    pid = backend_pid(a)  # a transaction is open: a holds the only server
    r = pool_row(adm)
    assert (r["cl_active"], r["sv_active"], r["sv_idle"], r["cl_waiting"]) == (1, 1, 0, 0)

    b = psycopg2.connect(t.dsn)
    done = threading.Event()
    th = threading.Thread(target=lambda: (backend_pid(b), done.set()))
    th.start()
    r = wait_for(lambda: (lambda r: r if r["cl_waiting"] == 1 else None)(pool_row(adm)),
                 what="cl_waiting 1")
    assert r["maxwait"] * 1000000 + r["maxwait_us"] > 0

    cols, clients = show(adm, "CLIENTS")
    assert cols == CLIENTS_COLS
    holder = [c for c in clients if c["application_name"] == "holder"]
    assert len(holder) == 1 and holder[0]["state"] == "active" and holder[0]["in_transaction"] == 1
    assert holder[0]["remote_pid"] == pid and holder[0]["addr"] == "unix"
    assert holder[0]["user"] == "app" and holder[0]["database"] == "appdb"
    assert [c["state"] for c in clients if c["database"] == "appdb"].count("waiting") == 1
    assert any(c["database"] == "tether" and c["user"] == "admin" for c in clients)

    cols, servers = show(adm, "SERVERS")
    assert cols == SERVERS_COLS
    assert len(servers) == 1
    s = servers[0]
    assert (s["state"], s["remote_pid"], s["link"], s["database"]) == ("active", pid, holder[0]["id"], "appdb")

    a.commit()
    th.join(10)
    assert done.is_set()
    b.commit()
    r = pool_row(adm)
    assert (r["cl_active"], r["cl_waiting"], r["sv_active"], r["sv_idle"], r["cl_idle"]) == (0, 0, 0, 1, 2)
    servers = show(adm, "SERVERS")[1]
    assert [s["state"] for s in servers] == ["idle"] and servers[0]["link"] is None
    a.close()
    b.close()
    adm.close()


def test_show_stats_counts_queries_transactions_and_bytes(pooler):
    t = pooler()
    adm = admin_conn(t.admin_dsn)
    cols, rows = show(adm, "STATS")
    assert cols == STATS_COLS
    before = rows[0]
    conn = psycopg2.connect(t.dsn)
    for i in range(5):
        with conn.cursor() as cur:
            cur.execute("select %s", (i,))
        conn.commit()
    conn.close()
    after = show(adm, "STATS")[1][0]
    assert after["database"] == "appdb"
    assert after["total_xact_count"] >= before["total_xact_count"] + 5
    assert after["total_query_count"] >= before["total_query_count"] + 10  # each select, each commit
    assert after["total_received"] > before["total_received"]
    assert after["total_sent"] > before["total_sent"]
    assert after["avg_query_count"] >= 0 and after["avg_recv"] >= 0
    adm.close()


def test_show_databases_config_version_help(pooler, postgres):
    t = pooler(tcp_server=True, extra="  admin_users: [admin, ops]")
    adm = admin_conn(t.admin_dsn)
    cols, dbs = show(adm, "DATABASES")
    assert cols == DATABASES_COLS
    d = dbs[0]
    assert (d["name"], d["host"], d["port"], d["database"], d["force_user"]) == \
        ("appdb", "127.0.0.1", postgres.port, "appdb", "app")
    assert (d["pool_size"], d["pool_mode"], d["paused"], d["disabled"]) == (2, "transaction", 0, 0)

    cols, conf = show(adm, "CONFIG")
    assert cols == ["key", "value", "default", "changeable"]
    by_key = {r["key"]: r for r in conf}
    assert by_key["postgres.databases.appdb.password"]["value"] == "********"
    assert by_key["postgres.databases.appdb.pool_size"]["value"] == "2"
    assert by_key["postgres.databases.appdb.pool_size"]["changeable"] == "yes"
    assert by_key["postgres.admin_users"]["value"] == '["admin","ops"]'
    assert by_key["postgres.query_wait_timeout"]["default"] == "120s"
    assert by_key["postgres.port"]["changeable"] == "no"
    assert not any(APP_PW in (r["value"] or "") for r in conf)

    cols, ver = show(adm, "VERSION")
    assert cols == ["version"] and ver[0]["version"].startswith("tether ")
    cols, help_rows = show(adm, "HELP")
    commands = [r["command"] for r in help_rows]
    for c in ("SHOW POOLS", "SHOW STATS", "RELOAD", "PAUSE [db]", "RESUME [db]"):
        assert c in commands
    adm.close()


def test_psql_show_pools(pooler):
    t = pooler()
    for sql in ("SHOW POOLS", "show pools;", "  Show Pools ;; "):
        r = subprocess.run(["psql", "-h", t.sockdir, "-p", "5432", "-U", "admin", "-d", "tether",
                            "-X", "-A", "-c", sql], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split("|") == POOLS_COLS
        assert lines[1].startswith("appdb|app|")


def test_pause_waits_for_transactions_then_queues_clients_until_resume(pooler):
    t = pooler(pool_size=1)
    adm = admin_conn(t.admin_dsn)
    a = psycopg2.connect(t.dsn)
    backend_pid(a)  # holds the server inside a transaction
    paused = threading.Event()
    errors = []

    def pause():
        try:
            c = admin_conn(t.admin_dsn)
            with c.cursor() as cur:
                cur.execute("PAUSE appdb")
                assert cur.statusmessage == "PAUSE"
            c.close()
            paused.set()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    th = threading.Thread(target=pause)
    th.start()
    time.sleep(0.5)
    assert not paused.is_set(), "PAUSE answered while a transaction was still open"
    assert pool_row(adm)["paused"] == 1  # no new server handed out meanwhile
    a.commit()
    th.join(10)
    assert paused.is_set() and errors == []

    b = psycopg2.connect(t.dsn)
    got = []
    tb = threading.Thread(target=lambda: got.append(backend_pid(b)))
    tb.start()
    time.sleep(0.7)
    assert got == [], "a query ran while the pool was paused"
    r = pool_row(adm)
    assert (r["paused"], r["cl_waiting"], r["sv_active"]) == (1, 1, 0)
    with adm.cursor() as cur:
        cur.execute("RESUME appdb")
        assert cur.statusmessage == "RESUME"
    tb.join(10)
    assert len(got) == 1
    b.commit()
    assert pool_row(adm)["paused"] == 0
    # PAUSE with nothing in flight answers at once; RESUME with no name resumes every pool
    with adm.cursor() as cur:
        cur.execute("PAUSE")
        cur.execute("RESUME")
    assert backend_pid(a)
    a.commit()
    with pytest.raises(psycopg2.Error) as e:
        with adm.cursor() as cur:
            cur.execute("PAUSE nosuchdb")
    assert e.value.pgcode == "3D000"
    assert show(adm, "VERSION")[1]
    for c in (a, b, adm):
        c.close()


def test_reload(pooler, tmp_path):
    t = pooler(pool_size=2)
    adm = admin_conn(t.admin_dsn)
    assert show(adm, "DATABASES")[1][0]["pool_size"] == 2
    with open(t.config_path, "w") as f:
        f.write(t.config_text.replace("pool_size: 2", "pool_size: 7"))
    with adm.cursor() as cur:
        cur.execute("RELOAD")
        assert cur.statusmessage == "RELOAD"
    t.wait_notify("READY=1")  # the core's own word that the reload finished
    assert show(adm, "DATABASES")[1][0]["pool_size"] == 7
    conf = {r["key"]: r["value"] for r in show(adm, "CONFIG")[1]}
    assert conf["postgres.databases.appdb.pool_size"] == "7"
    assert "config reloaded" in t.log_text()
    adm.close()


def test_errors_leave_the_connection_usable(pooler):
    t = pooler()
    adm = admin_conn(t.admin_dsn)
    for sql, code in (("SHOW NONSENSE", "42601"), ("DROP TABLE x", "42601"),
                      ("SHOW POOLS; SHOW STATS", "42601"), ("SELECT 1", "42601")):
        with pytest.raises(psycopg2.Error) as e:
            with adm.cursor() as cur:
                cur.execute(sql)
        assert e.value.pgcode == code, sql
        if "SELECT" in sql:
            msg = e.value.pgerror
            for c in ("SHOW POOLS", "CLIENTS", "SERVERS", "STATS", "DATABASES", "CONFIG", "RELOAD",
                      "PAUSE", "RESUME"):
                assert c in msg
        assert show(adm, "VERSION")[1]  # still usable
    adm.close()


def raw_admin(sockdir, user="admin"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(f"{sockdir}/.s.PGSQL.5432")
    body = struct.pack("!I", 196608) + f"user\0{user}\0database\0tether\0\0".encode()
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    assert read_until_ready(s)[-1][0] == b"Z"
    return s


def read_until_ready(s):
    """Messages (type, body) up to and including ReadyForQuery."""
    buf, msgs = b"", []
    while True:
        while len(buf) >= 5:
            n = struct.unpack("!I", buf[1:5])[0]
            if len(buf) < n + 1:
                break
            msgs.append((buf[:1], buf[5:n + 1]))
            buf = buf[n + 1:]
            if msgs[-1][0] == b"Z":
                return msgs
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"closed after {msgs!r}")
        buf += chunk


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def test_extended_protocol_is_refused_and_the_connection_stays_usable(pooler):
    t = pooler()
    s = raw_admin(t.sockdir)
    s.sendall(msg(b"P", b"\0SHOW POOLS\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0") +
              msg(b"E", b"\0\0\0\0\0") + msg(b"S"))
    got = read_until_ready(s)
    assert [m[0] for m in got] == [b"E", b"Z"]
    assert b"0A000" in got[0][1] and b"simple query protocol" in got[0][1]
    s.sendall(msg(b"Q", b"SHOW VERSION\0"))
    got = read_until_ready(s)
    assert [m[0] for m in got] == [b"T", b"D", b"C", b"Z"]
    assert got[2][1] == b"SHOW\0" and got[3][1] == b"I"
    # RowDescription: one text column named version
    assert got[0][1][:2] == b"\0\1" and got[0][1][2:10] == b"version\0"
    assert struct.unpack("!I", got[0][1][16:20])[0] == 25
    s.sendall(msg(b"Q", b" ; \0"))  # an empty query is answered as a server does
    assert [m[0] for m in read_until_ready(s)] == [b"I", b"Z"]
    s.sendall(msg(b"S"))  # a lone Sync: just ReadyForQuery
    assert [m[0] for m in read_until_ready(s)] == [b"Z"]
    s.sendall(msg(b"X"))
    s.close()


def test_who_may_use_the_admin_database(pooler, tetherd_logs):
    # default (admin_users empty): a unix-socket peer running as tetherd's user, nobody over tcp
    t = pooler()
    admin_conn(t.admin_dsn).close()
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(t.tcp_admin_dsn)
    assert "may not use the admin database" in str(e.value)
    t.close()

    t = pooler(extra="  admin_users: [admin]")
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(t.admin_dsn.replace("user=admin", "user=app"))
    assert 'user "app" may not use the admin database' in str(e.value)
    adm = admin_conn(t.tcp_admin_dsn)  # listed: over tcp too
    assert show(adm, "POOLS")[1][0]["database"] == "appdb"
    adm.close()
    # the pool itself is unaffected by refused admin logins
    conn = psycopg2.connect(t.dsn)
    assert backend_pid(conn)
    conn.close()


def test_admin_pools_json_and_metrics(pooler):
    t = pooler(tcp_server=True, pool_size=1)
    a = psycopg2.connect(t.dsn)
    pid = backend_pid(a)
    status, headers, body = request(t.admin, "GET", "/admin/pools")
    assert status == 200 and headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["clients"] == 1 and doc["servers"] == 1 and doc["clients_active"] == 1
    p = doc["pools"][0]
    assert p["database"] == "appdb" and p["cl_active"] == 1 and p["sv_active"] == 1
    assert p["pool_size"] == 1 and p["pool_mode"] == "transaction" and p["paused"] == 0
    assert p["total_query_count"] >= 1 and "avg_recv" in p
    assert APP_PW not in body.decode()
    status, _, body = request(t.admin, "GET", "/admin/pools?detail=1")
    doc = json.loads(body)
    assert [c["remote_pid"] for c in doc["client_list"]] == [pid]
    assert doc["server_list"][0]["remote_pid"] == pid
    assert APP_PW not in body.decode()
    assert request(t.admin, "POST", "/admin/pools", body=b"{}")[0] == 405

    metrics = request(t.admin, "GET", "/metrics")[2].decode()
    assert 'tether_pg_clients_active{pool="appdb"} 1' in metrics
    assert 'tether_pg_pool_paused{pool="appdb"} 0' in metrics
    assert 'tether_pg_servers_login{pool="appdb"} 0' in metrics
    assert 'tether_pg_client_maxwait_seconds{pool="appdb"}' in metrics
    a.commit()
    a.close()
    # nothing secret in the log either (the session-wide tetherd_logs check covers APP_PW too)
    assert APP_PW not in t.log_text()


def test_admin_pools_needs_the_admin_token(pooler):
    t = pooler(admin_token="s3cret-admin-token")
    status, headers, body = request(t.admin, "GET", "/admin/pools")
    assert status == 401 and b"auth_token" in body
    status, _, body = request(t.admin, "GET", "/admin/pools",
                              headers={"Authorization": "Bearer s3cret-admin-token"})
    assert status == 200 and json.loads(body)["pools"][0]["database"] == "appdb"


def test_pause_left_or_overtaken(pooler):
    """An admin client that goes away while its PAUSE waits leaves the pool paused (and nothing
    dangling); a RESUME from elsewhere ends a waiting PAUSE with an error."""
    t = pooler(pool_size=1)
    a = psycopg2.connect(t.dsn)
    backend_pid(a)  # a transaction holds the server: PAUSE has to wait
    s = raw_admin(t.sockdir)
    s.sendall(msg(b"Q", b"PAUSE appdb\0"))
    time.sleep(0.3)
    s.close()
    adm = admin_conn(t.admin_dsn)
    wait_for(lambda: [c["database"] for c in show(adm, "CLIENTS")[1]].count("tether") == 1,
             what="the departed admin client gone")
    assert pool_row(adm)["paused"] == 1
    with adm.cursor() as cur:
        cur.execute("RESUME")

    s = raw_admin(t.sockdir)
    s.sendall(msg(b"Q", b"PAUSE\0"))
    time.sleep(0.3)
    with adm.cursor() as cur:
        cur.execute("RESUME appdb")
    got = read_until_ready(s)
    assert [m[0] for m in got] == [b"E", b"Z"] and b"57014" in got[0][1]
    s.sendall(msg(b"Q", b"SHOW VERSION\0"))
    assert [m[0] for m in read_until_ready(s)] == [b"T", b"D", b"C", b"Z"]
    s.close()
    a.commit()
    assert backend_pid(a)  # the pool lends again
    a.close()
    adm.close()
