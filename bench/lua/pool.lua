-- A fresh body per request, for single-use things (authorization codes, refresh tokens).
--
-- BENCH_POOL is a path prefix: thread i reads "<prefix>.<i>", one request body per line, and
-- sends each line once. When a thread runs out it repeats its last body (the server refuses
-- it, so the status errors show it) and done() reports "pool_exhausted".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local next_thread = 0

function setup(thread)
   thread:set("tid", next_thread)
   next_thread = next_thread + 1
   table.insert(bench_threads, thread)
end

function init(args)
   bodies = {}
   local path = os.getenv("BENCH_POOL") .. "." .. tid
   for line in io.lines(path) do
      bodies[#bodies + 1] = line
   end
   used = 0
   over = 0
   size = #bodies
end

function request()
   used = used + 1
   local body = bodies[used]
   if body == nil then
      over = over + 1
      body = bodies[size]
   end
   return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
   local used_total, size_total, over_total = 0, 0, 0
   for _, t in ipairs(bench_threads) do
      used_total = used_total + t:get("used")
      size_total = size_total + t:get("size")
      over_total = over_total + t:get("over")
   end
   bench_done(summary, latency, string.format('"pool":{"size":%d,"sent":%d,"exhausted":%d}',
                                              size_total, used_total, over_total))
end
