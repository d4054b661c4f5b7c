"""A fake of the Cloud Storage JSON API v1 for tether's tests (no official emulator exists):
buckets, objects on disk, media/multipart/resumable uploads, ranged downloads with x-goog-hash,
list paging, patch, delete, compose, rewrite/copy, generation preconditions and Google's error
JSON. It requires `Authorization: Bearer` (configurable), records every request, and injects
faults on demand.

Control endpoints (no auth, never recorded):
  POST /_fake/config   JSON, merged into the config:
      require_auth: bool (default true)    tokens: [accepted bearer tokens] or null (any)
      delay: seconds before every answer   resumable_granularity: bytes (0 = keep all)
      clock_skew: seconds added to the clock its Date headers show (a server whose clock is off)
      faults: [rule, ...] appended         clear_faults: true
    A fault rule matches requests by "method" and "path" (substring of the raw path with its
    query); "after": let M matches through first; "times": N (default 1) or "forever": true.
    Its actions, combinable: "status" (+ "retry_after", "message", "reason"), "delay" (s),
    "drop": close without answering, "drop_request_after": K body bytes then close,
    "drop_response_after": K response body bytes then close, "slow_bps": body bytes/second.
  GET  /_fake/requests  {"requests": [{method, path, query, headers, body_size, status,
                         fault, time}]}
  POST /_fake/reset     clears requests, faults and config; {"data": true} also deletes all
                         buckets, objects and sessions.
  GET  /_fake/config    the current config.

Run: python3 gcs_fake.py --host 127.0.0.1 --port 0 --port-file PATH [--data-dir DIR]
     [--tls-cert C --tls-key K]"""
import copy
import os
import sys
import threading
import time
from urllib.parse import quote, unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gcs_upload  # noqa: E402
from fake_http import Dropped, FakeHandler, FakeServer, parse_args, serve  # noqa: E402
from gcs_store import GcsError, Store  # noqa: E402

DEFAULT_CONFIG = {"require_auth": True, "tokens": None, "delay": 0,
                  "resumable_granularity": 0, "clock_skew": 0}

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ALREADY_EXISTS",
                412: "FAILED_PRECONDITION", 416: "OUT_OF_RANGE", 429: "RESOURCE_EXHAUSTED",
                499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
REASONS = {400: "invalid", 401: "required", 403: "forbidden", 404: "notFound",
           408: "requestTimeout", 409: "conflict", 412: "conditionNotMet",
           429: "rateLimitExceeded", 500: "backendError", 502: "badGateway",
           503: "backendError", 504: "gatewayTimeout"}


def error_doc(code, message, reason=None):
    reason = reason or REASONS.get(code, "error")
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}],
                      "status": STATUS_NAMES.get(code, "UNKNOWN")}}


class GcsServer(FakeServer):
    def __init__(self, addr, data_dir):
        super().__init__(addr, GcsHandler)
        self.store = Store(data_dir)
        self.lock = threading.Lock()
        self.config = copy.deepcopy(DEFAULT_CONFIG)
        self.faults = []
        self.records = []
        self.in_flight = 0  # API requests started and not yet recorded

    def configure(self, doc):
        with self.lock:
            if doc.get("clear_faults"):
                self.faults = []
            for rule in doc.get("faults") or []:
                rule = dict(rule)
                rule.setdefault("times", 1)
                rule["seen"] = 0
                self.faults.append(rule)
            for k, v in doc.items():
                if k in DEFAULT_CONFIG:
                    self.config[k] = v
            return self.snapshot()

    def snapshot(self):
        return {**copy.deepcopy(self.config),
                "faults": [dict(f) for f in self.faults]}

    def reset(self, data=False):
        with self.lock:
            self.config = copy.deepcopy(DEFAULT_CONFIG)
            self.faults = []
            self.records = []
        if data:
            self.store.reset()

    def take_fault(self, method, raw_path):
        """The first rule matching this request, consumed; None if none applies."""
        with self.lock:
            for rule in self.faults:
                if rule.get("method") and rule["method"].upper() != method:
                    continue
                if rule.get("path") and rule["path"] not in raw_path:
                    continue
                rule["seen"] += 1
                if rule["seen"] <= rule.get("after", 0):
                    continue
                if not rule.get("forever"):
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        self.faults.remove(rule)
                return rule
        return None

    def record(self, rec):
        with self.lock:
            self.records.append(rec)
            self.in_flight -= 1


class GcsHandler(FakeHandler):
    def date_time_string(self, timestamp=None):
        if timestamp is None:
            timestamp = time.time() + (self.server.config.get("clock_skew") or 0)
        return super().date_time_string(timestamp)

    server_version = "tether-gcs-fake/1"

    def do_GET(self):
        self.handle_one("GET")

    def do_HEAD(self):
        self.handle_one("HEAD")

    def do_POST(self):
        self.handle_one("POST")

    def do_PUT(self):
        self.handle_one("PUT")

    def do_PATCH(self):
        self.handle_one("PATCH")

    def do_DELETE(self):
        self.handle_one("DELETE")

    # --- the request cycle ----------------------------------------------------------------

    def handle_one(self, method):
        self.begin()
        if self.url_path.startswith("/_fake/"):
            return self.control(method)
        srv = self.server
        rec = {"method": method, "path": self.url_path, "query": dict(self.query),
               "headers": dict(self.headers.items()), "body_size": 0, "status": None,
               "fault": None, "time": time.time()}
        with srv.lock:
            srv.in_flight += 1
        try:
            fault = srv.take_fault(method, self.path)
            if fault:
                rec["fault"] = {k: v for k, v in fault.items() if k not in ("seen", "times")}
            delay = (fault or {}).get("delay", 0) + (srv.config.get("delay") or 0)
            if delay:
                time.sleep(delay)
            if fault and self.apply_fault(fault):
                return
            if not self.authorized():
                return self.send_error_json(401, "Anonymous caller does not have "
                                            "storage.objects.get access to the Google Cloud "
                                            "Storage object. Permission 'storage.objects.get' "
                                            "denied on resource (or it may not exist).",
                                            "required")
            self.route(method)
        except GcsError as e:
            if e.code == 304:
                self.send_head(304)
            else:
                self.send_error_json(e.code, e.message, e.reason)
        except Dropped as e:
            rec["status"] = "dropped"
            self.log_message("%s", e)
            self.drop_connection()
        except (ConnectionError, OSError) as e:
            rec["status"] = "client-gone"
            self.log_message("client connection lost: %r", e)
            self.close_connection = True
        except (ValueError, KeyError) as e:
            self.send_error_json(400, f"Invalid request: {e}", "invalid")
        finally:
            rec["body_size"] = self.body.count
            if rec["status"] is None:
                rec["status"] = self.status_sent
            srv.record(rec)

    def apply_fault(self, fault):
        """Applies a rule's actions; True when the request is answered (or dropped)."""
        if fault.get("drop"):
            raise Dropped("dropped without answering")
        if fault.get("drop_request_after") is not None:
            self.body.drop_after = int(fault["drop_request_after"])
        if fault.get("drop_response_after") is not None:
            self.drop_response_after = int(fault["drop_response_after"])
        if fault.get("slow_bps"):
            self.slow_bps = float(fault["slow_bps"])
        if fault.get("status"):
            code = int(fault["status"])
            hdrs = []
            if fault.get("retry_after") is not None:
                hdrs.append(("Retry-After", str(fault["retry_after"])))
            if self.body.drop_after is not None:
                self.body.read_all(1 << 40)  # reaches the drop point and raises
            self.send_error_json(code, fault.get("message") or f"injected {code}",
                                 fault.get("reason"), hdrs)
            return True
        return False

    def authorized(self):
        cfg = self.server.config
        if not cfg.get("require_auth", True):
            return True
        # A resumable session URI is its own credential: GCS does not ask for auth there.
        if self.url_path.startswith(("/upload/", "/resumable/upload/")) and "upload_id" in self.query \
                and self.command in ("PUT", "DELETE"):
            return True
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return False
        tokens = cfg.get("tokens")
        return tokens is None or auth[7:].strip() in tokens

    def send_error_json(self, code, message, reason=None, headers=()):
        hdrs = list(headers)
        if code == 401:
            hdrs.append(("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"'))
        self.send_json(code, error_doc(code, message, reason), hdrs)

    def wait_recorded(self):
        """A request is recorded just after its answer is written: let those finish (a client
        may already hold the answer), but not hang on one that stalls."""
        srv = self.server
        deadline = time.time() + 2
        while time.time() < deadline:
            with srv.lock:
                if srv.in_flight <= 0:
                    return
            time.sleep(0.005)

    def control(self, method):
        srv = self.server
        if method == "POST" and self.url_path == "/_fake/config":
            return self.send_json(200, srv.configure(self.read_json()))
        if method == "GET" and self.url_path == "/_fake/config":
            return self.send_json(200, srv.snapshot())
        if method == "GET" and self.url_path == "/_fake/requests":
            self.wait_recorded()
            with srv.lock:
                recs = list(srv.records)
            return self.send_json(200, {"requests": recs})
        if method == "POST" and self.url_path == "/_fake/reset":
            # the same for a reset: a request answered before it must not be recorded after it
            self.wait_recorded()
            srv.reset(bool(self.read_json().get("data")))
            return self.send_json(200, {"ok": True})
        self.send_json(404, error_doc(404, "unknown control endpoint"))

    # --- routing ----------------------------------------------------------------------------

    def route(self, method):
        seg = [unquote(s) for s in self.url_path.split("/")[1:]]
        if seg[:2] == ["resumable", "upload"]:
            seg = seg[1:]  # apitools' resumable upload path; GCS serves it as /upload/...
        q, store = self.query, self.server.store
        if seg[:3] == ["upload", "storage", "v1"] and len(seg) == 6 and seg[3] == "b" \
                and seg[5] == "o":
            return self.upload(method, seg[4])
        if seg[:3] == ["download", "storage", "v1"] and len(seg) == 7 and method in ("GET",
                                                                                  "HEAD"):
            return self.download(store.get(seg[4], seg[6], q, read=True))
        if seg[:2] != ["storage", "v1"] or len(seg) < 3 or seg[2] != "b":
            raise GcsError(404, "notFound", f"Not Found: {self.url_path}")
        rest = seg[3:]
        if not rest:
            if method == "GET":
                return self.send_json(200, {"kind": "storage#buckets",
                                            "items": store.list_buckets(q.get("prefix", ""))})
            if method == "POST":
                return self.send_json(200, store.insert_bucket(self.read_json(),
                                                               q.get("project")))
        elif len(rest) == 1:
            if method == "GET":
                return self.send_json(200, store.public_bucket(store.bucket(rest[0])))
            if method == "DELETE":
                store.delete_bucket(rest[0])
                return self.send_head(204)
        elif len(rest) == 2 and rest[1] == "o":
            if method == "GET":
                return self.list_objects(rest[0])
        elif len(rest) == 3 and rest[1] == "o":
            return self.object_call(method, rest[0], rest[2])
        elif len(rest) == 4 and rest[1] == "o" and rest[3] == "compose" and method == "POST":
            return self.compose(rest[0], rest[2])
        elif len(rest) == 8 and rest[1] == "o" and rest[3] in ("rewriteTo", "copyTo") \
                and rest[4] == "b" and rest[6] == "o" and method == "POST":
            return self.rewrite(rest[0], rest[2], rest[5], rest[7], rest[3] == "rewriteTo")
        raise GcsError(404, "notFound", f"Not Found: {method} {self.url_path}")

    def public(self, obj):
        """An object resource as the API shows it (links filled in, private keys dropped)."""
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        b, n = quote(obj["bucket"], safe=""), quote(obj["name"], safe="")
        base = self.base_url()
        out["id"] = f"{obj['bucket']}/{obj['name']}/{obj['generation']}"
        out["selfLink"] = f"{base}/storage/v1/b/{b}/o/{n}"
        out["mediaLink"] = (f"{base}/download/storage/v1/b/{b}/o/{n}"
                            f"?generation={obj['generation']}&alt=media")
        return out

    # --- objects ----------------------------------------------------------------------------

    def object_call(self, method, bucket, name):
        store, q = self.server.store, self.query
        if method in ("GET", "HEAD"):
            obj = store.get(bucket, name, q, read=True)
            if q.get("alt") == "media":
                return self.download(obj)
            return self.send_json(200, self.public(obj))
        if method in ("PATCH", "PUT"):
            return self.send_json(200, self.public(store.patch(bucket, name,
                                                               self.read_json(), q)))
        if method == "DELETE":
            store.delete(bucket, name, q)
            return self.send_head(204)
        raise GcsError(405, "methodNotAllowed", f"{method} not allowed here")

    def list_objects(self, bucket):
        items, prefixes, token = self.server.store.list(bucket, self.query)
        doc = {"kind": "storage#objects"}
        if items:
            doc["items"] = [self.public(o) for o in items]
        if prefixes:
            doc["prefixes"] = prefixes
        if token:
            doc["nextPageToken"] = token
        self.send_json(200, doc)

    def download(self, obj):
        size = int(obj["size"])
        start, end = 0, size - 1
        status = 200
        hdrs = [("Content-Type", obj.get("contentType", "application/octet-stream")),
                ("x-goog-hash", f"crc32c={obj['crc32c']}"
                 + (f",md5={obj['md5Hash']}" if obj.get("md5Hash") else "")),
                ("x-goog-generation", obj["generation"]),
                ("x-goog-metageneration", obj["metageneration"]),
                ("x-goog-stored-content-length", obj["size"]),
                ("x-goog-stored-content-encoding", obj.get("contentEncoding", "identity")),
                ("ETag", f'"{obj["etag"]}"'), ("Accept-Ranges", "bytes")]
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[6:].strip().partition("-")
            if first == "":
                start = max(0, size - int(last))
            else:
                start = int(first)
                if last:
                    end = min(int(last), size - 1)
            if start >= size or start > end:
                hdrs.append(("Content-Range", f"bytes */{size}"))
                raise_416 = error_doc(416, "The requested range cannot be satisfied.",
                                      "requestedRangeNotSatisfiable")
                return self.send_json(416, raise_416, hdrs[1:])
            status = 206
            hdrs.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        length = end - start + 1 if size else 0
        self.send_head(status, hdrs, length)
        if self.command == "HEAD" or length == 0:
            return

        def chunks():
            with open(obj["_path"], "rb") as f:
                f.seek(start)
                left = length
                while left > 0:
                    data = f.read(min(left, 256 * 1024))
                    if not data:
                        raise Dropped("object file shorter than its size")
                    left -= len(data)
                    yield data

        self.write_body(chunks())

    def upload(self, method, bucket):
        store, q = self.server.store, self.query
        if "upload_id" in q:
            if method == "PUT":
                granularity = int(self.server.config.get("resumable_granularity") or 0)
                return gcs_upload.put_chunk(self, store, q, granularity)
            if method == "DELETE":
                store.cancel_session(q["upload_id"])
                return self.send_bytes(499, b"", None)
        if method != "POST":
            raise GcsError(405, "methodNotAllowed", f"{method} not allowed on uploads")
        kind = q.get("uploadType", "media")
        if kind == "media":
            return self.send_json(200, self.public(gcs_upload.media(self, store, bucket, q)))
        if kind == "multipart":
            return self.send_json(200, self.public(gcs_upload.multipart(self, store, bucket, q)))
        if kind == "resumable":
            s, location = gcs_upload.start_resumable(self, store, bucket, q)
            return self.send_bytes(200, b"", None, [("Location", location),
                                                    ("X-GUploader-UploadID", s.id)])
        raise GcsError(400, "invalid", f"Invalid upload type: {kind}")

    def compose(self, bucket, dest):
        store = self.server.store
        doc = self.read_json()
        sources = doc.get("sourceObjects") or []
        if not sources or len(sources) > 32:
            raise GcsError(400, "invalid", "compose takes 1 to 32 source objects")
        objs = []
        for src in sources:
            pre = {k: str(v) for k, v in (src.get("objectPreconditions") or {}).items()}
            if src.get("generation"):
                pre["generation"] = str(src["generation"])
            objs.append(store.get(bucket, src["name"], pre))
        blob, crc, _ = store.copy_blob([(o["_path"], 0, None) for o in objs])
        count = sum(int(o.get("componentCount", 1)) for o in objs)
        meta = dict(doc.get("destination") or {})
        meta.setdefault("contentType", objs[0].get("contentType"))
        # Composite objects carry a crc32c but no md5Hash, as in GCS.
        obj = store.commit(bucket, dest, blob, meta, self.query, crc=crc, md5=None,
                           extra={"componentCount": count})
        self.send_json(200, self.public(obj))

    def rewrite(self, sbucket, sname, dbucket, dname, rewrite):
        store, q = self.server.store, self.query
        # ifSourceGenerationMatch etc. are the source's preconditions.
        src_q = {"if" + k[len("ifSource"):]: v for k, v in q.items() if k.startswith("ifSource")}
        if "sourceGeneration" in q:
            src_q["generation"] = q["sourceGeneration"]
        src = store.get(sbucket, sname, src_q)
        dest_q = {k: v for k, v in q.items() if k.startswith("if") and
                  not k.startswith("ifSource")}
        meta = self.read_json() or {}
        meta = {**{k: src.get(k) for k in ("contentType", "contentEncoding", "cacheControl",
                                           "contentDisposition", "contentLanguage", "metadata")
                   if src.get(k) is not None}, **meta}
        blob, crc, md5 = store.copy_blob([(src["_path"], 0, None)])
        obj = store.commit(dbucket, dname, blob, meta, dest_q, crc=crc,
                           md5=src.get("md5Hash") and md5)
        if not rewrite:
            return self.send_json(200, self.public(obj))
        self.send_json(200, {"kind": "storage#rewriteResponse",
                             "totalBytesRewritten": obj["size"], "objectSize": obj["size"],
                             "done": True, "resource": self.public(obj)})


def main(argv=None):
    args = parse_args("Fake Cloud Storage JSON API for tether's tests.", argv)
    server = GcsServer((args.host, args.port), args.data_dir)
    serve(server, args, "gcs-fake")


if __name__ == "__main__":
    main()
