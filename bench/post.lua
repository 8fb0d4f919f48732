-- wrk script: signed Zapier-style webhooks, each with its own request_id (no duplicates).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = string.format("%s-%d", os.getenv("BENCH_RUN") or "run", tid)
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"request_id": "%s-%d", "lead_id": %d, "phone": "300 123 4567", ' ..
    '"callback_at": "2030-12-01T10:30:00-05:00"}', prefix, counter, tid * 10000000 + counter)
  return wrk.format("POST", "/hooks/zapier",
    {["Content-Type"] = "application/json", ["X-Bridge-Token"] = "bench-secret"}, body)
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.3f, "p50_ms": %.2f, "p90_ms": %.2f, ' ..
    '"p99_ms": %.2f, "max_ms": %.2f, "errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    non2xx))
end
