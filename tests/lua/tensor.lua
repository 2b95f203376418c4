-- Tensors: construction, inspection, indexing, views, copies, in-place ops, printing.
local mg = require("moongrad")
local T = mg.test()

-- construction
local z = mg.zeros(2, 3)
T:eq(z:dim(), 2, "zeros: dim")
T:near(z:shape(), {2, 3}, 0, "zeros: shape from varargs")
T:near(mg.zeros({4, 5}):shape(), {4, 5}, 0, "zeros: shape from a table")
T:eq(mg.zeros(2, 3, {dtype = "float64"}):dtype(), "float64", "zeros: dtype option")
T:eq(z:dtype(), "float32", "default dtype is float32")
T:near(mg.ones(3), {1, 1, 1}, 0, "ones")
T:near(mg.full({2, 2}, 7), {{7, 7}, {7, 7}}, 0, "full")
T:near(mg.eye(3), {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, 0, "eye")
T:near(mg.range(1, 5), {1, 2, 3, 4, 5}, 0, "range is inclusive like a Lua for")
T:near(mg.range(0, 1, 0.25), {0, 0.25, 0.5, 0.75, 1}, 1e-7, "range with a step")
T:near(mg.range(5, 1, -2), {5, 3, 1}, 0, "range counting down")
local t = mg.tensor({{1, 2, 3}, {4, 5, 6}})
T:near(t:shape(), {2, 3}, 0, "tensor from nested table: shape")
T:near(t, {{1, 2, 3}, {4, 5, 6}}, 0, "tensor from nested table: values")
T:eq(mg.tensor(3.5):dim(), 0, "tensor from a number is 0-dim")
T:eq(mg.tensor(3.5):item(), 3.5, "item of a 0-dim tensor")
T:near(mg.zeros_like(t), {{0, 0, 0}, {0, 0, 0}}, 0, "zeros_like")
T:near(mg.ones_like(t), {{1, 1, 1}, {1, 1, 1}}, 0, "ones_like")
T:eq(mg.tensor({1, 2}, {requires_grad = true}).requires_grad, true, "requires_grad option")

-- random numbers
mg.manual_seed(42)
local r1 = mg.rand(100)
mg.manual_seed(42)
local r2 = mg.rand(100)
T:near(r1, r2, 0, "same seed gives the same numbers")
local lo, hi = math.huge, -math.huge
for _, v in ipairs(r1:totable()) do lo = math.min(lo, v); hi = math.max(hi, v) end
T:ok(lo >= 0 and hi < 1, "rand is in [0, 1)")
local n = mg.randn(20000):double()
local mean = 0
for _, v in ipairs(n:totable()) do mean = mean + v end
mean = mean / 20000
local var = 0
for _, v in ipairs(n:totable()) do var = var + (v - mean) ^ 2 end
var = var / 19999
T:ok(math.abs(mean) < 0.03 and math.abs(var - 1) < 0.05, ("randn has mean ~0 and var ~1 (%.4f, %.4f)"):format(mean, var))
local ri = mg.randint(3, 5, {1000})
local seen = {}
for _, v in ipairs(ri:totable()) do seen[v] = true; assert(v == 3 or v == 4 or v == 5) end
T:ok(seen[3] and seen[4] and seen[5], "randint is inclusive at both ends")
local p = mg.randperm(10):totable()
table.sort(p)
T:near(p, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0, "randperm is a 1-based permutation")

-- inspection
T:eq(t:size(1), 2, "size(1)")
T:eq(t:size(-1), 3, "size(-1)")
T:eq(t:numel(), 6, "numel")
T:eq(#t, 2, "# is the size of dim 1")
T:near(t:stride(), {3, 1}, 0, "stride")
T:ok(t:is_contiguous(), "fresh tensor is contiguous")
T:eq(t:get(2, 3), 6, "get is 1-based")
T:eq(t:get(-1, -1), 6, "get with negative indices")
t:set(1, 2, 20)
T:eq(t:get(1, 2), 20, "set")
t:set(1, 2, 2)

-- indexing: t[i] is a view
local row = t[2]
T:near(row, {4, 5, 6}, 0, "t[i] selects along dim 1")
row:fill_(9)
T:near(t, {{1, 2, 3}, {9, 9, 9}}, 0, "t[i] is a view: writes show in the parent")
t[2] = mg.tensor({4, 5, 6})
T:near(t, {{1, 2, 3}, {4, 5, 6}}, 0, "t[i] = tensor copies into the row")
t[1] = 0
T:near(t[1], {0, 0, 0}, 0, "t[i] = number fills the row")
t[1] = mg.tensor({1, 2, 3})

-- views
local v = t:view(3, 2)
T:near(v, {{1, 2}, {3, 4}, {5, 6}}, 0, "view")
T:near(t:view(-1), {1, 2, 3, 4, 5, 6}, 0, "view(-1)")
local tt = t:t()
T:near(tt, {{1, 4}, {2, 5}, {3, 6}}, 0, "t() transposes")
T:ok(not tt:is_contiguous(), "a transpose is not contiguous")
T:near(tt:contiguous():view(6), {1, 4, 2, 5, 3, 6}, 0, "contiguous then view")
T:near(tt:reshape(6), {1, 4, 2, 5, 3, 6}, 0, "reshape copies when needed")
local c = mg.range(1, 24):view(2, 3, 4)
T:near(c:permute(3, 1, 2):shape(), {4, 2, 3}, 0, "permute shape")
T:eq(c:permute(3, 1, 2):get(4, 2, 3), c:get(2, 3, 4), "permute values")
T:near(c:transpose(1, 3):shape(), {4, 3, 2}, 0, "transpose")
T:near(c:narrow(3, 2, 2), {{{2, 3}, {6, 7}, {10, 11}}, {{14, 15}, {18, 19}, {22, 23}}}, 0, "narrow")
T:near(c:select(2, 3), {{9, 10, 11, 12}, {21, 22, 23, 24}}, 0, "select")
T:near(mg.range(1, 3):unsqueeze(1):shape(), {1, 3}, 0, "unsqueeze(1)")
T:near(mg.range(1, 3):unsqueeze(-1):shape(), {3, 1}, 0, "unsqueeze(-1)")
T:near(mg.zeros(1, 3, 1):squeeze():shape(), {3}, 0, "squeeze all")
T:near(mg.zeros(1, 3, 1):squeeze(1):shape(), {3, 1}, 0, "squeeze one dim")
T:near(mg.tensor({1, 2, 3}):expand(2, 3), {{1, 2, 3}, {1, 2, 3}}, 0, "expand")
T:near(mg.tensor({{1}, {2}}):expand(-1, 3), {{1, 1, 1}, {2, 2, 2}}, 0, "expand with -1")
T:near(c:flatten():shape(), {24}, 0, "flatten")
T:near(c:flatten(2):shape(), {2, 12}, 0, "flatten(2)")
local cl = t:clone()
cl:fill_(0)
T:near(t, {{1, 2, 3}, {4, 5, 6}}, 0, "clone does not share storage")
T:eq(t:double():dtype(), "float64", "double()")
T:eq(t:double():float():dtype(), "float32", "float()")
T:eq(t:to("float64"):dtype(), "float64", "to(dtype)")
local nt = mg.range(1, 12):view(3, 4):t():narrow(1, 2, 2)
T:near(nt:contiguous(), {{2, 6, 10}, {3, 7, 11}}, 0, "narrow of a transpose")

-- in place
local a = mg.zeros(3)
T:ok(a:fill_(2) == a, "in-place methods return the tensor itself")
a:add_(mg.ones(3))
T:near(a, {3, 3, 3}, 0, "add_")
a:add_(mg.ones(3), 2)
T:near(a, {5, 5, 5}, 0, "add_ with alpha")
a:sub_(1):mul_(2):div_(4)
T:near(a, {2, 2, 2}, 0, "sub_ mul_ div_ chain")
a:copy_(mg.tensor({-5, 0, 5}))
T:near(a, {-5, 0, 5}, 0, "copy_")
a:clamp_(-1, 1)
T:near(a, {-1, 0, 1}, 0, "clamp_")
a:zero_()
T:near(a, {0, 0, 0}, 0, "zero_")
local u = mg.zeros(1000):uniform_(-2, -1)
local ul = u:totable()
local umin, umax = math.huge, -math.huge
for _, x in ipairs(ul) do umin = math.min(umin, x); umax = math.max(umax, x) end
T:ok(umin >= -2 and umax < -1, "uniform_(a, b) stays in [a, b)")
local nn = mg.zeros(4000, {dtype = "float64"}):normal_(3, 0.5)
local s = 0
for _, x in ipairs(nn:totable()) do s = s + x end
T:ok(math.abs(s / 4000 - 3) < 0.05, "normal_(mean, std) has the right mean")
local tp = mg.zeros(2, 3):t()
tp:add_(mg.tensor({1, 2}))
T:near(tp, {{1, 2}, {1, 2}, {1, 2}}, 0, "in-place on a non-contiguous view with broadcasting")

-- totable and printing
T:near(mg.range(1, 4):view(2, 2):totable(), {{1, 2}, {3, 4}}, 0, "totable")
local s1 = tostring(mg.tensor({{1.5, -2}, {3, 4}}))
T:ok(s1:find("1.5000", 1, true) and s1:find("shape={2,2}", 1, true) and s1:find("float32", 1, true), "tostring shows values, shape, dtype")
local big = tostring(mg.zeros(100, 100))
T:ok(big:find("...", 1, true) and #big < 2000, "tostring elides large tensors")
T:ok(tostring(mg.tensor({1, 2}, {requires_grad = true})):find("requires_grad=true", 1, true), "tostring shows requires_grad")

-- float64 precision kept
local d = mg.tensor({1 / 3}, {dtype = "float64"})
T:eq(d:get(1), 1 / 3, "float64 keeps full precision")

-- to-be-closed
do
  local tc <close> = mg.zeros(10)
end
T:ok(true, "tensors work as to-be-closed variables")
local closed
do
  local x <close> = mg.zeros(3)
  closed = x
end
T:raises(function() return closed + 1 end, "closed", "a closed tensor raises when used")

T:done()
