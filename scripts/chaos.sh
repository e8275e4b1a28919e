#!/usr/bin/env bash
# Chaos soak: scripts/chaos.sh [--minutes N] [--seed S] [--runners N]. Keeps commits
# flowing into two repositories (an observer each, --name a and --name b; runners of
# two slots that provision themselves with --workdir) while killing and restarting
# random daemons (the reporter among them), then checks that every commit of each
# repository has exactly one result in test_results/<name>/ and that the reporter's
# read model holds the dispatcher's jobs. Builds first if needed; BUILD_DIR (default
# build) is the build folder, as for scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
[[ -x "$build_dir/bin/ci-reporter" ]] || scripts/build.sh >/dev/null
exec python3 scripts/chaos.py --bin "$build_dir/bin" "$@"
