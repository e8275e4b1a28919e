#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors and runs the
# whole suite through ctest. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCI_WERROR=ON >/dev/null
cmake --build "$build_dir" -- -j"$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" --timeout 600
