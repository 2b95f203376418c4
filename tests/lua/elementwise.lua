-- Elementwise math: forward values, broadcasting, dtype promotion, and float64
-- finite-difference gradient checks (contiguous, transposed, narrowed, broadcast).
local mg = require("moongrad")
local T = mg.test()
local f64 = {dtype = "float64"}

local x = mg.tensor({-2, -0.5, 0.5, 2})
-- forward values computed by hand / with the C math library
T:near(x:neg(), {2, 0.5, -0.5, -2}, 0, "neg")
T:near(-x, {2, 0.5, -0.5, -2}, 0, "unary minus")
T:near(x:exp(), {math.exp(-2), math.exp(-0.5), math.exp(0.5), math.exp(2)}, 1e-6, "exp")
T:near(x:abs():log(), {math.log(2), math.log(0.5), math.log(0.5), math.log(2)}, 1e-6, "log")
T:near(x:abs():sqrt(), {math.sqrt(2), math.sqrt(0.5), math.sqrt(0.5), math.sqrt(2)}, 1e-6, "sqrt")
T:near(x:abs():rsqrt(), {1 / math.sqrt(2), 1 / math.sqrt(0.5), 1 / math.sqrt(0.5), 1 / math.sqrt(2)}, 1e-6, "rsqrt")
T:near(x:abs(), {2, 0.5, 0.5, 2}, 0, "abs")
T:near(mg.tensor({-3, 0, 2}):sign(), {-1, 0, 1}, 0, "sign")
T:near(x:sin(), {math.sin(-2), math.sin(-0.5), math.sin(0.5), math.sin(2)}, 1e-6, "sin")
T:near(x:cos(), {math.cos(-2), math.cos(-0.5), math.cos(0.5), math.cos(2)}, 1e-6, "cos")
local function tanh(v) return (math.exp(v) - math.exp(-v)) / (math.exp(v) + math.exp(-v)) end
T:near(x:tanh(), {tanh(-2), tanh(-0.5), tanh(0.5), tanh(2)}, 1e-6, "tanh")
local function sig(v) return 1 / (1 + math.exp(-v)) end
T:near(x:sigmoid(), {sig(-2), sig(-0.5), sig(0.5), sig(2)}, 1e-6, "sigmoid")
T:near(x:relu(), {0, 0, 0.5, 2}, 0, "relu")
T:near(x:leaky_relu(0.1), {-0.2, -0.05, 0.5, 2}, 1e-7, "leaky_relu(slope)")
T:near(x:leaky_relu(), {-0.02, -0.005, 0.5, 2}, 1e-7, "leaky_relu default slope 0.01 (PyTorch)")
-- gelu (exact, erf form): torch.nn.functional.gelu(torch.tensor([-2,-.5,.5,2]))
T:near(x:gelu(), {-0.04550026, -0.15426877, 0.34573123, 1.95449974}, 1e-6, "gelu matches PyTorch")
-- softplus: log(1 + e^x); beyond 20 it is x (PyTorch's threshold)
T:near(mg.tensor({-2, 0, 2, 30}):softplus(), {math.log(1 + math.exp(-2)), math.log(2), math.log(1 + math.exp(2)), 30}, 1e-6, "softplus")
T:near(x:clamp(-1, 1), {-1, -0.5, 0.5, 1}, 0, "clamp(lo, hi)")
T:near(x:clamp(0), {0, 0, 0.5, 2}, 0, "clamp(lo)")
T:near(x:clamp(nil, 0), {-2, -0.5, 0, 0}, 0, "clamp(nil, hi)")
T:near(x:abs() ^ 2, {4, 0.25, 0.25, 4}, 1e-7, "^ number")
T:near(mg.exp(x), x:exp(), 0, "mg.exp(x) is x:exp()")

-- binary ops, numbers on either side, broadcasting
local a = mg.tensor({{1, 2, 3}, {4, 5, 6}})
local b = mg.tensor({10, 20, 30})
T:near(a + b, {{11, 22, 33}, {14, 25, 36}}, 0, "+ broadcasts a row")
T:near(a - mg.tensor({{1}, {2}}), {{0, 1, 2}, {2, 3, 4}}, 0, "- broadcasts a column")
T:near(a * 2, {{2, 4, 6}, {8, 10, 12}}, 0, "tensor * number")
T:near(2 * a, {{2, 4, 6}, {8, 10, 12}}, 0, "number * tensor")
T:near(1 - a, {{0, -1, -2}, {-3, -4, -5}}, 0, "number - tensor")
T:near(6 / a, {{6, 3, 2}, {1.5, 1.2, 1}}, 1e-6, "number / tensor")
T:near(a / b, {{0.1, 0.1, 0.1}, {0.4, 0.25, 0.2}}, 1e-6, "tensor / tensor")
T:near(2 ^ mg.tensor({1, 2, 3}), {2, 4, 8}, 0, "number ^ tensor")
T:near(mg.tensor({2, 3}) ^ mg.tensor({3, 2}), {8, 9}, 0, "tensor ^ tensor")
T:near(a:maximum(mg.tensor({3, 3, 3})), {{3, 3, 3}, {4, 5, 6}}, 0, "maximum")
T:near(a:minimum(mg.tensor({3, 3, 3})), {{1, 2, 3}, {3, 3, 3}}, 0, "minimum")
T:near(mg.zeros(3, 1, 2) + mg.ones(4, 1), mg.ones(3, 4, 2), 0, "3-way broadcast {3,1,2} + {4,1}")
T:near((a + mg.tensor(1)):shape(), {2, 3}, 0, "0-dim broadcasts")
T:eq((mg.zeros(2, f64) + mg.zeros(2)):dtype(), "float64", "float32 + float64 promotes to float64")
T:near(a:add(b, 2), {{21, 42, 63}, {24, 45, 66}}, 0, "add(other, alpha)")

-- comparisons and where
T:near(a:gt(3), {{0, 0, 0}, {1, 1, 1}}, 0, "gt")
T:near(a:le(2), {{1, 1, 0}, {0, 0, 0}}, 0, "le")
T:near(a:eq(mg.tensor({1, 5, 0})), {{1, 0, 0}, {0, 1, 0}}, 0, "eq broadcasts")
T:near(a:ne(2), {{1, 0, 1}, {1, 1, 1}}, 0, "ne")
T:near(a:lt(2), {{1, 0, 0}, {0, 0, 0}}, 0, "lt")
T:near(a:ge(5), {{0, 0, 0}, {0, 1, 1}}, 0, "ge")
T:near(mg.where(a:gt(3), a, -a), {{-1, -2, -3}, {4, 5, 6}}, 0, "where")
T:near(mg.where(a:gt(3), 0, a), {{1, 2, 3}, {0, 0, 0}}, 0, "where with a number")

-- non-contiguous operands
local m = mg.range(1, 6):view(2, 3)
T:near(m:t() + m:t(), {{2, 8}, {4, 10}, {6, 12}}, 0, "transposed + transposed")
T:near(m:t():exp():log(), m:t(), 1e-5, "unary on a transposed tensor")

-- gradient checks (float64)
local function gc(name, fn, inputs, opts) return T:gradcheck(name, fn, inputs, opts) end
local function rnd(...) return mg.randn({...}, f64):requires_grad_() end
local function pos(...) return (mg.rand({...}, f64) + 0.5):detach():requires_grad_() end
mg.manual_seed(1)
local unary = {"neg", "exp", "sin", "cos", "tanh", "sigmoid", "gelu", "softplus"}
for _, op in ipairs(unary) do gc(op, function(t) return t[op](t) end, {rnd(3, 4)}) end
for _, op in ipairs({"log", "sqrt", "rsqrt"}) do gc(op, function(t) return t[op](t) end, {pos(3, 4)}) end
-- kinks: keep inputs away from 0
local away = (mg.rand(3, 4, f64) + 0.2) * mg.where(mg.rand(3, 4, f64):gt(0.5), 1, -1)
away = away:detach():requires_grad_()
gc("abs", function(t) return t:abs() end, {away})
gc("relu", function(t) return t:relu() end, {away})
gc("leaky_relu", function(t) return t:leaky_relu(0.2) end, {away})
gc("clamp", function(t) return t:clamp(-0.5, 0.5) end, {away})
gc("pow number", function(t) return t ^ 3 end, {rnd(3)})
gc("pow fractional", function(t) return t ^ 1.5 end, {pos(3)})
gc("sign (zero gradient)", function(t) return t:sign() * 1 end, {away})
gc("add broadcast", function(p, q) return p + q end, {rnd(2, 3), rnd(3)})
gc("sub broadcast", function(p, q) return p - q end, {rnd(2, 1), rnd(1, 3)})
gc("mul broadcast", function(p, q) return p * q end, {rnd(4, 1, 3), rnd(2, 1)})
gc("div broadcast", function(p, q) return p / q end, {rnd(2, 3), pos(3)})
gc("pow tensor", function(p, q) return p ^ q end, {pos(2, 3), rnd(2, 3)})
gc("maximum", function(p, q) return p:maximum(q) end, {rnd(5), rnd(5)})
gc("minimum", function(p, q) return p:minimum(q) end, {rnd(5), rnd(1)})
gc("where", function(p, q) return mg.where(p:gt(0), p, q) end, {rnd(2, 3), rnd(3)})
gc("number on the left", function(p) return 3 / p - 2 * p end, {pos(4)})
gc("transposed input", function(p) return (p:t() * p:t()):exp() end, {rnd(3, 2)})
gc("narrowed input", function(p) return p:narrow(2, 2, 2):sigmoid() * 2 end, {rnd(3, 4)})
gc("expanded input", function(p) return p:expand(3, 4) * mg.range(1, 12, f64):view(3, 4) end, {rnd(1, 4)})
gc("view chain", function(p) return p:view(2, 6):t():reshape(3, 4):unsqueeze(1):squeeze(1) * 2 end, {rnd(3, 4)})
gc("permute", function(p) return p:permute(3, 1, 2):tanh() end, {rnd(2, 3, 4)})
gc("select", function(p) return p:select(2, 2):exp() end, {rnd(3, 4)})
gc("t[i]", function(p) return p[2] * 3 end, {rnd(3, 4)})
gc("flatten", function(p) return p:flatten() * mg.range(1, 24, f64) end, {rnd(2, 3, 4)})
gc("clone", function(p) return p:clone() * p end, {rnd(3)})
-- a float32 round trip loses precision: finite differences need a larger step
gc("to dtype", function(p) return p:float():double() * 2 end, {rnd(3)}, {eps = 1e-2, atol = 1e-3})
gc("mixed float32/float64", function(p) return p * mg.tensor({1, 2, 3}) end, {rnd(3)})
-- ties in maximum split the gradient in half, as PyTorch
local p = mg.tensor({1, 2}, {requires_grad = true})
local q = mg.tensor({1, 3}, {requires_grad = true})
local mx = p:maximum(q)
mx:backward(mg.ones(2))
T:near(p.grad, {0.5, 0}, 0, "maximum: tie splits the gradient (p)")
T:near(q.grad, {0.5, 1}, 0, "maximum: tie splits the gradient (q)")

T:done()
