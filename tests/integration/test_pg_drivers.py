"""Real client programs through the PostgreSQL pooler, in transaction and in session mode:
psycopg2 (transactions, errors and recovery, COPY in and out, server-side cursors, cancel from
another thread) and psql (-c, -f with several statements, \\copy), against a real PostgreSQL."""
import io
import os
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from httpc import free_port

PSQL = os.path.join(os.environ.get("TETHER_PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")
MODES = ["transaction", "session"]


@pytest.fixture(params=MODES)
def pooled(request, tetherd, postgres, tmp_path):
    """tetherd in the parametrized pool mode with a pool of 3, and a fresh table `<mode>_t`
    (id int primary key, note text) owned by app."""
    mode = request.param
    sockdir = tmp_path / "pg"
    t = tetherd(f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
postgres:
  listen: ["unix://{sockdir}"]
  port: 5432
  databases:
    appdb:
      host: {postgres.socket_dir}
      port: {postgres.port}
      user: app
      pool_mode: {mode}
      pool_size: 3
""")
    t.mode = mode
    t.sockdir = str(sockdir)
    t.dsn = f"host={sockdir} port=5432 user=app dbname=appdb"
    t.table = f"drv_{mode}"
    postgres.query(f"drop table if exists {t.table}", db="appdb")
    postgres.query(f"create table {t.table} (id int primary key, note text)", db="appdb")
    postgres.query(f"alter table {t.table} owner to app", db="appdb")
    return t


def connect(t, autocommit=False):
    conn = psycopg2.connect(t.dsn, connect_timeout=10)
    conn.autocommit = autocommit
    return conn


def one(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


# --- psycopg2 ----------------------------------------------------------------------------------

def test_psycopg2_transactions(pooled):
    tbl = pooled.table
    a, b = connect(pooled), connect(pooled)
    with a.cursor() as cur:
        cur.execute(f"insert into {tbl} values (1, 'committed')")
        cur.execute(f"insert into {tbl} values (2, 'also committed')")
    # b does not see a's open transaction; a sees its own writes
    assert one(b, f"select count(*) from {tbl}") == (0,)
    b.commit()
    assert one(a, f"select count(*) from {tbl}") == (2,)
    a.commit()
    assert one(b, f"select count(*) from {tbl}") == (2,)
    b.commit()
    with a.cursor() as cur:
        cur.execute(f"insert into {tbl} values (3, 'rolled back')")
    a.rollback()
    assert one(b, f"select array_agg(id order by id) from {tbl}") == ([1, 2],)
    b.commit()
    # savepoints inside one transaction
    with a.cursor() as cur:
        cur.execute(f"insert into {tbl} values (4, 'kept')")
        cur.execute("savepoint s1")
        cur.execute(f"insert into {tbl} values (5, 'undone')")
        cur.execute("rollback to savepoint s1")
    a.commit()
    assert one(b, f"select array_agg(id order by id) from {tbl}") == ([1, 2, 4],)
    b.commit()
    # a transaction's statements all run on one backend, and the isolation level is honoured
    a.set_session(isolation_level="REPEATABLE READ")
    first = one(a, "select pg_backend_pid(), current_setting('transaction_isolation')")
    assert first[1] == "repeatable read"
    with b.cursor() as cur:
        cur.execute(f"insert into {tbl} values (6, 'concurrent')")
    b.commit()
    assert one(a, f"select count(*) from {tbl}") == (3,)  # a's snapshot predates b's insert
    assert one(a, "select pg_backend_pid()")[0] == first[0]
    a.commit()
    assert one(a, f"select count(*) from {tbl}") == (4,)
    a.commit()
    a.close()
    b.close()


def test_psycopg2_errors_and_recovery(pooled):
    tbl = pooled.table
    conn = connect(pooled)
    with conn.cursor() as cur:
        cur.execute(f"insert into {tbl} values (1, 'x')")
    conn.commit()
    # an error inside a transaction aborts it until rollback ...
    with conn.cursor() as cur:
        cur.execute(f"insert into {tbl} values (2, 'y')")
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("select 1 / 0")
        with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
            cur.execute("select 1")
    conn.rollback()
    # ... after which the connection works, and nothing of the failed transaction remained
    assert one(conn, f"select array_agg(id) from {tbl}") == ([1],)
    conn.commit()
    with pytest.raises(psycopg2.errors.UniqueViolation) as e:
        with conn.cursor() as cur:
            cur.execute(f"insert into {tbl} values (1, 'dup')")
    assert e.value.pgcode == "23505" and e.value.diag.constraint_name == f"{tbl}_pkey"
    conn.rollback()
    with pytest.raises(psycopg2.errors.UndefinedTable):
        one(conn, "select * from no_such_table")
    conn.rollback()
    with pytest.raises(psycopg2.errors.SyntaxError):
        one(conn, "selec 1")
    conn.rollback()
    # errors in autocommit mode leave the connection usable at once
    conn.autocommit = True
    for _ in range(3):
        with pytest.raises(psycopg2.errors.DivisionByZero):
            one(conn, "select 1 / 0")
        assert one(conn, "select 2") == (2,)
    # an error raised by the server mid-result (after rows were sent)
    with pytest.raises(psycopg2.errors.DivisionByZero):
        one(conn, "select 1 / (x - 5000) from generate_series(1, 10000) x")
    assert one(conn, "select 3") == (3,)
    # a failed statement in a multi-statement simple query: the whole string is one transaction
    with pytest.raises(psycopg2.errors.DivisionByZero):
        with conn.cursor() as cur:
            cur.execute(f"insert into {tbl} values (7, 'a'); select 1 / 0; "
                        f"insert into {tbl} values (8, 'b')")
    assert one(conn, f"select count(*) from {tbl} where id in (7, 8)") == (0,)
    conn.close()


def test_psycopg2_copy_in_and_out(pooled):
    tbl = pooled.table
    conn = connect(pooled)
    n = 50000
    data = "".join(f"{i}\tnote number {i} {'x' * (i % 50)}\n" for i in range(n))
    with conn.cursor() as cur:
        cur.copy_expert(f"copy {tbl} (id, note) from stdin", io.StringIO(data))
        assert cur.rowcount == n
        out = io.StringIO()
        cur.copy_expert(f"copy (select id, note from {tbl} order by id) to stdout", out)
    assert out.getvalue() == data
    conn.commit()
    # CSV out with a header, and copy_to / copy_from helpers
    with conn.cursor() as cur:
        out = io.StringIO()
        cur.copy_expert(f"copy (select id, note from {tbl} where id < 3 order by id) "
                        "to stdout with (format csv, header)", out)
        assert out.getvalue().splitlines() == ["id,note", "0,note number 0 ",
                                               "1,note number 1 x", "2,note number 2 xx"]
        cur.copy_from(io.StringIO("900001\tviaclass\n"), tbl, columns=("id", "note"))
    conn.commit()
    # bad data mid-COPY: an error, the rows are not there, and the connection recovers
    bad = "".join(f"{i}\tok\n" for i in range(n, n + 1000)) + "not-a-number\toops\n"
    with pytest.raises(psycopg2.errors.InvalidTextRepresentation):
        with conn.cursor() as cur:
            cur.copy_expert(f"copy {tbl} (id, note) from stdin", io.StringIO(bad))
    conn.rollback()
    assert one(conn, f"select count(*) from {tbl}") == (n + 1,)
    conn.commit()
    # COPY in autocommit mode and then a plain query on the same connection
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.copy_expert(f"copy {tbl} (id, note) from stdin", io.StringIO("900002\tauto\n"))
        cur.execute(f"select note from {tbl} where id = 900002")
        assert cur.fetchone() == ("auto",)
    conn.close()


def test_psycopg2_server_side_cursors(pooled):
    conn = connect(pooled)
    total = 100000
    # two named cursors open at once in one transaction, read interleaved in batches
    a = conn.cursor(name="big_a")
    a.itersize = 1000
    a.execute("select x, md5(x::text) from generate_series(1, %s) x", (total,))
    b = conn.cursor(name="big_b")
    b.execute("select x * 2 from generate_series(1, 5000) x")
    seen, doubled = 0, []
    while True:
        rows = a.fetchmany(2000)
        if not rows:
            break
        assert rows[0][0] == seen + 1
        seen += len(rows)
        doubled.extend(r[0] for r in b.fetchmany(100))
    assert seen == total
    assert doubled == [2 * x for x in range(1, 5001)]
    a.close()
    b.close()
    # iteration over a named cursor (FETCH FORWARD itersize behind the scenes) and scrolling
    c = conn.cursor(name="scroller", scrollable=True)
    c.itersize = 500
    c.execute("select x from generate_series(1, 3000) x")
    assert sum(1 for _ in c) == 3000
    c.scroll(0, mode="absolute")
    assert c.fetchone() == (1,)
    c.scroll(2000, mode="absolute")
    assert c.fetchone() == (2001,)
    c.close()
    conn.commit()
    # the cursor's portal ended with its transaction
    with conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.InvalidCursorName):
            cur.execute("fetch 1 from scroller")
    conn.rollback()
    # an error while reading a named cursor aborts the transaction; the connection recovers
    d = conn.cursor(name="failing")
    d.execute("select 1 / (x - 1500) from generate_series(1, 3000) x")
    with pytest.raises(psycopg2.errors.DivisionByZero):
        while d.fetchmany(400):
            pass
    conn.rollback()
    assert one(conn, "select 4") == (4,)
    conn.commit()
    if pooled.mode == "session":  # WITH HOLD cursors outlive the transaction: session state
        h = conn.cursor(name="held", withhold=True)
        h.execute("select x from generate_series(1, 10) x")
        conn.commit()
        assert [r[0] for r in h.fetchall()] == list(range(1, 11))
        h.close()
    conn.close()


def test_psycopg2_cancel_with_nothing_running_never_hits_the_next_query(pooled):
    """A cancel that arrives while the client is idle is dropped (in session mode its server is
    still linked to it), and a cancel tether forwards closes the canceller's connection only
    once PostgreSQL has it, so the query sent after cancel() returns is never the one cancelled."""
    conn = connect(pooled, autocommit=True)
    for i in range(40):
        conn.cancel()
        assert one(conn, "select %s", (i,)) == (i,)
    for i in range(5):
        timer = threading.Timer(0.2, conn.cancel)
        timer.start()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            one(conn, "select pg_sleep(30)")
        timer.join()
        assert one(conn, "select %s", (i,)) == (i,)  # straight after: not hit by a late cancel
    conn.close()


def test_psycopg2_cancel_from_another_thread(pooled):
    conn = connect(pooled)
    other = connect(pooled, autocommit=True)  # another client busy at the same time
    result = {}

    def run_other():
        try:
            result["other"] = one(other, "select pg_sleep(1.5), 'untouched'")[1]
        except psycopg2.Error as e:
            result["other"] = repr(e)

    for round_ in range(2):  # twice: the key keeps working after the first cancel
        th = threading.Thread(target=run_other)
        th.start()
        timer = threading.Timer(0.5, conn.cancel)
        start = time.monotonic()
        timer.start()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            one(conn, "select pg_sleep(30)")
        assert time.monotonic() - start < 10
        timer.join()
        conn.rollback()
        assert one(conn, "select 5") == (5,)  # the same connection goes on
        conn.commit()
        th.join(10)
        assert result["other"] == "untouched"  # the other client's query was not cancelled
    # a cancel with nothing running does no harm
    conn.cancel()
    assert one(conn, "select 6") == (6,)
    conn.commit()
    # cancelling a long COPY OUT from another thread
    with conn.cursor() as cur:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.copy_expert("copy (select x, pg_sleep(0.001) from generate_series(1, 100000) x) "
                            "to stdout", io.StringIO())
        timer.join()
    conn.rollback()
    assert one(conn, "select 7") == (7,)
    conn.close()
    other.close()


# --- psql --------------------------------------------------------------------------------------

def psql(t, *args, input=None, cwd=None):
    r = subprocess.run([PSQL, "-X", "-h", t.sockdir, "-p", "5432", "-U", "app", "-d", "appdb",
                        "-v", "ON_ERROR_STOP=1", *args], input=input, capture_output=True,
                       text=True, timeout=60, cwd=cwd)
    return r


def test_psql_c(pooled):
    r = psql(pooled, "-qAt", "-c", "select current_user, current_database()",
             "-c", "select 1 + 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["app|appdb", "2"]
    # an error: exit status 1 with the server's message
    r = psql(pooled, "-c", "select 1 / 0")
    assert r.returncode == 1 and "division by zero" in r.stderr
    # several statements in one -c are one simple Query (one implicit transaction)
    r = psql(pooled, "-qAt", "-c", f"insert into {pooled.table} values (1, 'a'); "
             f"insert into {pooled.table} values (2, 'b'); select count(*) from {pooled.table}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"


def test_psql_f_with_multiple_statements(pooled, tmp_path):
    tbl = pooled.table
    script = tmp_path / "script.sql"
    script.write_text(f"""
-- a transaction, a failed-then-rolled-back part, settings and output
begin;
insert into {tbl} values (10, 'ten');
insert into {tbl} values (11, 'eleven');
commit;
begin;
insert into {tbl} values (12, 'twelve');
rollback;
set local statement_timeout = '5s';
select string_agg(id::text, ',' order by id) as ids from {tbl};
\\set n 3
select :n * 7 as product;
do $$ begin raise notice 'hello from %', current_user; end $$;
with w as (update {tbl} set note = upper(note) where id = 10 returning note) select note from w;
select note from {tbl} where id = 11
\\gset
\\echo got :note
""")
    r = psql(pooled, "-qAt", "-f", str(script))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["10,11", "21", "TEN", "got eleven"], r.stdout
    assert "NOTICE:  hello from app" in r.stderr
    # -1: the whole file in one transaction; a failure rolls all of it back
    bad = tmp_path / "bad.sql"
    bad.write_text(f"insert into {tbl} values (20, 'x');\nselect 1 / 0;\n"
                   f"insert into {tbl} values (21, 'y');\n")
    r = psql(pooled, "-1", "-f", str(bad))
    assert r.returncode == 3 and "division by zero" in r.stderr
    r = psql(pooled, "-qAt", "-c", f"select count(*) from {tbl} where id >= 20")
    assert r.stdout.strip() == "0"
    # statements from stdin, as `psql < file` runs them
    r = psql(pooled, "-qAt", input=f"select count(*) from {tbl};\nselect 'stdin ok';\n")
    assert r.returncode == 0 and r.stdout.splitlines() == ["2", "stdin ok"], r.stderr


def test_psql_backslash_copy(pooled, tmp_path):
    tbl = pooled.table
    src = tmp_path / "in.csv"
    n = 20000
    src.write_text("".join(f"{i},\"row, {i}\"\n" for i in range(n)))
    r = psql(pooled, "-c", f"\\copy {tbl} (id, note) from '{src}' with (format csv)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"COPY {n}"
    dst = tmp_path / "out.csv"
    r = psql(pooled, "-c", f"\\copy (select id, note from {tbl} order by id) to '{dst}' "
             "with (format csv)")
    assert r.returncode == 0, r.stderr
    assert dst.read_text() == src.read_text()
    # \copy from stdin inside a -f script, between other statements
    script = tmp_path / "copy.sql"
    script.write_text(f"begin;\n\\copy {tbl} (id, note) from stdin\n"
                      f"{n}\tfrom script\n{n + 1}\talso\n\\.\n"
                      f"select count(*) from {tbl};\ncommit;\n")
    r = psql(pooled, "-qAt", "-f", str(script))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(n + 2)]
    # a failing \copy (duplicate keys) leaves nothing behind and the next command works
    r = psql(pooled, "-c", f"\\copy {tbl} (id, note) from '{src}' with (format csv)")
    assert r.returncode == 1 and "duplicate key" in r.stderr
    r = psql(pooled, "-qAt", "-c", f"select count(*) from {tbl}")
    assert r.returncode == 0 and r.stdout.strip() == str(n + 2)
