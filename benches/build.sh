#!/usr/bin/env bash
# Build the compile benchmark's input modules into benches/data/.
#
#   benches/data/large.wasm   a generated C program (benches/gen/gen_c.py, fixed seed) compiled with
#                             clang-19 -O2 for wasm32-wasi against Debian's wasi-libc
#
# The generated files are not committed; this script rebuilds them only when the generator, this
# script or the compiler changed (a stamp next to each module records what built it).
#
# Usage: benches/build.sh [--check]
#   --check   also run the module under node's WASI and show its checksum line, as a sanity check
#             that clang produced a working program
# Environment: SPATE_BENCH_FUNCTIONS (default 9000) and SPATE_BENCH_UNITS (default 24) size the
# generated program.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
data="$here/data"
work="${CARGO_TARGET_DIR:-$root/target}/spate-bench-gen"
functions=${SPATE_BENCH_FUNCTIONS:-9000}
units=${SPATE_BENCH_UNITS:-24}
check=0
for arg in "$@"; do
    case "$arg" in
        --check) check=1 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

CC=clang-19
command -v "$CC" >/dev/null 2>&1 || { echo "build.sh: $CC not found; run scripts/setup.sh" >&2; exit 1; }
# Debian's wasi-libc installs into the multiarch paths (/usr/include/wasm32-wasi,
# /usr/lib/wasm32-wasi), which clang searches for --target=wasm32-wasi without --sysroot.
CFLAGS=(--target=wasm32-wasi -O2 -fwrapv -Wall -Wno-unused-variable -Werror)
LDFLAGS=(--target=wasm32-wasi -Wl,--strip-all -lm)

mkdir -p "$data" "$work"

stamp_of() {
    {
        echo "functions=$functions units=$units"
        echo "cflags=${CFLAGS[*]} ldflags=${LDFLAGS[*]}"
        "$CC" --version | head -n1
        dpkg-query -W -f='${Version}\n' wasi-libc 2>/dev/null || true
        sha256sum "$here/gen/gen_c.py" "$here/build.sh" | cut -d' ' -f1
    } | sha256sum | cut -d' ' -f1
}

build_large() {
    local out="$data/large.wasm" stamp
    stamp=$(stamp_of)
    if [[ -f "$out" && -f "$out.stamp" && $(cat "$out.stamp") == "$stamp" ]]; then
        echo "build.sh: $out is up to date ($(stat -c %s "$out") bytes)"
        return
    fi
    local src="$work/large"
    rm -rf "$src"
    echo "build.sh: generating C ($functions functions in $units units)"
    python3 "$here/gen/gen_c.py" "$src" --functions "$functions" --units "$units"
    echo "build.sh: compiling with $CC -O2 on $(nproc) cores"
    local start=$SECONDS
    (cd "$src" && ls ./*.c | xargs -P "$(nproc)" -I{} "$CC" "${CFLAGS[@]}" -c {} -o {}.o)
    "$CC" "${LDFLAGS[@]}" "$src"/*.o -o "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$stamp" > "$out.stamp"
    echo "build.sh: wrote $out ($(stat -c %s "$out") bytes) in $((SECONDS - start)) s"
}

build_large

if ((check)); then
    node --no-warnings -e '
        const { WASI } = require("node:wasi");
        const fs = require("node:fs");
        const wasi = new WASI({ version: "preview1", args: ["large"] });
        WebAssembly.instantiate(fs.readFileSync(process.argv[1]), wasi.getImportObject())
            .then(({ instance }) => process.exit(wasi.start(instance)));
    ' "$data/large.wasm"
fi
