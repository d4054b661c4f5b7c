#!/usr/bin/env bash
# Measures tether's forwarding (the storage plugin, with token injection) against nginx
# proxy_pass to the same local upstream in one run: wrk on small JSON answers (requests/s, p99,
# the ratio), then 1 GiB streamed up and down through tether and directly (throughput) with
# tetherd's peak RSS. The upstream is a third nginx serving canned JSON and a 1 GiB file. The
# wrk part runs ROUNDS rounds (default 3), tether first in odd rounds and nginx first in even
# ones, printing every round and then the medians of req/s, p99 and of the rounds' ratios (on a
# shared machine one round's ratio moves by +-20 %), and each proxy process's CPU time per request
# (utime+stime over the wrk run, divided by the requests). Not run in CI; needs wrk and nginx
# (apt-get install wrk nginx-light).
# Usage: [BUILD=build] [ROUNDS=3] bench/http.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-50}
ROUNDS=${ROUNDS:-3}
for p in wrk nginx curl; do
  command -v $p >/dev/null || { echo "bench/http.sh needs $p (apt-get install wrk nginx-light curl)" >&2; exit 1; }
done
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" "$BUILD/tetherd"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; sleep 0.3; rm -rf "$tmp"' EXIT
. bench/http_lib.sh
UP=$(http_port); TP=$(http_port); TA=$(http_port); NP=$(http_port)
head -c 1073741824 /dev/zero > "$tmp/big.bin"

# The upstream: a bucket listing (small JSON), a 1 GiB object, and an upload sink.
http_nginx_conf "$tmp/upstream.conf" "$UP" "$HTTP_LISTING
    location = /storage/v1/b/bench/o/big.bin { alias $tmp/big.bin; }
    location /upload/ { default_type application/json; return 200 '{\"name\":\"up\"}\n'; }"
# The peer: nginx proxy_pass to the same upstream, one worker like tether's one loop.
http_nginx_proxy "$tmp/proxy.conf" "$NP" "$UP"
nginx -c "$tmp/upstream.conf" -p "$tmp" &
nginx -c "$tmp/proxy.conf" -p "$tmp" &

cat > "$tmp/tether.yaml" <<YAML
admin: {listen: ["tcp://127.0.0.1:$TA"]}
http: {listen: ["tcp://127.0.0.1:$TP"], max_connections: 10000}
log: {level: warn}
credentials: {source: static, static_token_env: BENCH_TOKEN}
upstream: {max_host_connections: 0}
storage: {endpoint: "http://127.0.0.1:$UP"}
YAML
BENCH_TOKEN=bench-token "$BUILD/tetherd" -c "$tmp/tether.yaml" &
TPID=$!
sleep 1

# CPU time (utime + stime, clock ticks) of a process so far
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
for _ in $(seq 50); do [ -s "$tmp/proxy.conf.pid" ] && break; sleep 0.1; done
NGINX_WORKER=$(pgrep -P "$(cat "$tmp/proxy.conf.pid")" | head -1)
run() { # name url pid -> "req/s p99-in-ms cpu-us-per-request" on stdout, a line on stderr
  local out rps p99 n c0 c1 cpu
  c0=$(ticks "$3")
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$2" 2>&1)
  c1=$(ticks "$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms$/,"",v); else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' <<<"$out")
  cpu=$(python3 -c "print('%.1f' % (($c1 - $c0) * 1e6 / $CLK_TCK / max($n, 1)))")
  printf '  %-8s %12s req/s   p99 %s ms   proxy CPU %s us/request\n' "$1" "$rps" "$p99" "$cpu" >&2
  echo "$rps $p99 $cpu"
}
echo "wrk -t1 -c$CONNS -d${DUR}s, GET /storage/v1/b/bench/o (small JSON) through a proxy, loopback, $ROUNDS rounds" >&2
results=()
for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  if [ $((r % 2)) = 1 ]; then
    t=$(run tether "http://127.0.0.1:$TP/storage/v1/b/bench/o" "$TPID")
    n=$(run nginx "http://127.0.0.1:$NP/storage/v1/b/bench/o" "$NGINX_WORKER")
  else
    n=$(run nginx "http://127.0.0.1:$NP/storage/v1/b/bench/o" "$NGINX_WORKER")
    t=$(run tether "http://127.0.0.1:$TP/storage/v1/b/bench/o" "$TPID")
  fi
  results+=("$t $n")
  python3 -c "print('  ratio tether/nginx: %.2f' % (${t%% *} / ${n%% *}))"
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
ratios = [r[0] / r[3] for r in rows]
each = " ".join("%.2f" % x for x in ratios)
print("median over %d rounds: tether %.0f req/s p99 %.2f ms, nginx %.0f req/s p99 %.2f ms, "
      "ratio %.2f (rounds: %s)" % (len(rows), med(0), med(1), med(3), med(4), statistics.median(ratios), each))
print("proxy CPU per request (utime+stime of the process, median; less disturbed by other load "
      "than req/s): tetherd %.1f us, nginx %.1f us" % (med(2), med(5)))'

speed() { # label curl-args...
  local label=$1; shift
  local bps
  bps=$(curl -s -o /dev/null -w '%{speed_download} %{speed_upload}' "$@" | awk '{print ($1>$2)?$1:$2}')
  python3 -c "print(f'{\"$label\":<28} {float($bps)/1048576:8.1f} MiB/s')"
}
echo "1 GiB streamed (curl, loopback):" >&2
speed "download via tether" "http://127.0.0.1:$TP/storage/v1/b/bench/o/big.bin"
speed "download direct" "http://127.0.0.1:$UP/storage/v1/b/bench/o/big.bin"
speed "upload via tether" -X POST -H 'Content-Type: application/octet-stream' -T "$tmp/big.bin" \
  "http://127.0.0.1:$TP/upload/storage/v1/b/bench/o?uploadType=media&name=x"
speed "upload direct" -X POST -H 'Content-Type: application/octet-stream' -T "$tmp/big.bin" \
  "http://127.0.0.1:$UP/upload/storage/v1/b/bench/o?uploadType=media&name=x"
echo "tetherd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$TPID/status)"
