#!/usr/bin/env bash
# run_fuzzer.sh FUZZER STEM: runs a libFuzzer binary for a bounded time over a corpus
# seeded from real fixture files (scripts/fuzz_seeds/STEM.txt lists paths relative to ../shared).
set -euo pipefail
fuzzer="$1"; stem="$2"
root="${KVSERVE_SOURCE_DIR:?}"
seconds="${KVSERVE_FUZZ_SECONDS:-60}"
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
if [ -f "$root/scripts/fuzz_seeds/$stem.txt" ]; then
  while read -r rel; do
    # Named by the whole relative path: fixtures that share a basename (tokenizer_config.json) must not overwrite each other.
    [ -n "$rel" ] && cp "$root/../shared/$rel" "$corpus/${rel//\//_}" 2>/dev/null || true
  done < "$root/scripts/fuzz_seeds/$stem.txt"
fi
exec "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 "$corpus"
