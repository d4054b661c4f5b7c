"""A fake GCE metadata server and OAuth2 token endpoint in one process, for tether's credential
tests. Metadata: /computeMetadata/v1/... needs `Metadata-Flavor: Google` (403 without) and
answers with that header; the default service account's token (cached like the real server,
so expires_in is the remaining lifetime), identity (an RS256 JWT signed by a key generated at
start; its public half is at /oauth2/v3/certs), email, project id, plus `/` for detection.
OAuth: POST /token with grant_type jwt-bearer (RS256 signature checked against registered
public keys; iss/aud/iat/exp/scope checked) or refresh_token (client and refresh token checked
against the configured ones). Every token issued is random, short-lived and recorded.

Control endpoints (never counted):
  POST /_fake/config  JSON, merged: expires_in (s), delay (s), down (bool: close connections
      without answering), fail: {"status": S, "times": N | "forever": true, "path": substring,
      "body": {...}} (replaces any previous rule; null clears), public_key_pem (+ key_id,
      key_email: the iss it must sign for) or public_keys: [{pem, key_id, email}],
      refresh: {client_id, client_secret, refresh_token}, project_id, email (of the
      default service account), audiences: [extra accepted JWT aud values]
  GET  /_fake/stats   {"endpoints": {name: n}, "grant_types": {type: n}, "tokens": [{token,
      kind, scope, subject, issued_at, expires_at}], "errors": {name: n}}
  POST /_fake/reset   config, stats and tokens back to the start; registered public keys
      stay unless the body is {"keys": true}.

Run: python3 metadata_fake.py --host 127.0.0.1 --port 0 --port-file PATH [--data-dir DIR]
     [--tls-cert C --tls-key K]"""
import base64
import copy
import json
import os
import secrets
import sys
import threading
import time
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

from fake_http import FakeHandler, FakeServer, parse_args, serve  # noqa: E402

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MD = "/computeMetadata/v1/"
SA = MD + "instance/service-accounts/default/"
DEFAULT_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
MAX_JWT_LIFETIME = 3600
CLOCK_SKEW = 300

DEFAULT_CONFIG = {"expires_in": 3600, "delay": 0, "down": False, "fail": None,
                  "project_id": "test-project", "numeric_project_id": "123456789012",
                  "email": "default-sa@test-project.iam.gserviceaccount.com",
                  "refresh": {"client_id": "tether-test-client.apps.googleusercontent.com",
                              "client_secret": "tether-test-secret",
                              "refresh_token": "1//tether-test-refresh-token"},
                  "audiences": []}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OAuthError(Exception):
    def __init__(self, status, error, description):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class MetadataServer(FakeServer):
    def __init__(self, addr):
        super().__init__(addr, MetadataHandler)
        self.lock = threading.Lock()
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signing_kid = secrets.token_hex(20)
        self.reset()

    def reset(self, keys=True):
        """Back to the start; registered public keys survive unless keys is true."""
        with self.lock:
            self.config = copy.deepcopy(DEFAULT_CONFIG)
            if keys:
                self.keys = {}    # key id -> (public key, email or None)
            self.endpoints = {}   # endpoint name -> count
            self.grants = {}      # grant type -> count
            self.errors = {}      # endpoint name -> error answers
            self.tokens = []      # every token issued
            self.cached = {}      # metadata token cache: scopes -> record

    def configure(self, doc):
        with self.lock:
            for k, v in doc.items():
                if k in ("public_key_pem", "public_keys"):
                    continue
                if k == "fail" and v is not None:
                    v = dict(v, times=v.get("times", 1))
                if k == "refresh" and v is not None:
                    v = {**self.config["refresh"], **v}
                if k not in DEFAULT_CONFIG:
                    raise ValueError(f"unknown config key {k}")
                self.config[k] = v
            keys = list(doc.get("public_keys") or [])
            if doc.get("public_key_pem"):
                keys.append({"pem": doc["public_key_pem"], "key_id": doc.get("key_id"),
                             "email": doc.get("key_email")})
            for k in keys:
                pub = serialization.load_pem_public_key(k["pem"].encode())
                self.keys[k.get("key_id") or secrets.token_hex(8)] = (pub, k.get("email"))
            if "expires_in" in doc:
                self.cached = {}
            return self.public_config()

    def public_config(self):
        return {**copy.deepcopy(self.config), "key_ids": sorted(self.keys)}

    def count(self, table, name):
        with self.lock:
            table[name] = table.get(name, 0) + 1

    def take_failure(self, path):
        """The configured failure if it applies to this request (consuming one use)."""
        with self.lock:
            fail = self.config.get("fail")
            if not fail or (fail.get("path") and fail["path"] not in path):
                return None
            if not fail.get("forever"):
                fail["times"] -= 1
                if fail["times"] <= 0:
                    self.config["fail"] = None
            return fail

    def issue(self, kind, scope, subject, lifetime=None):
        lifetime = int(self.config["expires_in"] if lifetime is None else lifetime)
        now = time.time()
        rec = {"token": "ya29.fake-" + secrets.token_urlsafe(32), "kind": kind,
               "scope": scope, "subject": subject, "issued_at": now,
               "expires_at": now + lifetime, "lifetime": lifetime}
        with self.lock:
            self.tokens.append(rec)
        return rec

    def metadata_token(self, scope):
        """Like the real server: the same token until it nears expiry (it refreshes in the
        last five minutes, or the last half of a shorter lifetime); expires_in is what is left."""
        with self.lock:
            rec = self.cached.get(scope)
        now = time.time()
        if rec is None or rec["expires_at"] - now < min(300, rec["lifetime"] / 2):
            rec = self.issue("metadata", scope, self.config["email"])
            with self.lock:
                self.cached[scope] = rec
        return rec, max(0, int(rec["expires_at"] - now))

    def sign_jwt(self, claims):
        header = {"alg": "RS256", "kid": self.signing_kid, "typ": "JWT"}
        compact = {"separators": (",", ":")}
        signing_input = (b64url(json.dumps(header, **compact).encode()) + "." +
                         b64url(json.dumps(claims, **compact).encode()))
        sig = self.signing_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(sig)

    def jwks(self):
        nums = self.signing_key.public_key().public_numbers()
        n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
        e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.signing_kid,
                          "n": b64url(n), "e": b64url(e)}]}

    def id_token(self, audience, subject_email, full=False):
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": audience,
                  "azp": "112233445566778899000", "sub": "112233445566778899000",
                  "email": subject_email, "email_verified": True,
                  "iat": now, "exp": now + int(self.config["expires_in"])}
        if full:
            claims["google"] = {"compute_engine": {
                "project_id": self.config["project_id"],
                "project_number": int(self.config["numeric_project_id"]),
                "zone": "us-central1-a", "instance_id": "4242424242424242",
                "instance_name": "tether-test-vm"}}
        token = self.sign_jwt(claims)
        with self.lock:
            self.tokens.append({"token": token, "kind": "id_token", "scope": None,
                                "audience": audience, "subject": subject_email,
                                "issued_at": now, "expires_at": claims["exp"],
                                "lifetime": claims["exp"] - now})
        return token

    # --- the OAuth token endpoint -----------------------------------------------------------

    def verify_assertion(self, assertion, token_url):
        """Checks a jwt-bearer assertion: (claims) or OAuthError as Google words them."""
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(claims_b64))
            sig = b64url_decode(sig_b64)
        except (ValueError, TypeError):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: malformed assertion")
        if header.get("alg") != "RS256":
            raise OAuthError(400, "invalid_grant", "Invalid JWT: unsupported alg "
                             f"{header.get('alg')!r}")
        with self.lock:
            keys = dict(self.keys)
        if header.get("kid") in keys:
            candidates = [keys[header["kid"]]]
        else:
            candidates = list(keys.values())
        signing_input = f"{head_b64}.{claims_b64}".encode()
        for pub, email in candidates:
            try:
                pub.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                continue
            if email and claims.get("iss") != email:
                raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
            break
        else:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) \
                or exp <= iat or exp - iat > MAX_JWT_LIFETIME or exp < now \
                or iat > now + CLOCK_SKEW:
            raise OAuthError(400, "invalid_grant", "Invalid JWT: Token must be a short-lived "
                             "token (60 minutes) and in a reasonable timeframe. Check your iat "
                             "and exp values in the JWT claim.")
        if not claims.get("iss"):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: no iss claim")
        if claims.get("aud") not in [token_url] + list(self.config.get("audiences") or []):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: Failed audience check. The "
                             f"expected audience is {token_url}.")
        if not claims.get("scope") and not claims.get("target_audience"):
            raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience "
                             "provided.")
        return claims

    def token_grant(self, form, token_url):
        grant = form.get("grant_type", "")
        self.count(self.grants, grant or "(none)")
        if grant == JWT_BEARER:
            claims = self.verify_assertion(form.get("assertion", ""), token_url)
            if claims.get("target_audience"):
                return {"id_token": self.id_token(claims["target_audience"], claims["iss"])}
            rec = self.issue("jwt-bearer", claims["scope"], claims.get("sub") or claims["iss"])
            return {"access_token": rec["token"], "expires_in": rec["lifetime"],
                    "token_type": "Bearer"}
        if grant == "refresh_token":
            want = self.config["refresh"]
            if form.get("client_id") != want["client_id"] or \
                    form.get("client_secret") != want["client_secret"]:
                raise OAuthError(401, "invalid_client", "Unauthorized")
            if form.get("refresh_token") != want["refresh_token"]:
                raise OAuthError(400, "invalid_grant", "Bad Request")
            scope = form.get("scope") or " ".join(DEFAULT_SCOPES)
            rec = self.issue("refresh_token", scope, form["client_id"])
            return {"access_token": rec["token"], "expires_in": rec["lifetime"],
                    "token_type": "Bearer", "scope": scope}
        raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")


class MetadataHandler(FakeHandler):
    server_version = "Metadata Server for VM"

    def do_GET(self):
        self.handle_one("GET")

    def do_POST(self):
        self.handle_one("POST")

    def handle_one(self, method):
        self.begin()
        srv = self.server
        if self.url_path.startswith("/_fake/"):
            return self.control(method)
        cfg = srv.config
        if cfg.get("down"):
            self.drop_connection()
            return
        if cfg.get("delay"):
            time.sleep(float(cfg["delay"]))
        name = self.endpoint_name(method)
        srv.count(srv.endpoints, name)
        fail = srv.take_failure(self.path)
        if fail:
            srv.count(srv.errors, name)
            body = fail.get("body") or {"error": "fake_failure",
                                        "error_description": f"injected {fail['status']}"}
            return self.send_json(int(fail["status"]), body, self.flavor())
        if method == "POST" and self.url_path == "/token":
            return self.token()
        if method == "GET" and self.url_path == "/oauth2/v3/certs":
            return self.send_json(200, srv.jwks())
        if method == "GET" and self.url_path in ("/", "/computeMetadata/", MD[:-1], MD):
            if self.url_path != "/" and not self.flavor_ok():
                return self.forbidden(name)
            return self.send_bytes(200, b"computeMetadata/\n", "application/text",
                                   self.flavor())
        if method == "GET" and self.url_path.startswith(MD):
            if not self.flavor_ok():
                return self.forbidden(name)
            return self.metadata(name)
        srv.count(srv.errors, name)
        self.send_bytes(404, b"Not Found\n", "text/html; charset=UTF-8", self.flavor())

    def endpoint_name(self, method):
        if self.url_path == "/token":
            return "oauth_token"
        if self.url_path.startswith(SA):
            return self.url_path[len(SA):] or "service-account"
        if self.url_path.startswith(MD):
            return self.url_path[len(MD):] or "root"
        return self.url_path.strip("/") or "root"

    def flavor(self):
        return [("Metadata-Flavor", "Google")]

    def flavor_ok(self):
        return self.headers.get("Metadata-Flavor") == "Google"

    def forbidden(self, name):
        self.server.count(self.server.errors, name)
        self.send_bytes(403, b"Missing required header: Metadata-Flavor\n",
                        "text/html; charset=UTF-8", self.flavor())

    def text(self, value):
        self.send_bytes(200, value.encode(), "application/text", self.flavor())

    def metadata(self, name):
        srv, cfg, q = self.server, self.server.config, self.query
        path = self.url_path[len(MD):]
        if path in ("instance/service-accounts/default/token",
                    f"instance/service-accounts/{cfg['email']}/token"):
            scope = " ".join(s for s in q.get("scopes", "").split(",") if s) or \
                " ".join(DEFAULT_SCOPES)
            rec, left = srv.metadata_token(scope)
            return self.send_json(200, {"access_token": rec["token"], "expires_in": left,
                                        "token_type": "Bearer"}, self.flavor())
        if path == "instance/service-accounts/default/identity":
            if not q.get("audience"):
                return self.send_bytes(400, b"non-empty audience parameter required\n",
                                       "text/html", self.flavor())
            return self.text(srv.id_token(q["audience"], cfg["email"],
                                          full=q.get("format") == "full"))
        values = {
            "project/project-id": cfg["project_id"],
            "project/numeric-project-id": cfg["numeric_project_id"],
            "instance/id": "4242424242424242",
            "instance/zone": f"projects/{cfg['numeric_project_id']}/zones/us-central1-a",
            "instance/service-accounts/default/email": cfg["email"],
            "instance/service-accounts/default/scopes": "\n".join(DEFAULT_SCOPES) + "\n",
            "instance/service-accounts/default/aliases": "default\n",
            "instance/service-accounts/": f"default/\n{cfg['email']}/\n",
        }
        if path in values:
            return self.text(values[path])
        if path == "instance/service-accounts/default/" and q.get("recursive") == "true":
            return self.send_json(200, {"aliases": ["default"], "email": cfg["email"],
                                        "scopes": DEFAULT_SCOPES}, self.flavor())
        # A directory ("instance", "project/", ...) lists its children, as the real server
        # does; clients probe "instance" to detect GCE.
        folder = path.rstrip("/") + "/"
        children = sorted({k[len(folder):].split("/")[0] + ("/" if "/" in k[len(folder):]
                                                            else "")
                           for k in list(values) + ["instance/service-accounts/default/token"]
                           if k.startswith(folder) and len(k) > len(folder)})
        if children:
            return self.text("".join(c + "\n" for c in children))
        srv.count(srv.errors, name)
        self.send_bytes(404, b"Not Found\n", "text/html; charset=UTF-8", self.flavor())

    def token(self):
        srv = self.server
        form = {k: v[-1] for k, v in parse_qs(self.body.read_all(1 << 20).decode()).items()}
        try:
            self.send_json(200, srv.token_grant(form, self.base_url() + "/token"))
        except OAuthError as e:
            srv.count(srv.errors, "oauth_token")
            self.send_json(e.status, {"error": e.error, "error_description": e.description})

    def control(self, method):
        srv = self.server
        if method == "POST" and self.url_path == "/_fake/config":
            try:
                return self.send_json(200, srv.configure(self.read_json()))
            except ValueError as e:
                return self.send_json(400, {"error": str(e)})
        if method == "GET" and self.url_path == "/_fake/config":
            return self.send_json(200, srv.public_config())
        if method == "GET" and self.url_path == "/_fake/stats":
            with srv.lock:
                doc = {"endpoints": dict(srv.endpoints), "grant_types": dict(srv.grants),
                       "errors": dict(srv.errors), "tokens": [dict(t) for t in srv.tokens]}
            return self.send_json(200, doc)
        if method == "POST" and self.url_path == "/_fake/reset":
            srv.reset(keys=bool(self.read_json().get("keys")))
            return self.send_json(200, {"ok": True})
        self.send_json(404, {"error": "unknown control endpoint"})


def main(argv=None):
    args = parse_args("Fake GCE metadata server and OAuth2 token endpoint.", argv)
    serve(MetadataServer((args.host, args.port)), args, "metadata-fake")


if __name__ == "__main__":
    main()
