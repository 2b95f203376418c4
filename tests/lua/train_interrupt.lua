-- scripts/fashion_mnist.lua under Ctrl-C: the runner gets SIGINT partway through an epoch
-- (deterministically: MOONGRAD_TEST_SIGINT makes the script send it to the runner at a chosen
-- batch, before or after its step), exits 130 after writing DIR/interrupted.safetensors, and
-- resuming from that file — interrupted again, then to the end — gives exactly the weights,
-- optimizer state and metrics of an uninterrupted run (as train_resume.lua checks for epoch
-- checkpoints).
local mg = require("moongrad")
local T = mg.test()

local build = os.getenv("MG_BUILD") or "build"
local runner = build .. "/moongrad"
local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. "-train-interrupt"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- run the script (sigint: the MOONGRAD_TEST_SIGINT value or nil); returns exit code, stdout, stderr
local function run(args, sigint)
  local errf = tmp .. "/stderr.txt"
  local env = sigint and ("MOONGRAD_TEST_SIGINT=" .. sigint .. " ") or ""
  local p = assert(io.popen(env .. q(runner) .. " scripts/fashion_mnist.lua " .. args .. " 2>" .. q(errf), "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errf, "rb")
  local err = f and f:read("a") or ""
  if f then f:close() end
  return code, out, err
end
local function exists(path) local f = io.open(path, "rb"); if f then f:close() end return f ~= nil end

-- every tensor of a checkpoint's model and optimizer state, by dotted name
local function tensors(t, prefix, out)
  for k, v in pairs(t) do
    local name = prefix == "" and tostring(k) or prefix .. "." .. tostring(k)
    if type(v) == "table" then tensors(v, name, out) elseif type(v) == "userdata" then out[name] = v end
  end
  return out
end
-- the two checkpoints hold the same tensors, bit for bit
local function identical(pa, pb, min, what)
  local ok1, a = pcall(mg.load, pa)
  local ok2, b = pcall(mg.load, pb)
  if not (ok1 and ok2) then return T:ok(false, what .. ": checkpoints load: " .. tostring(ok1 and b or a)) end
  local ta = tensors({ model = a.model, optim = a.optim }, "", {})
  local tb = tensors({ model = b.model, optim = b.optim }, "", {})
  local n, same = 0, true
  for k, v in pairs(ta) do
    n = n + 1
    if not tb[k] or (v - tb[k]):abs():max():item() ~= 0 then same = false; T:diag("  differs: " .. k) end
  end
  T:ok(n >= min and same, ("%s: weights and optimizer state (%d tensors) identical"):format(what, n))
end

assert(os.execute("mkdir -p " .. q(tmp)))
-- 512 samples, batches of 64: 8 batches per epoch
local COMMON = "--limit 512 --test-limit 500 --batch-size 64 --seed 5 --threads 1 --epochs 3"
local A, B = tmp .. "/straight", tmp .. "/interrupted"

local codeA, outA, errA = run(COMMON .. " --out " .. q(A))
T:ok(codeA == 0, "3 epochs straight")
if codeA ~= 0 then T:diag(outA .. errA) end

-- SIGINT in batch 11 (epoch 2, batch 3) after its backward pass: 2 batches of epoch 2 done
local code1, out1, err1 = run(COMMON .. " --out " .. q(B), "11")
T:eq(code1, 130, "SIGINT mid-epoch: exit status 130")
if code1 ~= 130 then T:diag(out1 .. err1) end
local ipath = B .. "/interrupted.safetensors"
T:ok(out1:find("interrupted in epoch 2 after 2 of 8 batches", 1, true) ~= nil, "says where it stopped")
T:ok(out1:find("--resume " .. ipath, 1, true) ~= nil and out1:find("--epochs 3", 1, true) ~= nil,
     "and how to resume")
T:ok(exists(B .. "/epoch-1.safetensors") and not exists(B .. "/epoch-2.safetensors"), "epoch 1 finished, epoch 2 not")
local okc, c = pcall(mg.load, ipath)
T:ok(okc and c.epoch == 2 and c.batches == 2 and c.seen == 128 and type(c.loss_sum) == "number"
     and c.settings and c.settings.seed == 5 and c.settings.limit == 512 and type(c.model) == "table"
     and type(c.optim) == "table", "interrupted.safetensors: epoch 2, 2 batches, their loss, settings, model, optimizer")

-- resume, interrupted again right after the step of its 3rd batch (epoch 2, batches 3..5)
local code2, out2, err2 = run("--resume " .. q(ipath) .. " --epochs 3 --test-limit 500 --threads 1 --out " .. q(B), "3+")
T:eq(code2, 130, "the resumed run, interrupted again: exit 130")
if code2 ~= 130 then T:diag(out2 .. err2) end
T:ok(out2:find("2 batches done", 1, true) ~= nil and out2:find("interrupted in epoch 2 after 5 of 8 batches", 1, true) ~= nil,
     "it continued from batch 3 and stopped after batch 5")

local code3, out3, err3 = run("--resume " .. q(ipath) .. " --epochs 3 --test-limit 500 --threads 1 --out " .. q(B))
T:eq(code3, 0, "resumed to the end")
if code3 ~= 0 then T:diag(out3 .. err3) end
local function epoch_line(out, e) return out:match("(epoch " .. e .. "/3  train loss [%d.]+  test loss [%d.]+  test accuracy [%d.]+%%)") end
T:ok(epoch_line(outA, 2) ~= nil and epoch_line(outA, 2) == epoch_line(out3, 2) and epoch_line(outA, 3) == epoch_line(out3, 3),
     ("epochs 2 and 3 print the same metrics: '%s' vs '%s'"):format(tostring(epoch_line(outA, 2)), tostring(epoch_line(out3, 2))))
identical(A .. "/epoch-3.safetensors", B .. "/epoch-3.safetensors", 12, "mlp + sgd, interrupted twice")
local function read(path) local f = io.open(path, "rb"); if not f then return "" end local s = f:read("a"); f:close(); return s end
local function rows(csv) local t = {} for e, l in csv:gmatch("\n(%d+),([^,]*)") do t[#t + 1] = e .. ":" .. l end return table.concat(t, " ") end
T:eq(rows(read(B .. "/metrics.csv")), rows(read(A .. "/metrics.csv")), "metrics.csv: epochs 1..3 once each, same train losses")

-- the CNN with Adam (step counter and moments), interrupted in its first epoch
do
  local CNN = "--model cnn --limit 256 --test-limit 200 --seed 3 --threads 1 --epochs 2"
  local C, D = tmp .. "/cnn-straight", tmp .. "/cnn-interrupted"
  local k1 = run(CNN .. " --out " .. q(C))
  local k2 = run(CNN .. " --out " .. q(D), "2")
  local k3, o3, e3 = run("--resume " .. q(D .. "/interrupted.safetensors") .. " --epochs 2 --test-limit 200 --out " .. q(D))
  T:ok(k1 == 0 and k2 == 130 and k3 == 0, ("cnn: straight, interrupted in epoch 1 (exit %s), resumed"):format(tostring(k2)))
  if k3 ~= 0 then T:diag(o3 .. e3) end
  identical(C .. "/epoch-2.safetensors", D .. "/epoch-2.safetensors", 18, "cnn + adam")
end

local _, help = run("--help")
T:ok(help:find("interrupted.safetensors", 1, true) ~= nil, "--help tells about interrupted.safetensors")

os.execute("rm -rf " .. q(tmp))
T:done()
