-- Learning-rate schedulers, added to mg.optim (the optimizer constructor table made in C).
-- Every scheduler computes PyTorch's closed form for epoch `last_epoch` and writes it to
-- opt.lr. Construction performs PyTorch's initial step (last_epoch = 0, lr = lr(0)).
-- The base lr is the optimizer's lr when its first scheduler is created (PyTorch's
-- param_group['initial_lr']), so schedulers created one after another share one base.
local mg = ...
local O = mg.optim
if O == nil then O = {}; mg.optim = O
elseif type(O) == "function" then         -- a plain constructor: keep it callable
  local make = O
  O = setmetatable({}, { __call = function(_, ...) return make(...) end })
  mg.optim = O
end

local fmt, floor, cos, pi = string.format, math.floor, math.cos, math.pi

local initial_lr = setmetatable({}, { __mode = "k" })   -- optimizer -> base lr

local function getlr(opt, who)
  local ok, lr = pcall(function() return opt.lr end)
  if not ok or type(lr) ~= "number" then
    error(fmt("%s: expected an optimizer with a numeric 'lr' field, got %s", who,
              mg._typename(opt) .. ((ok and opt ~= nil) and " without a numeric lr" or "")), 3)
  end
  return lr
end

local function check(cond, who, what, v)
  if not cond then error(fmt("%s: %s, got %s", who, what, tostring(v)), 3) end
end
local function posint(v) return math.type(v) == "integer" and v > 0
  or (type(v) == "number" and v > 0 and v == floor(v) and v < 2^53) end
local function num(v) return type(v) == "number" and v == v end

local Sched = {}
Sched.__index = Sched
Sched.__tostring = function(s)
  return fmt("%s(last_epoch=%d, lr=%.6g)", s.kind, s.last_epoch, s.last_lr)
end

-- fields saved by state_dict, per kind
local SAVED = {
  StepLR = { "step_size", "gamma" },
  MultiStepLR = { "milestones", "gamma" },
  ExponentialLR = { "gamma" },
  CosineLR = { "t_max", "min_lr" },
  LinearLR = { "start_factor", "end_factor", "total_iters" },
  LinearWarmup = { "start_factor", "end_factor", "total_iters" },
  SequentialLR = { "milestones" },
}

local closed = {}
-- StepLR: base * gamma^floor(e / step_size)
function closed.StepLR(s, e) return s.base_lr * s.gamma ^ (e // s.step_size) end
-- MultiStepLR: base * gamma^(number of milestones <= e)
function closed.MultiStepLR(s, e)
  local k = 0
  for _, m in ipairs(s.milestones) do if m <= e then k = k + 1 end end
  return s.base_lr * s.gamma ^ k
end
-- ExponentialLR: base * gamma^e
function closed.ExponentialLR(s, e) return s.base_lr * s.gamma ^ e end
-- CosineAnnealingLR: min + (base - min) * (1 + cos(pi * e / t_max)) / 2
function closed.CosineLR(s, e)
  return s.min_lr + (s.base_lr - s.min_lr) * (1 + cos(pi * e / s.t_max)) / 2
end
-- LinearLR: base * (start + (end - start) * min(e, total) / total)
function closed.LinearLR(s, e)
  return s.base_lr * (s.start_factor + (s.end_factor - s.start_factor) *
                      math.min(s.total_iters, e) / s.total_iters)
end
closed.LinearWarmup = closed.LinearLR
-- SequentialLR: scheduler k runs from milestone k-1 (its epoch restarting at 0)
function closed.SequentialLR(s, e)
  local k, start = 1, 0
  for i, m in ipairs(s.milestones) do if m <= e then k, start = i + 1, m end end
  local sub = s.schedulers[k]
  sub.last_epoch = e - start
  sub.last_lr = closed[sub.kind](sub, e - start)
  return sub.last_lr
end

local function new(kind, opt, fields)
  local lr = getlr(opt, kind)
  if initial_lr[opt] == nil then initial_lr[opt] = lr end
  local s = setmetatable(fields, Sched)
  s.kind, s.opt, s.base_lr, s.last_epoch = kind, opt, initial_lr[opt], 0
  s.last_lr = closed[kind](s, 0)
  opt.lr = s.last_lr
  return s
end

-- sched:step([epoch]): advance one epoch (or jump to `epoch`) and set opt.lr
function Sched:step(epoch)
  if epoch ~= nil then
    check(math.type(epoch) == "integer" or (num(epoch) and epoch == floor(epoch)),
          self.kind .. ":step", "epoch must be an integer", epoch)
    self.last_epoch = floor(epoch)
  else
    self.last_epoch = self.last_epoch + 1
  end
  self.last_lr = closed[self.kind](self, self.last_epoch)
  self.opt.lr = self.last_lr
  return self.last_lr
end

-- the lr set by the last step (PyTorch's get_last_lr()[1])
function Sched:get_lr() return self.last_lr end
Sched.get_last_lr = Sched.get_lr
-- the lr of the closed form at any epoch, without changing anything
function Sched:lr_at(epoch)
  check(num(epoch) and epoch == floor(epoch), self.kind .. ":lr_at", "epoch must be an integer", epoch)
  return closed[self.kind](self, epoch)
end

function Sched:state_dict()
  local sd = { kind = self.kind, last_epoch = self.last_epoch, base_lr = self.base_lr }
  for _, k in ipairs(SAVED[self.kind]) do
    local v = self[k]
    if type(v) == "table" then v = { table.unpack(v) } end
    sd[k] = v
  end
  if self.schedulers then
    sd.schedulers = {}
    for i, sub in ipairs(self.schedulers) do sd.schedulers[i] = sub:state_dict() end
  end
  return sd
end

-- restores the schedule position and sets opt.lr to the lr of that epoch
function Sched:load_state_dict(sd)
  local who = self.kind .. ":load_state_dict"
  if type(sd) ~= "table" then error(who .. ": expected a table, got " .. mg._typename(sd), 2) end
  if sd.kind ~= nil and sd.kind ~= self.kind then
    error(fmt("%s: state is from a %s scheduler", who, tostring(sd.kind)), 2)
  end
  for _, k in ipairs({ "last_epoch", "base_lr" }) do
    if not num(sd[k]) then error(fmt("%s: missing or bad '%s' (got %s)", who, k, tostring(sd[k])), 2) end
  end
  for _, k in ipairs(SAVED[self.kind]) do
    if sd[k] == nil then error(fmt("%s: missing '%s'", who, k), 2) end
  end
  if self.schedulers then
    if type(sd.schedulers) ~= "table" or #sd.schedulers ~= #self.schedulers then
      error(fmt("%s: expected states of %d schedulers", who, #self.schedulers), 2)
    end
    for i, sub in ipairs(self.schedulers) do sub:load_state_dict(sd.schedulers[i]) end
  end
  for _, k in ipairs(SAVED[self.kind]) do
    local v = sd[k]
    if type(v) == "table" then v = { table.unpack(v) } end
    self[k] = v
  end
  self.last_epoch = floor(sd.last_epoch)
  self.base_lr = sd.base_lr
  self.last_lr = closed[self.kind](self, self.last_epoch)
  self.opt.lr = self.last_lr
  return self
end

-- mg.optim.StepLR(opt, step_size [, gamma = 0.1])
function O.StepLR(opt, step_size, gamma)
  gamma = gamma == nil and 0.1 or gamma
  check(posint(step_size), "StepLR", "step_size must be a positive integer", step_size)
  check(num(gamma), "StepLR", "gamma must be a number", gamma)
  return new("StepLR", opt, { step_size = step_size, gamma = gamma })
end

-- mg.optim.MultiStepLR(opt, {milestones} [, gamma = 0.1])
function O.MultiStepLR(opt, milestones, gamma)
  gamma = gamma == nil and 0.1 or gamma
  check(type(milestones) == "table" and #milestones > 0, "MultiStepLR",
        "milestones must be a non-empty list of increasing epochs", milestones)
  for i, m in ipairs(milestones) do
    check(posint(m) and (i == 1 or m > milestones[i - 1]), "MultiStepLR",
          "milestones must be increasing positive integers", m)
  end
  check(num(gamma), "MultiStepLR", "gamma must be a number", gamma)
  return new("MultiStepLR", opt, { milestones = { table.unpack(milestones) }, gamma = gamma })
end

-- mg.optim.ExponentialLR(opt, gamma)
function O.ExponentialLR(opt, gamma)
  check(num(gamma), "ExponentialLR", "gamma must be a number", gamma)
  return new("ExponentialLR", opt, { gamma = gamma })
end

-- mg.optim.CosineLR(opt, t_max [, min_lr = 0]): PyTorch's CosineAnnealingLR (eta_min = min_lr)
function O.CosineLR(opt, t_max, min_lr)
  min_lr = min_lr == nil and 0 or min_lr
  check(posint(t_max), "CosineLR", "t_max must be a positive integer", t_max)
  check(num(min_lr), "CosineLR", "min_lr must be a number", min_lr)
  return new("CosineLR", opt, { t_max = t_max, min_lr = min_lr })
end
O.CosineAnnealingLR = O.CosineLR

local function linear(kind, opt, o)
  local sf = o.start_factor == nil and 1 / 3 or o.start_factor
  local ef = o.end_factor == nil and 1 or o.end_factor
  local total = o.total_iters == nil and 5 or o.total_iters
  check(num(sf) and sf > 0 and sf <= 1, kind, "start_factor must be in (0, 1]", sf)
  check(num(ef) and ef >= 0 and ef <= 1, kind, "end_factor must be in [0, 1]", ef)
  check(posint(total), kind, "total_iters must be a positive integer", total)
  return new(kind, opt, { start_factor = sf, end_factor = ef, total_iters = total })
end

-- mg.optim.LinearLR(opt [, {start_factor = 1/3, end_factor = 1, total_iters = 5}])
function O.LinearLR(opt, o)
  if o ~= nil and type(o) ~= "table" then error("LinearLR: options must be a table, got " .. mg._typename(o), 2) end
  return linear("LinearLR", opt, o or {})
end

-- mg.optim.LinearWarmup(opt, steps): PyTorch's LinearLR(start_factor = 1/steps,
-- end_factor = 1, total_iters = steps): lr(e) = base * (1/steps + (1 - 1/steps) * min(e, steps)/steps),
-- i.e. base/steps at creation, base after `steps` calls to :step().
function O.LinearWarmup(opt, steps)
  check(posint(steps), "LinearWarmup", "steps must be a positive integer", steps)
  return linear("LinearWarmup", opt, { start_factor = 1 / steps, end_factor = 1, total_iters = steps })
end

-- mg.optim.SequentialLR(opt, {sched1, sched2, ...}, {milestones}): sched k+1 takes over at
-- milestone k with its epoch restarting at 0 (PyTorch's SequentialLR), e.g. warmup then cosine.
function O.SequentialLR(opt, schedulers, milestones)
  check(type(schedulers) == "table" and #schedulers > 0, "SequentialLR",
        "expected a list of schedulers", schedulers)
  check(type(milestones) == "table" and #milestones == #schedulers - 1, "SequentialLR",
        fmt("expected %d milestones for %d schedulers", #schedulers - 1, #schedulers),
        type(milestones) == "table" and #milestones or milestones)
  for i, s in ipairs(schedulers) do
    check(getmetatable(s) == Sched and s.kind ~= "SequentialLR", "SequentialLR",
          fmt("schedulers[%d] must be a scheduler", i), s)
    check(s.opt == opt, "SequentialLR", fmt("schedulers[%d] uses another optimizer", i), s)
  end
  for i, m in ipairs(milestones) do
    check(posint(m) and (i == 1 or m > milestones[i - 1]), "SequentialLR",
          "milestones must be increasing positive integers", m)
  end
  return new("SequentialLR", opt, { schedulers = { table.unpack(schedulers) },
                                    milestones = { table.unpack(milestones) } })
end

-- mg.optim.ReduceLROnPlateau(opt [, {mode = "min", factor = 0.1, patience = 10, threshold = 1e-4,
-- threshold_mode = "rel", cooldown = 0, min_lr = 0, eps = 1e-8}]); sched:step(metric) after each
-- evaluation. PyTorch's rules: a metric better than best (by the threshold) resets the count of
-- bad epochs; more than `patience` bad epochs multiply lr by factor (not below min_lr; changes
-- smaller than eps are skipped) and start `cooldown` epochs during which bad epochs are not counted.
local Plateau = {}
Plateau.__index = Plateau
Plateau.__tostring = function(s)
  return fmt("ReduceLROnPlateau(best=%g, bad_epochs=%d, lr=%.6g)", s.best, s.num_bad_epochs, s.last_lr)
end
local PLATEAU_FIELDS = { "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps",
                         "best", "num_bad_epochs", "cooldown_counter", "last_epoch" }
local PLATEAU_OPTS = { mode = true, factor = true, patience = true, threshold = true, threshold_mode = true,
                       cooldown = true, min_lr = true, eps = true }

function O.ReduceLROnPlateau(opt, o)
  local who = "ReduceLROnPlateau"
  if o ~= nil and type(o) ~= "table" then error(who .. ": options must be a table, got " .. mg._typename(o), 2) end
  o = o or {}
  for k in pairs(o) do
    if not PLATEAU_OPTS[k] then
      error(fmt("%s: unknown option '%s' (accepted: mode, factor, patience, threshold, threshold_mode, " ..
                "cooldown, min_lr, eps)", who, tostring(k)), 2)
    end
  end
  local lr = getlr(opt, who)
  local s = setmetatable({
    kind = who, opt = opt, mode = o.mode or "min", factor = o.factor or 0.1, patience = o.patience or 10,
    threshold = o.threshold or 1e-4, threshold_mode = o.threshold_mode or "rel", cooldown = o.cooldown or 0,
    min_lr = o.min_lr or 0, eps = o.eps or 1e-8, num_bad_epochs = 0, cooldown_counter = 0, last_epoch = 0,
    last_lr = lr,
  }, Plateau)
  check(s.mode == "min" or s.mode == "max", who, "mode must be \"min\" or \"max\"", s.mode)
  check(s.threshold_mode == "rel" or s.threshold_mode == "abs", who, "threshold_mode must be \"rel\" or \"abs\"",
        s.threshold_mode)
  check(num(s.factor) and s.factor < 1 and s.factor >= 0, who, "factor must be in [0, 1)", s.factor)
  check(math.type(s.patience) == "integer" and s.patience >= 0, who, "patience must be a non-negative integer", s.patience)
  check(math.type(s.cooldown) == "integer" and s.cooldown >= 0, who, "cooldown must be a non-negative integer", s.cooldown)
  check(num(s.threshold) and s.threshold >= 0, who, "threshold must be a non-negative number", s.threshold)
  check(num(s.min_lr) and s.min_lr >= 0, who, "min_lr must be a non-negative number", s.min_lr)
  check(num(s.eps) and s.eps >= 0, who, "eps must be a non-negative number", s.eps)
  s.best = s.mode == "min" and math.huge or -math.huge
  return s
end

function Plateau:_better(a)
  local b, th = self.best, self.threshold
  if self.mode == "min" then
    if self.threshold_mode == "rel" then return a < b * (1 - th) end
    return a < b - th
  end
  if self.threshold_mode == "rel" then return a > b * (th + 1) end
  return a > b + th
end

-- sched:step(metric): metric is a number or a 1-element tensor; returns the lr
function Plateau:step(metric)
  if type(metric) ~= "number" then
    local ok, v = pcall(function() return metric:item() end)
    if not ok or type(v) ~= "number" then
      error("ReduceLROnPlateau:step: expected the metric as a number, got " .. mg._typename(metric), 2)
    end
    metric = v
  end
  self.last_epoch = self.last_epoch + 1
  if self:_better(metric) then
    self.best, self.num_bad_epochs = metric, 0
  else
    self.num_bad_epochs = self.num_bad_epochs + 1
  end
  if self.cooldown_counter > 0 then
    self.cooldown_counter = self.cooldown_counter - 1
    self.num_bad_epochs = 0
  end
  if self.num_bad_epochs > self.patience then
    local old = self.opt.lr
    local new = math.max(old * self.factor, self.min_lr)
    if old - new > self.eps then self.opt.lr = new end
    self.cooldown_counter = self.cooldown
    self.num_bad_epochs = 0
  end
  self.last_lr = self.opt.lr
  return self.last_lr
end
function Plateau:get_lr() return self.last_lr end
Plateau.get_last_lr = Plateau.get_lr
function Plateau:state_dict()
  local sd = { kind = self.kind }
  for _, k in ipairs(PLATEAU_FIELDS) do sd[k] = self[k] end
  return sd
end
function Plateau:load_state_dict(sd)
  local who = "ReduceLROnPlateau:load_state_dict"
  if type(sd) ~= "table" then error(who .. ": expected a table, got " .. mg._typename(sd), 2) end
  if sd.kind ~= nil and sd.kind ~= self.kind then
    error(fmt("%s: state is from a %s scheduler", who, tostring(sd.kind)), 2)
  end
  for _, k in ipairs(PLATEAU_FIELDS) do
    if sd[k] == nil then error(fmt("%s: missing '%s'", who, k), 2) end
  end
  for _, k in ipairs(PLATEAU_FIELDS) do self[k] = sd[k] end
  return self
end

mg._guard_methods(Sched, "scheduler", "sched", "a scheduler", function(v) return getmetatable(v) == Sched end)
mg._guard_methods(Plateau, "ReduceLROnPlateau", "sched", "a scheduler", function(v) return getmetatable(v) == Plateau end)
O.Scheduler = Sched
