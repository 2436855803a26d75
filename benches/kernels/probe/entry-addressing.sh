#!/usr/bin/env bash
# Builds probe/entry_addressing.c (matmul's multiply nest with wasm-style 32-bit addresses) with
# clang-19 -O3 for the host CPU and runs it: the nest from its constant start against the same
# nest from start values it cannot see, as in an OSR entry (docs/BENCHMARKS.md, "Session 9").
# Also prints the hot loop of each variant, to check that the second keeps a 32-bit add per
# access to C and the first does not.
# Usage: benches/kernels/probe/entry-addressing.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang-19 -O3 -march=native -ffp-contract=off -Wall -Wextra -Werror \
    "$here/entry_addressing.c" -o "$out/entry-addressing"
for f in from_start from_entry; do
    echo "== $f: 32-bit address adds (leal) in the function"
    objdump -d --no-show-raw-insn "$out/entry-addressing" |
        awk -v f="<$f>:" '$2 == f { on = 1; next } on && /^$/ { exit } on' |
        grep -c 'lea .*,%e\|lea .*,%r[0-9]*d' || true
done
"$out/entry-addressing"
