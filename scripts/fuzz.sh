#!/usr/bin/env bash
# Fuzz the parsers with libFuzzer (cargo-fuzz needs the nightly toolchain this machine has).
# Usage: scripts/fuzz.sh [qr_decode|money_parse|signature_header] [seconds]   (defaults: qr_decode 60)
# The QR target starts from the real payloads of the test corpus, the signature header
# target from a well-formed header.
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
if [ "$target" = signature_header ]; then
  printf 't=1767225600,v0=x,v1=%s,v1=%s' "$(printf 'ab%.0s' $(seq 32))" "$(printf '0f%.0s' $(seq 32))" \
    > "fuzz/corpus/$target/seed-1"
fi
cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len=600
