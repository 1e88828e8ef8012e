#!/usr/bin/env bash
# Fuzzes every operation in the API document against a real server with schemathesis (from
# PyPI): no answer may be a 5xx, and every answer must be what the document says (status,
# content type, headers, body schema); then scripts/openapi_journey.py walks a payment
# through its life and holds each answer to the document. Installs schemathesis into
# $CARGO_TARGET_DIR (or target/)/schemathesis-venv
# once; builds the binary unless XIEZHI_BIN names one. Used by scripts/test (so by CI).
# SCHEMATHESIS_MAX_EXAMPLES sets the examples per operation (default 40).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
venv="$target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing schemathesis from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4.32,<5'
fi
xiezhi=${XIEZHI_BIN:-$target/debug/xiezhi}
[ -n "${XIEZHI_BIN:-}" ] || cargo build -q -p xiezhi-cli
data=$(mktemp -d)
# The admin key lives only in this process's environment.
key="xz_schemathesis_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
XIEZHI_BOOTSTRAP_ADMIN_KEY="$key" RUST_LOG=warn "$xiezhi" serve --listen 127.0.0.1:0 --data-dir "$data" \
  --phone-gateway 127.0.0.1:0 > "$data/stdout.log" 2> "$data/stderr.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$data/stdout.log" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://127.0.0.1:[0-9]*' "$data/stdout.log" | head -1 || true)
[ -n "$base" ] || { echo "the server did not start:"; cat "$data/stderr.log"; exit 1; }
status=0
# One worker: on Python 3.11 the AST builder keeps its recursion depth in per-interpreter
# state, so hypothesis parsing its lambdas' source in two threads at once can fail with
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905 and its
# kin), an error of the fuzzer, not a finding about the API.
"$venv/bin/schemathesis" run "$base/openapi.json" --url "$base" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" --seed 12 --workers 1 \
  --suppress-health-check all --warnings off --report junit,har --report-dir "${SCHEMATHESIS_REPORT_DIR:-$data/report}" || status=$?
# What schemathesis cannot reach alone: a payment's journey, each answer held to the document.
phone=$(grep -o 'http://127.0.0.1:[0-9]*/messages' "$data/stdout.log" | head -1 || true)
"$venv/bin/python" scripts/openapi_journey.py "$base" "$key" "$phone" "$(cat "$data/phone-gateway.token")" || status=$?
if [ $status -ne 0 ]; then
  echo "--- server stderr (last 40 lines)"; tail -40 "$data/stderr.log"
fi
# The server must still be up and its books must balance after the fuzzing.
kill -0 $server 2>/dev/null || { echo "the server died under schemathesis"; exit 1; }
exit $status
