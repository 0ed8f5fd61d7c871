#!/usr/bin/env bash
# The whole test suite: unit tests and the root-only integration tests that
# drive the real berth binary against a local registry. cargo's exit status
# is passed through untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: the integration tests need root (namespaces, mounts, chown)" >&2; exit 1; }
exec cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
