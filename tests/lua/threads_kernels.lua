-- moongrad's own kernel threads (runtime/mg_parallel.c): conv2d splits a batch into chunks of
-- images over rt->nthreads threads. Results must be bit-identical for every thread count
-- (gradients summed over chunks are added in chunk order), and gradients still check.
local mg = require("moongrad")
local T = mg.test()

-- one conv2d forward + backward on fixed data; returns y, gx, gw, gb as flat tables
local function run(threads, dtype, xshape, wshape, opts)
  mg.set_num_threads(threads)
  mg.manual_seed(7)
  local x = mg.randn(xshape, { dtype = dtype, requires_grad = true })
  local w = mg.randn(wshape, { dtype = dtype, requires_grad = true })
  local b = mg.randn(wshape[1], { dtype = dtype, requires_grad = true })
  local y = mg.conv2d(x, w, b, opts)
  local g = mg.randn(y:shape(), { dtype = dtype })
  y:backward(g)
  return y:totable(), x.grad:totable(), w.grad:totable(), b.grad:totable()
end

-- exact equality of nested tables of numbers
local function same(a, b)
  if type(a) ~= "table" then return a == b end
  if #a ~= #b then return false end
  for i = 1, #a do if not same(a[i], b[i]) then return false end end
  return true
end

local cases = {
  { "LeNet conv1 (many chunks)", { 64, 1, 28, 28 }, { 8, 1, 5, 5 } },
  { "LeNet conv2", { 64, 8, 12, 12 }, { 16, 8, 5, 5 } },
  { "padding, stride, groups", { 16, 4, 17, 13 }, { 6, 2, 3, 3 }, { stride = 2, padding = 1, groups = 2 } },
  { "one image per chunk", { 5, 16, 20, 20 }, { 8, 16, 3, 3 }, { padding = 1 } },
}
for _, c in ipairs(cases) do
  for _, dt in ipairs({ "float32", "float64" }) do
    local r1 = { run(1, dt, c[2], c[3], c[4]) }
    local r2 = { run(2, dt, c[2], c[3], c[4]) }
    local r3 = { run(3, dt, c[2], c[3], c[4]) }
    local names = { "output", "input gradient", "weight gradient", "bias gradient" }
    for k = 1, 4 do
      T:ok(same(r1[k], r2[k]) and same(r1[k], r3[k]), ("%s %s: %s identical on 1, 2 and 3 threads"):format(c[1], dt, names[k]))
    end
  end
end

-- the threaded path against finite differences (float64), and a no-grad forward
mg.set_num_threads(2)
mg.manual_seed(3)
local x = mg.randn(6, 2, 9, 9, { dtype = "float64", requires_grad = true })
local w = mg.randn(3, 2, 3, 3, { dtype = "float64", requires_grad = true })
local b = mg.randn(3, { dtype = "float64", requires_grad = true })
local ok, rep = mg.gradcheck(function(a, k, c) return mg.conv2d(a, k, c, { padding = 1 }) end, { x, w, b })
T:ok(ok, "conv2d gradcheck on 2 threads")
if not ok then T:diag(rep) end
local y2 = mg.no_grad(mg.conv2d, x, w, b, { padding = 1 })
mg.set_num_threads(1)
local y1 = mg.no_grad(mg.conv2d, x, w, b, { padding = 1 })
T:ok(same(y1:totable(), y2:totable()), "conv2d without grad: same values on 1 and 2 threads")
T:done()
