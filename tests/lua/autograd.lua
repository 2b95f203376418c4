-- Autodiff semantics: accumulation, leaves, no_grad, detach, retain_graph,
-- version checks, graph release, mg.Function and mg.gradcheck itself.
local mg = require("moongrad")
local T = mg.test()
local f64 = {dtype = "float64"}

local x = mg.tensor({1, 2, 3}, {requires_grad = true})
T:eq(x.grad, nil, "grad is nil before any backward")
T:ok(x.is_leaf, "a created tensor is a leaf")
-- sum of all elements, by hand (the reductions are tested in reduce.lua)
local function total(t) local s = t:view(-1); local acc = s[1]; for i = 2, #s do acc = acc + s[i] end; return acc end
local y = total(x * x)
T:ok(not y.is_leaf and y.requires_grad, "an op output is a non-leaf that requires grad")
T:eq(y.grad_fn, "add", "grad_fn names the op")
y:backward()
T:near(x.grad, {2, 4, 6}, 0, "d/dx sum(x^2) = 2x")
total(x * 3):backward()
T:near(x.grad, {5, 7, 9}, 0, "gradients accumulate across backward calls")
x:zero_grad()
T:near(x.grad, {0, 0, 0}, 0, "zero_grad zeroes the gradient")
x.grad = nil
T:eq(x.grad, nil, "grad can be reset to nil")

-- a tensor used twice: gradients from both paths add up
local a = mg.tensor({2}, {requires_grad = true})
local b = a * a + a * 3
b:backward(mg.ones(1))
T:near(a.grad, {7}, 0, "fan-out: gradients of both uses add up")

-- diamond graph
local p = mg.tensor({0.5}, {requires_grad = true, dtype = "float64"})
local h = p:exp()
local out = h * h:sin() + h
out:backward(mg.ones(1, f64))
local e = math.exp(0.5)
T:near(p.grad, {(math.sin(e) + e * math.cos(e)) * e + e}, 1e-12, "diamond graph gradient")

-- no_grad, detach, requires_grad_
local w = mg.ones(2, {requires_grad = true})
local r = mg.no_grad(function() return w * 2 end)
T:ok(not r.requires_grad, "no_grad: results are not recorded")
T:eq(mg.grad_enabled(), true, "grad mode restored after no_grad")
local r1, r2 = mg.no_grad(function(u, v) return u + v, mg.grad_enabled() end, w, w)
T:ok(not r1.requires_grad and r2 == false, "no_grad passes arguments and returns every result")
pcall(mg.no_grad, function() error("boom") end)
T:eq(mg.grad_enabled(), true, "grad mode restored after an error inside no_grad")
local d = (w * 2):detach()
T:ok(not d.requires_grad and d.is_leaf, "detach cuts history")
local leaf = mg.zeros(2):requires_grad_()
T:ok(leaf.requires_grad, "requires_grad_() turns it on")
leaf.requires_grad = false
T:ok(not leaf.requires_grad, "requires_grad field is writable on leaves")

-- backward with an explicit gradient
local v = mg.tensor({1, 2}, {requires_grad = true})
local vo = v * v
vo:backward(mg.tensor({1, 0.5}))
T:near(v.grad, {2, 2}, 0, "backward(grad) weights the output")

-- retain_graph and a second backward
local s = mg.tensor({3}, {requires_grad = true})
local so = s:exp()
so:backward(mg.ones(1), {retain_graph = true})
so:backward(mg.ones(1))
T:near(s.grad, {2 * math.exp(3)}, 1e-4, "retain_graph allows a second backward")
T:raises(function() so:backward(mg.ones(1)) end, "second time", "a third backward through a freed graph is an error")

-- in-place modification of a saved tensor is detected at backward
local k = mg.tensor({1, 2}, {requires_grad = true})
local m = mg.tensor({3, 4})
local km = k * m
m:add_(1)
T:raises(function() km:backward(mg.ones(2)) end, "modified by an in-place operation", "version counter catches in-place changes")
-- in-place on a tensor that requires grad is refused
T:raises(function() k:add_(1) end, "requires grad", "in-place on a leaf that requires grad")
mg.no_grad(function() k:add_(1) end)
T:near(k, {2, 3}, 0, "in-place on a leaf inside no_grad (optimizer style)")

-- mg.Function
local Square = mg.Function{
  forward = function(ctx, t) ctx.t = t; return t * t end,
  backward = function(ctx, g) return g * 2 * ctx.t end,
}
local fx = mg.tensor({1, 2, 3}, {requires_grad = true, dtype = "float64"})
local fy = Square(fx)
T:near(fy, {1, 4, 9}, 0, "Function forward")
T:ok(fy.requires_grad, "Function output requires grad")
fy:backward(mg.ones(3, f64))
T:near(fx.grad, {2, 4, 6}, 0, "Function backward")
local ok = mg.gradcheck(function(t) return Square(t) end, {mg.randn(4, f64):requires_grad_()})
T:ok(ok, "gradcheck passes on a correct Function")
local Wrong = mg.Function{
  forward = function(ctx, t) return t * t end,
  backward = function(ctx, g) return g end,
}
local bad, report = mg.gradcheck(function(t) return Wrong(t) end, {mg.tensor({1, 2}, f64):requires_grad_()})
T:ok(not bad and report:find("analytic"), "gradcheck reports a wrong gradient")
local Two = mg.Function{
  forward = function(ctx, p1, p2) return p1 * p2 end,
  backward = function(ctx, g) return g, g * 5 end,
}
local q1 = mg.ones(2, {requires_grad = true})
Two(q1, mg.ones(2)):backward(mg.ones(2))
T:near(q1.grad, {1, 1}, 0, "Function with an input that needs no grad")
local BadShape = mg.Function{
  forward = function(ctx, t) return t * 1 end,
  backward = function(ctx, g) return mg.ones(5) end,
}
T:raises(function() BadShape(mg.ones(2, {requires_grad = true})):backward(mg.ones(2)) end, "gradient #1 has shape {5}",
  "Function backward with a wrong-shaped gradient is an error")
local Err = mg.Function{forward = function(ctx, t) return t * 1 end, backward = function() error("custom failure") end}
T:raises(function() Err(mg.ones(1, {requires_grad = true})):backward() end, "custom failure", "errors in a Lua backward propagate")

-- deep chains (an RNN unrolled far) neither overflow the C stack nor leak
local z = mg.tensor({1}, {requires_grad = true})
local acc = z
for _ = 1, 20000 do acc = acc * 1 end
acc:backward()
T:near(z.grad, {1}, 0, "backward through a 20000-node chain")
local chain = z
for _ = 1, 20000 do chain = chain + 1 end
chain = nil
collectgarbage()
T:ok(true, "dropping a 20000-node graph frees it without recursion")

-- gradient reaches only tensors that require it
local nr = mg.tensor({1, 2})
local wr = mg.tensor({1, 1}, {requires_grad = true})
total(nr * wr):backward()
T:eq(nr.grad, nil, "inputs that do not require grad get no gradient")
T:near(wr.grad, {1, 2}, 0, "the other input gets its gradient")

T:done()
