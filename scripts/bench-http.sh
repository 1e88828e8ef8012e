#!/usr/bin/env bash
# HTTP load benchmark: POST /v1/payments over loopback.
# Usage: scripts/bench-http.sh [connections] [duration] [rate]   (defaults: 64 30s 5000)
# Builds the release binary, starts a server on a fresh data directory, seeds a merchant and
# credit lines (LINES, default 100,000), then runs two loads from the same machine, each request
# from its own shopper (a device and home network per line, as the risk engine expects):
#   1. wrk (Debian package `wrk`), closed loop: the most the server takes (saturation);
#   2. `xiezhi bench http`, open loop at a fixed rate: latency at that rate, counted from
#      when each request was due.
# Prints both reports, the server's RSS, and checks the books afterwards.
# TOKIO_WORKER_THREADS sets the server's HTTP worker threads (default 2).
# XIEZHI_BIN runs another build (say, the previous commit's) instead of building this tree.
# Every request carries the bootstrap admin key (builds before API keys ignore the header).
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-64}
duration=${2:-30s}
rate=${3:-5000}
port=18181
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
xiezhi=${XIEZHI_BIN:-./target/release/xiezhi}
[ -n "${XIEZHI_BIN:-}" ] || cargo build --release -q -p xiezhi-cli
data=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
# The key exists only in this process's environment and the 0600 data directory.
export XIEZHI_API_KEY="xz_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
auth="Authorization: Bearer $XIEZHI_API_KEY"
# One key sends everything here, faster than the default per-key limit allows: raise the
# limits (they are still checked on every request) on builds that have them.
limits=()
"$xiezhi" serve --help | grep -q rate-limit-key-per-s && limits=(--rate-limit-key-per-s 1000000 --rate-limit-ip-per-s 1000000)
RUST_LOG=warn TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-2} XIEZHI_BOOTSTRAP_ADMIN_KEY="$XIEZHI_API_KEY" "$xiezhi" serve --listen 127.0.0.1:$port --data-dir "$data" "${limits[@]}" > "$data/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$port
# An established merchant (brand-new ones meet the engine's new-merchant rules); builds from
# before `onboarded_at` refuse the field, so fall back to a plain one for them.
merchant='{"name":"Bench Mart","city":"Hangzhou","country":"CN","mcc":"5411","currency":"CNY"'
qr=$( (curl -sf -X POST $base/v1/merchants -H "$auth" -H 'content-type: application/json' -d "$merchant,\"onboarded_at\":\"2025-01-01T00:00:00Z\"}" \
  || curl -sf -X POST $base/v1/merchants -H "$auth" -H 'content-type: application/json' -d "$merchant}") | sed -E 's/.*"qr_payload":"([^"]+)".*/\1/')
# Enough shoppers that each pays a few times a minute at most, as people do: with a
# thousand lines every shopper would pay several times a second, and the engine would
# (rightly) step them up.
"$xiezhi" bench seed-lines --target $base --count "${LINES:-100000}" --out "$data/lines.txt"
script="$data/payments.lua"
{ echo "LINES_FILE = \"$data/lines.txt\""; echo "QR = \"$qr\""; echo "API_KEY = \"$XIEZHI_API_KEY\""; cat bench/payments.lua; } > "$script"
echo "wrk -t2 -c$connections -d$duration --latency POST /v1/payments"
wrk -t2 -c"$connections" -d"$duration" --latency -s "$script" $base
echo "server RSS after wrk: $(ps -o rss= -p $server) KiB"
echo "xiezhi bench http --rate $rate --duration-secs ${duration%s} --connections $connections"
"$xiezhi" bench http --target $base --lines-file "$data/lines.txt" --qr "$qr" \
  --rate "$rate" --duration-secs "${duration%s}" --connections "$connections" ${BENCH_HTTP_FLAGS:-}
echo "server RSS after the open-loop run: $(ps -o rss= -p $server) KiB"
curl -s -H "$auth" $base/v1/stats; echo
"$xiezhi" store check --data-dir "$data" | head -3
