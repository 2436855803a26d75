#!/usr/bin/env bash
# The tests, on a fresh Debian bookworm machine: set-up, the workspace's tests, then formatting,
# lints and the API documentation (rustdoc warnings, such as broken links, are errors). CI runs
# exactly this (through .ci/run).
#
# All four steps run even when an earlier one fails; the exit status is non-zero if any failed.
# The last line totals the `test result:` lines of cargo test as `tests: N passed, N failed,
# N skipped` (skipped = ignored tests).
#
# Usage: scripts/test.sh [extra arguments for cargo test, e.g. a test name filter]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()

# cargo test runs in the dev profile: the test binaries run in well under a minute, while a
# release build of the workspace costs more than it saves. The heavy dependencies (Cranelift,
# regalloc2, wasmparser, wast) are optimised even there (see the workspace Cargo.toml).
echo "== cargo test"
cargo test --workspace "$@" 2>&1 | tee "$log" || failed+=("cargo test")

echo "== cargo fmt --check"
cargo fmt --all -- --check || failed+=("cargo fmt")

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings || failed+=("cargo clippy")

echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps || failed+=("cargo doc")

echo
if ((${#failed[@]} > 0)); then
    echo "test.sh: FAILED: ${failed[*]}" >&2
fi
awk '/^test result: / {
        for (i = 1; i < NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
            if ($(i + 1) ~ /^ignored/) s += $i
        }
        n++
     }
     END { if (n) printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
((${#failed[@]} == 0))
