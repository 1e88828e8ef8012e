#!/usr/bin/env bash
# Fuzz the parsers with libFuzzer (cargo-fuzz needs the nightly toolchain this machine has).
# Usage: scripts/fuzz.sh [qr_decode|money_parse] [seconds]   (defaults: qr_decode 60)
# The QR target starts from the real payloads of the test corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-qr_decode}
seconds=${2:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p fuzz/corpus/$target
if [ "$target" = qr_decode ]; then
  i=0
  grep -v '^#' crates/qr/tests/corpus/valid.tsv crates/qr/tests/corpus/invalid.tsv | awk -F'\t' '{print $NF}' |
    while IFS= read -r payload; do i=$((i+1)); printf '%s' "$payload" > "fuzz/corpus/$target/seed-$i"; done
fi
cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len=600
