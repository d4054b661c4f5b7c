#!/usr/bin/env bash
# Measures tether's forwarding (the storage plugin, with token injection) against nginx
# proxy_pass to the same local upstream in one run: wrk on small JSON answers (requests/s, p99,
# the ratio), then 1 GiB streamed up and down through tether, through nginx and directly
# (throughput) with tetherd's peak RSS. The upstream is a third nginx serving canned JSON, and
# for the 1 GiB transfers bench/http_sink.py. The wrk part runs ROUNDS rounds (default 3),
# tether first in odd rounds and nginx first in even ones, printing every round and then the
# medians of req/s, p99 and of the rounds' ratios (on a shared machine one round's ratio moves
# by +-20 %), and each proxy process's CPU time per request (utime+stime over the wrk run,
# divided by the requests). Not run in CI; needs wrk and nginx (apt-get install wrk
# nginx-light).
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

# The upstream: a bucket listing (small JSON).
http_nginx_conf "$tmp/upstream.conf" "$UP" "$HTTP_LISTING"
# The peer: nginx proxy_pass to the same upstream, one worker like tether's one loop.
http_nginx_proxy "$tmp/proxy.conf" "$NP" "$UP"
nginx -c "$tmp/upstream.conf" -p "$tmp" &
nginx -c "$tmp/proxy.conf" -p "$tmp" &

http_tether_conf "$tmp/tether.yaml" "$TP" "$TA" "$UP"
BENCH_TOKEN=bench-token "$BUILD/tetherd" -c "$tmp/tether.yaml" &
TPID=$!
sleep 1

CLK_TCK=$(getconf CLK_TCK)
NGINX_WORKER=$(http_nginx_worker "$tmp/proxy.conf")
run() { # name url pid -> "req/s p99-in-ms cpu-us-per-request" on stdout, a line on stderr
  local out rps p99 n c0 c1 cpu
  c0=$(http_ticks "$3")
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$2" 2>&1)
  c1=$(http_ticks "$3")
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

# 1 GiB each way through tether, through nginx and directly, against bench/http_sink.py (which
# reads an upload to its last byte before it answers), with a second tetherd whose peak RSS is
# the transfers' alone.
SP=$(http_port); TP2=$(http_port); TA2=$(http_port); NP2=$(http_port)
python3 bench/http_sink.py "$SP" "$tmp/big.bin" &
http_nginx_proxy "$tmp/proxy2.conf" "$NP2" "$SP"
nginx -c "$tmp/proxy2.conf" -p "$tmp" &
http_tether_conf "$tmp/tether2.yaml" "$TP2" "$TA2" "$SP"
BENCH_TOKEN=bench-token "$BUILD/tetherd" -c "$tmp/tether2.yaml" &
TPID2=$!
sleep 1
transfer() { # port -> "download-MiB/s upload-MiB/s"
  local d u
  d=$(curl -sf -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$1/storage/v1/b/bench/o/big.bin")
  u=$(curl -sf -o /dev/null -w '%{speed_upload}' -X POST -H 'Content-Type: application/octet-stream' \
    -T "$tmp/big.bin" "http://127.0.0.1:$1/upload/storage/v1/b/bench/o?uploadType=media&name=x")
  python3 -c "print('%.0f %.0f' % ($d / 1048576, $u / 1048576))"
}
echo "1 GiB streamed (curl, loopback), MiB/s, two rounds:" >&2
for r in 1 2; do
  for x in "tether $TP2" "nginx $NP2" "direct $SP"; do
    set -- $x
    read -r down up < <(transfer "$2")
    printf '  %-7s download %6s   upload %6s\n' "$1" "$down" "$up"
  done
done
echo "tetherd peak RSS over the transfers: $(awk '/VmHWM/ {print $2, $3}' /proc/$TPID2/status)"
