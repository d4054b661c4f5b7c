#!/usr/bin/env bash
# The local dev stack behind `make run` / `make stop`: PostgreSQL, Redis and the Pub/Sub emulator
# under .dev/ on fixed loopback ports, each started only if it is not already running.
# Usage: scripts/devstack.sh start|stop|status. Ports can be moved with PG_PORT, REDIS_PORT and
# PUBSUB_PORT in the environment; what runs where is written to .dev/env.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEV="$ROOT/.dev"
RUN="$DEV/run"                     # <name>.pid for every process started here but PostgreSQL
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT=${PG_PORT:-55432}
PG_DIR="$DEV/pg"                   # socket directory; the cluster is in $PG_DIR/data
[[ -L "$PG_DIR" ]] && PG_DIR=$(readlink -f "$PG_DIR")  # see pg_prepare_dir
REDIS_PORT=${REDIS_PORT:-56379}
REDIS_SOCK="$DEV/redis.sock"
PUBSUB_PORT=${PUBSUB_PORT:-58085}
STORAGE_PORT=${STORAGE_PORT:-58086}
METADATA_PORT=${METADATA_PORT:-8091}
PUBSUB_PROJECT=${PUBSUB_PROJECT:-tether-dev}
EMULATOR=/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator
APP_USER=app
APP_PASSWORD=app-secret-pw
APP_DB=appdb

say() { echo "devstack: $*"; }
die() { echo "devstack: $*" >&2; exit 1; }

# initdb and postgres refuse to run as root: as root they run as the Debian `postgres` user.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# pid_alive PIDFILE [PATTERN]: the pid on the file's first line runs and its command line
# matches PATTERN (default: the file's second line), so a stale pid file whose pid was reused
# by something else does not count.
pid_alive() {
  local pid pattern=${2:-}
  [[ -f "$1" ]] || return 1
  pid=$(sed -n 1p "$1" 2>/dev/null)
  [[ -n "$pattern" ]] || pattern=$(sed -n 2p "$1" 2>/dev/null)
  [[ "$pid" =~ ^[0-9]+$ && -n "$pattern" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for WHAT SECONDS LOG COMMAND...: polls COMMAND until it succeeds; on timeout shows LOG.
wait_for() {
  local what=$1 secs=$2 log=$3 i
  shift 3
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "devstack: $what did not answer within ${secs}s; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  return 1
}

# start_proc NAME PATTERN LOG COMMAND...: runs COMMAND detached in its own process group, with
# its pid in $RUN/NAME.pid, unless one is already running.
start_proc() {
  local name=$1 pattern=$2 log=$3
  shift 3
  if pid_alive "$RUN/$name.pid" "$pattern"; then
    say "$name already running (pid $(sed -n 1p "$RUN/$name.pid"))"
    return 0
  fi
  mkdir -p "$RUN"
  nohup setsid "$@" >>"$log" 2>&1 </dev/null &
  printf '%s\n%s\n' "$!" "$pattern" >"$RUN/$name.pid"
}

# stop_proc NAME: SIGTERM to the process group, SIGKILL after 10 s.
stop_proc() {
  local name=$1 pid i
  if pid_alive "$RUN/$name.pid"; then
    pid=$(sed -n 1p "$RUN/$name.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "stopped $name"
  fi
  rm -f "$RUN/$name.pid"
}

# --- PostgreSQL ----------------------------------------------------------------------------

pg_running() { pid_alive "$PG_DIR/data/postmaster.pid" "postgres"; }

# The postgres user must reach .dev/pg; when the checkout is somewhere it cannot (a 0700 home),
# the cluster lives under /var/tmp and .dev/pg is a symlink to it.
pg_prepare_dir() {
  mkdir -p "$DEV" "$PG_DIR"
  [[ $(id -u) -eq 0 ]] || return 0
  id postgres >/dev/null 2>&1 || die "no 'postgres' user: install the postgresql package (make deps)"
  chown postgres: "$PG_DIR"
  if ! as_pg test -w "$PG_DIR" 2>/dev/null; then
    local alt
    alt="/var/tmp/tether-dev-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/pg"
    say "postgres cannot reach $PG_DIR; using $alt (symlinked)"
    mkdir -p "$alt"
    chown postgres: "$alt" "$(dirname "$alt")"
    chmod 755 "$(dirname "$alt")"
    rmdir "$PG_DIR"
    ln -sfn "$alt" "$PG_DIR"
    PG_DIR=$alt
  fi
}

start_pg() {
  pg_prepare_dir
  if [[ ! -f "$PG_DIR/data/PG_VERSION" ]]; then
    say "initdb $PG_DIR/data"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-sync -E UTF8 \
      --locale=C >"$DEV/initdb.log" 2>&1 || { cat "$DEV/initdb.log" >&2; die "initdb failed"; }
    as_pg tee -a "$PG_DIR/data/postgresql.conf" >/dev/null <<CONF

# tether dev stack
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
password_encryption = 'scram-sha-256'
CONF
    as_pg tee "$PG_DIR/data/pg_hba.conf" >/dev/null <<HBA
# TYPE DATABASE     USER      ADDRESS        METHOD
local   all          all                      trust
local   replication  all                      trust
host    all          postgres  127.0.0.1/32   trust
host    all          all       127.0.0.1/32   scram-sha-256
host    replication  all       127.0.0.1/32   scram-sha-256
HBA
  fi
  if pg_running; then
    say "PostgreSQL already running (pid $(head -n1 "$PG_DIR/data/postmaster.pid"))"
  else
    port_busy "$PG_PORT" && die "port $PG_PORT is taken by something else (set PG_PORT)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start >/dev/null \
      || { tail -n 20 "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  wait_for PostgreSQL 30 "$PG_DIR/postgres.log" \
    psql -X -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres -Atc 'SELECT 1'
  # Idempotent: the app role (password reset each time) and its database.
  psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT 'CREATE ROLE $APP_USER LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$APP_USER')\gexec
ALTER ROLE $APP_USER LOGIN PASSWORD '$APP_PASSWORD';
SELECT 'CREATE DATABASE $APP_DB OWNER $APP_USER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$APP_DB')\gexec
SQL
}

stop_pg() {
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 20 stop >/dev/null \
      || kill -QUIT "$(head -n1 "$PG_DIR/data/postmaster.pid")" 2>/dev/null || true
    say "stopped PostgreSQL"
  fi
}

# --- Redis and the Pub/Sub emulator --------------------------------------------------------

start_redis() {
  if ! pid_alive "$RUN/redis.pid" redis-server; then
    port_busy "$REDIS_PORT" && die "port $REDIS_PORT is taken by something else (set REDIS_PORT)"
  fi
  start_proc redis redis-server "$DEV/redis.log" \
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --unixsocket "$REDIS_SOCK" \
    --unixsocketperm 700 --save "" --appendonly no --daemonize no --dir "$DEV"
  wait_for Redis 20 "$DEV/redis.log" redis-cli -s "$REDIS_SOCK" ping
}

start_pubsub() {
  [[ -x "$EMULATOR" ]] || die "Pub/Sub emulator not found at $EMULATOR"
  if ! pid_alive "$RUN/pubsub.pid" cloud-pubsub-emulator; then
    port_busy "$PUBSUB_PORT" && die "port $PUBSUB_PORT is taken by something else (set PUBSUB_PORT)"
  fi
  start_proc pubsub cloud-pubsub-emulator "$DEV/pubsub.log" \
    "$EMULATOR" --host=127.0.0.1 --port="$PUBSUB_PORT"
  wait_for "Pub/Sub emulator" 90 "$DEV/pubsub.log" curl -sf -m 2 "http://127.0.0.1:$PUBSUB_PORT/"
}

# --- fakes for Google services without an emulator (tests/fakes/*.py) ----------------------
# The Cloud Storage JSON API fake (objects under .dev/storage) and the metadata server / OAuth2
# token endpoint fake that config/dev.yaml takes tokens from.
start_fakes() {
  mkdir -p "$DEV/storage"
  start_proc storage-fake gcs_fake.py "$DEV/storage-fake.log" \
    /usr/bin/python3 "$ROOT/tests/fakes/gcs_fake.py" --host 127.0.0.1 --port "$STORAGE_PORT" --data-dir "$DEV/storage"
  start_proc metadata-fake metadata_fake.py "$DEV/metadata-fake.log" \
    /usr/bin/python3 "$ROOT/tests/fakes/metadata_fake.py" --host 127.0.0.1 --port "$METADATA_PORT"
  wait_for "Storage fake" 20 "$DEV/storage-fake.log" curl -s -o /dev/null -m 2 "http://127.0.0.1:$STORAGE_PORT/"
  wait_for "metadata fake" 20 "$DEV/metadata-fake.log" curl -sf -m 2 "http://127.0.0.1:$METADATA_PORT/"
}
# <<< FAKES

write_env() {
  cat >"$DEV/env" <<ENV
# Written by scripts/devstack.sh start: where the dev stack runs. Source it: . .dev/env
export TETHER_DEV_DIR=$DEV
export PG_HOST=127.0.0.1
export PG_PORT=$PG_PORT
export PG_SOCKET_DIR=$PG_DIR
export PG_SUPERUSER=postgres
export PG_USER=$APP_USER
export PG_PASSWORD=$APP_PASSWORD
export PG_DATABASE=$APP_DB
export REDIS_HOST=127.0.0.1
export REDIS_PORT=$REDIS_PORT
export REDIS_SOCKET=$REDIS_SOCK
export PUBSUB_EMULATOR_HOST=127.0.0.1:$PUBSUB_PORT
export PUBSUB_PROJECT_ID=$PUBSUB_PROJECT
export STORAGE_EMULATOR_HOST=http://127.0.0.1:$STORAGE_PORT
export TETHER_METADATA_HOST=127.0.0.1:$METADATA_PORT
ENV
}

summary() {
  cat <<TXT
devstack: running under $DEV (logs there; variables in .dev/env; 'make stop' stops it all)
  PostgreSQL    127.0.0.1:$PG_PORT  socket dir $PG_DIR  user $APP_USER  db $APP_DB  (superuser postgres, trusted locally)
  Redis         127.0.0.1:$REDIS_PORT  socket $REDIS_SOCK
  Pub/Sub emu   http://127.0.0.1:$PUBSUB_PORT  (PUBSUB_EMULATOR_HOST=127.0.0.1:$PUBSUB_PORT, project $PUBSUB_PROJECT)
  Storage fake  http://127.0.0.1:$STORAGE_PORT  (Cloud Storage JSON API; objects in $DEV/storage)
  Metadata fake http://127.0.0.1:$METADATA_PORT  (metadata server + OAuth2 token endpoint)
TXT
}

cmd_start() {
  mkdir -p "$DEV" "$RUN"
  start_pg
  start_redis
  start_pubsub
  start_fakes
  write_env
  summary
}

cmd_stop() {
  local f
  # Fakes and anything else started with start_proc, then PostgreSQL.
  for f in "$RUN"/*.pid; do
    [[ -e "$f" ]] || continue
    stop_proc "$(basename "$f" .pid)"
  done
  stop_pg
}

cmd_status() {
  local rc=0 f name
  if pg_running; then
    echo "PostgreSQL     running  pid $(head -n1 "$PG_DIR/data/postmaster.pid")  127.0.0.1:$PG_PORT"
  else
    echo "PostgreSQL     stopped"; rc=3
  fi
  for name in redis pubsub; do
    if pid_alive "$RUN/$name.pid"; then
      printf '%-14s running  pid %s\n' "$name" "$(sed -n 1p "$RUN/$name.pid")"
    else
      printf '%-14s stopped\n' "$name"; rc=3
    fi
  done
  for f in "$RUN"/*.pid; do  # the fakes
    [[ -e "$f" ]] || continue
    name=$(basename "$f" .pid)
    [[ $name == redis || $name == pubsub ]] && continue
    if pid_alive "$f"; then printf '%-14s running  pid %s\n' "$name" "$(sed -n 1p "$f")"
    else printf '%-14s stopped\n' "$name"; rc=3; fi
  done
  return $rc
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
