-- LR schedulers: sequences against the documented closed forms and against reference
-- sequences printed by PyTorch 1.13 (torch.optim.lr_scheduler with SGD(lr=0.1), collecting
-- param_groups[0]['lr'] after construction and after each of 12 opt.step(); sched.step()).
local mg = require("moongrad")
local T = mg.test()
local O = mg.optim

local function seq(opt, s, n)
  local out = { opt.lr }
  for _ = 1, n do
    local r = s:step()
    out[#out + 1] = opt.lr
    assert(r == opt.lr and s:get_lr() == opt.lr)
  end
  return out
end

local function closed(n, f)
  local out = {}
  for e = 0, n do out[#out + 1] = f(e) end
  return out
end

-- StepLR(opt, 3, 0.5): 0.1 * 0.5^floor(e/3)
do
  local opt = { lr = 0.1 }
  local got = seq(opt, O.StepLR(opt, 3, 0.5), 12)
  T:near(got, closed(12, function(e) return 0.1 * 0.5 ^ (e // 3) end), 1e-14, "StepLR closed form")
  T:near(got, { 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.00625 },
         1e-14, "StepLR matches torch StepLR(opt, 3, 0.5)")
  local opt2 = { lr = 1.0 }
  T:near(seq(opt2, O.StepLR(opt2, 2), 4), { 1, 1, 0.1, 0.1, 0.01 }, 1e-14, "StepLR default gamma 0.1")
end

-- CosineLR(opt, 5, 0.001): 0.001 + (0.1 - 0.001) * (1 + cos(pi e / 5)) / 2, periodic after t_max
do
  local opt = { lr = 0.1 }
  local got = seq(opt, O.CosineLR(opt, 5, 0.001), 12)
  T:near(got, closed(12, function(e) return 0.001 + 0.099 * (1 + math.cos(math.pi * e / 5)) / 2 end), 1e-13,
         "CosineLR closed form")
  T:near(got, { 0.1, 0.0905463412215599, 0.06579634122155989, 0.035203658778440096, 0.010453658778440105,
                0.001, 0.010453658778440102, 0.03520365877844012, 0.06579634122155993, 0.09054634122155995,
                0.10000000000000005, 0.09054634122155998, 0.06579634122155995 },
         1e-12, "CosineLR matches torch CosineAnnealingLR(opt, 5, eta_min=0.001)")
  T:eq(got[6], 0.001, "CosineLR reaches min_lr at t_max")
  local opt2 = { lr = 2 }
  local s2 = O.CosineLR(opt2, 4)
  T:near({ s2:lr_at(2), s2:lr_at(4) }, { 1, 0 }, 1e-15, "CosineLR default min_lr 0")
end

-- LinearWarmup(opt, 4) == LinearLR(start_factor=1/4, total_iters=4):
-- lr(e) = base * (1/4 + (3/4) * min(e, 4)/4)
do
  local opt = { lr = 0.1 }
  local got = seq(opt, O.LinearWarmup(opt, 4), 8)
  T:near(got, closed(8, function(e) return 0.1 * (0.25 + 0.75 * math.min(e, 4) / 4) end), 1e-14,
         "LinearWarmup closed form")
  T:near(got, { 0.025, 0.043750000000000004, 0.06250000000000001, 0.08125000000000002, 0.10000000000000002,
                0.10000000000000002, 0.10000000000000002, 0.10000000000000002, 0.10000000000000002 },
         1e-14, "LinearWarmup matches torch LinearLR(start_factor=1/4, total_iters=4)")
  T:eq(got[1], 0.025, "LinearWarmup sets lr/steps at creation")
  local opt3 = { lr = 0.1 }
  T:near(seq(opt3, O.LinearWarmup(opt3, 3), 4),
         { 0.03333333333333333, 0.05555555555555556, 0.07777777777777778, 0.1, 0.1 }, 1e-14,
         "LinearWarmup(3) matches torch LinearLR(start_factor=1/3, total_iters=3)")
end

-- SequentialLR: warmup 3 then cosine(6); torch SequentialLR(opt, [LinearLR(1/3, 3), CosineAnnealingLR(6)], [3])
do
  local opt = { lr = 0.1 }
  local w = O.LinearWarmup(opt, 3)
  local c = O.CosineLR(opt, 6)
  T:eq(c.base_lr, 0.1, "second scheduler reuses the optimizer's initial lr (PyTorch initial_lr)")
  local got = seq(opt, O.SequentialLR(opt, { w, c }, { 3 }), 12)
  T:near(got, { 0.03333333333333333, 0.05555555555555556, 0.07777777777777778, 0.1, 0.09330127018922195,
                0.07500000000000001, 0.05, 0.025000000000000012, 0.006698729810778065, 0,
                0.006698729810778065, 0.025000000000000001, 0.050000000000000037 },
         1e-12, "SequentialLR matches torch")
end

-- MultiStepLR and ExponentialLR closed forms
do
  local opt = { lr = 1 }
  T:near(seq(opt, O.MultiStepLR(opt, { 2, 5 }, 0.5), 6), { 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25 }, 1e-15, "MultiStepLR")
  local opt2 = { lr = 1 }
  T:near(seq(opt2, O.ExponentialLR(opt2, 0.9), 3), { 1, 0.9, 0.81, 0.729 }, 1e-14, "ExponentialLR")
end

-- state_dict round trip: a fresh scheduler resumes the sequence
do
  local opt = { lr = 0.1 }
  local s = O.CosineLR(opt, 10, 0.01)
  for _ = 1, 4 do s:step() end
  local sd = s:state_dict()
  T:eq(sd.last_epoch, 4, "state_dict has last_epoch")
  T:eq(sd.kind, "CosineLR", "state_dict has the kind")
  local opt2 = { lr = 0.1 }
  local s2 = O.CosineLR(opt2, 3)
  s2:load_state_dict(sd)
  T:near(opt2.lr, s:get_lr(), 1e-15, "load_state_dict sets the lr of the saved epoch")
  s:step(); s2:step()
  T:near({ opt2.lr, s2.t_max, s2.min_lr }, { opt.lr, 10, 0.01 }, 1e-15, "resumed scheduler continues identically")
  T:raises(function() O.StepLR({ lr = 0.1 }, 2):load_state_dict(sd) end, "state is from a CosineLR scheduler",
           "load_state_dict refuses another kind")
  local seqsd = O.SequentialLR(opt, { O.LinearWarmup(opt, 2), O.StepLR(opt, 2) }, { 2 })
  for _ = 1, 5 do seqsd:step() end
  local opt3 = { lr = 0.1 }
  local s3 = O.SequentialLR(opt3, { O.LinearWarmup(opt3, 2), O.StepLR(opt3, 2) }, { 2 })
  s3:load_state_dict(seqsd:state_dict())
  T:eq(opt3.lr, opt.lr, "SequentialLR state round trip")
end

-- step(epoch) jumps
do
  local opt = { lr = 1 }
  local s = O.StepLR(opt, 2, 0.5)
  s:step(7)
  T:eq(opt.lr, 0.125, "step(7) jumps to epoch 7")
end

-- ReduceLROnPlateau: sequences printed by torch 1.13 (SGD lr=1, step(metric) then read the lr)
do
  local opt = { lr = 1.0 }
  local s = O.ReduceLROnPlateau(opt, { factor = 0.5, patience = 2, threshold = 0.01, cooldown = 1, min_lr = 0.1 })
  local metrics = { 1.0, 0.9, 0.95, 0.9, 0.899, 0.91, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6 }
  local got = {}
  for i, m in ipairs(metrics) do got[i] = s:step(m) end
  T:near(got, { 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.125, 0.1 },
         1e-15, "ReduceLROnPlateau min/rel with patience, cooldown and min_lr matches torch")
  local opt2 = { lr = 1.0 }
  local s2 = O.ReduceLROnPlateau(opt2, { mode = "max", patience = 0, threshold = 0.1, threshold_mode = "abs" })
  got = {}
  for i, m in ipairs({ 0.5, 0.55, 0.7, 0.75, 0.9, 0.8 }) do got[i] = s2:step(mg.tensor(m)) end
  T:near(got, { 1.0, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002 }, 1e-15,
         "ReduceLROnPlateau max/abs, tensor metrics, matches torch")
  local opt3 = { lr = 1.0 }
  local s3 = O.ReduceLROnPlateau(opt3, { factor = 0.5, patience = 2, threshold = 0.01, cooldown = 1, min_lr = 0.1 })
  for i = 1, 9 do s3:step(metrics[i]) end
  local opt4 = { lr = opt3.lr }
  local s4 = O.ReduceLROnPlateau(opt4, { factor = 0.5, patience = 2, threshold = 0.01, cooldown = 1, min_lr = 0.1 })
  s4:load_state_dict(s3:state_dict())
  got = {}
  for i = 10, 18 do got[#got + 1] = s4:step(metrics[i]) end
  T:near(got, { 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.125, 0.1 }, 1e-15, "ReduceLROnPlateau state round trip")
  T:raises(function() O.ReduceLROnPlateau({ lr = 1 }, { patience = -1 }) end,
           "ReduceLROnPlateau: patience must be a non-negative integer, got -1")
  T:raises(function() O.ReduceLROnPlateau({ lr = 1 }, { paitence = 1 }) end, "ReduceLROnPlateau: unknown option 'paitence'")
  T:raises(function() s:step("x") end, "ReduceLROnPlateau:step: expected the metric as a number, got string")
end

-- argument errors
T:raises(function() O.StepLR({ lr = 0.1 }, 0, 0.5) end, "StepLR: step_size must be a positive integer, got 0")
T:raises(function() O.StepLR({}, 1) end, "StepLR: expected an optimizer with a numeric 'lr' field")
T:raises(function() O.CosineLR({ lr = 0.1 }, 1.5) end, "CosineLR: t_max must be a positive integer, got 1.5")
T:raises(function() O.LinearWarmup({ lr = 0.1 }, -1) end, "LinearWarmup: steps must be a positive integer, got -1")
T:raises(function() O.SequentialLR({ lr = 1 }, { O.StepLR({ lr = 1 }, 1) }, { 1 }) end,
         "SequentialLR: expected 0 milestones for 1 schedulers")

-- with a real optimizer from the plugin registry: opt.lr is read and written through it
do
  local ok, opt = pcall(mg.optim, "sgd", { mg.zeros(2, { requires_grad = true }) }, { lr = 0.5 })
  if T:ok(ok, "sgd optimizer available") then
    local s = O.StepLR(opt, 1, 0.5)
    s:step()
    T:eq(opt.lr, 0.25, "scheduler drives a real optimizer's lr")
  else
    T:diag(tostring(opt))
  end
end

T:done()
