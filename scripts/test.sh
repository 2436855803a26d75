#!/usr/bin/env bash
# The tests, on a fresh Debian bookworm machine: set-up, the workspace's tests, then formatting
# and lints. CI runs exactly this (through .ci/run).
#
# Usage: scripts/test.sh [extra arguments for cargo test, e.g. a test name filter]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/setup.sh

echo "== cargo test"
cargo test --workspace "$@"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
