-- tests/lua/linalg.lua — matmul (every rank combination, batched broadcasting, strided
-- operands), dot, outer and linear: values, gradients, dtypes and misuse errors.
--
-- The table R was produced with PyTorch 1.13 (python3-torch) from the same inputs:
--   seq(shape, k) = torch.tensor([((i*k) % 13 - 6) / 4 for i in range(numel)], float64).view(shape)
--   a, b = seq(shape_a, 5), seq(shape_b, 7); y = a @ b; (y * seq(y.shape, 3)).sum().backward()
--   R.<case> = y, R.<case>_ga = a.grad, R.<case>_gb = b.grad
--   linear: x, W, b = seq((2,2,3), 5), seq((4,3), 7), seq((4,), 3); y = F.linear(x, W, b), same weighting;
--   R.outer = torch.outer(seq((3,), 5), seq((4,), 7)).
local mg = require("moongrad")
local T = mg.test()
local R = {}
R.dot = 0.9375
R.dot_ga = {2.25, -0.375, 1.875}
R.dot_gb = {2.25, 0.375, -1.5}
R.mm = {{2.0, 0.6875, 1.8125, 0.5}, {0.5, 1.8125, 0.6875, 2.0}}
R.mm_ga = {{2.4375, 1.6875, 0.9375}, {-1.9375, -1.5625, -1.1875}}
R.mm_gb = {{0.75, 2.125, 0.25, -1.625}, {0.75, -0.0625, -0.0625, -0.0625}, {0.75, -2.25, -0.375, 1.5}}
R.vm = {2.0, 0.6875, 1.8125, 0.5}
R.vm_ga = {2.4375, 1.6875, 0.9375}
R.vm_gb = {{2.25, 1.125, 0.0, -1.125}, {0.375, 0.1875, 0.0, -0.1875}, {-1.5, -0.75, 0.0, 0.75}}
R.mv = {0.9375, -0.3125}
R.mv_ga = {{2.25, -0.375, 1.875}, {1.125, -0.1875, 0.9375}}
R.mv_gb = {3.0, 0.1875, -2.625}
R.bm = {{{2.0, 0.6875, 1.8125, 0.5}, {0.5, 1.8125, 0.6875, 2.0}}, {{0.625, -1.125, 0.375, -1.375}, {-0.875, 0.0, -0.75, 0.125}}}
R.bm_ga = {{{2.4375, 1.6875, 0.9375}, {-1.9375, -1.5625, -1.1875}}, {{-1.4375, -1.5625, -1.6875}, {-0.9375, -1.5625, -2.1875}}}
R.bm_gb = {{0.125, 2.75, 0.5, -1.75}, {2.9375, -2.875, -1.375, 0.125}, {-1.5625, 0.4375, 0.8125, 1.1875}}
R.mb = {{{2.0, 0.6875, 1.8125, 0.5}, {0.5, 1.8125, 0.6875, 2.0}}, {{0.875, 2.0, 0.6875, 1.8125}, {1.625, 0.5, 1.8125, 0.6875}}}
R.mb_ga = {{3.875, 3.0, 2.125}, {0.125, -0.125, -0.375}}
R.mb_gb = {{{0.75, 2.125, 0.25, -1.625}, {0.75, -0.0625, -0.0625, -0.0625}, {0.75, -2.25, -0.375, 1.5}}, {{-2.875, 3.375, 1.5, -0.375}, {-0.0625, -0.0625, -0.0625, -0.0625}, {2.75, -3.5, -1.625, 0.25}}}
R.vb = {{2.0, 0.6875, 1.8125, 0.5}, {0.875, 2.0, 0.6875, 1.8125}}
R.vb_ga = {3.25, 2.875, 2.5}
R.vb_gb = {{{2.25, 1.125, -0.0, -1.125}, {0.375, 0.1875, -0.0, -0.1875}, {-1.5, -0.75, 0.0, 0.75}}, {{-2.25, 1.5, 0.375, -0.75}, {-0.375, 0.25, 0.0625, -0.125}, {1.5, -1.0, -0.25, 0.5}}}
R.bv = {{0.9375, -0.3125}, {2.5, 1.25}}
R.bv_ga = {{{2.25, -0.375, 1.875}, {1.125, -0.1875, 0.9375}}, {{-0.0, 0.0, -0.0}, {-1.125, 0.1875, -0.9375}}}
R.bv_gb = {3.0, 1.125, -3.1875}
R.bb = {{{1.5625, 0.25}, {-0.3125, 1.0}}, {{0.3125, -1.4375}, {-0.4375, 0.4375}}}
R.bb_ga = {{{2.0625, 1.5, 0.9375}, {0.1875, 0.375, 0.5625}}, {{-2.125, -2.0, -1.875}, {0.6875, 0.75, 0.8125}}}
R.bb_gb = {{{2.25, 0.375}, {0.375, 0.375}, {-1.5, 0.375}}, {{-0.75, 0.5}, {0.8125, -0.125}, {-1.6875, 0.875}}}
R.bcast = {{{{1.5625, 0.25}, {-0.3125, 1.0}}, {{1.0, -0.3125}, {0.25, 1.5625}}, {{0.4375, 1.5625}, {0.8125, -0.3125}}}, {{{1.0625, -0.6875}, {-0.8125, 0.0625}}, {{0.3125, -1.4375}, {-0.4375, 0.4375}}, {{-0.4375, 1.0625}, {-0.0625, -0.8125}}}}
R.bcast_ga = {{{{1.8125, 1.375, 0.9375}, {0.5, 0.6875, 0.875}}}, {{{-2.8125, -1.9375, -1.0625}, {2.375, 1.4375, 0.5}}}}
R.bcast_gb = {{{1.75, 1.125}, {0.1875, -0.75}, {-2.1875, 2.25}}, {{-2.375, 0.25}, {-1.125, 1.1875}, {0.9375, -1.9375}}, {{-1.625, 1.0}, {-1.625, 0.6875}, {0.8125, -2.0625}}}
R.lin = {{{-0.5625, -0.5, 0.375, 0.4375}, {-1.8125, -0.375, 0.25, 1.6875}}, {{1.0, -2.6875, 1.75, -1.9375}, {-0.25, -2.5625, 1.625, -0.6875}}}
R.lin_gx = {{{2.8125, 0.1875, 2.4375}, {-1.9375, 1.0, -1.75}}, {{-1.8125, 1.0, -1.875}, {-1.6875, 1.0, -2.0}}}
R.lin_gw = {{0.125, 2.9375, -1.5625}, {2.75, -2.875, 0.4375}, {0.5, -1.375, 0.8125}, {-1.75, 0.125, 1.1875}}
R.lin_gb = {2.25, -4.5, -1.5, 1.5}
R.lin_nob = {{{0.9375, 0.25, 0.375, -0.3125}, {-0.3125, 0.375, 0.25, 0.9375}}, {{2.5, -1.9375, 1.75, -2.6875}, {1.25, -1.8125, 1.625, -1.4375}}}
R.outer = {{2.25, -0.375, 1.875, -0.75}, {0.375, -0.0625, 0.3125, -0.125}, {-1.5, 0.25, -1.25, 0.5}}

local function shape(t) return table.concat(t:shape(), ",") end
local function seq(sh, k, opts)
  local n = 1
  for _, s in ipairs(sh) do n = n * s end
  local v = {}
  for i = 0, n - 1 do v[#v + 1] = ((i * k) % 13 - 6) / 4 end
  opts = opts or {}
  local t = mg.tensor(v, {dtype = opts.dtype or "float64"}):view(sh)
  if opts.requires_grad then t:requires_grad_() end
  return t
end

-- ---- every rank combination: values and gradients against PyTorch ----------------------
local cases = {
  {"dot", {3}, {3}, ""}, {"mm", {2, 3}, {3, 4}, "2,4"}, {"vm", {3}, {3, 4}, "4"}, {"mv", {2, 3}, {3}, "2"},
  {"bm", {2, 2, 3}, {3, 4}, "2,2,4"}, {"mb", {2, 3}, {2, 3, 4}, "2,2,4"}, {"vb", {3}, {2, 3, 4}, "2,4"},
  {"bv", {2, 2, 3}, {3}, "2,2"}, {"bb", {2, 2, 3}, {2, 3, 2}, "2,2,2"}, {"bcast", {2, 1, 2, 3}, {3, 3, 2}, "2,3,2,2"},
}
for _, c in ipairs(cases) do
  local name, sa, sb, want = c[1], c[2], c[3], c[4]
  for _, dt in ipairs({"float32", "float64"}) do
    local tol = dt == "float32" and 1e-6 or 1e-12
    local a, b = seq(sa, 5, {dtype = dt, requires_grad = true}), seq(sb, 7, {dtype = dt, requires_grad = true})
    local y = mg.matmul(a, b)
    T:eq(shape(y), want, ("%s %s: {%s} @ {%s} has shape {%s}"):format(dt, name, table.concat(sa, ","), table.concat(sb, ","), want))
    T:near(y, R[name], tol, dt .. " " .. name .. " values")
    T:eq(y:dtype(), dt, dt .. " " .. name .. " dtype")
    local w = seq(y:shape(), 3, {dtype = dt})
    ;(y * w):sum():backward()
    T:near(a.grad, R[name .. "_ga"], tol, dt .. " " .. name .. " grad of a")
    T:near(b.grad, R[name .. "_gb"], tol, dt .. " " .. name .. " grad of b")
  end
  local a, b = mg.randn(sa, {dtype = "float64", requires_grad = true}), mg.randn(sb, {dtype = "float64", requires_grad = true})
  local ok, rep = mg.gradcheck(mg.matmul, {a, b})
  T:ok(ok, "gradcheck matmul " .. name)
  if not ok then T:diag(rep) end
end
T:near(seq({2, 3}, 5):matmul(seq({3, 4}, 7)), R.mm, 1e-12, "a:matmul(b) method")
T:eq(shape(mg.matmul(mg.zeros(2, 1, 3, 4), mg.zeros(5, 4, 6))), "2,5,3,6", "{2,1,3,4} @ {5,4,6} -> {2,5,3,6}")
T:eq(shape(mg.matmul(mg.zeros(7, 1, 2, 3), mg.zeros(1, 5, 3, 2))), "7,5,2,2", "both batch dims broadcast")

-- batched broadcast against a plain Lua triple loop
do
  mg.manual_seed(3)
  local a, b = mg.randn(2, 1, 3, 4, {dtype = "float64"}), mg.randn(5, 4, 6, {dtype = "float64"})
  local y, bad = mg.matmul(a, b), 0
  local at, bt, yt = a:totable(), b:totable(), y:totable()
  for i = 1, 2 do for j = 1, 5 do for r = 1, 3 do for c = 1, 6 do
    local s = 0
    for k = 1, 4 do s = s + at[i][1][r][k] * bt[j][k][c] end
    if math.abs(s - yt[i][j][r][c]) > 1e-12 then bad = bad + 1 end
  end end end end
  T:eq(bad, 0, "{2,1,3,4} @ {5,4,6} matches a naive loop in every element")
end

-- ---- strided operands: transposes go to BLAS as they are, other layouts are packed ------
do
  mg.manual_seed(5)
  local A, B = mg.randn(5, 4, {dtype = "float64"}), mg.randn(6, 5, {dtype = "float64"})
  local ref = mg.matmul(A:t():contiguous(), B:t():contiguous())
  T:near(mg.matmul(A:t(), B:t()), ref, 1e-12, "transposed @ transposed")
  T:near(mg.matmul(A:t(), B:t():contiguous()), ref, 1e-12, "transposed @ contiguous")
  T:near(mg.matmul(A:t():contiguous(), B:t()), ref, 1e-12, "contiguous @ transposed")
  local W = mg.randn(4, 9, {dtype = "float64"})
  local Wn = W:narrow(2, 3, 5)  -- rows longer than the matrix: a leading dimension > cols
  T:near(mg.matmul(Wn, B:t()), mg.matmul(Wn:contiguous(), B:t():contiguous()), 1e-12, "narrowed columns (ld > cols)")
  T:near(mg.matmul(Wn:t(), Wn), mg.matmul(Wn:t():contiguous(), Wn:contiguous()), 1e-12, "transposed narrowed view")
  local e = mg.randn(5, 1, {dtype = "float64"}):expand(5, 3)  -- stride 0
  T:near(mg.matmul(A:t(), e), mg.matmul(A:t():contiguous(), e:contiguous()), 1e-12, "expanded operand (stride 0)")
  local P = mg.randn(3, 4, 2, {dtype = "float64"}):permute(3, 1, 2)  -- {2,3,4}, permuted batch
  local Q = mg.randn(4, 2, {dtype = "float64"})
  T:near(mg.matmul(P, Q), mg.matmul(P:contiguous(), Q), 1e-12, "permuted batched operand")
  local v = mg.randn(5, 3, {dtype = "float64"}):select(2, 2)  -- a strided vector
  T:near(mg.matmul(A:t(), v), mg.matmul(A:t():contiguous(), v:contiguous()), 1e-12, "strided vector")
  T:near(mg.dot(v, v), mg.dot(v:contiguous(), v:contiguous()), 1e-12, "dot of strided vectors")
  -- matrix-vector products (gemv) with every operand layout
  local u = mg.randn(4, 2, {dtype = "float64"}):select(2, 1)  -- 4 elements, stride 2
  local Bt = B:t()  -- {5,6}, transposed
  T:near(mg.matmul(u, A:t():contiguous()), mg.matmul(u:contiguous(), A:t():contiguous()), 1e-12, "strided vector @ matrix")
  T:near(mg.matmul(v, Bt), mg.matmul(v:contiguous(), Bt:contiguous()), 1e-12, "strided vector @ transposed matrix")
  T:near(mg.matmul(v:unsqueeze(1), Bt), mg.matmul(v:contiguous():view(1, 5), Bt:contiguous()), 1e-12, "{1,5} @ transposed {5,6}")
  T:near(mg.matmul(Bt:t(), v), mg.matmul(B, v:contiguous()), 1e-12, "matrix @ strided vector")
  T:near(mg.matmul(A:t(), v:unsqueeze(2)), mg.matmul(A:t():contiguous(), v:contiguous():view(5, 1)), 1e-12,
         "transposed {4,5} @ {5,1}")
  T:near(mg.matmul(A:t():narrow(1, 2, 1), Bt), mg.matmul(A:t():contiguous():narrow(1, 2, 1), Bt:contiguous()), 1e-12,
         "a one-row slice of a transposed matrix @ transposed matrix")
  T:near(mg.linear(v, Bt:t()), mg.matmul(Bt:t():contiguous(), v:contiguous()), 1e-12, "linear of a strided vector")
  local function rg(t) return mg.tensor(t, {dtype = "float64", requires_grad = true}) end
  local a, b = rg(mg.randn(4, 3)), rg(mg.randn(5, 4))
  local function check(name, fn, ins)
    local ok, rep = mg.gradcheck(fn, ins)
    T:ok(ok, "gradcheck " .. name)
    if not ok then T:diag(rep) end
  end
  check("matmul of transposed operands", function(x, y) return mg.matmul(x:t(), y:t()) end, {a, b})
  check("matmul of a narrowed operand", function(x, y) return mg.matmul(y:narrow(2, 2, 3), x:narrow(1, 1, 3)) end, {a, b})
  check("matmul with an expanded batch", function(x, y) return mg.matmul(x:unsqueeze(1):expand(2, 4, 3), y:narrow(2, 1, 3):t()) end, {a, b})
  check("matrix-vector products", function(x, y) return mg.matmul(x:select(2, 2), y:t()) + mg.matmul(y, x:select(2, 1)) end, {a, b})
  check("linear of a batch of one", function(x, y) return mg.linear(x:t():narrow(1, 2, 1), y) end, {a, b})
  check("matmul of a permuted batch", function(x) return mg.matmul(x:view(2, 2, 3):permute(2, 1, 3), x:t()) end, {a})
end

-- ---- dtypes ------------------------------------------------------------------------------
do
  mg.manual_seed(11)
  local a64, b64 = mg.randn(16, 32, {dtype = "float64"}), mg.randn(32, 8, {dtype = "float64"})
  T:near(mg.matmul(a64:float(), b64:float()), mg.matmul(a64, b64), 1e-5, "float32 matmul (sgemm) agrees with float64 (dgemm)")
  local a = mg.randn(3, 4, {requires_grad = true})
  local b = mg.randn(4, 2, {dtype = "float64", requires_grad = true})
  local y = mg.matmul(a, b)
  T:eq(y:dtype(), "float64", "float32 @ float64 computes in float64")
  y:sum():backward()
  T:eq(a.grad:dtype() .. " " .. b.grad:dtype(), "float32 float64", "mixed-dtype gradients come back in each input's dtype")
  T:near(a.grad, mg.ones(3, 2, {dtype = "float64"}):matmul(b:detach():t()), 1e-6, "mixed-dtype grad of a")
end

-- ---- empty dims -------------------------------------------------------------------------------
T:eq(shape(mg.matmul(mg.zeros(0, 3), mg.zeros(3, 4))), "0,4", "{0,3} @ {3,4} -> {0,4}")
T:near(mg.matmul(mg.ones(2, 0), mg.ones(0, 3)), {{0, 0, 0}, {0, 0, 0}}, 0, "{2,0} @ {0,3} is zeros")
T:near(mg.dot(mg.zeros(0), mg.zeros(0)), 0, 0, "dot of empty vectors is 0")
T:near(mg.linear(mg.ones(2, 0), mg.ones(3, 0), mg.tensor({1, 2, 3})), {{1, 2, 3}, {1, 2, 3}}, 0, "linear with 0 inputs gives the bias")

-- ---- dot, outer ----------------------------------------------------------------------------
T:near(seq({3}, 5):dot(seq({3}, 7)), R.dot, 1e-12, "a:dot(b)")
T:near(mg.dot(seq({3}, 5, {dtype = "float32"}), seq({3}, 7, {dtype = "float32"})), R.dot, 1e-6, "float32 dot")
T:near(mg.outer(seq({3}, 5), seq({4}, 7)), R.outer, 1e-12, "mg.outer")
T:near(seq({3}, 5, {dtype = "float32"}):outer(seq({4}, 7, {dtype = "float32"})), R.outer, 1e-6, "float32 outer method")
do
  local a, b = mg.randn(4, {dtype = "float64", requires_grad = true}), mg.randn(4, {dtype = "float64", requires_grad = true})
  local c = mg.randn(3, {dtype = "float64", requires_grad = true})
  local ok, rep = mg.gradcheck(mg.dot, {a, b})
  T:ok(ok, "gradcheck dot"); if not ok then T:diag(rep) end
  ok, rep = mg.gradcheck(mg.outer, {a, c})
  T:ok(ok, "gradcheck outer"); if not ok then T:diag(rep) end
  ok, rep = mg.gradcheck(function(x, y) return mg.outer(x:narrow(1, 2, 2), y) end, {a, c})
  T:ok(ok, "gradcheck outer of a narrowed vector"); if not ok then T:diag(rep) end
end

-- ---- linear --------------------------------------------------------------------------------
for _, dt in ipairs({"float32", "float64"}) do
  local tol = dt == "float32" and 1e-6 or 1e-12
  local o = {dtype = dt, requires_grad = true}
  local x, W, b = seq({2, 2, 3}, 5, o), seq({4, 3}, 7, o), seq({4}, 3, o)
  local y = mg.linear(x, W, b)
  T:eq(shape(y), "2,2,4", dt .. " linear {2,2,3} x {4,3} -> {2,2,4}")
  T:near(y, R.lin, tol, dt .. " linear values")
  ;(y * seq({2, 2, 4}, 3, {dtype = dt})):sum():backward()
  T:near(x.grad, R.lin_gx, tol, dt .. " linear grad of x")
  T:near(W.grad, R.lin_gw, tol, dt .. " linear grad of w")
  T:near(b.grad, R.lin_gb, tol, dt .. " linear grad of b")
  T:near(mg.linear(x, W), R.lin_nob, tol, dt .. " linear without bias")
end
do
  mg.manual_seed(13)
  local function rg(sh) return mg.randn(sh, {dtype = "float64", requires_grad = true}) end
  local x, W, b = rg({3, 4}), rg({5, 4}), rg({5})
  local function check(name, fn, ins)
    local ok, rep = mg.gradcheck(fn, ins)
    T:ok(ok, "gradcheck linear " .. name)
    if not ok then T:diag(rep) end
  end
  check("2-D with bias", mg.linear, {x, W, b})
  check("2-D without bias", function(p, q) return mg.linear(p, q) end, {x, W})
  check("3-D input", function(p, q, r) return mg.linear(p:view(3, 2, 2):transpose(2, 3):reshape(3, 1, 4), q, r) end, {x, W, b})
  check("1-D input", function(p, q, r) return mg.linear(p:select(1, 2), q, r) end, {x, W, b})
  check("transposed input and weight", function(p, q, r) return mg.linear(p:t():t(), q:t():contiguous():t(), r) end, {x, W, b})
  check("column-narrowed input", function(p, q, r) return mg.linear(p:narrow(2, 2, 3), q:narrow(2, 1, 3), r) end, {x, W, b})
  local X2 = mg.randn(6, 3, {dtype = "float64"})
  T:near(mg.linear(X2:t():t(), W:detach():narrow(2, 1, 3)), mg.matmul(X2, W:detach():narrow(2, 1, 3):t()), 1e-12,
         "linear(x, w) == x @ w^T")
  local y = mg.linear(mg.randn(2, 4), mg.randn(5, 4, {dtype = "float64"}), mg.randn(5))
  T:eq(y:dtype(), "float64", "linear with a float64 weight computes in float64")
end

-- ---- misuse -----------------------------------------------------------------------------------
T:raises(function() return mg.matmul(mg.zeros(64, 784), mg.zeros(10, 256)) end,
         "matmul: shapes {64,784} and {10,256} do not match (784 ~= 10)")
T:raises(function() return mg.matmul(mg.zeros(3), mg.zeros(4)) end, "matmul: shapes {3} and {4} do not match (3 ~= 4)")
T:raises(function() return mg.matmul(mg.zeros(2, 3, 4), mg.zeros(5, 6)) end, "matmul: shapes {2,3,4} and {5,6} do not match (4 ~= 5)")
T:raises(function() return mg.matmul(mg.tensor(2), mg.zeros(3)) end, "matmul: both arguments need at least 1 dim, got shapes {} and {3}")
T:raises(function() return mg.matmul(mg.zeros(2, 3, 4), mg.zeros(3, 4, 5)) end,
         "matmul: batch dims of shapes {2,3,4} and {3,4,5} cannot be broadcast (size 2 vs 3 at batch dim 1)")
T:raises(function() return mg.zeros(2, 2):matmul(5) end, "matmul: argument #2: expected a tensor, got number")
T:raises(function() return mg.matmul("a", mg.zeros(2)) end, "matmul: argument #1: expected a tensor, got string")
T:raises(function() return mg.dot(mg.zeros(3), mg.zeros(4)) end, "dot: shapes {3} and {4} do not match (3 ~= 4)")
T:raises(function() return mg.dot(mg.zeros(2, 2), mg.zeros(2)) end, "dot: expected two 1-D tensors, got shapes {2,2} and {2}")
T:raises(function() return mg.outer(mg.zeros(2), mg.zeros(2, 1)) end, "outer: expected two 1-D tensors, got shapes {2} and {2,1}")
T:raises(function() return mg.outer(mg.zeros(2), nil) end, "outer: argument #2: expected a tensor, got nil")
T:raises(function() return mg.linear(mg.zeros(64, 784), mg.zeros(10, 256)) end,
         "linear: input of shape {64,784} and weight of shape {10,256} do not match (784 ~= 256)")
T:raises(function() return mg.linear(mg.zeros(2, 3), mg.zeros(3)) end, "linear: weight must be 2-D {out, in}, got shape {3}")
T:raises(function() return mg.linear(mg.zeros(2, 3), mg.zeros(4, 3), mg.zeros(5)) end,
         "linear: bias of shape {5} does not match weight of shape {4,3} (expected {4})")
T:raises(function() return mg.linear(mg.zeros(2, 3), mg.zeros(4, 3), 3) end, "linear: argument #3: expected a tensor, got number")
T:raises(function() return mg.linear(mg.tensor(1), mg.zeros(4, 3)) end, "linear: input of shape {} and weight of shape {4,3} do not match")

T:done()
