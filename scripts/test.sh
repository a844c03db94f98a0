#!/usr/bin/env bash
# The project's test command: sets up what is missing, builds, runs the whole suite.
#   scripts/test.sh            release build: unit, golden, integration tests + bounded fuzzing
#   scripts/test.sh asan       unit tests built with ASan+UBSan
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mode="${1:-release}"
jobs="$(nproc)"

need_setup=0
for p in nlohmann-json3-dev libcli11-dev libhwy-dev libgtest-dev libbenchmark-dev libpcre2-dev libxxhash-dev clang-14 libcpp-httplib-dev redis-server; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_setup=1
done
[ -f tests/node/package.json ] && [ ! -d tests/node/node_modules ] && need_setup=1
if [ "$need_setup" = 1 ]; then scripts/setup.sh; fi

case "$mode" in
  release)
    cmake --preset release >/dev/null
    cmake --build --preset release -j "$jobs"
    ctest --preset release -j "$jobs"
    cmake --preset fuzz >/dev/null
    cmake --build --preset fuzz -j "$jobs"
    ctest --preset fuzz
    ;;
  asan)
    cmake --preset asan >/dev/null
    cmake --build --preset asan -j "$jobs"
    ctest --preset asan -j "$jobs"
    ;;
  *) echo "usage: scripts/test.sh [release|asan]" >&2; exit 2 ;;
esac
