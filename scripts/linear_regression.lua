-- Linear regression by gradient descent: fit y = w·x + b with MSE on the classic
-- four-point data set.  moongrad scripts/linear_regression.lua [--epochs N] [--lr X] [--seed N]
--
-- The two features are collinear (x2 = x1 + 1), so the least-squares solutions form a line
-- (every (w1, w2, b) with w1 + w2 = 1 and b = -w2 fits exactly); plain gradient descent
-- converges to the point of that line nearest to the initial parameters.
-- Returns {model, loss, w, b, w0, b0, X, y} so tests can check the fit (see tests/lua/train_linear.lua).
local mg = require("moongrad")

local opts = { epochs = 1000, lr = 0.01, seed = 42, every = 100 }
local args = arg or {}
local i = 1
while i <= #args do
  local a = args[i]
  local k, v = a:match("^%-%-([%w-]+)=(.*)$")
  if not k then k = a:match("^%-%-([%w-]+)$"); v = args[i + 1]; i = i + 1 end
  if k == "help" then
    print("usage: moongrad scripts/linear_regression.lua [--epochs N] [--lr X] [--seed N] [--every N]")
    return
  end
  if opts[k] == nil then error(("linear_regression: unknown option '%s'"):format(a), 0) end
  local n = tonumber(v)
  if not n or (k ~= "lr" and (n ~= math.floor(n) or n < 0)) or (k == "lr" and n <= 0) then
    error(("linear_regression: --%s expects a %s, got %s"):format(k,
          k == "lr" and "positive number" or "non-negative integer", tostring(v)), 0)
  end
  opts[k] = k == "lr" and n or math.tointeger(n)
  i = i + 1
end

mg.manual_seed(opts.seed)
local X = mg.tensor({ { 1, 2 }, { 2, 3 }, { 3, 4 }, { 4, 5 } })
local y = mg.tensor({ 1, 2, 3, 4 }):view(4, 1)

local model = mg.nn.Linear(2, 1)
local w0, b0 = model.weight:totable()[1], model.bias:item()
local crit = mg.loss("mse")
local opt = mg.optim("sgd", model:parameters(), { lr = opts.lr })

local loss
for epoch = 1, opts.epochs do
  opt:zero_grad()
  loss = crit(model(X), y)
  loss:backward()
  opt:step()
  if opts.every > 0 and epoch % opts.every == 0 then
    print(("epoch %4d  loss %.6f"):format(epoch, loss:item()))
  end
end

local final = mg.no_grad(function() return crit(model(X), y):item() end)
local w, b = model.weight:totable()[1], model.bias:item()
print(("w = (%.4f, %.4f)  b = %.4f  final loss %.3g"):format(w[1], w[2], b, final))
local pred = mg.no_grad(function() return model(X) end):totable()
for r = 1, 4 do
  print(("  x = (%g, %g)  y = %g  prediction %.4f"):format(r, r + 1, r, pred[r][1]))
end

return { model = model, loss = final, w = w, b = b, w0 = w0, b0 = b0, X = X, y = y }
