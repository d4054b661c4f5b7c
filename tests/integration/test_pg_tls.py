"""TLS on both sides of the pooler against a real PostgreSQL with ssl = on: tether to the server
per sslmode (verify-full against the CA, refused with the wrong CA, disable), and clients to
tether with postgres.tls (verified by the client, errors delivered through TLS)."""
import psycopg2
import pytest

from httpc import free_port
from tlscerts import CA


def config(postgres, sockdir, tcp_port, sslmode, rootcert=None, tls=""):
    root = f"\n      sslrootcert: {rootcert}" if rootcert else ""
    return f"""
admin: {{listen: ["tcp://127.0.0.1:{free_port()}"]}}
log: {{level: debug}}
postgres:
  listen: ["unix://{sockdir}", "tcp://127.0.0.1:{tcp_port}"]
  port: 5432
{tls}
  databases:
    appdb:
      host: 127.0.0.1
      port: {postgres.port}
      user: app
      password: ${{PGPW:-app-secret-pw}}
      pool_mode: transaction
      pool_size: 2
      connect_timeout: 3s
      sslmode: {sslmode}{root}
"""


def server_ssl(dsn, **kw):
    with psycopg2.connect(dsn, **kw) as conn, conn.cursor() as cur:
        cur.execute("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
        return cur.fetchone()


def test_server_tls_verify_full_and_disable(tetherd, postgres, tmp_path):
    sock = tmp_path / "pg"
    t = tetherd(config(postgres, sock, free_port(), "verify-full", postgres.ca_file))
    ssl, version = server_ssl(f"host={sock} port=5432 user=app dbname=appdb")
    assert ssl is True and version.startswith("TLS")
    assert "TLS to the server established" in t.log_text()
    t.terminate()
    sock2 = tmp_path / "pg2"
    tetherd(config(postgres, sock2, free_port(), "disable"))
    assert server_ssl(f"host={sock2} port=5432 user=app dbname=appdb")[0] is False


def test_server_tls_wrong_ca_is_a_clear_error(tetherd, postgres, tmp_path):
    other = CA(str(tmp_path / "other-ca"))
    sock = tmp_path / "pg"
    t = tetherd(config(postgres, sock, free_port(), "verify-full", other.path))
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(f"host={sock} port=5432 user=app dbname=appdb").cursor().execute("select 1")
    assert "certificate verify" in str(e.value) or "verification failed" in str(e.value), str(e.value)
    assert "TLS certificate verification failed" in t.log_text()


def test_clients_over_tls(tetherd, postgres, tmp_path):
    ca = CA(str(tmp_path / "ca"))
    crt, key = ca.issue("tether")
    tcp = free_port()
    tls = f"  tls: {{cert_file: {crt}, key_file: {key}}}"
    tetherd(config(postgres, tmp_path / "pg", tcp, "prefer", tls=tls))
    dsn = f"host=127.0.0.1 port={tcp} user=app dbname=appdb sslmode=verify-full sslrootcert={ca.path}"
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select repeat('x', 3000000), 1")
        big, one = cur.fetchone()
        assert len(big) == 3000000 and one == 1
        assert conn.info.ssl_in_use
    # plain clients still work; an error reaches a TLS client intact
    with psycopg2.connect(dsn.replace("verify-full", "disable")) as conn:
        assert not conn.info.ssl_in_use
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(dsn.replace("dbname=appdb", "dbname=nosuch"))
    assert 'database "nosuch" does not exist' in str(e.value)


def test_bad_tls_files_fail_start(tetherd, postgres, tmp_path):
    tls = f"  tls: {{cert_file: {tmp_path}/missing.crt, key_file: {tmp_path}/missing.key}}"
    t = tetherd(config(postgres, tmp_path / "pg", free_port(), "prefer", tls=tls), wait_ready=False)
    assert t.proc.wait(10) != 0
    assert "postgres.tls: cannot use" in t.log_text() and "missing.crt" in t.log_text()


def test_long_server_password_over_tls(tetherd, postgres, tmp_path):
    """IAM access tokens are used as passwords: 4 KiB and more must work (SCRAM over TLS)."""
    pw = "t0k" * 1500  # 4500 characters
    postgres.query("DROP ROLE IF EXISTS longpw")
    postgres.query(f"CREATE ROLE longpw LOGIN PASSWORD '{pw}'")
    postgres.query("GRANT ALL ON DATABASE appdb TO longpw")
    sock = tmp_path / "pg"
    text = config(postgres, sock, free_port(), "require").replace("user: app", "user: longpw").replace(
        "${PGPW:-app-secret-pw}", "${LONGPW}")
    t = tetherd(text, env={"LONGPW": pw})
    with psycopg2.connect(f"host={sock} port=5432 user=app dbname=appdb") as conn, conn.cursor() as cur:
        cur.execute("select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()")
        assert cur.fetchone() == ("longpw", True)
    assert pw not in t.log_text()
