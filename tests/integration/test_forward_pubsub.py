"""Pub/Sub REST forwarding (plugins/pubsub on daemon/forward.c): the official Node client over
its REST transport through tether to the real Pub/Sub emulator (topics, subscriptions with
ordering, publish with attributes and ordering keys, pull and acknowledge); tether's token and
never the app's on forwarded requests (seen by pointing the plugin at the Storage fake, whose
request log records headers); unknown Pub/Sub paths and unreachable upstreams answered in
Google's error shape; publish not replayed, reads retried."""
import json
import os
import shutil
import subprocess
import time

import pytest

from harness import REPO, free_port, http_request, make_tempdir, scaled

NODE_DIR = os.path.join(REPO, "tests", "node")
APP_TOKEN = "ya29.pubsub-app-token-that-must-not-travel"


@pytest.fixture
def clean_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {"GOOGLE_APPLICATION_CREDENTIALS": None, "GCE_METADATA_HOST": None,
            "GCE_METADATA_ROOT": None, "GCE_METADATA_IP": None, "PUBSUB_EMULATOR_HOST": None,
            "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"), "HOME": str(home)}


@pytest.fixture
def ps(tetherd, clean_env, tetherd_logs):
    """ps(pubsub_section, credentials=None, upstream={}, env={}) -> Tetherd with .http."""
    started = []

    def start(pubsub, credentials=None, upstream=None, env=None):
        port = free_port()
        cfg = {"log": {"level": "debug"},
               "admin": {"listen": [f"tcp://127.0.0.1:{free_port()}"]},
               "http": {"listen": [f"tcp://127.0.0.1:{port}"]},
               "upstream": {"backoff_initial": "50ms", "backoff_max": "200ms", **(upstream or {})},
               "pubsub": pubsub}
        if credentials:
            cfg["credentials"] = credentials
        t = tetherd(cfg, env={**clean_env, **(env or {})})
        t.http = f"http://127.0.0.1:{port}"
        started.append(t)
        return t

    yield start
    tetherd_logs.forbid(APP_TOKEN)
    for t in started:
        assert APP_TOKEN not in t.log_text()


def req(t, method, path, doc=None, headers=None, timeout=30):
    body = json.dumps(doc).encode() if doc is not None else None
    h = {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    status, hdrs, data = http_request(t.http, method, path, body=body, headers=h, timeout=scaled(timeout))
    return status, hdrs, data


def google_error(body, code):
    doc = json.loads(body)
    err = doc["error"]
    assert err["code"] == code and err["message"] and err["status"], err
    return err


def run_node(script, *args, timeout=120):
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        pytest.fail("node or tests/node/node_modules missing: run `make deps`", pytrace=False)
    home = make_tempdir("tether-nodehome-")
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("GOOGLE_", "GCE_", "PUBSUB_", "CLOUDSDK_"))}
    e.update(HOME=home, CLOUDSDK_CONFIG=os.path.join(home, "gcloud"), APP_TOKEN=APP_TOKEN,
             GCE_METADATA_HOST="127.0.0.1:1", NO_GCE_CHECK="true")
    try:
        p = subprocess.run(["node", os.path.join(NODE_DIR, script), *args], cwd=NODE_DIR, env=e,
                           capture_output=True, text=True, timeout=scaled(timeout))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {"ok": False, "error": p.stderr[-2000:]}
    assert p.returncode == 0 and summary.get("ok"), f"{script}: {summary}\nstderr: {p.stderr[-2000:]}"
    return summary


def test_node_pubsub_rest_client_through_tether_to_the_emulator(ps, pubsub_emulator):
    t = ps({"endpoint": pubsub_emulator.url, "token": False})
    summary = run_node("pubsub_forward.js", "--endpoint", t.http, "--project", pubsub_emulator.project,
                       "--emulator-compat", "1")
    assert [s["step"] for s in summary["steps"]] == [
        "create_topic_and_subscriptions", "publish_with_attributes_and_ordering_keys", "pull_and_ack",
        "delete"]
    _, _, metrics = t.admin_get("/metrics")
    text = metrics.decode()
    for route in ("topics", "subscriptions"):
        assert f'tether_pubsub_requests_total{{route="{route}",code="2xx"}}' in text, route


def test_token_injected_and_app_token_stripped(ps, gcs_fake, metadata_fake):
    """The plugin pointed at the Storage fake, which records every request's headers (and
    answers the Pub/Sub paths 404): tether's token went out, the app's did not."""
    t = ps({"endpoint": gcs_fake.url}, credentials={"source": "metadata"},
           env={"GCE_METADATA_HOST": metadata_fake.host})
    status, h, _ = req(t, "POST", "/v1/projects/p/topics/t:publish", {"messages": [{"data": "aGk="}]},
                       {"Authorization": "Bearer " + APP_TOKEN, "X-Request-Id": "ps-req-1"})
    assert status == 404 and h["x-request-id"] == "ps-req-1"
    (rec,) = gcs_fake.requests()
    hdrs = {k.lower(): v for k, v in rec["headers"].items()}
    assert hdrs["authorization"][7:] in metadata_fake.issued_tokens()
    assert hdrs["x-request-id"] == "ps-req-1"
    tokens = metadata_fake.issued_tokens()
    t.terminate()
    for tok in tokens:
        assert tok not in t.log_text()


def test_unknown_pubsub_paths_are_json_404(ps, pubsub_emulator):
    t = ps({"endpoint": pubsub_emulator.url, "token": False})
    for path in ("/v1/projects/p/widgets", "/v1/projects//topics", "/v1/projects/p", "/v2/projects/p/topics"):
        status, _, body = req(t, "GET", path)
        assert status == 404 and google_error(body, 404)["status"] == "NOT_FOUND", path
    assert req(t, "GET", f"/v1/projects/{pubsub_emulator.project}/topics")[0] == 200


def test_unreachable_upstream_publish_not_replayed_reads_retried(ps):
    dead = free_port()
    t = ps({"endpoint": f"http://127.0.0.1:{dead}", "token": False}, upstream={"max_attempts": 3})
    t0 = time.monotonic()
    status, _, body = req(t, "POST", "/v1/projects/p/topics/t:publish", {"messages": [{"data": "aGk="}]})
    assert status == 503 and google_error(body, 503)["status"] == "UNAVAILABLE"
    status, _, body = req(t, "GET", "/v1/projects/p/topics")
    assert status == 503
    assert time.monotonic() - t0 < scaled(5)
    log = t.log_text()
    # the GET was tried 3 times, the publish once
    assert "(3 attempt(s))" in log and "(1 attempt(s))" in log


def test_no_token_when_credentials_missing_is_503(ps, pubsub_emulator):
    t = ps({"endpoint": pubsub_emulator.url})  # token: true, no credentials section
    status, _, body = req(t, "GET", f"/v1/projects/{pubsub_emulator.project}/topics")
    assert status == 503 and "no credentials configured" in google_error(body, 503)["message"]
