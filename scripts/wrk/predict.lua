-- wrk -t1 -c64 -d15s --latency -s scripts/wrk/predict.lua http://127.0.0.1:8000 (BODIES=a file of request bodies,
-- one JSON object a line, e.g. {"texts": ["one sentence"]}): a load generator in C, to check serve_load.py
-- one UD sentence a request, each connection's thread cycling through them from its own offset
local bodies = {}
for line in io.lines(os.getenv("BODIES") or "bodies.txt") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function setup(thread) i = i + 1; thread:set("offset", i * 97) end
function init(args) i = offset or 0 end
function request()
  i = i % #bodies + 1
  return wrk.format(nil, "/predict", nil, bodies[i])
end
