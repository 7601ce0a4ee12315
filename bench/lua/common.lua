-- Shared by every benchmark script: request headers from the environment and a JSON summary.
--
-- BENCH_METHOD  GET or POST (default GET)
-- BENCH_HEADERS header lines "Name: value", separated by newlines
-- BENCH_BODY    a fixed request body (static.lua)
-- done() prints one line "BENCH_JSON {...}" that bench/run.py parses.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers = wrk.headers or {}
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
   local name, value = line:match("^([^:]+):%s*(.*)$")
   if name then
      wrk.headers[name] = value
   end
end

bench_threads = {}

local function summary_json(summary, latency, extra)
   local e = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
                    e.connect, e.read, e.write, e.status, e.timeout),
      string.format('"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}',
                    latency:percentile(50), latency:percentile(90), latency:percentile(99),
                    latency.max, latency.mean),
   }
   if extra then
      table.insert(parts, extra)
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function bench_done(summary, latency, extra)
   io.write("BENCH_JSON " .. summary_json(summary, latency, extra) .. "\n")
end

function done(summary, latency, requests)
   bench_done(summary, latency, nil)
end
