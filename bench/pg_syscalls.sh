#!/usr/bin/env bash
# Counts each pooler's system calls per pgbench transaction with `strace -c -f -p` attached after
# a warm-up: PgBouncer (transaction mode, pool 20) and tetherd (transaction mode, pool_size 20)
# in turn in front of one throwaway PostgreSQL 15 cluster on unix sockets, for the modes of
# pg_instr.sh (-S, -S -C, TPC-B, -M prepared -S, -M extended -S; each `-c 10 -j 2 -t N`). Prints the calls per
# transaction by name and a table of the totals. Not run in CI; needs root and strace.
#
# Usage: bench/pg_syscalls.sh [-t transactions per client (300)] [-m "S C B P E"]
# TETHERD=path uses that binary instead of building build/tetherd.
set -euo pipefail
cd "$(dirname "$0")/.."

TX=300 MODES="S C B P E"
while getopts "t:m:h" opt; do
  case $opt in
    t) TX=$OPTARG ;;
    m) MODES=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for t in strace pgbouncer; do command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }; done
. bench/lib.sh
bench_tetherd
bench_setup sys
mkdir -p "$tmp/tether"
PGPORT=$(port) PGBPORT=$(port) TPORT=$(port) ADMIN=$(port)
bench_postgres 10
bench_pgbouncer_conf
bench_tether_conf
declare -A SOCKDIR=([pgbouncer]="$tmp/pgb" [tether]="$tmp/tether")
declare -A SOCKPORT=([pgbouncer]=$PGBPORT [tether]=$TPORT)
declare -A ARGS=([S]="-S" [C]="-S -C" [B]="" [P]="-M prepared -S" [E]="-M extended -S")
declare -A NAME=([S]="-S" [C]="-S -C" [B]="TPC-B" [P]="-M prepared -S" [E]="-M extended -S")
declare -A TOTAL # TOTAL[mode,target] = system calls per transaction

pgb() { # target args...: pgbench, prints the transactions processed
  local target=$1; shift
  "$PG_BIN/pgbench" -n -h "${SOCKDIR[$target]}" -p "${SOCKPORT[$target]}" -U bench -c 10 -j 2 "$@" bench 2>&1 |
    awk '/^number of transactions actually processed/ {split($NF, a, "/"); print a[1]}'
}

echo "$("$TETHERD" --version 2>&1 | head -1); $(pgbouncer --version | head -1); -c 10 -j 2 -t $TX" >&2
for target in pgbouncer tether; do
  if [ "$target" = pgbouncer ]; then
    setpriv --reuid=postgres --regid=postgres --clear-groups pgbouncer "$tmp/pgb/pgbouncer.ini" >/dev/null 2>&1 &
  else
    "$TETHERD" -c "$tmp/tether.yaml" >"$tmp/tether/log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do [ -S "${SOCKDIR[$target]}/.s.PGSQL.${SOCKPORT[$target]}" ] && break; sleep 0.1; done
  pgb "$target" -S -t 20 >/dev/null # warm-up: the pool's servers log in
  for m in $MODES; do
    strace -c -f -p "$pid" -o "$tmp/strace.$target.$m" 2>/dev/null &
    spid=$!
    sleep 1 # (attached)
    # shellcheck disable=SC2086
    n=$(pgb "$target" ${ARGS[$m]} -t "$TX" || true)
    kill -INT "$spid"
    wait "$spid" 2>/dev/null || true
    if [ "${n:-0}" != $((10 * TX)) ]; then
      TOTAL[$m,$target]="—"
      printf '%-15s %-10s failed\n' "${NAME[$m]}" "$target" >&2
      continue
    fi
    TOTAL[$m,$target]=$(awk -v n="$n" -v m="${NAME[$m]}" -v t="$target" '
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; calls = $4; total += calls; c[name] = calls }
      END { line = sprintf("%-15s %-10s %5.2f:", m, t, total / n)
            for (k in c) if (c[k] / n >= 0.01) line = line sprintf(" %s %.2f", k, c[k] / n)
            print line > "/dev/stderr"; printf "%.2f", total / n }' "$tmp/strace.$target.$m")
  done
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
done

echo
echo "system calls per transaction (strace -c; lower is better)"
printf '| %-16s | %10s | %10s |\n' pgbench pgbouncer tether
printf '|%s|%s|%s|\n' ------------------ ------------ ------------
for m in $MODES; do
  printf '| %-16s | %10s | %10s |\n' "${NAME[$m]}" "${TOTAL[$m,pgbouncer]}" "${TOTAL[$m,tether]}"
done
