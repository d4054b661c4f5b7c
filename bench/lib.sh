# Sourced by the bench/*.sh scripts that need a throwaway PostgreSQL: a temporary directory that
# is removed at exit together with every process started for it, free loopback ports, and one
# PostgreSQL 15 cluster (fsync off) holding pgbench data. The caller sets PG_BIN first.

# bench_tetherd: $TETHERD as an absolute path (build/tetherd, built, when unset), and the
# `postgres` OS user the clusters run as.
bench_tetherd() {
  if [ -z "${TETHERD:-}" ]; then
    make -s build/tetherd
    TETHERD=build/tetherd
  fi
  TETHERD=$(realpath "$TETHERD")
  id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
}

# bench_setup NAME: $tmp (/tmp/tether-NAME-XXXXXX, mode 755, owned by postgres), an empty pids
# array whose processes are killed at exit, and the exit trap. BENCH_CLEANUP_HOOK, when set,
# is run first at exit (bench/pg.sh stops PgBouncer by its pid file there).
bench_setup() {
  tmp=$(mktemp -d "/tmp/tether-$1-XXXXXX")
  chmod 755 "$tmp"
  chown postgres: "$tmp"
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [ -n "${BENCH_CLEANUP_HOOK:-}" ]; then eval "$BENCH_CLEANUP_HOOK" || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$tmp/data/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  sleep 0.5
  rm -rf "$tmp"
}

# A free loopback TCP port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# psql as the superuser on the cluster bench_postgres started (PGPORT).
psql() { "$PG_BIN/psql" -X -q -h "$tmp" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }

# bench_postgres SCALE: initdb in $tmp/data, the server on unix socket $tmp port $PGPORT only,
# role and database `bench`, and `pgbench -i -s SCALE` data in it.
bench_postgres() {
  runuser -u postgres -- "$PG_BIN/initdb" -D "$tmp/data" -U postgres --auth=trust --no-sync \
    --encoding=UTF8 --locale=C >/dev/null
  cat >> "$tmp/data/postgresql.conf" <<CONF
listen_addresses = ''
port = $PGPORT
unix_socket_directories = '$tmp'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$tmp/data" -l "$tmp/postgres.log" -w start >/dev/null
  psql -c "create role bench login" -c "create database bench owner bench"
  "$PG_BIN/pgbench" -i -q -s "$1" -h "$tmp" -p "$PGPORT" -U bench bench 2>/dev/null
}

# bench_tether_yaml SOCKDIR ADMIN_PORT [postgres lines...]: printed, a tetherd config in transaction mode
# (pool_size 20) for database `bench` on the cluster bench_postgres started, listening on the
# unix socket directory SOCKDIR at port $TPORT; extra lines go into the postgres section.
bench_tether_yaml() {
  local dir=$1 admin=$2 extra
  shift 2
  cat <<EOF
admin: {listen: ["tcp://127.0.0.1:$admin"]}
log: {level: warn}
postgres:
  listen: ["unix://$dir"]
  port: $TPORT
EOF
  for extra in "$@"; do echo "  $extra"; done
  cat <<EOF
  databases:
    bench: {host: "$tmp", port: $PGPORT, dbname: bench, user: bench, pool_mode: transaction, pool_size: 20}
EOF
}

# bench_tether_conf [postgres-section lines...]: $tmp/tether.yaml for tetherd in front of that
# cluster: admin on $ADMIN, the pooler on unix socket $tmp/tether port $TPORT, database `bench`
# in transaction mode with pool_size 20; extra lines go into the postgres section.
bench_tether_conf() {
  bench_tether_yaml "$tmp/tether" "$ADMIN" "$@" > "$tmp/tether.yaml"
}

# bench_pgbouncer_conf [pgbouncer-section lines...]: $tmp/pgb/ with pgbouncer.ini and
# userlist.txt for PgBouncer in front of that cluster, owned by postgres: unix socket $tmp/pgb
# port $PGBPORT, database `bench`, transaction mode, default_pool_size 20, trust.
bench_pgbouncer_conf() {
  mkdir -p "$tmp/pgb"
  echo '"bench" ""' > "$tmp/pgb/userlist.txt"
  {
    echo "[databases]"
    echo "bench = host=$tmp port=$PGPORT dbname=bench user=bench"
    echo
    echo "[pgbouncer]"
    echo "listen_addr ="
    echo "listen_port = $PGBPORT"
    echo "unix_socket_dir = $tmp/pgb"
    echo "auth_type = trust"
    echo "auth_file = $tmp/pgb/userlist.txt"
    echo "pool_mode = transaction"
    echo "default_pool_size = 20"
    echo "logfile = $tmp/pgb/pgbouncer.log"
    echo "log_connections = 0"
    echo "log_disconnections = 0"
    for l in "$@"; do echo "$l"; done
  } > "$tmp/pgb/pgbouncer.ini"
  chown -R postgres: "$tmp/pgb"
}
