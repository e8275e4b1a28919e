#!/usr/bin/env bash
# Chaos soak: scripts/chaos.sh [--minutes N] [--seed S]. Keeps commits flowing while
# killing and restarting random daemons, then checks that every commit has exactly
# one result. Builds first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/bin/ci-dispatcher ]] || scripts/build.sh >/dev/null
exec python3 scripts/chaos.py "$@"
