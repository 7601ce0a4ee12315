-- The same request every time: method, headers and an optional body from the environment.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
   wrk.body = body
end
