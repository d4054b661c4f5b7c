#!/usr/bin/env bash
# Installs the Debian packages (and npm modules) tether needs to build, test and run its dev stack;
# installs only what is missing, so it is cheap to call before every build.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  # build
  gcc make pkg-config
  libevent-dev libssl-dev libcurl4-openssl-dev libjansson-dev libpq-dev libhiredis-dev
  libyaml-dev libsystemd-dev libhttp-parser-dev
  # real services used by tests and the dev stack
  postgresql postgresql-client redis-server redis-tools default-jre-headless
  # tests
  python3 python3-pytest python3-psycopg2 python3-psycopg python3-asyncpg python3-yaml
  python3-requests python3-cryptography python3-crcmod libpostgresql-jdbc-java curl procps systemd nodejs npm
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# nodejs/npm may come from outside Debian on some images: accept any working node + npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=()
  for p in "${missing[@]:-}"; do [[ "$p" == nodejs || "$p" == npm || -z "$p" ]] || tmp+=("$p"); done
  missing=("${tmp[@]:-}")
  [[ -z "${missing[0]:-}" ]] && missing=()
fi

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The PostgreSQL/Redis packages start system-wide services on install; tether's tests run their own.
if command -v pg_config >/dev/null; then :; fi

# npm modules for the official-client tests (tests/node), installed from the lock file.
if [[ -f tests/node/package-lock.json ]]; then
  if [[ ! -d tests/node/node_modules ]] || [[ tests/node/package-lock.json -nt tests/node/node_modules/.stamp ]]; then
    echo "deps: npm ci in tests/node"
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
  fi
fi
