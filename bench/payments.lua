-- wrk script: POST /v1/payments with a static QR code, spread over many credit lines, each
-- request with its own Idempotency-Key. LINES_FILE, QR and API_KEY are filled in by
-- scripts/bench-http.sh.
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  math.randomseed(os.time() + (tid or 0))
  LINES = {}
  for id in io.lines(LINES_FILE) do
    LINES[#LINES + 1] = id
  end
end

request = function()
  counter = counter + 1
  -- One shopper per line: their own phone and home network, as the risk engine expects of
  -- people (one device paying for every account is a device farm, and is declined).
  local index = math.random(#LINES)
  local line = LINES[index]
  local amount = string.format("%d.%02d", math.random(1, 80), math.random(0, 99))
  local i = index - 1
  local ip = string.format("fd00:%x:%x::9", math.floor(i / 65536), i % 65536)
  local body = '{"credit_line_id":"' .. line .. '","qr_payload":"' .. QR .. '","amount":"' .. amount ..
    '","context":{"device_id":"bench-dev-' .. (index - 1) .. '","ip":"' .. ip .. '","network":"wifi"}}'
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. API_KEY
  headers["Idempotency-Key"] = string.format("bench-%d-%d-%d", tid or 0, counter, math.random(1, 1000000000))
  return wrk.format("POST", "/v1/payments", headers, body)
end
