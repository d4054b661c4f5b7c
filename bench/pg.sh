#!/usr/bin/env bash
# Measures tether's PostgreSQL pooler against PgBouncer and against PostgreSQL directly, in one
# run on one machine and one throwaway PostgreSQL 15 cluster: pgbench -S (50 clients), TPC-B (20
# clients), -S -C (a new connection per transaction, 20 clients) and -M prepared -S (50 clients),
# each direct, through PgBouncer (transaction mode, pool 20) and through tether (transaction
# mode, pool_size 20), all over unix sockets; then the RSS of each pooler holding N idle clients
# (default 10,000). Each line runs R rounds (default 3) with the three targets interleaved, in an
# order rotated by one each round (direct pgbouncer tether, then pgbouncer tether direct, ...), so
# that a burst of other load on a shared machine falls on one round rather than on one target.
# Prints every round's figures and its ratio tether/pgbouncer, then per line the median tps of
# each target, the median of the rounds' ratios tether/pgbouncer and tether/direct and the median
# pooler CPU time per transaction, a table of every round, one of the medians and a verdict:
# whether tether's median ratio is at least 1 on every line PgBouncer can run and no round of
# tether's failed. Not run in CI; needs root (apt-get, runuser) and takes about 4 x 3 x R x T
# seconds plus a minute or two.
#
# Usage: bench/pg.sh [-T seconds per pgbench run (15)] [-R rounds (3)] [-n idle clients (10000)]
#                    [-s scale (10)]
# TETHERD=path uses that binary instead of building build/tetherd. On a machine shared with other
# benchmarks run it under `flock /tmp/bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=15 IDLE=10000 SCALE=10 ROUNDS=3
while getopts "T:R:n:s:h" opt; do
  case $opt in
    T) DUR=$OPTARG ;;
    R) ROUNDS=$OPTARG ;;
    n) IDLE=$OPTARG ;;
    s) SCALE=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "-R wants a positive number of rounds" >&2; exit 2; }
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
JOBS=2 # the machine has 2 cores; -M prepared needs -j = -c (see below)

# --- what the bench needs --------------------------------------------------------------------
need=()
[ -x "$PG_BIN/pgbench" ] || need+=(postgresql-15 postgresql-contrib-15)
command -v pgbouncer >/dev/null || need+=(pgbouncer)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
. bench/lib.sh
bench_tetherd
ulimit -n "$(ulimit -Hn)" # every process started below inherits it (10,000 idle clients)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 200)) ]; then
  echo "open file limit $(ulimit -n) is below $((IDLE + 200)): raise the hard limit or use -n" >&2
  exit 1
fi

bench_setup bench
mkdir -p "$tmp/pgb" "$tmp/tether"
chown postgres: "$tmp/pgb"
# shellcheck disable=SC2016 # expanded at exit
BENCH_CLEANUP_HOOK='if [ -f "$tmp/pgb/pgbouncer.pid" ]; then kill "$(cat "$tmp/pgb/pgbouncer.pid")" 2>/dev/null || true; fi'
PGPORT=$(port) PGBPORT=$(port) TPORT=$(port) ADMIN=$(port)

# --- PostgreSQL ------------------------------------------------------------------------------
bench_postgres "$SCALE"

# --- PgBouncer (runs as postgres: it refuses root; setpriv, unlike runuser, keeps ulimit -n) --
bench_pgbouncer_conf "max_client_conn = $((IDLE + 1000))" "pidfile = $tmp/pgb/pgbouncer.pid"
setpriv --reuid=postgres --regid=postgres --clear-groups pgbouncer "$tmp/pgb/pgbouncer.ini" >/dev/null 2>&1 &
pids+=($!)

# --- tether ----------------------------------------------------------------------------------
bench_tether_conf "max_client_conn: $((IDLE + 1000))"
"$TETHERD" -c "$tmp/tether.yaml" > "$tmp/tetherd.log" 2>&1 &
pids+=($!)
TETHER_PID=$!

for _ in $(seq 100); do
  [ -S "$tmp/pgb/.s.PGSQL.$PGBPORT" ] && [ -S "$tmp/tether/.s.PGSQL.$TPORT" ] && break
  sleep 0.1
done
[ -S "$tmp/pgb/.s.PGSQL.$PGBPORT" ] || { echo "pgbouncer did not start:" >&2; cat "$tmp/pgb/pgbouncer.log" >&2; exit 1; }
[ -S "$tmp/tether/.s.PGSQL.$TPORT" ] || { echo "tetherd did not start:" >&2; cat "$tmp/tetherd.log" >&2; exit 1; }

declare -A SOCK=([direct]="$tmp -p $PGPORT" [pgbouncer]="$tmp/pgb -p $PGBPORT" [tether]="$tmp/tether -p $TPORT")
TARGETS=(direct pgbouncer tether)
# R[test,target,round] = tps, or FAILED; C[test,target,round] = pooler CPU us per transaction;
# R[test,target] and C[test,target] their medians over the rounds, Q[test] and D[test] the median
# of the rounds' ratios tether/pgbouncer and tether/direct
# F[test] how many of tether's rounds failed
declare -A R C Q D F
for _ in $(seq 50); do [ -s "$tmp/pgb/pgbouncer.pid" ] && break; sleep 0.1; done
declare -A PID=([pgbouncer]="$(cat "$tmp/pgb/pgbouncer.pid")" [tether]="$TETHER_PID")
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime

echo "tether $("$TETHERD" --version 2>&1 | head -1); $(pgbouncer --version | head -1); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}')" >&2
echo "pgbench scale $SCALE, ${DUR}s per run, $ROUNDS rounds, pool size 20, unix sockets, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

fmt() { [[ $1 =~ ^[0-9.]+$ ]] && printf "%.0f" "$1" || printf "%s" "$1"; }  # tps, us: whole
fmt2() { [[ $1 =~ ^[0-9.]+$ ]] && printf "%.2f" "$1" || printf "%s" "$1"; } # ratios

# run NAME TARGET ROUND pgbench-args...: one pgbench run; records tps (or FAILED and why)
run() {
  local name=$1 target=$2 round=$3; shift 3
  local key="$name,$target,$round"
  psql -d bench -c "vacuum analyze pgbench_branches, pgbench_tellers, pgbench_accounts" -c "truncate pgbench_history"
  local out rc=0 c0=0 c1=0 pid=${PID[$target]:-}
  [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  out=$("$PG_BIN/pgbench" -n -h ${SOCK[$target]} -U bench -T "$DUR" "$@" bench 2>&1) || rc=$?
  [ -n "$pid" ] && c1=$(cpu_ticks "$pid")
  local tps txs cpu=""
  tps=$(awk '/^tps = / {print $3}' <<<"$out")
  txs=$(awk '/^number of transactions actually processed/ {print $NF}' <<<"$out")
  if [ -n "$pid" ] && [ "${txs:-0}" -gt 0 ]; then
    C[$key]=$(python3 -c "import sys; t, hz, n = map(int, sys.argv[1:]); print(f'{t * 1e6 / hz / n:.0f}')" \
      "$((c1 - c0))" "$CLK_TCK" "$txs")
    cpu=", $target CPU ${C[$key]} us/transaction"
  fi
  local errors aborted
  errors=$(grep -c -E "error|ERROR|FATAL" <<<"$out" || true)
  aborted=$(grep -c "aborted in command" <<<"$out" || true)
  if [ "$rc" -ne 0 ] || [ -z "$tps" ] || [ "$errors" -gt 0 ]; then
    local why
    why=$(grep -m1 -E "aborted in command|ERROR|FATAL" <<<"$out" | sed 's/  */ /g' | cut -c1-150 || true)
    printf '%-22s round %s %-10s FAILED (exit %s, %s error lines, %s clients aborted, tps %s): %s\n' \
      "$name" "$round" "$target" "$rc" "$errors" "$aborted" "${tps:-none}" "$why" >&2
    R[$key]=FAILED
    unset "C[$key]"
  else
    printf '%-22s round %s %-10s %10.0f tps%s\n' "$name" "$round" "$target" "$tps" "$cpu" >&2
    R[$key]=$tps
  fi
}

ratio() { # a b -> a/b or -
  python3 -c "import sys
a, b = sys.argv[1], sys.argv[2]
try: print(f'{float(a) / float(b):.2f}')
except (ValueError, ZeroDivisionError): print('-')" "$1" "$2"
}

# median FIGURES...: the median of those that are numbers (FAILED, - and empty ones left out),
# FAILED when none is
median() {
  python3 -c "import statistics, sys
v = []
for a in sys.argv[1:]:
    try: v.append(float(a))
    except ValueError: pass
print(f'{statistics.median(v):.6g}' if v else 'FAILED')" "$@"
}

TESTS=("select-only -c50" "tpc-b -c20" "select-only -C -c20" "prepared -S -c50")
declare -A ARGS=(
  ["select-only -c50"]="-S -c 50 -j $JOBS"
  ["tpc-b -c20"]="-c 20 -j $JOBS"
  ["select-only -C -c20"]="-S -C -c 20 -j $JOBS"
  # pgbench 15 prepares with blocking calls per thread: through a transaction pooler a thread
  # whose client waits for a server stalls its other clients, so one client per thread.
  ["prepared -S -c50"]="-M prepared -S -c 50 -j 50"
)
for t in "${TESTS[@]}"; do
  q=() d=()
  for round in $(seq "$ROUNDS"); do
    # the targets in this round's order: rotated left by one each round
    n=${#TARGETS[@]}
    for i in $(seq 0 $((n - 1))); do
      target=${TARGETS[$(((i + round - 1) % n))]}
      # shellcheck disable=SC2086
      run "$t" "$target" "$round" ${ARGS[$t]}
    done
    q+=("$(ratio "${R[$t,tether,$round]}" "${R[$t,pgbouncer,$round]}")")
    d+=("$(ratio "${R[$t,tether,$round]}" "${R[$t,direct,$round]}")")
    echo "  round $round: tether/pgbouncer ${q[-1]}  tether/direct ${d[-1]}" >&2
  done
  for target in "${TARGETS[@]}"; do
    tps=() cpu=()
    for round in $(seq "$ROUNDS"); do
      tps+=("${R[$t,$target,$round]}")
      cpu+=("${C[$t,$target,$round]:-}")
    done
    R[$t,$target]=$(median "${tps[@]}")
    C[$t,$target]=$(median "${cpu[@]}")
    [ "${C[$t,$target]}" = FAILED ] && C[$t,$target]=-
  done
  F[$t]=0
  for round in $(seq "$ROUNDS"); do [ "${R[$t,tether,$round]}" = FAILED ] && F[$t]=$((F[$t] + 1)); done
  Q[$t]=$(median "${q[@]}") D[$t]=$(median "${d[@]}")
  [ "${Q[$t]}" = FAILED ] && Q[$t]=-
  [ "${D[$t]}" = FAILED ] && D[$t]=-
  printf '  median of %s rounds: direct %s, pgbouncer %s, tether %s tps; tether/pgbouncer %s  tether/direct %s; CPU us/tx pgbouncer %s, tether %s%s\n' \
    "$ROUNDS" "$(fmt "${R[$t,direct]}")" "$(fmt "${R[$t,pgbouncer]}")" "$(fmt "${R[$t,tether]}")" \
    "$(fmt2 "${Q[$t]}")" "$(fmt2 "${D[$t]}")" "$(fmt "${C[$t,pgbouncer]}")" "$(fmt "${C[$t,tether]}")" \
    "$([ "${F[$t]}" -eq 0 ] || echo "; tether FAILED in ${F[$t]} of $ROUNDS rounds")" >&2
done

# --- memory per idle client ------------------------------------------------------------------
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
declare -A RSS0 RSS1 PER
for target in pgbouncer tether; do
  case $target in
    pgbouncer) pid=${PID[pgbouncer]} sock="$tmp/pgb/.s.PGSQL.$PGBPORT" ;;
    tether) pid=$TETHER_PID sock="$tmp/tether/.s.PGSQL.$TPORT" ;;
  esac
  RSS0[$target]=$(rss "$pid")
  python3 bench/pg_idle.py "$sock" bench bench "$IDLE" > "$tmp/idle.out" 2>&1 &
  idle_pid=$!
  pids+=("$idle_pid")
  for _ in $(seq 3000); do [ -s "$tmp/idle.out" ] && break; sleep 0.1; done
  read -r status _ <"$tmp/idle.out" || status=none
  if [ "$status" != ready ]; then
    echo "$target: idle clients failed: $(cat "$tmp/idle.out")" >&2
    RSS1[$target]=FAILED PER[$target]=FAILED
  else
    sleep 2
    RSS1[$target]=$(rss "$pid")
    PER[$target]=$(python3 -c "import sys; a, b, n = map(int, sys.argv[1:]); print(f'{(a - b) / n:.2f}')" \
      "${RSS1[$target]}" "${RSS0[$target]}" "$IDLE")
  fi
  printf '%-10s RSS %s KB idle, %s KB with %s idle clients (login took %ss): %s KB per client\n' \
    "$target" "${RSS0[$target]}" "${RSS1[$target]}" "$IDLE" "$(awk '{print $3}' "$tmp/idle.out")" "${PER[$target]}" >&2
  kill "$idle_pid" 2>/dev/null || true
  wait "$idle_pid" 2>/dev/null || true
  sleep 1
done

# --- the tables ------------------------------------------------------------------------------
echo
echo "pgbench -T $DUR, scale $SCALE, pool size 20, unix sockets, $ROUNDS rounds: every round's tps"
printf '| %-44s | %5s | %9s | %9s | %9s | %8s | %8s | %8s |\n' pgbench round direct pgbouncer tether \
  t/pgb "pgb CPU" "t CPU"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' ---------------------------------------------- ------- ----------- \
  ----------- ----------- ---------- ---------- ----------
for t in "${TESTS[@]}"; do
  for round in $(seq "$ROUNDS"); do
    printf '| %-44s | %5s | %9s | %9s | %9s | %8s | %8s | %8s |\n' "${ARGS[$t]}" "$round" \
      "$(fmt "${R[$t,direct,$round]}")" "$(fmt "${R[$t,pgbouncer,$round]}")" "$(fmt "${R[$t,tether,$round]}")" \
      "$(ratio "${R[$t,tether,$round]}" "${R[$t,pgbouncer,$round]}")" \
      "${C[$t,pgbouncer,$round]:--}" "${C[$t,tether,$round]:--}"
  done
done
echo
echo "medians of the $ROUNDS rounds: tps (higher is better), the median of the rounds' ratios, and the"
echo "pooler's own CPU time per transaction (us, lower is better; less sensitive to other load)"
printf '| %-44s | %9s | %9s | %9s | %8s | %8s | %8s | %8s |\n' pgbench direct pgbouncer tether \
  t/pgb t/direct "pgb CPU" "t CPU"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' ---------------------------------------------- ----------- ----------- \
  ----------- ---------- ---------- ---------- ----------
verdict=yes
for t in "${TESTS[@]}"; do
  printf '| %-44s | %9s | %9s | %9s | %8s | %8s | %8s | %8s |\n' "${ARGS[$t]}" "$(fmt "${R[$t,direct]}")" \
    "$(fmt "${R[$t,pgbouncer]}")" "$(fmt "${R[$t,tether]}")" "$(fmt2 "${Q[$t]}")" "$(fmt2 "${D[$t]}")" \
    "$(fmt "${C[$t,pgbouncer]}")" "$(fmt "${C[$t,tether]}")"
  # a line PgBouncer cannot run (-M prepared) counts when tether ran it every round
  if [ "${F[$t]}" -gt 0 ]; then
    verdict=no
  elif [ "${Q[$t]}" != - ] && ! python3 -c "import sys; sys.exit(float(sys.argv[1]) < 1)" "${Q[$t]}"; then
    verdict=no
  fi
done
echo "tether's median tps at least PgBouncer's on every line (and no round of tether failed): $verdict"
echo
echo "RSS holding $IDLE idle clients (KB; lower is better)"
printf '| %-9s | %10s | %12s | %15s |\n' pooler "RSS before" "RSS with" "KB per client"
printf '|%s|%s|%s|%s|\n' ----------- ------------ -------------- -----------------
for target in pgbouncer tether; do
  printf '| %-9s | %10s | %12s | %15s |\n' "$target" "${RSS0[$target]}" "${RSS1[$target]}" "${PER[$target]}"
done
echo "tether/pgbouncer per idle client: $(ratio "${PER[tether]}" "${PER[pgbouncer]}")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
