#!/usr/bin/env bash
# Builds the WASI test programs in this folder to wasm32-wasi with clang-19 against Debian's
# wasi-libc (scripts/setup.sh installs both: clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32).
# The .wasm files are committed next to their sources, so the tests run without clang; rerun
# this after changing a source.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for src in *.c; do
    clang-19 --target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-debug -o "${src%.c}.wasm" "$src"
    echo "built ${src%.c}.wasm ($(stat -c %s "${src%.c}.wasm") bytes)"
done
