"""The relay's shortcut (plugins/pg/pg_relay.c): bytes a read brought go straight to the other
socket when nothing waits before them. What it must get right where it stops and hands over to the
buffered relay: several queries in one write, a query split across writes, a Terminate, a client
too slow for a large result, and messages it does not take mixed with ones it does."""
import socket
import struct
import time

import psycopg2

from test_pg import pooler  # noqa: F401  (fixture)
from test_pg_prepared import SYNC, bind, execute, login, msg, parse, read_until_ready


def query(sql):
    return msg(b"Q", sql.encode() + b"\0")


def read_messages(s, count):
    """(type, body) pairs up to the count-th ReadyForQuery."""
    buf, out = b"", []
    while count:
        while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
            chunk = s.recv(1 << 20)
            assert chunk, f"closed after {[t for t, _ in out]}"
            buf += chunk
        n = 1 + struct.unpack("!I", buf[1:5])[0]
        out.append((buf[:1], buf[5:n]))
        if buf[:1] == b"Z":
            count -= 1
        buf = buf[n:]
    assert buf == b""
    return out


def data_rows(messages):
    """The first column of each DataRow, as text."""
    rows = []
    for t, body in messages:
        if t == b"D":
            (ln,) = struct.unpack("!i", body[2:6])
            rows.append(body[6:6 + ln].decode())
    return rows


def test_queries_in_one_write_answered_in_order(pooler):
    t = pooler(pool_size=1)
    s = login(t.sockdir)
    s.sendall(b"".join(query(f"select {i}") for i in range(20)))
    got = read_messages(s, 20)
    assert data_rows(got) == [str(i) for i in range(20)]
    # a transaction across writes keeps its server; the last answer says idle again
    s.sendall(query("begin") + query("select 1"))
    assert [m[1] for m in read_messages(s, 2) if m[0] == b"Z"] == [b"T", b"T"]
    s.sendall(query("select 2") + query("commit"))
    assert [m[1] for m in read_messages(s, 2) if m[0] == b"Z"] == [b"T", b"I"]
    s.close()


def test_a_query_split_across_writes(pooler):
    t = pooler(pool_size=1)
    s = login(t.sockdir)
    q = query("select 'split'") + query("select 'whole'")
    for cut in (1, 4, 5, 9, len(q) - 1):
        s.sendall(q[:cut])
        time.sleep(0.05)
        s.sendall(q[cut:])
        assert data_rows(read_messages(s, 2)) == ["split", "whole"]
    s.close()


def test_terminate_after_queries(pooler):
    t = pooler(pool_size=1)
    for _ in range(3):
        s = login(t.sockdir)
        s.sendall(query("select 1") + query("select 2"))
        assert data_rows(read_messages(s, 2)) == ["1", "2"]
        s.sendall(msg(b"X"))
        assert s.recv(100) == b""
        s.close()
    # queries and Terminate in one write: tether closes the client at the Terminate, and the
    # server, which still owes answers, with it (as before the shortcut)
    s = login(t.sockdir)
    s.sendall(query("select 1") + query("select pg_sleep(0.1)") + msg(b"X"))
    while s.recv(65536):
        pass
    s.close()
    # the one server is still there for the next client, idle and clean
    with psycopg2.connect(t.dsn) as conn, conn.cursor() as cur:
        cur.execute("select txid_current_if_assigned()")
        assert cur.fetchone()[0] is None


def test_a_slow_client_gets_a_large_result_whole(pooler):
    """The server is read faster than the client: what the client's socket does not take is
    queued, reading the server pauses, and nothing is lost or reordered."""
    t = pooler(pool_size=1)
    s = login(t.sockdir)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.sendall(query("select repeat('x', 1000) || g from generate_series(1, 20000) g") + query("select 'after'"))
    time.sleep(1)  # let tether fill the client's socket and queue the rest
    rows = data_rows(read_messages(s, 2))
    assert len(rows) == 20001
    assert rows[0] == "x" * 1000 + "1" and rows[19999] == "x" * 1000 + "20000" and rows[-1] == "after"
    s.close()


def test_extended_and_simple_mixed_in_one_write(pooler):
    t = pooler(pool_size=1)
    s = login(t.sockdir)
    s.sendall(query("select 1") + parse(b"p", b"select 2") + bind(b"p") + execute() + SYNC + query("select 3"))
    got = read_messages(s, 3)
    assert "".join(m[0].decode() for m in got) == "TDCZ12DCZTDCZ"
    assert data_rows(got) == ["1", "2", "3"]
    # DEALLOCATE is tether's to answer (the shortcut leaves it), the next query goes on
    s.sendall(query("deallocate p") + query("select 4"))
    got = read_messages(s, 2)
    assert "".join(m[0].decode() for m in got) == "CZTDCZ"
    assert data_rows(got) == ["4"]
    s.sendall(bind(b"p") + execute() + SYNC)
    assert read_until_ready(s) == "EZ"
    s.close()


def test_an_error_in_the_middle(pooler):
    t = pooler(pool_size=1)
    s = login(t.sockdir)
    s.sendall(query("select 1") + query("select nope") + query("select 3"))
    got = read_messages(s, 3)
    assert "".join(m[0].decode() for m in got) == "TDCZEZTDCZ"
    assert [m[1] for m in got if m[0] == b"Z"] == [b"I", b"I", b"I"]
    s.close()


def describe_statement(name):
    return msg(b"D", b"S" + name + b"\0")


def test_named_statements_renamed_in_one_write(pooler):
    """Bind and Describe of a client's statement name go out under the server's name, several
    in one write; on a server that lacks the statement it is prepared first (the buffered
    path), and the answers stay in order."""
    t = pooler(pool_size=2)
    a, b = login(t.sockdir), login(t.sockdir)
    a.sendall(parse(b"s1", b"select $1::int * 2") + SYNC)
    assert read_until_ready(a) == "1Z"
    b.sendall(query("begin"))  # b holds one server: a's next requests use the other or this one
    assert read_until_ready(b) == "CZ"

    def bind_int(stmt, v):
        val = str(v).encode()
        return msg(b"B", b"\0" + stmt + b"\0" + b"\0\0" + b"\0\1" + struct.pack("!I", len(val)) + val + b"\0\0")

    for round_ in range(3):
        batch = describe_statement(b"s1") + SYNC
        for i in range(5):
            batch += bind_int(b"s1", i + round_) + execute() + SYNC
        a.sendall(batch)
        got = read_messages(a, 6)
        types = "".join(m[0].decode() for m in got)
        assert types == "tTZ" + "2DCZ" * 5, types
        assert data_rows(got) == [str(2 * (i + round_)) for i in range(5)]
        if round_ == 0:
            b.sendall(query("commit"))  # the other server becomes free: a may get either
            assert read_until_ready(b) == "CZ"
    a.sendall(msg(b"X"))
    b.sendall(msg(b"X"))
    a.close()
    b.close()


def test_unnamed_statements_in_one_write(pooler):
    """The unnamed Parse of each request passes as it is, with its ParseComplete; one of LISTEN
    pins the client as a Query's does; DEALLOCATE sent that way is still tether's."""
    t = pooler(pool_size=2)
    a, b = login(t.sockdir), login(t.sockdir)
    batch = b"".join(parse(b"", f"select {i}".encode()) + bind(b"") + execute() + SYNC for i in range(10))
    a.sendall(batch)
    got = read_messages(a, 10)
    assert "".join(m[0].decode() for m in got) == "12DCZ" * 10
    assert data_rows(got) == [str(i) for i in range(10)]
    a.sendall(parse(b"", b"LISTEN relay_ch") + bind(b"") + execute() + SYNC)
    assert read_until_ready(a) == "12CZ"
    b.sendall(query("NOTIFY relay_ch, 'hello'"))
    assert read_until_ready(b) == "CZ"
    time.sleep(0.2)
    a.sendall(query("select 1"))
    got = read_messages(a, 1)
    assert b"A" in [m[0] for m in got], got  # the notification reached the pinned client
    # DEALLOCATE of a client's name through an unnamed Parse
    a.sendall(parse(b"n1", b"select 7") + SYNC)
    assert read_until_ready(a) == "1Z"
    a.sendall(parse(b"", b"DEALLOCATE n1") + bind(b"") + execute() + SYNC)
    assert read_until_ready(a) == "12CZ"
    a.sendall(bind(b"n1") + execute() + SYNC)
    assert read_until_ready(a) == "EZ"
    a.close()
    b.close()
