-- One training epoch of Fashion-MNIST in moongrad, timed (data loading excluded): the MLP
-- 784-256-128-10 or the LeNet-style CNN, batch 64, cross-entropy, SGD momentum 0.9, a fresh
-- shuffle per epoch (mg.data.DataLoader). Twin: bench/fmnist.py. Prints "BENCH epoch_s <s>".
--   moongrad bench/fmnist.lua [mlp|cnn [threads [epochs [limit]]]]   (limit: first N samples, for profiling)
local mg = require("moongrad")
local kind = arg and arg[1] or "mlp"
local threads = tonumber(arg and arg[2]) or 1
local epochs = tonumber(arg and arg[3]) or 1
local limit = tonumber(arg and arg[4])
assert(kind == "mlp" or kind == "cnn", "bench/fmnist.lua: model must be mlp or cnn")
mg.set_num_threads(threads)
mg.manual_seed(42)

local x, y = mg.data.fashion_mnist("train", os.getenv("MOONGRAD_DATA"))
if limit then x, y = x:narrow(1, 1, limit), y:narrow(1, 1, limit) end
local nn = mg.nn
local model, shape
if kind == "mlp" then
  model = nn.Sequential { nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10) }
  shape = function(t) return t end
else
  model = nn.Sequential { nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10) }
  shape = function(t) return t:view(t:size(1), 1, 28, 28) end
end
local opt = mg.optim("sgd", model:parameters(), { lr = kind == "mlp" and 0.01 or 0.05, momentum = 0.9 })
local crit = mg.loss("cross_entropy")
local loader = mg.data.DataLoader({ x, y }, { batch_size = 64, shuffle = true })
for _ = 1, epochs do
  local t0 = mg.clock()
  local loss
  for xb, yb in loader:iter() do
    opt:zero_grad()
    loss = crit(model(shape(xb)), yb)
    loss:backward()
    opt:step()
  end
  print(("BENCH epoch_s %.4f"):format(mg.clock() - t0))
  print(("# last batch loss %.4f"):format(loss:item()))
end
