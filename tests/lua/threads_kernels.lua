-- moongrad's own kernel threads (runtime/mg_parallel.c): conv2d splits a batch into chunks of
-- images over rt->nthreads threads, and a large gemm is cut into blocks of rows or columns. Results must be bit-identical for every thread count
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

-- matmul split over threads: row blocks (M >= N) and column blocks (N > M), sizes that are not
-- multiples of the 16-row block, transposed operands, both dtypes; forward and both gradients
local function mm(threads, dtype, m, k, n, ta, tb)
  mg.set_num_threads(threads)
  mg.manual_seed(11)
  local a = ta and mg.randn(k, m, { dtype = dtype }):t() or mg.randn(m, k, { dtype = dtype })
  local b = tb and mg.randn(n, k, { dtype = dtype }):t() or mg.randn(k, n, { dtype = dtype })
  a:requires_grad_(); b:requires_grad_()
  local y = a:matmul(b)
  y:backward(mg.randn(m, n, { dtype = dtype }))
  return y, a.grad, b.grad
end
for _, c in ipairs({ { 200, 300, 70 }, { 64, 784, 256 }, { 37, 500, 301 }, { 256, 64, 784 } }) do
  for _, dt in ipairs({ "float32", "float64" }) do
    for _, tr in ipairs({ { false, false }, { true, false }, { false, true }, { true, true } }) do
      local m, k, n = c[1], c[2], c[3]
      local r1 = { mm(1, dt, m, k, n, tr[1], tr[2]) }
      local r2 = { mm(2, dt, m, k, n, tr[1], tr[2]) }
      local r3 = { mm(3, dt, m, k, n, tr[1], tr[2]) }
      local tag = ("matmul %dx%dx%d %s%s%s"):format(m, k, n, dt, tr[1] and " A^T" or "", tr[2] and " B^T" or "")
      -- float64: bit-identical. float32: OpenBLAS's sgemm kernel rounds a block of columns
      -- differently from the whole (1 ulp here and there), so a tolerance
      local worst = 0
      for i = 1, 3 do
        for _, r in ipairs({ r2, r3 }) do
          local d = (r1[i]:double() - r[i]:double()):abs():max():item() / r1[i]:abs():max():item()
          if d > worst then worst = d end
        end
      end
      if dt == "float64" then T:ok(worst == 0, tag .. ": output and gradients identical on 1, 2 and 3 threads")
      else T:ok(worst < 1e-5, ("%s: output and gradients agree on 1, 2 and 3 threads (max difference %.2g of the largest value)"):format(tag, worst)) end
      -- against a float64 product of the same numbers
      mg.set_num_threads(1)
      mg.manual_seed(11)
      local a = tr[1] and mg.randn(k, m, { dtype = dt }):t() or mg.randn(m, k, { dtype = dt })
      local b = tr[2] and mg.randn(n, k, { dtype = dt }):t() or mg.randn(k, n, { dtype = dt })
      local ref = a:double():matmul(b:double())
      mg.set_num_threads(2)
      local y2 = a:matmul(b)
      local err = (y2:double() - ref):abs():max():item()
      T:ok(err < (dt == "float32" and 1e-3 or 1e-10), ("%s: 2-thread product matches float64 (max error %.2g)"):format(tag, err))
    end
  end
end

-- pooling (planes), elementwise functions and binary ops (blocks of elements) split over threads: the same
-- values and gradients on 1, 2 and 3 threads, with shapes large enough to be split
local function pools(threads, dtype)
  mg.set_num_threads(threads)
  mg.manual_seed(13)
  local x = mg.randn(16, 8, 24, 26, { dtype = dtype, requires_grad = true })
  local a = mg.max_pool2d(x, 2)
  local b = mg.avg_pool2d(x, { 3, 3 }, { stride = 2, padding = 1 })
  local c = mg.max_pool2d(x, { 3, 2 }, { stride = { 2, 1 } })
  local d = x:relu() * x:tanh() + x:sigmoid():exp()
  local e = (x * 2 - x:exp()) / (x:abs() + 1) + x:gt(0):to(dtype) - mg.maximum(x, 0.5) ^ 2
  local loss = a:sum() + (b * b):sum() + c:mean() + d:sum() + e:sum()
  loss:backward()
  return { a, b, c, d, e, x.grad }
end
for _, dt in ipairs({ "float32", "float64" }) do
  local r1, r2, r3 = pools(1, dt), pools(2, dt), pools(3, dt)
  local names = { "max_pool2d 2x2", "avg_pool2d 3x3 padded", "max_pool2d 3x2 stride 2x1", "relu, tanh, sigmoid, exp",
                  "binary ops and comparisons with tensors and numbers", "input gradient through all of them" }
  for i = 1, #r1 do
    T:ok(r1[i]:ne(r2[i]):sum():item() == 0 and r1[i]:ne(r3[i]):sum():item() == 0,
         ("%s %s: identical on 1, 2 and 3 threads"):format(names[i], dt))
  end
end
mg.set_num_threads(1)
T:done()
