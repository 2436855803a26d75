#!/usr/bin/env bash
# Compile-throughput benchmark: Spate's baseline tier against V8's Liftoff on the same bytes.
#
# Builds the benchmark modules (benches/build.sh), the release compile_throughput binary, then
# compiles each module with Spate (benches/src/bin/compile_throughput.rs) and with V8's Liftoff
# (benches/liftoff.js under node) at 1 and 2 compile threads, whole and streamed in 64 KiB chunks,
# and prints one table with the ratio Spate/Liftoff of throughput (> 1: Spate compiles faster).
#
# Usage: scripts/bench-compile.sh [--runs N] [FILE.wasm...]
#   With no files it benchmarks benches/data/large.wasm and sqlite.wasm (built if missing or stale).
#   Raw rows are kept in target/bench-compile/results.tsv.
# Assumes scripts/setup.sh has run (scripts/run.sh does that first).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

runs=5
files=()
while (($#)); do
    case "$1" in
        --runs) runs=${2:?--runs needs a value}; shift 2 ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "bench-compile.sh: unknown option '$1'" >&2; exit 2 ;;
        *) files+=("$1"); shift ;;
    esac
done
if ((${#files[@]} == 0)); then
    benches/build.sh
    files=(benches/data/large.wasm)
    # sqlite.wasm needs the npm registry to build; benchmark it when it is there.
    [[ -f benches/data/sqlite.wasm ]] && files+=(benches/data/sqlite.wasm)
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$target_dir/bench-compile"
mkdir -p "$out"
results="$out/results.tsv"
: > "$results"

echo "== building compile_throughput (release)"
cargo build --release -p spate-benches --bin compile_throughput
bench="$target_dir/release/compile_throughput"

V8_FLAGS=(--liftoff --no-wasm-tier-up --no-wasm-lazy-compilation
          --no-wasm-native-module-cache-enabled --expose-gc)

echo "== Spate baseline (Cranelift), $runs runs per configuration"
"$bench" --runs "$runs" --threads 1,2 --tsv "${files[@]}" | tee -a "$results"
for tasks in 1 2; do
    echo "== V8 Liftoff, --wasm-num-compilation-tasks=$tasks, $runs runs per configuration"
    node "${V8_FLAGS[@]}" --wasm-num-compilation-tasks="$tasks" benches/liftoff.js \
        --runs "$runs" --tsv "${files[@]}" | tee -a "$results"
done

echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "Spate $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($(rustc --version)); node $(node --version), V8 $(node -p process.versions.v8)"
echo "Median of $runs compiles; MB = 10^6 bytes of wasm; ratio = Spate MB/s / Liftoff MB/s (> 1: Spate is faster)."
echo
python3 - "$results" <<'EOF'
import csv
import sys

rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))
table = {}
for name, engine, config, threads, size, funcs, median, _min, _code in rows:
    table[(name, config, threads, engine)] = (int(size), int(funcs), float(median))

header = ("module", "MB", "functions", "config", "threads",
          "Spate ms", "Spate MB/s", "Spate fn/s", "Liftoff ms", "Liftoff MB/s", "ratio")
out = [header]
seen = set()
for name, engine, config, threads, *_ in rows:
    key = (name, config, threads)
    if engine != "spate" or key in seen:
        continue
    seen.add(key)
    size, funcs, spate = table[(name, config, threads, "spate")]
    lift = table.get((name, config, threads, "liftoff"))
    line = [name, f"{size / 1e6:.2f}", str(funcs), config, threads,
            f"{spate * 1e3:.0f}", f"{size / 1e6 / spate:.2f}", f"{funcs / spate:.0f}"]
    if lift:
        line += [f"{lift[2] * 1e3:.0f}", f"{size / 1e6 / lift[2]:.2f}", f"{lift[2] / spate:.2f}"]
    else:
        line += ["-", "-", "-"]
    out.append(tuple(line))

widths = [max(len(r[i]) for r in out) for i in range(len(header))]
for i, r in enumerate(out):
    print("| " + " | ".join(c.ljust(w) if j in (0, 3) else c.rjust(w)
                            for j, (c, w) in enumerate(zip(r, widths))) + " |")
    if i == 0:
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
EOF
