-- wrk script: POST /v1/orders with a distinct customer per request, spread over
-- a handful of SKUs. Counts answers by status so a run can prove every request
-- got a 201 (wrk itself only reports "non-2xx").
local thread_count = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  skus = tonumber(os.getenv("WRK_SKUS") or "8")
  -- The credential orders carry (a service or the admin token), if any.
  token = os.getenv("WRK_TOKEN")
  counter = 0
  statuses = {}
  -- WRK_MAX_ANSWERS: this thread stops once it has had that many answers
  -- (a fixed amount of work, for instruction counts); unset, it runs for
  -- wrk's duration.
  max_answers = tonumber(os.getenv("WRK_MAX_ANSWERS") or "0")
  answers = 0
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"sku":"BENCH-%d","quantity":1,"customer_id":"c-%d-%d"}',
    counter % skus, id, counter)
  local headers = { ["Content-Type"] = "application/json" }
  if token then
    headers["Authorization"] = "Bearer " .. token
  end
  return wrk.format("POST", "/v1/orders", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answers = answers + 1
  if max_answers > 0 and answers >= max_answers then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, count in pairs(s) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  for status, count in pairs(totals) do
    io.write(string.format("status %d: %d\n", status, count))
  end
  io.write(string.format("latency_us p50 %d p99 %d max %d\n",
    latency:percentile(50), latency:percentile(99), latency.max))
end
