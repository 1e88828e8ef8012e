#!/usr/bin/env bash
# HTTP load benchmark: POST /v1/payments over loopback.
# Usage: scripts/bench-http.sh [connections] [duration] [rate]   (defaults: 64 30s 5000)
# Builds the release binary, starts a server on a fresh data directory, seeds a merchant and
# 1,000 credit lines, then runs two loads from the same machine:
#   1. wrk (Debian package `wrk`), closed loop: the most the server takes (saturation);
#   2. hey (Debian package `hey`), open loop at a fixed rate: latency at that rate.
# Prints both reports, the server's RSS, and checks the books afterwards.
# TOKIO_WORKER_THREADS sets the server's HTTP worker threads (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-64}
duration=${2:-30s}
rate=${3:-5000}
port=18181
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
command -v hey >/dev/null || { echo "installing hey"; apt-get install -y hey >/dev/null; }
cargo build --release -q -p xiezhi-cli
data=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
RUST_LOG=warn TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-2} ./target/release/xiezhi serve --listen 127.0.0.1:$port --data-dir "$data" > "$data/server.log" 2>&1 &
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
echo "server RSS after wrk: $(ps -o rss= -p $server) KiB"
first_line=$(echo "$lines" | cut -d'"' -f2)
per_connection=$(( (rate + connections - 1) / connections ))
echo "hey -z $duration -c $connections -q $per_connection (about $rate requests/s) POST /v1/payments"
hey -z "$duration" -c "$connections" -q "$per_connection" -m POST -T application/json \
  -d "{\"credit_line_id\":\"$first_line\",\"qr_payload\":\"$qr\",\"amount\":\"12.30\",\"context\":{\"device_id\":\"bench-device\",\"ip\":\"198.51.100.7\"}}" \
  $base/v1/payments | sed -n '/Summary/,/Slowest/p;/Requests\/sec/p;/Latency distribution/,/99%/p;/Status code/,/^$/p'
echo "server RSS after hey: $(ps -o rss= -p $server) KiB"
curl -s $base/v1/stats; echo
./target/release/xiezhi store check --data-dir "$data" | head -3
