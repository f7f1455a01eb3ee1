-- wrk script for bench/http_intake.py: POSTs Open311 service requests, each carrying a
-- unique token in its description, and records the service_request_id of every accepted
-- one so that the benchmark can check afterwards that each is stored exactly once.
--
-- Environment: BENCH_RUN (token prefix), BENCH_KEY (api_key), BENCH_BBOX ("x0,y0,x1,y1"),
-- BENCH_CODES (comma-separated service codes), BENCH_OUT (file for the accepted ids).

local run = os.getenv("BENCH_RUN") or "run"
local key = os.getenv("BENCH_KEY") or ""
local out = os.getenv("BENCH_OUT") or "/tmp/wrk-accepted.txt"
local x0, y0, x1, y1 = (os.getenv("BENCH_BBOX") or "104,30,104.1,30.1"):match(
  "([^,]+),([^,]+),([^,]+),([^,]+)")
x0, y0, x1, y1 = tonumber(x0), tonumber(y0), tonumber(x1), tonumber(y1)
local codes = {}
for code in (os.getenv("BENCH_CODES") or "C0101"):gmatch("[^,]+") do codes[#codes + 1] = code end

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  sent = 0
  accepted = {}
  refused = 0
  math.randomseed(id * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  sent = sent + 1
  local lon = x0 + math.random() * (x1 - x0)
  local lat = y0 + math.random() * (y1 - y0)
  local body = string.format(
    "api_key=%s&service_code=%s&lat=%.7f&long=%.7f&description=%s-%d-%d",
    key, codes[math.random(#codes)], lat, lon, run, id, sent)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status == 200 or status == 201 then
    local sid = body:match('"service_request_id":%s*"(%d+)"')
    if sid then accepted[#accepted + 1] = sid else refused = refused + 1 end
  else
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local f = assert(io.open(out, "w"))
  local total, bad = 0, 0
  for _, thread in ipairs(threads) do
    local ids = thread:get("accepted")
    for _, sid in ipairs(ids) do f:write(sid, "\n") end
    total = total + #ids
    bad = bad + thread:get("refused")
  end
  f:close()
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_JSON {"requests": %d, "duration_us": %d, "accepted": %d, "refused": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"p50_ms": %.2f, "p90_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\n',
    summary.requests, summary.duration, total, bad,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
