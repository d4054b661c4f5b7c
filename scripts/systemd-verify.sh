#!/usr/bin/env bash
# Checks systemd/tether.service and systemd/tether.socket with `systemd-analyze verify`, on copies
# whose ExecStart points at the built binary (the installed /usr/bin/tetherd need not exist
# here), and checks that the options ExecStart passes are ones tetherd knows.
# Binary: $TETHERD, else $BUILD/tetherd (BUILD defaults to build). Exit 1 on problems in the units.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-verify: systemd-analyze is not installed; units not checked"
  exit 0
fi

build=${BUILD:-build}
[[ "$build" == /* ]] || build="$(pwd)/$build"
bin=${TETHERD:-$build/tetherd}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -x "$bin" ]]; then
  target=$bin
else
  # Everything but the executable check still means something.
  echo "systemd-verify: $bin not built; ExecStart checked against /bin/true instead"
  target=/bin/true
fi
sed "s|/usr/bin/tetherd|$target|g" systemd/tether.service >"$tmp/tether.service"
cp systemd/tether.socket "$tmp/tether.socket"

rc=0
out=$(cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no \
  "$tmp/tether.service" "$tmp/tether.socket" 2>&1) || rc=$?

# Lines about our two units are real problems (unknown keys, bad values, missing executables,
# a socket without its service); anything else is about this machine (no systemd as PID 1 in
# a container, other units) and is shown but not fatal.
ours=$(printf '%s\n' "$out" | grep -E "^($tmp/)?tether\.(service|socket)[:]|$tmp/" || true)
other=$(printf '%s\n' "$out" | grep -v -E "^($tmp/)?tether\.(service|socket)[:]|$tmp/" \
  | grep -v '^$' || true)
if [[ -n "$other" ]]; then
  echo "systemd-verify: note (not about the units, ignored):"
  printf '  %s\n' "$other"
fi

problems=0
if [[ -n "$ours" ]]; then
  echo "systemd-verify: problems in the units:"
  printf '%s\n' "$ours" | sed -e "s|$tmp/|systemd/|g" -e 's|^|  |'
  problems=1
elif [[ $rc -ne 0 ]]; then
  echo "systemd-verify: systemd-analyze exited $rc without naming the units; treating as an" \
    "environment problem"
fi

# Every --long option ExecStart passes must be one `tetherd --help` lists.
if [[ "$target" == "$bin" ]]; then
  help=$("$bin" --help 2>&1 || true)
  while read -r opt; do
    if [[ -n "$opt" ]] && ! grep -q -- "$opt" <<<"$help"; then
      echo "systemd-verify: ExecStart passes $opt, which tetherd --help does not list"
      problems=1
    fi
  done < <(grep -E '^ExecStart=' systemd/tether.service | grep -oE -- '--[a-z][a-z-]*' | sort -u)
fi

if ((problems)); then
  exit 1
fi
echo "systemd-verify: systemd/tether.service and systemd/tether.socket verified" \
  "(ExecStart=$target)"
