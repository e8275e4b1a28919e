#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors, runs a
# chaos soak (daemons killed at random while commits flow) and then the whole suite
# through ctest. Exits non-zero on any failure.
#   CHAOS_MINUTES=N   length of the soak (default 3; 0 skips it)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCI_WERROR=ON >/dev/null
cmake --build "$build_dir" -- -j"$(nproc)"

chaos_minutes=${CHAOS_MINUTES:-3}
if [[ "$chaos_minutes" != 0 ]]; then
  python3 scripts/chaos.py --minutes "$chaos_minutes" --bin "$build_dir/bin"
fi

ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" --timeout 600
