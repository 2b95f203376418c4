-- Message quality: t.op(...) called with '.' instead of ':', luaL-style argument errors
-- reached through methods, closed tensors in lists, and the PyTorch mismatches fixed
-- alongside (grad dtype, clamp with a NaN bound).
local mg = require("moongrad")
local T = mg.test()

local t = mg.ones(2, 3)
local function hint(op, got, name)
  return ("%s: expected a tensor as self (did you call t.%s(...) instead of t:%s(...)?), got %s"):format(op, name or op, name or op, got)
end
local closed
do local c <close> = mg.zeros(2); closed = c end  -- freed at the end of the block

local cases = {
  -- 1. tensor methods called with '.'
  {function() return t.add(2) end, hint("add", "number"), "t.add(2)"},
  {function() return t.mul(2) end, hint("mul", "number"), "t.mul(2)"},
  {function() return t.sum() end, hint("sum", "no value"), "t.sum()"},
  {function() return t.view(2, 3) end, hint("view", "number"), "t.view(2, 3)"},
  {function() return t.backward() end, hint("backward", "no value"), "t.backward()"},
  {function() return t.item() end, hint("item", "no value"), "t.item()"},
  {function() return t.clamp(0, 1) end, hint("clamp", "number"), "t.clamp(0, 1)"},
  {function() return t.max(1) end, hint("max", "number"), "t.max(1)"},
  {function() return t.fill_(1) end, hint("fill_", "number"), "t.fill_(1)"},
  {function() return t.tostring() end, hint("tostring", "no value"), "t.tostring()"},
  {function() return t.matmul(t) end,
    "matmul: argument #2: expected a tensor, got no value (did you call t.matmul(...) instead of t:matmul(...)?)", "t.matmul(t)"},
  {function() return t.add(t) end,
    "add: argument #2: expected a tensor or a number, got no value (did you call t.add(...) instead of t:add(...)?)", "t.add(t)"},
  {function() return mg.sum(2) end, "sum: argument #1: expected a tensor, got number", "mg.sum(2) has no hint"},
  {function() return mg.add(2, 3) end, "add: expected a tensor operand, got number and number", "mg.add(2, 3) has no hint"},
  {function() return t:sum(), t:view(3, 2), t:add(1) end, nil, "the same methods with ':' work"},
  -- optimizers and losses (C userdata) called with '.'
  {function() local o = mg.optim("sgd", {mg.zeros(2, {requires_grad = true})}, {lr = 0.1}); return o.step() end,
    "optim step: expected an optimizer as self (did you call opt.step(...) instead of opt:step(...)?), got no value", "opt.step()"},
  {function() local o = mg.optim("sgd", {mg.zeros(2, {requires_grad = true})}, {lr = 0.1}); return o.zero_grad() end,
    "optim zero_grad: expected an optimizer as self (did you call opt.zero_grad(...) instead of opt:zero_grad(...)?), got no value", "opt.zero_grad()"},
  {function() return mg.loss("mse").forward(t, t) end,
    "loss forward: expected a loss criterion as self (did you call crit.forward(...) instead of crit:forward(...)?), got tensor", "crit.forward(x, y)"},

  -- Lua objects: nn modules (built-in and user classes), schedulers, loaders, bars, loggers
  {function() local m = mg.nn.Linear(3, 2); local y = m.forward(t); return y end,
    "Linear:forward: expected an nn module as self (did you call m.forward(...) instead of m:forward(...)?), got tensor", "model.forward(x)"},
  {function() local m = mg.nn.Sequential{mg.nn.Linear(3, 2)}; local y = m.forward(t); return y end,
    "Sequential:forward: expected an nn module as self (did you call m.forward(...) instead of m:forward(...)?), got tensor", "Sequential.forward(x)"},
  {function()
    local Net = mg.nn.Module:extend("Net")
    function Net:init() self.fc = mg.nn.Linear(3, 2) end
    function Net:forward(x) return self.fc(x) end
    local y = Net().forward(t); return y
  end, "Net:forward: expected an nn module as self (did you call m.forward(...) instead of m:forward(...)?), got tensor", "user module .forward(x)"},
  {function()
    local Net = mg.nn.Module:extend("Net")
    function Net:init() self.fc = mg.nn.Linear(3, 2) end
    function Net:forward(x) return self.fc(x) end
    local net = Net()
    return #net:forward(t):shape() == 2 and net(t):size(2) == 2 and #net:parameters() == 2 or error("wrong")
  end, nil, "user module with ':' and __call works"},
  {function() local s = mg.nn.Sequential{}; local r = s.add(mg.nn.ReLU()); return r end,
    "Sequential:add: expected a module, got nil (did you call seq.add(m) instead of seq:add(m)?)", "seq.add(m)"},
  {function() local s = mg.nn.Sequential{}; local r = s.add(); return r end,
    "Sequential:add: expected an nn module as self (did you call m.add(...) instead of m:add(...)?), got no value", "seq.add()"},
  {function() return mg.nn.ReLU()("x") end, "ReLU:forward: argument #1: expected a tensor, got string", "ReLU on a string"},
  {function() return mg.nn.Tanh()() end, "Tanh:forward: argument #1: expected a tensor, got no value", "Tanh on nothing"},
  {function() return mg.nn.Flatten():forward(5) end, "Flatten:forward: argument #1: expected a tensor, got number", "Flatten on a number"},
  {function() local y = mg.nn.Identity()("x"); return y == "x" or error("identity") end, nil, "Identity passes anything, as PyTorch"},
  {function() return mg.nn.Linear(3, 2):apply(5) end, "apply: expected a function of a module, got number", "apply(number)"},
  {function() return mg.nn.Linear(3, 2).extra_repr() end,
    "Linear:extra_repr: expected an nn module as self (did you call m.extra_repr(...) instead of m:extra_repr(...)?), got no value", "m.extra_repr()"},
  {function() return mg.nn.Linear(3, 2):register_buffer(t) end, "register_buffer: name must be a string, got tensor", "tensor as a buffer name"},
  {function() local m = mg.nn.Linear(3, 2); local p = m.parameters(); return p end,
    "nn.Module:parameters: expected an nn module as self (did you call m.parameters(...) instead of m:parameters(...)?), got no value", "model.parameters()"},
  {function() local m = mg.nn.Linear(3, 2); local r = m.zero_grad(); return r end,
    "nn.Module:zero_grad: expected an nn module as self", "model.zero_grad()"},
  {function() local m = mg.nn.Linear(3, 2); local r = m.load_state_dict({}); return r end,
    "nn.Module:load_state_dict: expected an nn module as self (did you call m.load_state_dict(...) instead of m:load_state_dict(...)?), got table", "model.load_state_dict(sd)"},
  {function() local o = mg.optim("sgd", {mg.zeros(2, {requires_grad = true})}, {lr = 0.1}); local s = mg.optim.StepLR(o, 2); local r = s.step(); return r end,
    "scheduler:step: expected a scheduler as self (did you call sched.step(...) instead of sched:step(...)?), got no value", "sched.step()"},
  {function() local o = mg.optim("sgd", {mg.zeros(2, {requires_grad = true})}, {lr = 0.1}); local s = mg.optim.ReduceLROnPlateau(o); local r = s.step(1.0); return r end,
    "ReduceLROnPlateau:step: expected a scheduler as self (did you call sched.step(...) instead of sched:step(...)?), got number", "plateau.step(metric)"},
  {function() local o = mg.optim("sgd", {mg.zeros(2, {requires_grad = true})}, {lr = 0.1}); return mg.optim.StepLR(o, 2):lr_at("x") end,
    "StepLR:lr_at: epoch must be an integer, got x", "sched:lr_at(string)"},
  {function() return mg.optim.StepLR(t, 2) end, "StepLR: expected an optimizer with a numeric 'lr' field, got tensor", "scheduler of a tensor"},
  {function() local dl = mg.data.DataLoader({t}, {batch_size = 1}); local it = dl.iter(); return it end,
    "DataLoader:iter: expected a DataLoader as self (did you call loader.iter(...) instead of loader:iter(...)?), got no value", "loader.iter()"},
  {function() local b = mg.util.progress(10, {out = {write = function() end}}); local r = b.update(1); return r end,
    "progress:update: expected a progress bar as self (did you call bar.update(...) instead of bar:update(...)?), got number", "bar.update(1)"},
  {function()
    local path = os.tmpname()
    local l = mg.util.Logger(path)
    local ok, e = pcall(function() local r = l.log({loss = 1}); return r end)
    l:close(); os.remove(path)
    error(e)
  end, "Logger:log: expected a Logger as self (did you call logger.log(...) instead of logger:log(...)?), got table", "logger.log(row)"},
  {function()
    local dl = mg.data.DataLoader({t}, {batch_size = 1})
    local n = 0
    for _ in dl:iter() do n = n + 1 end
    local b = mg.util.progress(2, {out = {write = function() end}}); b:update(1); b:advance(); b:done()
    return n == 2 or error("batches")
  end, nil, "loader and bar methods with ':' work"},

  -- 2. arguments of methods reached through __index name the op
  {function() return t:narrow(1, "a", 1) end, "narrow: argument #3: expected an integer (start), got string", "narrow start"},
  {function() return t:narrow(1, 1, 1.5) end, "narrow: argument #4: expected an integer (length), got 1.5", "narrow length"},
  {function() return t:select(1, "x") end, "select: argument #3: expected an integer (index), got string", "select index"},
  {function() return t:uniform_("a") end, "uniform_: argument #2: expected a number, got string", "uniform_ bound"},
  {function() return t:normal_(0, {}) end, "normal_: argument #3: expected a number (std), got table", "normal_ std"},
  {function() return t:add(t, "x") end, "add: argument #3: expected a number (alpha), got string", "add alpha"},
  {function() return t:sub_(1, {}) end, "sub_: argument #3: expected a number (alpha), got table", "sub_ alpha"},
  {function() return t:add(1, "x") end, "add: argument #3: expected a number (alpha), got string", "add(number, bad alpha) (no leak)"},
  {function() return mg.where(t, 1, "x") end, "where: argument #3: expected a tensor or a number, got string", "where(c, number, bad) (no leak)"},
  {function() return mg.full(1.5, 0) end, "full: argument #1: expected a size (integer), got 1.5", "full size"},
  {function() return mg.randint(1, "x", {2}) end, "randint: argument #2: expected an integer (hi), got string", "randint hi"},
  {function() return mg.range(1, {}) end, "range: argument #2: expected a number (stop), got table", "range stop"},
  {function() return mg.data.csv(5) end, "data.csv: expected a file path (string), got number", "csv path"},
  {function() return mg.data.idx() end, "data.idx: expected a file path (string), got nil", "idx path"},
  {function() return mg.isatty("x") end, "isatty: argument #1: expected a file descriptor (integer), got string", "isatty fd"},
  {function() return mg.enable_grad(1) end, "enable_grad: argument #1: expected a function, got number", "enable_grad"},
  {function() local o = mg.optim("sgd", {mg.zeros(2, {requires_grad = true})}, {lr = 0.1}); return o:step(5) end,
    "optim step: argument #2: expected a closure (a function), got number", "opt:step(number)"},

  -- 3. closed tensors in lists
  {function() return mg.cat({t, closed}) end, "cat: tensor #2 in the list was closed", "cat with a closed tensor"},
  {function() return mg.stack({closed, t}) end, "stack: tensor #1 in the list was closed", "stack with a closed tensor"},
  {function() return mg.optim("sgd", {mg.zeros(2, {requires_grad = true}), closed}, {lr = 0.1}) end,
    "optim sgd: tensor #2 in the parameter list was closed", "optimizer params with a closed tensor"},
  {function() return mg.save("/nonexistent-dir/x.safetensors", {w = closed}) end, "save: tensor 'w' was closed", "save of a closed tensor"},
  {function() return mg.loss("mse")(closed, t) end, "loss mse: argument #1 (prediction): expected a tensor, got closed tensor", "loss of a closed tensor"},
  {function() return closed + 1 end, "add: argument #1: tensor was closed", "arithmetic on a closed tensor"},

  -- 4. mg.loss / mg.optim numbered as the user sees them
  {function() return mg.loss() end, "loss: argument #1: expected a loss name (a string such as \"mse\"), got no value", "mg.loss()"},
  {function() return mg.loss({}) end, "loss: argument #1: expected a loss name (a string such as \"mse\"), got table", "mg.loss({})"},
  {function() return mg.optim() end, "optim: argument #1: expected an optimizer name (a string such as \"sgd\"), got no value", "mg.optim()"},

  -- 5. gradients of another dtype or shape are refused (PyTorch: "assigned grad has data of a different type")
  {function() local p = mg.zeros(2, 3, {requires_grad = true}); p.grad = mg.zeros(2, 3, {dtype = "float64"}) end,
    "grad assignment: gradient of dtype float64 for a float32 tensor (shape {2,3}); convert it with :to(\"float32\")", "float64 grad of a float32 tensor"},
  {function() local p = mg.zeros(2, {dtype = "float64", requires_grad = true}); p.grad = mg.zeros(2) end,
    "grad assignment: gradient of dtype float32 for a float64 tensor (shape {2})", "float32 grad of a float64 tensor"},
  {function() local p = mg.zeros(2, 3, {requires_grad = true}); p.grad = mg.zeros(3, 2) end,
    "grad assignment: gradient of shape {3,2} for a tensor of shape {2,3}", "grad of another shape"},
  {function() local p = mg.zeros(2, 3, {requires_grad = true}); p.grad = mg.ones(2, 3); p.grad = nil end, nil, "grad of the same dtype and shape"},
}
local n = T:raises_each(cases)
T:ok(n > 40, "misuse cases counted")

-- 6. clamp: a NaN bound makes every element NaN (PyTorch propagates NaN from bounds);
-- a NaN input stays NaN; no bound is not the same as a NaN bound
do
  local nan = 0 / 0
  local x = mg.tensor({-2, 0.5, 3, nan}, {dtype = "float64", requires_grad = true})
  T:near(x:clamp(0, 1), {0, 0.5, 1, nan}, 0, "clamp(0, 1) keeps a NaN input")
  T:near(x:clamp(nil, 1), {-2, 0.5, 1, nan}, 0, "clamp(nil, 1)")
  T:near(x:clamp(0), {0, 0.5, 3, nan}, 0, "clamp(0)")
  T:near(x:clamp(nan), {nan, nan, nan, nan}, 0, "clamp(NaN) is NaN everywhere")
  T:near(x:clamp(nil, nan), {nan, nan, nan, nan}, 0, "clamp(nil, NaN) is NaN everywhere")
  T:near(x:clamp(0, nan), {nan, nan, nan, nan}, 0, "clamp(0, NaN) is NaN everywhere")
  T:near(mg.clamp(x, nan, 1), {nan, nan, nan, nan}, 0, "mg.clamp(x, NaN, 1) is NaN everywhere")
  T:near(mg.tensor({1, 2}):clamp_(nan), {nan, nan}, 0, "clamp_(NaN) in place")
  T:near(mg.tensor({1, nan}):clamp_(0, 1.5), {1, nan}, 0, "clamp_ keeps a NaN input")
  x:clamp(0, 1):sum():backward()
  T:near(x.grad, {0, 1, 0, 0}, 0, "clamp gradient: 1 inside, 0 outside and for a NaN input")
  x.grad = nil
  x:clamp(nan):sum():backward()
  T:near(x.grad, {0, 0, 0, 0}, 0, "clamp gradient with a NaN bound is 0")
  local y = mg.randn(5, {dtype = "float64", requires_grad = true})
  T:gradcheck("clamp(-0.5, 0.5)", function(v) return v:clamp(-0.5, 0.5) end, {y})
end

T:done()
