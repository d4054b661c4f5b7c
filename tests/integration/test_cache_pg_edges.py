"""Edges of the pooler's read cache that test_cache_pg.py does not reach: a client that leaves
while its write still runs (the write is invalidated once the server has answered, so a read
through another tether after the commit is never stale), the unnamed statement of a request that
was answered from the cache (a later Bind of it without a Parse still runs the right statement,
in session and in transaction pooling), the catalog being unreachable (reads bypass with
reason `dependencies`, writes invalidate the whole database), and concurrent misses of one
statement running it once (the others wait for its result)."""
import threading
import time

import pytest

from harness import scaled, wait_until
from test_cache_pg import (B, D, E, P, Q, SYNC, Wire, db, error_code, execute, one, pg2, prefix,  # noqa: F401
                           slow_subquery, split_messages, tether, until_hit)


def data_rows(resp):
    return [body for kind, body in split_messages(resp) if kind == b"D"]


def test_write_of_a_client_that_left_is_invalidated_when_it_ends(tether, db):
    a, b = tether("a"), tether("b")
    read = "select v from cpg_counters where id = 1"
    ra = pg2(a)
    until_hit(a, lambda: one(ra, read), what="counter cached")
    assert one(ra, read) == (0,)
    # through b: an autocommit write that takes a second, and the client gone before it ends
    w = Wire(b.wire_path)
    w.send(Q("update cpg_counters set v = 7 where id = 1 and pg_sleep(1) is not null"))
    time.sleep(0.2)
    w.close()
    # the update commits about a second later; from then on no read may see 0
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        if one(db, "select v from cpg_counters where id = 1") == (7,):
            break
        one(ra, read)  # meanwhile reads through a fill the cache again with the old value
        time.sleep(0.05)
    assert one(db, "select v from cpg_counters where id = 1") == (7,), "the write never committed"
    # the invalidation follows the server's answer by one Redis round trip
    wait_until(lambda: one(ra, read) == (7,), 5, "the read after the orphaned write's commit")
    for _ in range(5):
        assert one(ra, read) == (7,)
    # the server it ran on was closed, not lent to another client mid-request
    assert a.proc.admin_json("/admin/pools")[0] == 200


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_unnamed_statement_answered_from_the_cache_is_prepared_before_a_bare_bind(tether, db, mode):
    t = tether("a", mode=mode)
    sql = "select name from cpg_products where id = $1"
    w = Wire(t.wire_path)
    request = (P("", sql), B("", ["2"]), D("P"), E(), SYNC)
    for _ in range(6):
        before = t.hits()
        resp = w.request(*request)
        assert data_rows(resp) == [b"\x00\x01\x00\x00\x00\x04pear"]
        if t.hits() > before:
            break
    else:
        pytest.fail(f"no hit: {t.cache()}")
    # a Bind of the unnamed statement without a Parse: the server must have that statement
    resp = w.request(B("", ["4"]), E(), SYNC)
    assert error_code(resp) is None, resp
    assert data_rows(resp) == [b"\x00\x01\x00\x00\x00\x03fig"]
    w.close()


def test_catalog_unreachable_reads_bypass_and_writes_invalidate_everything(tether, db, postgres):
    t = tether("a")
    read = "select name from cpg_products where id = 1"
    conn = pg2(t)
    until_hit(t, lambda: one(conn, read), what="products cached while the catalog works")
    # the catalog loses its connection and cannot log in again (new sessions of app are
    # refused); the pool's servers are already connected and keep working
    sup = postgres.connect(unix=True)
    sup.autocommit = True
    with sup.cursor() as cur:
        cur.execute("alter role app nologin")
        cur.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                    "where application_name = 'tether-catalog'")
    try:
        # a write to a table tether has not learnt yet: it cannot ask what the write reaches,
        # so everything in the database is invalidated before the commit is acknowledged
        with conn.cursor() as cur:
            cur.execute("update cpg_counters set v = 5 where id = 1")
        before = t.bypasses("dependencies")
        for _ in range(3):
            assert one(conn, "select v from cpg_counters where id = 1") == (5,)
        assert t.bypasses("dependencies") > before, t.cache()
        with conn.cursor() as cur:
            cur.execute("update cpg_products set name = 'apricot' where id = 1")
        for _ in range(3):
            assert one(conn, read) == ("apricot",)
    finally:
        with sup.cursor() as cur:
            cur.execute("alter role app login")
        sup.close()
    # the catalog comes back by itself (after its backoff) and reads are cached again
    until_hit(t, lambda: one(conn, read), tries=40, what="cached again once the catalog is back")
    conn.close()
    metrics = t.proc.admin_get("/metrics")[2].decode()
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
              if line.startswith("tether_pg_catalog_")}
    assert values['tether_pg_catalog_failures_total{pool="appdb"}'] >= 1, values
    assert values['tether_pg_catalog_queries_total{pool="appdb"}'] >= 2, values
    assert values['tether_pg_catalog_connected{pool="appdb"}'] == 1, values


def test_concurrent_misses_of_one_statement_run_it_once(tether, db):
    t = tether("a")
    conn = pg2(t)
    # the cache's epoch is known and cpg_products learnt before the race starts
    until_hit(t, lambda: one(conn, "select name from cpg_products where id = 1"))
    execute(db, "create or replace view cpg_slow as select p.id, p.name from cpg_products p, "
                + slow_subquery(db, 1.0))
    sql = "select name from cpg_slow where id = 2"
    assert one(conn, "select name from cpg_slow where id = 3") == ("plum",)  # the view is learnt
    before = t.cache()
    results = []

    def read():
        c = pg2(t)
        results.append(one(c, sql))
        c.close()
    threads = [threading.Thread(target=read) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(scaled(60))
    after = t.cache()
    assert results == [("pear",)] * 6, results
    assert after["misses"] - before["misses"] == 1, (before, after)
    # the other five were answered with its result: waiting for it, or from Redis after it
    assert after["hits"] - before["hits"] == 5, (before, after)
    assert after["single_flight_waits"] - before["single_flight_waits"] >= 1, "no read waited for the first"
