"""Object uploads for the Cloud Storage fake: uploadType=media, multipart (multipart/related,
spooled to disk and split there) and resumable sessions (initiation, chunks with Content-Range,
status queries, cancellation). Request bodies go to files as they arrive; nothing here holds a
whole object in memory."""
import base64
import hashlib
import json
import os
import re

from fake_http import Dropped
from gcs_store import GcsError, crc32c

_RANGE = re.compile(r"^bytes (?:(\*)|(\d+)-(\d+|\*))/(\d+|\*)$")


def _stream_to(h, path, crc=0, md5=None, mode="wb", skip=0):
    """Copies the request body into path (skipping its first `skip` bytes), updating the
    crc32c and md5 if given. Returns (bytes written, crc, md5, error) where error is the
    Dropped/ConnectionError that cut the body short, or None."""
    written = 0
    with open(path, mode) as out:
        try:
            while True:
                data = h.body.read()
                if not data:
                    break
                if skip:
                    cut = min(skip, len(data))
                    data, skip = data[cut:], skip - cut
                if not data:
                    continue
                out.write(data)
                written += len(data)
                crc = crc32c(data, crc)
                if md5 is not None:
                    md5.update(data)
        except (Dropped, ConnectionError, OSError) as e:
            return written, crc, md5, e
    return written, crc, md5, None


def parse_goog_hash(header):
    """x-goog-hash: crc32c=...,md5=... -> {"crc32c": ..., "md5Hash": ...}."""
    out = {}
    for part in (header or "").split(","):
        k, _, v = part.strip().partition("=")
        if k == "crc32c":
            out["crc32c"] = v
        elif k == "md5":
            out["md5Hash"] = v
    return out


def media(h, store, bucket, q):
    """uploadType=media: the body is the object."""
    name = q.get("name")
    if not name:
        raise GcsError(400, "required", "Required parameter: name")
    path = store.new_blob_path()
    n, crc, md5, err = _stream_to(h, path, md5=hashlib.md5())
    if err:
        os.unlink(path)
        raise err
    meta = {"contentType": h.headers.get("Content-Type")}
    return store.commit(bucket, name, path, meta, q, parse_goog_hash(h.headers.get("x-goog-hash")),
                        crc=crc, md5=base64.b64encode(md5.digest()).decode())


def multipart(h, store, bucket, q):
    """uploadType=multipart: two parts, JSON metadata then the media. The body is spooled to
    a file; the media part is then copied out of it into the object's blob."""
    # Python clients (gcloud's apitools) quote the boundary with ' and break lines with a bare
    # LF; Cloud Storage takes both, so the fake does too.
    m = re.search(r'boundary=(?:"([^"]+)"|\'([^\']+)\'|([^";\s]+))', h.headers.get("Content-Type", ""))
    if not m:
        raise GcsError(400, "invalid", "multipart upload without a boundary")
    boundary = next(g for g in m.groups() if g).encode()
    spool = store.new_blob_path() + ".spool"
    try:
        n, _, _, err = _stream_to(h, spool)
        if err:
            raise err
        with open(spool, "rb") as f:
            head = f.read(min(n, 1024 * 1024))
            f.seek(max(0, n - 4096))
            tail_start = f.tell()
            tail = f.read()
        delim = b"--" + boundary
        first = head.find(delim)
        eol = b"\r\n" if head[first + len(delim):first + len(delim) + 2] == b"\r\n" else b"\n"
        second = head.find(eol + delim, first + len(delim))
        if first < 0 or second < 0:
            raise GcsError(400, "invalid", "malformed multipart body")
        meta_part = head[first + len(delim):second]
        _, _, meta_json = meta_part.partition(eol + eol)
        try:
            metadata = json.loads(meta_json or b"{}")
        except ValueError:
            raise GcsError(400, "parseError", "Parse Error: multipart metadata is not JSON")
        media_headers_at = second + len(eol) + len(delim)
        body_at = head.find(eol + eol, media_headers_at)
        media_headers = head[media_headers_at:body_at].decode("latin-1")
        end = tail.rfind(eol + delim + b"--")
        if body_at < 0 or end < 0:
            raise GcsError(400, "invalid", "malformed multipart body (no closing boundary)")
        start, stop = body_at + 2 * len(eol), tail_start + end
        if not metadata.get("contentType"):
            ct = re.search(r"(?im)^content-type:\s*(.+?)\s*$", media_headers)
            metadata["contentType"] = ct.group(1) if ct else None
        name = q.get("name") or metadata.get("name")
        blob, crc, md5 = store.copy_blob([(spool, start, stop - start)])
    finally:
        if os.path.exists(spool):
            os.unlink(spool)
    return store.commit(bucket, name, blob, metadata, q,
                        parse_goog_hash(h.headers.get("x-goog-hash")), crc=crc, md5=md5)


def start_resumable(h, store, bucket, q):
    """POST uploadType=resumable: opens a session, answers 200 with Location."""
    doc = h.read_json()
    name = q.get("name") or doc.get("name")
    total = h.headers.get("X-Upload-Content-Length")
    if doc.get("contentType") is None and h.headers.get("X-Upload-Content-Type"):
        doc["contentType"] = h.headers["X-Upload-Content-Type"]
    query = {k: v for k, v in q.items() if k.startswith("if")}
    s = store.start_session(bucket, name, doc, query, int(total) if total else None)
    location = (f"{h.base_url()}/upload/storage/v1/b/{bucket}/o?uploadType=resumable"
                f"&name={_quote(name)}&upload_id={s.id}")
    return s, location


def _quote(name):
    from urllib.parse import quote
    return quote(name, safe="")


def _incomplete(h, s):
    hdrs = [("X-GUploader-UploadID", s.id)]
    if s.size:
        hdrs.append(("Range", f"bytes=0-{s.size - 1}"))
    h.send_bytes(308, b"", None, hdrs)


def put_chunk(h, store, q, granularity=0):
    """PUT to a session URI: a chunk, or a status query with an empty body. Answers 308 with
    the committed range while incomplete and 200 with the object once the last byte is in.
    Bytes the session already holds are skipped; a body cut short keeps what arrived (rounded
    down to `granularity` when set), as GCS may keep less than was sent."""
    s = store.session(q.get("upload_id", ""))
    with s.lock:
        if s.result is not None:
            h.send_json(200, h.public(s.result))
            return
        cr = h.headers.get("Content-Range", "").strip()
        m = _RANGE.match(cr) if cr else None
        if cr and not m:
            raise GcsError(400, "invalid", f"Failed to parse Content-Range header: {cr}")
        total = m.group(4) if m else "*"
        if total != "*":
            if s.total is not None and int(total) != s.total:
                raise GcsError(400, "invalid", f"total size {total} differs from the "
                               f"session's {s.total}")
            s.total = int(total)
        if m is None or m.group(1):  # status query: bytes */T or bytes */*
            h.finish_body()
            if s.total is not None and s.size == s.total:
                _finish(h, store, s)
            else:
                _incomplete(h, s)
            return
        first = int(m.group(2))
        last = None if m.group(3) == "*" else int(m.group(3))
        if first > s.size:
            raise GcsError(400, "invalid", f"Invalid request: chunk starts at {first} but only "
                           f"{s.size} bytes were received")
        if last is not None and s.total is not None and last >= s.total:
            raise GcsError(400, "invalid", f"last byte {last} beyond total {s.total}")
        n, _, _, err = _stream_to(h, s.path, mode="ab", skip=s.size - first)
        size = s.size + n
        expected = None if last is None else last + 1
        final = (s.total is not None and size >= s.total) or \
            (err is None and last is None and total == "*")
        if err is None and expected is not None and size != expected:
            _truncate(s.path, s.size)
            raise GcsError(400, "invalid", f"Content-Range says bytes {first}-{last} but the "
                           f"body ended at {size - 1}")
        if (err is not None or not final) and granularity:
            size = max(size - size % granularity, s.size)
        if size != s.size + n:
            _truncate(s.path, size)
        s.size = size
        if err is not None:
            raise err
        if final:
            if s.total is None:
                s.total = s.size
            if s.size != s.total:
                raise GcsError(400, "invalid", f"upload has {s.size} bytes, total says {s.total}")
            _finish(h, store, s)
        else:
            _incomplete(h, s)


def _finish(h, store, s):
    obj = store.finish_session(s, parse_goog_hash(h.headers.get("x-goog-hash")))
    h.send_json(200, h.public(obj))


def _truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)
