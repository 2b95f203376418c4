-- Tiny ops keep a flat footprint without collectgarbage(): one-element tensors
-- live in one recycled block each (header, storage and data) and autodiff nodes
-- are recycled, so a long loop of them must neither grow the resident set nor
-- leak tensor bytes.
local mg = require("moongrad")
local T = mg.test()

local function rss_mb()  -- resident set in MiB (nil where the system does not say)
  local rss = mg.memory().rss
  return rss and rss / 2 ^ 20
end

local a, b = mg.tensor({1}), mg.tensor({2})
local x = mg.tensor({0.5}, {requires_grad = true, dtype = "float64"})
local live0 = mg.memory().live
local function run(n)
  local c
  for _ = 1, n do c = a + b end
  for _ = 1, n // 10 do
    local y = (x * 2 + 1):tanh() * x
    y:backward()
  end
  return c
end

run(50000)
local before = rss_mb()
local c = run(300000)
local after = rss_mb()
T:ok(before ~= nil, "can read /proc/self/statm")
T:ok(after - before < 8, ("300k adds and 30k small backwards grow the resident set by under 8 MB (%.1f MB)"):format(after - before))
T:eq(c:item(), 3, "the last sum is right")
local d = math.tanh(2) + 0.5 * 2 * (1 - math.tanh(2) ^ 2)  -- d/dx of tanh(2x + 1) * x at 0.5
T:near(x.grad:item(), 35000 * d, 1e-6, "the gradient accumulated over all 35k backwards")
T:eq(mg.memory().live, live0, "no tensor storage bytes outstanding")
T:done()
