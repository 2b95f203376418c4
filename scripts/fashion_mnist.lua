-- Fashion-MNIST classification: an MLP (784-256-128-10) or a small LeNet-style CNN.
-- Progress bar, per-epoch metrics (DIR/metrics.csv and DIR/metrics.svg), a checkpoint per
-- epoch, exact resume.  `moongrad scripts/fashion_mnist.lua --help` lists the options.
--
-- Reproducibility: the model is initialised after mg.manual_seed(seed) and every epoch starts
-- with mg.manual_seed(seed + epoch), so the shuffle of epoch e depends only on (seed, e). A
-- checkpoint holds the model and optimizer state, the epoch and the settings that shape the
-- run, so `--resume DIR/epoch-2.safetensors --epochs 3` ends with exactly the weights of an
-- uninterrupted 3-epoch run.
--
-- Ctrl-C (the runner turns it into the error "interrupted", see mg_interrupt) writes
-- DIR/interrupted.safetensors: the same checkpoint plus the number of batches of the epoch
-- already trained (and their loss sum); resuming from it skips those batches of the same
-- shuffle, so the final weights are again those of an uninterrupted run.
local mg = require("moongrad")

local NAME = "fashion_mnist"
local USAGE = [[
usage: moongrad scripts/fashion_mnist.lua [options]

  --model mlp|cnn       mlp: 784-256-128-10 with ReLU (default);
                        cnn: conv 1->8 5x5, ReLU, max-pool 2, conv 8->16 5x5, ReLU,
                        max-pool 2, linear 256->10
  --epochs N            train until epoch N (default 5; with --resume, the total count)
  --optim NAME          any optimizer plugin: sgd (with momentum 0.9), adam, adamw, ...
                        (default: sgd for mlp, adam for cnn)
  --lr X                learning rate of epoch 1 (default: mlp sgd 0.02, adam 0.001;
                        cnn sgd 0.05, adam 0.004; adamw/rmsprop 0.001; adagrad 0.01)
  --lr-decay G          multiply the learning rate by G after every epoch: lr of epoch e
                        is lr * G^(e-1) (default: mlp sgd 0.6; cnn sgd 0.7, adam 0.5;
                        otherwise 1)
  --batch-size N        mini-batch size (default 64)
  --threads N           worker threads (default: the runner's, see moongrad -t)
  --seed N              random seed (default 42)
  --out DIR             metrics.csv, metrics.svg and checkpoints go here
                        (default runs/fashion_mnist)
  --resume FILE         continue from a checkpoint written by this script; Ctrl-C
                        writes DIR/interrupted.safetensors, which continues the
                        interrupted epoch from its next batch (exact, as from an
                        epoch checkpoint)
  --data DIR            directory of the Fashion-MNIST IDX files (default: $MOONGRAD_DATA,
                        then /usr/share/datasets/fashion-mnist)
  --limit N             train on the first N training samples only (quick tests)
  --test-limit N        evaluate on the first N test samples only (quick tests)
  --help                this text
]]

-- Ctrl-C reaches the script as this error (the runner calls mg_interrupt)
local function interrupted(e) return e == "interrupted" end

local function usage_error(msg)
  io.stderr:write(NAME, ": ", msg, "\n(run with --help for the list of options)\n")
  os.exit(2, true)
end

-- ---- options ------------------------------------------------------------------------

local function posint(name, v)
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < 1 or n >= 2^31 then
    usage_error(("--%s expects a positive integer, got '%s'"):format(name, tostring(v)))
  end
  return math.tointeger(n)
end
local function posnum(name, v)
  local n = tonumber(v)
  if not n or n ~= n or n <= 0 or n == math.huge then
    usage_error(("--%s expects a positive number, got '%s'"):format(name, tostring(v)))
  end
  return n
end
local function nonneg(name, v)
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < 0 or n >= 2^53 then
    usage_error(("--%s expects a non-negative integer, got '%s'"):format(name, tostring(v)))
  end
  return math.tointeger(n)
end
local function str(name, v)
  if v == nil or v == "" then usage_error(("--%s expects a value"):format(name)) end
  return v
end
local function model_name(name, v)
  if v ~= "mlp" and v ~= "cnn" then
    usage_error(("--%s expects 'mlp' or 'cnn', got '%s'"):format(name, tostring(v)))
  end
  return v
end

local PARSE = {
  model = model_name, epochs = posint, lr = posnum, ["lr-decay"] = posnum, optim = str, ["batch-size"] = posint,
  threads = posint, seed = nonneg, out = str, resume = str, data = str, limit = posint,
  ["test-limit"] = posint,
}

local function parse_args(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local k, v = a:match("^%-%-([%w-]+)=(.*)$")
    if not k then
      k = a:match("^%-%-([%w-]+)$")
      if k == "help" then io.stdout:write(USAGE); os.exit(0, true) end
      if not k or not PARSE[k] then usage_error(("unknown option '%s'"):format(a)) end
      v = args[i + 1]
      if v == nil then usage_error(("option --%s expects a value"):format(k)) end
      i = i + 1
    elseif not PARSE[k] then
      usage_error(("unknown option '%s'"):format(a))
    end
    if o[k] ~= nil then usage_error(("option --%s given twice"):format(k)) end
    o[k] = PARSE[k](k, v)
    i = i + 1
  end
  return o
end

local given = parse_args(arg or {})

-- ---- settings (from the command line, else the checkpoint, else the defaults) -----------

local resume_ckpt
if given.resume then
  local ok, c = pcall(mg.load, given.resume)
  if not ok and interrupted(c) then error(c, 0) end
  if not ok then usage_error(("--resume: %s"):format(tostring(c))) end
  if type(c) ~= "table" or c.format ~= "moongrad-fashion-mnist-1" or type(c.model) ~= "table"
     or type(c.optim) ~= "table" or math.type(c.epoch) ~= "integer"
     or (c.batches ~= nil and (math.type(c.batches) ~= "integer" or c.batches < 0 or type(c.loss_sum) ~= "number"
                               or math.type(c.seen) ~= "integer" or type(c.time) ~= "number")) then
    usage_error(("--resume: %s is not a checkpoint written by scripts/fashion_mnist.lua"):format(given.resume))
  end
  resume_ckpt = c
end

-- settings that shape the trajectory; a resumed run takes them from the checkpoint
local SHAPING = { "model", "optim", "batch-size", "seed", "limit", "lr-decay" }
local DEFAULTS = { model = "mlp", ["batch-size"] = 64, seed = 42, limit = 0,
                   epochs = 5, out = "runs/fashion_mnist" }

local cfg = {}
for k, v in pairs(DEFAULTS) do cfg[k] = v end
if resume_ckpt then
  for _, k in ipairs(SHAPING) do
    local saved = resume_ckpt.settings and resume_ckpt.settings[k]
    if saved == nil then usage_error(("--resume: the checkpoint lacks setting '%s'"):format(k)) end
    if given[k] ~= nil and given[k] ~= saved then
      usage_error(("--%s %s conflicts with the checkpoint's %s (resuming must keep it)"):format(
        k, tostring(given[k]), tostring(saved)))
    end
    cfg[k] = saved
  end
  cfg.lr = resume_ckpt.settings.lr
end
for k, v in pairs(given) do cfg[k] = v end
if cfg.limit == 0 then cfg.limit = nil end

-- tuned so that 5 epochs reach >= 88% (mlp) and >= 89% (cnn) test accuracy
local DEFAULT_OPTIM = { mlp = "sgd", cnn = "adam" }
local DEFAULT_LR = { sgd = { mlp = 0.02, cnn = 0.05 }, adam = { mlp = 1e-3, cnn = 0.004 }, adamw = 1e-3,
                     rmsprop = 1e-3, adagrad = 1e-2 }
local DEFAULT_DECAY = { sgd = { mlp = 0.6, cnn = 0.7 }, adam = { cnn = 0.5 } }
cfg.optim = cfg.optim or DEFAULT_OPTIM[cfg.model]
do
  local found = false
  local names = {}
  for _, p in ipairs(mg.plugins()) do
    if p.kind == "optim" then
      names[#names + 1] = p.name
      if p.name == cfg.optim then found = true end
    end
  end
  if not found then
    usage_error(("--optim: no optimizer named '%s' (available: %s)"):format(cfg.optim, table.concat(names, ", ")))
  end
  if not cfg.lr then
    local d = DEFAULT_LR[cfg.optim]
    if type(d) == "table" then d = d[cfg.model] end
    cfg.lr = d or 1e-3
  end
  if not cfg["lr-decay"] then
    local d = DEFAULT_DECAY[cfg.optim]
    cfg["lr-decay"] = d and d[cfg.model] or 1
  end
end

if cfg.threads then mg.set_num_threads(cfg.threads) end

-- ---- data ---------------------------------------------------------------------------------

local t_start = mg.clock()
local ok, xtrain, ytrain = pcall(mg.data.fashion_mnist, "train", cfg.data)
if not ok and interrupted(xtrain) then error(xtrain, 0) end
if not ok then io.stderr:write(NAME, ": ", tostring(xtrain), "\n"); os.exit(1, true) end
local xtest, ytest = mg.data.fashion_mnist("test", cfg.data)
if cfg.limit and cfg.limit < xtrain:size(1) then
  xtrain, ytrain = xtrain:narrow(1, 1, cfg.limit), ytrain:narrow(1, 1, cfg.limit)
end
if cfg["test-limit"] and cfg["test-limit"] < xtest:size(1) then
  xtest, ytest = xtest:narrow(1, 1, cfg["test-limit"]), ytest:narrow(1, 1, cfg["test-limit"])
end
local ntrain, ntest = xtrain:size(1), xtest:size(1)
-- standardise with the training set's pixel mean and standard deviation (0.2860, 0.3530)
local MEAN, STD = 0.2860, 0.3530
xtrain:sub_(MEAN):div_(STD)
xtest:sub_(MEAN):div_(STD)

-- ---- model, loss, optimizer ------------------------------------------------------------------

local nn = mg.nn
local function build(kind)
  if kind == "mlp" then
    return nn.Sequential {
      nn.Linear(784, 256), nn.ReLU(),
      nn.Linear(256, 128), nn.ReLU(),
      nn.Linear(128, 10),
    }
  end
  return nn.Sequential {
    nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),     -- 8 x 12 x 12
    nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),    -- 16 x 4 x 4
    nn.Flatten(), nn.Linear(256, 10),
  }
end

mg.manual_seed(cfg.seed)
local model = build(cfg.model)
local as_input = cfg.model == "cnn" and function(x) return x:view(x:size(1), 1, 28, 28) end
                 or function(x) return x end
local crit = mg.loss("cross_entropy")
local hyper = { lr = cfg.lr }
if cfg.optim == "sgd" then hyper.momentum = 0.9 end
local opt = mg.optim(cfg.optim, model:parameters(), hyper)

-- Where training stands: `batches` batches of epoch `epoch` applied, with their summed loss,
-- their sample count and the training time they took. It only changes by assigning a whole
-- new table, so whenever an interrupt strikes it matches the model and optimizer state.
local pos = { epoch = 1, batches = 0, loss_sum = 0, seen = 0, time = 0 }
if resume_ckpt then
  model:load_state_dict(resume_ckpt.model)
  opt:load_state_dict(resume_ckpt.optim)
  local c = resume_ckpt
  if c.batches then  -- interrupted inside epoch c.epoch
    pos = { epoch = c.epoch, batches = c.batches, loss_sum = c.loss_sum, seen = c.seen, time = c.time }
  else
    pos.epoch = c.epoch + 1
  end
end
local first_epoch = pos.epoch

-- ---- output directory, metrics --------------------------------------------------------------

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
do
  local okdir = os.execute("mkdir -p " .. shell_quote(cfg.out))
  if not okdir then io.stderr:write(NAME, ": cannot create directory ", cfg.out, "\n"); os.exit(1, true) end
end
local csv_path, svg_path = cfg.out .. "/metrics.csv", cfg.out .. "/metrics.svg"
local COLUMNS = { "epoch", "train_loss", "test_loss", "test_acc", "time" }

-- a fresh run starts a fresh CSV; a resumed one keeps the rows up to the checkpoint's epoch
do
  local keep = {}
  local f = io.open(csv_path, "rb")
  if f then
    local header = f:read("l")
    if resume_ckpt and header == table.concat(COLUMNS, ",") then
      for line in f:lines() do
        local e = tonumber(line:match("^([^,]*),"))
        if e and e < first_epoch then keep[#keep + 1] = line end
      end
    end
    f:close()
    os.remove(csv_path)
  end
  if #keep > 0 then
    local w = assert(io.open(csv_path, "wb"))
    w:write(table.concat(COLUMNS, ","), "\n", table.concat(keep, "\n"), "\n")
    w:close()
  end
end
local logger = mg.util.Logger(csv_path, COLUMNS)

-- ---- training ---------------------------------------------------------------------------------

local function nparams(m)
  local n = 0
  for _, p in ipairs(m:parameters()) do n = n + p:numel() end
  return n
end

print(("%s: %s (%d parameters), %s lr=%g%s%s, batch %d, epochs %d..%d, seed %d, %d thread%s"):format(
  NAME, cfg.model, nparams(model), cfg.optim, cfg.lr, cfg.optim == "sgd" and " momentum=0.9" or "",
  cfg["lr-decay"] ~= 1 and (" (x%g per epoch)"):format(cfg["lr-decay"]) or "",
  cfg["batch-size"], first_epoch, cfg.epochs, cfg.seed, mg.get_num_threads(),
  mg.get_num_threads() == 1 and "" or "s"))
print(("data: %d training, %d test images%s"):format(ntrain, ntest,
  resume_ckpt and (", resuming from " .. given.resume .. " (epoch " .. resume_ckpt.epoch
                   .. (resume_ckpt.batches and (", " .. resume_ckpt.batches .. " batches done") or "") .. ")") or ""))
if first_epoch > cfg.epochs then
  print(("nothing to do: the checkpoint is at epoch %d and --epochs is %d"):format(first_epoch - 1, cfg.epochs))
  return
end

local loader = mg.data.DataLoader({ xtrain, ytrain }, { batch_size = cfg["batch-size"], shuffle = true })
if pos.batches > #loader then
  usage_error(("--resume: the checkpoint has %d batches done of an epoch of %d"):format(pos.batches, #loader))
end

-- mean loss and accuracy (%) over a data set, without recording a graph
local function evaluate(x, y)
  model:eval()
  local loss_sum, correct, n = 0, 0, x:size(1)
  mg.no_grad(function()
    local bs = 1000
    for s = 1, n, bs do
      local len = math.min(bs, n - s + 1)
      local xb, yb = x:narrow(1, s, len), y:narrow(1, s, len)
      local out = model(as_input(xb))
      loss_sum = loss_sum + crit(out, yb):item() * len
      correct = correct + out:argmax(2):eq(yb):sum():item()
    end
  end)
  model:train()
  return loss_sum / n, 100 * correct / n
end

-- Save the run after `epoch` epochs to DIR/epoch-N.safetensors and DIR/last.safetensors,
-- or, given `part` (a pos inside epoch `epoch`), to DIR/interrupted.safetensors. Returns the path.
local function checkpoint(epoch, part)
  local settings = { lr = cfg.lr }
  for _, k in ipairs(SHAPING) do settings[k] = cfg[k] end
  settings.limit = cfg.limit or 0
  local c = { format = "moongrad-fashion-mnist-1", epoch = epoch, settings = settings,
              model = model:state_dict(), optim = opt:state_dict() }
  if part then
    c.batches, c.loss_sum, c.seen, c.time = part.batches, part.loss_sum, part.seen, part.time
    local path = cfg.out .. "/interrupted.safetensors"
    mg.save(path, c)
    return path
  end
  local path = ("%s/epoch-%d.safetensors"):format(cfg.out, epoch)
  mg.save(path, c)
  mg.save(cfg.out .. "/last.safetensors", c)
  return path
end

-- tests only: MOONGRAD_TEST_SIGINT=N sends the runner SIGINT (as Ctrl-C does) after the
-- backward pass of the N-th batch this process trains, before its step; "N+" after the step
local sigint_n, sigint_after = (os.getenv("MOONGRAD_TEST_SIGINT") or ""):match("^(%d+)(%+?)$")
sigint_n, sigint_after = tonumber(sigint_n), sigint_after == "+"
local trained = 0
local function test_sigint(after)
  if trained == sigint_n and after == sigint_after then io.popen("kill -INT $PPID"):close() end
end

-- One optimisation step on batch k of epoch e (t0: the epoch's start on mg.clock). pos moves
-- on first, and the step is the tail call: moongrad raises an interrupt only at a Lua
-- instruction, and none of this function runs after the step, so an interrupt raised in here
-- means the step did not happen (the caller then puts pos back).
local function train_batch(e, k, xb, yb, t0)
  opt:zero_grad()
  local loss = crit(model(as_input(xb)), yb)
  loss:backward()
  trained = trained + 1
  test_sigint(false)
  local b = xb:size(1)
  pos = { epoch = e, batches = k, loss_sum = pos.loss_sum + loss:item() * b, seen = pos.seen + b,
          time = mg.clock() - t0 }
  return opt:step()
end

-- xpcall handler: an interrupt passes as it is, any other error gets its traceback (once)
local function trace(e)
  if interrupted(e) or (type(e) == "string" and e:find("\nstack traceback:", 1, true)) then return e end
  return debug.traceback(tostring(e), 2)
end

local train_time = 0
-- train epoch `epoch` from batch pos.batches + 1 (the same shuffle whatever the start:
-- it depends on (seed, epoch) only), evaluate, log, checkpoint
local function run_epoch(epoch)
  mg.manual_seed(cfg.seed + epoch)           -- the shuffle depends on (seed, epoch) only
  opt.lr = cfg.lr * cfg["lr-decay"] ^ (epoch - 1)
  model:train()
  local skip, t0 = pos.batches, mg.clock() - pos.time
  local bar <close> = mg.util.progress(#loader, { label = ("epoch %d/%d"):format(epoch, cfg.epochs) })
  if skip > 0 then bar:advance(skip, { loss = pos.loss_sum / pos.seen }) end
  local k = 0
  for xb, yb in loader:iter() do
    k = k + 1
    if k > skip then
      local before = pos
      local ok, err = xpcall(train_batch, trace, epoch, k, xb, yb, t0)
      if not ok then pos = before; error(err, 0) end
      test_sigint(true)
      bar:advance(1, { loss = pos.loss_sum / pos.seen })
    end
  end
  bar:done()
  local dt = mg.clock() - t0
  train_time = train_time + dt
  local train_loss = pos.loss_sum / pos.seen
  local test_loss, acc = evaluate(xtest, ytest)
  print(("epoch %d/%d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  (%.1f s, %.0f img/s)"):format(
    epoch, cfg.epochs, train_loss, test_loss, acc, dt, pos.seen / dt))
  logger:log { epoch = epoch, train_loss = train_loss, test_loss = test_loss, test_acc = acc, time = dt }
  mg.util.plot(csv_path, svg_path, { x = "epoch", y = { "train_loss", "test_loss", "test_acc" } })
  checkpoint(epoch)
  pos = { epoch = epoch + 1, batches = 0, loss_sum = 0, seen = 0, time = 0 }
end

-- a shell word for the resume hint
local function word(s) return s:match("^[%w%./_%-+=:,@]+$") and s or shell_quote(s) end

local ok, err = xpcall(function()
  for epoch = first_epoch, cfg.epochs do run_epoch(epoch) end
end, trace)
if not ok then
  if not interrupted(err) then error(err, 0) end
  local path = checkpoint(pos.epoch, pos)
  logger:close()
  local again = { "--resume", word(path), "--epochs", cfg.epochs, "--out", word(cfg.out) }
  for _, k in ipairs({ "data", "test-limit", "threads" }) do
    if given[k] then again[#again + 1] = "--" .. k; again[#again + 1] = word(tostring(given[k])) end
  end
  print(("interrupted in epoch %d after %d of %d batches; to continue: moongrad %s %s"):format(
    pos.epoch, pos.batches, #loader, word(arg and arg[0] or "scripts/fashion_mnist.lua"), table.concat(again, " ")))
  os.exit(130, true)
end
logger:close()
print(("done: %.1f s training, %.1f s total; metrics in %s and %s, checkpoint %s/last.safetensors"):format(
  train_time, mg.clock() - t_start, csv_path, svg_path, cfg.out))
