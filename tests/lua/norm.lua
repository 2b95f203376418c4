-- softmax, log_softmax, dropout, batch_norm, layer_norm: forward values against PyTorch,
-- float64 gradchecks of every option, dropout statistics, misuse errors. Reference values were
-- printed by PyTorch 1.13 (Debian's python3-torch) with torch.set_default_dtype(torch.float64)
-- and this script (S = sin, Cs = cos of 1..n, as the S/C helpers below):
--[==[
import torch, torch.nn.functional as F
torch.set_default_dtype(torch.float64)
def S(n, *shape): return torch.arange(1., n+1).sin().view(*shape)
def Cs(n, *shape): return torch.arange(1., n+1).cos().view(*shape)
def lua(t): return "{" + ", ".join("%.12g" % v for v in t.flatten().tolist()) + "}"
x = S(24, 2, 3, 4)
for d in (0, 1, 2):
    print("softmax_d%d =" % (d + 1), lua(F.softmax(x, d)))
    print("log_softmax_d%d =" % (d + 1), lua(F.log_softmax(x, d)))
print("softmax_big =", lua(F.softmax(torch.tensor([1000., 1001., 1002.]), 0)))
print("log_softmax_big =", lua(F.log_softmax(torch.tensor([1000., 1001., -1000.]), 0)))
# batch_norm, training, on {4,3} and {2,3,2,2}, with weight and bias; running stats updated
xb = S(12, 4, 3) * 2 + 1; rm = torch.tensor([0.1, 0.2, 0.3]); rv = torch.tensor([1., 2., 3.])
w = torch.tensor([1.5, -0.5, 2.]); b = torch.tensor([0.1, 0.2, -0.3])
print("bn_train =", lua(F.batch_norm(xb, rm, rv, w, b, True, 0.1, 1e-5)))
print("bn_rm =", lua(rm)); print("bn_rv =", lua(rv))
x4 = S(24, 2, 3, 2, 2); rm4 = torch.zeros(3); rv4 = torch.ones(3)
print("bn4_train =", lua(F.batch_norm(x4, rm4, rv4, None, None, True, 0.3, 1e-3)))
print("bn4_rm =", lua(rm4)); print("bn4_rv =", lua(rv4))
print("bn_eval =", lua(F.batch_norm(xb, torch.tensor([0.1, 0.2, 0.3]), torch.tensor([1., 2., 3.]), w, b, False, 0.1, 1e-5)))
# layer_norm
xl = S(24, 2, 3, 4) * 3
wl = Cs(4, 4); bl = torch.arange(1., 5) / 10
print("ln_last =", lua(F.layer_norm(xl, (4,), wl, bl, 1e-5)))
print("ln_last2 =", lua(F.layer_norm(xl, (3, 4), None, None, 1e-5)))
]==]
local mg = require("moongrad")
local T = mg.test()
local D = { dtype = "float64" }
local function S(n, ...) return mg.range(1, n, D):sin():view(...) end
local function C(n, ...) return mg.range(1, n, D):cos():view(...) end
local function rg(t) return t:requires_grad_() end
local function gc(name, fn, inputs, opts) return T:gradcheck(name, fn, inputs, opts) end

local R = {}
R.softmax_d1 = {0.603795231022, 0.479683709648, 0.375388625366, 0.384876826333, 0.500618303989, 0.615755700669, 0.624128603704, 0.519093959162, 0.395431560581, 0.369311923177, 0.461633118859, 0.591218636799, 0.396204768978, 0.520316290352, 0.624611374634, 0.615123173667, 0.499381696011, 0.384244299331, 0.375871396296, 0.480906040838, 0.604568439419, 0.630688076823, 0.538366881141, 0.408781363201}
R.log_softmax_d1 = {-0.504520160015, -0.734628330509, -0.979793455326, -0.954831927487, -0.691911336552, -0.484904983934, -0.471398836169, -0.655670373355, -0.927777552056, -0.996113671762, -0.772984818401, -0.525569386165, -0.925824107996, -0.653318401639, -0.470625623229, -0.485932748844, -0.694384553768, -0.956476732507, -0.978508225225, -0.73208336925, -0.503240398762, -0.460943870163, -0.619215016026, -0.894574830172}
R.softmax_d2 = {0.550611067794, 0.650023373028, 0.333939584955, 0.125330332177, 0.0909794297597, 0.198005616355, 0.559378689021, 0.718462599779, 0.358409502447, 0.151971010617, 0.106681726024, 0.156207068044, 0.361296218703, 0.647954022536, 0.546390674959, 0.205671090301, 0.0907522842461, 0.11354794135, 0.331266640427, 0.683431759342, 0.547951497051, 0.238498036114, 0.122342684614, 0.110897150357}
R.log_softmax_d2 = {-0.596726585143, -0.430746958235, -1.09679518574, -2.07680236994, -2.39712184461, -1.61945988326, -0.580928595077, -0.330641628013, -1.02607908471, -1.88406549595, -2.23790540035, -1.85657279264, -1.01805710669, -0.433935538024, -0.604421037198, -1.58147703522, -2.3996216354, -2.17553014049, -1.10483166769, -0.380628467829, -0.601568504983, -1.43339420301, -2.10092928153, -2.19915208056}
R.softmax_d3 = {0.361162597359, 0.386508827419, 0.179285102181, 0.0730434730413, 0.0665690123485, 0.131334560656, 0.335006542873, 0.467089884123, 0.496216274165, 0.190732566631, 0.120892675967, 0.192158483237, 0.221219767339, 0.391347905647, 0.278460838335, 0.108971488679, 0.0848252129673, 0.104689943898, 0.257718401782, 0.552766441353, 0.558563387611, 0.239813409468, 0.103802708675, 0.0978204942452}
R.log_softmax_d3 = {-1.01842701386, -0.950600571839, -1.71877799061, -2.61670049397, -2.70951608977, -2.0300073133, -1.09360521638, -0.761233568479, -0.70074341067, -1.6568830068, -2.11285210246, -1.64943481391, -1.50859864923, -0.938158330357, -1.2784778459, -2.21666900272, -2.46716245765, -2.25675221254, -1.35588775611, -0.592819715041, -0.582387170742, -1.42789411857, -2.26526321345, -2.32462117128}
R.softmax_big = {0.0900305731704, 0.244728471055, 0.665240955775}
R.log_softmax_big = {-1.31326168752, -0.313261687518, -2001.31326169}
R.bn_train = {1.78078185189, -0.278984619095, 0.82729394272, -1.61080541811, 0.689087776153, -1.46501728687, 1.38930010415, -0.320470417876, 2.30448871748, -1.15927653793, 0.710367260817, -2.86676537333}
R.bn_rm = {0.199881698866, 0.276987059612, 0.356862503855}
R.bn_rv = {1.16648653306, 2.29656799298, 2.77179741854}
R.bn4_train = {0.816376583447, 0.932231868639, -0.379902621714, -1.9136564884, -1.20490140307, -0.323330430147, 0.89152497161, 1.32273234842, 1.17174509424, -0.350108196326, -1.0758579419, -0.338253173375, 0.0967414736874, 1.07111848451, 0.489814005659, -1.11272330582, -1.20811006878, -0.935131159722, 0.233618947473, 1.22359679422, 1.8474657383, 0.501702487877, -0.831108032286, -0.925585976524}
R.bn4_rm = {0.109059181515, -0.00905839521677, -0.0972172570176}
R.bn4_rv = {0.817168426969, 0.903356087362, 0.834992176091}
R.bn_eval = {3.9743935825, -0.725810774574, 0.834191185114, -0.820402883921, 0.59521815674, -0.136992347217, 3.42094319148, -0.782422181632, 1.46003431705, -0.182061922362, 0.624256083059, -0.730870979606}
R.ln_last = {0.548511099656, -0.187461041999, 0.510205599127, 1.41239526178, -0.645250684518, 0.406360719987, -0.414322062612, -0.354084567991, 0.971269637816, 0.3026980951, 1.4221336585, 0.551840951687, 0.0733277237768, -0.28626262943, -0.1375051273, 1.42037060952, -0.477055237086, 0.527411875486, -0.113227391327, -0.539539760479, 0.911187959992, 0.0700005007658, 1.15648085227, 1.0200523699}
R.ln_last2 = {1.17687879447, 1.27057727106, 0.209382672854, -1.0310475805, -1.3102676346, -0.371563859409, 0.922023823228, 1.38117686358, 0.58375207383, -0.737101871828, -1.36699794719, -0.726812605486, 0.559567556616, 1.35057965234, 0.878669017175, -0.422291887242, -1.35620560508, -1.06443617111, 0.184764942623, 1.24288799315, 1.1370995276, -0.0353390266722, -1.19649306984, -1.27880292956}

-- ---- softmax / log_softmax ----------------------------------------------------------------
local x = S(24, 2, 3, 4)
for d = 1, 3 do
  T:near(mg.softmax(x, d), R["softmax_d" .. d], 1e-11, "softmax dim " .. d)
  T:near(mg.log_softmax(x, d), R["log_softmax_d" .. d], 1e-11, "log_softmax dim " .. d)
end
T:near(x:softmax(-1), R.softmax_d3, 1e-11, "x:softmax(-1) is the last dim")
T:near(x:log_softmax(-3), R.log_softmax_d1, 1e-11, "x:log_softmax(-3) is the first dim")
T:near(mg.softmax(x:float(), 2), R.softmax_d2, 1e-6, "softmax float32")
T:near(mg.softmax(mg.tensor({ 1000, 1001, 1002 }, D), 1), R.softmax_big, 1e-10, "softmax of large values is stable")
T:near(mg.log_softmax(mg.tensor({ 1000, 1001, -1000 }, D), 1), R.log_softmax_big, 1e-10,
       "log_softmax of large values is stable")
T:near(mg.softmax(mg.tensor({ 1000, 1001, 1002 }), 1), R.softmax_big, 1e-6, "softmax of large float32 values is stable")
T:near(mg.softmax(x, 2):transpose(2, 3):contiguous(), mg.softmax(x:transpose(2, 3), 3), 1e-14,
       "softmax of a transposed (non-contiguous) input")

gc("softmax dim 1", function(a) return mg.softmax(a, 1) end, { rg(S(12, 3, 4)) })
gc("softmax dim 2", function(a) return mg.softmax(a, 2) end, { rg(S(12, 3, 4)) })
gc("softmax dim 2 of 3-D", function(a) return mg.softmax(a, 2) end, { rg(S(12, 2, 3, 2)) })
gc("log_softmax dim 1", function(a) return mg.log_softmax(a, 1) end, { rg(S(12, 3, 4)) })
gc("log_softmax dim -1", function(a) return mg.log_softmax(a, -1) end, { rg(S(12, 3, 4)) })
gc("log_softmax 1-D", function(a) return mg.log_softmax(a, 1) end, { rg(S(5, 5)) })
gc("softmax non-contiguous", function(a) return mg.softmax(a:t(), 2) end, { rg(S(12, 3, 4)) })
gc("log_softmax non-contiguous", function(a) return a:transpose(1, 3):log_softmax(2) end, { rg(S(12, 2, 3, 2)) })

-- ---- dropout ----------------------------------------------------------------------------------
do
  local a = mg.range(1, 10000, D)
  T:near(mg.dropout(a, 0.5, false), a, 0, "dropout in eval is the identity")
  T:near(mg.dropout(a, 0, true), a, 0, "dropout p = 0 in training keeps everything")
  T:near(mg.dropout(a, 1, true), mg.zeros(10000), 0, "dropout p = 1 zeroes everything (as PyTorch)")
  mg.manual_seed(7)
  local y = mg.dropout(a, 0.3, true)
  local r = (y / a):totable()
  local kept, bad = 0, 0
  for _, v in ipairs(r) do
    if math.abs(v - 1 / 0.7) < 1e-12 then kept = kept + 1 elseif v ~= 0 then bad = bad + 1 end
  end
  T:eq(bad, 0, "dropout values are 0 or x / (1 - p)")
  T:ok(math.abs(kept / 10000 - 0.7) < 0.03, ("dropout keeps about 1 - p of the elements (%d of 10000)"):format(kept))
  mg.manual_seed(7)
  T:near(mg.dropout(a, 0.3, true), y, 0, "dropout: the same seed gives the same mask")
  local xr = rg(mg.range(1, 200, D))
  mg.manual_seed(3)
  local yr = mg.dropout(xr, 0.5, true)
  yr:backward(mg.ones(200, D))
  T:near(xr.grad, yr:detach() / xr:detach(), 1e-12, "dropout gradient is the scaled mask")
  T:eq(mg.dropout(mg.ones(4, 4):float(), 0.25, true):dtype(), "float32", "dropout keeps the dtype")
  gc("dropout (fixed seed)", function(b) mg.manual_seed(11); return mg.dropout(b, 0.4, true) end, { rg(S(20, 4, 5)) })
end

-- ---- batch_norm ----------------------------------------------------------------------------------
do
  local xb = S(12, 4, 3) * 2 + 1
  local rm, rv = mg.tensor({ 0.1, 0.2, 0.3 }, D), mg.tensor({ 1, 2, 3 }, D)
  local w, b = mg.tensor({ 1.5, -0.5, 2 }, D), mg.tensor({ 0.1, 0.2, -0.3 }, D)
  T:near(mg.batch_norm(xb, rm, rv, w, b, true, 0.1, 1e-5), R.bn_train, 1e-10, "batch_norm training {N,C}")
  T:near(rm, R.bn_rm, 1e-10, "batch_norm updates running_mean in place with momentum")
  T:near(rv, R.bn_rv, 1e-10, "batch_norm updates running_var with the unbiased variance")
  local x4, rm4, rv4 = S(24, 2, 3, 2, 2), mg.zeros(3, D), mg.ones(3, D)
  T:near(mg.batch_norm(x4, rm4, rv4, nil, nil, true, 0.3, 1e-3), R.bn4_train, 1e-10, "batch_norm training {N,C,H,W}, no affine")
  T:near(rm4, R.bn4_rm, 1e-10, "batch_norm {N,C,H,W} running_mean (momentum 0.3)")
  T:near(rv4, R.bn4_rv, 1e-10, "batch_norm {N,C,H,W} running_var (momentum 0.3)")
  local rme, rve = mg.tensor({ 0.1, 0.2, 0.3 }, D), mg.tensor({ 1, 2, 3 }, D)
  T:near(mg.batch_norm(xb, rme, rve, w, b, false), R.bn_eval, 1e-10, "batch_norm eval uses the running statistics")
  T:near(rme, { 0.1, 0.2, 0.3 }, 0, "batch_norm eval leaves running_mean alone")
  T:near(mg.batch_norm(xb:float(), nil, nil, w:float(), b:float(), true), R.bn_train, 1e-5, "batch_norm float32")
  local rm32 = mg.zeros(3)
  mg.batch_norm(xb:float(), rm32, mg.ones(3), nil, nil, true, 1.0)
  T:near(rm32, xb:mean(1), 1e-6, "batch_norm momentum 1 sets running_mean to the batch mean")

  local function bn(training, rmx, rvx) return function(a, ww, bb) return mg.batch_norm(a, rmx, rvx, ww, bb, training) end end
  gc("batch_norm train {N,C} with affine", bn(true), { rg(S(12, 4, 3)), rg(C(3, 3)), rg(mg.tensor({ 0.1, 0.2, 0.3 }, D)) })
  gc("batch_norm train {N,C,H,W} without affine", function(a) return mg.batch_norm(a, nil, nil, nil, nil, true) end,
     { rg(S(24, 2, 3, 2, 2)) })
  gc("batch_norm train {N,C,L} weight only", function(a, ww) return mg.batch_norm(a, nil, nil, ww, nil, true) end,
     { rg(S(18, 3, 2, 3)), rg(C(2, 2)) })
  gc("batch_norm train with running stats (updated each call)", bn(true, mg.zeros(3, D), mg.ones(3, D)),
     { rg(S(12, 4, 3)), rg(C(3, 3)), rg(mg.tensor({ 0.1, 0.2, 0.3 }, D)) })
  gc("batch_norm eval with affine", bn(false, mg.tensor({ 0.1, -0.2, 0.3 }, D), mg.tensor({ 0.5, 2, 1 }, D)),
     { rg(S(12, 4, 3)), rg(C(3, 3)), rg(mg.tensor({ 0.1, 0.2, 0.3 }, D)) })
  gc("batch_norm eval {N,C,H,W} without affine", function(a) return mg.batch_norm(a, mg.zeros(3, D), mg.ones(3, D) * 2) end,
     { rg(S(24, 2, 3, 2, 2)) })
  gc("batch_norm train non-contiguous", function(a, ww) return mg.batch_norm(a:t(), nil, nil, ww, nil, true) end,
     { rg(S(12, 3, 4)), rg(C(3, 3)) })
end

-- ---- layer_norm ------------------------------------------------------------------------------------
do
  local xl = S(24, 2, 3, 4) * 3
  local wl, bl = C(4, 4), mg.range(1, 4, D) / 10
  T:near(mg.layer_norm(xl, 4, wl, bl, 1e-5), R.ln_last, 1e-10, "layer_norm over the last dim with affine")
  T:near(mg.layer_norm(xl, { 3, 4 }), R.ln_last2, 1e-10, "layer_norm over the last two dims, no affine")
  T:near(mg.layer_norm(xl:float(), { 4 }, wl:float(), bl:float()), R.ln_last, 1e-5, "layer_norm float32")
  gc("layer_norm last dim with affine", function(a, ww, bb) return mg.layer_norm(a, 4, ww, bb) end,
     { rg(S(12, 3, 4)), rg(C(4, 4)), rg(mg.range(1, 4, D) / 10) })
  gc("layer_norm last two dims without affine", function(a) return mg.layer_norm(a, { 3, 4 }) end, { rg(S(24, 2, 3, 4)) })
  gc("layer_norm {3,4} affine", function(a, ww, bb) return mg.layer_norm(a, { 3, 4 }, ww, bb) end,
     { rg(S(24, 2, 3, 4)), rg(C(12, 3, 4)), rg(S(12, 3, 4) / 2) })
  gc("layer_norm weight only, eps 0.1", function(a, ww) return mg.layer_norm(a, 3, ww, nil, 0.1) end,
     { rg(S(6, 2, 3)), rg(C(3, 3)) })
  gc("layer_norm non-contiguous", function(a, bb) return mg.layer_norm(a:t(), 3, nil, bb) end,
     { rg(S(12, 3, 4)), rg(C(3, 3)) })
end

-- ---- float32 backward equals float64 backward ----------------------------------------------------
do
  local function grads(dt, f)
    local a = rg(S(24, 4, 3, 2):to(dt))
    local w, b = rg(C(3, 3):to(dt)), rg((mg.range(1, 3, D) / 10):to(dt))
    local y = f(a, w, b)
    y:backward(C(y:numel(), y:shape()):to(dt))
    return { a.grad, w.grad, b.grad }
  end
  local cases = {
    { "softmax", function(a) return mg.softmax(a, 2) end, 1 },
    { "log_softmax", function(a) return mg.log_softmax(a, 3) end, 1 },
    { "batch_norm train", function(a, w, b) return mg.batch_norm(a, nil, nil, w, b, true) end, 3 },
    { "batch_norm eval", function(a, w, b) return mg.batch_norm(a, mg.zeros(3):to(a:dtype()), mg.ones(3):to(a:dtype()), w, b) end, 3 },
    { "layer_norm", function(a, w, b) return mg.layer_norm(a:transpose(2, 3), 3, w, b) end, 3 },
  }
  for _, cs in ipairs(cases) do
    local g64, g32 = grads("float64", cs[2]), grads("float32", cs[2])
    for k = 1, cs[3] do T:near(g32[k], g64[k], 2e-5, ("%s float32 gradient %d equals the float64 one"):format(cs[1], k)) end
  end
end

-- ---- misuse ---------------------------------------------------------------------------------------
local z = mg.zeros(4, 3)
T:raises(function() mg.softmax(z, 3) end, "softmax: dim 3 out of range for a tensor with 2 dims", "softmax dim out of range")
T:raises(function() mg.log_softmax(z) end, "log_softmax: argument #2: expected a dim (integer), got no value", "log_softmax without dim")
T:raises(function() mg.softmax("x", 1) end, "softmax: argument #1: expected a tensor, got string", "softmax non-tensor")
T:raises(function() mg.dropout(z, 1.5, true) end, "dropout: p must be a probability in [0, 1], got 1.5", "dropout p > 1")
T:raises(function() mg.dropout(z, -0.1) end, "dropout: p must be a probability in [0, 1], got -0.1", "dropout p < 0")
T:raises(function() mg.dropout(z, 0.5, "yes") end, "dropout: argument #3 (training): expected a boolean, got string",
         "dropout training not a boolean")
T:raises(function() mg.batch_norm(z, nil, nil, mg.ones(4), nil, true) end,
         "batch_norm: weight of shape {4} does not match the input's 3 channels (input shape {4,3})", "batch_norm weight shape")
T:raises(function() mg.batch_norm(z, mg.zeros(2), mg.ones(2), nil, nil, true) end,
         "batch_norm: running_mean of shape {2} does not match the input's 3 channels", "batch_norm running_mean shape")
T:raises(function() mg.batch_norm(z, nil, nil, nil, nil, false) end,
         "batch_norm: running_mean and running_var are required when not training", "batch_norm eval without running stats")
T:raises(function() mg.batch_norm(mg.zeros(1, 3), nil, nil, nil, nil, true) end,
         "batch_norm: expected more than 1 value per channel when training, got input of shape {1,3}", "batch_norm one value per channel")
T:raises(function() mg.batch_norm(mg.zeros(3), nil, nil, nil, nil, true) end,
         "batch_norm: expected an input of shape {N,C} or {N,C,...}, got {3}", "batch_norm 1-D input")
T:raises(function() mg.batch_norm(z, mg.zeros(3), nil, nil, nil, true) end,
         "batch_norm: running_mean and running_var must be given together", "batch_norm running_mean without running_var")
T:raises(function() mg.batch_norm(z, nil, nil, 1, nil, true) end,
         "batch_norm: argument #4 (weight): expected a tensor or nil, got number", "batch_norm weight not a tensor")
T:raises(function() mg.batch_norm(z, mg.zeros(3):requires_grad_(), mg.ones(3), nil, nil, true) end,
         "batch_norm: running_mean and running_var are updated in place and must not require grad",
         "batch_norm running stats that require grad")
T:raises(function() mg.layer_norm(z, 4) end, "layer_norm: input of shape {4,3} does not end with normalized_shape {4}",
         "layer_norm shape mismatch")
T:raises(function() mg.layer_norm(z, 3, mg.ones(4)) end, "layer_norm: weight of shape {4} does not match normalized_shape {3}",
         "layer_norm weight shape")
T:raises(function() mg.layer_norm(z, { 4, 3, 2 }) end, "layer_norm: input of shape {4,3} does not end with normalized_shape {4,3,2}",
         "layer_norm more dims than the input")
T:raises(function() mg.layer_norm(z, "3") end, "layer_norm: argument #2 (normalized_shape): expected an integer or a non-empty table",
         "layer_norm normalized_shape not a size")

T:done()
