#!/usr/bin/env bash
# Counts tetherd's system calls per pgbench transaction with `strace -c -f -p` attached after a
# warm-up, for the same modes as pg_instr.sh (-S, -S -C, TPC-B, each `-c 10 -j 2 -t N`) against
# one throwaway PostgreSQL 15 cluster on unix sockets; prints the calls per transaction by name.
# Not run in CI; needs root and strace.
#
# Usage: bench/pg_syscalls.sh [-t transactions per client (300)] [-m "S C B"]
# TETHERD=path uses that binary instead of building build/tetherd.
set -euo pipefail
cd "$(dirname "$0")/.."

TX=300 MODES="S C B"
while getopts "t:m:h" opt; do
  case $opt in
    t) TX=$OPTARG ;;
    m) MODES=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
command -v strace >/dev/null || { echo "needs strace" >&2; exit 1; }
. bench/lib.sh
bench_tetherd
bench_setup sys
mkdir -p "$tmp/tether"
PGPORT=$(port) TPORT=$(port) ADMIN=$(port)
bench_postgres 10
bench_tether_conf
declare -A ARGS=([S]="-S" [C]="-S -C" [B]="")
declare -A NAME=([S]="-S" [C]="-S -C" [B]="TPC-B")
pgb() { "$PG_BIN/pgbench" -n -h "$tmp/tether" -p "$TPORT" -U bench -c 10 -j 2 "$@" bench 2>&1 |
  awk '/^number of transactions actually processed/ {split($NF, a, "/"); print a[1]}'; }

"$TETHERD" -c "$tmp/tether.yaml" >"$tmp/tether/log" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do [ -S "$tmp/tether/.s.PGSQL.$TPORT" ] && break; sleep 0.1; done
pgb -S -t 20 >/dev/null # warm-up: the pool's servers log in
echo "$("$TETHERD" --version 2>&1 | head -1); -c 10 -j 2 -t $TX; system calls per transaction" >&2
for m in $MODES; do
  strace -c -f -p "$pid" -o "$tmp/strace.$m" 2>/dev/null &
  spid=$!
  sleep 1 # (attached)
  # shellcheck disable=SC2086
  n=$(pgb ${ARGS[$m]} -t "$TX")
  kill -INT "$spid"
  wait "$spid" 2>/dev/null || true
  awk -v n="$n" -v m="${NAME[$m]}" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; calls = $4; total += calls; c[name] = calls }
    END { printf "%-6s total %5.2f:", m, total / n; for (k in c) if (c[k] / n >= 0.01) printf " %s %.2f", k, c[k] / n; print "" }' \
    "$tmp/strace.$m"
done
