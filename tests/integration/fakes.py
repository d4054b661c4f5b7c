"""Fixtures for the fakes of Google services that have no local emulator (tests/fakes/): the
GCE metadata server + OAuth token endpoint, credential files it accepts (a service-account key
whose public half it knows, an authorized_user file), and the Cloud Storage JSON API over HTTP
or HTTPS with a CA made at test time. Each fixture starts its own process on a free port in its
own temp dir and stops it (and removes the dir) at teardown; nothing waits without a deadline.
conftest.py star-imports this module."""
import datetime
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import sys
import time

import pytest

from harness import REPO, StartError, free_port, make_tempdir, spawn, stop_group, wait_until

__all__ = ["metadata_fake", "service_account_key", "authorized_user_file", "gcs_fake",
           "gcs_fake_tls", "FakeProcess", "make_test_ca"]

FAKES_DIR = os.path.join(REPO, "tests", "fakes")
KEEP_TMP = bool(os.environ.get("TETHER_KEEP_TMP"))
TEST_PROJECT = "test-project"


class FakeProcess:
    """One fake (a script in tests/fakes/) on 127.0.0.1:<free port>, with JSON control calls
    to its /_fake/ endpoints."""
    host_ip = "127.0.0.1"

    def __init__(self, script, name, tls=None):
        self.name = name
        self.base = make_tempdir(f"tether-{name}-")
        self.port = free_port()
        self.log_path = os.path.join(self.base, f"{name}.log")
        self.port_file = os.path.join(self.base, "port")
        self.tls = tls
        self.ca_file = tls.ca_file if tls else None
        argv = [sys.executable, os.path.join(FAKES_DIR, script), "--host", self.host_ip,
                "--port", str(self.port), "--port-file", self.port_file,
                "--data-dir", os.path.join(self.base, "data")]
        if tls:
            argv += ["--tls-cert", tls.cert_file, "--tls-key", tls.key_file]
        self.proc = spawn(argv, self.log_path, cwd=self.base)
        try:
            wait_until(lambda: os.path.exists(self.port_file) and
                       self.control("GET", "/_fake/" + self.probe_path, timeout=2),
                       15, f"{name} on port {self.port}", self.log_path, self.proc)
        except StartError:
            self.close()
            raise

    probe_path = "config"
    scheme = property(lambda self: "https" if self.tls else "http")
    host = property(lambda self: f"{self.host_ip}:{self.port}")
    url = property(lambda self: f"{self.scheme}://{self.host}")

    def connection(self, timeout=10):
        """A fresh http.client connection to the fake (verifying the test CA over TLS)."""
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(self.host_ip, self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection(self.host_ip, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, lower-cased headers, body bytes) of one request on a fresh connection."""
        c = self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def control(self, method, path, doc=None, timeout=10):
        body = json.dumps(doc).encode() if doc is not None else None
        status, _, data = self.request(method, path, body,
                                       {"Content-Type": "application/json"}, timeout)
        if status != 200:
            raise AssertionError(f"{self.name} {method} {path}: {status} {data[:300]!r}")
        return json.loads(data)

    def configure(self, **kw):
        """POST /_fake/config with the keyword arguments; returns the resulting config."""
        return self.control("POST", "/_fake/config", kw)

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def close(self):
        stop_group(self.proc, signal.SIGTERM, 5)
        if not KEEP_TMP:
            shutil.rmtree(self.base, ignore_errors=True)


class MetadataFake(FakeProcess):
    """tests/fakes/metadata_fake.py: .url, .host (for GCE_METADATA_HOST), .token_uri."""

    def __init__(self):
        super().__init__("metadata_fake.py", "metadata-fake")

    token_uri = property(lambda self: self.url + "/token")
    env = property(lambda self: {"GCE_METADATA_HOST": self.host,
                                 "GCE_METADATA_IP": self.host})

    def stats(self):
        return self.control("GET", "/_fake/stats")

    def reset(self, keys=False):
        """Config, stats and tokens back to the start; registered keys stay unless keys."""
        return self.control("POST", "/_fake/reset", {"keys": keys})

    def issued_tokens(self):
        """Every token issued so far (access tokens and ID tokens), oldest first."""
        return [t["token"] for t in self.stats()["tokens"]]

    def refresh_credentials(self):
        return self.control("GET", "/_fake/config")["refresh"]


class GcsFake(FakeProcess):
    """tests/fakes/gcs_fake.py: .url, .ca_file (TLS only), requests(), configure(...)."""

    def __init__(self, tls=None):
        super().__init__("gcs_fake.py", "gcs-fake-tls" if tls else "gcs-fake", tls)

    def requests(self):
        return self.control("GET", "/_fake/requests")["requests"]

    def reset(self, data=False):
        return self.control("POST", "/_fake/reset", {"data": data})

    def fault(self, **rule):
        """Adds one fault rule (see gcs_fake.py): fault(method="GET", path="/o/x", status=503)."""
        return self.configure(faults=[rule])

    def create_bucket(self, name, token="test-token"):
        status, _, data = self.request("POST", f"/storage/v1/b?project={TEST_PROJECT}",
                                       json.dumps({"name": name}).encode(),
                                       {"Authorization": f"Bearer {token}",
                                        "Content-Type": "application/json"})
        if status != 200:
            raise AssertionError(f"creating bucket {name}: {status} {data[:300]!r}")
        return json.loads(data)


def _start(request, factory):
    try:
        fake = factory()
    except StartError as e:
        why = str(e)
    else:
        request.addfinalizer(fake.close)
        return fake
    pytest.fail(why, pytrace=False)


@pytest.fixture
def metadata_fake(request):
    return _start(request, MetadataFake)


@pytest.fixture
def gcs_fake(request):
    return _start(request, GcsFake)


@pytest.fixture
def gcs_fake_tls(request):
    ca = make_test_ca()
    request.addfinalizer(ca.close)
    return _start(request, lambda: GcsFake(tls=ca))


# --- credentials the metadata fake accepts -------------------------------------------------

class ServiceAccountKey:
    """A service-account key file whose public key the metadata fake knows."""

    def __init__(self, metadata):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.dir = make_tempdir("tether-sakey-")
        self.email = f"tether-test@{TEST_PROJECT}.iam.gserviceaccount.com"
        self.key_id = secrets.token_hex(20)
        self.token_uri = metadata.token_uri
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        metadata.configure(public_keys=[{"pem": public_pem, "key_id": self.key_id,
                                         "email": self.email}])
        self.info = {
            "type": "service_account", "project_id": TEST_PROJECT,
            "private_key_id": self.key_id, "private_key": self.private_key_pem,
            "client_email": self.email, "client_id": "112233445566778899001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                    + self.email.replace("@", "%40"),
            "universe_domain": "googleapis.com"}
        self.path = os.path.join(self.dir, "service-account.json")
        with open(self.path, "w") as f:
            json.dump(self.info, f, indent=2)

    def assertion(self, scope="https://www.googleapis.com/auth/cloud-platform", aud=None,
                  lifetime=3600, key=None, **claims):
        """A jwt-bearer assertion as a client would build it (claims overridable), signed with
        this key or `key`."""
        import base64
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def enc(doc):
            return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

        now = int(time.time())
        body = {"iss": self.email, "scope": scope, "aud": aud or self.token_uri,
                "iat": now, "exp": now + lifetime, **claims}
        signing_input = enc({"alg": "RS256", "typ": "JWT", "kid": self.key_id}) + "." + enc(body)
        sig = (key or self.key).sign(signing_input.encode(), padding.PKCS1v15(),
                                     hashes.SHA256())
        return signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()

    def close(self):
        if not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def service_account_key(request, metadata_fake):
    key = ServiceAccountKey(metadata_fake)
    request.addfinalizer(key.close)
    return key


class AuthorizedUserFile:
    """An authorized_user credentials file the metadata fake's /token accepts. Google's own
    files have no token_uri; this one carries one pointing at the fake."""

    def __init__(self, metadata):
        creds = metadata.refresh_credentials()
        self.dir = make_tempdir("tether-authuser-")
        self.client_id = creds["client_id"]
        self.client_secret = creds["client_secret"]
        self.refresh_token = creds["refresh_token"]
        self.token_uri = metadata.token_uri
        self.info = {"type": "authorized_user", "client_id": self.client_id,
                     "client_secret": self.client_secret, "refresh_token": self.refresh_token,
                     "quota_project_id": TEST_PROJECT, "token_uri": self.token_uri,
                     "universe_domain": "googleapis.com"}
        self.path = os.path.join(self.dir, "application_default_credentials.json")
        with open(self.path, "w") as f:
            json.dump(self.info, f, indent=2)

    def close(self):
        if not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def authorized_user_file(request, metadata_fake):
    f = AuthorizedUserFile(metadata_fake)
    request.addfinalizer(f.close)
    return f


# --- a test CA for the TLS variants --------------------------------------------------------

class TestCA:
    """A CA and a server certificate for 127.0.0.1/localhost, made now, in files."""
    __test__ = False  # not a pytest test class

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        import ipaddress

        self.dir = make_tempdir("tether-ca-")
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tether test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                           False, False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        self.ca_file = self._write("ca.pem", ca.public_bytes(pem))
        self.cert_file = self._write("server.pem", cert.public_bytes(pem))
        self.key_file = self._write("server.key", key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def _write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close(self):
        if not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)


def make_test_ca():
    """A TestCA (ca_file, cert_file, key_file); call .close() to remove its files."""
    return TestCA()

