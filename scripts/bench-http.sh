#!/usr/bin/env bash
# HTTP load benchmark: POST /v1/payments over loopback with wrk (Debian package `wrk`).
# Usage: scripts/bench-http.sh [connections] [duration]   (defaults: 64 30s)
# Builds the release binary, starts a server on a fresh data directory, seeds a merchant and
# 1,000 credit lines, runs wrk, and prints wrk's report and the server's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-64}
duration=${2:-30s}
port=18181
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
cargo build --release -q -p xiezhi-cli
data=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
RUST_LOG=warn ./target/release/xiezhi serve --listen 127.0.0.1:$port --data-dir "$data" > "$data/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$port
qr=$(curl -sf -X POST $base/v1/merchants -H 'content-type: application/json' \
  -d '{"name":"Bench Mart","city":"Hangzhou","country":"CN","mcc":"5411","currency":"CNY"}' | sed -E 's/.*"qr_payload":"([^"]+)".*/\1/')
lines=""
for i in $(seq 1000); do
  id=$(curl -sf -X POST $base/v1/credit-lines -H 'content-type: application/json' \
    -d "{\"user_id\":\"bench-$i\",\"currency\":\"CNY\",\"limit\":\"100000000.00\"}" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  lines="$lines\"$id\","
done
script="$data/payments.lua"
{ echo "LINES = {${lines%,}}"; echo "QR = \"$qr\""; cat bench/payments.lua; } > "$script"
echo "wrk -t2 -c$connections -d$duration --latency POST /v1/payments"
wrk -t2 -c"$connections" -d"$duration" --latency -s "$script" $base
echo "server RSS after the run: $(ps -o rss= -p $server) KiB"
curl -s $base/v1/stats; echo
./target/release/xiezhi store check --data-dir "$data" | head -3
