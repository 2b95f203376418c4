-- mg.nn module mechanics: registration order and names, state_dict round trip, strict
-- load errors, train/eval, tostring, to(dtype), init bounds, apply/children/modules.
local mg = require("moongrad")
local T = mg.test()
local nn = mg.nn

local function flat(t) return t:contiguous():view(-1):totable() end
local function minmax(t)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(flat(t)) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end
local function names(m)
  local out = {}
  for n in m:named_parameters() do out[#out + 1] = n end
  return table.concat(out, " ")
end

-- a user module: children and parameters registered in assignment order
local Net = nn.Module:extend("Net")
function Net:init(h)
  self.fc1 = nn.Linear(4, h)
  self.act = nn.ReLU()
  self.scale = mg.ones(h, { requires_grad = true })
  self.body = nn.Sequential{ nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 2, { bias = false }) }
  self.bn = nn.BatchNorm1d(2)
  self.note = "not registered"
  self.plain = mg.zeros(3)               -- no requires_grad: an ordinary field
end
function Net:forward(x) return self.bn(self.body(self.act(self.fc1(x)) * self.scale)) end

mg.manual_seed(1)
local net = Net(3)
T:eq(names(net), "scale fc1.weight fc1.bias body.1.weight body.1.bias body.3.weight bn.weight bn.bias",
     "named_parameters: own first, then children in assignment order (PyTorch order)")
T:eq(#net:parameters(), 8, "parameters() array")
T:ok(rawequal(net:parameters()[2], net.fc1.weight), "parameters() are the module's tensors")
local bn = {}
for n in net:named_buffers() do bn[#bn + 1] = n end
T:eq(table.concat(bn, " "), "bn.running_mean bn.running_var bn.num_batches_tracked", "named_buffers")
T:eq(#net:children(), 4, "children: fc1, act, body, bn")
T:eq(#net:modules(), 8, "modules: net, fc1, act, body, 3 in body, bn")
local mn = {}
for n in net:named_modules() do mn[#mn + 1] = n == "" and "<root>" or n end
T:eq(table.concat(mn, " "), "<root> fc1 act body body.1 body.2 body.3 bn", "named_modules pre-order")
T:eq(#net.body, 3, "#Sequential")
T:ok(net.body[3].bias == nil and net.body[3].weight ~= nil, "Linear bias = false has no bias")
T:eq(net.body[2].__classname, "Tanh", "seq[i] indexing")
T:eq(net:num_parameters(), 3 + (4 * 3 + 3) + (9 + 3) + 6 + 2 + 2, "num_parameters")

-- state_dict and round trip
local sd = net:state_dict()
local keys = {}
for k in pairs(sd) do keys[#keys + 1] = k end
table.sort(keys)
T:eq(table.concat(keys, " "), "bn.bias bn.num_batches_tracked bn.running_mean bn.running_var bn.weight " ..
     "body.1.bias body.1.weight body.3.weight fc1.bias fc1.weight scale", "state_dict keys")
mg.manual_seed(2)
local net2 = Net(3)
T:ok(flat(net2.fc1.weight)[1] ~= flat(net.fc1.weight)[1], "a second net starts different")
local r = net2:load_state_dict(sd)
T:eq(#r.missing + #r.unexpected, 0, "no missing or unexpected keys")
local same = true
for k, v in pairs(net2:state_dict()) do
  local a, b = flat(v), flat(sd[k])
  for i = 1, #a do same = same and a[i] == b[i] end
end
T:ok(same, "load_state_dict copies every value")
T:ok(not rawequal(net2.fc1.weight, sd["fc1.weight"]) and net2.fc1.weight.requires_grad and net2.fc1.weight.is_leaf,
     "copied in place: parameters stay leaves that require grad")

-- nested state dicts (as from mg.load) are flattened
local nested = { fc1 = { weight = sd["fc1.weight"] } }
local r2 = net2:load_state_dict(nested, false)
T:eq(#r2.unexpected, 0, "nested table flattened to dotted names")
T:eq(#r2.missing, 10, "non-strict: missing keys reported, not raised")

-- strict errors
local bad = {}
for k, v in pairs(sd) do bad[k] = v end
bad["fc1.bias"] = nil
bad["body.2.weight"] = mg.zeros(1)
T:raises(function() net2:load_state_dict(bad) end, "load_state_dict: missing keys: fc1.bias; unexpected keys: body.2.weight",
         "strict: missing and unexpected keys named")
local bad2 = {}
for k, v in pairs(sd) do bad2[k] = v end
bad2["fc1.weight"] = mg.zeros(3, 5)
T:raises(function() net2:load_state_dict(bad2, false) end,
         "size mismatch for fc1.weight: checkpoint has {3,5}, model has {3,4}", "shape mismatch names key and shapes")
T:raises(function() net2:load_state_dict(42) end, "load_state_dict: expected a table of tensors, got number")

-- train / eval
T:eq(net.training and net.bn.training and net.body[1].training, true, "training after construction")
net:eval()
T:eq(net.training or net.bn.training or net.body[2].training, false, "eval() reaches every module")
T:eq(net:train(), net, "train() returns the module")
T:eq(net.body[3].training, true, "train() again")

-- tostring
local s = tostring(net)
T:ok(s:find("^Net%(\n  %(fc1%): Linear%(in_features=4, out_features=3, bias=true%)  %-%- 15 params\n") ~= nil,
     "tostring starts with the Net tree")
T:ok(s:find("  (body): Sequential(\n    (1): Linear(in_features=3, out_features=3, bias=true)  -- 12 params\n" ..
            "    (2): Tanh()\n    (3): Linear(in_features=3, out_features=2, bias=false)  -- 6 params\n  )", 1, true) ~= nil,
     "nested Sequential indented")
T:ok(s:find("(bn): BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)", 1, true) ~= nil,
     "BatchNorm repr")
T:ok(s:find("\nTotal parameters: 40$") ~= nil, "total parameter count")
net.scale:requires_grad_(false)
T:ok(tostring(net):find("Total parameters: 40 (37 trainable)", 1, true) ~= nil, "frozen parameters counted apart")
net.scale:requires_grad_(true)
T:eq(tostring(nn.Conv2d(3, 8, 3, { padding = 1, bias = false })),
     "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=false)  -- 216 params",
     "Conv2d repr")
T:eq(tostring(nn.Linear(1000, 1000)):match("%-%- ([%d,]+) params$"), "1,001,000", "thousands separators")
T:eq(tostring(nn.ReLU()), "ReLU()", "a leaf without parameters is one line")
T:eq(tostring(nn.Sequential{ nn.Linear(2, 3) }):match("Total parameters: [%d,]+$"), "Total parameters: 9",
     "containers end with the total")

-- to(dtype)
local m64 = Net(2):double()
local all64 = true
for _, p in ipairs(m64:parameters()) do all64 = all64 and p:dtype() == "float64" and p.requires_grad and p.is_leaf end
T:ok(all64, "double(): float64 leaf parameters that require grad")
T:eq(m64.bn.running_mean:dtype(), "float64", "double(): buffers converted")
T:eq(m64.bn.num_batches_tracked:dtype(), "float64", "num_batches_tracked stays float64")
T:eq(m64:float().fc1.weight:dtype(), "float32", "float() converts back")
T:eq(names(m64), "scale fc1.weight fc1.bias body.1.weight body.1.bias body.3.weight bn.weight bn.bias",
     "names unchanged by to()")

-- zero_grad after a backward
local zl = nn.Linear(2, 1)
zl(mg.ones(3, 2)):sum():backward()
T:near({ zl.weight.grad, zl.bias.grad }, { { { 3, 3 } }, { 3 } }, 0, "gradients accumulate into parameters")
zl:zero_grad()
T:near({ zl.weight.grad, zl.bias.grad }, { { { 0, 0 } }, { 0 } }, 0, "zero_grad zeroes them")

-- apply, zero_grad, requires_grad_
local visited = {}
net:apply(function(m) visited[#visited + 1] = m.__classname end)
T:eq(table.concat(visited, " "), "Linear ReLU Linear Tanh Linear Sequential BatchNorm1d Net", "apply: children first")
net:requires_grad_(false)
local any = false
for _, p in ipairs(net:parameters()) do any = any or p.requires_grad end
T:eq(any, false, "requires_grad_(false) freezes all")
net:requires_grad_(true)

-- explicit registration and ModuleList
local M = nn.Module:extend("M")
function M:init()
  self:register_buffer("steps", mg.zeros(1))
  self.layers = nn.ModuleList{ nn.Linear(2, 2), nn.Linear(2, 1) }
  self:register_parameter("w", mg.zeros(2))
end
local m = M()
T:eq(names(m), "w layers.1.weight layers.1.bias layers.2.weight layers.2.bias", "ModuleList and register_parameter")
T:ok(m.w.requires_grad, "register_parameter sets requires_grad")
T:ok(m:state_dict().steps ~= nil, "registered buffer in state_dict")
T:raises(function() m.layers() end, "ModuleList: has no forward")
T:raises(function() nn.Module:extend("Empty")()(1) end, "Empty: forward is not implemented")

-- a plain Lua table of modules is not registered: a warning says so, once
do
  local P = nn.Module:extend("Plain")
  function P:init() self.layers = {}; for i = 1, 2 do self.layers[i] = nn.Linear(2, 2) end end
  local real, msgs = io.stderr, {}
  io.stderr = { write = function(_, s) msgs[#msgs + 1] = s end }
  local p = P()
  local n = #p:parameters()
  p:parameters()
  io.stderr = real
  T:eq(n, 0, "modules in a plain table are not parameters")
  T:eq(#msgs, 1, "one warning")
  T:ok((msgs[1] or ""):find("Plain.layers is a plain Lua table holding modules", 1, true) ~= nil,
       "the warning names the field and suggests ModuleList")
end

-- shared modules appear once
local S = nn.Module:extend("Shared")
function S:init() self.a = nn.Linear(2, 2); self.b = self.a end
T:eq(#S():parameters(), 2, "a module assigned twice is listed once")
local Tied = nn.Module:extend("Tied")
function Tied:init() self.enc = nn.Linear(3, 3); self.dec = nn.Linear(3, 3); self.dec.weight = self.enc.weight end
local tied = Tied()
T:eq(#tied:parameters(), 3, "tied weight listed once (enc.weight, enc.bias, dec.bias)")
T:ok(tied:state_dict()["dec.weight"] ~= nil, "tied weight still has both names in the state_dict")
tied:double()
T:ok(rawequal(tied.enc.weight, tied.dec.weight) and tied.enc.weight:dtype() == "float64", "double() keeps tied weights tied")

-- initialisation bounds (PyTorch's defaults)
mg.manual_seed(3)
local lin = nn.Linear(100, 50)
local lo, hi = minmax(lin.weight)
T:ok(lo >= -0.1 and hi <= 0.1, "Linear(100,50) weight within +-1/sqrt(100)")
T:ok(lo < -0.09 and hi > 0.09, "Linear weight fills its range (not all the same)")
lo, hi = minmax(lin.bias)
T:ok(lo >= -0.1 and hi <= 0.1 and hi - lo > 0.1, "Linear bias within +-1/sqrt(100)")
local conv = nn.Conv2d(4, 16, 3)
lo, hi = minmax(conv.weight)
local cb = 1 / math.sqrt(4 * 9)
T:ok(lo >= -cb and hi <= cb and lo < -0.9 * cb and hi > 0.9 * cb, "Conv2d weight U(+-1/sqrt(in*k*k))")
T:eq(table.concat(conv.weight:shape(), ","), "16,4,3,3", "Conv2d weight shape")
local g = nn.Conv2d(4, 8, { 3, 5 }, { groups = 2 })
T:eq(table.concat(g.weight:shape(), ","), "8,2,3,5", "grouped Conv2d weight shape")
lo, hi = minmax(g.bias)
T:ok(lo >= -1 / math.sqrt(30) and hi <= 1 / math.sqrt(30), "grouped Conv2d bias bound uses in/groups*kh*kw")
local emb = nn.Embedding(200, 10)
local v = flat(emb.weight)
local mean, sq = 0, 0
for _, x in ipairs(v) do mean = mean + x; sq = sq + x * x end
mean, sq = mean / #v, sq / #v
T:ok(math.abs(mean) < 0.1 and math.abs(sq - 1) < 0.15, ("Embedding N(0,1): mean %.3f, E[x^2] %.3f"):format(mean, sq))
local ln = nn.LayerNorm(5)
T:near({ flat(ln.weight), flat(ln.bias) }, { { 1, 1, 1, 1, 1 }, { 0, 0, 0, 0, 0 } }, 0, "LayerNorm weight 1, bias 0")
local b2 = nn.BatchNorm2d(3)
T:near({ flat(b2.weight), flat(b2.bias), flat(b2.running_mean), flat(b2.running_var), b2.num_batches_tracked:item() },
       { { 1, 1, 1 }, { 0, 0, 0 }, { 0, 0, 0 }, { 1, 1, 1 }, 0 }, 0, "BatchNorm init and buffers")
local lstm = nn.LSTM(7, 25)
local ok = true
for _, p in ipairs(lstm:parameters()) do
  lo, hi = minmax(p)
  ok = ok and lo >= -0.2 and hi <= 0.2 and hi - lo > 0.2
end
T:ok(ok, "LSTM parameters U(+-1/sqrt(hidden))")
T:eq(names(lstm), "weight_ih_l0 weight_hh_l0 bias_ih_l0 bias_hh_l0", "LSTM parameter names")
T:eq(table.concat(lstm.weight_ih_l0:shape(), ",") .. " " .. table.concat(lstm.weight_hh_l0:shape(), ","),
     "100,7 100,25", "LSTM weight shapes (4*hidden rows)")
local gru = nn.GRU(7, 5, { num_layers = 2 })
T:eq(names(gru), "weight_ih_l0 weight_hh_l0 bias_ih_l0 bias_hh_l0 weight_ih_l1 weight_hh_l1 bias_ih_l1 bias_hh_l1",
     "GRU two-layer names")
T:eq(table.concat(gru.weight_ih_l1:shape(), ","), "15,5", "GRU layer 2 input weight (3*hidden, hidden)")

-- init helpers
local w = mg.empty(30, 20)
nn.init.xavier_uniform_(w)
lo, hi = minmax(w)
local a = math.sqrt(6 / 50)
T:ok(lo >= -a and hi <= a and hi > 0.8 * a, "xavier_uniform_ bound sqrt(6/(fan_in+fan_out))")
nn.init.kaiming_uniform_(w, { nonlinearity = "relu" })
lo, hi = minmax(w)
a = math.sqrt(2) * math.sqrt(3 / 20)
T:ok(lo >= -a and hi <= a and hi > 0.8 * a, "kaiming_uniform_ relu bound")
T:near({ nn.init.calculate_gain("tanh"), nn.init.calculate_gain("leaky_relu", math.sqrt(5)) }, { 5 / 3, math.sqrt(1 / 3) },
       1e-15, "calculate_gain")
T:raises(function() nn.init.xavier_uniform_(mg.empty(5)) end, "xavier_uniform_: fan in and fan out need a tensor with at least 2 dims, got {5}")

-- constructor argument errors
T:raises(function() nn.Linear(0, 3) end, "Linear: in_features must be a positive integer, got 0")
T:raises(function() nn.Linear(2, 3, { bais = false }) end, "Linear: unknown option 'bais' (accepted: bias, dtype)")
T:raises(function() nn.Conv2d(3, 4, 3, { groups = 2 }) end, "Conv2d: in_channels (3) and out_channels (4) must be divisible by groups (2)")
T:raises(function() nn.Dropout(1.5) end, "Dropout: p must be a probability in [0, 1], got 1.5")
T:raises(function() nn.Softmax() end, "Softmax: dim must be given as an integer")
T:raises(function() nn.Sequential{ nn.ReLU(), 3 } end, "Sequential: element 2 is a number, expected a module")
T:raises(function() nn.MaxPool2d(2, { padding = 2 }) end, "MaxPool2d: padding (2, 2) must be at most half the kernel size (2, 2)")
T:done()
