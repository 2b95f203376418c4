-- End to end: a small MLP learns a synthetic 3-class problem with mg.nn, a plugin optimizer,
-- a scheduler, gradient clipping, the CSV Logger and a plot; then a checkpoint round trip
-- through mg.save/mg.load restores the exact predictions.
local mg = require("moongrad")
local T = mg.test()
local nn = mg.nn
mg.manual_seed(5)

-- three Gaussian blobs in 2-D, labels 1..3
local N = 300
local centers = { { 2, 0 }, { -1, 1.7 }, { -1, -1.7 } }
local xs, ys = {}, {}
local noise = mg.randn(N, 2):totable()
for i = 1, N do
  local c = (i - 1) % 3 + 1
  xs[i] = { centers[c][1] + 0.5 * noise[i][1], centers[c][2] + 0.5 * noise[i][2] }
  ys[i] = c
end
local X, Y = mg.tensor(xs), mg.tensor(ys)

local Net = nn.Module:extend("Net")
function Net:init()
  self.body = nn.Sequential{ nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3) }
end
function Net:forward(x) return self.body(x) end

local model = Net()
local opt = mg.optim("adam", model:parameters(), { lr = 0.05 })
local sched = mg.optim.SequentialLR(opt, { mg.optim.LinearWarmup(opt, 5), mg.optim.CosineLR(opt, 55, 0.001) }, { 5 })
local crit = mg.loss("cross_entropy")
local csv, svg = os.tmpname(), os.tmpname()
os.remove(csv)
local log = mg.util.Logger(csv)
local first, last
for epoch = 1, 60 do
  model:train()
  opt:zero_grad()
  local loss = crit(model(X), Y)
  loss:backward()
  nn.clip_grad_norm(model:parameters(), 5)
  opt:step()
  sched:step()
  local l = loss:item()
  first = first or l
  last = l
  log:log{ epoch = epoch, loss = l, lr = opt.lr }
end
log:close()
model:eval()
local pred = model(X):argmax(2)
local acc = pred:eq(Y):mean():item()
T:ok(last < 0.3 * first, ("training loss fell from %.3f to %.3f"):format(first, last))
T:ok(acc > 0.95, ("train accuracy %.3f > 0.95"):format(acc))
T:near(opt.lr, 0.001, 1e-9, "cosine schedule ended at min_lr")

local f = assert(io.open(csv))
local n = 0
for _ in f:lines() do n = n + 1 end
f:close()
T:eq(n, 61, "logger wrote a header and 60 rows")
mg.util.plot(csv, svg, { y = { "loss", "lr" } })
local s = assert(io.open(svg)):read("a")
T:ok(select(2, s:gsub('<path class="series"', "")) == 2, "plot of the run has two series")

-- checkpoint: model and scheduler state together through mg.save/mg.load
local ck = os.tmpname()
mg.save(ck, { model = model:state_dict(), sched = sched:state_dict(), epoch = 60 })
local L = mg.load(ck)
local model2 = Net()
model2:load_state_dict(L.model)
model2:eval()
T:near(model2(X), model(X), 0, "reloaded model predicts identically")
local opt2 = mg.optim("adam", model2:parameters(), { lr = 0.05 })
local sched2 = mg.optim.SequentialLR(opt2, { mg.optim.LinearWarmup(opt2, 5), mg.optim.CosineLR(opt2, 55, 0.001) }, { 5 })
sched2:load_state_dict(L.sched)
T:eq(opt2.lr, opt.lr, "scheduler state restored through a checkpoint")
T:eq(L.epoch, 60, "plain numbers in the checkpoint")

-- a state dict stored as nested tables (other writers of safetensors) loads too
local function nest(sd)
  local out = {}
  for name, t in pairs(sd) do
    local node, parts = out, {}
    for p in name:gmatch("[^.]+") do parts[#parts + 1] = tonumber(p) or p end
    for i = 1, #parts - 1 do node[parts[i]] = node[parts[i]] or {}; node = node[parts[i]] end
    node[parts[#parts]] = t
  end
  return out
end
local model3 = Net()
local r = model3:load_state_dict(nest(model:state_dict()))
model3:eval()
T:ok(#r.missing == 0 and #r.unexpected == 0, "nested state dict: every key matched")
T:near(model3(X), model(X), 0, "nested state dict loads the same weights")
os.remove(csv); os.remove(svg); os.remove(ck)
T:done()
