-- cat, stack, index_select, gather, masked_fill, embedding: forward values against PyTorch,
-- backward accumulation, float64 gradchecks, misuse errors. Reference values were printed by
-- PyTorch 1.13 (Debian's python3-torch) with torch.set_default_dtype(torch.float64) and this
-- script (S = sin, Cs = cos of 1..n, as the S/C helpers below). PyTorch's indices are 0-based;
-- the Lua calls below pass the same indices plus one.
--[==[
import torch, torch.nn.functional as F
torch.set_default_dtype(torch.float64)
def S(n, *shape): return torch.arange(1., n+1).sin().view(*shape)
def Cs(n, *shape): return torch.arange(1., n+1).cos().view(*shape)
def lua(t): return "{" + ", ".join("%.12g" % v for v in t.flatten().tolist()) + "}"
a = S(6, 2, 3); b = Cs(9, 3, 3); c = S(4, 2, 2) + 1
print("cat_d1 =", lua(torch.cat([a, b], 0)))
print("cat_d2 =", lua(torch.cat([a, c, a], 1)))
print("cat_empty =", lua(torch.cat([a, torch.zeros(0), a], 0)))
print("stack_d1 =", lua(torch.stack([a, a * 2], 0)))
print("stack_d2 =", lua(torch.stack([a, a * 2], 1)))
print("stack_d3 =", lua(torch.stack([a, a * 2, a * 3], 2)))
x = S(24, 2, 3, 4)
print("isel_d1 =", lua(x.index_select(0, torch.tensor([1, 0, 1]))))
print("isel_d3 =", lua(x.index_select(2, torch.tensor([3, 0, 3, 2]))))
g = S(12, 3, 4)
print("gather_d1 =", lua(g.gather(0, torch.tensor([[2, 0, 1, 1], [0, 0, 2, 1]]))))
print("gather_d2 =", lua(g.gather(1, torch.tensor([[3, 3], [0, 1], [2, 0]]))))
gr = g.clone().requires_grad_()
gr.gather(1, torch.tensor([[3, 3, 1], [0, 1, 1], [2, 0, 0]])).backward(torch.arange(1., 10).view(3, 3))
print("gather_grad =", lua(gr.grad))
print("mfill =", lua(g.masked_fill(torch.tensor([True, False, True, False]), -7.5)))
wt = S(10, 5, 2)
print("emb =", lua(F.embedding(torch.tensor([[4, 0, 4], [1, 2, 3]]), wt)))
]==]
local mg = require("moongrad")
local T = mg.test()
local D = { dtype = "float64" }
local function S(n, ...) return mg.range(1, n, D):sin():view(...) end
local function C(n, ...) return mg.range(1, n, D):cos():view(...) end
local function rg(t) return t:requires_grad_() end
local function gc(name, fn, inputs, opts) return T:gradcheck(name, fn, inputs, opts) end
local function shp(t) return table.concat(t:shape(), ",") end

local R = {}
R.cat_d1 = {0.841470984808, 0.909297426826, 0.14112000806, -0.756802495308, -0.958924274663, -0.279415498199, 0.540302305868, -0.416146836547, -0.9899924966, -0.653643620864, 0.283662185463, 0.96017028665, 0.753902254343, -0.145500033809, -0.911130261885}
R.cat_d2 = {0.841470984808, 0.909297426826, 0.14112000806, 1.84147098481, 1.90929742683, 0.841470984808, 0.909297426826, 0.14112000806, -0.756802495308, -0.958924274663, -0.279415498199, 1.14112000806, 0.243197504692, -0.756802495308, -0.958924274663, -0.279415498199}
R.cat_empty = {0.841470984808, 0.909297426826, 0.14112000806, -0.756802495308, -0.958924274663, -0.279415498199, 0.841470984808, 0.909297426826, 0.14112000806, -0.756802495308, -0.958924274663, -0.279415498199}
R.stack_d1 = {0.841470984808, 0.909297426826, 0.14112000806, -0.756802495308, -0.958924274663, -0.279415498199, 1.68294196962, 1.81859485365, 0.28224001612, -1.51360499062, -1.91784854933, -0.558830996398}
R.stack_d2 = {0.841470984808, 0.909297426826, 0.14112000806, 1.68294196962, 1.81859485365, 0.28224001612, -0.756802495308, -0.958924274663, -0.279415498199, -1.51360499062, -1.91784854933, -0.558830996398}
R.stack_d3 = {0.841470984808, 1.68294196962, 2.52441295442, 0.909297426826, 1.81859485365, 2.72789228048, 0.14112000806, 0.28224001612, 0.42336002418, -0.756802495308, -1.51360499062, -2.27040748592, -0.958924274663, -1.91784854933, -2.87677282399, -0.279415498199, -0.558830996398, -0.838246494597}
R.isel_d1 = {0.420167036827, 0.990607355695, 0.650287840157, -0.287903316665, -0.96139749188, -0.750987246772, 0.149877209663, 0.912945250728, 0.836655638536, -0.0088513092904, -0.846220404175, -0.905578362007, 0.841470984808, 0.909297426826, 0.14112000806, -0.756802495308, -0.958924274663, -0.279415498199, 0.656986598719, 0.989358246623, 0.412118485242, -0.544021110889, -0.999990206551, -0.536572918, 0.420167036827, 0.990607355695, 0.650287840157, -0.287903316665, -0.96139749188, -0.750987246772, 0.149877209663, 0.912945250728, 0.836655638536, -0.0088513092904, -0.846220404175, -0.905578362007}
R.isel_d3 = {-0.756802495308, 0.841470984808, -0.756802495308, 0.14112000806, 0.989358246623, -0.958924274663, 0.989358246623, 0.656986598719, -0.536572918, 0.412118485242, -0.536572918, -0.999990206551, -0.287903316665, 0.420167036827, -0.287903316665, 0.650287840157, 0.912945250728, -0.96139749188, 0.912945250728, 0.149877209663, -0.905578362007, 0.836655638536, -0.905578362007, -0.846220404175}
R.gather_d1 = {0.412118485242, 0.909297426826, 0.656986598719, 0.989358246623, 0.841470984808, 0.909297426826, -0.999990206551, 0.989358246623}
R.gather_d2 = {-0.756802495308, -0.756802495308, -0.958924274663, -0.279415498199, -0.999990206551, 0.412118485242}
R.gather_grad = {0, 3, 0, 3, 4, 11, 0, 0, 17, 0, 7, 0}
R.mfill = {-7.5, 0.909297426826, -7.5, -0.756802495308, -7.5, -0.279415498199, -7.5, 0.989358246623, -7.5, -0.544021110889, -7.5, -0.536572918}
R.emb = {0.412118485242, -0.544021110889, 0.841470984808, 0.909297426826, 0.412118485242, -0.544021110889, 0.14112000806, -0.756802495308, -0.958924274663, -0.279415498199, 0.656986598719, 0.989358246623}

-- ---- cat / stack -------------------------------------------------------------------------------
local a, b, c = S(6, 2, 3), C(9, 3, 3), S(4, 2, 2) + 1
T:near(mg.cat({ a, b }, 1), R.cat_d1, 1e-11, "cat dim 1")
T:near(mg.cat({ a, b }), R.cat_d1, 1e-11, "cat defaults to dim 1")
T:near(mg.cat({ a, c, a }, 2), R.cat_d2, 1e-11, "cat dim 2 of three tensors")
T:near(mg.cat({ a, c, a }, -1), R.cat_d2, 1e-11, "cat dim -1")
T:near(mg.cat({ a, mg.zeros(0, D), a }, 1), R.cat_empty, 1e-11, "cat skips 1-D empty tensors (as PyTorch)")
T:eq(mg.cat({ a:float(), b }, 1):dtype(), "float64", "cat promotes float32 and float64 to float64")
T:eq(shp(mg.cat({ a:t(), b:t() }, 2)), "3,5", "cat of non-contiguous inputs")
T:near(mg.cat({ a:t(), b:t() }, 2), mg.cat({ a, b }, 1):t(), 0, "cat of transposed inputs equals the transposed cat")
T:near(mg.stack({ a, a * 2 }, 1), R.stack_d1, 1e-11, "stack dim 1")
T:near(mg.stack({ a, a * 2 }, 2), R.stack_d2, 1e-11, "stack dim 2")
T:near(mg.stack({ a, a * 2, a * 3 }, 3), R.stack_d3, 1e-11, "stack dim 3 (a new last dim)")
T:near(mg.stack({ a, a * 2, a * 3 }, -1), R.stack_d3, 1e-11, "stack dim -1")
T:eq(shp(mg.stack({ a, a }, 2)), "2,2,3", "stack shape")
do
  local p, q = rg(S(6, 2, 3):float()), rg(C(9, 3, 3))
  local y = mg.cat({ p, q }, 1)
  y:backward(mg.range(1, 15, D):view(5, 3))
  T:eq(p.grad:dtype(), "float32", "cat gradient of a float32 input is float32")
  T:near(p.grad, { { 1, 2, 3 }, { 4, 5, 6 } }, 0, "cat gradient of the first input")
  T:near(q.grad, { { 7, 8, 9 }, { 10, 11, 12 }, { 13, 14, 15 } }, 0, "cat gradient of the second input")
end
gc("cat dim 1", function(p, q) return mg.cat({ p, q }, 1) end, { rg(S(6, 2, 3)), rg(C(9, 3, 3)) })
gc("cat dim 2, one input without grad", function(p, q) return mg.cat({ p, q, p }, 2) end, { rg(S(6, 2, 3)), C(4, 2, 2) })
gc("cat non-contiguous", function(p, q) return mg.cat({ p:t(), q }, 1) end, { rg(S(6, 3, 2)), rg(C(6, 2, 3)) })
gc("stack dim 1", function(p, q) return mg.stack({ p, q }, 1) end, { rg(S(6, 2, 3)), rg(C(6, 2, 3)) })
gc("stack dim 3", function(p, q) return mg.stack({ p, q, p }, 3) end, { rg(S(6, 2, 3)), rg(C(6, 2, 3)) })

-- ---- index_select ---------------------------------------------------------------------------------
local x = S(24, 2, 3, 4)
T:near(x:index_select(1, mg.tensor({ 2, 1, 2 })), R.isel_d1, 1e-11, "index_select dim 1 with a repeated index")
T:near(x:index_select(3, mg.tensor({ 4, 1, 4, 3 })), R.isel_d3, 1e-11, "index_select dim 3")
T:near(x:index_select(-1, mg.tensor({ 4, 1, 4, 3 }, D)), R.isel_d3, 1e-11, "index_select dim -1, float64 index")
T:near(mg.index_select(x, 1, mg.tensor({ 2, 1, 2 })), R.isel_d1, 1e-11, "mg.index_select")
T:near(x:transpose(1, 3):index_select(1, mg.tensor({ 4, 1, 4, 3 })), mg.tensor(R.isel_d3, D):view(2, 3, 4):transpose(1, 3), 1e-11,
       "index_select of a non-contiguous input")
T:eq(shp(x:index_select(2, mg.zeros(0))), "2,0,4", "index_select with an empty index")
do
  local v = rg(mg.range(1, 4, D))
  v:index_select(1, mg.tensor({ 1, 1, 3, 1 })):backward(mg.ones(4, D))
  T:near(v.grad, { 3, 0, 1, 0 }, 0, "index_select backward accumulates repeated indices")
end
gc("index_select dim 2", function(p) return p:index_select(2, mg.tensor({ 3, 1, 3 })) end, { rg(S(12, 2, 3, 2)) })
gc("index_select non-contiguous", function(p) return p:t():index_select(1, mg.tensor({ 2, 2, 1 })) end, { rg(S(6, 3, 2)) })

-- ---- gather -------------------------------------------------------------------------------------------
local g = S(12, 3, 4)
T:near(g:gather(1, mg.tensor({ { 3, 1, 2, 2 }, { 1, 1, 3, 2 } })), R.gather_d1, 1e-11, "gather dim 1")
T:near(g:gather(2, mg.tensor({ { 4, 4 }, { 1, 2 }, { 3, 1 } })), R.gather_d2, 1e-11, "gather dim 2 (smaller index)")
do
  local gr = rg(S(12, 3, 4))
  gr:gather(2, mg.tensor({ { 4, 4, 2 }, { 1, 2, 2 }, { 3, 1, 1 } })):backward(mg.range(1, 9, D):view(3, 3))
  T:near(gr.grad, R.gather_grad, 0, "gather backward scatters and accumulates (as PyTorch)")
end
gc("gather dim 1", function(p) return p:gather(1, mg.tensor({ { 3, 1, 2, 2 }, { 1, 1, 3, 2 } })) end, { rg(S(12, 3, 4)) })
gc("gather dim 2, non-contiguous", function(p) return p:t():gather(2, mg.tensor({ { 2, 2 }, { 1, 3 } })) end, { rg(S(12, 3, 4)) })

-- ---- masked_fill ----------------------------------------------------------------------------------------
T:near(g:masked_fill(mg.tensor({ 1, 0, 1, 0 }), -7.5), R.mfill, 1e-11, "masked_fill with a broadcast mask")
T:near(mg.masked_fill(mg.zeros(2, 2), mg.tensor({ { 0, 1 }, { 1, 0 } }), 3), { { 0, 3 }, { 3, 0 } }, 0, "masked_fill same-shape mask")
local ms = g:masked_fill(mg.tensor({ 1, 0, 1, 0 }), -math.huge):softmax(2)
T:near(ms:index_select(2, mg.tensor({ 2, 4 })), g:index_select(2, mg.tensor({ 2, 4 })):softmax(2), 1e-12,
       "masked_fill with -inf then softmax: the kept entries share the probability")
T:near(ms:index_select(2, mg.tensor({ 1, 3 })), mg.zeros(3, 2), 0, "masked_fill with -inf then softmax: masked entries are 0")
T:near(g:t():masked_fill(mg.tensor({ 1, 0, 0 }), 2):t(), g:masked_fill(mg.tensor({ { 1 }, { 0 }, { 0 } }), 2), 0,
       "masked_fill of a non-contiguous input")
do
  local v = rg(mg.range(1, 4, D))
  v:masked_fill(mg.tensor({ 0, 1, 1, 0 }), 0):backward(mg.full({ 4 }, 2, D))
  T:near(v.grad, { 2, 0, 0, 2 }, 0, "masked_fill gradient is zero where filled")
end
gc("masked_fill", function(p) return p:masked_fill(mg.tensor({ 1, 0, 0, 1 }), 0.5) end, { rg(S(12, 3, 4)) })

-- ---- embedding ----------------------------------------------------------------------------------------------
local wt = S(10, 5, 2)
local e = mg.embedding(mg.tensor({ { 5, 1, 5 }, { 2, 3, 4 } }), wt)
T:eq(shp(e), "2,3,2", "embedding output shape is idx shape + {D}")
T:near(e, R.emb, 1e-11, "embedding values (1-based indices)")
do
  local w = rg(S(10, 5, 2))
  mg.embedding(mg.tensor({ 5, 1, 5, 5 }), w):backward(mg.ones(4, 2, D))
  T:near(w.grad, { { 1, 1 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 3, 3 } }, 0, "embedding backward accumulates rows")
  T:near(mg.embedding(mg.tensor(3), wt), { wt:get(3, 1), wt:get(3, 2) }, 0, "embedding with a 0-dim index")
end
gc("embedding", function(w) return mg.embedding(mg.tensor({ { 2, 2 }, { 5, 1 } }), w) end, { rg(S(10, 5, 2)) })
gc("embedding non-contiguous weight", function(w) return mg.embedding(mg.tensor({ 1, 3, 1 }), w:t()) end, { rg(S(8, 2, 4)) })

-- ---- float32 backward paths --------------------------------------------------------------------------------
do
  local v = rg(mg.range(1, 4))
  v:index_select(1, mg.tensor({ 1, 1, 3, 1 })):backward(mg.ones(4))
  T:near(v.grad, { 3, 0, 1, 0 }, 0, "index_select float32 backward")
  local gr = rg(S(12, 3, 4):float())
  gr:gather(2, mg.tensor({ { 4, 4, 2 }, { 1, 2, 2 }, { 3, 1, 1 } })):backward(mg.range(1, 9):view(3, 3))
  T:near(gr.grad, R.gather_grad, 0, "gather float32 backward")
  local w = rg(mg.zeros(5, 2))
  mg.embedding(mg.tensor({ 5, 1, 5, 5 }), w):backward(mg.ones(4, 2))
  T:near(w.grad, { { 1, 1 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 3, 3 } }, 0, "embedding float32 backward")
  local m = rg(mg.range(1, 4))
  m:masked_fill(mg.tensor({ 0, 1, 1, 0 }), 0):backward(mg.full({ 4 }, 2))
  T:near(m.grad, { 2, 0, 0, 2 }, 0, "masked_fill float32 backward")
end

-- ---- misuse ------------------------------------------------------------------------------------------------------
T:raises(function() mg.cat({ a, b }, 2) end,
         "cat: tensor 2 has shape {3,3} but tensor 1 has shape {2,3} (sizes must match except in dim 2)", "cat shape mismatch")
T:raises(function() mg.cat({ a, S(2, 2) }, 1) end, "cat: tensor 2 has shape {2} but tensor 1 has shape {2,3}", "cat ndim mismatch")
T:raises(function() mg.cat({}, 1) end, "cat: expected a non-empty list of tensors", "cat empty list")
T:raises(function() mg.cat({ a, 3 }, 1) end, "cat: element 2 of the list is a number, expected a tensor", "cat non-tensor element")
T:raises(function() mg.cat({ a, a }, 3) end, "cat: dim 3 out of range for a tensor with 2 dims", "cat dim out of range")
T:raises(function() mg.cat(a, 1) end, "cat: argument #1: expected a list of tensors, got a tensor", "cat of a tensor, not a list")
T:raises(function() mg.cat({ mg.tensor(1), mg.tensor(2) }) end, "cat: tensor 1 is 0-dim and cannot be concatenated", "cat 0-dim")
T:raises(function() mg.stack({ a, b }, 1) end,
         "stack: expected tensors of the same shape, but tensor 1 has shape {2,3} and tensor 2 has shape {3,3}", "stack shape mismatch")
T:raises(function() mg.stack({ a, a }, 4) end, "stack: dim 4 out of range for a tensor with 3 dims", "stack dim out of range")
T:raises(function() x:index_select(1, mg.tensor({ 1, 3 })) end,
         "index_select: index 3 is out of range for dim 1 of size 2 (shape {2,3,4})", "index_select index too large")
T:raises(function() x:index_select(2, mg.tensor({ 0 })) end, "index_select: index 0 is out of range for dim 2 of size 3",
         "index_select index 0 (1-based)")
T:raises(function() x:index_select(1, mg.tensor({ 1.5 })) end, "index_select: index 1.5 is not an integer", "index_select fractional index")
T:raises(function() x:index_select(1, mg.ones(2, 2)) end, "index_select: index must be a 1-D tensor, got shape {2,2}",
         "index_select 2-D index")
T:raises(function() x:index_select(4, mg.tensor({ 1 })) end, "index_select: dim 4 out of range for a tensor with 3 dims",
         "index_select dim out of range")
T:raises(function() x:index_select(1, { 1, 2 }) end, "index_select: argument #3: expected a tensor, got table", "index_select table index")
T:raises(function() g:gather(1, mg.ones(4)) end,
         "gather: index of shape {4} does not fit input of shape {3,4}", "gather ndim mismatch")
T:raises(function() g:gather(1, mg.ones(2, 5)) end, "gather: index of shape {2,5} does not fit input of shape {3,4}",
         "gather index larger than input")
T:raises(function() g:gather(2, mg.tensor({ { 5 } })) end, "gather: index 5 is out of range for dim 2 of size 4 (shape {3,4})",
         "gather index out of range")
T:raises(function() g:masked_fill(mg.ones(3), 0) end, "masked_fill: mask of shape {3} cannot be broadcast to the input's shape {3,4}",
         "masked_fill mask shape")
T:raises(function() g:masked_fill(mg.ones(2, 3, 4), 0) end,
         "masked_fill: mask of shape {2,3,4} cannot be broadcast to the input's shape {3,4}", "masked_fill mask with more dims")
T:raises(function() g:masked_fill(mg.ones(4)) end, "masked_fill: argument #3: expected a number (the fill value), got no value",
         "masked_fill without a value")
T:raises(function() mg.embedding(mg.tensor({ 1, 6 }), wt) end, "embedding: index 6 is out of range for dim 1 of size 5 (shape {5,2})",
         "embedding index too large")
T:raises(function() mg.embedding(mg.tensor({ 0 }), wt) end, "embedding: index 0 is out of range for dim 1 of size 5",
         "embedding index 0 (1-based)")
T:raises(function() mg.embedding(mg.tensor({ 1 }), mg.ones(5)) end,
         "embedding: weight must be 2-D {num_embeddings, embedding_dim}, got shape {5}", "embedding 1-D weight")

T:done()
