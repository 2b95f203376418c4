-- plugin_state.lua: optimizer objects from Lua — state_dict/load_state_dict round trips
-- (through mg.save/mg.load) continue a run exactly; hyperparameters are readable,
-- opt.lr is writable and validated; misuse errors name the optimizer and the problem.
local mg = require("moongrad")
local T = mg.test()

local P0 = {{0.5, -1.25}, {2.0, 0.1}}
local B0 = {0.3, -0.7, 0.2}
local GP = {{0.1, -0.2, 0.3, 0.4}, {-0.5, 0.25, 0.05, 0.0}, {0.3, 0.3, -0.1, 0.2},
            {1.0, -1.0, 0.5, -0.5}, {0.2, 0.1, -0.3, 0.6}, {-0.4, 0.0, 0.9, 0.1}}
local GB = {{1, 0, -1}, {0.5, 0.5, 0.5}, {-0.2, 0.3, 0.1}, {0, 0, 0}, {0.7, -0.7, 0.2}, {0.1, 0.2, 0.3}}
local dir = os.getenv("TMPDIR") or "/tmp"
local file = ("%s/mg_plugin_state_%d.safetensors"):format(dir, math.random(1, 1e9))

local configs = {
  {"sgd", {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01}},
  {"adam", {lr = 0.01, amsgrad = true, weight_decay = 0.1}},
  {"adamw", {lr = 0.01}},
  {"rmsprop", {lr = 0.01, momentum = 0.5, centered = true}},
  {"adagrad", {lr = 0.1, lr_decay = 0.1, initial_accumulator_value = 0.1}},
}

local function steps(opt, p, b, from, to)
  for s = from, to do
    p.grad = mg.tensor(GP[s], {dtype = p:dtype()}):view(2, 2)
    b.grad = mg.tensor(GB[s], {dtype = b:dtype()})
    opt:step()
  end
end

for _, cfg in ipairs(configs) do
  local name, opts = cfg[1], cfg[2]
  -- a float32 matrix and a float64 vector in one optimizer
  local p = mg.tensor(P0, {requires_grad = true})
  local b = mg.tensor(B0, {dtype = "float64", requires_grad = true})
  local opt = mg.optim(name, {p, b}, opts)
  steps(opt, p, b, 1, 3)
  mg.save(file, {model = {p = p:detach(), b = b:detach()}, optim = opt:state_dict()})
  steps(opt, p, b, 4, 6)

  local ck = mg.load(file)
  local p2 = ck.model.p:clone():requires_grad_()
  local b2 = ck.model.b:clone():requires_grad_()
  local opt2 = mg.optim(name, {p2, b2}, {lr = 0.5})  -- hyperparameters come from the checkpoint
  opt2:load_state_dict(ck.optim)
  T:eq(opt2.lr, opts.lr, name .. ": load_state_dict restores lr")
  steps(opt2, p2, b2, 4, 6)
  T:near(p2, p, 0, name .. ": the resumed run continues exactly (float32 parameter)")
  T:near(b2, b, 0, name .. ": the resumed run continues exactly (float64 parameter)")

  -- in-memory round trip: the state dict holds copies, not live buffers
  local sd = opt:state_dict()
  local before = sd.state[1]
  steps(opt, p, b, 1, 1)
  local after = opt:state_dict().state[1]
  for k, v in pairs(before) do
    if type(v) == "userdata" then
      T:ok((v - after[k]):abs():max():item() > 0 or k == "max_exp_avg_sq", ("%s: state_dict().%s is a copy"):format(name, k))
      break
    end
  end
end
os.remove(file)

-- state layout of adam (PyTorch's names)
do
  local w = mg.tensor({1, 2}, {requires_grad = true})
  local opt = mg.optim("adam", {w}, {lr = 0.1, amsgrad = true})
  w.grad = mg.tensor({1, 1})
  opt:step()
  opt:step()
  local sd = opt:state_dict()
  T:eq(sd.optim, "adam", "state_dict names the optimizer")
  T:eq(sd.state_version, 1, "and its state_version")
  T:eq(sd.hparams.amsgrad, true, "hyperparameters keep their types")
  T:eq(sd.state[1].step, 2, "per-parameter step count")
  T:near(sd.state[1].exp_avg, {0.19, 0.19}, 1e-6, "exp_avg after two steps of gradient 1")
  T:near(sd.state[1].exp_avg_sq, {0.001999, 0.001999}, 1e-6, "exp_avg_sq")
  T:near(sd.state[1].max_exp_avg_sq, {0.001999, 0.001999}, 1e-6, "max_exp_avg_sq")

  -- load_state_dict misuse: clear errors, and the optimizer is unchanged after each
  local opt2 = mg.optim("adam", {mg.zeros(2, {requires_grad = true})}, {lr = 0.2})
  T:raises(function() opt2:load_state_dict(42) end, "optim adam: load_state_dict: expected a table, got number", "not a table")
  T:raises(function() opt2:load_state_dict({optim = "sgd"}) end, "optim adam: load_state_dict: the state is for optimizer 'sgd'", "another optimizer's state")
  T:raises(function() opt2:load_state_dict({state = {[1] = {exp_avg = mg.zeros(3)}}}) end,
    "optim adam: load_state_dict: state 'exp_avg' of parameter 1 has shape {3}, the parameter has {2}", "shape mismatch")
  T:raises(function() opt2:load_state_dict({state = {[2] = {step = 1}}}) end,
    "optim adam: load_state_dict: state key '2' is not a parameter index (1..1)", "index out of range")
  T:raises(function() opt2:load_state_dict({state = {[1] = {step = "x"}}}) end,
    "state 'step' of parameter 1 must be a tensor or a number, got string", "bad entry type")
  T:raises(function() opt2:load_state_dict({state_version = 7}) end,
    "optim adam: load_state_dict: the checkpoint has state_version 7, this plugin (version 1.0.0) reads state_version 1", "state_version mismatch")
  T:raises(function() opt2:load_state_dict({hparams = {beta1 = 2}}) end,
    "optim adam: option 'beta1' must be in [0, 1), got 2 (in load_state_dict)", "invalid hyperparameter in the checkpoint")
  T:eq(opt2.lr, 0.2, "lr is unchanged after the failed loads")
  T:eq(opt2.beta1, 0.9, "beta1 too")
  -- stringified values (as a checkpoint's metadata may hold them) are accepted
  opt2:load_state_dict({optim = "adam", state_version = "1", hparams = {lr = "0.05", amsgrad = "true"},
                        state = {["1"] = {step = "4", exp_avg = mg.ones(2)}}})
  T:eq(opt2.lr, 0.05, "numeric strings are read back as numbers")
  T:eq(opt2.amsgrad, true, "\"true\" as a boolean")
  T:eq(opt2:state_dict().state[1].step, 4, "string parameter keys are indices")
end

-- hyperparameters as fields
do
  local w = mg.zeros(2, {requires_grad = true})
  local opt = mg.optim("rmsprop", {w}, {momentum = 0.5})
  T:eq(opt.lr, 0.01, "default lr (PyTorch's)")
  T:eq(opt.alpha, 0.99, "default alpha")
  T:eq(opt.centered, false, "booleans read as booleans")
  T:eq(opt.momentum, 0.5, "given value")
  T:eq(opt.name, "rmsprop", "opt.name")
  T:eq(opt.nosuch, nil, "unknown fields read as nil")
  opt.lr = 0.003
  T:eq(opt.lr, 0.003, "opt.lr is writable")
  opt.centered = true
  T:eq(opt.centered, true, "other hyperparameters too")
  T:raises(function() opt.lr = -0.1 end, "optim rmsprop: option 'lr' must be >= 0, got -0.1", "lr is validated on write")
  T:raises(function() opt.lr = "fast" end, "optim rmsprop: option 'lr' expects a number, got string", "type-checked on write")
  T:raises(function() opt.lrr = 1 end,
    "optim rmsprop: unknown option 'lrr' (accepted: lr, alpha, eps, weight_decay, momentum, centered)", "unknown field")
  T:eq(opt.lr, 0.003, "a refused write leaves lr as it was")
  T:eq(tostring(opt), "optim rmsprop (lr=0.003, alpha=0.99, eps=1e-08, weight_decay=0, momentum=0.5, centered=true) over 1 parameters", "tostring")
  T:eq(#opt.params, 1, "opt.params")
  local sgd = mg.optim("sgd", {w}, {lr = 0.1, momentum = 0.9})
  T:raises(function() sgd.nesterov = true; sgd.dampening = 0.5 end,
    "optim sgd: invalid options: nesterov momentum requires a momentum > 0 and zero dampening", "cross-field validate on write")
  T:eq(sgd.dampening, 0, "the refused value is not kept")
end

-- schedulers drive opt.lr
do
  local w = mg.zeros(1, {requires_grad = true})
  local opt = mg.optim("sgd", {w}, {lr = 1})
  local sched = mg.optim.StepLR(opt, 2, 0.5)
  local lrs = {}
  for _ = 1, 4 do sched:step(); lrs[#lrs + 1] = opt.lr end
  T:near(lrs, {1, 0.5, 0.5, 0.25}, 1e-12, "StepLR writes opt.lr")
end

-- parameters from a module, and construction misuse
do
  local m = mg.nn.Linear(3, 2)
  local opt = mg.optim("sgd", m, {lr = 0.1})
  T:eq(#opt.params, 2, "a module's parameters() are used")
  local x = mg.randn(4, 3)
  local w0 = m.weight:clone()
  mg.loss("mse")(m(x), mg.zeros(4, 2)):backward()
  opt:step()
  T:near(m.weight, w0 - m.weight.grad * 0.1, 1e-6, "and trained in place")
  T:raises(function() mg.optim("sgd", 5, {lr = 1}) end, "optim sgd: argument #2: expected an array of parameter tensors, got number", "params not a table")
  T:raises(function() mg.optim("sgd", {}, {lr = 1}) end, "optim sgd: got an empty parameter list", "empty list")
  T:raises(function() mg.optim("sgd", {mg.zeros(2), 3}, {lr = 1}) end, "optim sgd: parameter 2 is a number, not a tensor", "non-tensor param")
  local leaf = mg.zeros(2, 2, {requires_grad = true})
  T:raises(function() mg.optim("sgd", {leaf * 2}, {lr = 1}) end, "optim sgd: parameter 1 is not a leaf tensor", "non-leaf param")
  T:raises(function() mg.optim("sgd", {mg.zeros(2, 3):t()}, {lr = 1}) end, "optim sgd: parameter 1 (shape {3,2}) is not contiguous", "non-contiguous")
  T:raises(function() mg.optim("sgd", {leaf}, {lr = 1, [1] = 2}) end, "optim sgd: option names must be strings", "positional option")
  T:raises(function() mg.optim("sgd", {leaf}, "fast") end, "optim sgd: options must be a table, got string", "options type")
  T:raises(function() mg.optim("adam", {leaf}, {betta1 = 0.8}) end,
    "optim adam: unknown option 'betta1' (accepted: lr, beta1, beta2, eps, weight_decay, amsgrad)", "typo in an option")
  T:raises(function() mg.optim("adam", {leaf}, {amsgrad = "yes"}) end, "optim adam: option 'amsgrad' expects a boolean, got string", "type")
  T:raises(function() mg.optim("adagrad", {leaf}, {eps = 0 / 0}) end, "optim adagrad: option 'eps' is NaN", "NaN")
  T:raises(function() mg.optim("nadam", {leaf}) end, "optim: no optimizer named 'nadam' (available: adagrad, adam, adamw, rmsprop, sgd", "unknown optimizer")
  -- a gradient that does not match its parameter
  leaf.grad = nil
  local opt2 = mg.optim("sgd", {leaf}, {lr = 1})
  T:ok(pcall(opt2.step, opt2), "step with no gradient is fine")
end

-- mg.plugins() lists the built-ins with kind, version and file
do
  local seen = {}
  for _, p in ipairs(mg.plugins()) do seen[p.name] = p end
  local all = {sgd = "optim", adam = "optim", adamw = "optim", rmsprop = "optim", adagrad = "optim",
               mse = "loss", l1 = "loss", smooth_l1 = "loss", huber = "loss", cross_entropy = "loss",
               nll = "loss", bce = "loss", bce_with_logits = "loss", kl_div = "loss"}
  local file = {adamw = "adam"}  -- adam.c registers both Adam and AdamW
  for name, kind in pairs(all) do
    T:ok(seen[name] and seen[name].kind == kind and seen[name].version == "1.0.0" and
         seen[name].file:match("/" .. (file[name] or name) .. "%.so$"), ("mg.plugins(): %s %s"):format(kind, name))
  end
  T:raises(function() mg.load_plugin("/nonexistent/p.so") end, "load_plugin: /nonexistent/p.so: no such file", "load_plugin of a missing file")
end

T:done()
