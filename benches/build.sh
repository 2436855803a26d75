#!/usr/bin/env bash
# Build the compile benchmark's input modules into benches/data/.
#
#   benches/data/large.wasm   a generated C program (benches/gen/gen_c.py, fixed seed) compiled with
#                             clang-19 -O2 for wasm32-wasi against Debian's wasi-libc
#   benches/data/sqlite.wasm  SQLite (the amalgamation vendored by the npm package better-sqlite3,
#                             pinned by version and checksum) with FTS, JSON and R*Tree, plus the
#                             small driver benches/gen/sqlite_main.c; built the same way. Fetched
#                             with `npm pack`; skipped with a warning when that is not possible.
#
# The modules are not committed; this script rebuilds one only when its inputs, this script or the
# compiler changed (a stamp next to each module records what built it).
#
# Usage: benches/build.sh [--check]
#   --check   also run the modules under node's WASI, as a sanity check that clang produced
#             working programs
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
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

CC=clang-19
command -v "$CC" >/dev/null 2>&1 || { echo "build.sh: $CC not found; run scripts/setup.sh" >&2; exit 1; }
# Debian's wasi-libc installs into the multiarch paths (/usr/include/wasm32-wasi,
# /usr/lib/wasm32-wasi), which clang searches for --target=wasm32-wasi without --sysroot.
CFLAGS=(--target=wasm32-wasi -O2)
# The generated program must compile cleanly; -fwrapv defines the wrapping its hashes rely on.
GEN_CFLAGS=(-fwrapv -Wall -Wno-unused-variable -Werror)
# Custom sections (names, producers) are stripped: the benchmark measures code, not metadata.
# shellcheck disable=SC2054  # the comma belongs to the linker flag
LDFLAGS=(--target=wasm32-wasi -Wl,--strip-all -lm)

mkdir -p "$data" "$work"

# A digest of everything that goes into a module: the arguments, the inputs' contents, this
# script and the compiler.
stamp_of() {
    {
        echo "$@"
        echo "cflags=${CFLAGS[*]} ${GEN_CFLAGS[*]} ldflags=${LDFLAGS[*]}"
        "$CC" --version | head -n1
        dpkg-query -W -f='${Version}\n' wasi-libc 2>/dev/null || true
        sha256sum < "${BASH_SOURCE[0]}"
    } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    local out=$1 stamp=$2
    [[ -f "$out" && -f "$out.stamp" && $(cat "$out.stamp") == "$stamp" ]]
}

build_large() {
    local out="$data/large.wasm" stamp
    stamp=$(stamp_of "functions=$functions units=$units" "$(sha256sum < "$here/gen/gen_c.py")")
    if up_to_date "$out" "$stamp"; then
        echo "build.sh: $out is up to date ($(stat -c %s "$out") bytes)"
        return
    fi
    local src="$work/large"
    rm -rf "$src"
    echo "build.sh: generating C ($functions functions in $units units)"
    python3 "$here/gen/gen_c.py" "$src" --functions "$functions" --units "$units"
    echo "build.sh: compiling with $CC -O2 on $(nproc) cores"
    local start=$SECONDS
    (cd "$src" && printf '%s\n' ./*.c | xargs -P "$(nproc)" -I{} "$CC" "${CFLAGS[@]}" "${GEN_CFLAGS[@]}" -c {} -o {}.o)
    "$CC" "${LDFLAGS[@]}" "$src"/*.o -o "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$stamp" > "$out.stamp"
    echo "build.sh: wrote $out ($(stat -c %s "$out") bytes) in $((SECONDS - start)) s"
}

SQLITE_NPM=better-sqlite3@13.2.0
SQLITE_C_SHA256=75a4760a7b9727a4c4c877aec92eacf39e52a8f2921ce00bd33be6d3a8e8e254
SQLITE_DEFINES=(
    -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_WAL
    -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_DQS=0
    -DSQLITE_ENABLE_FTS3 -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_FTS4
    -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_GEOPOLY -DSQLITE_ENABLE_RTREE -DSQLITE_ENABLE_STAT4
    -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ENABLE_MATH_FUNCTIONS -DSQLITE_ENABLE_COLUMN_METADATA
    -DSQLITE_SOUNDEX
    -D_WASI_EMULATED_MMAN -D_WASI_EMULATED_GETPID -D_WASI_EMULATED_PROCESS_CLOCKS
    -D_WASI_EMULATED_SIGNAL
)
SQLITE_LIBS=(-lwasi-emulated-mman -lwasi-emulated-getpid -lwasi-emulated-process-clocks
             -lwasi-emulated-signal)

build_sqlite() {
    local out="$data/sqlite.wasm" stamp src="$work/sqlite"
    stamp=$(stamp_of "$SQLITE_NPM $SQLITE_C_SHA256 ${SQLITE_DEFINES[*]} ${SQLITE_LIBS[*]}" \
        "$(sha256sum < "$here/gen/sqlite_main.c")")
    if up_to_date "$out" "$stamp"; then
        echo "build.sh: $out is up to date ($(stat -c %s "$out") bytes)"
        return
    fi
    local amalgamation="$src/package/deps/sqlite3/sqlite3.c"
    if [[ ! -f "$amalgamation" ]] || ! echo "$SQLITE_C_SHA256  $amalgamation" | sha256sum -c --quiet 2>/dev/null; then
        rm -rf "$src"
        mkdir -p "$src"
        echo "build.sh: fetching the SQLite amalgamation ($SQLITE_NPM from the npm registry)"
        local tarball
        if ! tarball=$(cd "$src" && npm pack --silent "$SQLITE_NPM" 2>/dev/null | tail -n1) || [[ -z "$tarball" ]]; then
            echo "build.sh: warning: could not fetch $SQLITE_NPM; skipping sqlite.wasm" >&2
            return
        fi
        tar -xzf "$src/$tarball" -C "$src" package/deps/sqlite3
        if ! echo "$SQLITE_C_SHA256  $amalgamation" | sha256sum -c --quiet; then
            echo "build.sh: error: sqlite3.c from $SQLITE_NPM does not match its pinned checksum" >&2
            exit 1
        fi
    fi
    echo "build.sh: compiling SQLite with $CC -O2"
    local start=$SECONDS
    "$CC" "${CFLAGS[@]}" -w "${SQLITE_DEFINES[@]}" -I"$src/package/deps/sqlite3" \
        "$amalgamation" "$here/gen/sqlite_main.c" "${LDFLAGS[@]}" "${SQLITE_LIBS[@]}" -o "$out.tmp"
    mv "$out.tmp" "$out"
    echo "$stamp" > "$out.stamp"
    echo "build.sh: wrote $out ($(stat -c %s "$out") bytes) in $((SECONDS - start)) s"
}

run_wasi() {
    node --no-warnings -e '
        const { WASI } = require("node:wasi");
        const fs = require("node:fs");
        const wasi = new WASI({ version: "preview1", args: [process.argv[1]] });
        WebAssembly.instantiate(fs.readFileSync(process.argv[1]), wasi.getImportObject())
            .then(({ instance }) => process.exit(wasi.start(instance)));
    ' "$1"
}

build_large
build_sqlite

if ((check)); then
    for module in "$data"/*.wasm; do
        echo "build.sh: running $module under node's WASI"
        run_wasi "$module"
    done
fi
