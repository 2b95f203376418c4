-- Crash safety of mg.save: a writer process saving in a loop is SIGKILLed at
-- random moments; after every kill the checkpoint must load and be exactly
-- one complete version (its 1 MB tensor filled with its version number).
local mg = require("moongrad")
local T = mg.test()

local runner = arg[-1] or ((os.getenv("MG_BUILD") or "build") .. "/moongrad")
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local ck, child = dir .. "/ck.safetensors", dir .. "/writer.lua"
local N = 262144

local f = assert(io.open(child, "w"))
f:write([[
local mg = require("moongrad")
local path, n = arg[1], tonumber(arg[2])
local v = mg.load(path).version
local w = mg.zeros(n)
while true do
  v = v + 1
  w:fill_(v)
  mg.save(path, { version = v, w = w, tag = "v" .. v })
end
]])
f:close()

mg.save(ck, { version = 0, w = mg.zeros(N), tag = "v0" })
mg.manual_seed(1234)
local rounds, bad, last, went_back = 12, 0, 0, false
for i = 1, rounds do
  local ms = 20 + math.floor(mg.rand(1):get(1) * 180) -- 20..200 ms
  os.execute(("'%s' '%s' '%s' %d >/dev/null 2>&1 & pid=$!; sleep %.3f; kill -9 $pid; wait $pid 2>/dev/null")
    :format(runner, child, ck, N, ms / 1000))
  local okl, c = pcall(mg.load, ck)
  local consistent = okl and type(c.version) == "number" and c.tag == "v" .. c.version and c.w:numel() == N
    and c.w:get(1) == c.version and c.w:get(N // 2) == c.version and c.w:get(N) == c.version
  if not consistent then
    bad = bad + 1
    T:diag(("round %d (kill after %d ms): %s"):format(i, ms, okl and "inconsistent contents" or tostring(c)))
  else
    if c.version < last then went_back = true end
    last = c.version
  end
end
T:eq(bad, 0, ("after each of %d kills the checkpoint loads and is one complete version"):format(rounds))
T:ok(not went_back, "versions never go backwards across kills")
T:ok(last > rounds, ("the writers made progress (reached version %d)"):format(last))
local function ntmps()
  local p = io.popen("ls '" .. dir .. "' | grep -c '\\.tmp\\.'")
  local k = tonumber(p:read("a")) or 0
  p:close()
  return k
end
local ntmp = ntmps()
T:diag(("%d kills interrupted a write (temporary files left behind)"):format(ntmp))
T:ok(ntmp >= 0 and ntmp <= rounds, "at most one stale temporary file per killed writer")
mg.save(ck, { version = last + 1, w = mg.zeros(4), tag = "final" })
T:eq(ntmps(), 0, "the next successful save removes the killed writers' temporaries")
os.execute("rm -rf '" .. dir .. "'")
T:done()
