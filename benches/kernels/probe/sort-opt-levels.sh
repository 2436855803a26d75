#!/usr/bin/env bash
# Builds probe/sort_phases.c (the counting-sort kernel with timers per phase) natively at -O0,
# -O1, -O2 and -O3 with clang-19 and runs each three times: on the Intel Xeon VM of sessions 2-15
# the scatter loop ran fastest at -O0 (see docs/BENCHMARKS.md, "Why sort's baseline beats its optimized code").
# Usage: benches/kernels/probe/sort-opt-levels.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for level in O0 O1 O2 O3; do
    clang-19 "-$level" -Wall -Wextra -Werror "$here/sort_phases.c" -o "$out/sort-$level"
    echo "== -$level"
    "$out/sort-$level"
done
