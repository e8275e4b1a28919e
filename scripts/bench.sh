#!/usr/bin/env bash
# The benchmark suite: scripts/bench.sh [--quick] [bench.py options]. Builds the
# daemons, the load generator and the micro benchmarks in Release (build/release-bench,
# Ninja, two jobs), runs the benchmarks against real daemons on loopback, prints one
# table of the measured figures beside their targets and writes it as JSON to
# bench/results/<timestamp>.json. --quick takes a few seconds (for CI). It reports and
# never gates on the figures: it exits non-zero only when something broke.
#   BENCH_BUILD_DIR=DIR   build folder (default build/release-bench)
#   BENCH_JOBS=N          parallel compile jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BENCH_BUILD_DIR:-build/release-bench}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The build's output is shown only when it fails.
if [[ ! -f "$build_dir/build.ninja" ]]; then
  cmake -S bench -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1 ||
    { cat "$log" >&2; exit 1; }
fi
cmake --build "$build_dir" -- -j"${BENCH_JOBS:-2}" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
python3 bench/bench.py --bin "$build_dir/bin" "$@"
