"""The Google Cloud CLI (`gcloud storage`) through tether's storage forwarding against the
Storage fake, offline: the CLI's JSON API endpoint is overridden to tether
(CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE), it holds a dummy access token of its own
(CLOUDSDK_AUTH_ACCESS_TOKEN_FILE) that tether strips, and its config directory is a temporary
one, so nothing global is read or written. Upload (multipart and resumable), list, whole and
ranged download, delete; the fake must see tether's token on every request and never the CLI's.
Skipped when /usr/bin/gcloud (or gcloud on PATH) is missing."""
import os
import shutil
import subprocess

import pytest

from harness import make_tempdir, scaled
from test_forward_storage import (APP_TOKEN, BUCKET, assert_tethers_token_only, clean_env,  # noqa: F401
                                  fw, upstream_auth)

GCLOUD = shutil.which("gcloud") or ("/usr/bin/gcloud" if os.path.exists("/usr/bin/gcloud") else None)
pytestmark = pytest.mark.skipif(not GCLOUD, reason="the Google Cloud CLI (gcloud) is not installed")


@pytest.fixture
def gcloud(request):
    """gcloud(t, *args) -> stdout of `gcloud storage ARGS` pointed at tether t."""
    home = make_tempdir("tether-gcloud-")
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    token_file = os.path.join(home, "token")
    with open(token_file, "w") as f:
        f.write(APP_TOKEN)

    def run(t, *args, timeout=120):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_", "BOTO_"))}
        env.update(HOME=home, CLOUDSDK_CONFIG=os.path.join(home, "config"),
                   CLOUDSDK_CORE_DISABLE_PROMPTS="1", CLOUDSDK_CORE_PROJECT="test",
                   CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="1",
                   CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="1",
                   CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=token_file,
                   CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=t.http + "/storage/v1/",
                   CLOUDSDK_STORAGE_PARALLEL_COMPOSITE_UPLOAD_ENABLED="False",
                   CLOUDSDK_STORAGE_RESUMABLE_THRESHOLD="1048576",
                   GCE_METADATA_HOST="127.0.0.1:1", NO_GCE_CHECK="true")
        p = subprocess.run([GCLOUD, "storage", *args], env=env, capture_output=True, timeout=scaled(timeout))
        assert p.returncode == 0, f"gcloud storage {' '.join(args)}: rc {p.returncode}\n{p.stderr.decode()[-3000:]}"
        return p.stdout

    return run


def test_gcloud_storage_through_tether(fw, gcs_fake, metadata_fake, gcloud, tmp_path):
    t = fw()
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello from gcloud\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # over the resumable threshold set above

    gcloud(t, "cp", str(small), f"gs://{BUCKET}/dir/small.txt")
    gcloud(t, "cp", str(big), f"gs://{BUCKET}/dir/big.bin")
    uploads = [r for r in gcs_fake.requests() if "/upload/" in r["path"]]
    kinds = {r["query"].get("uploadType") for r in uploads}
    assert kinds == {"multipart", "resumable"}, [(r["path"], r["query"]) for r in uploads]
    # the session opens on apitools' /resumable/upload/... path; its chunks go to the rewritten
    # session URI, tether's own address
    assert any(r["path"].startswith("/resumable/upload/") for r in uploads), [r["path"] for r in uploads]

    listing = gcloud(t, "ls", f"gs://{BUCKET}/dir/").decode().split()
    assert listing == [f"gs://{BUCKET}/dir/big.bin", f"gs://{BUCKET}/dir/small.txt"], listing

    assert gcloud(t, "cat", f"gs://{BUCKET}/dir/small.txt") == b"hello from gcloud\n"
    assert gcloud(t, "cat", "-r", "6-9", f"gs://{BUCKET}/dir/small.txt") == b"from"
    ranged = [r for r in gcs_fake.requests()
              if r["method"] == "GET" and any(k.lower() == "range" for k in r["headers"])]
    assert ranged and all(r["status"] == 206 for r in ranged), ranged

    back = tmp_path / "back.bin"
    gcloud(t, "cp", f"gs://{BUCKET}/dir/big.bin", str(back))
    assert back.read_bytes() == big.read_bytes()

    gcloud(t, "rm", f"gs://{BUCKET}/dir/small.txt", f"gs://{BUCKET}/dir/big.bin")
    status, _, _ = gcs_fake.request("GET", f"/storage/v1/b/{BUCKET}/o/dir%2Fsmall.txt",
                                    headers={"Authorization": "Bearer " + metadata_fake.issued_tokens()[-1]})
    assert status == 404

    assert_tethers_token_only(gcs_fake, metadata_fake)
    assert all(APP_TOKEN not in (a or "") for a in upstream_auth(gcs_fake))
