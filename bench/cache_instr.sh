#!/usr/bin/env bash
# Counts the user-space instructions tetherd spends on one cache hit, which unlike latency does
# not move with other load on the machine: tetherd (transaction mode, pool_size 20, a cache rule
# for a point lookup) runs under valgrind's callgrind in front of a throwaway PostgreSQL 15 and a
# redis-server on unix sockets. Every run warms the cache with the same lookups (100 hot keys);
# the instructions of a run with the measured pgbench (-c 10 -j 2 -t N, all hits) less those of a
# run without are divided by its transactions. For comparison, the same lookup relayed to
# PostgreSQL by the pooler (a statement no rule matches). Modes -M extended and -M simple.
# Not run in CI; needs root, valgrind, takes a few minutes. With -k DIR the profiles are kept.
#
# Usage: bench/cache_instr.sh [-t transactions per client (300)] [-k keep dir]
# TETHERD=path uses that binary instead of building build/tetherd.
set -euo pipefail
cd "$(dirname "$0")/.."

TX=300 KEEP=""
while getopts "t:k:h" opt; do
  case $opt in
    t) TX=$OPTARG ;;
    k) KEEP=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for t in valgrind redis-server "$PG_BIN/pgbench"; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install valgrind redis-server postgresql-15 postgresql-contrib-15)" >&2; exit 1; }
done
. bench/lib.sh
bench_tetherd

bench_setup cache-instr
mkdir -p "$tmp/tether"
PGPORT=$(port) TPORT=$(port) ADMIN=$(port)
bench_postgres 1
redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save "" \
  --appendonly no --daemonize no --dir "$tmp" > "$tmp/redis.log" 2>&1 &
pids+=($!)
bench_tether_yaml "$tmp/tether" "$ADMIN" > "$tmp/tether.yaml"
cat >> "$tmp/tether.yaml" <<EOF
cache:
  redis: unix://$tmp/redis.sock
  rules:
    - database: bench
      match: '^select abalance from pgbench_accounts where aid = '
      ttl: 600s
EOF
cat > "$tmp/hit.sql" <<'EOF'
\set aid random(1, 100)
select abalance from pgbench_accounts where aid = :aid;
EOF
cat > "$tmp/relay.sql" <<'EOF'
\set aid random(1, 100)
select abalance as b from pgbench_accounts where aid = :aid;
EOF

pgb() { # mode script args...: pgbench, prints the transactions processed
  local mode=$1 script=$2; shift 2
  "$PG_BIN/pgbench" -n -h "$tmp/tether" -p "$TPORT" -U bench -c 10 -j 2 -M "$mode" -f "$script" "$@" bench 2>&1 |
    awk '/^number of transactions actually processed/ {split($NF, a, "/"); print a[1]}'
}
hits() { python3 -c 'import json, sys, urllib.request
print(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/admin/cache", timeout=5).read())["hits"])' "$ADMIN"; }

# measure TAG MODE [script]: tetherd's instructions from start to exit with the warm-up and,
# given a script, one measured run; prints "instructions transactions hits"
measure() {
  local tag=$1 mode=$2 script=${3:-} out="$tmp/tether/cg.$1" pid n=0 h0=0 h1=0
  rm -f "$tmp/tether/.s.PGSQL.$TPORT"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$TETHERD" -c "$tmp/tether.yaml" >"$tmp/tether/vg.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do [ -S "$tmp/tether/.s.PGSQL.$TPORT" ] && break; sleep 0.1; done
  [ -S "$tmp/tether/.s.PGSQL.$TPORT" ] || { echo "tetherd did not start:" >&2; cat "$tmp/tether/vg.log" >&2; exit 1; }
  pgb "$mode" "$tmp/hit.sql" -t 100 >/dev/null  # warm-up: servers logged in, the hot keys stored
  pgb "$mode" "$tmp/relay.sql" -t 20 >/dev/null
  if [ -n "$script" ]; then
    h0=$(hits)
    n=$(pgb "$mode" "$script" -t "$TX")
    h1=$(hits)
  fi
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$(awk '/^(totals|summary):/ {print $2; exit}' "$out") ${n:-0} $((h1 - h0))"
  if [ -n "$KEEP" ] && [ -n "$script" ]; then mkdir -p "$KEEP"; cp "$out" "$KEEP/tether.$tag.callgrind"; fi
  return 0
}

echo "$("$TETHERD" --version 2>&1 | head -1); -c 10 -j 2 -t $TX" >&2
printf '| %-12s | %14s | %14s |\n' mode "cache hit" "pooler relay"
printf '|%s|%s|%s|\n' -------------- ---------------- ----------------
for mode in extended simple; do
  redis-cli -s "$tmp/redis.sock" flushall >/dev/null
  read -r base _ _ < <(measure "base-$mode" "$mode")
  redis-cli -s "$tmp/redis.sock" flushall >/dev/null
  read -r ih nh hh < <(measure "hit-$mode" "$mode" "$tmp/hit.sql")
  redis-cli -s "$tmp/redis.sock" flushall >/dev/null
  read -r ir nr _ < <(measure "relay-$mode" "$mode" "$tmp/relay.sql")
  [ "$hh" -ge $((nh * 99 / 100)) ] || echo "warning: only $hh of $nh lookups were hits" >&2
  printf '| %-12s | %14s | %14s |\n' "-M $mode" "$(( (ih - base) / nh ))" "$(( (ir - base) / nr ))"
done
echo "user-space instructions per transaction in tetherd (callgrind; lower is better)"
