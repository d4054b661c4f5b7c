#!/usr/bin/env bash
# Counts the user-space instructions each pooler spends per transaction, which unlike tps or CPU
# time does not move with other load on the machine: PgBouncer (transaction mode, pool 20) and
# tetherd (transaction mode, pool_size 20) each run under valgrind's callgrind in front of one
# throwaway PostgreSQL 15 cluster, on unix sockets; the instructions of a run with pgbench
# less those of a run without (same start, warm-up, shutdown) are divided by the transactions
# pgbench reports. Modes: -S, -S -C (a connection per transaction), TPC-B, -M prepared -S
# (PgBouncer 1.18 fails it in transaction mode: "—") and -M extended -S, each `-c 10 -j 2 -t N`.
# Prints a table with the ratio tether/pgbouncer (lower is better) and keeps tether's profiles
# for callgrind_annotate with -k DIR (tether.base.callgrind is the run without pgbench, to
# subtract). Kernel time (system calls) is not in these counts. Not run in CI; needs root,
# valgrind, takes a few minutes.
#
# Usage: bench/pg_instr.sh [-t transactions per client (300)] [-s scale (10)] [-k keep dir]
#        [-m "S C B"] (modes: S select-only, C select-only -C, B TPC-B, P -M prepared -S,
#        E -M extended -S)
# TETHERD=path uses that binary instead of building build/tetherd.
set -euo pipefail
cd "$(dirname "$0")/.."

TX=300 SCALE=10 KEEP="" MODES="S C B"
while getopts "t:s:k:m:h" opt; do
  case $opt in
    t) TX=$OPTARG ;;
    s) SCALE=$OPTARG ;;
    k) KEEP=$OPTARG ;;
    m) MODES=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for t in valgrind vgdb pgbouncer "$PG_BIN/pgbench"; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install valgrind pgbouncer postgresql-15 postgresql-contrib-15)" >&2; exit 1; }
done
. bench/lib.sh
bench_tetherd

bench_setup instr
mkdir -p "$tmp/pgb" "$tmp/tether"
chown postgres: "$tmp/pgb"
PGPORT=$(port) PGBPORT=$(port) TPORT=$(port) ADMIN=$(port)
bench_postgres "$SCALE"

bench_pgbouncer_conf
bench_tether_conf

# Each figure is the difference between two runs of the pooler under callgrind, both with the
# same start, warm-up and shutdown, one with the measured pgbench in between, divided by its
# transactions. (vgdb's zero and dump would avoid the restarts, but cannot interrupt a process
# asleep in epoll_wait in every environment, and a pending command stalled the pooler here.)
VG=(valgrind --tool=callgrind --collect-atstart=yes)
declare -A SOCKDIR=([pgbouncer]="$tmp/pgb" [tether]="$tmp/tether")
declare -A SOCKPORT=([pgbouncer]=$PGBPORT [tether]=$TPORT)
declare -A ARGS=([S]="-S" [C]="-S -C" [B]="" [P]="-M prepared -S" [E]="-M extended -S")
declare -A NAME=([S]="-S -c 10 -j 2" [C]="-S -C -c 10 -j 2" [B]="TPC-B -c 10 -j 2" [P]="-M prepared -S -c 10 -j 2" [E]="-M extended -S -c 10 -j 2")
declare -A IPT # IPT[mode,target] = instructions per transaction

pgb() { # target args...: pgbench, prints the transactions processed
  local target=$1; shift
  "$PG_BIN/pgbench" -n -h "${SOCKDIR[$target]}" -p "${SOCKPORT[$target]}" -U bench -c 10 -j 2 "$@" bench 2>&1 |
    awk '/^number of transactions actually processed/ {split($NF, a, "/"); print a[1]}'
}

# measure TARGET TAG [pgbench args...]: the pooler's instructions from start to exit with a
# warm-up and, given args, one measured pgbench run; prints "instructions transactions"
measure() {
  local target=$1 tag=$2; shift 2
  local out="${SOCKDIR[$target]}/cg.$tag" pid n=0
  rm -f "${SOCKDIR[$target]}/.s.PGSQL.${SOCKPORT[$target]}"
  if [ "$target" = pgbouncer ]; then
    setpriv --reuid=postgres --regid=postgres --clear-groups \
      "${VG[@]}" --callgrind-out-file="$out" pgbouncer "$tmp/pgb/pgbouncer.ini" >"$tmp/pgb/vg.log" 2>&1 &
  else
    "${VG[@]}" --callgrind-out-file="$out" "$TETHERD" -c "$tmp/tether.yaml" >"$tmp/tether/vg.log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do [ -S "${SOCKDIR[$target]}/.s.PGSQL.${SOCKPORT[$target]}" ] && break; sleep 0.1; done
  [ -S "${SOCKDIR[$target]}/.s.PGSQL.${SOCKPORT[$target]}" ] ||
    { echo "$target did not start:" >&2; cat "${SOCKDIR[$target]}/vg.log" >&2; exit 1; }
  pgb "$target" -S -t 20 >/dev/null # warm-up: the pool's servers log in
  [ $# -gt 0 ] && n=$(pgb "$target" "$@" || true) # (a run with errors counts as failed: 0)
  [ "${n:-0}" = $((10 * TX)) ] || n=0
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$(awk '/^(totals|summary):/ {print $2; exit}' "$out") ${n:-0}"
  [ -n "$KEEP" ] && [ "$target" = tether ] && mkdir -p "$KEEP" && cp "$out" "$KEEP/tether.$tag.callgrind"
  return 0
}

echo "$("$TETHERD" --version 2>&1 | head -1); $(pgbouncer --version | head -1); scale $SCALE, -t $TX per client" >&2
declare -A BASE
for target in pgbouncer tether; do
  read -r BASE[$target] _ < <(measure "$target" base)
done
for m in $MODES; do
  for target in pgbouncer tether; do
    # shellcheck disable=SC2086
    read -r ir n < <(measure "$target" "$m" ${ARGS[$m]} -t "$TX")
    IPT[$m,$target]=$(python3 -c "import sys; a, b, n = map(int, sys.argv[1:]); print(round((a - b) / n) if n else '—')" \
      "$ir" "${BASE[$target]}" "${n:-0}")
    printf '%-20s %-10s %8s transactions %14s instructions (%s without pgbench) %8s per transaction\n' \
      "${NAME[$m]}" "$target" "$n" "$ir" "${BASE[$target]}" "${IPT[$m,$target]}" >&2
  done
done

echo
echo "user-space instructions per transaction (callgrind; lower is better)"
printf '| %-22s | %10s | %10s | %8s |\n' pgbench pgbouncer tether t/pgb
printf '|%s|%s|%s|%s|\n' ------------------------ ------------ ------------ ----------
for m in $MODES; do
  printf '| %-22s | %10s | %10s | %8s |\n' "${NAME[$m]}" "${IPT[$m,pgbouncer]}" "${IPT[$m,tether]}" \
    "$(python3 -c "import sys; a, b = sys.argv[1:]; print(f'{int(a) / int(b):.2f}' if a.isdigit() and b.isdigit() else '—')" "${IPT[$m,tether]}" "${IPT[$m,pgbouncer]}")"
done
