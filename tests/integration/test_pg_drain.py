"""SIGTERM with PostgreSQL clients connected: new connections are refused at once, a transaction
in flight may finish (and commits), tetherd exits as soon as none is left, and one that never
finishes is cut at shutdown_timeout and rolled back by the server."""
import signal
import time

import psycopg2
import pytest

from httpc import free_port


def config(postgres, sockdir, timeout):
    return f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
log: {{level: debug}}
daemon: {{shutdown_timeout: {timeout}}}
postgres:
  listen: ["unix://{sockdir}"]
  databases:
    appdb: {{host: {postgres.socket_dir}, port: {postgres.port}, user: app, pool_mode: transaction, pool_size: 2}}
"""


@pytest.fixture
def table(postgres):
    postgres.query("create table if not exists drain_t (v int)", db="appdb")
    postgres.query("truncate drain_t", db="appdb")
    postgres.query("grant all on drain_t to app", db="appdb")
    yield
    postgres.query("drop table drain_t", db="appdb")


def test_transaction_in_flight_finishes_then_exit(tetherd, postgres, tmp_path, table):
    sock = tmp_path / "pg"
    t = tetherd(config(postgres, sock, "20s"))
    dsn = f"host={sock} port=5432 user=app dbname=appdb"
    a = psycopg2.connect(dsn)
    idle = psycopg2.connect(dsn)
    a.cursor().execute("insert into drain_t values (1)")
    t.signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(dsn)  # no longer accepting
    a.cursor().execute("insert into drain_t values (2)")  # still inside its transaction
    started = time.time()
    a.commit()
    assert t.proc.wait(10) == 0
    assert time.time() - started < 5  # not the 20 s timeout
    assert postgres.query("select count(*) from drain_t", db="appdb")[0][0] == 2
    with pytest.raises(psycopg2.Error):  # the idle client's next request is refused
        idle.cursor().execute("select 1")


def test_unfinished_transaction_is_cut_at_shutdown_timeout(tetherd, postgres, tmp_path, table):
    sock = tmp_path / "pg"
    t = tetherd(config(postgres, sock, "1s"))
    a = psycopg2.connect(f"host={sock} port=5432 user=app dbname=appdb")
    a.cursor().execute("insert into drain_t values (1)")
    started = time.time()
    t.signal(signal.SIGTERM)
    t.proc.wait(10)
    assert 0.8 < time.time() - started < 6
    time.sleep(0.5)
    assert postgres.query("select count(*) from drain_t", db="appdb")[0][0] == 0  # rolled back
