"""Transaction pooling with what real drivers do on top of plain queries: named prepared
statements moving between servers (psycopg 3, asyncpg, pgbench -M prepared, raw pipelines with
errors), DEALLOCATE / DISCARD ALL, and client settings (startup parameters, SET) re-applied on
whichever server a client gets."""
import asyncio
import os
import struct
import subprocess
import threading
import time

import psycopg
import psycopg2
import pytest

from test_pg import pooler  # noqa: F401  (fixture)
from httpc import free_port
from test_pg import raw_pg

PGBENCH = os.path.join(os.environ.get("TETHER_PG_BIN", "/usr/lib/postgresql/15/bin"), "pgbench")


def test_psycopg3_prepared_statements_across_servers(pooler):
    t = pooler(pool_size=2)
    errors = []

    def worker(i):
        try:
            with psycopg.connect(t.dsn, autocommit=True, prepare_threshold=0) as conn:
                for j in range(40):
                    # autocommit: every statement may land on another server
                    row = conn.execute("select %s::int * %s::int, %s::text", (i, j, f"w{i}"), prepare=True).fetchone()
                    assert row == (i * j, f"w{i}")
                    row = conn.execute("select count(*) from generate_series(1, %s::int)", (j + 1,),
                                       prepare=True).fetchone()
                    assert row == (j + 1,)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    # the servers hold the shared names, not the clients' own
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("select name from pg_prepared_statements").fetchall()]
    assert all(n.startswith("tether_") for n in names), names


def test_psycopg3_small_cache_deallocates(pooler):
    """prepared_max=2 makes psycopg DEALLOCATE evicted statements, inside and outside
    transactions."""
    t = pooler(pool_size=2)
    with psycopg.connect(t.dsn, autocommit=True, prepare_threshold=0) as conn:
        conn.prepared_max = 2
        for j in range(30):
            q = ["select %s::int + 1", "select %s::int + 2", "select %s::int + 3"][j % 3]
            assert conn.execute(q, (j,), prepare=True).fetchone()[0] == j + 1 + j % 3
        with conn.transaction():
            for j in range(9):
                q = ["select %s::int + 10", "select %s::int + 20", "select %s::int + 30"][j % 3]
                assert conn.execute(q, (j,), prepare=True).fetchone()[0] == j + 10 * (1 + j % 3)
        # (no DISCARD ALL here: psycopg 3.1 keeps its cache across one and fails against
        # PostgreSQL itself; test_sql_deallocate_and_discard covers it at the protocol level)


def test_psycopg3_pipeline_with_an_error(pooler):
    t = pooler(pool_size=1)
    with psycopg.connect(t.dsn, autocommit=True, prepare_threshold=0) as conn:
        with conn.pipeline() as p:
            c1 = conn.execute("select %s::int", (1,), prepare=True)
            c2 = conn.execute("select %s::int * 2", (2,), prepare=True)
            p.sync()
            assert c1.fetchone() == (1,)
            assert c2.fetchone() == (4,)
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.pipeline():
                conn.execute("select 1 / %s::int", (0,), prepare=True)
                conn.execute("select %s::int", (3,), prepare=True)
        # the connection and its statements still work afterwards, on any server
        assert conn.execute("select %s::int * 2", (21,), prepare=True).fetchone() == (42,)
        assert conn.execute("select 1 / %s::int", (1,), prepare=True).fetchone() == (1,)


def test_asyncpg_many_tasks_prepared_and_cancel(pooler):
    asyncpg = pytest.importorskip("asyncpg")
    t = pooler(pool_size=10)

    async def main():
        pool = await asyncpg.create_pool(host=t.sockdir, port=5432, user="app", database="appdb",
                                         min_size=100, max_size=100)
        try:
            async def task(i):
                async with pool.acquire() as conn:
                    assert await conn.fetchval("select $1::int + 1", i) == i + 1
                    stmt = await conn.prepare("select $1::text || $2::text")
                    assert await stmt.fetchval("a", str(i)) == f"a{i}"
                    rows = await conn.fetch("select g from generate_series(1, $1::int) g", i % 7 + 1)
                    assert len(rows) == i % 7 + 1
            await asyncio.gather(*(task(i) for i in range(1000)))
            # a timeout makes asyncpg send CancelRequest; the connection stays usable
            async with pool.acquire() as conn:
                with pytest.raises(asyncio.TimeoutError):
                    await conn.fetchval("select pg_sleep(30)", timeout=0.5)
                assert await conn.fetchval("select $1::int * 3", 5) == 15
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_pgbench_all_protocols(pooler, postgres, mode):
    t = pooler(pool_size=4, mode=mode)
    env = dict(os.environ, PGHOST=t.sockdir, PGPORT="5432", PGUSER="app", PGDATABASE="appdb")
    r = subprocess.run([PGBENCH, "-i", "-s", "1", "-q"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for proto in ("simple", "extended", "prepared"):
        for extra in (["-S"], []):
            # one thread per client: pgbench 15 prepares with blocking calls, so a thread whose
            # client queues for a server would stall its other clients holding servers
            r = subprocess.run([PGBENCH, "-M", proto, "-c", "8", "-j", "8", "-t", "30", "-n"] + extra, env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, (proto, extra, r.stdout, r.stderr)
            assert "number of failed transactions: 0" in r.stdout or "aborted" not in r.stdout, r.stdout
            assert "number of transactions actually processed: 240/240" in r.stdout, r.stdout


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def parse(name, q):
    return msg(b"P", name + b"\0" + q + b"\0" + b"\0\0")


def bind(stmt, portal=b""):
    return msg(b"B", portal + b"\0" + stmt + b"\0" + b"\0\0" + b"\0\0" + b"\0\0")


def execute(portal=b""):
    return msg(b"E", portal + b"\0" + b"\0\0\0\0")


SYNC = msg(b"S")


def read_until_ready(s, count=1, messages=None):
    """Message types up to the count-th ReadyForQuery (or the first `messages` messages)."""
    buf, types = b"", []
    while count and (messages is None or len(types) < messages):
        while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
            chunk = s.recv(65536)
            assert chunk, f"closed after {types}"
            buf += chunk
        n = 1 + struct.unpack("!I", buf[1:5])[0]
        types.append(buf[:1].decode())
        if buf[:1] == b"Z":
            count -= 1
        buf = buf[n:]
    return "".join(types)


def login(sockdir):
    s = raw_pg(sockdir)
    s.settimeout(10)
    body = struct.pack("!I", 196608) + b"user\0app\0database\0appdb\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    assert read_until_ready(s).endswith("KZ")
    return s


def test_raw_pipeline_errors_and_closes(pooler):
    """Answers stay in the order the client expects when tether stands in for some of them."""
    t = pooler(pool_size=1)
    s = login(t.sockdir)
    s2 = login(t.sockdir)
    # s prepares "a"; s2 prepares the same text under "b" (the server already has it)
    s.sendall(parse(b"a", b"select 1") + bind(b"a") + execute() + SYNC)
    assert read_until_ready(s) == "12DCZ"
    s2.sendall(parse(b"b", b"select 1") + bind(b"b") + execute() + SYNC)
    assert read_until_ready(s2) == "12DCZ"
    # an error skips the rest up to Sync; the statement that failed does not exist afterwards
    s.sendall(parse(b"bad", b"select nope") + bind(b"bad") + execute() + parse(b"c", b"select 2") + SYNC)
    assert read_until_ready(s) == "EZ"
    s.sendall(bind(b"bad") + execute() + SYNC)
    assert read_until_ready(s) == "EZ"  # prepared statement "bad" does not exist
    # Close of the client's name, then its Bind fails; s2's own name still works
    s.sendall(msg(b"C", b"Sa\0") + SYNC)
    assert read_until_ready(s) == "3Z"
    s.sendall(bind(b"a") + execute() + SYNC)
    assert read_until_ready(s) == "EZ"
    s2.sendall(bind(b"b") + execute() + SYNC)
    assert read_until_ready(s2) == "2DCZ"
    # Describe of a statement, Flush-separated pipeline, two Syncs in one write
    s2.sendall(msg(b"D", b"Sb\0") + msg(b"H"))
    assert read_until_ready(s2, messages=2) == "tT"  # answered without a Sync
    s2.sendall(SYNC + bind(b"b") + execute() + SYNC)
    assert read_until_ready(s2, 2) == "Z2DCZ"
    for c in (s, s2):
        c.sendall(msg(b"X"))
        c.close()


def test_sql_deallocate_and_discard(pooler):
    t = pooler(pool_size=1)
    s = login(t.sockdir)
    s.sendall(parse(b"p1", b"select 42") + SYNC)
    assert read_until_ready(s) == "1Z"
    # outside a transaction tether answers DEALLOCATE itself
    s.sendall(msg(b"Q", b"DEALLOCATE p1\0"))
    assert read_until_ready(s) == "CZ"
    s.sendall(bind(b"p1") + execute() + SYNC)
    assert read_until_ready(s) == "EZ"
    # inside one, it goes to the server under the shared name
    s.sendall(parse(b"p2", b"select 43") + SYNC + msg(b"Q", b"begin\0"))
    assert read_until_ready(s, 2) == "1ZCZ"
    s.sendall(msg(b"Q", b"deallocate prepare \"p2\";\0"))
    assert read_until_ready(s) == "CZ"
    s.sendall(msg(b"Q", b"commit\0") + parse(b"p3", b"select 44") + SYNC + msg(b"Q", b"DISCARD ALL\0"))
    assert read_until_ready(s, 3).replace("S", "") == "CZ1ZCZ"  # DISCARD may report settings
    s.sendall(bind(b"p3") + execute() + SYNC)
    assert read_until_ready(s) == "EZ"
    # a name the client never prepared: the server's own error
    s.sendall(msg(b"Q", b"DEALLOCATE nosuch\0"))
    assert read_until_ready(s) == "EZ"
    s.close()


def test_startup_settings_follow_the_client(pooler):
    """Two clients with different settings share one server: each sees its own."""
    t = pooler(pool_size=1)
    a = psycopg2.connect(t.dsn, options="-c TimeZone=America/New_York -c extra_float_digits=0",
                         application_name="client-a")
    b = psycopg2.connect(t.dsn + " options='-c search_path=other,public'", application_name="client-b")
    a.autocommit = b.autocommit = True
    for _ in range(3):
        with a.cursor() as ca, b.cursor() as cb:
            ca.execute("show timezone")
            assert ca.fetchone()[0] == "America/New_York"
            cb.execute("show timezone")
            assert cb.fetchone()[0] != "America/New_York"
            ca.execute("show extra_float_digits")
            assert ca.fetchone()[0] == "0"
            cb.execute("show extra_float_digits")
            assert cb.fetchone()[0] == "1"
            cb.execute("show search_path")
            assert cb.fetchone()[0].replace(" ", "") == "other,public"
            ca.execute("show search_path")
            assert ca.fetchone()[0] == '"$user", public'
            ca.execute("select application_name from pg_stat_activity where pid = pg_backend_pid()")
            assert ca.fetchone()[0] == "client-a"
            cb.execute("select current_setting('application_name')")
            assert cb.fetchone()[0] == "client-b"
    # SET in transaction mode sticks for the client (reported by the server, re-applied)
    with a.cursor() as ca, b.cursor() as cb:
        ca.execute("set datestyle = 'German'")
        cb.execute("select '2024-01-31'::date::text")
        assert cb.fetchone()[0] == "2024-01-31"
        ca.execute("select '2024-01-31'::date::text")
        assert ca.fetchone()[0] == "31.01.2024"
        cb.execute("show datestyle")
        assert cb.fetchone()[0] == "ISO, MDY"
    a.close()
    b.close()


def test_clients_with_the_same_settings_after_changes(pooler):
    """Clients that ask for the same settings share a server: what one of them changes on it
    (SET of a reported setting, DISCARD ALL of tether's own SETs) is put right for the next."""
    t = pooler(pool_size=1)
    opts = "-c TimeZone=UTC -c statement_timeout=1234"
    conns = [psycopg2.connect(t.dsn, options=opts, application_name="same") for _ in range(3)]
    for c in conns:
        c.autocommit = True

    def show(c, name):
        with c.cursor() as cur:
            cur.execute(f"show {name}")
            return cur.fetchone()[0]

    for _ in range(2):
        for c in conns:
            assert (show(c, "timezone"), show(c, "statement_timeout")) == ("UTC", "1234ms")
    a, b, c = conns
    with a.cursor() as cur:
        cur.execute("set timezone = 'Asia/Tokyo'")
    assert show(b, "timezone") == "UTC" and show(a, "timezone") == "Asia/Tokyo"
    assert show(c, "timezone") == "UTC"
    with b.cursor() as cur:
        cur.execute("discard all")  # drops tether's SET statement_timeout on the server too
    assert show(c, "statement_timeout") == "1234ms" and show(b, "statement_timeout") == "1234ms"
    assert show(a, "timezone") == "Asia/Tokyo" and show(c, "timezone") == "UTC"
    for x in conns:
        x.close()


def test_bad_startup_setting_is_a_clear_error(pooler):
    t = pooler(pool_size=1)
    # the server refuses the value when tether applies it, at the client's first query
    r = subprocess.run(["psql", t.dsn + " options='-c TimeZone=Nowhere/Invalid'", "-c", "select 1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert 'could not apply the connection\'s settings on the server: invalid value for parameter "TimeZone"' \
        in r.stderr, r.stderr
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(t.dsn, options="-X")
    assert "unsupported startup option" in str(e.value)
    # others are unaffected
    with psycopg2.connect(t.dsn) as conn, conn.cursor() as cur:
        cur.execute("show timezone")
        assert cur.fetchone()[0]


def test_session_mode_applies_startup_settings(pooler):
    t = pooler(pool_size=1, mode="session")
    with psycopg2.connect(t.dsn, options="-c TimeZone=Asia/Tokyo") as conn, conn.cursor() as cur:
        cur.execute("show timezone")
        assert cur.fetchone()[0] == "Asia/Tokyo"
    with psycopg2.connect(t.dsn) as conn, conn.cursor() as cur:
        cur.execute("show timezone")
        assert cur.fetchone()[0] != "Asia/Tokyo"


def test_listen_pins_the_client_until_unlisten(pooler):
    """LISTEN in transaction mode keeps the client's server so no notification is lost; UNLISTEN *
    or a disconnect gives it back (cleaned with UNLISTEN *)."""
    import select
    t = pooler(pool_size=2, extra="  query_wait_timeout: 2s")
    a = psycopg2.connect(t.dsn)
    b = psycopg2.connect(t.dsn)
    a.autocommit = b.autocommit = True
    with a.cursor() as ca:
        ca.execute("LISTEN jobs")
    with b.cursor() as cb:
        for i in range(3):  # b's transactions go through the other server meanwhile
            cb.execute("NOTIFY jobs, %s", (f"n{i}",))
    got = []
    deadline = time.time() + 10
    while len(got) < 3 and time.time() < deadline:
        select.select([a], [], [], 1)
        a.poll()
        while a.notifies:
            got.append(a.notifies.pop(0).payload)
    assert got == ["n0", "n1", "n2"]
    # a third client can still get the other server
    c = psycopg2.connect(t.dsn)
    c.autocommit = True
    with c.cursor() as cc:
        cc.execute("select 1")
    # a pinned client leaving: its server is cleaned and reused, no stray notification
    a.close()
    time.sleep(0.2)
    for conn in (b, c):
        with conn.cursor() as cur:
            cur.execute("NOTIFY jobs, 'after'")
            cur.execute("select count(*) from pg_listening_channels()")
            assert cur.fetchone()[0] == 0
    # UNLISTEN * unpins: with both servers free again, two more clients work at once
    d = psycopg2.connect(t.dsn)
    d.autocommit = True
    with d.cursor() as cd:
        cd.execute("LISTEN x")
        cd.execute("UNLISTEN *")
    with b.cursor() as cb, c.cursor() as cc:
        cb.execute("begin")
        cc.execute("begin")
        cb.execute("select 1")
        cc.execute("select 1")
        cb.execute("commit")
        cc.execute("commit")
    for conn in (b, c, d):
        conn.close()


def tether_backends(postgres):
    return postgres.query("select count(*) from pg_stat_activity where datname = 'appdb' "
                          "and backend_type = 'client backend' and pid <> pg_backend_pid()")[0][0]


def metric(t, name):
    from httpc import request
    body = request(t.admin, "GET", "/metrics")[2].decode()
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_until(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_min_idle_idle_timeout_and_checks(pooler, postgres):
    """min_idle servers open by themselves; beyond them, idle servers close after
    server_idle_timeout; an idle server older than server_check_delay is checked before reuse."""
    t = pooler(pool_size=4, db_extra="      min_idle: 2\n      server_idle_timeout: 2s",
               extra="  server_check_delay: 1s")
    assert wait_until(lambda: tether_backends(postgres) == 2), tether_backends(postgres)
    conns = [psycopg2.connect(t.dsn) for _ in range(4)]
    for c in conns:  # four transactions at once: four servers
        c.cursor().execute("select 1")
    assert tether_backends(postgres) == 4
    for c in conns:
        c.commit()
    # the two beyond min_idle go away once idle for 2 s
    assert wait_until(lambda: tether_backends(postgres) == 2, 10), tether_backends(postgres)
    time.sleep(1.2)  # idle longer than server_check_delay
    with conns[0].cursor() as cur:
        cur.execute("select 41 + 1")
        assert cur.fetchone()[0] == 42
    conns[0].commit()
    assert metric(t, "tether_pg_server_checks_total") >= 1
    # a server killed while idle is replaced, the client does not notice
    postgres.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = 'appdb' "
                   "and backend_type = 'client backend' and pid <> pg_backend_pid()")
    time.sleep(0.3)
    with conns[1].cursor() as cur:
        cur.execute("select 7")
        assert cur.fetchone()[0] == 7
    for c in conns:
        c.close()


def test_newer_protocol_and_pq_options_are_negotiated_down(pooler):
    """A client asking for 3.2 and a _pq_ option gets NegotiateProtocolVersion (3.0, the option
    listed as unsupported) and logs in, as PostgreSQL itself answers."""
    t = pooler(pool_size=1)
    s = raw_pg(t.sockdir)
    s.settimeout(10)
    body = struct.pack("!I", (3 << 16) | 2) + b"user\0app\0database\0appdb\0_pq_.compression\0on\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    buf = b""
    while not buf.endswith(b"Z\0\0\0\x05I"):
        chunk = s.recv(65536)
        assert chunk
        buf += chunk
    assert buf[:1] == b"v"
    n = struct.unpack("!I", buf[1:5])[0]
    minor, count = struct.unpack("!II", buf[5:13])
    assert (minor, count) == (3 << 16, 1) and buf[13:1 + n] == b"_pq_.compression\0"  # 3.0, as PostgreSQL sends it
    assert buf[1 + n:2 + n] == b"R"
    s.sendall(msg(b"Q", b"select 1\0"))
    assert read_until_ready(s) == "TDCZ"
    s.close()


def test_node_postgres_named_queries(pooler):
    """node-postgres prepares a named query once per client connection and then only binds it:
    50 connections over a pool of 4 servers in transaction mode."""
    node_dir = os.path.join(os.path.dirname(__file__), "..", "node")
    if not os.path.isdir(os.path.join(node_dir, "node_modules", "pg")):
        pytest.fail("tests/node/node_modules/pg missing: run `make deps`")
    t = pooler(pool_size=4)
    r = subprocess.run(["node", os.path.join(node_dir, "pg_named.js"), t.sockdir, "5432"], capture_output=True,
                       text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"ok":true' in r.stdout


def test_jdbc_prepared_statements_and_batches(tetherd, postgres, tmp_path):
    """pgJDBC (Debian's libpostgresql-jdbc-java) with server-side prepared statements from the
    first execution, batches and rollbacks, 8 threads over a pool of 2 in transaction mode."""
    jar = "/usr/share/java/postgresql.jar"
    if not os.path.exists(jar):
        pytest.fail(f"{jar} missing: run `make deps`")
    tcp = free_port()
    tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
postgres:
  listen: ["tcp://127.0.0.1:{tcp}"]
  databases:
    appdb: {{host: {postgres.socket_dir}, port: {postgres.port}, user: app, pool_mode: transaction, pool_size: 2}}
""")
    src = os.path.join(os.path.dirname(__file__), "..", "java", "JdbcCheck.java")
    r = subprocess.run(["javac", "-d", str(tmp_path), src], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["java", "-cp", f"{tmp_path}:{jar}", "JdbcCheck", str(tcp)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"ok":true' in r.stdout
    postgres.query("drop table if exists jdbc_t", db="appdb")
