-- plugin_example.lua: the third-party example plugins (examples/plugins: the Lion
-- optimizer and the log-cosh loss) build with the documented commands, load with
-- mg.load_plugin, follow their rules, and train a model. Run from the source root.
local mg = require("moongrad")
local T = mg.test()

local function sh(cmd)
  local f = io.popen(cmd .. " 2>&1")
  local out = f:read("a")
  local ok = f:close()
  return ok, out
end

local _, tmp = sh("mktemp -d")
tmp = tmp:gsub("%s+$", "")
-- the one-command build of the guide
local ok, out = sh("make -s -C examples/plugins OUT=" .. tmp)
T:ok(ok, "make -C examples/plugins builds the examples")
if not ok then T:diag(out) end
-- the single-file command of the guide, warning-free
ok, out = sh(("cc -std=c11 -O2 -Wall -Wextra -fPIC -shared -Iinclude -o %s/lion_cc.so examples/plugins/lion.c"):format(tmp))
T:ok(ok and out == "", "the documented cc command builds lion.c without warnings")
if out ~= "" then T:diag(out) end

local names = mg.load_plugin(tmp .. "/lion.so")
T:eq(names[1], "lion", "mg.load_plugin returns the names it registered")
T:eq(mg.load_plugin(tmp .. "/log_cosh.so")[1], "log_cosh", "the loss plugin loads")
local listed
for _, p in ipairs(mg.plugins()) do if p.name == "lion" then listed = p end end
T:ok(listed and listed.kind == "optim" and listed.version == "1.0.0" and listed.file == tmp .. "/lion.so",
     "mg.plugins() lists lion with kind, version and file")
T:raises(function() mg.load_plugin(tmp .. "/lion_cc.so") end,
  ("load_plugin: %s/lion_cc.so: plugin 'lion': duplicate name (an optimizer named 'lion' is already registered from %s/lion.so)"):format(tmp, tmp),
  "a second library registering 'lion' is refused")
T:ok(mg.optim("adam", {mg.zeros(1, {requires_grad = true})}) ~= nil, "the runtime works after the refusal")

-- Lion's rule, computed here in Lua (float64):
--   c = b1 m + (1 - b1) g;  p = p (1 - lr wd) - lr sign(c);  m = b2 m + (1 - b2) g
do
  local G = {{0.3, -0.2, 0.0}, {-0.5, 0.1, 0.2}, {0.05, 0.4, -0.3}}
  local lr, b1, b2, wd = 0.1, 0.8, 0.95, 0.5
  local p = mg.tensor({0.5, -1.0, 0.2}, {dtype = "float64", requires_grad = true})
  local opt = mg.optim("lion", {p}, {lr = lr, beta1 = b1, beta2 = b2, weight_decay = wd})
  local rp, rm = {0.5, -1.0, 0.2}, {0, 0, 0}
  local function sign(v) return v > 0 and 1 or v < 0 and -1 or 0 end
  for s = 1, #G do
    p.grad = mg.tensor(G[s], {dtype = "float64"})
    opt:step()
    for k = 1, 3 do
      local c = b1 * rm[k] + (1 - b1) * G[s][k]
      rp[k] = rp[k] * (1 - lr * wd) - lr * sign(c)
      rm[k] = b2 * rm[k] + (1 - b2) * G[s][k]
    end
    T:near(p, rp, 1e-14, ("lion step %d follows the rule"):format(s))
  end
  T:near(opt:state_dict().state[1].exp_avg, rm, 1e-14, "lion's exp_avg state is in the state dict")
  T:raises(function() mg.optim("lion", {p}, {beta1 = 1.5}) end, "optim lion: option 'beta1' must be in [0, 1], got 1.5",
           "its declared ranges are enforced")
end

-- log_cosh: values and gradients
do
  local x = mg.tensor({{0.5, -2.0}, {3.0, 0.0}}, {dtype = "float64"})
  local y = mg.tensor({{0.0, 1.0}, {-1.0, 0.0}}, {dtype = "float64"})
  local d = {0.5, -3.0, 4.0, 0.0}
  local want, s = {}, 0
  for k = 1, 4 do want[k] = 2 * math.log((math.exp(d[k]) + math.exp(-d[k])) / 2); s = s + want[k] end
  T:near(mg.loss("log_cosh", {scale = 2, reduction = "none"})(x, y):view(-1), want, 1e-12, "log_cosh values (scale 2)")
  T:near(mg.loss("log_cosh", {scale = 2})(x, y), s / 4, 1e-12, "log_cosh mean")
  for _, red in ipairs({"none", "mean", "sum"}) do
    local crit = mg.loss("log_cosh", {reduction = red})
    local good, report = mg.gradcheck(function(a) return crit(a, y) end, {x:clone():requires_grad_()})
    T:ok(good, "log_cosh gradcheck, reduction=" .. red)
    if not good then T:diag(report) end
  end
  T:raises(function() mg.loss("log_cosh", {scale = 0}) end, "loss log_cosh: option 'scale' must be > 0, got 0", "scale range")
end

-- train a linear regression with both example plugins
do
  mg.manual_seed(1)
  local n, d = 256, 8
  local x = mg.randn(n, d)
  local y = x:matmul(mg.randn(d, 1)) + 0.5
  local model = mg.nn.Linear(d, 1)
  local opt = mg.optim("lion", model:parameters(), {lr = 0.01})
  local crit = mg.loss("log_cosh")
  local first, last
  for e = 1, 400 do
    opt.lr = 0.02 * (1 - e / 400) + 1e-4  -- a linear decay, written through opt.lr
    opt:zero_grad()
    local loss = crit(model(x), y)
    loss:backward()
    opt:step()
    first = first or loss:item()
    last = loss:item()
  end
  T:ok(first > 0.3, ("initial loss %.4f"):format(first))
  T:ok(last < 0.005 and last < first / 100, ("Lion + log_cosh trains the model: loss %.4f -> %.5f"):format(first, last))
end

sh("rm -rf " .. tmp)
T:done()
