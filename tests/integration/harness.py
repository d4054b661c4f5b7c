"""Helpers for the integration fixtures: free ports, bounded waits, service processes that die
with the test run, a tiny Redis client, HTTP over tcp:// or unix:// URLs, and the tetherd
process wrapper (sd_notify socket, log capture, admin requests, signals)."""
import ctypes
import http.client
import json
import os
import pwd
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Sanitizer builds run several times slower; every wait in the harness is stretched by this.
TIMEOUT_SCALE = 3 if os.environ.get("ASAN_OPTIONS") else 1


class StartError(AssertionError):
    """A service did not come up; the message carries its log tail."""


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def tail(path, lines=40):
    """The last lines of a log file, for failure messages; never raises."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A TCP port free on 127.0.0.1 now, never the same one twice in this run, and outside the
    kernel's ephemeral range, so no outgoing connection (tetherd's to PostgreSQL, a client's)
    can be given it between this call and the bind of whoever asked for it."""
    lo, hi = _ephemeral_range()
    candidates = [p for p in range(10000, 65535) if not lo <= p <= hi]
    if not candidates:
        candidates = list(range(10000, 65535))
    rng = random.Random()
    for _ in range(1000):
        port = rng.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found")


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout, what, log=None, proc=None, interval=0.05):
    """Polls predicate() until it returns a true value, which is returned. Gives up after
    timeout (scaled) seconds, or as soon as proc has exited, raising StartError with the log
    tail. Exceptions from predicate count as "not yet"; the last one is reported."""
    deadline = time.monotonic() + scaled(timeout)
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the service is not answering yet
            last_exc = e
        if proc is not None and proc.poll() is not None:
            reason = f"exited with status {proc.returncode}"
            break
        if time.monotonic() >= deadline:
            reason = f"not ready after {scaled(timeout)} s"
            break
        time.sleep(interval)
    msg = f"{what}: {reason}"
    if last_exc is not None:
        msg += f" (last error: {last_exc!r})"
    if log:
        msg += f"\n--- {log} (tail) ---\n{tail(log)}"
    raise StartError(msg)


# --- service processes ---------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child after any uid change (which would clear it): if pytest is killed
    # outright, services do not outlive it.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def service_user():
    """(user, group) to run PostgreSQL as: ourselves unless root, then the `postgres` system
    user the Debian package creates (made here if missing); initdb refuses to run as root."""
    if os.geteuid() != 0:
        return None, None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", "postgres"], check=True)
        pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


def chown_tree(path, uid, gid):
    if uid is None:
        return
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def make_tempdir(prefix):
    """A short directory directly under /tmp: unix socket paths must stay under 108 bytes and
    pytest's own tmp dirs are mode 0700 (unreachable for the postgres user)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def spawn(argv, log_path, env=None, cwd=None, uid=None, gid=None, new_group=True):
    """Starts argv with stdout+stderr appended to log_path. new_group puts it in its own
    process group so stop_group() reaches its children too (the emulator's JVM, postgres
    backends) and a ^C aimed at pytest does not kill it before teardown runs."""
    logf = open(log_path, "ab")
    kwargs = {}
    if uid is not None:
        kwargs.update(user=uid, group=gid, extra_groups=[])
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=new_group, preexec_fn=_die_with_parent,
                                **kwargs)
    finally:
        logf.close()


def stop_group(proc, sig=signal.SIGTERM, timeout=10):
    """Signals proc's process group, waits (bounded), then SIGKILLs the group. Returns the exit
    status. Safe to call on a process that already exited."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            pass
    # Children may outlive the leader (a JVM helper, a backend): clear the group either way,
    # and wait until they are gone, or a restarted postgres finds its old shared memory still
    # attached and refuses to start.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        status = proc.wait(timeout=scaled(10))
    except subprocess.TimeoutExpired:
        status = None
    deadline = time.monotonic() + scaled(10)
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return status


def group_members(pgid):
    """Pids of live (not zombie) processes in process group pgid."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            pids.append(int(d))
    return pids


# --- a minimal Redis client (RESP2), enough to probe and seed a server ---------------------

def redis_command(addr, *args, timeout=5):
    """Sends one command to ("host", port) or a unix socket path and returns the decoded reply;
    an error reply is raised as RuntimeError."""
    fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        s.sendall(b"".join(out))
        with s.makefile("rb") as f:
            return _resp_read(f)


def _resp_read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by redis")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise ConnectionError(f"bad RESP reply {line!r}")


# --- HTTP to tcp:// and unix:// listener URLs ---------------------------------------------

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


def http_connection(url, timeout=10):
    """An http.client connection for tcp://host:port, http://host:port or unix:///path."""
    if url.startswith("unix://"):
        return _UnixHTTPConnection(url[len("unix://"):], timeout)
    hostport = re.sub(r"^(tcp|http)://", "", url).rstrip("/")
    host, port = hostport.rsplit(":", 1)
    return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)


def http_request(url, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection: (status, lower-cased headers dict, body bytes)."""
    c = http_connection(url, timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def http_get(url, path, headers=None, timeout=10):
    return http_request(url, "GET", path, headers=headers, timeout=timeout)


def unix_http_get(sock_path, path, headers=None, timeout=10):
    """GET over a unix stream socket: (status, headers, body)."""
    return http_get("unix://" + sock_path, path, headers=headers, timeout=timeout)


def json_request(base_url, method, path, doc=None, timeout=10):
    """JSON in, JSON out against an http:// base URL: (status, parsed body or None)."""
    body = json.dumps(doc).encode() if doc is not None else None
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    status, _, data = http_request(base_url, method, path, body=body, headers=hdrs,
                                   timeout=timeout)
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data.decode("utf-8", "replace")


# --- tetherd -------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text, env):
    """${VAR} and ${VAR:-default} as tetherd expands them, for reading URLs out of configs."""
    return _ENV_REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


def admin_url_of(config, env):
    """The first admin.listen URL of a config (YAML text or dict), or None."""
    if isinstance(config, str):
        try:
            import yaml
            config = yaml.safe_load(config)
        except Exception:
            return None
    try:
        listen = config["admin"]["listen"]
    except (KeyError, TypeError):
        return None
    if isinstance(listen, str):
        listen = [listen]
    return expand_env(str(listen[0]), env) if listen else None


class Tetherd:
    """One tetherd process started on a config, with NOTIFY_SOCKET pointing at a datagram
    socket this object reads, so readiness is the daemon's own READY=1, not a guess."""

    def __init__(self, binary, workdir, config, env=None, args=(), name="tetherd"):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.config_path = os.path.join(workdir, "tether.yaml")
        self.log_path = os.path.join(workdir, "tetherd.log")
        if isinstance(config, dict):
            import yaml
            text = yaml.safe_dump(config, sort_keys=False)
        else:
            text = config
        with open(self.config_path, "w") as f:
            f.write(text)
        self.notifications = []  # every datagram received, in order
        self._cursor = 0          # wait_notify consumes up to here
        self._notify_dir = make_tempdir("tn-")
        self.notify_path = os.path.join(self._notify_dir, "notify.sock")
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(self.notify_path)
        self._notify.setblocking(False)

        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
                                 "WATCHDOG_PID", "NOTIFY_SOCKET")}
        for k, v in (env or {}).items():
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = str(v)
        self.env["NOTIFY_SOCKET"] = self.notify_path
        self.admin_url = admin_url_of(config, self.env)
        self.argv = [binary, "-c", self.config_path, *args]
        self.proc = spawn(self.argv, self.log_path, env=self.env, cwd=workdir, new_group=False)

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _drain_notify(self, wait):
        """Reads the datagrams pending, waiting up to `wait` seconds for the first."""
        r, _, _ = select.select([self._notify], [], [], max(0.0, wait))
        if not r:
            return
        while True:
            try:
                data = self._notify.recv(65536)
            except BlockingIOError:
                return
            self.notifications.append(data.decode("utf-8", "replace"))

    def wait_notify(self, msg, timeout=10):
        """Waits for a datagram containing the line `msg` (e.g. "READY=1") after the last one
        waited for, and returns it; messages skipped over are consumed. Raises AssertionError
        with what arrived and the log tail when the deadline passes or the process exits
        without sending it."""
        deadline = time.monotonic() + scaled(timeout)
        exited_at = None
        while True:
            while self._cursor < len(self.notifications):
                m = self.notifications[self._cursor]
                self._cursor += 1
                if msg in m.split("\n"):
                    return m
            now = time.monotonic()
            if now >= deadline:
                why = f"no {msg} within {scaled(timeout)} s"
                break
            if self.proc.poll() is not None:
                # Datagrams sent just before exit may still be in flight: one short grace read.
                if exited_at is not None:
                    why = f"tetherd exited with status {self.proc.returncode} before {msg}"
                    break
                exited_at = now
                self._drain_notify(0.2)
                continue
            self._drain_notify(min(0.1, deadline - now))
        raise AssertionError(f"{why}; notifications: {self.notifications!r}\n"
                             f"--- {self.log_path} (tail) ---\n{tail(self.log_path)}")

    def wait_ready(self, timeout=10):
        return self.wait_notify("READY=1", timeout)

    def admin_request(self, method, path, body=None, headers=None, timeout=10):
        if not self.admin_url:
            raise AssertionError("this config has no admin.listen URL")
        return http_request(self.admin_url, method, path, body=body, headers=headers,
                            timeout=scaled(timeout))

    def admin_get(self, path, headers=None, timeout=10):
        """GET on the admin listener (tcp:// or unix://): (status, headers, body bytes)."""
        return self.admin_request("GET", path, headers=headers, timeout=timeout)

    def admin_json(self, path, headers=None, timeout=10):
        status, _, body = self.admin_get(path, headers=headers, timeout=timeout)
        return status, json.loads(body) if body else None

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def reload(self):
        """Sends SIGHUP; follow with wait_notify("READY=1") to know it finished."""
        self.signal(signal.SIGHUP)

    def terminate(self, timeout=15):
        """SIGTERM and wait for exit: returns the exit status (negative for a signal). After
        the deadline the process is SIGKILLed and AssertionError raised."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"tetherd did not exit within {scaled(timeout)} s of "
                                     f"SIGTERM\n--- log tail ---\n{tail(self.log_path)}")
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=scaled(10))

    def close(self):
        """Teardown: stop the process if alive, release the notify socket. Asserts nothing."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=scaled(10))
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            self._notify.close()
            shutil.rmtree(self._notify_dir, ignore_errors=True)
