"""tetherd as a process: command line, config discovery and errors, reload, drain, secrets."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from httpc import free_port, get_json, request, raw_socket, read_response

TETHERD = os.environ.get("TETHERD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "tetherd")
SECRET = "s3cr3t-Adm1n-T0ken-do-not-print"


def run(args, cwd=None, env=None, timeout=20):
    return subprocess.run([TETHERD, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def write(tmp_path, text, name="tether.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_help_and_version():
    r = run(["--help"])
    assert r.returncode == 0
    for opt in ("--config", "--check-config", "--log-level", "--log-format", "--version"):
        assert opt in r.stdout
    r = run(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("tetherd ")
    r = run(["--no-such-option"])
    assert r.returncode == 2
    r = run(["--log-level", "loud"])
    assert r.returncode == 2 and "--log-level" in r.stderr


def test_check_config_valid_masks_secret(tmp_path):
    port = free_port()
    path = write(tmp_path, f"""
admin:
  listen: ["tcp://127.0.0.1:{port}"]
  auth_token: ${{ADMIN_TOKEN}}
log:
  level: debug
""")
    env = dict(os.environ, ADMIN_TOKEN=SECRET)
    r = run(["--check-config", "-c", path], env=env)
    assert r.returncode == 0, r.stderr
    assert "auth_token" in r.stdout and "********" in r.stdout
    assert SECRET not in r.stdout + r.stderr
    assert f"tcp://127.0.0.1:{port}" in r.stdout


def test_check_config_reports_every_error_with_position(tmp_path):
    path = write(tmp_path, """log:
  level: loud
  colour: red
http:
  max_body: lots
  idle_timeout: 5 parsecs
  listen: ["ftp://x"]
admin:
  auth_token: ${TETHER_TEST_UNSET_VAR}
nosuchsection: {}
""")
    env = {k: v for k, v in os.environ.items() if k != "TETHER_TEST_UNSET_VAR"}
    r = run(["--check-config", "-c", path], env=env)
    assert r.returncode == 2
    err = r.stderr
    assert f"{path}:2:10" in err and "log.level" in err
    assert f"{path}:3:3" in err and "log.colour" in err
    assert "http.max_body" in err and f"{path}:5:13" in err
    assert "http.idle_timeout" in err
    assert "http.listen" in err and "unix:// or tcp://" in err
    assert "TETHER_TEST_UNSET_VAR" in err and "admin.auth_token" in err
    assert "nosuchsection" in err
    assert "7 errors" in err or err.count(path) >= 7


def test_check_config_yaml_syntax_error(tmp_path):
    path = write(tmp_path, "admin:\n  listen: [\"tcp://127.0.0.1:1\"\n log: {\n")
    r = run(["--check-config", "-c", path])
    assert r.returncode == 2
    assert path + ":" in r.stderr


def test_missing_config_file_is_an_error(tmp_path):
    r = run(["--check-config", "-c", str(tmp_path / "absent.yaml")])
    assert r.returncode == 2
    assert "absent.yaml" in r.stderr


def test_config_discovery_prefers_local_file(tmp_path):
    port = free_port()
    write(tmp_path, f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\n')
    r = run(["--check-config"], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "./tether.yaml" in r.stdout and str(port) in r.stdout


def test_embedded_default_when_no_file(tmp_path):
    if os.path.exists("/etc/tether/tether.yaml"):
        pytest.skip("/etc/tether/tether.yaml exists on this machine")
    r = run(["--check-config"], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "embedded default" in r.stdout
    assert "tcp://127.0.0.1:9090" in r.stdout


def test_start_ready_health_and_stop(tetherd):
    port = free_port()
    t = tetherd(f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\n')
    url = f"tcp://127.0.0.1:{port}"
    status, body = get_json(url, "/healthz")
    assert status == 200 and body == {"status": "ok"}
    status, body = get_json(url, "/readyz")
    assert status == 200 and body["ready"] is True
    assert t.terminate() == 0
    t.wait_notify("STOPPING=1", timeout=5)
    assert "exited" in t.log_text()


def test_log_format_json_lines(tetherd):
    port = free_port()
    t = tetherd(f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\nlog: {{format: json}}\n')
    t.terminate()
    lines = [l for l in t.log_text().splitlines() if l.strip()]
    assert lines
    for line in lines:
        rec = json.loads(line)
        assert {"severity", "message", "time", "component"} <= set(rec)
        assert rec["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR")


def test_log_level_override(tetherd):
    port = free_port()
    t = tetherd(f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\nlog: {{level: debug}}\n',
                args=["--log-level", "error"])
    t.terminate()
    assert " INFO " not in t.log_text()


def test_sighup_reload_good_and_bad(tetherd, tmp_path):
    port, port2 = free_port(), free_port()
    url = f"tcp://127.0.0.1:{port}"
    t = tetherd(f"""
admin:
  listen: ["{url}"]
  auth_token: first-token
log: {{level: info}}
""")
    hdr = {"Authorization": "Bearer first-token"}
    assert get_json(url, "/admin/config", hdr)[0] == 200
    # A keep-alive connection stays open across reloads.
    keep = raw_socket(url)
    keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(keep)[0] == 200

    # Good reload: the reloadable token changes now; the listener change needs a restart.
    with open(t.config_path, "w") as f:
        f.write(f"""
admin:
  listen: ["{url}", "tcp://127.0.0.1:{port2}"]
  auth_token: second-token
log: {{level: debug}}
""")
    t.reload()
    t.wait_notify("RELOADING=1", timeout=10)
    t.wait_notify("READY=1", timeout=10)
    assert get_json(url, "/admin/config", hdr)[0] == 401
    status, body = get_json(url, "/admin/config", {"Authorization": "Bearer second-token"})
    assert status == 200
    assert body["restart_required"] == ["admin.listen"]
    assert body["config"]["admin"]["auth_token"] == "********"
    log = t.log_text()
    assert "admin.listen changed; it takes effect only after a restart" in log
    assert "config reloaded" in log

    # Bad reload: errors logged, the running config stays, nothing drops.
    with open(t.config_path, "w") as f:
        f.write("admin:\n  listen: 42\n  bogus: 1\n")
    t.reload()
    t.wait_notify("READY=1", timeout=10)
    log = t.log_text()
    assert "reload failed" in log and "admin.bogus" in log
    assert get_json(url, "/admin/config", {"Authorization": "Bearer second-token"})[0] == 200
    keep.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(keep)[0] == 200
    keep.close()
    metrics = request(url, "GET", "/metrics")[2].decode()
    assert 'tether_config_reloads_total{result="success"} 1' in metrics
    assert 'tether_config_reloads_total{result="failure"} 1' in metrics
    assert t.terminate() == 0


def test_secret_never_printed(tetherd):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    t = tetherd(f'admin: {{listen: ["{url}"], auth_token: "${{ADMIN_TOKEN}}"}}\nlog: {{level: debug}}\n',
                env={"ADMIN_TOKEN": SECRET})
    status, _, body = request(url, "GET", "/admin/config", headers={"Authorization": "Bearer " + SECRET})
    assert status == 200 and SECRET.encode() not in body and b"********" in body
    status, _, body = request(url, "GET", "/admin/config", headers={"Authorization": "Bearer wrong"})
    assert status == 401 and SECRET.encode() not in body
    metrics = request(url, "GET", "/metrics")[2]
    assert SECRET.encode() not in metrics
    t.reload()
    t.wait_notify("READY=1", timeout=10)
    t.terminate()
    assert SECRET not in t.log_text()


def test_start_failure_is_loud(tmp_path):
    # Port already taken by someone else: tetherd exits 1 naming the listener.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    path = write(tmp_path, f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\n')
    r = run(["-c", path], timeout=20)
    s.close()
    assert r.returncode == 1
    assert f"admin.listen tcp://127.0.0.1:{port}" in r.stderr and "in use" in r.stderr.lower()


def test_non_loopback_needs_allow_remote(tmp_path):
    path = write(tmp_path, f'admin: {{listen: ["tcp://0.0.0.0:{free_port()}"]}}\n')
    r = run(["-c", path], timeout=20)
    assert r.returncode == 1
    assert "allow_remote" in r.stderr


def test_watchdog_pings_when_systemd_asks(tetherd):
    port = free_port()
    t = tetherd(f'admin: {{listen: ["tcp://127.0.0.1:{port}"]}}\n', env={"WATCHDOG_USEC": "200000"})
    t.wait_notify("WATCHDOG=1", timeout=5)
    t.wait_notify("WATCHDOG=1", timeout=5)
    assert t.terminate() == 0
