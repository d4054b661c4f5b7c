"""The read cache wired into the PostgreSQL pooler, against a real PostgreSQL and a real Redis.

What this file proves (README "Read cache", issue "Read cache in Redis for queries through the
pooler"):

- A hit is byte for byte what PostgreSQL sends for the same request (simple Query; extended
  [Parse] Bind [Describe] Execute Sync, unnamed and named, text, binary and mixed formats, NULLs,
  a 200 KB value, 60 columns), checked with a raw protocol client against a direct connection;
  requests of other shapes, suspended portals and errors are relayed unchanged and never cached.
  psql, psycopg2, psycopg 3 (text and binary, named and unnamed statements) and asyncpg read the
  same values from a hit as from PostgreSQL. Pipelined requests keep their order and see earlier
  writes; startup settings (encoding, DateStyle, TimeZone, search_path, ...) are in the key.
- A hit needs no server: with pool_size 1 held by an open transaction, a cached read answers
  while an uncached one fails with query_wait_timeout.
- Invariants, each with its own test, through two tethers sharing one Redis and key_prefix: a
  write through B is seen by the next read through A (simple and extended, autocommit and
  transactions, prepared and batched, every kind of write, clients that leave mid-request); a
  write committing while a miss is in flight never leaves that miss's result reachable, nor
  hands it to a later read; views, foreign-key cascades, partitions, inheritance, triggers,
  rules, function calls (also hidden in a view or an operator), sequence functions and DDL
  invalidate what they touch; a write resolves names under the writer's search_path; DDL made
  outside tether is picked up after schema_ttl and writes made outside it after the TTL; the
  catalog connection killed or PostgreSQL restarted; Redis killed, restarted empty, with its
  data or from an older snapshot, stalled, version keys deleted or evicted: never a stale read;
  Redis down: reads still answer and writes succeed.
- Not cached: transaction blocks (and a transaction sees its own writes), sessions that ran
  SET / set_config / created temp tables, volatile functions, FOR UPDATE, writing CTEs even when
  hinted, results over max_entry_size, /* tether:nocache */; hints and fingerprint rules select
  statements.
- A consistency checker (writers through B, readers through A and B, 8 s) counts zero stale
  reads.
- Bad input: a bad rule stops tetherd at start with the key path; protocol garbage from one
  client leaves another's cached reads alone. The Redis password never appears in logs or admin
  output. SHOW CACHE / CACHE PURGE in the admin database, /admin/cache and /metrics agree.
"""
import asyncio
import io
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

import asyncpg
import psycopg
import psycopg2
import psycopg2.errors
import pytest

from harness import make_tempdir, redis_command, scaled, spawn, stop_group, wait_until
from httpc import free_port

PSQL = os.path.join(os.environ.get("TETHER_PG_BIN", "/usr/lib/postgresql/15/bin"), "psql")

# Every table of this file is called cpg_*; the broad rule caches every SELECT reading one.
BROAD_RULE = {"database": "appdb", "match": "'^select .* from \"?cpg_'", "ttl": "60s"}
PRODUCTS_COLS = "id, name, price, note, data, score, tags, doc, qty, made"
PRODUCT = f"select {PRODUCTS_COLS} from cpg_products where id = %s"


# --- tethers --------------------------------------------------------------------------------

class Tether:
    """One tetherd with the pooler on unix://<sockdir> (port 5432) and the cache on."""

    def __init__(self, proc, sockdir, name):
        self.proc = proc
        self.name = name
        self.sockdir = str(sockdir)
        self.dsn = f"host={sockdir} port=5432 user=app dbname=appdb"
        self.wire_path = os.path.join(self.sockdir, ".s.PGSQL.5432")

    def cache(self):
        status, body = self.proc.admin_json("/admin/cache")
        assert status == 200, body
        return body

    def hits(self):
        return self.cache()["hits"]

    def bypasses(self, reason):
        return self.cache()["bypasses"].get(reason, 0)

    def wait_readable(self, timeout=15):
        wait_until(lambda: self.cache()["readable"], timeout,
                   f"tether {self.name}: Redis readable", self.proc.log_path, self.proc.proc)


def rules_yaml(rules):
    out = []
    for r in rules:
        for i, (k, v) in enumerate(r.items()):
            out.append(("    - " if i == 0 else "      ") + f"{k}: {v}")
    return "\n".join(out)


def config_text(postgres, redis_url, sockdir, admin, prefix, rules=(BROAD_RULE,), mode="transaction",
                pool_size=4, cache_extra="", pg_extra="", log_level="info", cache=True):
    text = f"""
admin: {{listen: ["tcp://127.0.0.1:{admin}"]}}
log: {{level: {log_level}}}
postgres:
  listen: ["unix://{sockdir}"]
  port: 5432
{pg_extra}
  databases:
    appdb:
      host: {postgres.socket_dir}
      port: {postgres.port}
      user: app
      pool_mode: {mode}
      pool_size: {pool_size}
"""
    if cache:
        text += f"""
cache:
  redis: {redis_url}
  key_prefix: "{prefix}"
  rules:
{rules_yaml(rules)}
{cache_extra}
"""
    return text


@pytest.fixture
def prefix():
    """A key_prefix of this test's own, so no entry of another test is ever in the way."""
    return f"tcpg{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def tether(tetherd, postgres, redis, tmp_path, prefix):
    """Factory: tether(name, **config_text kwargs) starts a tetherd on unix://tmp/<name> whose
    cache shares this test's Redis and key_prefix, and waits until it can read Redis."""
    def start(name="a", wait=True, redis_url=None, env=None, **kw):
        sockdir = tmp_path / name
        admin = free_port()
        proc = tetherd(config_text(postgres, redis_url or redis.url, sockdir, admin, prefix, **kw), env=env)
        t = Tether(proc, sockdir, name)
        if wait and kw.get("cache", True):
            t.wait_readable()
        return t
    return start


# --- PostgreSQL data and connections --------------------------------------------------------

def wide_row(i):
    if i == 1:
        return [1, None, "ab" * 100000] + list(range(1, 58))
    return [2, "second", "small"] + [None if c % 5 == 0 else c * 1000 for c in range(1, 58)]


SETUP = """
drop schema if exists cpg_alt cascade;
drop view if exists cpg_slow, cpg_pview, cpg_pview2, cpg_sv, cpg_fv cascade;
drop materialized view if exists cpg_mv cascade;
drop function if exists cpg_opf(int, int) cascade;
drop table if exists cpg_products, cpg_wide, cpg_counters, cpg_parent, cpg_child, cpg_child2, cpg_x,
  cpg_y, cpg_r, cpg_wr, cpg_part, cpg_inh_parent, cpg_inh_child, cpg_ddl, "CpG_Mixed", "cpg_Weird.Name",
  cpg_t1, cpg_t2 cascade;
drop function if exists cpg_bump() cascade;
drop function if exists cpg_x_trg() cascade;
drop procedure if exists cpg_bump_proc() cascade;
create table cpg_products (id int primary key, name text not null, price numeric(10,2), note text,
  data bytea, score float8, tags text[], doc jsonb, qty int, made date);
insert into cpg_products values
  (1, 'apple', 1.25, null, '\\x00ff10', 0.5, '{a,b}', '{"k": 1}', 3, '2024-02-29'),
  (2, 'pear', 2.50, 'ripe', null, null, null, null, 1, null),
  (3, 'plum', 0.75, '', '\\x', -1e300, '{}', '[]', 0, '1999-12-31'),
  (4, 'fig', 9.99, 'x', '\\x01', 1.5, '{"q u o t e"}', '{"a": [1, null]}', 0, '2000-01-01');
create table cpg_wide (id int primary key, n text, big text, %s);
create table cpg_counters (id int primary key, v bigint not null);
insert into cpg_counters values (1, 0), (2, 0), (3, 42);
""" % ", ".join(f"c{i} int" for i in range(1, 58))


def direct(postgres):
    """psycopg2 straight to PostgreSQL as app over its socket (autocommit): what the database
    itself answers, and the way to arrange data behind tether's back."""
    return postgres.connect(user="app", db="appdb", unix=True)


@pytest.fixture
def db(postgres):
    conn = direct(postgres)
    with conn.cursor() as cur:
        cur.execute(SETUP)
        for i in (1, 2):
            row = wide_row(i)
            cur.execute("insert into cpg_wide values (%s)" % ", ".join(["%s"] * len(row)), row)
    yield conn
    conn.close()


def pg2(t, autocommit=True):
    conn = psycopg2.connect(t.dsn, connect_timeout=10)
    conn.autocommit = autocommit
    return conn


def pg3(t, **kw):
    kw.setdefault("autocommit", True)
    return psycopg.connect(t.dsn, connect_timeout=10, **kw)


def norm(v):
    return bytes(v) if isinstance(v, memoryview) else v


def rows(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return [tuple(norm(v) for v in r) for r in cur.fetchall()] if cur.description else None


def one(conn, sql, params=None):
    r = rows(conn, sql, params)
    return r[0] if r else None


def execute(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)


def psql(host, port, sql, db="appdb", args=("-At",)):
    r = subprocess.run([PSQL, "-X", *args, "-h", str(host), "-p", str(port), "-U", "app", "-d", db, "-c", sql],
                       capture_output=True, text=True, timeout=scaled(20))
    return r.returncode, r.stdout, r.stderr


# --- hit counting ---------------------------------------------------------------------------

def until_hit(t, fn, tries=10, what=""):
    """Runs fn() until one run was answered from the cache (tether t's hits went up): the first
    run of a statement may bypass while the pooler learns its tables, the next misses and stores,
    and a store may land just after the client saw its answer. Returns every run's result."""
    results = []
    for i in range(tries):
        before = t.hits()
        results.append(fn())
        if t.hits() > before:
            return results
        time.sleep(0.02 * i)
    raise AssertionError(f"tether {t.name}: {what + ': ' if what else ''}no cache hit in {tries} runs; "
                         f"/admin/cache: {t.cache()}")


def never_hit(t, fn, n=3):
    """Runs fn() n times and checks none was answered from the cache. Returns the results."""
    before = t.hits()
    results = [fn() for _ in range(n)]
    assert t.hits() == before, f"tether {t.name} served a statement it must not cache: {t.cache()}"
    return results


# --- a raw PostgreSQL v3 protocol client ----------------------------------------------------

def msg(kind, body=b""):
    return kind + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def Q(sql):
    return msg(b"Q", cstr(sql))


def P(name, sql, oids=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(oids)) +
               b"".join(struct.pack("!I", o) for o in oids))


def B(stmt, params=(), pfmts=(), rfmts=(), portal=""):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", len(pfmts)) + b"".join(struct.pack("!H", f) for f in pfmts)
    body += struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            p = p.encode() if isinstance(p, str) else p
            body += struct.pack("!i", len(p)) + p
    body += struct.pack("!H", len(rfmts)) + b"".join(struct.pack("!H", f) for f in rfmts)
    return msg(b"B", body)


def D(kind, name=""):
    return msg(b"D", kind.encode() + cstr(name))


def E(portal="", maxrows=0):
    return msg(b"E", cstr(portal) + struct.pack("!I", maxrows))


SYNC = msg(b"S")


def split_messages(data):
    out, i = [], 0
    while i + 5 <= len(data):
        n = struct.unpack("!I", data[i + 1:i + 5])[0]
        out.append((data[i:i + 1], data[i + 5:i + 1 + n]))
        i += 1 + n
    return out


def error_code(data):
    """The SQLSTATE of the first ErrorResponse in a response, or None."""
    for kind, body in split_messages(data):
        if kind == b"E":
            for field in body.split(b"\0"):
                if field[:1] == b"C":
                    return field[1:].decode()
    return None


def first_difference(a, b):
    ma, mb = split_messages(a), split_messages(b)
    for i, (x, y) in enumerate(zip(ma, mb)):
        if x != y:
            return f"message {i}: {x[0]!r} {len(x[1])} bytes {x[1][:80]!r} vs {y[0]!r} {len(y[1])} bytes {y[1][:80]!r}"
    return f"{len(ma)} messages vs {len(mb)}: {[k for k, _ in ma]} vs {[k for k, _ in mb]}"


class Wire:
    """Startup as app/appdb (trust) over a unix socket; request() sends messages in one write
    and returns every byte of the answer up to and including ReadyForQuery."""

    def __init__(self, path, user="app", database="appdb", timeout=10, startup=True, params=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(scaled(timeout))
        self.s.connect(path)
        self.buf = bytearray()
        if startup:
            kv = {"user": user, "database": database, **(params or {})}
            body = struct.pack("!I", 196608) + b"".join(cstr(k) + cstr(v) for k, v in kv.items()) + b"\0"
            self.s.sendall(struct.pack("!I", len(body) + 4) + body)
            data = self.until_ready()
            assert error_code(data) is None, data

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"connection closed; have {bytes(self.buf[:200])!r}")
            self.buf += chunk

    def read_message(self):
        self._fill(5)
        n = struct.unpack("!I", self.buf[1:5])[0]
        self._fill(1 + n)
        raw = bytes(self.buf[:1 + n])
        del self.buf[:1 + n]
        return raw

    def until_ready(self):
        out = []
        while True:
            raw = self.read_message()
            out.append(raw)
            if raw[:1] == b"Z":
                return b"".join(out)

    def send(self, *msgs):
        self.s.sendall(b"".join(msgs))

    def request(self, *msgs):
        self.send(*msgs)
        return self.until_ready()

    def read_until_closed(self):
        """Everything the peer sends until it closes (or the timeout passes)."""
        out = bytes(self.buf)
        self.buf.clear()
        while True:
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, ConnectionError):
                return out
            if not chunk:
                return out
            out += chunk

    def close(self):
        self.s.close()


def direct_wire(postgres, **kw):
    return Wire(f"{postgres.socket_dir}/.s.PGSQL.{postgres.port}", **kw)


# --- Redis ----------------------------------------------------------------------------------

def redis_keys(redis, pattern):
    keys, cursor = [], b"0"
    while True:
        cursor, batch = redis.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys += batch
        if cursor in (b"0", 0, "0"):
            return keys


def redis_delete(redis, pattern):
    keys = redis_keys(redis, pattern)
    for k in keys:
        redis.command("DEL", k)
    return len(keys)


# ============================================================================================
# 1. Hits are byte-identical
# ============================================================================================

WIDE = "select * from cpg_wide where id = 1"
WIDE_P = "select * from cpg_wide where id = $1"
WIDE_ALL = "select id, n, big, c1, c5, c57 from cpg_wide order by id"


def test_hits_are_byte_identical_to_postgres(tether, postgres, db):
    a = tether()
    dw, tw = direct_wire(postgres), Wire(a.wire_path)
    # statement prepared once per connection, then only bound (asyncpg's and psycopg 3's way)
    prepare = [P("cpg_named", WIDE_P), D("S", "cpg_named"), SYNC]
    assert dw.request(*prepare) == tw.request(*prepare)
    cases = {
        "simple, NULL, 200 KB text, 60 columns": [Q(WIDE)],
        "simple, two rows": [Q(WIDE_ALL)],
        "simple, trailing semicolon and comment": [Q("/* c */ SELECT  *  FROM cpg_wide WHERE id = 2;")],
        "extended unnamed, text": [P("", WIDE_P), B("", ["1"]), D("P"), E(), SYNC],
        "extended unnamed, binary param and results": [P("", WIDE_P, [23]), B("", [struct.pack("!i", 1)], [1], [1]),
                                                       D("P"), E(), SYNC],
        "extended unnamed, describe statement, mixed formats": [P("", WIDE_P), B("", ["2"], rfmts=[0, 1] * 30),
                                                                D("S"), E(), SYNC],
        "extended unnamed, no describe": [P("", WIDE_P), B("", ["2"]), E(), SYNC],
        "extended named, bind/execute only, binary": [B("cpg_named", ["1"], rfmts=[1]), E(), SYNC],
        "extended named, bind/describe portal/execute": [B("cpg_named", ["2"]), D("P"), E(), SYNC],
        "extended, a NULL parameter": [P("", "select * from cpg_wide where n is not distinct from $1::text"),
                                       B("", [None]), D("P"), E(), SYNC],
    }
    for what, bundle in cases.items():
        want = dw.request(*bundle)
        assert error_code(want) is None, (what, want[:300])
        got = until_hit(a, lambda: tw.request(*bundle), what=what)
        for i, g in enumerate(got):
            assert g == want, f"{what}: run {i} ({'hit' if i == len(got) - 1 else 'miss/bypass'}) differs " \
                              f"from PostgreSQL: {first_difference(g, want)}"
    # a hit on a fresh connection, which never parsed anything
    fresh = Wire(a.wire_path)
    for bundle in (cases["simple, NULL, 200 KB text, 60 columns"], cases["extended unnamed, binary param and results"]):
        before = a.hits()
        assert fresh.request(*bundle) == dw.request(*bundle)
        assert a.hits() == before + 1
    # requests outside the cached shapes ([Parse] Bind [Describe] Execute Sync on the unnamed
    # portal, all rows): relayed unchanged
    for bundle in ([P("", WIDE_P), D("S"), B("", ["2"]), E(), SYNC],
                   [P("", WIDE_P), B("", ["1"], portal="cpg_portal"), E("cpg_portal"), SYNC]):
        want = dw.request(*bundle)
        for _ in range(3):
            g = tw.request(*bundle)
            assert g == want, first_difference(g, want)
    # a portal run with a row limit (PortalSuspended), then the same statement in full
    for bundle in ([P("", "select id, n from cpg_wide order by id"), B(""), E("", 1), SYNC],
                   [P("", "select id, n from cpg_wide order by id"), B(""), E("", 0), SYNC]):
        want = dw.request(*bundle)
        for _ in range(3):
            g = tw.request(*bundle)
            assert g == want, first_difference(g, want)
    # a named statement closed and parsed again under the same name with another text
    for w in (dw, tw):
        assert error_code(w.request(msg(b"C", b"S" + cstr("cpg_named")), P("cpg_named", "select id, n from cpg_wide where id = $1"),
                                    SYNC)) is None
    bundle = [B("cpg_named", ["1"]), D("P"), E(), SYNC]
    want = dw.request(*bundle)
    for g in until_hit(a, lambda: tw.request(*bundle), what="re-parsed name"):
        assert g == want, first_difference(g, want)
    # errors: relayed as PostgreSQL sends them, never cached
    for bundle in ([Q("select nosuchcol from cpg_wide where id = 1")],
                   [P("", "select nosuchcol from cpg_wide where id = $1"), B("", ["1"]), E(), SYNC],
                   [P("", "select 1 / (c1 - 1) from cpg_wide where id = $1"), B("", ["1"]), E(), SYNC],
                   [Q("select id, 10 / (qty - 1) from cpg_products order by id")]):  # a row, then the error
        want = dw.request(*bundle)
        assert error_code(want) is not None
        for g in never_hit(a, lambda: tw.request(*bundle)):
            assert g == want, first_difference(g, want)
    doc = a.cache()
    assert doc["hits"] >= len(cases) + 2 and doc["stores"] >= 1
    for w in (dw, tw, fresh):
        w.close()


def test_version_keys_and_entries_in_redis(tether, db, redis, prefix):
    db.cursor().execute('create table "CpG_Mixed" (id int primary key, v text); insert into "CpG_Mixed" values (1, \'m\')')
    a = tether()
    c = pg2(a)
    until_hit(a, lambda: one(c, PRODUCT, (1,)))
    until_hit(a, lambda: one(c, 'select v from "CpG_Mixed" where id = 1'))
    # a lookup by primary key depends on the table's "!k" version and on its key value's (which
    # expires); "CpG_Mixed" (a quoted name) is depended on whole
    table_key = f"{prefix}v:appdb:public.cpg_products".encode()
    keyed_key = f"{prefix}v:appdb:public.cpg_products!k".encode()
    value_key = f"{prefix}v:appdb:public.cpg_products=1".encode()
    mixed_key = f'{prefix}v:appdb:public."CpG_Mixed"'.encode()
    keys = set(redis_keys(redis, prefix + "*"))
    for k in (keyed_key, value_key, mixed_key, f"{prefix}v:appdb:*".encode(), f"{prefix}v:*".encode()):
        assert k in keys, (k, sorted(keys))
    assert int(redis.command("PTTL", value_key)) > 0 and int(redis.command("PTTL", keyed_key)) == -1
    entries = [k for k in keys if k.startswith(f"{prefix}e:".encode())]
    assert entries and all(all(ch in b"0123456789abcdef" for ch in k[len(prefix) + 2:]) for k in entries), entries
    # a write by key bumps the table (for reads that depend on it whole), that value and its
    # bucket; not the other values, nor "!k"
    old = {k: redis.command("GET", k) for k in (table_key, keyed_key, value_key)}
    execute(c, "update cpg_products set qty = qty + 1 where id = 2")
    assert redis.command("GET", table_key) not in (None, old[table_key])
    assert redis.command("GET", f"{prefix}v:appdb:public.cpg_products=2".encode()) is not None
    assert redis.command("GET", f"{prefix}v:appdb:public.cpg_products~0".encode()) is not None
    assert redis.command("GET", keyed_key) == old[keyed_key]
    assert redis.command("GET", value_key) == old[value_key]
    # a write of the whole table bumps "!k" too
    execute(c, "update cpg_products set qty = qty + 1 where qty < 0")
    assert redis.command("GET", keyed_key) != old[keyed_key]
    assert redis.command("GET", mixed_key) is not None
    # writes to quoted names through another tether invalidate them
    execute(db, 'create table "cpg_Weird.Name" (id int, v text); insert into "cpg_Weird.Name" values (1, \'w\')')
    b = tether("b")
    wb = pg2(b)
    assert_fresh_after(a, c, lambda: execute(wb, 'update "CpG_Mixed" set v = \'m2\''),
                       ['select v from "CpG_Mixed" where id = 1'], db, "mixed case")
    assert_fresh_after(a, c, lambda: execute(wb, 'update "cpg_Weird.Name" set v = \'w2\''),
                       ['select v from "cpg_Weird.Name" where id = 1'], db, "a dot in the name")
    assert f'{prefix}v:appdb:public."cpg_Weird.Name"'.encode() in set(redis_keys(redis, prefix + "v:*"))


def test_pipelined_requests_keep_their_order_and_see_earlier_writes(tether, postgres, db):
    a = tether()
    dw, tw = direct_wire(postgres), Wire(a.wire_path)
    cached = "select name, price from cpg_products where id = 1"
    until_hit(a, lambda: tw.request(Q(cached)))

    def pipeline(w, *requests):
        w.send(*requests)
        return [w.until_ready() for _ in requests if _[:1] in (b"Q", b"S")]
    # a hit between uncached statements, in one write: answers in order
    reqs = [Q(cached), Q("select 'uncached' /* tether:nocache */"), Q(cached), Q("select 1 / 0"), Q(cached)]
    assert pipeline(tw, *reqs) == pipeline(dw, *reqs)
    ext = [P("", "select name from cpg_products where id = $1"), B("", ["1"]), D("P"), E(), SYNC]
    until_hit(a, lambda: tw.request(*ext))
    reqs = ext + [P("", "select $1::int * 2"), B("", ["21"]), E(), SYNC] + ext
    assert pipeline(tw, *reqs) == pipeline(dw, *reqs)
    # a write, then a read of what it wrote, sent together: the read sees the write
    got = pipeline(tw, Q("update cpg_products set name = 'pipelined' where id = 1"), Q(cached))
    assert b"pipelined" in got[1], got[1]
    # the same in one extended-protocol implicit transaction (one Sync)
    got = tw.request(P("", "update cpg_products set name = $1 where id = 1"), B("", ["one sync"]), E(),
                     P("", "select name, price from cpg_products where id = $1"), B("", ["1"]), D("P"), E(), SYNC)
    assert b"one sync" in got, got
    # a write and a read in one extended pipeline with a Sync each
    got = pipeline(tw, P("", "update cpg_products set name = $1 where id = 1"), B("", ["two syncs"]), E(), SYNC, *ext)
    assert b"two syncs" in got[1], got[1]
    # and in one multi-statement Query
    got = tw.request(Q("update cpg_products set name = 'multi' where id = 1; select name, price from cpg_products where id = 1"))
    assert b"multi" in got, got
    # psycopg 3 pipeline mode
    with pg3(a, prepare_threshold=0) as c3:
        with c3.pipeline():
            c3.execute("update cpg_products set name = %s where id = %s", ("psycopg pipeline", 1))
            cur = c3.execute("select name from cpg_products where id = %s", (1,), prepare=True)
        assert cur.fetchone() == ("psycopg pipeline",)
    assert one(pg2(a), cached) == one(db, cached)


def test_startup_settings_are_part_of_the_key(tether, postgres, db):
    execute(db, "update cpg_products set note = 'café' where id = 1")
    execute(db, "create schema cpg_alt; create table cpg_alt.cpg_products (id int primary key, name text);"
                "insert into cpg_alt.cpg_products values (1, 'alt apple')")
    a = tether()
    sql = "select note, made::timestamptz, score, data, price::float8 / 3 from cpg_products where id = 1"
    variants = [{}, {"client_encoding": "LATIN1"}, {"options": "-c DateStyle=German"},
                {"options": "-c TimeZone=Asia/Tokyo"}, {"options": "-c extra_float_digits=0"},
                {"options": "-c bytea_output=escape"}, {"options": "-c search_path=cpg_alt,public"}]
    not_cached = []
    for params in variants + [{}]:
        query = Q("select name from cpg_products where id = 1" if "search_path" in params.get("options", "") else sql)
        want = direct_wire(postgres, params=params).request(query)
        tw = Wire(a.wire_path, params=params)
        hit = False
        for _ in range(6):
            before = a.hits()
            got = tw.request(query)
            assert got == want, f"{params}: {first_difference(got, want)}"
            if a.hits() > before:
                hit = True
                break
        if not hit:
            not_cached.append(params)
        tw.close()
    assert not_cached == [], "never served from the cache (README: settings are part of the key)"


# ============================================================================================
# 2. Drivers: the same values from a hit as from PostgreSQL
# ============================================================================================

def test_psql_reads_the_same_from_a_hit(tether, postgres, db):
    a = tether()
    for sql in ("select * from cpg_products order by id", "select * from cpg_wide where id = 2",
                "select id, name, note is null from cpg_products where id = 1"):
        rc, want, err = psql(postgres.socket_dir, postgres.port, sql)
        assert rc == 0, err
        got = until_hit(a, lambda: psql(a.sockdir, 5432, sql))
        assert all(g == (0, want, "") for g in got), (sql, got, want)


def test_psycopg2_reads_the_same_and_errors_are_not_cached(tether, postgres, db):
    a = tether()
    c = pg2(a)
    for i in (1, 2, 3, 4):
        want = rows(db, PRODUCT, (i,))
        assert all(g == want for g in until_hit(a, lambda: rows(c, PRODUCT, (i,))))
    want = rows(db, "select * from cpg_wide order by id")
    assert all(g == want for g in until_hit(a, lambda: rows(c, "select * from cpg_wide order by id")))
    assert want[0][1] is None and len(want[0][2]) == 200000 and len(want[0]) == 60

    def fails(sql, exc):
        with pytest.raises(exc):
            execute(c, sql)
        return True
    never_hit(a, lambda: fails("select nosuchcol from cpg_products where id = 1", psycopg2.errors.UndefinedColumn))
    # an error at run time (qty is 0 for id 4), then the same statement succeeding once the data allows
    never_hit(a, lambda: fails("select 10 / qty from cpg_products where id = 4", psycopg2.errors.DivisionByZero))
    execute(c, "update cpg_products set qty = 5 where id = 4")
    assert until_hit(a, lambda: one(c, "select 10 / qty from cpg_products where id = 4"))[-1] == (2,)


@pytest.mark.parametrize("prepare_threshold", [0, None], ids=["named", "unnamed"])
def test_psycopg3_binary_and_text_read_the_same(tether, postgres, db, prepare_threshold):
    a = tether()
    sql = PRODUCT
    with psycopg.connect(postgres.dsn(user="app", db="appdb", unix=True), autocommit=True) as d, \
            pg3(a, prepare_threshold=prepare_threshold) as c:
        for binary in (False, True):
            for i in (1, 2, 3):
                want = d.cursor(binary=binary).execute(sql, (i,)).fetchall()

                def run():
                    return c.cursor(binary=binary).execute(sql, (i,), prepare=prepare_threshold is not None).fetchall()
                got = until_hit(a, run)
                assert all(g == want for g in got), (binary, i, got, want)
            want = d.cursor(binary=binary).execute("select * from cpg_wide where id = %s", (1,)).fetchall()
            got = until_hit(a, lambda: c.cursor(binary=binary).execute("select * from cpg_wide where id = %s", (1,)).fetchall())
            assert all(g == want for g in got)

        def fails():
            with pytest.raises(psycopg.errors.UndefinedColumn):
                c.execute("select nosuchcol from cpg_products where id = %s", (1,))
            return True
        never_hit(a, fails)
        assert c.execute("select name from cpg_products where id = %s", (2,)).fetchone() == ("pear",)


def test_asyncpg_prepared_statements_read_the_same(tether, postgres, db):
    a = tether()
    sql = f"select {PRODUCTS_COLS} from cpg_products where id = $1"

    async def main():
        d = await asyncpg.connect(host=postgres.socket_dir, port=postgres.port, user="app", database="appdb")
        c = await asyncpg.connect(host=a.sockdir, port=5432, user="app", database="appdb")
        try:
            for i in (1, 2, 3, 4):
                want = [tuple(r) for r in await (await d.prepare(sql)).fetch(i)]
                stmt = await c.prepare(sql)
                got = []
                for attempt in range(10):
                    before = a.hits()
                    got.append([tuple(r) for r in await stmt.fetch(i)])
                    if a.hits() > before:
                        break
                else:
                    raise AssertionError(f"no hit for asyncpg: {a.cache()}")
                assert all(g == want for g in got), (i, got, want)
                # the statement cache path too (conn.fetch)
                assert [tuple(r) for r in await c.fetch(sql, i)] == want
            want = [tuple(r) for r in await d.fetch("select * from cpg_wide where id = $1", 1)]
            got = [tuple(r) for r in await c.fetch("select * from cpg_wide where id = $1", 1)]
            got2 = [tuple(r) for r in await c.fetch("select * from cpg_wide where id = $1", 1)]
            assert got == want and got2 == want and want[0][1] is None
            before = a.hits()
            for _ in range(3):
                with pytest.raises(asyncpg.exceptions.UndefinedColumnError):
                    await c.fetch("select nosuchcol from cpg_products where id = $1", 1)
            assert a.hits() == before
        finally:
            await c.close()
            await d.close()
    asyncio.run(main())


# ============================================================================================
# 3. A hit needs no server
# ============================================================================================

def run_bounded(fn, timeout):
    """fn() in a thread: ("ok", value) / ("error", exception) / ("hung", None)."""
    out = {}

    def body():
        try:
            out["v"] = ("ok", fn())
        except Exception as e:  # noqa: BLE001
            out["v"] = ("error", e)
    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(scaled(timeout))
    return out.get("v", ("hung", None))


def test_hit_answers_while_the_only_server_is_held(tether, db):
    a = tether(pool_size=1, pg_extra="  query_wait_timeout: 1s")
    sql = "select name, price from cpg_products where id = 1"
    c = pg2(a)
    c3 = pg3(a, prepare_threshold=0)
    w = Wire(a.wire_path)
    ext = [P("", "select name from cpg_products where id = $1"), B("", ["2"]), D("P"), E(), SYNC]
    want = one(db, sql)
    until_hit(a, lambda: one(c, sql))
    until_hit(a, lambda: c3.execute("select qty from cpg_products where id = %s", (3,), prepare=True).fetchone())
    want_ext = until_hit(a, lambda: w.request(*ext))[-1]

    holder = pg2(a, autocommit=False)
    execute(holder, "select 1")  # BEGIN; select 1, not committed: the only server is lent
    try:
        before = a.hits()
        assert run_bounded(lambda: one(c, sql), 10) == ("ok", want)
        assert run_bounded(lambda: c3.execute("select qty from cpg_products where id = %s", (3,),
                                              prepare=True).fetchone(), 10) == ("ok", (0,))
        assert run_bounded(lambda: w.request(*ext), 10) == ("ok", want_ext)
        assert a.hits() == before + 3
        # an uncached statement needs the server: it waits, and query_wait_timeout ends the wait
        kind, err = run_bounded(lambda: one(c, "select name from cpg_products where id = 2 /* tether:nocache */"), 15)
        assert kind == "error" and getattr(err, "pgcode", None) == "57014", (kind, err)
    finally:
        holder.commit()
    assert one(c, "select name from cpg_products where id = 2 /* tether:nocache */") == ("pear",)


# ============================================================================================
# 4. Invariants
# ============================================================================================

def rows_named(conn, sql, params=None):
    """(column names, rows): a read whose answer changes when only a column is renamed."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return [d.name for d in cur.description], [tuple(norm(v) for v in r) for r in cur.fetchall()]


def assert_fresh_after(a, ra, write, reads, db, what="", fetch=rows):
    """Caches every read through tether a (until a hit) on connection ra, runs write(), then
    checks each read through a returns what PostgreSQL returns, which the write changed."""
    before = {}
    for sql in reads:
        before[sql] = until_hit(a, lambda: fetch(ra, sql))[-1]
        assert before[sql] == fetch(db, sql), (what, sql)
    write()
    for sql in reads:
        want = fetch(db, sql)
        assert want != before[sql], f"{what}: the write did not change {sql!r} (test bug)"
        got = fetch(ra, sql)
        assert got == want, f"{what}: stale read through {a.name} after the write: {sql!r} gave {got}, PostgreSQL {want}"


def fresh_after_each(a, ra, cases, db, fetch=rows):
    """assert_fresh_after for every (what, write, reads) case, failing once at the end with all
    the cases that were stale."""
    failed = []
    for what, write, reads in cases:
        try:
            assert_fresh_after(a, ra, write, reads, db, what, fetch)
        except AssertionError as e:
            failed.append(str(e).splitlines()[0])
            status, _, body = a.proc.admin_request("POST", "/admin/cache/purge?all", body=b"")  # next case afresh
            assert status == 200, body
    assert not failed, f"{len(failed)} of {len(cases)} cases stale:\n" + "\n".join(failed)


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_write_through_b_is_seen_by_the_next_read_through_a(tether, db, mode):
    a, b = tether("a", mode=mode), tether("b", mode=mode)
    ra, ra3 = pg2(a), pg3(a, prepare_threshold=0)
    wb, wb_tx, wb3 = pg2(b), pg2(b, autocommit=False), pg3(b)
    wa = pg2(a)

    def read_simple():
        return one(ra, "select name from cpg_products where id = 1")[0]

    def read_ext():
        return ra3.execute("select name from cpg_products where id = %s", (1,), prepare=True).fetchone()[0]

    def tx_simple(v):
        execute(wb_tx, "update cpg_products set name = %s where id = 1", (v,))
        wb_tx.commit()

    def tx_ext(v):
        with wb3.transaction():
            wb3.execute("update cpg_products set name = %s where id = %s", (v, 1))

    writes = [
        ("simple autocommit", lambda v: execute(wb, "update cpg_products set name = %s where id = 1", (v,))),
        ("simple transaction", tx_simple),
        ("extended autocommit", lambda v: wb3.execute("update cpg_products set name = %s where id = %s", (v, 1))),
        ("extended transaction", tx_ext),
        ("multi-statement string", lambda v: execute(wb, "select 1; update cpg_products set name = %s where id = 1; select 2", (v,))),
        ("through a itself", lambda v: execute(wa, "update cpg_products set name = %s where id = 1", (v,))),
    ]
    for i, (what, write) in enumerate(writes):
        until_hit(a, read_simple)
        until_hit(a, read_ext)
        v = f"v{i} {what}"
        write(v)
        assert read_simple() == v, what
        assert read_ext() == v, what


def test_every_kind_of_write_invalidates(tether, db):
    db.cursor().execute("create table cpg_wr (id int primary key, v int); insert into cpg_wr values (1, 1), (2, 2)")
    a, b = tether("a"), tether("b")
    ra, wb, wb3 = pg2(a), pg2(b), pg3(b)
    reads = ["select count(*), coalesce(sum(v), 0) from cpg_wr"]

    def copy_in():
        with wb.cursor() as cur:
            cur.copy_expert("copy cpg_wr (id, v) from stdin", io.StringIO("50\t50\n51\t51\n"))
    writes = [
        ("insert", lambda: execute(wb, "insert into cpg_wr values (3, 3)")),
        ("update", lambda: execute(wb, "update cpg_wr set v = v + 1")),
        ("delete", lambda: execute(wb, "delete from cpg_wr where id = 3")),
        ("merge", lambda: execute(wb, "merge into cpg_wr t using (select 4 as id) s on t.id = s.id "
                                      "when matched then update set v = t.v + 10 when not matched then insert values (s.id, 40)")),
        ("copy from", copy_in),
        ("writing CTE", lambda: execute(wb, "with x as (update cpg_wr set v = v + 100 returning 1) select count(*) from x")),
        ("insert .. select", lambda: execute(wb, "insert into cpg_wr select id + 1000, v from cpg_wr")),
        ("insert .. on conflict", lambda: execute(wb, "insert into cpg_wr values (1, 0) on conflict (id) "
                                                      "do update set v = excluded.v + 500")),
        ("delete .. using", lambda: execute(wb, "delete from cpg_wr w using (values (1)) x (i) where w.id = x.i")),
        ("extended insert", lambda: wb3.execute("insert into cpg_wr values (%s, %s)", (7, 7))),
        ("truncate", lambda: execute(wb, "truncate cpg_wr")),
    ]
    for what, write in writes:
        assert_fresh_after(a, ra, write, reads, db, what)


def slow_subquery(db, seconds):
    """A FROM item that takes about `seconds` on this machine with only built-in, immutable
    functions (a nested loop over two generate_series), so tether may cache what reads it."""
    t0 = time.monotonic()
    execute(db, "select count(*) from generate_series(1, 1000) a, generate_series(1, 1000) b")
    per_million = max(time.monotonic() - t0, 0.005)
    k = max(200, int((seconds / per_million) ** 0.5 * 1000))
    return f"(select count(*) from generate_series(1, {k}) a, generate_series(1, {k}) b) s"


def test_write_committing_while_a_miss_is_in_flight(tether, db):
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    sql = "select name from cpg_slow where id = 1"
    for attempt, seconds in enumerate((1.5, 3.0, 5.0)):
        execute(db, f"create or replace view cpg_slow as select p.* from cpg_products p, {slow_subquery(db, seconds)}")
        execute(wb, "update cpg_products set name = %s where id = 1", (f"before {attempt}",))
        one(ra, sql)  # the pooler learns the view's tables (and may store)
        execute(wb, "update cpg_products set name = %s where id = 1", (f"before the read {attempt}",))
        misses0 = a.cache()["misses"]
        result = {}

        def slow_read(key):
            result[key + " start"] = time.monotonic()
            result[key] = one(pg2(a), sql)
            result[key + " end"] = time.monotonic()
        first = threading.Thread(target=slow_read, args=("first",))
        first.start()
        time.sleep(0.4)  # the read is running, its snapshot taken
        execute(wb, "update cpg_products set name = %s where id = 1", (f"changed during the read {attempt}",))
        committed = time.monotonic()
        # a read starting after the commit while the first miss of the same statement still runs:
        # it must not be handed the first one's (older) result
        second = threading.Thread(target=slow_read, args=("second",))
        second.start()
        first.join(scaled(30))
        second.join(scaled(30))
        assert not first.is_alive() and not second.is_alive()
        if result["first end"] > committed and result["first"] == (f"before the read {attempt}",):
            break  # the race happened as intended
    else:
        pytest.fail(f"could not make the read outlast the write (test machine too fast or slow): {result}")
    assert result["second"] == (f"changed during the read {attempt}",), "a read started after the commit got older data"
    # the first miss stored its result under the versions read before it ran: unreachable now
    assert one(ra, sql) == (f"changed during the read {attempt}",)
    assert a.cache()["misses"] > misses0, "the read in flight was no miss (the race was not exercised)"
    assert until_hit(a, lambda: one(ra, sql))[-1] == (f"changed during the read {attempt}",)


def test_views_depend_on_their_base_tables(tether, db):
    db.cursor().execute("create view cpg_pview as select id, name, price from cpg_products where price > 0")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    reads = ["select name, price from cpg_pview where id = 1", "select count(*) from cpg_pview"]
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_products set name = 'via base' where id = 1"),
                       reads[:1], db, "update of the base table")
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_products set price = 0 where id = 2"),
                       reads[1:], db, "a base row leaves the view")
    # a write to the (auto-updatable) view reaches the base table and every read of it
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_pview set name = 'via view' where id = 1"),
                       reads[:1] + ["select name from cpg_products where id = 1"], db, "write to the view")
    # a materialized view changes only when refreshed
    execute(db, "create materialized view cpg_mv as select count(*) as n from cpg_products")
    execute(wb, "insert into cpg_products (id, name) values (50, 'new')")
    assert_fresh_after(a, ra, lambda: execute(wb, "refresh materialized view cpg_mv"), ["select n from cpg_mv"], db,
                       "refresh materialized view")


def test_foreign_key_cascades_invalidate_the_children(tether, db):
    db.cursor().execute("""
create table cpg_parent (id int primary key, name text);
create table cpg_child (id int primary key, parent_id int references cpg_parent (id) on delete cascade on update cascade);
create table cpg_child2 (id int primary key, parent_id int references cpg_parent (id) on delete set null);
insert into cpg_parent values (1, 'p1'), (2, 'p2'), (3, 'p3');
insert into cpg_child values (10, 1), (11, 2), (12, 3);
insert into cpg_child2 values (20, 1), (21, 3);
""")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    child = "select id, parent_id from cpg_child order by id"
    child2 = "select id, parent_id from cpg_child2 order by id"
    assert_fresh_after(a, ra, lambda: execute(wb, "delete from cpg_parent where id = 1"), [child, child2], db,
                       "on delete cascade / set null")
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_parent set id = 22 where id = 2"), [child], db,
                       "on update cascade")
    assert_fresh_after(a, ra, lambda: execute(wb, "delete from cpg_parent where id = 3"), [child, child2], db,
                       "cascade again after the first")
    execute(wb, "insert into cpg_parent values (5, 'p5'); insert into cpg_child values (15, 5)")
    assert_fresh_after(a, ra, lambda: execute(wb, "truncate cpg_parent cascade"), [child], db, "truncate .. cascade")


def test_partitions_and_inheritance_invalidate_each_other(tether, db):
    db.cursor().execute("""
create table cpg_part (id int not null, v int) partition by range (id);
create table cpg_part_1 partition of cpg_part for values from (0) to (100);
create table cpg_part_2 partition of cpg_part for values from (100) to (200);
insert into cpg_part values (1, 1), (150, 2);
create table cpg_inh_parent (id int, v int);
create table cpg_inh_child () inherits (cpg_inh_parent);
insert into cpg_inh_child values (1, 10);
""")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    parent, part1 = "select sum(v) from cpg_part", "select sum(v) from cpg_part_1"
    iparent, ichild = "select sum(v) from cpg_inh_parent", "select sum(v) from cpg_inh_child"
    assert_fresh_after(a, ra, lambda: execute(wb, "insert into cpg_part_1 values (2, 5)"), [parent, part1], db,
                       "write to a partition")
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_part set v = v + 1 where id = 1"), [parent, part1], db,
                       "write to the partitioned table")
    assert_fresh_after(a, ra, lambda: execute(wb, "insert into cpg_inh_child values (2, 20)"), [iparent, ichild], db,
                       "write to an inheriting table")
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_inh_parent set v = v + 1"), [iparent, ichild], db,
                       "write to the inherited-from table")


def test_triggers_and_rules_invalidate_what_they_write(tether, db):
    db.cursor().execute("""
create table cpg_y (id serial primary key, note text);
create table cpg_x (id int);
create function cpg_x_trg() returns trigger language plpgsql as $$
begin insert into cpg_y (note) values ('from x ' || new.id); return new; end $$;
create trigger cpg_x_ins after insert on cpg_x for each row execute function cpg_x_trg();
create table cpg_r (id int);
create rule cpg_r_log as on insert to cpg_r do also insert into cpg_y (note) values ('rule ' || new.id);
""")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    reads = ["select count(*) from cpg_y", "select note from cpg_y order by id"]
    assert_fresh_after(a, ra, lambda: execute(wb, "insert into cpg_x values (1)"), reads, db, "trigger")
    assert_fresh_after(a, ra, lambda: execute(wb, "insert into cpg_r values (2)"), reads, db, "rule")


def test_function_calls_invalidate(tether, db):
    db.cursor().execute("""
create function cpg_bump() returns int language plpgsql as $$
begin update cpg_products set qty = qty + 1 where id = 1; return 1; end $$;
create procedure cpg_bump_proc() language plpgsql as $$
begin update cpg_products set qty = qty + 10 where id = 1; end $$;
""")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    reads = ["select qty from cpg_products where id = 1"]
    assert_fresh_after(a, ra, lambda: execute(wb, "select cpg_bump()"), reads, db, "select f()")
    assert_fresh_after(a, ra, lambda: execute(wb, "call cpg_bump_proc()"), reads, db, "call")
    assert_fresh_after(a, ra, lambda: execute(wb, "do $$ begin update cpg_products set qty = 0 where id = 1; end $$"),
                       reads, db, "do")
    b3 = pg3(b)
    assert_fresh_after(a, ra, lambda: b3.execute("select cpg_bump() where %s", (True,)), reads, db, "extended select f()")
    # a rule-matched read that calls an unknown function is run every time, and invalidates too
    q0 = one(db, reads[0])[0]
    never_hit(a, lambda: rows(ra, "select cpg_bump() from cpg_products where id = 1"), n=2)
    assert one(db, reads[0])[0] == q0 + 2
    assert rows(ra, reads[0]) == rows(db, reads[0])


def test_ddl_invalidates(tether, db):
    db.cursor().execute("create table cpg_ddl (id int primary key, v text); insert into cpg_ddl values (1, 'one');"
                        "create table cpg_t1 (v text); insert into cpg_t1 values ('t1');"
                        "create table cpg_t2 (v text); insert into cpg_t2 values ('t2');"
                        "create view cpg_sv as select v from cpg_t1")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    reads = ["select * from cpg_ddl where id = 1"]
    assert_fresh_after(a, ra, lambda: execute(wb, "alter table cpg_ddl add column extra int default 7"), reads, db,
                       "add column", fetch=rows_named)
    assert_fresh_after(a, ra, lambda: execute(wb, "alter table cpg_ddl rename column v to w"), reads, db,
                       "rename column", fetch=rows_named)

    def recreate():
        execute(wb, "drop table cpg_ddl")
        execute(wb, "create table cpg_ddl (id int primary key, v text, other int)")
        execute(wb, "insert into cpg_ddl values (1, 'recreated', 9)")
    assert_fresh_after(a, ra, recreate, reads, db, "drop and recreate", fetch=rows_named)
    # a view redefined over another table: its reads now depend on that table
    view = ["select v from cpg_sv"]
    assert_fresh_after(a, ra, lambda: execute(wb, "create or replace view cpg_sv as select v from cpg_t2"), view, db,
                       "view redefined")
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_t2 set v = 't2 changed'"), view, db,
                       "write to the view's new base table")


def test_ddl_outside_tether_is_picked_up_after_schema_ttl(tether, db, postgres):
    db.cursor().execute("create table cpg_t1 (v text); insert into cpg_t1 values ('t1');"
                        "create table cpg_t2 (v text); insert into cpg_t2 values ('t2');"
                        "create view cpg_sv as select v from cpg_t1")
    rules = ({"database": "appdb", "match": "'^select v from cpg_sv'", "ttl": "1s"}, BROAD_RULE)
    a = tether("a", rules=rules, cache_extra="  schema_ttl: 1s")
    b = tether("b", rules=rules, cache_extra="  schema_ttl: 1s")
    ra, wb = pg2(a), pg2(b)
    sql = "select v from cpg_sv"
    until_hit(a, lambda: rows(ra, sql))
    execute(db, "create or replace view cpg_sv as select v from cpg_t2")  # behind tether's back
    time.sleep(2.5)  # past the entry's TTL and past schema_ttl
    assert until_hit(a, lambda: rows(ra, sql))[-1] == [("t2",)]
    execute(wb, "update cpg_t2 set v = 't2 changed'")
    assert rows(ra, sql) == [("t2 changed",)], "tether a still follows the view's old definition"


def test_reads_that_run_user_functions_are_never_served_stale(tether, db):
    """A statement can run a user function without naming one: through a view, or an operator.
    If the function writes, the read is a write: it must run every time and invalidate."""
    db.cursor().execute("""
create function cpg_bump() returns int language plpgsql as $$
begin update cpg_products set qty = qty + 1 where id = 1; return 1; end $$;
create view cpg_fv as select cpg_bump() as b;
create function cpg_opf(int, int) returns int language plpgsql as $$
begin update cpg_products set qty = qty + 100 where id = 1; return $1 + $2; end $$;
create operator ### (leftarg = int, rightarg = int, function = cpg_opf);
""")
    a = tether()
    ra = pg2(a)
    qty = "select qty from cpg_products where id = 1"
    failed = []
    for read, step in (("select b from cpg_fv", 1), ("select id ### 1 from cpg_products where id = 1", 100)):
        until_hit(a, lambda: rows(ra, qty))
        q0 = one(db, qty)[0]
        for _ in range(2):
            rows(ra, read)
        if rows(ra, qty) != rows(db, qty):
            failed.append(f"{read!r} wrote cpg_products, and a read of it through tether is stale: "
                          f"{rows(ra, qty)} vs PostgreSQL {rows(db, qty)}")
        if one(db, qty)[0] != q0 + 2 * step:
            failed.append(f"{read!r} was answered from the cache: its function ran {(one(db, qty)[0] - q0) // step} "
                          f"of 2 times")
    assert not failed, "\n".join(failed)


def test_writes_resolve_names_under_the_writers_search_path(tether, db):
    """An unqualified name in a write means the table the writer's search_path finds: a session
    that changed its search_path writes cpg_alt.cpg_products with `update cpg_products`."""
    db.cursor().execute("create schema cpg_alt; create table cpg_alt.cpg_products (id int primary key, name text);"
                        "insert into cpg_alt.cpg_products values (1, 'alt')")
    a = tether("a")
    b = tether("b", pool_size=1)  # one server: a SET lands where the next statement runs
    s = tether("s", mode="session")
    ra = pg2(a)
    reads = ["select name from cpg_alt.cpg_products where id = 1"]
    upd = "update cpg_products set name = %s where id = 1"

    def startup_option():
        conn = psycopg2.connect(b.dsn, options="-c search_path=cpg_alt")
        conn.autocommit = True
        execute(conn, upd, ("via the startup search_path",))
        conn.close()

    def set_in(t, how, value):
        def write():
            conn = pg2(t)
            execute(conn, how)
            execute(conn, upd, (value,))
            execute(conn, "reset search_path")
            conn.close()
        return write
    fresh_after_each(a, ra, [
        ("startup option search_path", startup_option, reads),
        ("SET search_path in session mode", set_in(s, "set search_path = cpg_alt", "via SET, session mode"), reads),
        ("set_config('search_path') in session mode",
         set_in(s, "select set_config('search_path', 'cpg_alt', false)", "via set_config"), reads),
        ("SET search_path in transaction mode", set_in(b, "set search_path = cpg_alt", "via SET, transaction mode"),
         reads),
        ("SET LOCAL search_path in a transaction",
         set_in(b, "begin; set local search_path = cpg_alt; update cpg_products set name = 'local' where id = 1; commit",
                "after SET LOCAL"), reads),
    ], db)


def test_prepared_and_batched_writes_invalidate(tether, db):
    a, b = tether("a"), tether("b")
    ra = pg2(a)
    reads = ["select name from cpg_products where id = 1"]
    upd = "update cpg_products set name = %s where id = %s"
    with pg3(b, prepare_threshold=0) as w:
        for i in range(3):  # the same named statement, bound again each time
            assert_fresh_after(a, ra, lambda: w.execute(upd, (f"pg3 prepared {i}", 1), prepare=True), reads, db,
                               f"psycopg 3 prepared, run {i}")
        assert_fresh_after(a, ra, lambda: w.cursor().executemany(upd, [("em 1", 1), ("em 2", 1)]), reads, db,
                           "psycopg 3 executemany")

        def in_pipeline():
            with w.pipeline():
                w.execute(upd, ("in a pipeline", 1))
                w.execute("select 1")
        assert_fresh_after(a, ra, in_pipeline, reads, db, "psycopg 3 pipeline")

    async def main():
        c = await asyncpg.connect(host=b.sockdir, port=5432, user="app", database="appdb")
        try:
            st = await c.prepare("update cpg_products set name = $1 where id = $2")
            for i in range(3):
                before = rows(ra, reads[0])
                until_hit(a, lambda: rows(ra, reads[0]))
                await st.fetch(f"asyncpg prepared {i}", 1)
                assert rows(ra, reads[0]) == rows(db, reads[0]) != before, f"asyncpg prepared, run {i}"
            until_hit(a, lambda: rows(ra, reads[0]))
            await c.executemany("update cpg_products set name = $1 where id = $2", [("aem 1", 1), ("aem 2", 1)])
            assert rows(ra, reads[0]) == rows(db, reads[0]) == [("aem 2",)], "asyncpg executemany"
        finally:
            await c.close()
    asyncio.run(main())


def test_writes_outside_tether_are_bounded_by_the_ttl(tether, db, redis, prefix):
    rules = ({"database": "appdb", "match": "'^select name from cpg_products'", "ttl": "1s"},)
    a = tether(rules=rules, cache_extra="  default_ttl: 1s")
    ra = pg2(a)
    reads = ["select name from cpg_products where id = 1", "/* tether:cache ttl=1s */ select qty from cpg_products where id = 2",
             "/* tether:cache */ select note from cpg_products where id = 2"]
    for sql in reads:
        until_hit(a, lambda: rows(ra, sql))
    entries = redis_keys(redis, prefix + "e:*")
    assert entries and all(0 < redis.command("PTTL", k) <= 1000 for k in entries)
    execute(db, "update cpg_products set name = 'outside', qty = 77, note = 'outside' where id in (1, 2)")
    time.sleep(1.3)
    for sql in reads:
        assert rows(ra, sql) == rows(db, sql), sql


def test_catalog_connection_lost_and_postgres_restarted(tether, db, postgres):
    db.cursor().execute("create view cpg_pview as select id, name from cpg_products")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    view = ["select name from cpg_pview where id = 1"]
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_products set name = 'first' where id = 1"), view, db)
    catalog = "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'tether-catalog'"
    assert postgres.query(catalog, db="appdb"), "no tether-catalog connection found"
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_products set name = 'catalog gone' where id = 1"), view, db,
                       "after the catalog connection was killed")
    execute(db, "create view cpg_pview2 as select id, name from cpg_products")  # tables learnt anew
    postgres.query(catalog, db="appdb")
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_products set name = 'new view' where id = 1"),
                       ["select name from cpg_pview2 where id = 1"], db, "a view first read after the kill")
    postgres.restart()
    d = direct(postgres)

    def retry(fn):
        for _ in range(20):
            try:
                return fn()
            except psycopg2.Error:
                time.sleep(0.25)
        return fn()
    ra, wb = retry(lambda: pg2(a)), retry(lambda: pg2(b))
    retry(lambda: execute(wb, "update cpg_products set name = 'after restart' where id = 1"))
    assert retry(lambda: rows(ra, view[0])) == rows(d, view[0]) == [("after restart",)]
    assert_fresh_after(a, ra, lambda: execute(wb, "update cpg_products set name = 'and again' where id = 1"), view, d,
                       "after PostgreSQL restarted")
    d.close()


def test_reads_of_a_sequence_are_never_cached(tether, db):
    """nextval and setval are built-ins, but they write: a read of the sequence itself
    (monitoring does `select last_value from seq`) is never cached, so it is never stale."""
    execute(db, "drop sequence if exists cpg_seq cascade; create sequence cpg_seq;"
                "create table cpg_seq_user (id bigint default nextval('cpg_seq'))")
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    read = "select last_value, is_called from cpg_seq"
    try:
        for write in ("select nextval('cpg_seq')", "select nextval('cpg_seq')", "select setval('cpg_seq', 100)",
                      "insert into cpg_seq_user default values"):
            never_hit(a, lambda: one(ra, read))
            execute(wb, write)
            assert one(ra, read) == one(db, read), write
        assert a.bypasses("dependencies") > 0, a.cache()
    finally:
        execute(db, "drop sequence if exists cpg_seq cascade; drop table if exists cpg_seq_user")


def test_clients_that_leave_mid_request(tether, db):
    """Clients that close their socket right after sending: tether keeps serving others, and a
    write that committed is invalidated even though nobody saw its ReadyForQuery."""
    a, b = tether("a"), tether("b")
    ra = pg2(a)
    sql = "select name from cpg_products where id = 1"
    until_hit(a, lambda: one(ra, sql))
    for i in range(30):  # lookups, hits and an uncached query abandoned mid-way
        w = Wire(a.wire_path)
        w.send(Q(sql), Q("select name from cpg_products where id = 2"), Q("select pg_sleep(0.05)"))
        w.close()
    assert one(ra, sql) == ("apple",)

    def settle(want):
        """True when the write committed and a sees it; False when it never reached PostgreSQL
        (a request whose client left may be dropped, a transaction rolled back): fine, as long
        as a agrees with PostgreSQL."""
        time.sleep(0.3)
        deadline = time.monotonic() + scaled(2)  # far below the 60 s TTL
        while time.monotonic() < deadline:
            if one(db, sql) == (want,) == one(ra, sql):
                return True
            time.sleep(0.05)
        assert one(ra, sql) == one(db, sql), f"stale: {one(ra, sql)} through a, {one(db, sql)} in PostgreSQL"
        return False
    writes = {
        "autocommit update": [Q("update cpg_products set name = 'left 1' where id = 1")],
        "BEGIN; UPDATE; COMMIT in one Query": [Q("begin; update cpg_products set name = 'left 2' where id = 1; commit")],
        "extended update": [P("", "update cpg_products set name = $1 where id = 1"), B("", ["left 3"]), E(), SYNC],
        "COMMIT sent, then gone": [Q("begin"), Q("update cpg_products set name = 'left 4' where id = 1"), Q("commit")],
        "autocommit update, again": [Q("update cpg_products set name = 'left 5' where id = 1")],
    }
    landed = []
    for i, (what, bundle) in enumerate(writes.items()):
        until_hit(a, lambda: one(ra, sql))
        w = Wire(b.wire_path)
        w.send(*bundle)
        w.close()
        if settle(f"left {i + 1}"):
            landed.append(what)
    assert landed, "no write of a leaving client ever committed: the test exercised nothing"
    assert one(ra, sql) == one(db, sql)


BREAKER = "  failure_threshold: 1\n  open_for: 200ms\n  connect_timeout: 500ms"


def pause_redis(redis, ms):
    """CLIENT PAUSE: Redis holds every client's commands for ms (DEBUG SLEEP is disabled): a
    stall longer than command_timeout, with the server and its data and run_id unchanged."""
    th = threading.Thread(target=lambda: redis_command((redis.host, redis.port), "CLIENT", "PAUSE", str(ms), "ALL"))
    th.start()
    time.sleep(0.1)
    return th


def test_redis_stall_never_serves_this_tethers_own_write_stale(tether, db, redis):
    a = tether("a", cache_extra=BREAKER)
    ra, wa = pg2(a), pg2(a)
    sql = "select name from cpg_products where id = 1"
    for i in range(2):
        until_hit(a, lambda: one(ra, sql))
        th = pause_redis(redis, 1200)
        execute(wa, "update cpg_products set name = %s where id = 1", (f"stall {i}",))  # its bump cannot land now
        stale = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            got = one(ra, sql)
            if got != (f"stall {i}",):
                stale.append(got)
            time.sleep(0.01)
        th.join(scaled(10))
        assert stale == [], f"{len(stale)} stale reads after a Redis stall"
    assert a.cache()["invalidations"]["pending_applied"] >= 1


def test_redis_stall_write_through_b_then_reads_through_a(tether, db, redis):
    a, b = tether("a", cache_extra=BREAKER), tether("b", cache_extra=BREAKER)
    ra, wb = pg2(a), pg2(b)
    sql = "select name from cpg_products where id = 1"
    stale = []
    for i in range(3):
        until_hit(a, lambda: one(ra, sql))
        th = pause_redis(redis, 1000)
        execute(wb, "update cpg_products set name = %s where id = 1", (f"stall {i}",))
        th.join(scaled(10))
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            got = one(ra, sql)
            if got != (f"stall {i}",):
                stale.append((i, got))
            time.sleep(0.01)
    assert stale == [], f"{len(stale)} stale reads through a after Redis stalled during b's write: {stale[:5]}"


def test_redis_restarts_never_serve_a_stale_read(tether, db, redis):
    a, b = tether("a", cache_extra=BREAKER), tether("b", cache_extra=BREAKER)
    ra, rb, wa, wb = pg2(a), pg2(b), pg2(a), pg2(b)
    r1, r2 = "select name from cpg_products where id = 1", "select name from cpg_products where id = 2"

    def check(v1, v2, seconds=0.0):
        deadline = time.monotonic() + seconds
        while True:
            for conn, who in ((ra, "a"), (rb, "b")):
                got = (one(conn, r1)[0], one(conn, r2)[0])
                assert got == (v1, v2), f"stale read through {who}: {got}, want {(v1, v2)}"
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def prime(v1, v2):
        for t, conn in ((a, ra), (b, rb)):
            for sql, v in ((r1, v1), (r2, v2)):
                assert until_hit(t, lambda: one(conn, sql))[-1] == (v,)

    for scenario in ("killed, restarted empty", "stopped, restarted with its data"):
        prime("apple" if scenario.startswith("killed") else "x1", "pear" if scenario.startswith("killed") else "x2")
        if scenario.startswith("killed"):
            redis.kill()
        else:
            redis.stop(keep_data=True)
        try:
            v1, v2 = f"{scenario} 1", f"{scenario} 2"
            execute(wb, "update cpg_products set name = %s where id = 1", (v1,))  # queued in b
            execute(wa, "update cpg_products set name = %s where id = 2", (v2,))  # queued in a
            check(v1, v2)
        finally:
            redis.start()
        check(v1, v2, seconds=1.5)  # right after the restart, while the tethers reconnect
        a.wait_readable()
        b.wait_readable()
        check(v1, v2)
        execute(wb, "update cpg_products set name = 'x1' where id = 1")
        execute(wb, "update cpg_products set name = 'x2' where id = 2")

    # Restored from an older snapshot (a failover to a lagging replica): the versions before a
    # durable write come back together with the entries stored under them.
    prime("x1", "x2")
    redis.command("SAVE")
    snapshot = os.path.join(redis.base, "snapshot.rdb")
    shutil.copy(os.path.join(redis.base, "dump.rdb"), snapshot)
    execute(wb, "update cpg_products set name = 'after the snapshot' where id = 1")
    check("after the snapshot", "x2")
    redis.kill()
    shutil.copy(snapshot, os.path.join(redis.base, "dump.rdb"))
    redis.start()
    check("after the snapshot", "x2", seconds=1.5)
    a.wait_readable()
    b.wait_readable()
    check("after the snapshot", "x2")
    # and caching works again
    until_hit(a, lambda: one(ra, r1))
    os.unlink(snapshot)


def test_deleted_or_evicted_version_keys_never_resurrect_an_entry(tether, db, redis, prefix):
    a, b = tether("a"), tether("b")
    ra, wb = pg2(a), pg2(b)
    sql = "select name from cpg_products where id = 1"

    def read():
        return one(ra, sql)[0]
    deletions = {
        "every version key": lambda: redis_delete(redis, f"{prefix}v:*"),
        "the table's version key": lambda: redis_delete(redis, f"{prefix}v:appdb:public.cpg_products"),
        "the database epoch": lambda: redis_delete(redis, f"{prefix}v:appdb:[*]"),
        "the global epoch": lambda: redis_delete(redis, f"{prefix}v:[*]"),
        "FLUSHALL": lambda: redis.command("FLUSHALL"),
    }
    for i, (what, delete) in enumerate(deletions.items()):
        until_hit(a, read)  # an entry under the current versions
        execute(wb, "update cpg_products set name = %s where id = 1", (f"d{i}",))
        delete()
        assert read() == f"d{i}", f"after deleting {what}"
        assert all(v == f"d{i}" for v in until_hit(a, read)), what

    # allkeys-lru eviction under memory pressure, with writes and reads going on
    old_max = redis.command("CONFIG", "GET", "maxmemory")[1]
    old_policy = redis.command("CONFIG", "GET", "maxmemory-policy")[1]
    info = redis.command("INFO", "memory").decode()
    used = int(next(l.split(":")[1] for l in info.splitlines() if l.startswith("used_memory:")))
    evicted0 = int(next(l.split(":")[1] for l in redis.command("INFO", "stats").decode().splitlines()
                        if l.startswith("evicted_keys:")))
    redis.command("CONFIG", "SET", "maxmemory", str(used + 3 * 1024 * 1024))
    redis.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    try:
        junk = b"j" * (256 * 1024)
        deadline = time.monotonic() + 4
        i = 0
        while time.monotonic() < deadline:
            i += 1
            for n in (1, 2, 3):
                rows(ra, PRODUCT, (n,))  # entries and version keys for the LRU to pick from
            read()
            execute(wb, "update cpg_products set name = %s where id = 1", (f"e{i}",))
            for j in range(6):
                redis.command("SET", f"cpgjunk:{i}:{j}", junk)
            assert read() == f"e{i}", f"stale read after evictions (round {i})"
        evicted = int(next(l.split(":")[1] for l in redis.command("INFO", "stats").decode().splitlines()
                           if l.startswith("evicted_keys:")))
        assert evicted > evicted0, "nothing was evicted (test bug)"
    finally:
        redis.command("CONFIG", "SET", "maxmemory", old_max)
        redis.command("CONFIG", "SET", "maxmemory-policy", old_policy)
        redis_delete(redis, "cpgjunk:*")


def test_redis_down_reads_go_to_postgres_and_writes_succeed(tether, db, redis):
    a, b = tether("a", cache_extra=BREAKER), tether("b", cache_extra=BREAKER)
    ra, ra3, wb, wb3 = pg2(a), pg3(a, prepare_threshold=0), pg2(b), pg3(b)
    sql = "select name, qty from cpg_products where id = 3"
    until_hit(a, lambda: one(ra, sql))
    redis.stop()
    try:
        before = a.cache()
        for i in range(5):
            execute(wb, "update cpg_products set qty = %s where id = 3", (100 + i,))
            assert one(ra, sql) == ("plum", 100 + i)
            wb3.execute("update cpg_products set qty = %s where id = %s", (200 + i, 3))
            assert ra3.execute("select name, qty from cpg_products where id = %s", (3,), prepare=True).fetchone() == \
                ("plum", 200 + i)
        after = a.cache()
        assert after["hits"] == before["hits"]
        assert sum(after["bypasses"].values()) >= sum(before["bypasses"].values()) + 10, after["bypasses"]
        assert b.cache()["invalidations"]["queued"] >= 1
    finally:
        redis.start()
    a.wait_readable()
    b.wait_readable()
    assert until_hit(a, lambda: one(ra, sql))[-1] == ("plum", 204)


# ============================================================================================
# 5. What is not cached
# ============================================================================================

def test_not_cached_inside_a_transaction_block(tether, db):
    a = tether()
    sql = "select name from cpg_products where id = 1"
    c = pg2(a)
    until_hit(a, lambda: one(c, sql))
    tx = pg2(a, autocommit=False)
    bypass0 = a.bypasses("in_transaction")
    never_hit(a, lambda: one(tx, sql))
    execute(tx, "update cpg_products set name = 'mine, uncommitted' where id = 1")
    assert one(tx, sql) == ("mine, uncommitted",)  # a transaction sees its own write
    assert one(c, sql) == ("apple",)  # others do not
    tx.rollback()
    assert one(c, sql) == ("apple",)
    # explicit BEGIN on an autocommit connection, extended protocol too
    with pg3(a, prepare_threshold=0) as c3:
        with c3.transaction():
            never_hit(a, lambda: c3.execute("select name from cpg_products where id = %s", (1,), prepare=True).fetchone())
    assert a.bypasses("in_transaction") > bypass0, a.cache()["bypasses"]


def test_not_cached_after_session_settings(tether, db):
    db.cursor().execute("create schema cpg_alt; create table cpg_alt.cpg_products (id int primary key, name text);"
                        "insert into cpg_alt.cpg_products values (1, 'alt apple')")
    sql = "select name from cpg_products where id = 1"
    a = tether("a", mode="session", pool_size=8)  # session mode: every connection below holds a server
    warm = pg2(a)
    until_hit(a, lambda: one(warm, sql))
    bypass0 = a.bypasses("session_settings")

    s1 = pg2(a)
    execute(s1, "set search_path = cpg_alt, public")
    assert never_hit(a, lambda: one(s1, sql)) == [("alt apple",)] * 3
    s2 = pg2(a)
    execute(s2, "select set_config('search_path', 'cpg_alt', false)")
    assert never_hit(a, lambda: one(s2, sql)) == [("alt apple",)] * 3
    s3 = pg2(a)
    execute(s3, "create temp table cpg_products (id int, name text); insert into cpg_products values (1, 'temp apple')")
    assert never_hit(a, lambda: one(s3, sql)) == [("temp apple",)] * 3
    s4 = pg2(a)
    execute(s4, "set statement_timeout = '10s'")
    execute(s4, "reset statement_timeout")
    never_hit(a, lambda: one(s4, sql))
    assert one(warm, sql) == ("apple",)
    assert a.bypasses("session_settings") > bypass0, a.cache()["bypasses"]

    # transaction mode: DateStyle (a reported setting that follows the client)
    t = tether("t")
    c, d = pg2(t), pg2(t)
    until_hit(t, lambda: rows(c, "select made::text from cpg_products where id = 1"))
    execute(d, "set datestyle = 'German, DMY'")
    assert never_hit(t, lambda: one(d, "select made::text from cpg_products where id = 1")) == [("29.02.2024",)] * 3
    assert one(c, "select made::text from cpg_products where id = 1") == ("2024-02-29",)


def test_not_cached_volatile_locking_and_hinted_out(tether, db):
    a = tether()
    c = pg2(a)
    r = never_hit(a, lambda: one(c, "select name, random() from cpg_products where id = 1"))
    assert len({x[1] for x in r}) == 3
    never_hit(a, lambda: one(c, "select name from cpg_products where id = 1 for update"))
    never_hit(a, lambda: one(c, "select name from cpg_products where id = 1 for share"))
    never_hit(a, lambda: one(c, "select name, clock_timestamp() from cpg_products where id = 1"))
    never_hit(a, lambda: one(c, "select name, txid_current() from cpg_products where id = 1"))
    never_hit(a, lambda: one(c, "select pg_sleep(0) from cpg_products where id = 1"))
    never_hit(a, lambda: one(c, "/* tether:nocache */ select name from cpg_products where id = 1"))
    never_hit(a, lambda: one(c, "select name from cpg_products where id = 1 /* tether:nocache */"))
    q = never_hit(a, lambda: one(c, "/* tether:cache ttl=30s */ with x as (update cpg_products set qty = qty + 1 "
                                    "where id = 2 returning qty) select qty from x"))
    assert [v[0] for v in q] == [2, 3, 4]
    r = never_hit(a, lambda: one(c, "/* tether:cache ttl=30s */ select random()"))
    assert len(set(r)) == 3
    execute(db, "create sequence if not exists cpg_seq")
    r = never_hit(a, lambda: one(c, "select nextval('cpg_seq') from cpg_products where id = 1"))
    assert len(set(r)) == 3
    execute(db, "drop sequence cpg_seq")
    never_hit(a, lambda: rows(c, "select * into temp cpg_tmp_into from cpg_products; drop table cpg_tmp_into"), n=1)


def test_results_over_max_entry_size_are_not_cached(tether, db):
    a = tether(cache_extra="  max_entry_size: 10KB")
    c = pg2(a)
    big = "select id, repeat(name, 5000) from cpg_products where id = 1"  # about 25 KB
    want = rows(db, big)
    before = a.cache()
    assert never_hit(a, lambda: rows(c, big), n=4) == [want] * 4
    after = a.cache()
    assert after["bypasses"].get("too_large", 0) > before["bypasses"].get("too_large", 0) or \
        after["store_skipped"] > before["store_skipped"], after
    w = Wire(a.wire_path)
    never_hit(a, lambda: w.request(P("", "select id, repeat(name, $1) from cpg_products where id = 1"),
                                   B("", ["5000"]), E(), SYNC))
    until_hit(a, lambda: rows(c, "select id, repeat(name, 50) from cpg_products where id = 1"))  # small: cached


def test_hints_and_fingerprint_rules(tether, db):
    rules = ({"database": "appdb", "fingerprint": "'select name from cpg_products where id = ?'", "ttl": "30s"},
             {"database": "otherdb", "match": "'^select qty'", "ttl": "30s"})
    a = tether("a", rules=rules)
    c = pg2(a)
    for i in (1, 2):
        assert until_hit(a, lambda: one(c, "select name from cpg_products where id = %s", (i,)))[-1] == one(
            db, "select name from cpg_products where id = %s", (i,))
    never_hit(a, lambda: one(c, "select qty from cpg_products where id = 1"))  # a rule of another database
    hinted = "/* tether:cache ttl=30s */ select qty from cpg_products where id = 1"
    until_hit(a, lambda: one(c, hinted))
    doc = a.cache()
    hint = [r for r in doc["rules"] if r.get("hint")]
    assert len(hint) == 1 and hint[0]["hits"] >= 1, doc["rules"]
    assert doc["rules"][0]["hits"] >= 2 and doc["rules"][0]["ttl_ms"] == 30000
    for stmt in ("/* tether:cache */ table cpg_counters", "/* tether:cache ttl=5s */ values (1, 'x'), (2, null)"):
        assert until_hit(a, lambda: rows(c, stmt))[-1] == rows(db, stmt)
    assert_fresh_after(a, c, lambda: execute(c, "update cpg_counters set v = v + 1"),
                       ["/* tether:cache */ table cpg_counters"], db, "TABLE t")
    f = tether("f", rules=rules, cache_extra="  hints: forbid")
    cf = pg2(f)
    never_hit(f, lambda: one(cf, hinted))


# ============================================================================================
# 6. The consistency checker
# ============================================================================================

def test_consistency_checker_counts_no_stale_reads(tether, db):
    rules = ({"database": "appdb", "match": "'^select v from cpg_counters where id = '", "ttl": "60s"},)
    a, b = tether("a", rules=rules, pool_size=4), tether("b", rules=rules, pool_size=4)
    committed = {1: 0, 2: 0, 3: 42}
    lock = threading.Lock()
    stop = threading.Event()
    stale, errors, reads, writes = [], [], [0], [0]
    duration = 8.0

    def writer(cid, in_tx):
        try:
            conn = pg2(b, autocommit=not in_tx)
            rnd = random.Random(cid)
            while not stop.is_set():
                v = one(conn, "update cpg_counters set v = v + 1 where id = %s returning v", (cid,))[0]
                if in_tx:
                    conn.commit()
                with lock:
                    committed[cid] = max(committed[cid], v)
                    writes[0] += 1
                time.sleep(rnd.random() * 0.01)
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"writer {cid}: {e!r}")

    def reader(n, t, kind):
        try:
            rnd = random.Random(100 + n)
            if kind == "psycopg2":
                conn = pg2(t)

                def read(cid):
                    return one(conn, "select v from cpg_counters where id = %s", (cid,))[0]
            else:
                conn = pg3(t, prepare_threshold=0)

                def read(cid):
                    return conn.execute("select v from cpg_counters where id = %s", (cid,), prepare=True).fetchone()[0]
            while not stop.is_set():
                cid = rnd.choice((1, 2, 3))
                with lock:
                    floor = committed[cid]
                v = read(cid)
                with lock:
                    reads[0] += 1
                    if v < floor:
                        stale.append((t.name, kind, cid, floor, v))
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"reader {n}: {e!r}")

    threads = [threading.Thread(target=writer, args=(1, False)), threading.Thread(target=writer, args=(2, True))]
    threads += [threading.Thread(target=reader, args=(n, a, kind))
                for n, kind in enumerate(("psycopg2", "psycopg2", "psycopg3", "psycopg3"))]
    threads.append(threading.Thread(target=reader, args=(9, b, "psycopg2")))  # and one reader on the writers' tether
    hits0 = a.hits()
    for th in threads:
        th.start()
    time.sleep(duration)
    stop.set()
    for th in threads:
        th.join(scaled(15))
    assert not any(th.is_alive() for th in threads)
    assert errors == []
    assert stale == [], f"{len(stale)} stale reads of {reads[0]} (first: {stale[:5]})"
    assert writes[0] > 20 and reads[0] > 100, (writes, reads)
    assert a.hits() > hits0
    assert one(db, "select v from cpg_counters where id = 1")[0] == committed[1]


# ============================================================================================
# 7. Bad input
# ============================================================================================

def test_bad_rule_stops_tetherd_at_start_with_the_key_path(tetherd, postgres, redis, tmp_path, prefix):
    # (--check-config with a bad rule is covered by test_cache_plugin.py; this is a real start)
    rules = (BROAD_RULE, {"database": "appdb", "match": "'(unclosed'", "ttl": "5s"})
    t = tetherd(config_text(postgres, redis.url, tmp_path / "s", free_port(), prefix, rules=rules), wait_ready=False)
    rc = t.proc.wait(timeout=scaled(10))
    assert rc != 0
    assert "cache.rules[1].match" in t.log_text(), t.log_text()[-2000:]


def test_protocol_garbage_leaves_other_clients_cached_reads_alone(tether, db):
    a = tether()
    sql = "select name, price from cpg_products where id = 2"
    want = one(db, sql)
    c = pg2(a)
    until_hit(a, lambda: one(c, sql))
    stop, errors, count = threading.Event(), [], [0]

    def reader():
        conn = pg2(a)
        while not stop.is_set():
            try:
                r = one(conn, sql)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
                return
            if r != want:
                errors.append(r)
            count[0] += 1
    th = threading.Thread(target=reader)
    hits0 = a.hits()
    th.start()
    try:
        # garbage where a startup packet should be
        w = Wire(a.wire_path, startup=False)
        w.send(b"GARBAGE!GARBAGE!GARBAGE!")
        assert b"08P01" in w.read_until_closed()
        # an unknown message type after startup
        w = Wire(a.wire_path)
        w.send(msg(b"\x01", b"junk"))
        assert b"08P01" in w.read_until_closed()
        # a message longer than max_packet_size
        w = Wire(a.wire_path)
        w.send(b"Q" + struct.pack("!I", 0x7ffffff0) + b"select")
        assert b"08P01" in w.read_until_closed()
        # a message cut off, then the connection closed
        w = Wire(a.wire_path)
        w.send(b"Q" + struct.pack("!I", 200) + b"select name fr")
        w.close()
        # protocol errors the connection survives: unknown statement, wrong parameter count,
        # Execute of a portal that was never bound; each followed by a cached read
        w = Wire(a.wire_path)
        for bundle in ([B("nosuch", ["1"]), E(), SYNC],
                       [P("", "select name from cpg_products where id = $1"), B("", []), E(), SYNC],
                       [P("", "select name from cpg_products where id = $1"), E("noportal"), SYNC],
                       [P("", "select name from cpg_products where id = $1", [23]), B("", [b"\x00"], [1]), E(), SYNC]):
            assert error_code(w.request(*bundle)) is not None, bundle
            ok = w.request(Q("select name, price from cpg_products where id = 2"))
            assert error_code(ok) is None and b"pear" in ok
        w.close()
    finally:
        stop.set()
        th.join(scaled(10))
    assert errors == [] and count[0] > 0
    assert a.hits() > hits0


# ============================================================================================
# 8. No secrets; the admin views
# ============================================================================================

class PrivateRedis:
    """A redis-server of this test alone, with requirepass (the session's Redis has none)."""

    def __init__(self, password):
        self.base = make_tempdir("cpg-redis-")
        self.port = free_port()
        self.password = password
        self.proc = None
        self.start()

    def start(self):
        self.proc = spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--requirepass",
                           self.password, "--save", "", "--appendonly", "no", "--dir", self.base],
                          os.path.join(self.base, "redis.log"), cwd=self.base)
        wait_until(lambda: redis_command(("127.0.0.1", self.port), "AUTH", self.password) == "OK", 15,
                   "private redis", os.path.join(self.base, "redis.log"), self.proc)

    def kill(self):
        stop_group(self.proc, signal.SIGKILL, 5)

    def close(self):
        self.kill()
        shutil.rmtree(self.base, ignore_errors=True)


def test_redis_password_never_appears(tether, db, tetherd_logs):
    pw, wrong = f"cpg-redis-pw-{uuid.uuid4().hex[:12]}", f"cpg-wrong-pw-{uuid.uuid4().hex[:12]}"
    tetherd_logs.forbid(pw)
    tetherd_logs.forbid(wrong)
    r = PrivateRedis(pw)
    try:
        url = f"redis://127.0.0.1:{r.port}"
        a = tether("a", redis_url=url, env={"CPG_REDIS_PW": pw}, log_level="debug",
                   cache_extra="  password: ${CPG_REDIS_PW}\n" + BREAKER)
        bad = tether("bad", redis_url=url, env={"CPG_REDIS_PW": wrong}, log_level="debug", wait=False,
                     cache_extra="  password: ${CPG_REDIS_PW}\n" + BREAKER)
        c, cb = pg2(a), pg2(bad)
        sql = "select name from cpg_products where id = 1"
        until_hit(a, lambda: one(c, sql))
        assert never_hit(bad, lambda: one(cb, sql)) == [("apple",)] * 3  # wrong password: bypass, still answers
        r.kill()
        assert one(c, sql) == ("apple",)
        r.start()
        a.wait_readable()
        until_hit(a, lambda: one(c, sql))
        for t in (a, bad):
            for path in ("/admin/config", "/admin/cache", "/metrics"):
                body = t.proc.admin_get(path)[2].decode()
                assert pw not in body and wrong not in body, path
            text = t.proc.log_text()
            assert pw not in text and wrong not in text
        assert "********" in a.proc.admin_get("/admin/config")[2].decode()
    finally:
        r.close()


SHOW_CACHE_COLS = ["database", "match", "fingerprint", "ttl_ms", "matches", "hits", "misses", "bypasses", "hit_ratio"]


def test_show_cache_purge_admin_json_and_metrics_agree(tether, db, redis, prefix):
    rules = (BROAD_RULE, {"database": "appdb", "fingerprint": "'select 1 from cpg_never where id = ?'", "ttl": "5s"})
    a = tether("a", rules=rules)
    c = pg2(a)
    sql = "select name from cpg_products where id = 1"
    until_hit(a, lambda: one(c, sql))

    def admin(command):
        rc, out, err = psql(a.sockdir, 5432, command, db="tether", args=("-A", "-F", "|", "-P", "footer=off"))
        assert rc == 0, err
        lines = out.strip().splitlines()
        return lines[0].split("|"), [dict(zip(lines[0].split("|"), l.split("|"))) for l in lines[1:]]
    cols, table = admin("SHOW CACHE")
    assert cols == SHOW_CACHE_COLS
    # one row per rule, then the hint row (a summary row after them is tolerated)
    assert len(table) >= len(rules) + 1, table
    assert all(r["database"] == "(total)" for r in table[len(rules) + 1:]), table
    assert table[len(rules)]["match"] == "" and table[len(rules)]["fingerprint"] == "", table
    doc = a.cache()
    assert int(table[0]["hits"]) == doc["rules"][0]["hits"] >= 1
    assert table[0]["database"] == "appdb" and table[0]["ttl_ms"] == "60000"
    assert table[1]["fingerprint"] == "select 1 from cpg_never where id = ?" and table[1]["hits"] == "0"
    metrics = a.proc.admin_get("/metrics")[2].decode()
    assert f"tether_cache_hits_total {doc['hits']}" in metrics
    assert "tether_cache_misses_total" in metrics and "tether_cache_bypasses_total{reason=" in metrics

    table_key = f"{prefix}v:appdb:public.cpg_products".encode()
    for command in ("CACHE PURGE appdb public.cpg_products", "CACHE PURGE appdb", "CACHE PURGE", "cache purge;"):
        until_hit(a, lambda: one(c, sql))
        v0 = redis.command("GET", table_key)
        admin(command)
        assert redis.command("GET", table_key) != v0 or command != "CACHE PURGE appdb public.cpg_products"
        before = a.cache()
        assert one(c, sql) == ("apple",)
        after = a.cache()
        assert after["hits"] == before["hits"], f"{command}: still a hit"
