#!/bin/sh
# Runs the C unit test binaries given as arguments (TAP output) and prints one summary line.
pass=0; fail=0; bad=""
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  p=$(printf '%s\n' "$out" | grep -c '^ok ')
  f=$(printf '%s\n' "$out" | grep -c '^not ok ')
  pass=$((pass + p)); fail=$((fail + f))
  if [ $rc -ne 0 ] || [ "$f" -ne 0 ]; then
    printf '%s\n' "$out" | grep -v '^ok ' | sed "s|^|$(basename "$t"): |"
    [ "$f" -eq 0 ] && fail=$((fail + 1))
    bad="$bad $(basename "$t")"
  fi
done
echo "unit: $pass passed, $fail failed"
[ -z "$bad" ] || { echo "failing:$bad"; exit 1; }
