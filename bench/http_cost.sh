#!/usr/bin/env bash
# Instructions each proxy spends per forwarded request (deterministic, unlike wall clock on a
# shared machine): tetherd, then nginx `proxy_pass` configured as in bench/http.sh (one process,
# upstream keep-alive, the bearer token set), each under callgrind with its cache simulator in
# front of the same local nginx upstream serving bench/http.sh's small JSON listing, while ab
# sends a fixed number of keep-alive requests twice (N1, then N2). The difference of the two
# runs' totals divided by N2-N1 is the cost of one request, with startup, warm-up and shutdown
# cancelled out: instructions (Ir), first-level instruction cache misses (I1mr) and data cache
# read and write misses (D1mr, D1mw), for each proxy and as tether/nginx ratios. The kernel's
# share (most of either proxy's CPU time) is not counted here; bench/http.sh measures it.
# Not run in CI; needs valgrind, nginx and ab (apt-get install valgrind nginx-light apache2-utils).
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
. bench/http_lib.sh
UP=$(http_port)
http_nginx_conf "$tmp/upstream.conf" "$UP" "$HTTP_LISTING"
nginx -c "$tmp/upstream.conf" -p "$tmp" &
sleep 0.3

# The peer: nginx proxy_pass as in bench/http.sh, in the foreground as one process for valgrind.
NP=$(http_port)
http_nginx_proxy "$tmp/proxy.conf" "$NP" "$UP" "master_process off;"

# the callgrind totals "Ir I1mr D1mr D1mw" of a finished run
totals() { awk '/^events:/ {for (i = 2; i <= NF; i++) col[$i] = i - 1}
  /^summary:|^totals:/ {print $(col["Ir"]+1), $(col["I1mr"]+1), $(col["D1mr"]+1), $(col["D1mw"]+1); exit}' "$1"; }

load() { # url requests file
  ab -q -k -n "$2" -c "$CONC" "$1" >"$3" 2>&1
  if ! grep -q "^Failed requests: *0$" "$3" || grep -q "^Non-2xx" "$3"; then
    cat "$3" >&2; exit 1
  fi
}

measure_tether() { # requests -> the callgrind totals of the whole tetherd run
  local n=$1 tp ta
  tp=$(http_port); ta=$(http_port)
  http_tether_conf "$tmp/tether.yaml" "$tp" "$ta" "$UP"
  BENCH_TOKEN=bench-token valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$tmp/cg.tether.$n" \
    "$BUILD/tetherd" -c "$tmp/tether.yaml" 2>"$tmp/vg.tether.$n" &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ta/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  load "http://127.0.0.1:$tp/storage/v1/b/bench/o" "$n" "$tmp/ab.tether.$n"
  kill -TERM "$pid"; wait "$pid" || true
  totals "$tmp/cg.tether.$n"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$tmp/cg.tether.$n" "$KEEP/callgrind.out.tether.$n"; fi
}

measure_nginx() { # requests -> the callgrind totals of the whole nginx run
  local n=$1
  valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$tmp/cg.nginx.$n" \
    nginx -c "$tmp/proxy.conf" -p "$tmp" 2>"$tmp/vg.nginx.$n" &
  local pid=$!
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$NP/storage/v1/b/bench/o" 2>/dev/null && break; sleep 0.2; done
  load "http://127.0.0.1:$NP/storage/v1/b/bench/o" "$n" "$tmp/ab.nginx.$n"
  kill -QUIT "$pid"; wait "$pid" || true # (QUIT: a graceful exit, so callgrind writes its file)
  totals "$tmp/cg.nginx.$n"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$tmp/cg.nginx.$n" "$KEEP/callgrind.out.nginx.$n"; fi
}

t1=$(measure_tether "$N1"); t2=$(measure_tether "$N2")
n1=$(measure_nginx "$N1"); n2=$(measure_nginx "$N2")
python3 - "$N1" "$N2" "$CONC" "$t1" "$t2" "$n1" "$n2" <<'PY'
import sys
n1, n2, conc = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t1, t2, g1, g2 = ([int(x) for x in a.split()] for a in sys.argv[4:8])
per = lambda a, b: [(y - x) / (n2 - n1) for x, y in zip(a, b)]
t, g = per(t1, t2), per(g1, g2)
print(f"ab -k -c{conc}, runs of {n1} and {n2} requests, per forwarded request (callgrind, user space only):")
print(f"{'':8} {'Ir':>9} {'I1mr':>7} {'D1mr':>7} {'D1mw':>7}")
for name, v in (("tetherd", t), ("nginx", g)):
    print(f"{name:8} {v[0]:9,.0f} {v[1]:7,.0f} {v[2]:7,.0f} {v[3]:7,.0f}")
print(f"{'ratio':8} " + " ".join(f"{a / b if b else float('nan'):{w}.2f}" for a, b, w in zip(t, g, (9, 7, 7, 7))))
print(f"ab -k -c{conc}: {t[0]:,.0f} instructions per forwarded request (tetherd, callgrind; runs of {n1} and {n2} requests: {t1[0]:,} / {t2[0]:,})")
PY
