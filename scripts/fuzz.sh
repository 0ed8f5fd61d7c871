#!/usr/bin/env bash
# The fuzz tests (tests/fuzz/ of berth-oci, berth-store and
# berth-runtime-lib) with a far larger budget than `cargo test` gives them.
#
#   scripts/fuzz.sh                 20000 cases of every property, once
#   scripts/fuzz.sh CASES           CASES cases of every property, once
#   scripts/fuzz.sh CASES MINUTES   rounds of CASES cases, each with fresh
#                                   random inputs, until MINUTES have passed
#
# Each property runs in a child process (PROPTEST_FORK): a parser that
# allocates past its heap budget aborts, and proptest then reports and
# shrinks that input like a panic; a case running past PROPTEST_TIMEOUT
# (ms) fails as a hang. A failing case is saved beside its test file
# (*.proptest-regressions, ignored by git) and replayed first on the next
# run; the fix gets a named regression test. cargo's exit status is passed
# through untouched; the last line totals every round.
set -uo pipefail
cd "$(dirname "$0")/.."
cases=${1:-20000}
minutes=${2:-0}
case "$cases$minutes" in *[!0-9]*) echo "usage: $0 [CASES [MINUTES]]" >&2; exit 2 ;; esac
export PROPTEST_CASES=$cases PROPTEST_FORK=true PROPTEST_TIMEOUT=${PROPTEST_TIMEOUT:-60000}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$SECONDS
round=0 status=0 passed=0 failed=0
while :; do
    round=$((round + 1))
    echo "fuzz: round $round, $cases cases per property"
    cargo test --locked -p berth-oci -p berth-store -p berth-runtime-lib --test fuzz 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    read -r p f < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
                         END { print p + 0, f + 0 }' "$log")
    passed=$((passed + p)) failed=$((failed + f))
    [ "$status" = 0 ] || break
    [ $((SECONDS - start)) -lt $((minutes * 60)) ] || break
done
echo "fuzz: $round round(s) of $cases cases per property in $((SECONDS - start)) s"
echo "tests: $passed passed, $failed failed"
exit "$status"
