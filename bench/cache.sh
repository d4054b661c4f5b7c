#!/usr/bin/env bash
# Measures tether's read cache on pgbench data, in one run on one machine: one throwaway
# PostgreSQL 15 cluster (fsync off, pgbench scale 10), one redis-server on a unix socket, and two
# tetherds (transaction mode, pool_size 20) in front of the same database, one without a `cache`
# section ("off") and one caching two statements ("on"):
#
#   expensive  a join + aggregate over 20,000 pgbench_accounts rows of one branch (a few ms),
#              parameterized by the branch id (10 distinct keys; pgbench -s sets :scale)
#   cheap      a point lookup of pgbench_accounts by aid over a hot set of 10,000 accounts
#   write      an update of one account's abalance, in the same hot set (it invalidates the
#              lookups of that aid and the expensive read of branch 1, whose range holds it:
#              writes by primary key invalidate by key value)
#
# The mix is 90 % reads / 10 % writes (pgbench -f expensive@45 -f cheap@45 -f write@10), run
# through "off" and "on" with the same clients (-c 20 -j 2), with -M extended and -M simple;
# mixhot (-M extended), the worst case, where the expensive read is always branch 1's, so every
# write changes what it reads; and mix2 (-M extended), where the point lookups and the writes are
# on pgbench_tellers instead. For
# each it prints tps, latency avg/p50/p99 (from pgbench's per-transaction logs, also per script),
# the hit ratio from /admin/cache, and the on/off ratios; then the read-only cheap lookup
# straight to PostgreSQL against the same lookup answered from the cache (p50 of a hit vs
# p50 of the direct query). Not run in CI; needs root (apt-get, runuser) and takes about
# 10 x T seconds plus half a minute.
#
# Usage: bench/cache.sh [-T seconds per pgbench run (15)] [-s scale (10)] [-c clients (20)]
# TETHERD=path uses that binary instead of building build/tetherd.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=15 SCALE=10 CLIENTS=20
while getopts "T:s:c:h" opt; do
  case $opt in
    T) DUR=$OPTARG ;;
    s) SCALE=$OPTARG ;;
    c) CLIENTS=$OPTARG ;;
    *) sed -n '2,23p' "$0"; exit 2 ;;
  esac
done
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
JOBS=2 # the machine has 2 cores

# --- what the bench needs --------------------------------------------------------------------
need=()
[ -x "$PG_BIN/pgbench" ] || need+=(postgresql-15 postgresql-contrib-15)
command -v redis-server >/dev/null || need+=(redis-server)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
. bench/lib.sh
bench_tetherd

bench_setup bench-cache
mkdir -p "$tmp/off" "$tmp/on" "$tmp/logs"
PGPORT=$(port) TPORT=$(port) ADMIN_OFF=$(port) ADMIN_ON=$(port)

# --- PostgreSQL ------------------------------------------------------------------------------
bench_postgres "$SCALE"

# --- Redis -----------------------------------------------------------------------------------
redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" \
  --appendonly no --daemonize no --dir "$tmp" > "$tmp/redis.log" 2>&1 &
pids+=($!)

# --- the pgbench scripts ---------------------------------------------------------------------
# Rules match the normalized statement: -M simple sends literals, -M extended $1, $2 ...
cat > "$tmp/expensive.sql" <<'EOF'
\set bid random(1, :scale)
select b.bbalance, count(*), sum(a.abalance), max(a.abalance) from pgbench_branches b join pgbench_accounts a on a.bid = b.bid where b.bid = :bid and a.aid between (:bid - 1) * 100000 + 1 and (:bid - 1) * 100000 + 20000 group by b.bbalance;
EOF
cat > "$tmp/cheap.sql" <<'EOF'
\set aid random(1, 10000)
select abalance from pgbench_accounts where aid = :aid;
EOF
cat > "$tmp/write.sql" <<'EOF'
\set aid random(1, 10000)
\set delta random(-5000, 5000)
update pgbench_accounts set abalance = abalance + :delta where aid = :aid;
EOF
MIX=(-f "$tmp/expensive.sql@45" -f "$tmp/cheap.sql@45" -f "$tmp/write.sql@10")
sed 's/^\\set bid .*/\\set bid 1/' "$tmp/expensive.sql" > "$tmp/expensive_hot.sql"
MIXHOT=(-f "$tmp/expensive_hot.sql@45" -f "$tmp/cheap.sql@45" -f "$tmp/write.sql@10")
# the second mix: the writes go to the small hot table the point lookups read (pgbench_tellers),
# so they invalidate those lookups and leave the expensive aggregate over accounts cached
cat > "$tmp/cheap_t.sql" <<'EOF'
\set tid random(1, 10 * :scale)
select tbalance from pgbench_tellers where tid = :tid;
EOF
cat > "$tmp/write_t.sql" <<'EOF'
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
update pgbench_tellers set tbalance = tbalance + :delta where tid = :tid;
EOF
MIX2=(-f "$tmp/expensive.sql@45" -f "$tmp/cheap_t.sql@45" -f "$tmp/write_t.sql@10")
SCRIPT_NAMES="expensive,cheap,write" # script numbers in pgbench's logs, for per-script latencies

# --- tether, without and with the cache -------------------------------------------------------
bench_tether_yaml "$tmp/off" "$ADMIN_OFF" > "$tmp/off.yaml"
bench_tether_yaml "$tmp/on" "$ADMIN_ON" > "$tmp/on.yaml"
cat >> "$tmp/on.yaml" <<EOF
cache:
  redis: unix://$tmp/redis.sock
  rules:
    - database: bench
      match: '^select b\.bbalance, count\(\*\), sum\(a\.abalance\), max\(a\.abalance\) from pgbench_branches b join pgbench_accounts a'
      ttl: 60s
    - database: bench
      match: '^select abalance from pgbench_accounts where aid = '
      ttl: 60s
    - database: bench
      match: '^select tbalance from pgbench_tellers where tid = '
      ttl: 60s
EOF
for side in off on; do
  "$TETHERD" -c "$tmp/$side.yaml" > "$tmp/tetherd-$side.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do
  [ -S "$tmp/off/.s.PGSQL.$TPORT" ] && [ -S "$tmp/on/.s.PGSQL.$TPORT" ] && [ -S "$tmp/redis.sock" ] && break
  sleep 0.1
done
for side in off on; do
  [ -S "$tmp/$side/.s.PGSQL.$TPORT" ] || { echo "tetherd ($side) did not start:" >&2; cat "$tmp/tetherd-$side.log" >&2; exit 1; }
done
[ -S "$tmp/redis.sock" ] || { echo "redis did not start:" >&2; cat "$tmp/redis.log" >&2; exit 1; }
cache_json() { python3 -c 'import json, sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/admin/cache", timeout=5).read().decode())' "$ADMIN_ON"; }
for _ in $(seq 50); do
  cache_json 2>/dev/null | grep -q '"readable": *true' && break
  sleep 0.1
done
cache_json | grep -q '"readable": *true' || { echo "tetherd (on) cannot read Redis:" >&2; cat "$tmp/tetherd-on.log" >&2; exit 1; }

declare -A SOCK=([direct]="$tmp -p $PGPORT" [off]="$tmp/off -p $TPORT" [on]="$tmp/on -p $TPORT")
echo "tether $("$TETHERD" --version 2>&1 | head -1); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'); $(redis-server --version | awk '{print $1, $3}')" >&2
echo "pgbench scale $SCALE, ${DUR}s per run, -c $CLIENTS -j $JOBS, pool size 20, unix sockets, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# what a statement costs the server alone (one client, warm buffers): median of 20 timed runs
alone() {
  python3 - "$PG_BIN/psql" "$tmp" "$PGPORT" "$1" <<'PY'
import statistics, subprocess, sys
psql, sockdir, port, sql = sys.argv[1:]
script = "\\timing on\n" + "".join(sql.replace(":bid", str(1 + i % 10)).replace(":aid", str(1 + i)) + "\n"
                                    for i in range(25))
out = subprocess.run([psql, "-X", "-q", "-h", sockdir, "-p", port, "-U", "bench", "-d", "bench", "-o", "/dev/null"],
                     input=script, capture_output=True, text=True).stdout
ms = [float(l.split()[1]) for l in out.splitlines() if l.startswith("Time:")][5:]
print(f"{statistics.median(ms):.2f}" if ms else "-")
PY
}
echo "alone, one client, direct: expensive read $(alone "$(sed -n 2p "$tmp/expensive.sql")") ms," \
  "cheap lookup $(alone "$(sed -n 2p "$tmp/cheap.sql")") ms (median server round trip, psql timing)" >&2

# latency NAME: "avg p50 p99" over every transaction of the run's logs, then per script
latency() {
  python3 - "$tmp/logs/$1" "$2" <<'EOF'
import glob, sys
prefix, names = sys.argv[1], sys.argv[2].split(",")
lat = {}
for path in glob.glob(prefix + ".*"):
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 4 and p[2].isdigit():
                lat.setdefault(int(p[3]), []).append(int(p[2]) / 1000.0)
def stats(v):
    v = sorted(v)
    if not v:
        return "- - -"
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    return f"{sum(v) / len(v):.2f} {pick(0.50):.2f} {pick(0.99):.2f}"
print(stats([x for v in lat.values() for x in v]))
print(" ".join(f"{names[k] if k < len(names) else k}={stats(lat[k]).split()[1]}" for k in sorted(lat)))
EOF
}

declare -A TPS LAT PER HIT RULES # by run name
# run NAME TARGET pgbench-args...: one pgbench run with per-transaction logs (NAMES: the scripts)
run() {
  local name=$1 target=$2 names=${NAMES:-$SCRIPT_NAMES}; shift 2
  psql -d bench -c "vacuum analyze pgbench_branches, pgbench_accounts"
  local before="" after="" out rc=0
  [ "$target" = on ] && before=$(cache_json)
  # shellcheck disable=SC2086
  out=$(cd "$tmp/logs" && "$PG_BIN/pgbench" -n -s "$SCALE" -h ${SOCK[$target]} -U bench -T "$DUR" -c "$CLIENTS" -j "$JOBS" \
    --log --log-prefix="$name" "$@" bench 2>&1) || rc=$?
  [ "$target" = on ] && after=$(cache_json)
  local tps errors
  tps=$(awk '/^tps = / {print $3}' <<<"$out")
  errors=$(grep -c -E "error|ERROR|FATAL" <<<"$out" || true)
  if [ "$rc" -ne 0 ] || [ -z "$tps" ] || [ "$errors" -gt 0 ]; then
    printf '%-24s FAILED (exit %s): %s\n' "$name" "$rc" "$(grep -m1 -E "ERROR|FATAL|error" <<<"$out" | cut -c1-150)" >&2
    TPS[$name]=FAILED LAT[$name]="- - -" PER[$name]="" HIT[$name]="-"
    return
  fi
  TPS[$name]=$tps
  { read -r lat; read -r per; } < <(latency "$name" "$names")
  LAT[$name]=$lat PER[$name]=$per HIT[$name]="-"
  if [ "$target" = on ]; then
    HIT[$name]=$(python3 -c 'import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
h, m = b["hits"] - a["hits"], b["misses"] - a["misses"]
y = sum(b["bypasses"].values()) - sum(a["bypasses"].values())
print(f"{h / max(1, h + m + y):.3f}")' "$before" "$after")
    RULES[$name]=$(python3 -c 'import json, sys
a, b = json.loads(sys.argv[1])["rules"], json.loads(sys.argv[2])["rules"]
out = []
for i, (x, y) in enumerate(zip(a, b)):
    d = {k: y[k] - x[k] for k in ("hits", "misses", "bypasses")}
    if any(d.values()):
        h, m, y = d["hits"], d["misses"], d["bypasses"]
        out.append(f"rule {i + 1}: {h} hits {m} misses {y} bypasses")
print("; ".join(out))' "$before" "$after")
  fi
  read -r avg p50 p99 <<<"${LAT[$name]}"
  printf '%-24s %9.0f tps  latency ms avg %s p50 %s p99 %s  (p50 %s)  hit ratio %s\n' "$name" "$tps" "$avg" "$p50" "$p99" \
    "${PER[$name]}" "${HIT[$name]}" >&2
  [ -z "${RULES[$name]:-}" ] || echo "  ${RULES[$name]}" >&2
}

ratio() { # a b -> a/b or -
  python3 -c "import sys
a, b = sys.argv[1], sys.argv[2]
try: print(f'{float(a) / float(b):.2f}')
except (ValueError, ZeroDivisionError): print('-')" "$1" "$2"
}

for mode in extended simple; do
  run "mix-$mode-off" off -M "$mode" "${MIX[@]}"
  run "mix-$mode-on" on -M "$mode" "${MIX[@]}"
  echo "  mix -M $mode: tps on/off $(ratio "${TPS[mix-$mode-on]}" "${TPS[mix-$mode-off]}")" >&2
done
run "mixhot-extended-off" off -M extended "${MIXHOT[@]}"
run "mixhot-extended-on" on -M extended "${MIXHOT[@]}"
echo "  mixhot -M extended: tps on/off $(ratio "${TPS[mixhot-extended-on]}" "${TPS[mixhot-extended-off]}")" >&2
run "mix2-extended-off" off -M extended "${MIX2[@]}"
run "mix2-extended-on" on -M extended "${MIX2[@]}"
echo "  mix2 -M extended: tps on/off $(ratio "${TPS[mix2-extended-on]}" "${TPS[mix2-extended-off]}")" >&2
# the cheap lookup alone (read-only): PostgreSQL directly vs answered from the cache
NAMES=cheap run "cheap-direct" direct -M extended -f "$tmp/cheap.sql"
# warm-up (not reported): every one of the 10,000 hot keys stored, so the next run is all hits
(cd "$tmp/logs" && "$PG_BIN/pgbench" -n -h "$tmp/on" -p "$TPORT" -U bench -T 3 -c "$CLIENTS" -j "$JOBS" -M extended \
  -f "$tmp/cheap.sql" bench >/dev/null 2>&1) || true
NAMES=cheap run "cheap-on" on -M extended -f "$tmp/cheap.sql"

# --- the table -------------------------------------------------------------------------------
fmt() { [[ $1 =~ ^[0-9.]+$ ]] && printf "%.0f" "$1" || printf "%s" "$1"; }
col() { awk -v i="$2" '{print $i}' <<<"${LAT[$1]}"; }
echo
echo "pgbench -T $DUR -c $CLIENTS -j $JOBS, scale $SCALE, pool size 20, unix sockets; mix = expensive@45 cheap@45 write@10"
printf '| %-15s | %9s | %9s | %6s | %13s | %13s | %9s |\n' run "tps off" "tps on" on/off "p50 ms off/on" "p99 ms off/on" "hit ratio"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------------- ----------- ----------- -------- --------------- --------------- -----------
for r_ in mix-extended mix-simple mixhot-extended mix2-extended; do
  off=$r_-off on=$r_-on
  printf '| %-15s | %9s | %9s | %6s | %13s | %13s | %9s |\n' "${r_%-*} -M ${r_##*-}" "$(fmt "${TPS[$off]}")" "$(fmt "${TPS[$on]}")" \
    "$(ratio "${TPS[$on]}" "${TPS[$off]}")" "$(col "$off" 2)/$(col "$on" 2)" "$(col "$off" 3)/$(col "$on" 3)" "${HIT[$on]}"
done
echo "mix: the writes update accounts of the hot set (branch 1); mixhot: the same, with every expensive read over branch 1; mix2: the writes update pgbench_tellers"
echo
echo "per-script p50 (ms):"
for r in mix-extended-off mix-extended-on mix-simple-off mix-simple-on mixhot-extended-off mixhot-extended-on mix2-extended-off mix2-extended-on; do echo "  $r: ${PER[$r]}"; done
echo
echo "cheap lookup alone, -M extended: direct to PostgreSQL $(fmt "${TPS[cheap-direct]}") tps p50 $(col cheap-direct 2) ms p99 $(col cheap-direct 3) ms;"
echo "  from the cache $(fmt "${TPS[cheap-on]}") tps p50 $(col cheap-on 2) ms p99 $(col cheap-on 3) ms (hit ratio ${HIT[cheap-on]});" \
  "hit p50 / direct p50 = $(ratio "$(col cheap-on 2)" "$(col cheap-direct 2)")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
