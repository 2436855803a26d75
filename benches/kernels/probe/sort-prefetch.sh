#!/usr/bin/env bash
# Builds probe/sort_phases.c (the counting-sort kernel with a timer per phase) natively at -O0,
# at -O3, and at -O3 with hand-written indirect prefetches 32 keys ahead (what the LLVM
# tier's prefetch pass adds to the wasm kernel; -mprfchw so the write hint is `prefetchw`, as in
# the engine's code for a CPU that has it), and runs each three times. See docs/BENCHMARKS.md,
# "Session 10".
# Usage: benches/kernels/probe/sort-prefetch.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang-19 -O0 -Wall -Wextra -Werror "$here/sort_phases.c" -o "$out/O0"
clang-19 -O3 -Wall -Wextra -Werror "$here/sort_phases.c" -o "$out/O3"
clang-19 -O3 -mprfchw -DPREFETCH_AHEAD=32 -Wall -Wextra -Werror "$here/sort_phases.c" -o "$out/O3-prefetch"
for build in O0 O3 O3-prefetch; do
    echo "== -$build"
    "$out/$build"
done
