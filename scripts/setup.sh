#!/usr/bin/env bash
# Installs kvserve's build and test dependencies (Debian packages and npm packages),
# then configures and builds. Idempotent: a second run only rebuilds what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

apt_packages=(
  build-essential cmake ninja-build pkg-config
  clang-14 libclang-rt-14-dev        # libFuzzer + sanitizers for the fuzz tests
  nlohmann-json3-dev                 # JSON
  libcli11-dev                       # CLI parsing
  libspdlog-dev libfmt-dev           # logging / formatting
  libxxhash-dev                      # block hashes
  libpcre2-dev                       # pre-tokenizer regexes (Unicode classes, look-ahead)
  libhwy-dev                         # portable SIMD
  libgtest-dev libgmock-dev          # unit tests
  libbenchmark-dev                   # micro benchmarks
  libcpp-httplib-dev                 # HTTP server
  redis-server                       # the shared offload tier
)

missing=()
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)   # the official openai client for server tests
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ -f tests/node/package.json ] && [ ! -d tests/node/node_modules ]; then
  (cd tests/node && npm ci --no-audit --no-fund)
fi

cmake --preset release >/dev/null
cmake --build --preset release
