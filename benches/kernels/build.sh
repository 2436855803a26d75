#!/usr/bin/env bash
# Build the steady-state kernels (benches/kernels/*.c) into WebAssembly modules with clang-19.
#
#   benches/kernels/kernels.wasm   all five kernels in one module (what benches/src/bin/tiers/
#                                  runs by default)
#   benches/kernels/NAME.wasm      each kernel alone (tiers --separate)
#
# The modules are checked in, so the benchmark runs without a wasm toolchain; rerun this script
# after changing a kernel (benches/build.rs warns when the checked-in modules are stale, and the
# benchmark stops with a checksum mismatch when wasm and native disagree).
#
# Flags: -O3 -ffp-contract=off (as the native build in benches/build.rs) plus -msimd128 (clang
# vectorizes for 128-bit wasm SIMD, as it does for SSE2 natively) and -mbulk-memory (zeroing
# loops become memory.fill rather than calls to a memset the module does not have). No libc, no
# imports: -nostdlib, --no-entry, one --export per kernel, custom sections stripped.
#
# Usage: benches/kernels/build.sh [--out-dir DIR]   (default: this directory)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here
while (($#)); do
    case "$1" in
        --out-dir) out=${2:?--out-dir needs a value}; shift 2 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "kernels/build.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

CC=${SPATE_KERNELS_CLANG:-clang-19}
command -v "$CC" >/dev/null 2>&1 || {
    echo "kernels/build.sh: $CC not found; run scripts/setup.sh (apt-get install clang-19 lld-19)" >&2
    exit 1
}

KERNELS=(mandel mandel_simd matmul cg sort)
CFLAGS=(--target=wasm32-wasi -O3 -ffp-contract=off -msimd128 -mbulk-memory -std=c11
        -Wall -Wextra -Werror)
LDFLAGS=(--target=wasm32-wasi -nostdlib -Wl,--no-entry -Wl,--strip-all)

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

exports=()
for k in "${KERNELS[@]}"; do
    "$CC" "${CFLAGS[@]}" -c "$here/$k.c" -o "$tmp/$k.o"
    "$CC" "${LDFLAGS[@]}" "-Wl,--export=run_$k" "$tmp/$k.o" -o "$tmp/$k.wasm"
    exports+=("-Wl,--export=run_$k")
done
objects=()
for k in "${KERNELS[@]}"; do objects+=("$tmp/$k.o"); done
"$CC" "${LDFLAGS[@]}" "${exports[@]}" "${objects[@]}" -o "$tmp/kernels.wasm"

for k in "${KERNELS[@]}" kernels; do
    chmod 644 "$tmp/$k.wasm"
    mv "$tmp/$k.wasm" "$out/$k.wasm"
    echo "kernels/build.sh: wrote $out/$k.wasm ($(stat -c %s "$out/$k.wasm") bytes)"
done
