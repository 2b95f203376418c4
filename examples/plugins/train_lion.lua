-- train_lion.lua: fit a small regression model with the example plugins.
--   make -C examples/plugins
--   build/moongrad examples/plugins/train_lion.lua [plugin_dir]
local mg = require("moongrad")
local dir = arg[1] or (arg[0]:match("^(.*)/[^/]*$") or ".")
mg.load_plugin(dir .. "/lion.so")
mg.load_plugin(dir .. "/log_cosh.so")

mg.manual_seed(1)
local n, d = 256, 8
local x = mg.randn(n, d)
local w_true = mg.randn(d, 1)
local y = x:matmul(w_true) + 0.5 + mg.randn(n, 1) * 0.01

local model = mg.nn.Linear(d, 1)
local opt = mg.optim("lion", model:parameters(), {lr = 0.01, weight_decay = 0})
local crit = mg.loss("log_cosh")
for epoch = 1, 300 do
  opt:zero_grad()
  local loss = crit(model(x), y)
  loss:backward()
  opt:step()
  if epoch % 50 == 0 then print(("epoch %3d  loss %.6f"):format(epoch, loss:item())) end
end
