"""Fixtures that run real services for the integration suite, each in its own temp dir on free
loopback ports: PostgreSQL, Redis and the Pub/Sub emulator (session scope), and a tetherd
factory (per test) that waits for the daemon's own READY=1. A service that cannot start fails
the tests that need it with its log tail; nothing waits without a deadline."""
import os
import re
import shutil
import signal
import time

import pytest

from harness import (REPO, TIMEOUT_SCALE, StartError, Tetherd, chown_tree, free_port,
                     http_get, json_request, make_tempdir, port_open, redis_command,
                     service_user, spawn, stop_group, wait_until)

PG_BIN = os.environ.get("TETHER_PG_BIN", "/usr/lib/postgresql/15/bin")
PUBSUB_EMULATOR = os.environ.get(
    "TETHER_PUBSUB_EMULATOR",
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
KEEP_TMP = bool(os.environ.get("TETHER_KEEP_TMP"))  # keep service dirs for a post-mortem


def tetherd_binary():
    return os.path.abspath(os.environ.get("TETHERD") or os.path.join(REPO, "build", "tetherd"))


def _remove(path):
    if not KEEP_TMP:
        shutil.rmtree(path, ignore_errors=True)


# --- PostgreSQL ----------------------------------------------------------------------------

class Postgres:
    """A throwaway cluster: superuser `postgres` trusted locally (and over loopback TCP), role
    `app` with a SCRAM password (required over TCP) owning database `appdb`."""
    host = "127.0.0.1"
    superuser = "postgres"
    app_user = "app"
    app_password = "app-secret-pw"
    app_db = "appdb"

    def __init__(self):
        self.uid, self.gid = service_user()
        self.base = make_tempdir("tether-pg-")
        self.socket_dir = self.base
        self.datadir = os.path.join(self.base, "data")
        self.log_path = os.path.join(self.base, "postgres.log")
        self.port = free_port()
        self.proc = None
        chown_tree(self.base, self.uid, self.gid)
        try:
            self._initdb()
            self.start()
            self.query(f"CREATE ROLE {self.app_user} LOGIN PASSWORD '{self.app_password}'")
            self.query(f"CREATE DATABASE {self.app_db} OWNER {self.app_user}")
        except Exception:
            self.close()
            raise

    def _initdb(self):
        import subprocess
        argv = [os.path.join(PG_BIN, "initdb"), "-D", self.datadir, "-U", self.superuser,
                "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"]
        kw = dict(user=self.uid, group=self.gid, extra_groups=[]) if self.uid is not None else {}
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE,
                               cwd=self.base, **kw)
        except subprocess.TimeoutExpired:
            raise StartError("initdb did not finish within 60 s")
        if r.returncode != 0:
            raise StartError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write(f"""
# tether test cluster: fast and disposable
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 200
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
password_encryption = 'scram-sha-256'
log_line_prefix = '%m [%p] %q%u@%d '
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
""")
        # TLS over TCP, signed by a CA the tests trust (self.ca_file) for "localhost"/127.0.0.1
        from tlscerts import CA
        ca = CA(os.path.join(self.base, "tls"))
        self.ca_file = ca.path
        ca.issue("server")
        for ext in ("crt", "key"):
            shutil.copy(os.path.join(self.base, "tls", "server." + ext), os.path.join(self.datadir, "server." + ext))
        os.chmod(os.path.join(self.datadir, "server.key"), 0o600)
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("""# TYPE DATABASE     USER      ADDRESS        METHOD
local   all          all                      trust
local   replication  all                      trust
host    all          postgres  127.0.0.1/32   trust
host    all          all       127.0.0.1/32   scram-sha-256
host    replication  all       127.0.0.1/32   scram-sha-256
""")
        chown_tree(self.datadir, self.uid, self.gid)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _answers(self):
        self.connect(unix=True, connect_timeout=2).close()
        return port_open(self.host, self.port)

    def start(self):
        if self.running:
            return
        self.proc = spawn([os.path.join(PG_BIN, "postgres"), "-D", self.datadir],
                          self.log_path, cwd=self.base, uid=self.uid, gid=self.gid)
        try:
            wait_until(self._answers, 30, f"postgres on port {self.port}", self.log_path,
                       self.proc)
        except StartError:
            stop_group(self.proc, signal.SIGQUIT, 5)
            raise

    def stop(self):
        """Fast shutdown (clients are disconnected), bounded."""
        stop_group(self.proc, signal.SIGINT, 15)

    def kill(self):
        """A crash: SIGKILL to the postmaster and every backend at once."""
        stop_group(self.proc, signal.SIGKILL, 5)

    def restart(self):
        self.stop()
        self.start()

    def ensure_running(self):
        if not self.running:
            self.start()

    def close(self):
        self.stop()
        _remove(self.base)

    def dsn(self, user=None, db=None, password=None, unix=False):
        """A libpq keyword DSN; unix=True goes through the socket directory."""
        parts = [f"host={self.socket_dir if unix else self.host}", f"port={self.port}",
                 f"user={user or self.superuser}", f"dbname={db or 'postgres'}"]
        if password is not None:
            parts.append(f"password={password}")
        return " ".join(parts)

    def url(self, user=None, db=None, password=None):
        cred = user or self.superuser
        if password is not None:
            cred += ":" + password
        return f"postgresql://{cred}@{self.host}:{self.port}/{db or 'postgres'}"

    def connect(self, user=None, db=None, password=None, unix=False, connect_timeout=5):
        """A psycopg2 connection in autocommit mode."""
        import psycopg2
        c = psycopg2.connect(self.dsn(user, db, password, unix), connect_timeout=connect_timeout)
        c.autocommit = True
        return c

    def query(self, sql, params=None, db=None):
        """Runs sql as the superuser over the socket; returns rows (or None)."""
        c = self.connect(db=db, unix=True)
        try:
            with c.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()


# --- Redis ---------------------------------------------------------------------------------

class Redis:
    """redis-server without persistence; data survives only restart(keep_data=True)."""
    host = "127.0.0.1"

    def __init__(self):
        self.base = make_tempdir("tether-redis-")
        self.port = free_port()
        self.unix_path = os.path.join(self.base, "redis.sock")
        self.log_path = os.path.join(self.base, "redis.log")
        self._dump = os.path.join(self.base, "dump.rdb")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://{self.host}:{self.port}"

    @property
    def unix_url(self):
        return f"unix://{self.unix_path}"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self, *args, unix=False):
        return redis_command(self.unix_path if unix else (self.host, self.port), *args)

    def start(self):
        if self.running:
            return
        argv = ["redis-server", "--bind", self.host, "--port", str(self.port),
                "--unixsocket", self.unix_path, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", self.base, "--dbfilename", "dump.rdb"]
        self.proc = spawn(argv, self.log_path, cwd=self.base)
        try:
            wait_until(lambda: self.command("PING") == "PONG" and
                       self.command("PING", unix=True) == "PONG",
                       15, f"redis on port {self.port}", self.log_path, self.proc)
        except StartError:
            stop_group(self.proc, signal.SIGKILL, 1)
            raise

    def stop(self, keep_data=False):
        if keep_data and self.running:
            self.command("SAVE")
        stop_group(self.proc, signal.SIGTERM, 10)
        if not keep_data and os.path.exists(self._dump):
            os.unlink(self._dump)

    def kill(self):
        stop_group(self.proc, signal.SIGKILL, 5)
        if os.path.exists(self._dump):
            os.unlink(self._dump)

    def restart(self, keep_data=False):
        self.stop(keep_data)
        self.start()

    def ensure_running(self):
        if not self.running:
            self.start()

    def close(self):
        self.stop()
        _remove(self.base)


# --- Pub/Sub emulator ----------------------------------------------------------------------

class PubsubEmulator:
    """Google's Pub/Sub emulator (Java) speaking the REST API on http://127.0.0.1:port.
    Construction only spawns it (so it can warm up while other fixtures start);
    wait_ready() blocks until it answers."""
    host = "127.0.0.1"
    project = "tether-test"

    def __init__(self):
        self.base = make_tempdir("tether-pubsub-")
        self.port = free_port()
        self.log_path = os.path.join(self.base, "emulator.log")
        self.proc = None
        self.spawn()

    host_port = property(lambda self: f"{self.host}:{self.port}")
    url = property(lambda self: f"http://{self.host}:{self.port}")
    running = property(lambda self: self.proc is not None and self.proc.poll() is None)

    @property
    def env(self):
        """What official client libraries read to find the emulator."""
        return {"PUBSUB_EMULATOR_HOST": self.host_port, "PUBSUB_PROJECT_ID": self.project}

    def spawn(self):
        if not os.access(PUBSUB_EMULATOR, os.X_OK):
            raise StartError(f"Pub/Sub emulator not installed at {PUBSUB_EMULATOR}")
        env = dict(os.environ)
        # A short-lived test JVM: start fast, stay small (the caller's JAVA_OPTS win).
        env.setdefault("JAVA_OPTS", "-Xms32m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        self.proc = spawn([PUBSUB_EMULATOR, f"--host={self.host}", f"--port={self.port}"],
                          self.log_path, env=env, cwd=self.base)

    def wait_ready(self):
        try:
            wait_until(lambda: http_get(self.url, "/", timeout=2)[0] == 200, 60,
                       f"pubsub emulator on port {self.port}", self.log_path, self.proc,
                       interval=0.2)
        except StartError:
            self.stop()
            raise

    def start(self):
        if not self.running:
            self.spawn()
        self.wait_ready()

    def stop(self):
        stop_group(self.proc, signal.SIGTERM, 10)  # the whole group: the script's JVM too

    def ensure_running(self):
        if not self.running:
            self.start()

    def close(self):
        self.stop()
        _remove(self.base)

    # REST helpers for arranging and checking state behind tetherd's back.
    def topic_path(self, topic):
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, sub):
        return f"projects/{self.project}/subscriptions/{sub}"

    def rest(self, method, path, doc=None, expect=200):
        status, body = json_request(self.url, method, "/v1/" + path, doc)
        if expect is not None and status != expect:
            raise AssertionError(f"{method} /v1/{path}: {status} {body}")
        return body

    def create_topic(self, topic):
        return self.rest("PUT", self.topic_path(topic), {})

    def create_subscription(self, sub, topic, **fields):
        return self.rest("PUT", self.subscription_path(sub),
                         {"topic": self.topic_path(topic), **fields})

    def publish(self, topic, *messages):
        """messages: dicts as in the REST API ({"data": base64, "attributes": {...}})."""
        body = self.rest("POST", self.topic_path(topic) + ":publish",
                         {"messages": list(messages)})
        return body["messageIds"]

    def pull(self, sub, max_messages=10, timeout=10, ack=True):
        """Pulls until at least one message arrives or the deadline passes; acks them."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            body = self.rest("POST", self.subscription_path(sub) + ":pull",
                             {"maxMessages": max_messages, "returnImmediately": True})
            got = (body or {}).get("receivedMessages", [])
            if got or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        if got and ack:
            self.rest("POST", self.subscription_path(sub) + ":acknowledge",
                      {"ackIds": [m["ackId"] for m in got]})
        return got


# --- fixtures ------------------------------------------------------------------------------

def _service(request, factory):
    try:
        svc = factory()
    except StartError as e:
        why = str(e)
    else:
        request.addfinalizer(svc.close)
        return svc
    pytest.fail(why, pytrace=False)


@pytest.fixture(scope="session")
def postgres(request):
    return _service(request, Postgres)


@pytest.fixture(scope="session")
def redis(request):
    return _service(request, Redis)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(session, config, items):
    # The JVM takes seconds to start: launch it now if any selected test will need it.
    if any("pubsub_emulator" in getattr(i, "fixturenames", ()) for i in items):
        try:
            emu = PubsubEmulator()
        except StartError:
            return  # the fixture will report it
        config._tether_pubsub = emu
        config.add_cleanup(emu.close)


@pytest.fixture(scope="session")
def pubsub_emulator(request):
    emu = getattr(request.config, "_tether_pubsub", None)
    if emu is None:
        emu = _service(request, PubsubEmulator)
    try:
        emu.wait_ready()
        return emu
    except StartError as e:
        why = str(e)
    pytest.fail(why, pytrace=False)


@pytest.fixture(autouse=True)
def _services_running(request):
    """A test may stop or kill a session service; the next test that uses it gets it back."""
    for name in ("postgres", "redis", "pubsub_emulator"):
        if name in request.fixturenames:
            svc = request.getfixturevalue(name)
            why = None
            try:
                svc.ensure_running()
            except StartError as e:
                why = f"restarting {name}: {e}"
            if why:
                pytest.fail(why, pytrace=False)


class TetherdLogs:
    """Every tetherd log of the session, so tests can grep them all and the session can check
    that no known secret was printed and no sanitizer reported anything."""
    SANITIZER = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: ")

    def __init__(self):
        self.logs = []  # (test node id, path)
        self.secrets = {Postgres.app_password}

    def add(self, path, owner):
        self.logs.append((owner, path))

    def forbid(self, secret):
        """Fail the session if `secret` ever appears in a tetherd log."""
        self.secrets.add(secret)

    def texts(self):
        for owner, path in self.logs:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    yield owner, path, f.read()
            except FileNotFoundError:
                continue

    def grep(self, needle):
        """[(test id, log path, line)] for every line containing needle (str or regex)."""
        match = needle.search if hasattr(needle, "search") else (lambda l: needle in l)
        return [(owner, path, line) for owner, path, text in self.texts()
                for line in text.splitlines() if match(line)]

    def _mask(self, line):
        for secret in self.secrets:  # the report must not repeat any secret either
            line = line.replace(secret, "<SECRET>")
        return line[:300]

    def problems(self):
        out = []
        for secret in sorted(self.secrets):
            for owner, path, line in self.grep(secret):
                out.append(f"secret {secret[:2]}... printed by tetherd in {owner} ({path}): "
                           f"{self._mask(line)}")
        for owner, path, line in self.grep(self.SANITIZER):
            out.append(f"sanitizer report in {owner} ({path}): {self._mask(line)}")
        return out


@pytest.fixture(scope="session", autouse=True)
def tetherd_logs():
    logs = TetherdLogs()
    yield logs
    problems = logs.problems()
    if problems:
        pytest.fail("tetherd logs of this session:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def tetherd(request, tmp_path, tetherd_logs):
    """Factory: tetherd(config_text_or_dict, env=None, args=(), wait_ready=True) starts
    $TETHERD -c <file> and (by default) waits for READY=1. Returns a harness.Tetherd. Every
    instance is stopped at teardown; teardown asserts nothing."""
    instances = []

    def start(config, env=None, args=(), wait_ready=True, binary=None):
        binary = binary or tetherd_binary()
        if not os.access(binary, os.X_OK):
            pytest.fail(f"no tetherd binary at {binary}: run `make` (or set TETHERD)",
                        pytrace=False)
        workdir = str(tmp_path / f"tetherd-{len(instances) + 1}")
        t = Tetherd(binary, workdir, config, env=env, args=args)
        instances.append(t)
        tetherd_logs.add(t.log_path, request.node.nodeid)
        if wait_ready:
            try:
                t.wait_notify("READY=1", timeout=10)
                return t
            except AssertionError as e:
                why = str(e)
            t.kill()
            pytest.fail(f"tetherd did not become ready: {why}", pytrace=False)
        return t

    yield start
    for t in instances:
        t.close()


def pytest_report_header(config):
    b = tetherd_binary()
    state = "present" if os.access(b, os.X_OK) else "missing"
    scale = f", timeouts x{TIMEOUT_SCALE}" if TIMEOUT_SCALE != 1 else ""
    return f"tetherd: {b} ({state}{scale})"
from fakes import *  # noqa: E402,F401,F403  (Google fakes: fixtures)
