#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME (default 60s) each,
# one at a time (go test fuzzes one target per run). Extra arguments go to
# go test, e.g. hack/fuzz.sh -parallel 1 on a small machine. Prints one line
# per target, keeps going past a failure, and exits non-zero if any failed.
# A failing input is saved under the package's testdata/fuzz/ by go test:
# commit it so that go test (and make test) replays it from then on.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime="${FUZZTIME:-60s}"
# Go minimizes every new interesting input for up to a minute by default;
# targets that write to Postgres per input would spend their run on it.
minimize="${FUZZMINIMIZETIME:-5s}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

failed=0
ran=0
# Only packages whose test files declare a Fuzz function are asked for the
# list: go test -list builds the test binary, too slow to do for them all.
# The loop reads the package list on fd 3, so nothing in it eats the list.
while IFS=$'\t' read -r -u 3 pkg dir files; do
  [[ -n "${files// /}" ]] || continue
  # shellcheck disable=SC2086 # $files is a list of names
  (cd "$dir" && grep -qs '^func Fuzz' $files) || continue
  if ! go test -list '^Fuzz' "$pkg" >"$log" 2>&1 </dev/null; then
    failed=$((failed + 1))
    echo "$pkg: FAILED to list its fuzz targets"
    sed 's/^/    /' "$log"
    continue
  fi
  for name in $(grep '^Fuzz' "$log" || true); do
    ran=$((ran + 1))
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$@" "$pkg" >"$log" 2>&1 </dev/null; then
      echo "$name $pkg: ok ($(grep -o 'execs: [0-9]*' "$log" | tail -n 1), $(grep -o 'total: [0-9]*' "$log" | tail -n 1) in the corpus)"
    else
      failed=$((failed + 1))
      echo "$name $pkg: FAILED"
      sed 's/^/    /' "$log"
    fi
  done
done 3< <(go list -f '{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)

echo "$ran fuzz targets, $failed failed"
[[ "$failed" -eq 0 ]]
