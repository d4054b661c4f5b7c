#!/usr/bin/env bash
# Instructions tetherd spends per forwarded request (deterministic, unlike wall clock on a shared
# machine): tetherd runs under callgrind in front of a local nginx upstream serving the small
# JSON listing of bench/http.sh, and ab sends a fixed number of keep-alive requests twice (N1,
# then N2). The difference of the two runs' instruction totals divided by N2-N1 is the cost of
# one request, with startup, warm-up and shutdown cancelled out. Not run in CI; needs valgrind,
# nginx and ab (apt-get install valgrind nginx-light apache2-utils).
# Usage: [BUILD=build] bench/http_cost.sh [N1] [N2] [concurrency]   (default 500 2500 10)
# With KEEP=dir the callgrind.out files are kept there for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${1:-500}
N2=${2:-2500}
CONC=${3:-10}
for p in valgrind nginx ab; do
  command -v $p >/dev/null || { echo "bench/http_cost.sh needs $p (apt-get install valgrind nginx-light apache2-utils)" >&2; exit 1; }
done
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" "$BUILD/tetherd"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; sleep 0.3; rm -rf "$tmp"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port)
cat > "$tmp/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/upstream.pid;
error_log $tmp/upstream.err;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp;
  server {
    listen 127.0.0.1:$UP;
    keepalive_requests 100000;
    location = /storage/v1/b/bench/o { default_type application/json;
      return 200 '{"kind":"storage#objects","items":[{"name":"a","size":"1"}]}\n'; }
  }
}
NGINX
nginx -c "$tmp/upstream.conf" -p "$tmp" &
sleep 0.3

measure() { # requests -> instructions of the whole tetherd run
  local n=$1 tp ta
  tp=$(port); ta=$(port)
  cat > "$tmp/tether.yaml" <<YAML
admin: {listen: ["tcp://127.0.0.1:$ta"]}
http: {listen: ["tcp://127.0.0.1:$tp"], max_connections: 10000}
log: {level: warn}
credentials: {source: static, static_token_env: BENCH_TOKEN}
upstream: {max_host_connections: 0}
storage: {endpoint: "http://127.0.0.1:$UP"}
YAML
  BENCH_TOKEN=bench-token valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" \
    "$BUILD/tetherd" -c "$tmp/tether.yaml" 2>"$tmp/vg.$n" &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ta/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  ab -q -k -n "$n" -c "$CONC" "http://127.0.0.1:$tp/storage/v1/b/bench/o" >"$tmp/ab.$n" 2>&1
  if ! grep -q "^Failed requests: *0$" "$tmp/ab.$n" || grep -q "^Non-2xx" "$tmp/ab.$n"; then
    cat "$tmp/ab.$n" >&2; exit 1
  fi
  kill -TERM "$pid"; wait "$pid" || true
  awk '/^summary:|^totals:/ {print $2; exit}' "$tmp/cg.$n"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$tmp/cg.$n" "$KEEP/callgrind.out.$n"; fi
}
i1=$(measure "$N1")
i2=$(measure "$N2")
python3 -c "print(f'ab -k -c$CONC: {($i2-$i1)/($N2-$N1):,.0f} instructions per forwarded request (tetherd, callgrind; runs of $N1 and $N2 requests: {$i1:,} / {$i2:,})')"
