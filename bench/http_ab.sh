#!/usr/bin/env bash
# Two tetherd builds and nginx proxy_pass in one run, to tell whether a change moved the
# forwarder's cost: the same local nginx upstream and small JSON answer as bench/http.sh, wrk
# -t1 -c50 against each in turn, the order rotated every round (new, nginx, old; nginx, old,
# new; old, new, nginx), every round printed, then per contestant the median req/s and the
# median CPU time of the proxy process per request (utime+stime over the wrk run). A change
# smaller than a few percent stays inside the rounds' noise on a shared 2-core machine; the
# CPU medians move less than req/s. Not run in CI; needs wrk and nginx.
# Usage: [ROUNDS=6] bench/http_ab.sh OLD_TETHERD [NEW_TETHERD (default build/tetherd)] [seconds]
#   e.g. git worktree add /tmp/old HEAD~1 && make -C /tmp/old build/tetherd &&
#        bench/http_ab.sh /tmp/old/build/tetherd
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/http_ab.sh OLD_TETHERD [NEW_TETHERD] [seconds]}
NEW=${2:-build/tetherd}
DUR=${3:-8}
ROUNDS=${ROUNDS:-6}
for p in wrk nginx; do
  command -v $p >/dev/null || { echo "bench/http_ab.sh needs $p (apt-get install wrk nginx-light)" >&2; exit 1; }
done
[ "$NEW" != build/tetherd ] || make -s build/tetherd
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; sleep 0.3; rm -rf "$tmp"' EXIT
. bench/http_lib.sh
UP=$(http_port); NP=$(http_port)
http_nginx_conf "$tmp/upstream.conf" "$UP" "$HTTP_LISTING"
http_nginx_proxy "$tmp/proxy.conf" "$NP" "$UP"
nginx -c "$tmp/upstream.conf" -p "$tmp" &
nginx -c "$tmp/proxy.conf" -p "$tmp" &
declare -A PORT PID
for v in old new; do
  PORT[$v]=$(http_port); A=$(http_port)
  http_tether_conf "$tmp/$v.yaml" "${PORT[$v]}" "$A" "$UP"
done
BENCH_TOKEN=bench-token "$OLD" -c "$tmp/old.yaml" & PID[old]=$!
BENCH_TOKEN=bench-token "$NEW" -c "$tmp/new.yaml" & PID[new]=$!
sleep 1
PID[nginx]=$(http_nginx_worker "$tmp/proxy.conf"); PORT[nginx]=$NP
run() {
  local c0 c1 out n rps
  c0=$(http_ticks "${PID[$1]}")
  out=$(wrk -t1 -c50 -d${DUR}s "http://127.0.0.1:${PORT[$1]}/storage/v1/b/bench/o" 2>&1)
  c1=$(http_ticks "${PID[$1]}")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); n=$(awk '/requests in/ {print $1}' <<<"$out")
  python3 -c "print('$1 %.0f %.2f' % ($rps, ($c1-$c0)*1e6/$(getconf CLK_TCK)/$n))"
}
echo "wrk -t1 -c50 -d${DUR}s, $ROUNDS rounds; per round: contestant req/s CPU-us/request" >&2
for r in $(seq $ROUNDS); do
  if [ $((r%3)) = 0 ]; then order="old new nginx"; elif [ $((r%3)) = 1 ]; then order="new nginx old"; else order="nginx old new"; fi
  for v in $order; do run $v; done
done | tee $tmp/res | sed 's/^/  /'
python3 - "$tmp/res" <<'PY'
import sys, statistics as st
rows=[l.split() for l in open(sys.argv[1])]
for v in ("old","new","nginx"):
    rps=[float(r[1]) for r in rows if r[0]==v]; cpu=[float(r[2]) for r in rows if r[0]==v]
    print(f"{v:6} median {st.median(rps):8.0f} req/s  CPU {st.median(cpu):5.1f} us/req")
PY
