"""The PostgreSQL pooler against a real PostgreSQL: both pool modes, waiting, resets, bad input
and a server that goes away. (Client auth methods other than trust, TLS, SCRAM to the server,
prepared statements across servers and cancel are not built yet.)"""
import json
import socket
import struct
import threading
import time

import psycopg2
import pytest

from httpc import free_port, request


def config(postgres, sockdir, port, mode="transaction", pool_size=2, extra="", db_extra="", server=None):
    return f"""
admin: {{listen: ["tcp://127.0.0.1:{port}"]}}
log: {{level: debug}}
postgres:
  listen: ["unix://{sockdir}", "tcp://127.0.0.1:{port + 1 if False else free_port()}"]
  port: 5432
{extra}
  databases:
    appdb:
      host: {server or postgres.socket_dir}
      port: {postgres.port}
      user: app
      pool_mode: {mode}
      pool_size: {pool_size}
{db_extra}
"""


@pytest.fixture
def pooler(tetherd, postgres, tmp_path):
    def start(**kw):
        sockdir = tmp_path / "pg"
        admin = free_port()
        t = tetherd(config(postgres, sockdir, admin, **kw))
        t.dsn = f"host={sockdir} port=5432 user=app dbname=appdb"
        t.admin = f"tcp://127.0.0.1:{admin}"
        t.sockdir = str(sockdir)
        return t
    return start


def backend_pid(conn):
    with conn.cursor() as cur:
        cur.execute("select pg_backend_pid()")
        return cur.fetchone()[0]


def test_queries_through_unix_socket_dir(pooler):
    t = pooler()
    with psycopg2.connect(t.dsn) as conn, conn.cursor() as cur:
        cur.execute("select current_user, current_database(), 1 + 1")
        assert cur.fetchone() == ("app", "appdb", 2)
        cur.execute("select repeat('x', 5000000)")  # a large row streams through
        assert len(cur.fetchone()[0]) == 5000000
        cur.execute("select null::text, 'é'::text")
        assert cur.fetchone() == (None, "é")


def test_transaction_mode_shares_servers(pooler):
    t = pooler(pool_size=2)
    errors = []

    def worker(i):
        try:
            conn = psycopg2.connect(t.dsn)
            for j in range(25):
                with conn.cursor() as cur:
                    cur.execute("select %s::int * %s", (i, j))
                    assert cur.fetchone()[0] == i * j
                conn.commit()
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    [th.start() for th in threads]
    [th.join(60) for th in threads]
    assert errors == []
    metrics = request(t.admin, "GET", "/metrics")[2].decode()
    assert 'tether_pg_servers_idle{pool="appdb"} 2' in metrics
    assert 'tether_pg_transactions_total{pool="appdb"}' in metrics


def test_transaction_holds_its_server_until_commit(pooler):
    t = pooler(pool_size=1)
    a = psycopg2.connect(t.dsn)
    b = psycopg2.connect(t.dsn)
    pid_a = backend_pid(a)  # opens a transaction: a holds the only server
    done = threading.Event()

    def run_b():
        backend_pid(b)
        done.set()

    th = threading.Thread(target=run_b)
    th.start()
    time.sleep(0.5)
    assert not done.is_set(), "b got a server while a was inside a transaction"
    a.commit()
    th.join(10)
    assert done.is_set()
    b.commit()
    assert backend_pid(b) == pid_a  # the same single server, lent in turn
    a.close()
    b.close()


def test_session_mode_keeps_server_and_resets_it(pooler):
    t = pooler(mode="session", pool_size=1)
    a = psycopg2.connect(t.dsn)
    a.autocommit = True
    pid = backend_pid(a)
    with a.cursor() as cur:
        cur.execute("set application_name = 'leaky'")
    assert backend_pid(a) == pid
    a.close()
    b = psycopg2.connect(t.dsn)
    b.autocommit = True
    assert backend_pid(b) == pid  # reused after the reset
    with b.cursor() as cur:
        cur.execute("show application_name")
        assert cur.fetchone()[0] != "leaky"  # DISCARD ALL ran
    b.close()


def test_disconnect_mid_transaction_rolls_back_before_reuse(pooler, postgres):
    t = pooler(pool_size=1)
    postgres.query("create table if not exists pooltest (v int)", db="appdb")
    postgres.query("grant all on pooltest to app", db="appdb")
    a = psycopg2.connect(t.dsn)
    with a.cursor() as cur:
        cur.execute("insert into pooltest values (42)")
    a.close()  # never committed
    b = psycopg2.connect(t.dsn)
    with b.cursor() as cur:
        cur.execute("select count(*) from pooltest where v = 42")
        assert cur.fetchone()[0] == 0
        cur.execute("select txid_current_if_assigned()")
        assert cur.fetchone()[0] is None  # b started clean, not inside a's transaction
    b.close()


def test_unknown_database_is_3D000(pooler):
    t = pooler()
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(t.dsn.replace("dbname=appdb", "dbname=nope"))
    assert 'database "nope" does not exist' in str(e.value)


def raw_pg(sockdir):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(f"{sockdir}/.s.PGSQL.5432")
    return s


def read_all(s):
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_bad_startup_packets_get_errors_and_others_unaffected(pooler):
    t = pooler()
    other = psycopg2.connect(t.dsn)
    other.autocommit = True
    for bad, code in ((b"GARBAGE!GARBAGE!", b"08P01"),
                      (struct.pack("!II", 20000, 196608) + b"x" * 100, b"08P01"),
                      (struct.pack("!II", 16, 196608) + b"user\0app", b"08P01"),  # unterminated
                      (struct.pack("!II", 12, 0x00020000) + b"\0\0\0\0", b"0A000")):  # protocol 2
        s = raw_pg(t.sockdir)
        s.sendall(bad)
        got = read_all(s)
        s.close()
        assert got[:1] == b"E", got[:40]
        assert code in got, got
    # SSLRequest gets 'N'
    s = raw_pg(t.sockdir)
    s.sendall(struct.pack("!II", 8, 80877103))
    assert s.recv(1) == b"N"
    s.close()
    assert backend_pid(other)


def test_first_packet_early_late_split_or_never(pooler):
    """tether reads a new connection once as soon as it accepts it (the startup packet is usually
    there already): a startup that is there at once, one that comes late, one split across
    writes, a client that closes before or right after its startup, and one that sends nothing
    all end as they should, and an ordinary client is unaffected."""
    t = pooler()
    other = psycopg2.connect(t.dsn)
    other.autocommit = True
    body = struct.pack("!I", 196608) + b"user\0app\0database\0appdb\0\0"
    startup = struct.pack("!I", len(body) + 4) + body
    q = b"Q" + struct.pack("!I", 4 + 9) + b"select 1\0"

    def answer(s):
        got = b""
        while not got.endswith(b"Z\0\0\0\5I"):
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
        return got

    for delay, cut in ((0, None), (0.2, None), (0, 3), (0.1, 9)):
        s = raw_pg(t.sockdir)
        if delay:
            time.sleep(delay)
        if cut:
            s.sendall(startup[:cut])
            time.sleep(0.1)
            s.sendall(startup[cut:])
        else:
            s.sendall(startup)
        assert answer(s).startswith(b"R\0\0\0\x08\0\0\0\0")  # AuthenticationOk
        s.sendall(q)
        assert b"D\0\0\0\x0b\0\x01\0\0\0\x011" in answer(s)
        s.close()
    # gone before (or just after) its startup, or connected and silent until tether's timeout
    for send in (b"", startup):
        s = raw_pg(t.sockdir)
        if send:
            s.sendall(send)
        s.close()
    silent = raw_pg(t.sockdir)
    assert backend_pid(other)
    silent.close()
    # every one of those connections was let go
    for _ in range(50):
        clients = json.loads(request(t.admin, "GET", "/admin/pools")[2])["clients"]
        if clients == 1:
            break
        time.sleep(0.1)
    assert clients == 1
    with psycopg2.connect(t.dsn) as conn, conn.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchone() == (1,)
    other.close()


def test_unknown_message_type_is_a_protocol_error(pooler):
    t = pooler()
    s = raw_pg(t.sockdir)
    body = struct.pack("!I", 196608) + b"user\0app\0database\0appdb\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    time.sleep(0.3)
    s.recv(65536)  # AuthenticationOk ... ReadyForQuery
    s.sendall(b"Y" + struct.pack("!I", 4))
    got = read_all(s)
    assert b"08P01" in got and b"unknown message type" in got
    s.close()


def test_query_wait_timeout(pooler):
    t = pooler(pool_size=1, extra="  query_wait_timeout: 500ms")
    a = psycopg2.connect(t.dsn)
    backend_pid(a)  # holds the server in a transaction
    b = psycopg2.connect(t.dsn)
    with pytest.raises(psycopg2.Error) as e:
        backend_pid(b)
    assert "query_wait_timeout" in str(e.value)
    b.rollback()
    a.commit()
    assert backend_pid(b)  # the same connection works once a server is free
    a.close()
    b.close()


def test_server_restart_recovers(pooler, postgres):
    """Idle clients do not notice a database restart; a client inside a transaction gets an
    error; the pool reconnects by itself."""
    t = pooler(pool_size=2)
    idle = psycopg2.connect(t.dsn)
    idle.autocommit = True
    assert backend_pid(idle)
    in_tx = psycopg2.connect(t.dsn)
    backend_pid(in_tx)  # opens a transaction, holding a server
    postgres.restart()
    with pytest.raises(psycopg2.Error) as e:
        backend_pid(in_tx)
    assert "server" in str(e.value)
    deadline = time.time() + 20
    while True:  # the pool's idle server died with the restart: the next query gets a new one
        try:
            assert backend_pid(idle)
            break
        except psycopg2.Error:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    fresh = psycopg2.connect(t.dsn)
    assert backend_pid(fresh)
    fresh.close()
    idle.close()


def test_copy_in_and_out(pooler, postgres):
    import io
    t = pooler()
    postgres.query("create table if not exists copytest (a int, b text)", db="appdb")
    postgres.query("grant all on copytest to app", db="appdb")
    conn = psycopg2.connect(t.dsn)
    with conn.cursor() as cur:
        data = "".join(f"{i}\trow {i}\n" for i in range(20000))
        cur.copy_from(io.StringIO(data), "copytest", columns=("a", "b"))
        out = io.StringIO()
        cur.copy_to(out, "copytest")
        assert out.getvalue().count("\n") >= 20000
    conn.rollback()
    conn.close()


def test_max_client_conn(pooler):
    t = pooler(extra="  max_client_conn: 2")
    a = psycopg2.connect(t.dsn)
    b = psycopg2.connect(t.dsn)
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(t.dsn)
    assert "too many client connections" in str(e.value)
    a.close()
    b.close()


def test_scram_login_to_the_server(pooler, postgres, tetherd_logs):
    """Over TCP the test server demands SCRAM-SHA-256 from `app`: tether logs in with the
    password from the environment, and never prints it."""
    t = pooler(server="127.0.0.1", db_extra="      password: ${PGPW:-app-secret-pw}")
    for _ in range(3):  # the second and later logins reuse the derived keys
        conn = psycopg2.connect(t.dsn)
        conn.autocommit = True
        assert backend_pid(conn)
        conn.close()
    assert "app-secret-pw" not in t.log_text()


def test_wrong_server_password_is_a_clear_error(pooler):
    t = pooler(server="127.0.0.1", db_extra="      password: not-the-password")
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(t.dsn)
    msg = str(e.value)
    assert "could not connect to the database server" in msg
    assert "SCRAM authentication to the server failed" in msg or "password authentication failed" in msg
    assert "not-the-password" not in msg and "not-the-password" not in t.log_text()


def scram_verifier(password, salt=b"0123456789abcdef", iterations=4096):
    import base64
    import hashlib
    import hmac
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def test_client_auth_scram_and_md5(tetherd, postgres, tmp_path):
    users_file = tmp_path / "users.txt"
    users_file.write_text('; PgBouncer format\n"filed" "file-pw-123"\n"quo""ted" "x"\n')
    sockdir = tmp_path / "pga"
    tcp = free_port()
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
postgres:
  listen: ["unix://{sockdir}", "tcp://127.0.0.1:{tcp}"]
  auth:
    method: scram-sha-256
    unix_method: md5
    users_file: {users_file}
    users:
      alice: {{password: "alice-pw-456"}}
      bob: {{password: "{scram_verifier('bob-pw-789')}"}}
  databases:
    appdb: {{host: {postgres.socket_dir}, port: {postgres.port}, user: app}}
""")
    tcp_dsn = f"host=127.0.0.1 port={tcp} dbname=appdb"
    for user, pw in (("alice", "alice-pw-456"), ("bob", "bob-pw-789"), ("filed", "file-pw-123")):
        conn = psycopg2.connect(f"{tcp_dsn} user={user} password={pw}")
        conn.autocommit = True
        assert backend_pid(conn)
        conn.close()
    # md5 on the unix socket (bob is stored as a SCRAM verifier: md5 cannot check it)
    conn = psycopg2.connect(f"host={sockdir} port=5432 dbname=appdb user=alice password=alice-pw-456")
    conn.close()
    errors = []
    for dsn in (f"{tcp_dsn} user=alice password=wrong", f"{tcp_dsn} user=nobody password=x",
                f"host={sockdir} port=5432 dbname=appdb user=alice password=wrong"):
        with pytest.raises(psycopg2.OperationalError) as e:
            psycopg2.connect(dsn)
        errors.append(str(e.value))
    assert all("password authentication failed for user" in m for m in errors), errors
    # an unknown user reads exactly like a wrong password
    assert errors[1].replace("nobody", "alice") == errors[0]
    log = t.log_text()
    for secret in ("alice-pw-456", "bob-pw-789", "file-pw-123"):
        assert secret not in log


def test_bad_users_file_is_a_clear_start_error(tetherd, postgres, tmp_path):
    import subprocess
    from conftest import tetherd_binary
    users_file = tmp_path / "users.txt"
    users_file.write_text('"ok" "pw"\nnot quoted at all\n')
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
postgres:
  listen: ["unix://{tmp_path}/s"]
  auth: {{method: scram-sha-256, users_file: {users_file}}}
  databases:
    appdb: {{host: {postgres.socket_dir}, port: {postgres.port}, user: app}}
""")
    r = subprocess.run([tetherd_binary(), "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"users_file {users_file}:2: expected" in r.stderr


def test_cancel_reaches_the_clients_own_query(pooler):
    t = pooler(pool_size=2)
    victim = psycopg2.connect(t.dsn)
    bystander = psycopg2.connect(t.dsn)
    results = {}

    def run(name, conn, sql):
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            results[name] = "ok"
        except psycopg2.Error as e:
            results[name] = type(e).__name__
        conn.rollback()

    a = threading.Thread(target=run, args=("victim", victim, "select pg_sleep(10)"))
    b = threading.Thread(target=run, args=("bystander", bystander, "select pg_sleep(1.5)"))
    a.start()
    b.start()
    time.sleep(0.5)
    start = time.time()
    victim.cancel()  # a CancelRequest with the key tether gave this client
    a.join(10)
    b.join(10)
    assert results["victim"] == "QueryCanceled"
    assert time.time() - start < 5
    assert results["bystander"] == "ok"  # the other client's query was not touched
    # a cancel with a key nobody has does nothing
    s = raw_pg(t.sockdir)
    s.sendall(struct.pack("!IIII", 16, 80877102, 1, 2))
    s.settimeout(5)
    assert s.recv(16) == b""  # closed at once, nothing said
    s.close()
    assert backend_pid(victim) and backend_pid(bystander)
    victim.close()
    bystander.close()
