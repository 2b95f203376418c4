-- Tensor memory counts toward Lua's GC: allocating and dropping 2 GB worth of
-- 4 MB tensors keeps the resident set small, with no collectgarbage() here.
local mg = require("moongrad")
local T = mg.test()

local function rss_mb()  -- resident set in MiB (nil where the system does not say)
  local rss = mg.memory().rss
  return rss and rss / 2 ^ 20
end

local before = rss_mb()
local peak = 0
for i = 1, 512 do                       -- 512 x 4 MB = 2 GB
  local t = mg.empty(1024 * 1024)       -- 4 MB of float32
  t:fill_(i)
  if i % 32 == 0 then peak = math.max(peak, rss_mb() or 0) end
end
T:ok(before ~= nil, "can read /proc/self/statm")
T:ok(peak < 300, ("resident memory stays under 300 MB while allocating 2 GB (peak %.0f MB)"):format(peak))
T:ok(mg.memory().live < 300 * 2 ^ 20, ("live tensor bytes stay bounded (%.0f MB)"):format(mg.memory().live / 2 ^ 20))

-- same in a training-like loop with autodiff graphs
local w = mg.randn(512, 512, {requires_grad = true})
for _ = 1, 60 do
  local x = mg.randn(512, 512)
  local y = ((x * w):tanh() * 2):exp()
  y:backward(mg.ones(512, 512))
end
peak = rss_mb()
T:ok(peak < 300, ("a loop of forward/backward keeps a flat footprint (%.0f MB)"):format(peak))
T:done()
