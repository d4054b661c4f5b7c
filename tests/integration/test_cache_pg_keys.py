"""Invalidation by key value (README "Read cache", "Finer invalidation by primary key"), against a
real PostgreSQL and Redis, through two tethers sharing one Redis: a write that selects one
primary-key value (UPDATE not setting the key, DELETE) leaves cached reads of other values and
of ranges that do not cover it as they are, and is seen by every read that covers it; every
other write of the table (setting the key, INSERT, a WHERE on another column, COPY, a table with
a trigger or cascading foreign keys) still invalidates every read of the table. Simple Query
(literals) and the extended protocol (text and binary parameters) both."""
import io

import psycopg
import pytest

from test_cache_pg import db, execute, one, pg2, prefix, rows, tether, until_hit  # noqa: F401

SETUP = """
drop table if exists cpk_items, cpk_trg, cpk_log, cpk_parent, cpk_child, cpk_groups cascade;
drop function if exists cpk_log_fn() cascade;
create table cpk_items (id bigint primary key, grp int, v int not null);
insert into cpk_items select g, g % 3, g from generate_series(1, 40) g;
insert into cpk_items select g, 9, g from generate_series(5000, 5003) g;
create table cpk_log (n int);
create table cpk_trg (id int primary key, v int);
insert into cpk_trg values (1, 1), (2, 2);
create function cpk_log_fn() returns trigger language plpgsql as
  $$ begin update cpk_trg set v = v + 100 where id = 2; return new; end $$;
create trigger cpk_t after update on cpk_trg for each row when (new.id = 1) execute function cpk_log_fn();
create table cpk_parent (id int primary key);
create table cpk_child (id int primary key, parent_id int references cpk_parent on delete cascade);
insert into cpk_parent values (1), (2);
insert into cpk_child values (10, 1), (20, 2);
"""

RULES = ({"database": "appdb", "match": "'^select .* from cpk_'", "ttl": "60s"},)


@pytest.fixture
def keys_db(db):
    execute(db, SETUP)
    return db


def hit_again(t, fn):
    """fn() and whether it was answered from the cache."""
    before = t.hits()
    result = fn()
    return result, t.hits() > before


def test_a_write_by_key_keeps_other_keys_cached(tether, keys_db):
    a, b = tether("a", rules=RULES), tether("b", rules=RULES)
    ra, wb = pg2(a), pg2(b)
    point = "select v from cpk_items where id = %d"
    for i in (1, 2, 3):
        until_hit(a, lambda: one(ra, point % i), what=f"id {i} cached")
    execute(wb, "update cpk_items set v = v + 1000 where id = 2")
    # the key written: fresh through the other tether
    assert one(ra, point % 2) == (1002,)
    # other keys: still answered from the cache, and right
    for i in (1, 3):
        got, hit = hit_again(a, lambda: one(ra, point % i))
        assert got == (i,) and hit, (i, got, a.cache())
    # a DELETE by key
    execute(wb, "delete from cpk_items where id = 3")
    assert one(ra, point % 3) is None
    got, hit = hit_again(a, lambda: one(ra, point % 1))
    assert got == (1,) and hit
    # counted: /admin/cache and /metrics
    assert a.cache()["keyed"]["lookups"] >= 3 and b.cache()["keyed"]["writes"] == 2, (a.cache(), b.cache())
    metrics = b.proc.admin_get("/metrics")[2].decode()
    assert "tether_cache_keyed_writes_total 2" in metrics, [m for m in metrics.splitlines() if "keyed" in m]
    assert "tether_cache_keyed_lookups_total" in metrics


def test_ranges_see_writes_inside_and_keep_outside(tether, keys_db):
    a, b = tether("a", rules=RULES), tether("b", rules=RULES)
    ra, wb = pg2(a), pg2(b)
    low = "select sum(v), count(*) from cpk_items i where i.id between 1 and 30"
    high = "select sum(v) from cpk_items where id between 5000 and 5003 and grp = 9"
    until_hit(a, lambda: one(ra, low), what="low range cached")
    until_hit(a, lambda: one(ra, high), what="high range cached")
    execute(wb, "update cpk_items set v = v + 1 where id = 30")  # the range's last key
    assert one(ra, low) == one(keys_db, low)
    got, hit = hit_again(a, lambda: one(ra, high))
    assert hit and got == one(keys_db, high), "a write outside the range (another bucket) invalidated it"
    execute(wb, "update cpk_items set v = v + 1 where id = 5001")
    assert one(ra, high) == one(keys_db, high)
    # a write in the same bucket but outside the range: fresh (buckets are coarse, never wrong)
    until_hit(a, lambda: one(ra, low))
    execute(wb, "update cpk_items set v = v + 1 where id = 35")
    assert one(ra, low) == one(keys_db, low)


@pytest.mark.parametrize("what,write,read", [
    ("setting the key", "update cpk_items set id = 100 where id = 4", "select v from cpk_items where id = 100"),
    ("insert", "insert into cpk_items values (101, 0, 7)", "select v from cpk_items where id = 101"),
    ("another column", "update cpk_items set v = 99 where grp = 2", "select v from cpk_items where id = 5"),
    ("key and OR", "update cpk_items set v = 98 where id = 6 or id = 7", "select v from cpk_items where id = 7"),
    ("key expression", "update cpk_items set v = 97 where id = 4 + 4", "select v from cpk_items where id = 8"),
    ("UPDATE ... FROM", "update cpk_items set v = 96 from (select 9 as k) s where cpk_items.id = s.k",
     "select v from cpk_items where id = 9"),
    ("a trigger writing another row", "update cpk_trg set v = 5 where id = 1", "select v from cpk_trg where id = 2"),
    ("a cascading foreign key", "delete from cpk_parent where id = 1", "select id from cpk_child where id = 10"),
    ("copy", lambda conn: conn.cursor().copy_expert("copy cpk_items from stdin with (format csv)",
                                                     io.StringIO("102,0,5\n")),
     "select v from cpk_items where id = 102"),
])
def test_other_writes_invalidate_every_read_of_the_table(tether, keys_db, what, write, read):
    a, b = tether("a", rules=RULES), tether("b", rules=RULES)
    ra, wb = pg2(a), pg2(b)
    before = until_hit(a, lambda: rows(ra, read), what=f"{what}: cached")[-1]
    write(wb) if callable(write) else execute(wb, write)
    want = rows(keys_db, read)
    assert want != before, f"{what}: the write did not change the read (test bug)"
    assert rows(ra, read) == want, f"{what}: stale read"


@pytest.mark.parametrize("binary", [False, True])
def test_extended_protocol_parameters(tether, keys_db, binary):
    a, b = tether("a", rules=RULES), tether("b", rules=RULES)
    ra = psycopg.connect(a.dsn, autocommit=True, prepare_threshold=0)
    wb = psycopg.connect(b.dsn, autocommit=True, prepare_threshold=0)
    point = "select v from cpk_items where id = %s"

    def read(i):
        return ra.execute(point, (i,), binary=binary).fetchone()

    for i in (11, 12):
        until_hit(a, lambda: read(i), what=f"id {i}")
    wb.execute("update cpk_items set v = v + %s where id = %s", (500, 12), binary=binary)
    assert read(12) == (512,)
    got, hit = hit_again(a, lambda: read(11))
    assert got == (11,) and hit, a.cache()
    # a range with parameters in arithmetic
    rng = "select sum(v) from cpk_items where id between (%s - 1) * 10 + 1 and (%s - 1) * 10 + 10"
    until_hit(a, lambda: ra.execute(rng, (2, 2), binary=binary).fetchone())
    wb.execute("update cpk_items set v = v + 1 where id = %s", (15,), binary=binary)
    assert ra.execute(rng, (2, 2), binary=binary).fetchone() == one(keys_db, rng % (2, 2))
    ra.close()
    wb.close()


def test_writes_in_a_transaction_by_key(tether, keys_db):
    a, b = tether("a", rules=RULES), tether("b", rules=RULES)
    ra = pg2(a)
    wb = pg2(b, autocommit=False)
    for i in (21, 22, 23):
        until_hit(a, lambda: one(ra, f"select v from cpk_items where id = {i}"))
    with wb.cursor() as cur:
        cur.execute("update cpk_items set v = -1 where id = 21")
        cur.execute("delete from cpk_items where id = 22")
    wb.commit()
    assert one(ra, "select v from cpk_items where id = 21") == (-1,)
    assert one(ra, "select v from cpk_items where id = 22") is None
    got, hit = hit_again(a, lambda: one(ra, "select v from cpk_items where id = 23"))
    assert got == (23,) and hit
    wb.close()


@pytest.mark.parametrize("binary", [False, True])
def test_a_join_over_a_parameterized_range(tether, keys_db, binary):
    """The shape of bench/cache.sh's expensive read: a join, a key equality on one table and a
    range computed from the same parameter on the other."""
    execute(keys_db, "create table cpk_groups (gid int primary key, gv int); "
                     "insert into cpk_groups values (1, 10), (2, 20), (9, 90)")
    a, b = tether("a", rules=RULES), tether("b", rules=RULES)
    ra = psycopg.connect(a.dsn, autocommit=True, prepare_threshold=0)
    wb = psycopg.connect(b.dsn, autocommit=True, prepare_threshold=0)
    sql = ("select g.gv, count(*), sum(i.v) from cpk_groups g join cpk_items i on i.grp = g.gid "
           "where g.gid = %s and i.id between (%s - 1) * 1000 + 1 and (%s - 1) * 1000 + 40 group by g.gv")

    def read(k):
        return ra.execute(sql, (k, k, k), binary=binary).fetchone()

    until_hit(a, lambda: read(1), what="group 1")
    wb.execute("update cpk_items set v = v + 1 where id = %s", (5001,), binary=binary)  # another bucket
    got, hit = hit_again(a, lambda: read(1))
    assert hit, a.cache()
    wb.execute("update cpk_items set v = v + 1 where id = %s", (3,), binary=binary)  # inside
    assert read(1) == one(keys_db, sql % (1, 1, 1))
    ra.close()
    wb.close()


def test_pipelined_writes_by_key(tether, keys_db):
    """psycopg 3's pipeline mode: Bind/Execute of several keyed writes before any Sync is
    answered; each is invalidated by its own value, others stay cached."""
    a, b = tether("a", rules=RULES), tether("b", rules=RULES)
    ra = pg2(a)
    for i in (31, 32, 33, 34):
        until_hit(a, lambda: one(ra, f"select v from cpk_items where id = {i}"))
    with psycopg.connect(b.dsn, autocommit=True) as wb:
        with wb.pipeline():
            for i in (31, 32, 33):
                wb.execute("update cpk_items set v = v + 100 where id = %s", (i,))
    for i in (31, 32, 33):
        assert one(ra, f"select v from cpk_items where id = {i}") == (i + 100,)
    got, hit = hit_again(a, lambda: one(ra, "select v from cpk_items where id = 34"))
    assert got == (34,) and hit
