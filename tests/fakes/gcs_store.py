"""State behind the Cloud Storage fake: buckets, live object versions and resumable upload
sessions. Object bytes live in files under the data directory (written as they arrive, never
held whole in memory); metadata lives in memory under one lock. Hashes are computed the way
Google reports them: crc32c as base64 of the big-endian 32-bit value, md5 as base64 digest."""
import base64
import hashlib
import os
import secrets
import shutil
import struct
import threading
import time
import uuid

try:  # python3-crcmod ships a C extension: ~400 MB/s
    from crcmod.predefined import mkCrcFun
    _crc32c = mkCrcFun("crc-32c")
except ImportError:  # pure Python fallback, only fit for small objects
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def _crc32c(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF

crc32c = _crc32c  # crc32c(data, crc=0) -> int, chainable over chunks
READ_CHUNK = 1024 * 1024
WRITABLE_FIELDS = ("contentType", "contentEncoding", "contentDisposition", "contentLanguage",
                   "cacheControl", "metadata", "customTime", "eventBasedHold",
                   "temporaryHold", "storageClass")


class GcsError(Exception):
    """An API error: HTTP status, Google reason and message."""

    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def crc32c_b64(value):
    return base64.b64encode(struct.pack(">I", value)).decode()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def file_hashes(path):
    """(crc32c int, md5 base64, size) of a file, read in chunks."""
    crc, md5, size = 0, hashlib.md5(), 0
    with open(path, "rb") as f:
        while True:
            data = f.read(READ_CHUNK)
            if not data:
                break
            crc = _crc32c(data, crc)
            md5.update(data)
            size += len(data)
    return crc, base64.b64encode(md5.digest()).decode(), size


def check_preconditions(obj, q, read=False):
    """Applies ifGenerationMatch/NotMatch and ifMetagenerationMatch/NotMatch (query dict) to
    the live object (None if absent). A failed Match is 412; a failed NotMatch is 304 on reads
    and 412 on writes."""
    gen = int(obj["generation"]) if obj else 0
    meta = int(obj["metageneration"]) if obj else None
    not_match_code = 304 if read else 412

    def failed(code, what):
        if code == 304:
            raise GcsError(304, "notModified", f"{what} not modified")
        raise GcsError(412, "conditionNotMet", f"At least one of the pre-conditions you "
                       f"specified did not hold. ({what})")

    if "ifGenerationMatch" in q and int(q["ifGenerationMatch"]) != gen:
        failed(412, "ifGenerationMatch")
    if "ifGenerationNotMatch" in q and int(q["ifGenerationNotMatch"]) == gen:
        failed(not_match_code, "ifGenerationNotMatch")
    if "ifMetagenerationMatch" in q and (meta is None or int(q["ifMetagenerationMatch"]) != meta):
        failed(412, "ifMetagenerationMatch")
    if "ifMetagenerationNotMatch" in q and meta is not None \
            and int(q["ifMetagenerationNotMatch"]) == meta:
        failed(not_match_code, "ifMetagenerationNotMatch")


class Session:
    """One resumable upload: the bytes stored so far sit in `path`."""

    def __init__(self, sid, bucket, name, metadata, query, path, total):
        self.id, self.bucket, self.name = sid, bucket, name
        self.metadata, self.query, self.path = metadata, query, path
        self.total = total          # int once known (header or a chunk's "/N"), else None
        self.size = 0               # bytes committed
        self.result = None          # the object resource once finalized
        self.lock = threading.Lock()  # one chunk at a time
        self.created = time.time()


class Store:
    def __init__(self, data_dir):
        self.dir = data_dir
        self.blobs = os.path.join(data_dir, "blobs")
        self.uploads = os.path.join(data_dir, "uploads")
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        with self.lock:
            for d in (self.blobs, self.uploads):
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
            self.buckets = {}   # name -> bucket resource
            self.objects = {}   # (bucket, name) -> object resource (+ "_path")
            self.sessions = {}  # upload id -> Session
            self.next_generation = int(time.time() * 1e6)

    def new_blob_path(self):
        return os.path.join(self.blobs, uuid.uuid4().hex)

    # --- buckets --------------------------------------------------------------------------

    def insert_bucket(self, doc, project):
        name = doc.get("name", "")
        if not name or len(name) < 3 or len(name) > 222 or name != name.lower():
            raise GcsError(400, "invalid", f"Invalid bucket name: '{name}'")
        with self.lock:
            if name in self.buckets:
                raise GcsError(409, "conflict", "Your previous request to create the named "
                               "bucket succeeded and you already own it.")
            now = rfc3339(time.time())
            b = {"kind": "storage#bucket", "id": name, "name": name,
                 "projectNumber": "123456789012", "metageneration": "1",
                 "location": doc.get("location", "US").upper(), "locationType": "multi-region",
                 "storageClass": doc.get("storageClass", "STANDARD"), "etag": "CAE=",
                 "timeCreated": now, "updated": now, "project": project}
            self.buckets[name] = b
            return self.public_bucket(b)

    def public_bucket(self, b):
        return {k: v for k, v in b.items() if k != "project"}

    def bucket(self, name):
        with self.lock:
            b = self.buckets.get(name)
        if b is None:
            raise GcsError(404, "notFound", "The specified bucket does not exist.")
        return b

    def list_buckets(self, prefix=""):
        with self.lock:
            return [self.public_bucket(b) for n, b in sorted(self.buckets.items())
                    if n.startswith(prefix)]

    def delete_bucket(self, name):
        with self.lock:
            self.bucket(name)
            if any(b == name for b, _ in self.objects):
                raise GcsError(409, "conflict", "The bucket you tried to delete is not empty.")
            del self.buckets[name]

    # --- objects --------------------------------------------------------------------------

    def get(self, bucket, name, q=None, read=False):
        """The live object resource (with its "_path"); 404 if absent. Applies preconditions
        and a `generation` selector."""
        self.bucket(bucket)
        with self.lock:
            obj = self.objects.get((bucket, name))
        q = q or {}
        if obj is None or ("generation" in q and q["generation"] != obj["generation"]):
            raise GcsError(404, "notFound", f"No such object: {bucket}/{name}")
        check_preconditions(obj, q, read)
        return obj

    def commit(self, bucket, name, blob_path, metadata, q, expect_hashes=None,
               extra=None, crc=None, md5=None):
        """Makes blob_path (moved into the store) the new live version of bucket/name.
        Checks preconditions against the current version and any client-sent crc32c/md5Hash
        (400 on mismatch, blob discarded)."""
        try:
            self.bucket(bucket)
            if not name:
                raise GcsError(400, "required", "Required object name")
            if crc is None:
                crc, md5, size = file_hashes(blob_path)
            else:
                size = os.path.getsize(blob_path)
            want = dict(expect_hashes or {})
            for field in ("crc32c", "md5Hash"):
                if metadata.get(field):
                    want.setdefault(field, metadata[field])
            got = {"crc32c": crc32c_b64(crc), "md5Hash": md5}
            for field, value in want.items():
                if value and got.get(field) and value != got[field]:
                    raise GcsError(400, "invalid", f"Provided {field} \"{value}\" doesn't match "
                                   f"calculated {field} \"{got[field]}\".")
            with self.lock:
                check_preconditions(self.objects.get((bucket, name)), q)
                old = self.objects.get((bucket, name))
                self.next_generation += 1
                gen = self.next_generation
                now = rfc3339(time.time())
                obj = {"kind": "storage#object", "name": name, "bucket": bucket,
                       "generation": str(gen), "metageneration": "1",
                       "contentType": metadata.get("contentType")
                       or "application/octet-stream",
                       "storageClass": "STANDARD", "size": str(size),
                       "crc32c": got["crc32c"], "etag": base64.b64encode(
                           struct.pack(">Q", gen)).decode().rstrip("="),
                       "timeCreated": now, "updated": now, "timeStorageClassUpdated": now}
                if md5:
                    obj["md5Hash"] = md5
                for field in WRITABLE_FIELDS:
                    if metadata.get(field) is not None and field != "contentType":
                        obj[field] = metadata[field]
                obj.update(extra or {})
                obj["_path"] = blob_path
                self.objects[(bucket, name)] = obj
            if old:
                _unlink(old["_path"])
            return obj
        except BaseException:
            _unlink(blob_path)
            raise

    def patch(self, bucket, name, doc, q):
        with self.lock:
            obj = self.get(bucket, name, q)
            obj = dict(obj)
            for field, value in doc.items():
                if field not in WRITABLE_FIELDS:
                    continue  # read-only fields are ignored, as by GCS
                if field == "metadata" and value is not None:
                    merged = dict(obj.get("metadata") or {})
                    for k, v in value.items():
                        if v is None:
                            merged.pop(k, None)
                        else:
                            merged[k] = str(v)
                    obj["metadata"] = merged
                elif value is None:
                    obj.pop(field, None)
                else:
                    obj[field] = value
            obj["metageneration"] = str(int(obj["metageneration"]) + 1)
            obj["updated"] = rfc3339(time.time())
            self.objects[(bucket, name)] = obj
            return obj

    def delete(self, bucket, name, q):
        with self.lock:
            obj = self.get(bucket, name, q)
            del self.objects[(bucket, name)]
        _unlink(obj["_path"])

    def list(self, bucket, q):
        """(items, prefixes, nextPageToken) as objects.list pages them: names sorted,
        maxResults counting items and prefixes, the page token being the last name given."""
        self.bucket(bucket)
        prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
        start, end = q.get("startOffset", ""), q.get("endOffset")
        after = base64.urlsafe_b64decode(q["pageToken"]).decode() if q.get("pageToken") else None
        limit = max(1, min(int(q.get("maxResults") or 1000), 1000))
        with self.lock:
            names = sorted(n for b, n in self.objects if b == bucket)
            objs = {n: self.objects[(bucket, n)] for n in names}
        items, prefixes, last = [], [], None
        for n in names:
            if not n.startswith(prefix) or n < start or (end is not None and n >= end):
                continue
            key = n
            if delim:
                cut = n.find(delim, len(prefix))
                if cut >= 0:
                    key = n[:cut + len(delim)]
            if after is not None and key <= after:
                continue
            if key != n and prefixes and prefixes[-1] == key:
                continue
            if len(items) + len(prefixes) == limit:
                return items, prefixes, base64.urlsafe_b64encode(last.encode()).decode()
            if key != n:
                prefixes.append(key)
            else:
                items.append(objs[n])
            last = key
        return items, prefixes, None

    def copy_blob(self, segments):
        """Concatenates file segments (path, start, length or None for "to the end") into a
        new blob: (path, crc32c int, md5 base64)."""
        path = self.new_blob_path()
        crc, md5 = 0, hashlib.md5()
        with open(path, "wb") as out:
            for src, start, length in segments:
                with open(src, "rb") as f:
                    f.seek(start)
                    left = length
                    while left is None or left > 0:
                        data = f.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
                        if not data:
                            break
                        if left is not None:
                            left -= len(data)
                        crc = _crc32c(data, crc)
                        md5.update(data)
                        out.write(data)
        return path, crc, base64.b64encode(md5.digest()).decode()

    # --- resumable sessions ---------------------------------------------------------------

    def start_session(self, bucket, name, metadata, q, total):
        self.bucket(bucket)
        if not name:
            raise GcsError(400, "required", "Required object name")
        with self.lock:
            # Preconditions are checked now and again at completion, as GCS does.
            check_preconditions(self.objects.get((bucket, name)), q)
            sid = secrets.token_urlsafe(24)
            path = os.path.join(self.uploads, sid)
            open(path, "wb").close()
            s = Session(sid, bucket, name, metadata, q, path, total)
            self.sessions[sid] = s
            return s

    def session(self, sid):
        with self.lock:
            s = self.sessions.get(sid)
        if s is None:
            raise GcsError(404, "notFound", "No such upload session")
        return s

    def cancel_session(self, sid):
        with self.lock:
            s = self.sessions.pop(sid, None)
        if s is None:
            raise GcsError(404, "notFound", "No such upload session")
        _unlink(s.path)

    def finish_session(self, s, expect_hashes):
        blob = self.new_blob_path()
        os.replace(s.path, blob)
        try:
            obj = self.commit(s.bucket, s.name, blob, s.metadata, s.query, expect_hashes)
        except GcsError:
            with self.lock:
                self.sessions.pop(s.id, None)
            raise
        s.result = obj
        return obj


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
