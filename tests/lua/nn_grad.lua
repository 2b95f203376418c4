-- Parameter and input gradients of mg.nn modules by finite differences (mg.gradcheck, float64).
-- Sizes are small: gradcheck runs one backward per output element.
local mg = require("moongrad")
local T = mg.test()
local nn = mg.nn
local F64 = { dtype = "float64" }
mg.manual_seed(11)

local function rnd(...) return mg.randn({ ... }, F64) end
local function check(name, m, x, opts)
  local inputs = { x }
  for _, p in ipairs(m:parameters()) do inputs[#inputs + 1] = p end
  local ok, report = mg.gradcheck(function() return m(x) end, inputs, opts)
  T:ok(ok, name)
  if not ok then T:diag(report) end
end

check("Linear", nn.Linear(3, 2):double(), rnd(2, 3):requires_grad_(true))
check("Conv2d stride 2 padding 1", nn.Conv2d(2, 2, 3, { stride = 2, padding = 1 }):double(),
      rnd(1, 2, 4, 4):requires_grad_(true))
check("Conv2d groups 2, dilation 2", nn.Conv2d(2, 2, 2, { groups = 2, dilation = 2 }):double(),
      rnd(1, 2, 4, 4):requires_grad_(true))
check("MaxPool2d", nn.MaxPool2d(2), rnd(1, 1, 4, 4):requires_grad_(true))
check("AvgPool2d(3, stride 2, padding 1)", nn.AvgPool2d(3, { stride = 2, padding = 1 }),
      rnd(1, 2, 4, 4):requires_grad_(true))
local bn = nn.BatchNorm1d(3):double()
mg.no_grad(function() bn.weight:copy_(rnd(3)); bn.bias:copy_(rnd(3)) end)
check("BatchNorm1d training", bn, rnd(4, 3):requires_grad_(true))
bn:eval()
check("BatchNorm1d eval", bn, rnd(4, 3):requires_grad_(true))
local bn2 = nn.BatchNorm2d(2):double()
mg.no_grad(function() bn2.weight:copy_(rnd(2)) end)
check("BatchNorm2d training", bn2, rnd(2, 2, 2, 2):requires_grad_(true))
local ln = nn.LayerNorm(4):double()
mg.no_grad(function() ln.weight:copy_(rnd(4)); ln.bias:copy_(rnd(4)) end)
check("LayerNorm", ln, rnd(2, 4):requires_grad_(true))
local emb = nn.Embedding(4, 3):double()
check("Embedding weight", emb, mg.tensor({ 2, 4, 2 }))
check("GELU", nn.GELU(), rnd(6):requires_grad_(true))
check("LeakyReLU", nn.LeakyReLU(0.1), rnd(6):requires_grad_(true))
check("SiLU", nn.SiLU(), rnd(6):requires_grad_(true))
check("Softplus", nn.Softplus(), rnd(6):requires_grad_(true))
check("Sequential(Linear, Tanh, Linear)", nn.Sequential{ nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2) }:double(),
      rnd(2, 3):requires_grad_(true))
check("LogSoftmax", nn.LogSoftmax(-1), rnd(2, 3):requires_grad_(true))
check("Softmax", nn.Softmax(1), rnd(2, 3):requires_grad_(true))

-- RNNs: output and final state together
local LS = nn.Module:extend("LS")
function LS:init(cls, opts) self.rnn = cls(2, 2, opts) end
function LS:forward(x)
  local o, s = self.rnn(x)
  if type(s) == "table" then s = mg.cat({ s[1], s[2] }, 1) end
  return mg.cat({ o:reshape(-1), s:reshape(-1) }, 1)
end
check("LSTM", LS(nn.LSTM):double(), rnd(3, 1, 2):requires_grad_(true))
check("GRU", LS(nn.GRU):double(), rnd(3, 1, 2):requires_grad_(true))
check("bidirectional GRU", LS(nn.GRU, { bidirectional = true }):double(), rnd(3, 1, 2):requires_grad_(true))
check("LSTM two layers, batch_first", LS(nn.LSTM, { num_layers = 2, batch_first = true }):double(),
      rnd(1, 2, 2):requires_grad_(true))

-- a user module end to end, with a loss-like scalar
local Net = nn.Module:extend("Net")
function Net:init() self.fc = nn.Linear(3, 4); self.out = nn.Linear(4, 1) end
function Net:forward(x) return self.out(self.fc(x):tanh()):sum() end
check("user module (Linear, tanh, Linear, sum)", Net():double(), rnd(2, 3))
T:done()
