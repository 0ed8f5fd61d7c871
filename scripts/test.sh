#!/usr/bin/env bash
# The whole test suite: unit tests and the root-only integration tests that
# drive the real berth binary against a local registry. cargo's exit status
# is passed through untouched; the last line totals every test binary.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: the integration tests need root (namespaces, mounts, chown)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
