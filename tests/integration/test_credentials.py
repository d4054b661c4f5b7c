"""Google credentials in tetherd's core, against the metadata/OAuth fake: every source (metadata
server, service-account key with the fake checking the RS256 signature, authorized_user,
static), the ADC order, refresh ahead of expiry, one fetch for many waiters, bounded waiting
with a clear error while the metadata server is down and recovery after, and no token, key or
refresh token in tetherd's log. Tokens are observed through /admin/credentials (state, never a
token) and POST /admin/credentials/refresh (asks for tokens the way concurrent requests would
and names them by a SHA-256 fingerprint)."""
import hashlib
import json
import os
import re
import time

import pytest

from harness import free_port, scaled, wait_until

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def fp(token):
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


@pytest.fixture
def clean_env(tmp_path):
    """An environment with no ambient credentials: nothing from the machine running the tests
    may decide which source tetherd picks."""
    home = tmp_path / "home"
    home.mkdir()
    return {"GOOGLE_APPLICATION_CREDENTIALS": None, "GCE_METADATA_HOST": None,
            "GCE_METADATA_ROOT": None, "GCE_METADATA_IP": None,
            "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"), "HOME": str(home)}


@pytest.fixture
def start(tetherd, clean_env, tetherd_logs):
    """start(credentials_section_or_None, env={}) -> Tetherd with an admin listener."""
    def run(creds, env=None, wait_ready=True, upstream=None):
        cfg = {"log": {"level": "debug"},
               "admin": {"listen": [f"tcp://127.0.0.1:{free_port()}"]}}
        if creds is not None:
            cfg["credentials"] = creds
        if upstream is not None:
            cfg["upstream"] = upstream
        return tetherd(cfg, env={**clean_env, **(env or {})}, wait_ready=wait_ready)
    return run


def status(t):
    code, doc = t.admin_json("/admin/credentials")
    assert code == 200, doc
    return doc


def default_entry(doc):
    return next(e for e in doc["tokens"] if e["default"])


def refresh(t, timeout=30, **params):
    """POST /admin/credentials/refresh: (HTTP status, JSON answer)."""
    q = "&".join(f"{k}={v}" for k, v in params.items())
    code, _, body = t.admin_request("POST", "/admin/credentials/refresh" + ("?" + q if q else ""),
                                    timeout=timeout)
    return code, json.loads(body)


def wait_valid(t, timeout=10):
    return wait_until(lambda: default_entry(status(t)).get("valid"), timeout,
                      "a valid default token", t.log_path)


def assert_no_secrets(t, tetherd_logs, *secrets):
    """Checks this tetherd's log now, and registers the secrets for the session-wide check."""
    text = t.log_text()
    for s in secrets:
        if not s:
            continue
        tetherd_logs.forbid(s)
        assert s not in text, f"a secret ({s[:6]}...) is in tetherd's log"


def issued_by_fp(metadata_fake):
    return {fp(r["token"]): r for r in metadata_fake.stats()["tokens"]}


# --- sources -------------------------------------------------------------------------------

def test_metadata_source_with_gce_metadata_host(start, metadata_fake, tetherd_logs):
    t = start({"source": "metadata"}, env={"GCE_METADATA_HOST": metadata_fake.host})
    wait_valid(t)  # fetched at start-up, before anyone asked
    doc = status(t)
    assert doc["source"] == "metadata"
    assert doc["metadata_url"] == metadata_fake.url
    e = default_entry(doc)
    assert e["scopes"] == CLOUD_PLATFORM and e["refreshes"] == 1
    assert 3000 < e["expires_in"] <= 3600

    code, ans = refresh(t, count=3)
    assert code == 200 and ans["ok"] == 3, ans
    issued = issued_by_fp(metadata_fake)
    (got,) = ans["tokens"]
    assert issued[got]["kind"] == "metadata" and issued[got]["scope"] == CLOUD_PLATFORM
    stats = metadata_fake.stats()
    assert stats["endpoints"].get("token") == 1, stats["endpoints"]  # served from the cache

    # Another scope set is its own cache, asked for with ?scopes= (comma separated).
    scopes = "https://www.googleapis.com/auth/pubsub,https://www.googleapis.com/auth/devstorage.read_write"
    code, ans = refresh(t, scopes=scopes)
    assert code == 200, ans
    (got,) = ans["tokens"]
    rec = issued_by_fp(metadata_fake)[got]
    assert set(rec["scope"].split()) == set(scopes.split(","))
    assert len(status(t)["tokens"]) == 2

    # ID tokens (for later use): /identity?audience=...&format=full, cached per audience.
    code, ans = refresh(t, audience="https://example.run.app", count=2)
    assert code == 200, ans
    (got,) = ans["tokens"]
    rec = issued_by_fp(metadata_fake)[got]
    assert rec["kind"] == "id_token" and rec["audience"] == "https://example.run.app"
    assert metadata_fake.stats()["endpoints"].get("identity") == 1
    ids = [e for e in status(t)["tokens"] if e["kind"] == "id"]
    assert ids and ids[0]["audience"] == "https://example.run.app" and ids[0]["valid"]

    code, _, metrics = t.admin_get("/metrics")
    text = metrics.decode()
    assert re.search(r'tether_credentials_refreshes_total\{kind="access"\} 2', text), text
    assert "tether_credentials_token_expiry_seconds" in text
    assert_no_secrets(t, tetherd_logs, *metadata_fake.issued_tokens())
    for tok in metadata_fake.issued_tokens():
        assert tok not in text and tok not in json.dumps(status(t))


def test_service_account_key_jwt_bearer_grant(start, metadata_fake, service_account_key,
                                              tetherd_logs):
    t = start({"source": "service_account", "key_file": service_account_key.path})
    wait_valid(t)
    doc = status(t)
    assert doc["source"] == "service_account" and doc["email"] == service_account_key.email
    assert doc["token_uri"] == metadata_fake.token_uri
    code, ans = refresh(t, count=5)
    assert code == 200 and ans["ok"] == 5, ans
    stats = metadata_fake.stats()
    # The fake checked the RS256 signature against the key's public half, iss, aud, iat/exp.
    assert stats["grant_types"] == {JWT_BEARER: 1}, stats
    assert not stats["errors"], stats["errors"]
    (got,) = ans["tokens"]
    rec = issued_by_fp(metadata_fake)[got]
    assert rec["kind"] == "jwt-bearer" and rec["subject"] == service_account_key.email
    assert rec["scope"] == CLOUD_PLATFORM

    # ID token through the same grant with target_audience.
    code, ans = refresh(t, audience="https://svc.example.com")
    assert code == 200, ans
    (got,) = ans["tokens"]
    assert issued_by_fp(metadata_fake)[got]["kind"] == "id_token"

    pem_body = "".join(l for l in service_account_key.private_key_pem.splitlines()
                       if "-----" not in l)
    assert_no_secrets(t, tetherd_logs, *metadata_fake.issued_tokens(), pem_body,
                      *[l for l in service_account_key.private_key_pem.splitlines()
                        if "-----" not in l and len(l) > 40][:3])


def test_service_account_self_signed_jwt(start, metadata_fake, service_account_key):
    t = start({"source": "service_account", "key_file": service_account_key.path,
               "self_signed_jwt": True})
    wait_valid(t)
    doc = status(t)
    assert doc["self_signed_jwt"] is True
    e = default_entry(doc)
    assert 3500 < e["expires_in"] <= 3600, e
    code, ans = refresh(t, count=3, scopes="https://www.googleapis.com/auth/pubsub")
    assert code == 200 and ans["ok"] == 3 and len(ans["tokens"]) == 1, ans
    # Signed locally: no token endpoint round trip.
    assert metadata_fake.stats()["grant_types"] == {}


def test_service_account_bad_signature_is_a_clear_error(start, metadata_fake, tmp_path,
                                                        tetherd_logs):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "unknown-key.json"
    path.write_text(json.dumps({"type": "service_account", "client_email": "x@p.iam.gserviceaccount.com",
                                "private_key_id": "nope", "private_key": pem,
                                "token_uri": metadata_fake.token_uri}))
    t = start({"source": "service_account", "key_file": str(path), "fetch_timeout": "2s",
               "backoff_initial": "5s", "backoff_max": "5s"})
    code, ans = refresh(t)
    assert code == 503 and ans["failed"] == 1, ans
    (msg,) = ans["errors"]
    assert "HTTP 400" in msg and "invalid_grant" in msg and "Invalid JWT Signature" in msg, msg
    assert "x@p.iam.gserviceaccount.com" in msg and metadata_fake.token_uri in msg, msg
    assert "invalid_grant" in default_entry(status(t))["last_error"]
    assert_no_secrets(t, tetherd_logs, *[l for l in pem.splitlines() if "-----" not in l][:3])


def test_authorized_user_refresh_grant(start, metadata_fake, authorized_user_file,
                                       tetherd_logs):
    t = start({"source": "authorized_user", "key_file": authorized_user_file.path})
    wait_valid(t)
    code, ans = refresh(t, count=4)
    assert code == 200 and ans["ok"] == 4, ans
    stats = metadata_fake.stats()
    assert stats["grant_types"] == {"refresh_token": 1}, stats
    (got,) = ans["tokens"]
    assert issued_by_fp(metadata_fake)[got]["kind"] == "refresh_token"
    assert status(t)["source"] == "authorized_user"
    assert_no_secrets(t, tetherd_logs, *metadata_fake.issued_tokens(),
                      authorized_user_file.refresh_token, authorized_user_file.client_secret)


def test_token_uri_override(start, metadata_fake, authorized_user_file, tmp_path):
    info = dict(authorized_user_file.info)
    del info["token_uri"]  # as gcloud writes it: Google's endpoint unless overridden
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(info))
    t = start({"source": "authorized_user", "key_file": str(path),
               "token_uri": metadata_fake.token_uri})
    wait_valid(t)
    assert status(t)["token_uri"] == metadata_fake.token_uri


def test_static_token_from_file_and_env(start, tmp_path, tetherd_logs):
    tok = "static-Tok3n-" + os.urandom(8).hex()
    p = tmp_path / "token"
    p.write_text(tok + "\n")
    t = start({"source": "static", "static_token_file": str(p)})
    code, ans = refresh(t, count=2, scopes="anything")
    assert code == 200 and list(ans["tokens"]) == [fp(tok)], ans
    e = default_entry(status(t))
    assert e["valid"] and e["expires_in"] is None

    tok2 = "static-Env-" + os.urandom(8).hex()
    t2 = start({"source": "static", "static_token_env": "MY_TOKEN"}, env={"MY_TOKEN": tok2})
    code, ans = refresh(t2)
    assert code == 200 and list(ans["tokens"]) == [fp(tok2)], ans
    assert_no_secrets(t, tetherd_logs, tok)
    assert_no_secrets(t2, tetherd_logs, tok2)


# --- ADC order -----------------------------------------------------------------------------

def test_adc_env_file_beats_gcloud_file_and_metadata(start, metadata_fake, service_account_key,
                                                     authorized_user_file):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": service_account_key.path,
           "CLOUDSDK_CONFIG": authorized_user_file.dir,
           "GCE_METADATA_HOST": metadata_fake.host}
    t = start({"source": "auto"}, env=env)
    wait_valid(t)
    doc = status(t)
    assert doc["source"] == "service_account", doc
    assert "GOOGLE_APPLICATION_CREDENTIALS" in doc["origin"]
    stats = metadata_fake.stats()
    assert stats["grant_types"] == {JWT_BEARER: 1} and "token" not in stats["endpoints"], stats


def test_adc_gcloud_file_beats_metadata(start, metadata_fake, authorized_user_file):
    env = {"CLOUDSDK_CONFIG": authorized_user_file.dir, "GCE_METADATA_HOST": metadata_fake.host}
    t = start({}, env=env)  # a present section with no keys is `source: auto`
    wait_valid(t)
    doc = status(t)
    assert doc["source"] == "authorized_user" and "gcloud ADC file" in doc["origin"], doc
    assert "token" not in metadata_fake.stats()["endpoints"]


def test_adc_falls_back_to_metadata(start, metadata_fake):
    t = start({"source": "auto"}, env={"GCE_METADATA_HOST": metadata_fake.host})
    wait_valid(t)
    doc = status(t)
    assert doc["source"] == "metadata" and "auto" in doc["origin"], doc
    assert metadata_fake.stats()["endpoints"].get("token") == 1


def test_adc_env_var_naming_a_missing_file_fails_start(start, tmp_path, metadata_fake):
    missing = str(tmp_path / "nope.json")
    t = start({"source": "auto"}, env={"GOOGLE_APPLICATION_CREDENTIALS": missing,
                                       "GCE_METADATA_HOST": metadata_fake.host},
              wait_ready=False)
    assert t.proc.wait(timeout=scaled(10)) != 0
    log = t.log_text()
    assert "GOOGLE_APPLICATION_CREDENTIALS" in log and missing in log, log


def test_key_file_errors_name_the_file_not_its_contents(start, tmp_path):
    secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtcHJpbnQ"
    bad = tmp_path / "broken-key.json"
    bad.write_text(json.dumps({"type": "service_account", "client_email": "a@b.c",
                               "private_key": "-----BEGIN PRIVATE KEY-----\n" + secret +
                               "\n-----END PRIVATE KEY-----\n"}))
    t = start({"source": "service_account", "key_file": str(bad)}, wait_ready=False)
    assert t.proc.wait(timeout=scaled(10)) != 0
    log = t.log_text()
    assert str(bad) in log and "private_key" in log and secret not in log, log

    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"type": "service_account", "private_key": "' + secret)
    t = start({"source": "auto", "key_file": str(garbage)}, wait_ready=False)
    assert t.proc.wait(timeout=scaled(10)) != 0
    log = t.log_text()
    assert str(garbage) in log and "not valid JSON" in log and secret not in log, log

    other = tmp_path / "external.json"
    other.write_text(json.dumps({"type": "external_account", "audience": "x"}))
    t = start({"source": "auto", "key_file": str(other)}, wait_ready=False)
    assert t.proc.wait(timeout=scaled(10)) != 0
    assert "external_account" in t.log_text() and "not supported" in t.log_text()


def test_no_credentials(start):
    for creds in (None, {"source": "none"}):
        t = start(creds)
        code, ans = refresh(t, count=2)
        assert code == 503 and ans["failed"] == 2, ans
        (msg,) = ans["errors"]
        assert msg.startswith("no credentials configured"), msg
        assert status(t)["configured"] is False


# --- the cache -----------------------------------------------------------------------------

def test_many_waiters_one_fetch(start, metadata_fake):
    t = start({"source": "metadata"}, env={"GCE_METADATA_HOST": metadata_fake.host})
    wait_valid(t)
    before = metadata_fake.stats()["endpoints"].get("token", 0)
    metadata_fake.configure(delay=0.5)
    # Drop the cached token, then 1,000 requests for it at once: one fetch serves them all.
    code, ans = refresh(t, count=1000, invalidate=1)
    assert code == 200 and ans["ok"] == 1000, ans
    assert len(ans["tokens"]) == 1
    assert metadata_fake.stats()["endpoints"]["token"] == before + 1


def test_short_lived_tokens_are_refreshed_before_expiry(start, metadata_fake, service_account_key):
    metadata_fake.configure(expires_in=3)
    t = start({"source": "service_account", "key_file": service_account_key.path})
    wait_valid(t)
    seen = {}
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        code, ans = refresh(t, count=3)
        now = time.time()
        assert code == 200, ans
        issued = issued_by_fp(metadata_fake)
        for f in ans["tokens"]:
            rec = issued[f]
            seen[f] = rec
            # Handed out with life left: never an expired token, never one about to expire.
            assert now < rec["expires_at"] - 0.3, (now, rec["expires_at"])
        time.sleep(0.1)
    # Refreshed in the background ahead of expiry, not on demand after it: several tokens.
    assert len(seen) >= 4, len(seen)
    e = default_entry(status(t))
    assert e["refreshes"] >= 4 and e["failures"] == 0, e


def test_metadata_down_clear_error_within_fetch_timeout_then_recovery(start, metadata_fake):
    metadata_fake.configure(down=True)
    t = start({"source": "metadata", "fetch_timeout": "2s", "backoff_initial": "200ms",
               "backoff_max": "1s"}, env={"GCE_METADATA_HOST": metadata_fake.host})
    t0 = time.monotonic()
    code, ans = refresh(t, count=5)
    elapsed = time.monotonic() - t0
    assert code == 503 and ans["failed"] == 5, ans
    assert elapsed < scaled(3.5), elapsed
    (msg,) = ans["errors"]
    assert "metadata server at " + metadata_fake.url in msg, msg
    e = default_entry(status(t))
    assert not e["valid"] and e["failures"] >= 1 and e["last_error"], e

    # An HTTP failure is reported with its status.
    metadata_fake.configure(down=False, fail={"status": 503, "forever": True})
    code, ans = refresh(t)
    assert code == 503 and "HTTP 503" in list(ans["errors"])[0], ans

    metadata_fake.configure(fail=None)
    code, ans = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(refresh(t)), 10,
                           "a token after the metadata server came back", t.log_path)
    assert ans["ok"] == 1
    e = default_entry(status(t))
    assert e["valid"] and e["consecutive_failures"] == 0
    code, _, metrics = t.admin_get("/metrics")
    assert re.search(r'tether_credentials_refresh_failures_total\{reason="transport"\} [1-9]',
                     metrics.decode())
    assert re.search(r'tether_credentials_refresh_failures_total\{reason="http_5xx"\} [1-9]',
                     metrics.decode())


def test_old_token_kept_while_refresh_fails(start, metadata_fake, service_account_key):
    metadata_fake.configure(expires_in=6)
    t = start({"source": "service_account", "key_file": service_account_key.path,
               "backoff_initial": "200ms", "backoff_max": "500ms"})
    wait_valid(t)
    code, ans = refresh(t)
    (first,) = ans["tokens"]
    metadata_fake.configure(fail={"status": 500, "forever": True})
    # The refresh (due about 3 s in) fails; the token still valid keeps being handed out.
    time.sleep(3.5)
    code, ans = refresh(t)
    assert code == 200 and list(ans["tokens"]) == [first], ans
    assert default_entry(status(t))["consecutive_failures"] >= 1
    metadata_fake.configure(fail=None)
    wait_until(lambda: default_entry(status(t))["consecutive_failures"] == 0, 5,
               "a successful refresh", t.log_path)
    code, ans = refresh(t)
    assert code == 200 and list(ans["tokens"]) != [first]


def test_admin_routes_need_the_admin_token(tetherd, clean_env, metadata_fake):
    port = free_port()
    t = tetherd({"admin": {"listen": [f"tcp://127.0.0.1:{port}"], "auth_token": "adm1n-s3cret"},
                 "credentials": {"source": "metadata"}},
                env={**clean_env, "GCE_METADATA_HOST": metadata_fake.host})
    code, _, _ = t.admin_get("/admin/credentials")
    assert code == 401
    code, _, _ = t.admin_request("POST", "/admin/credentials/refresh")
    assert code == 401
    code, _, body = t.admin_get("/admin/credentials",
                                headers={"Authorization": "Bearer adm1n-s3cret"})
    assert code == 200 and json.loads(body)["source"] == "metadata"


def test_check_config_accepts_and_validates_the_sections(tmp_path):
    import subprocess
    from conftest import tetherd_binary
    good = tmp_path / "good.yaml"
    good.write_text("credentials:\n  source: static\n  static_token_env: TOK\n"
                    "upstream:\n  connect_timeout: 5s\n  max_attempts: 3\n")
    r = subprocess.run([tetherd_binary(), "--check-config", "-c", str(good)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("credentials:\n  source: static\n  source_x: 1\n")
    r = subprocess.run([tetherd_binary(), "--check-config", "-c", str(bad)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2
    assert "credentials.source_x" in r.stderr and "static_token" in r.stderr, r.stderr
