-- wrk script: POSTs Alertmanager webhooks built from a template that bench/run.py writes (from
-- examples/firing.json). Arguments after `--`:
--   1 template file: three lines - the body before the alerts, one alert with @FP@ where its fingerprint goes,
--     the body after the alerts
--   2 alerts per webhook
--   3 mode: "unique" (every alert of every request a new fingerprint) or "duplicate" (the same body every time)
--   4 fingerprint prefix (4 hex digits, unique per wrk invocation, so warm-up and measured runs never collide)
--   5 bearer token ("-" for none)
-- At the end it prints one line `WRK_JSON {...}` with the counts and the latency distribution (microseconds).

local head, alert_parts, tail
local per_request, mode, prefix
local counter = 0
local fixed_request

local function read_template(path)
  local file = assert(io.open(path, "r"))
  local lines = {}
  for line in file:lines() do
    lines[#lines + 1] = line
  end
  file:close()
  assert(#lines == 3, "template must have 3 lines")
  local parts = {}
  local rest = lines[2]
  while true do
    local at = rest:find("@FP@", 1, true)
    if at == nil then
      parts[#parts + 1] = rest
      break
    end
    parts[#parts + 1] = rest:sub(1, at - 1)
    rest = rest:sub(at + 4)
  end
  return lines[1], parts, lines[3]
end

local function next_fingerprint()
  counter = counter + 1
  return string.format("%s%012x", prefix, counter)
end

local function alert_json()
  local fp = next_fingerprint()
  return table.concat(alert_parts, fp)
end

local function body()
  local alerts = {}
  for i = 1, per_request do
    alerts[i] = alert_json()
  end
  return head .. table.concat(alerts, ",") .. tail
end

function init(args)
  head, alert_parts, tail = read_template(args[1])
  per_request = tonumber(args[2]) or 1
  mode = args[3] or "unique"
  prefix = args[4] or "0000"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[5] ~= nil and args[5] ~= "-" then
    wrk.headers["Authorization"] = "Bearer " .. args[5]
  end
  if mode == "duplicate" then
    fixed_request = wrk.format(nil, nil, nil, body())
  end
end

function request()
  if fixed_request ~= nil then
    return fixed_request
  end
  return wrk.format(nil, nil, nil, body())
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, '
      .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "latency_min_us": %d, '
      .. '"latency_mean_us": %.1f, "latency_max_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"p999_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read, errors.write, errors.status,
    errors.timeout, latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)
  ))
end
