#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors, runs a
# clang build that checks the lock annotations (-Wthread-safety, in build/thread-safety),
# a chaos soak (daemons killed at random while commits flow) and the whole suite through
# ctest; then the suite again under AddressSanitizer + UndefinedBehaviorSanitizer and
# under ThreadSanitizer (presets asan and tsan, in build/asan and build/tsan), and a
# fuzz run of the protocol parser. Stops at the first failure, exiting non-zero.
#   CHAOS_MINUTES=N      length of the soak (default 3; 0 skips it)
#   SANITIZERS="..."     sanitizer suites to run (default "asan tsan"; "" skips them)
#   FUZZ_SECONDS=N       length of the fuzz run (default 60; 0 skips it)
#   BENCH_QUICK=0        skips the quick benchmark run
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
# A header before each stage, with the time since the start (CI has a time budget).
stage() { echo "== $1 (at $((SECONDS / 60))m$((SECONDS % 60))s)"; }

scripts/install-deps.sh --with-test-tools
build_dir=${BUILD_DIR:-build}
stage build
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCI_WERROR=ON >/dev/null
cmake --build "$build_dir" -- -j"$jobs"

# Clang's thread-safety analysis of the lock annotations (GUARDED_BY, REQUIRES,
# EXCLUDES of ci/thread_annotations.h), as errors: right after the main build, so that a
# lock error fails in minutes, not after the suites. Only the libraries and daemons (no
# tests: CI_BUILD_TESTS=OFF), at -O0 and without debug information, as the analysis
# needs neither; clang's other warnings are errors too, as in the main build. From
# scratch it took between 1m50s and 3m30s on 2 busy cores, of the 45 minutes CI has.
stage "thread-safety build (clang)"
tsa_cxx=clang++-14
command -v "$tsa_cxx" >/dev/null || tsa_cxx=clang++
cmake -S . -B build/thread-safety -G Ninja -DCMAKE_CXX_COMPILER="$tsa_cxx" \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DCI_BUILD_TESTS=OFF \
  -DCI_THREAD_SAFETY=ON -DCI_WERROR=ON >/dev/null
cmake --build build/thread-safety -- -j"$jobs"

chaos_minutes=${CHAOS_MINUTES:-3}
if [[ "$chaos_minutes" != 0 ]]; then
  stage "chaos soak"
  python3 scripts/chaos.py --minutes "$chaos_minutes" --bin "$build_dir/bin"
fi

stage ctest
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs" --timeout 600

sanitizers=" ${SANITIZERS-asan tsan} "
for s in $sanitizers; do
  [[ "$s" == asan || "$s" == tsan ]] || { echo "test.sh: SANITIZERS takes asan and tsan, not '$s'" >&2; exit 2; }
done
fuzz_seconds=${FUZZ_SECONDS:-60}

sanitizer_build() {
  stage "$1 build"
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -- -j"$jobs"
}

# Runs the suite of a sanitizer build. Every report is fatal, and each process writes
# its reports to build/<preset>/sanitizer-reports/ (as <tool>.<program>.<pid>): that
# keeps the reports of the daemons the integration tests start, whose own logs go with
# their test folders, and a report there fails the run even when no test noticed.
# (UBSan, linked with ASan, still reports on stderr; it exits non-zero all the same.)
sanitizer_ctest() {
  local preset=$1 reports="$PWD/build/$1/sanitizer-reports" status=0
  stage "$preset ctest"
  rm -rf "$reports"
  mkdir -p "$reports"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:log_path=$reports/asan:log_exe_name=1"
  export LSAN_OPTIONS="suppressions=$PWD/cmake/lsan-suppressions.txt:print_suppressions=0"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan:log_exe_name=1"
  ctest --test-dir "build/$preset" --output-on-failure -j"$jobs" --timeout 600 || status=$?
  local found=0 f
  while IFS= read -r f; do
    echo "---- $f"
    cat "$f"
    found=$((found + 1))
  done < <(grep -lE 'SUMMARY: |ERROR: |WARNING: ThreadSanitizer' "$reports"/* 2>/dev/null || true)
  if ((found > 0)); then
    echo "$preset: $found processes made the sanitizer reports above" >&2
    status=1
  fi
  return "$status"
}

if [[ "$sanitizers" == *" asan "* ]]; then
  sanitizer_build asan
  sanitizer_ctest asan
fi
if [[ "$sanitizers" == *" tsan "* ]]; then
  sanitizer_build tsan
fi
# The fuzz run and the benchmark come before the last suite, so that the run ends with
# ctest's summary.
if [[ "$fuzz_seconds" != 0 ]]; then
  stage fuzz
  scripts/fuzz.sh --seconds "$fuzz_seconds"
fi
# A few seconds of every benchmark, so that the benchmark itself never rots. It reports;
# it does not gate on the figures (the machines are shared and noisy).
if [[ "${BENCH_QUICK:-1}" != 0 ]]; then
  stage "benchmark (quick)"
  scripts/bench.sh --quick
fi
if [[ "$sanitizers" == *" tsan "* ]]; then
  sanitizer_ctest tsan
fi
