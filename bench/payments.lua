-- wrk script: POST /v1/payments with a static QR code, spread over many credit lines, each
-- request with its own Idempotency-Key. LINES and QR are filled in by scripts/bench-http.sh.
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  math.randomseed(os.time() + (tid or 0))
end

request = function()
  counter = counter + 1
  local line = LINES[math.random(#LINES)]
  local amount = string.format("%d.%02d", math.random(1, 80), math.random(0, 99))
  local body = '{"credit_line_id":"' .. line .. '","qr_payload":"' .. QR .. '","amount":"' .. amount ..
    '","context":{"device_id":"bench-device","ip":"198.51.100.7","network":"wifi"}}'
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = string.format("bench-%d-%d-%d", tid or 0, counter, math.random(1, 1000000000))
  return wrk.format("POST", "/v1/payments", headers, body)
end
