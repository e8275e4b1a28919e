#!/usr/bin/env bash
# Fuzzes the protocol parser and framer: builds the libFuzzer target with clang into
# build/fuzz (a build of its own: only the parser sources, instrumented) and runs it
# over a working copy of the seed corpus fuzz/corpus/, kept in build/fuzz/corpus.
# Exits non-zero on a crash, a leak, undefined behaviour, a timeout or a broken
# round-trip invariant; the input that did it is saved in build/fuzz/artifacts/.
#   scripts/fuzz.sh [--seconds N]    run for N seconds (default 60)
#   FUZZ_CXX=clang++-14              the compiler (default: clang++-14, else clang++)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/fuzz.sh [--seconds N]" >&2
  exit 2
}

seconds=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds)
      [[ $# -ge 2 ]] || { echo "fuzz.sh: --seconds needs a number" >&2; usage; }
      seconds=$2
      shift 2
      ;;
    --seconds=*)
      seconds=${1#--seconds=}
      shift
      ;;
    -h | --help)
      echo "usage: scripts/fuzz.sh [--seconds N]"
      exit 0
      ;;
    *)
      echo "fuzz.sh: unknown argument '$1'" >&2
      usage
      ;;
  esac
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((10#$seconds == 0)); then
  echo "fuzz.sh: --seconds needs a positive whole number, not '$seconds'" >&2
  usage
fi
seconds=$((10#$seconds))

cxx=${FUZZ_CXX:-}
if [[ -z "$cxx" ]]; then
  cxx=clang++-14
  command -v "$cxx" >/dev/null || cxx=clang++
fi
command -v "$cxx" >/dev/null || {
  echo "fuzz.sh: $cxx not found (scripts/install-deps.sh installs clang)" >&2
  exit 1
}

build_dir=build/fuzz
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCI_FUZZ=ON >/dev/null
cmake --build "$build_dir" --target protocol_fuzzer -- -j"$(nproc)"

# The fuzzer adds what it finds to the working copy, never to fuzz/corpus/.
corpus=$build_dir/corpus
artifacts=$build_dir/artifacts
mkdir -p "$corpus" "$artifacts"
cp fuzz/corpus/* "$corpus/"

# Symbolized stacks; every report fatal (the fuzzer checks for leaks after each input).
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
[[ -n "$symbolizer" ]] && export ASAN_SYMBOLIZER_PATH="$symbolizer"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

fuzzer=$build_dir/bin/protocol_fuzzer
log=$build_dir/fuzz.log
echo "fuzz: protocol_fuzzer for ${seconds}s (log in $log)"
start=$(mktemp "$build_dir/start.XXXXXX")  # crash files newer than this are this run's
trap 'rm -f "$start"' EXIT
status=0
"$fuzzer" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?

if [[ $status -ne 0 ]]; then
  tail -n 80 "$log" >&2
  echo "fuzz: FAILED (exit $status)" >&2
  find "$artifacts" -type f -newer "$start" | while read -r f; do
    echo "  input: $f (replay: $fuzzer $f)" >&2
  done
  exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "fuzz: passed, $runs inputs in ${seconds}s; $(grep -o 'cov: [0-9]*' "$log" | tail -n 1)," \
  "corpus $(find "$corpus" -type f | wc -l) files"
