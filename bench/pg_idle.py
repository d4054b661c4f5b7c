#!/usr/bin/env python3
"""Opens N PostgreSQL client connections from one process (non-blocking sockets and selectors),
logs each one in (StartupMessage, trust) and waits for its ReadyForQuery, then keeps them all idle
until SIGTERM or SIGINT arrives. Prints "ready N <seconds>" on stdout once every connection
is idle, or "failed <reason>" and exits 1. Used by bench/pg.sh to measure a pooler's memory per
idle client; no dependencies beyond Python 3.

Usage: pg_idle.py SOCKET_PATH_OR_HOST:PORT USER DATABASE N [MAX_IN_FLIGHT]"""
import errno
import resource
import selectors
import signal
import socket
import struct
import sys
import time


def startup_packet(user, database):
    body = struct.pack("!I", 196608) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0"
        for k, v in (("user", user), ("database", database), ("application_name", "pg_idle")))
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def new_socket(target):
    if ":" in target and not target.startswith("/"):
        host, port = target.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = (host, int(port))
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = target
    s.setblocking(False)
    return s, addr


def main():
    target, user, database, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    in_flight_max = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 64:
        print(f"failed RLIMIT_NOFILE hard limit {hard} < {n + 64}", flush=True)
        return 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 64) if hard == resource.RLIM_INFINITY
                                                else hard, hard))
    pkt = startup_packet(user, database)
    sel = selectors.DefaultSelector()
    idle = []
    started = 0
    pending = {}  # socket -> received bytes
    t0 = time.monotonic()
    deadline = t0 + 300
    while len(idle) < n:
        while started < n and len(pending) < in_flight_max:
            s, addr = new_socket(target)
            try:
                s.connect(addr)
            except OSError as e:
                if e.errno == errno.EINPROGRESS:
                    pass  # tcp: connect in progress; writable when done
                elif e.errno in (errno.EAGAIN, errno.ECONNREFUSED):
                    s.close()  # unix socket backlog full: retry after the next poll
                    break
                else:
                    s.close()
                    print(f"failed connect: {e}", flush=True)
                    return 1
            pending[s] = b""
            sel.register(s, selectors.EVENT_WRITE)
            started += 1
        if time.monotonic() > deadline:
            print(f"failed only {len(idle)} of {n} idle after 300 s", flush=True)
            return 1
        for key, ev in sel.select(timeout=0.05):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    print(f"failed connect: {errno.errorcode.get(err, err)}", flush=True)
                    return 1
                s.send(pkt)  # tiny: fits in any socket buffer
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except OSError as e:
                print(f"failed recv: {e}", flush=True)
                return 1
            if not data:
                print("failed server closed a connection during login", flush=True)
                return 1
            buf = pending[s] + data
            while len(buf) >= 5:
                kind, length = buf[0:1], struct.unpack("!I", buf[1:5])[0]
                if len(buf) < 1 + length:
                    break
                msg, buf = buf[5:1 + length], buf[1 + length:]
                if kind == b"E":
                    print(f"failed login error: {msg!r}", flush=True)
                    return 1
                if kind == b"R" and struct.unpack("!I", msg[:4])[0] != 0:
                    print("failed server asked for a password (use trust)", flush=True)
                    return 1
                if kind == b"Z":
                    sel.unregister(s)
                    del pending[s]
                    idle.append(s)
                    buf = None
                    break
            if buf is not None:
                pending[s] = buf
    print(f"ready {len(idle)} {time.monotonic() - t0:.1f}", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        while True:
            signal.pause()  # hold every connection until SIGTERM / SIGINT
    except (SystemExit, KeyboardInterrupt):
        pass
    for s in idle:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
