"""Listeners: unix socket permissions, stale and live socket files, systemd socket activation."""
import os
import socket
import stat
import subprocess
import time

from httpc import free_port, get_json, request
from test_daemon import TETHERD, write


def test_unix_socket_default_mode_and_configured_mode(tetherd, tmp_path):
    a = tmp_path / "run" / "admin.sock"
    b = tmp_path / "run" / "admin2.sock"
    t = tetherd(f"""
admin:
  listen: ["unix://{a}", "unix://{b}"]
  socket_mode: "0600"
""")
    assert stat.S_IMODE(os.stat(a).st_mode) == 0o600
    assert get_json(f"unix://{a}", "/healthz")[0] == 200
    assert get_json(f"unix://{b}", "/healthz")[0] == 200
    t.terminate()
    assert not a.exists() and not b.exists(), "socket files are removed at exit"

    t = tetherd(f'admin: {{listen: ["unix://{a}"]}}\n')
    assert stat.S_IMODE(os.stat(a).st_mode) == 0o660
    t.terminate()


def test_stale_socket_is_replaced(tetherd, tmp_path):
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: stale
    t = tetherd(f'admin: {{listen: ["unix://{path}"]}}\n')
    assert get_json(f"unix://{path}", "/healthz")[0] == 200
    assert "removing stale socket" in t.log_text()
    t.terminate()


def test_live_socket_is_a_clear_error(tetherd, tmp_path):
    path = tmp_path / "live.sock"
    first = tetherd(f'admin: {{listen: ["unix://{path}"]}}\n')
    cfg = write(tmp_path, f'admin: {{listen: ["unix://{path}"]}}\n', name="second.yaml")
    r = subprocess.run([TETHERD, "-c", cfg], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "in use by another running process" in r.stderr
    # The first daemon is unaffected and still owns its socket.
    assert get_json(f"unix://{path}", "/healthz")[0] == 200
    first.terminate()


def test_regular_file_is_never_replaced(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("precious")
    cfg = write(tmp_path, f'admin: {{listen: ["unix://{path}"]}}\n')
    r = subprocess.run([TETHERD, "-c", cfg], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "not a socket" in r.stderr
    assert path.read_text() == "precious"


def test_systemd_socket_activation(tmp_path):
    """A socket passed by systemd (LISTEN_FDS) is adopted by address, and one named after a
    section (FileDescriptorName) serves that section."""
    port = free_port()
    matched = socket.socket()
    matched.bind(("127.0.0.1", port))
    matched.listen(16)
    named_path = tmp_path / "named.sock"
    named = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    named.bind(str(named_path))
    named.listen(16)
    cfg = write(tmp_path, f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\n')
    # systemd passes fds from 3 on, with LISTEN_PID set to the daemon's own pid.
    def as_systemd():
        hi = [os.dup(matched.fileno()), os.dup(named.fileno())]
        os.dup2(hi[0], 3)
        os.dup2(hi[1], 4)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES="unknown:admin")
    p = subprocess.Popen([TETHERD, "-c", cfg], preexec_fn=as_systemd, close_fds=False,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:

        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if get_json(f"unix://{named_path}", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert get_json(f"tcp://127.0.0.1:{port}", "/healthz")[0] == 200
        assert get_json(f"unix://{named_path}", "/healthz")[0] == 200
    finally:
        p.terminate()
        out = p.communicate(timeout=20)[0]
    assert p.returncode == 0, out
    assert "using the socket passed by systemd" in out
    assert 'adopted socket named "admin"' in out


def test_unix_socket_group(tetherd, tmp_path):
    import grp
    group = "nogroup" if os.getuid() == 0 else grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "g.sock"
    t = tetherd(f'admin: {{listen: ["unix://{path}"], socket_group: {group}}}\n')
    assert grp.getgrgid(os.stat(path).st_gid).gr_name == group
    t.terminate()


def test_unknown_socket_owner_is_a_clear_error(tmp_path):
    path = tmp_path / "o.sock"
    cfg = write(tmp_path, f'admin: {{listen: ["unix://{path}"], socket_owner: no-such-user-xyz}}\n')
    r = subprocess.run([TETHERD, "-c", cfg], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and 'no user named "no-such-user-xyz"' in r.stderr
