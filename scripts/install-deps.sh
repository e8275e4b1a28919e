#!/usr/bin/env bash
# Installs what the project needs from Debian's packages. Idempotent, and quiet when
# everything is already there. clang-14 with libclang-rt-14-dev (libFuzzer and the
# sanitizer runtimes) builds the fuzz target; llvm-14 brings llvm-symbolizer-14.
#   --with-test-tools   also what only the tests need: a headless browser (chromium and
#                       its driver) and the Python packages the HTTP tests parse with
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3 netcat-openbsd
  libasio-dev libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libgit2-dev libsqlite3-dev libssl-dev nlohmann-json3-dev libbenchmark-dev bubblewrap procps
  libpugixml-dev libmicrohttpd-dev prometheus-cpp-dev libcurl4-openssl-dev
  clang-14 libclang-rt-14-dev llvm-14
)
if [[ "${1:-}" == --with-test-tools ]]; then
  packages+=(chromium chromium-driver python3-prometheus-client python3-websocket)
elif [[ -n "${1:-}" ]]; then
  echo "install-deps.sh: unknown option '$1' (known: --with-test-tools)" >&2
  exit 2
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "Installing: ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
