#!/usr/bin/env bash
# Measures tether's HTTP server against nginx in one run: wrk on a tiny JSON response over
# loopback, both single-process (tether's one loop vs worker_processes 1), and prints the ratio.
# Not run in CI. Usage: bench/http_server.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-50}
for p in wrk nginx; do command -v $p >/dev/null || apt-get install -y -qq wrk nginx-light >/dev/null; done
make -s all
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; sleep 0.3; rm -rf "$tmp"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TP=$(port); NP=$(port)

cat > "$tmp/tether.yaml" <<YAML
admin: {listen: ["tcp://127.0.0.1:$TP"]}
log: {level: warn}
YAML
build/tetherd -c "$tmp/tether.yaml" &

cat > "$tmp/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$NP;
    location = /healthz { default_type application/json; return 200 '{"status":"ok"}\n'; }
  }
}
NGINX
nginx -c "$tmp/nginx.conf" -p "$tmp" &
sleep 1

run() { # name url
  local out
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$2" 2>&1)
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-8s %12s req/s   p99 %s\n' "$1" "$rps" "$p99" >&2
  echo "$rps"
}
echo "wrk -t1 -c$CONNS -d${DUR}s, GET /healthz (16-byte JSON), keep-alive, loopback" >&2
t=$(run tether "http://127.0.0.1:$TP/healthz")
n=$(run nginx "http://127.0.0.1:$NP/healthz")
python3 -c "print(f'ratio tether/nginx: {float($t)/float($n):.2f}')"
