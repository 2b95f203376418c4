-- The linear-regression training step (4 samples x 2 features): forward, MSE, backward,
-- SGD step, in microseconds per step. Twin: bench/linreg_step.py.
--   moongrad bench/linreg_step.lua [steps]
local mg = require("moongrad")
local steps = tonumber(arg and arg[1]) or 20000
mg.set_num_threads(1)
mg.manual_seed(42)
local X = mg.tensor({ { 1, 2 }, { 2, 3 }, { 3, 4 }, { 4, 5 } })
local y = mg.tensor({ { 1 }, { 2 }, { 3 }, { 4 } })
local model = mg.nn.Linear(2, 1)
local crit = mg.loss("mse")
local opt = mg.optim("sgd", model:parameters(), { lr = 0.01 })
local function step()
  opt:zero_grad()
  local loss = crit(model(X), y)
  loss:backward()
  opt:step()
  return loss
end
for _ = 1, 200 do step() end -- warm-up
local t0 = mg.clock()
local loss
for _ = 1, steps do loss = step() end
local dt = mg.clock() - t0
print(("BENCH linreg_step_us %.3f"):format(dt / steps * 1e6))
print(("# final loss %.3g"):format(loss:item()))
