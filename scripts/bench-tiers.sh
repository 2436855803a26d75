#!/usr/bin/env bash
# Steady-state benchmark: C kernels compiled to wasm32 and run by Spate in each tier mode
# (baseline, optimized, tiered) against the same C compiled natively with clang-19 -O3, in the
# same process and the same run (benches/src/bin/tiers/; kernels in benches/kernels/).
#
# Builds the release `tiers` binary (its build script compiles the native kernels with clang-19
# and checks that the checked-in benches/kernels/*.wasm match their sources), runs it and prints
# Markdown tables for docs/BENCHMARKS.md. The output is also kept in
# target/bench-tiers/results.md; per-run lines go to stderr.
#
# Nine repetitions by default: on the project's machines identical native code has landed
# anywhere between 0.79 and 1.37 of its neighbours, so fewer do not decide a 1.10x goal. Runs whose
# thread (or, tiered, whose LLVM compile thread) was off the CPU for more than 5% of the call
# are repeated (--max-off-cpu 5, as in docs/BENCHMARKS.md; a later --max-off-cpu wins).
#
# Usage: scripts/bench-tiers.sh [TIERS-ARGS...]
#   e.g. scripts/bench-tiers.sh --reps 3           (quicker; a later --reps wins)
#        scripts/bench-tiers.sh --tier baseline --kernel mandel,cg
#        scripts/bench-tiers.sh --separate        (each kernel from its own module)
#   Arguments go to the binary after --markdown --reps 9 --max-off-cpu 5; see
#   `target/release/tiers --help`.
# Assumes scripts/setup.sh has run (scripts/run.sh does that first).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

case "${1:-}" in
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
esac

target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$target_dir/bench-tiers"
mkdir -p "$out"

echo "== building tiers (release)"
cargo build --release -p spate-benches --bin tiers

echo "== running the kernels natively and in Spate's tier modes"
{
    echo "Spate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (work tree modified)') ($(rustc --version))"
    "$target_dir/release/tiers" --markdown --reps 9 --max-off-cpu 5 "$@"
} | tee "$out/results.md"
