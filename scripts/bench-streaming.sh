#!/usr/bin/env bash
# Streaming benchmark: how much compile time a download hides (benches/src/bin/streaming.rs).
#
# Builds `spate` and the `streaming` harness in release mode, then serves
# benches/stream/stream_hello.wasm (1.6 MB; its `main` prints a line first thing; rebuilt by
# benches/stream/build.sh) from 127.0.0.1 at 50 and 500 Mbit/s and compares
#   streamed:          `spate run http://...`: last byte written -> first byte of output
#   downloaded first:  download to a file, then `spate run FILE`: run start -> first output
# The table (Markdown) is also kept in target/bench-streaming/results.md; per-run lines go to
# stderr.
#
# Usage: scripts/bench-streaming.sh [STREAMING-ARGS...]
#   e.g. scripts/bench-streaming.sh --runs 9
#        scripts/bench-streaming.sh --bandwidth 10,100,1000 --spate-arg=--tier=baseline
#   Arguments go to the harness after --markdown; see `target/release/streaming --help`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

case "${1:-}" in
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
esac

target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$target_dir/bench-streaming"
mkdir -p "$out"

echo "== building spate and streaming (release)"
cargo build --release -p spate-launcher --bin spate
cargo build --release -p spate-benches --bin streaming

echo "== streaming benchmark"
"$target_dir/release/streaming" --spate "$target_dir/release/spate" --markdown "$@" | tee "$out/results.md"
