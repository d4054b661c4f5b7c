"""Checks of the Google fakes themselves (tests/fakes/), so tether's tests can lean on them:
the official Node.js Storage client works against the Cloud Storage fake (plain, TLS, and with
tokens from the metadata fake), the fault injection does what it says, resumable uploads resume
with the right crc32c, and the metadata/OAuth fake issues, checks and refuses tokens as Google
does. These tests do not need tetherd."""
import base64
import hashlib
import http.client
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from urllib.parse import urlencode

import pytest

from harness import REPO, make_tempdir, scaled

sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
from gcs_store import crc32c  # noqa: E402

NODE_DIR = os.path.join(REPO, "tests", "node")
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONNECTION_LOST = (ConnectionError, http.client.HTTPException, OSError)


def crc32c_b64(data):
    return base64.b64encode(struct.pack(">I", crc32c(data))).decode()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def blob(n, seed=1):
    """n deterministic pseudo-random bytes."""
    out, block = bytearray(), hashlib.sha256(b"%d" % seed).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def gcs(fake, method, path, body=None, headers=None, auth=True, timeout=10):
    """(status, headers, parsed JSON or raw bytes) of one call to the fake."""
    hdrs = dict(AUTH if auth else {}, **(headers or {}))
    status, h, data = fake.request(method, path, body, hdrs, timeout)
    if h.get("content-type", "").startswith("application/json"):
        return status, h, json.loads(data)
    return status, h, data


def upload_media(fake, bucket, name, data, query=""):
    return gcs(fake, "POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}"
               + query, data, {"Content-Type": "application/octet-stream"})


@pytest.fixture
def node_env():
    """Environment for the Node check: no real credentials or proxies can leak in."""
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        pytest.fail("node or tests/node/node_modules missing: run `make deps`", pytrace=False)
    home = make_tempdir("tether-nodehome-")
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY") and not k.startswith(("GOOGLE_", "GCE_",
                                                                   "GCLOUD", "CLOUDSDK_"))}
    env.update(HOME=home, NO_PROXY="*", GCS_TOKEN=TOKEN)
    yield env
    shutil.rmtree(home, ignore_errors=True)


def run_node_check(fake, env, *args, timeout=120):
    argv = ["node", os.path.join(NODE_DIR, "gcs_check.js"), "--endpoint", fake.url,
            "--timeout-s", str(int(scaled(timeout)) - 5), *args]
    p = subprocess.run(argv, cwd=NODE_DIR, env=env, capture_output=True, text=True,
                       timeout=scaled(timeout))
    lines = p.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    assert p.returncode == 0 and summary.get("ok"), (
        f"gcs_check.js exit {p.returncode}\nstdout: {p.stdout[-3000:]}\n"
        f"stderr: {p.stderr[-3000:]}\n--- fake log ---\n{fake.log_text()[-3000:]}")
    return summary


def bearer_tokens(requests):
    return {r["headers"].get("Authorization", "")[7:] for r in requests
            if r["headers"].get("Authorization")}


# --- the official client against the Cloud Storage fake ------------------------------------

def test_node_storage_client_100mb(gcs_fake, node_env):
    gcs_fake.configure(tokens=[TOKEN])  # anything else gets 401
    summary = run_node_check(gcs_fake, node_env, "--size-mb", "100", "--chunk-mb", "8")
    steps = {s["step"]: s for s in summary["steps"]}
    assert steps["large_resumable_upload"]["bytes"] == 100 * 1024 * 1024
    reqs = gcs_fake.requests()
    assert all(r["status"] in (200, 204, 206, 308, 404) for r in reqs), \
        [(r["method"], r["path"], r["status"]) for r in reqs if r["status"] >= 400]
    chunks = [r for r in reqs if r["method"] == "PUT" and r["body_size"] > 0]
    assert sum(r["body_size"] for r in chunks) >= 100 * 1024 * 1024
    assert any(r["status"] == 308 for r in chunks)
    # Everything except session-URI chunks carried the token.
    for r in reqs:
        if "upload_id" not in r["query"]:
            assert r["headers"].get("Authorization") == f"Bearer {TOKEN}", r


def test_node_storage_client_with_metadata_credentials(gcs_fake, metadata_fake, node_env):
    node_env.update(metadata_fake.env)
    run_node_check(gcs_fake, node_env, "--auth", "metadata", "--size-mb", "3",
                   "--chunk-mb", "1", timeout=60)
    used = bearer_tokens(gcs_fake.requests())
    assert used and used <= set(metadata_fake.issued_tokens())
    assert metadata_fake.stats()["endpoints"].get("token", 0) >= 1


def test_node_storage_client_with_refresh_token_over_tls(gcs_fake_tls, metadata_fake,
                                                         authorized_user_file, node_env):
    node_env.update(GOOGLE_APPLICATION_CREDENTIALS=authorized_user_file.path,
                    NODE_EXTRA_CA_CERTS=gcs_fake_tls.ca_file)
    assert gcs_fake_tls.url.startswith("https://")
    run_node_check(gcs_fake_tls, node_env, "--auth", "refresh", "--size-mb", "2",
                   "--chunk-mb", "0", timeout=60)
    stats = metadata_fake.stats()
    assert stats["grant_types"].get("refresh_token", 0) >= 1
    assert bearer_tokens(gcs_fake_tls.requests()) <= set(metadata_fake.issued_tokens())


# --- Cloud Storage fake: API details and fault injection -----------------------------------

def test_gcs_auth_required_in_google_error_shape(gcs_fake):
    gcs_fake.create_bucket("bkt")
    status, h, doc = gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o", auth=False)
    assert status == 401 and doc["error"]["code"] == 401
    assert doc["error"]["status"] == "UNAUTHENTICATED" and doc["error"]["errors"][0]["reason"]
    gcs_fake.configure(tokens=["only-this"])
    assert gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o")[0] == 401
    gcs_fake.configure(require_auth=False)
    assert gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o", auth=False)[0] == 200
    # the fake records a request once its answer is written: give the last one a moment
    deadline = time.time() + 5
    while len(gcs_fake.requests()) < 4 and time.time() < deadline:
        time.sleep(0.02)
    rec = gcs_fake.requests()
    assert [r["status"] for r in rec] == [200, 401, 401, 200]
    assert rec[2]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_gcs_503_then_success_and_429_retry_after(gcs_fake):
    gcs_fake.create_bucket("bkt")
    upload_media(gcs_fake, "bkt", "x", b"payload")
    gcs_fake.fault(method="GET", path="/o/x", status=503, times=2)
    gcs_fake.fault(method="GET", path="/o/y", status=429, retry_after=7)
    got = [gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/x") for _ in range(3)]
    assert [g[0] for g in got] == [503, 503, 200]
    assert got[0][2]["error"]["status"] == "UNAVAILABLE"
    status, h, doc = gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/y")
    assert status == 429 and h["retry-after"] == "7"
    assert gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/y")[0] == 404  # rule used up
    faulted = [r for r in gcs_fake.requests() if r["fault"]]
    assert len(faulted) == 3


def test_gcs_dropped_connections_delay_and_slow_body(gcs_fake):
    gcs_fake.create_bucket("bkt")
    data = blob(600_000)
    upload_media(gcs_fake, "bkt", "big", data)
    # Response cut after 1000 body bytes: the client sees a short read.
    gcs_fake.fault(path="/o/big?alt=media", drop_response_after=1000)
    with pytest.raises(CONNECTION_LOST):
        gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/big?alt=media")
    # Request body cut after 64 KiB: no answer, nothing stored.
    gcs_fake.fault(method="POST", path="name=cut", drop_request_after=65536)
    with pytest.raises(CONNECTION_LOST):
        upload_media(gcs_fake, "bkt", "cut", data)
    assert gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/cut")[0] == 404
    # Closed without answering.
    gcs_fake.fault(path="/o/big", drop=True)
    with pytest.raises(CONNECTION_LOST):
        gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/big")
    statuses = [r["status"] for r in gcs_fake.requests()]
    assert statuses.count("dropped") == 3
    # Delay, then a slow body: both still deliver the right bytes.
    gcs_fake.fault(path="/o/big", delay=0.4)
    t0 = time.monotonic()
    assert gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/big")[0] == 200
    assert time.monotonic() - t0 >= 0.4
    gcs_fake.fault(path="/o/big?alt=media", slow_bps=1_000_000)
    t0 = time.monotonic()
    status, h, body = gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/big?alt=media")
    assert status == 200 and body == data and time.monotonic() - t0 >= 0.5
    assert h["x-goog-hash"] == f"crc32c={crc32c_b64(data)},md5={md5_b64(data)}"


def test_gcs_resumable_interrupted_then_resumed(gcs_fake):
    gcs_fake.create_bucket("bkt")
    gcs_fake.configure(resumable_granularity=256 * 1024)
    data = blob(3 * 1024 * 1024 + 12345)
    total = len(data)
    status, h, _ = gcs(gcs_fake, "POST", "/upload/storage/v1/b/bkt/o?uploadType=resumable"
                       "&name=dir%2Fr.bin", json.dumps({"contentType": "application/x-test"}),
                       {"Content-Type": "application/json", "X-Upload-Content-Length":
                        str(total)})
    assert status == 200
    session = h["location"][len(gcs_fake.url):]
    assert "upload_id=" in session
    # The whole object in one PUT, cut after 1 MiB + 1000 bytes.
    gcs_fake.fault(method="PUT", path="upload_id=", drop_request_after=1024 * 1024 + 1000)
    with pytest.raises(CONNECTION_LOST):
        gcs(gcs_fake, "PUT", session, data, {"Content-Range": f"bytes 0-{total - 1}/{total}"},
            auth=False)
    # Status query: the fake kept whole 256 KiB units only.
    status, h, _ = gcs(gcs_fake, "PUT", session, b"", {"Content-Range": f"bytes */{total}"},
                       auth=False)
    assert status == 308 and h["range"] == f"bytes=0-{1024 * 1024 - 1}"
    status, h, _ = gcs(gcs_fake, "PUT", session, b"", {"Content-Range": "bytes */*"},
                       auth=False)
    assert status == 308 and h["range"] == f"bytes=0-{1024 * 1024 - 1}"
    # Resend from a little earlier than needed (already-stored bytes are ignored).
    start = 1024 * 1024 - 500
    status, _, obj = gcs(gcs_fake, "PUT", session, data[start:],
                         {"Content-Range": f"bytes {start}-{total - 1}/{total}",
                          "x-goog-hash": f"crc32c={crc32c_b64(data)}"}, auth=False)
    assert status == 200, obj
    assert obj["crc32c"] == crc32c_b64(data) and obj["md5Hash"] == md5_b64(data)
    assert obj["size"] == str(total) and obj["contentType"] == "application/x-test"
    status, h, body = gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/dir%2Fr.bin?alt=media",
                          headers={"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200]
    assert h["content-range"] == f"bytes 100-199/{total}"
    assert h["x-goog-hash"].startswith(f"crc32c={crc32c_b64(data)},")
    # A completed session answers with the object.
    assert gcs(gcs_fake, "PUT", session, b"", {"Content-Range": "bytes */*"}, auth=False)[0] \
        == 200
    # A wrong checksum on the final chunk is refused and nothing is stored.
    status, h, _ = gcs(gcs_fake, "POST", "/upload/storage/v1/b/bkt/o?uploadType=resumable"
                       "&name=bad", b"", {})
    bad = h["location"][len(gcs_fake.url):]
    status, _, doc = gcs(gcs_fake, "PUT", bad, b"abc", {"Content-Range": "bytes 0-2/3",
                                                        "x-goog-hash": "crc32c=AAAAAA=="},
                         auth=False)
    assert status == 400 and "crc32c" in doc["error"]["message"]
    assert gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o/bad")[0] == 404


def test_gcs_checksum_mismatch_and_preconditions(gcs_fake):
    gcs_fake.create_bucket("bkt")
    status, _, doc = gcs(gcs_fake, "POST", "/upload/storage/v1/b/bkt/o?uploadType=media&name=c",
                         b"abc", {"x-goog-hash": f"crc32c={crc32c_b64(b'abd')}"})
    assert status == 400 and doc["error"]["code"] == 400
    status, _, obj = upload_media(gcs_fake, "bkt", "p", b"v1", "&ifGenerationMatch=0")
    assert status == 200
    gen = obj["generation"]
    assert upload_media(gcs_fake, "bkt", "p", b"v2", "&ifGenerationMatch=0")[0] == 412
    assert upload_media(gcs_fake, "bkt", "p", b"v2", f"&ifGenerationMatch={gen}")[0] == 200
    status, _, doc = gcs(gcs_fake, "PATCH", "/storage/v1/b/bkt/o/p?ifMetagenerationMatch=7",
                         b"{}", {"Content-Type": "application/json"})
    assert status == 412 and doc["error"]["errors"][0]["reason"] == "conditionNotMet"
    assert gcs(gcs_fake, "DELETE", f"/storage/v1/b/bkt/o/p?ifGenerationMatch={gen}")[0] == 412
    assert gcs(gcs_fake, "GET", f"/storage/v1/b/bkt/o/p?ifGenerationNotMatch={gen}")[0] == 200


def test_gcs_multipart_list_compose_rewrite(gcs_fake):
    gcs_fake.create_bucket("bkt")
    for name in ("a/1", "a/2", "a/b/3", "a/b/4", "c"):
        boundary = "==b0und=="
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                + json.dumps({"name": name, "metadata": {"k": name}})
                + f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n{name}-data"
                + f"\r\n--{boundary}--\r\n").encode()
        status, _, obj = gcs(gcs_fake, "POST", "/upload/storage/v1/b/bkt/o?uploadType=multipart",
                             body, {"Content-Type": f"multipart/related; boundary={boundary}"})
        assert status == 200 and obj["size"] == str(len(name) + 5), obj
        assert obj["contentType"] == "text/plain" and obj["metadata"] == {"k": name}
    status, _, page = gcs(gcs_fake, "GET", "/storage/v1/b/bkt/o?prefix=a%2F&delimiter=%2F")
    assert [i["name"] for i in page["items"]] == ["a/1", "a/2"] and page["prefixes"] == ["a/b/"]
    seen, token = [], ""
    for _ in range(10):
        _, _, page = gcs(gcs_fake, "GET", f"/storage/v1/b/bkt/o?delimiter=%2F&maxResults=1"
                         f"&pageToken={token}")
        seen += [i["name"] for i in page.get("items", [])] + page.get("prefixes", [])
        token = page.get("nextPageToken")
        if not token:
            break
    assert seen == ["a/", "c"]
    status, _, obj = gcs(gcs_fake, "POST", "/storage/v1/b/bkt/o/joined/compose", json.dumps(
        {"sourceObjects": [{"name": "a/1"}, {"name": "c"}]}).encode(),
        {"Content-Type": "application/json"})
    assert status == 200 and obj["crc32c"] == crc32c_b64(b"a/1-datac-data")
    assert obj["componentCount"] == 2 and "md5Hash" not in obj
    status, _, doc = gcs(gcs_fake, "POST", "/storage/v1/b/bkt/o/joined/rewriteTo/b/bkt/o/copy")
    assert status == 200 and doc["done"] and doc["resource"]["crc32c"] == obj["crc32c"]


# --- metadata server and OAuth token endpoint ----------------------------------------------

def md_get(fake, path, flavor="Google"):
    hdrs = {"Metadata-Flavor": flavor} if flavor else {}
    return fake.request("GET", path, None, hdrs)


def token_post(fake, **form):
    status, _, data = fake.request("POST", "/token", urlencode(form).encode(),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
    return status, json.loads(data)


TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"


def test_metadata_tokens_flavor_and_detection(metadata_fake):
    status, h, body = md_get(metadata_fake, "/", flavor=None)
    assert status == 200 and h["metadata-flavor"] == "Google"
    assert md_get(metadata_fake, TOKEN_PATH, flavor=None)[0] == 403
    assert md_get(metadata_fake, TOKEN_PATH, flavor="google-ish")[0] == 403
    status, h, body = md_get(metadata_fake, TOKEN_PATH + "?scopes=a,b")
    doc = json.loads(body)
    assert status == 200 and doc["token_type"] == "Bearer" and 3590 <= doc["expires_in"] <= 3600
    assert doc["access_token"] in metadata_fake.issued_tokens()
    assert md_get(metadata_fake, "/computeMetadata/v1/project/project-id")[2] == b"test-project"
    assert md_get(metadata_fake, "/computeMetadata/v1/instance/service-accounts/default/email"
                  )[2].endswith(b".iam.gserviceaccount.com")
    status, _, jwt = md_get(metadata_fake, "/computeMetadata/v1/instance/service-accounts/"
                            "default/identity?audience=https://svc.example&format=full")
    claims = json.loads(base64.urlsafe_b64decode(jwt.split(b".")[1] + b"=="))
    assert claims["aud"] == "https://svc.example" and claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 5 and "google" in claims
    stats = metadata_fake.stats()
    assert stats["endpoints"]["token"] == 3 and stats["errors"]["token"] == 2


def test_metadata_expires_in_fail_delay_down(metadata_fake):
    metadata_fake.configure(expires_in=2)
    first = json.loads(md_get(metadata_fake, TOKEN_PATH)[2])
    assert first["expires_in"] <= 2
    time.sleep(1.1)  # past half the lifetime: a new token
    second = json.loads(md_get(metadata_fake, TOKEN_PATH)[2])
    assert second["access_token"] != first["access_token"]
    metadata_fake.configure(fail={"status": 503, "times": 2})
    assert [md_get(metadata_fake, TOKEN_PATH)[0] for _ in range(3)] == [503, 503, 200]
    metadata_fake.configure(fail={"status": 500, "forever": True, "path": "/token"})
    assert [token_post(metadata_fake, grant_type="x")[0] for _ in range(3)] == [500] * 3
    metadata_fake.configure(fail=None, delay=0.3)
    t0 = time.monotonic()
    assert md_get(metadata_fake, TOKEN_PATH)[0] == 200 and time.monotonic() - t0 >= 0.3
    metadata_fake.configure(delay=0, down=True)
    with pytest.raises(CONNECTION_LOST):
        md_get(metadata_fake, TOKEN_PATH)
    metadata_fake.configure(down=False)
    assert md_get(metadata_fake, TOKEN_PATH)[0] == 200


def test_oauth_jwt_bearer(metadata_fake, service_account_key):
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = service_account_key
    with open(key.path) as f:
        info = json.load(f)
    assert info["type"] == "service_account" and info["token_uri"] == metadata_fake.token_uri
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    status, doc = token_post(metadata_fake, grant_type=grant, assertion=key.assertion())
    assert status == 200 and doc["token_type"] == "Bearer" and doc["expires_in"] == 3600
    assert doc["access_token"] in metadata_fake.issued_tokens()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = [
        (key.assertion(key=other), "invalid_grant", "Signature"),
        (key.assertion(aud="https://oauth2.googleapis.com/token"), "invalid_grant", "audience"),
        (key.assertion(iat=int(time.time()) - 7200), "invalid_grant", "short-lived"),
        (key.assertion(lifetime=7200), "invalid_grant", "short-lived"),
        (key.assertion(iss="someone-else@x.iam.gserviceaccount.com"), "invalid_grant",
         "account"),
        (key.assertion(scope=""), "invalid_scope", "scope"),
        ("not.a.jwt", "invalid_grant", "malformed"),
    ]
    for assertion, error, words in cases:
        status, doc = token_post(metadata_fake, grant_type=grant, assertion=assertion)
        assert status == 400 and doc["error"] == error and words in doc["error_description"], \
            (words, doc)
    metadata_fake.configure(expires_in=5)
    status, doc = token_post(metadata_fake, grant_type=grant, assertion=key.assertion())
    assert status == 200 and doc["expires_in"] == 5
    stats = metadata_fake.stats()
    assert stats["grant_types"][grant] == 2 + len(cases)
    metadata_fake.reset()  # keeps the registered key
    assert token_post(metadata_fake, grant_type=grant, assertion=key.assertion())[0] == 200
    assert metadata_fake.stats()["grant_types"] == {grant: 1}
    metadata_fake.reset(keys=True)
    assert token_post(metadata_fake, grant_type=grant, assertion=key.assertion())[0] == 400


def test_oauth_refresh_token(metadata_fake, authorized_user_file):
    with open(authorized_user_file.path) as f:
        info = json.load(f)
    assert info["type"] == "authorized_user" and info["token_uri"] == metadata_fake.token_uri
    form = {k: info[k] for k in ("client_id", "client_secret", "refresh_token")}
    status, doc = token_post(metadata_fake, grant_type="refresh_token", **form)
    assert status == 200 and doc["access_token"] in metadata_fake.issued_tokens()
    status, doc = token_post(metadata_fake, grant_type="refresh_token",
                             **dict(form, client_secret="wrong"))
    assert status == 401 and doc["error"] == "invalid_client"
    status, doc = token_post(metadata_fake, grant_type="refresh_token",
                             **dict(form, refresh_token="1//revoked"))
    assert status == 400 and doc["error"] == "invalid_grant"
    status, doc = token_post(metadata_fake, grant_type="password")
    assert status == 400 and doc["error"] == "unsupported_grant_type"
    assert metadata_fake.stats()["grant_types"]["refresh_token"] == 3
