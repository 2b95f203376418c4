-- scripts/fashion_mnist.lua on a small subset of the real data: resuming from the epoch-2
-- checkpoint for one more epoch gives exactly the weights of an uninterrupted 3-epoch run;
-- the metrics CSV, the plot and the option errors. The subset (the first 1024 training and
-- 1000 test images of the installed data set) is written once as IDX files, so the script
-- runs do not each decompress the whole data set.
local mg = require("moongrad")
local T = mg.test()

local build = os.getenv("MG_BUILD") or "build"
local runner = build .. "/moongrad"
local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. "-train-resume"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- run the script; returns success, exit code, stdout, stderr
local function run(args)
  local errf = tmp .. "/stderr.txt"
  local cmd = q(runner) .. " scripts/fashion_mnist.lua --data " .. q(tmp .. "/data") .. " " .. args .. " 2>" .. q(errf)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  local f = io.open(errf, "rb")
  local err = f and f:read("a") or ""
  if f then f:close() end
  return ok, code, out, err
end

local function read(path) local f = io.open(path, "rb"); if not f then return nil end local s = f:read("a"); f:close(); return s end

assert(os.execute("mkdir -p " .. q(tmp .. "/data")))

-- the subset as uncompressed IDX files (pixels back to bytes: x = b / 255 in float32 rounds back exactly)
local function write_idx(path, t, scale, offset)
  local f = assert(io.open(path, "wb"))
  local shape = t:shape()
  local dims = t:dim() == 2 and { shape[1], 28, 28 } or { shape[1] }
  f:write(string.pack(">I4", 0x800 + #dims))
  for _, d in ipairs(dims) do f:write(string.pack(">I4", d)) end
  local rows = t:totable()
  for _, r in ipairs(rows) do
    if type(r) == "table" then
      for i = 1, #r do r[i] = math.floor(r[i] * scale + offset + 0.5) end
      f:write(string.char(table.unpack(r)))
    else
      f:write(string.char(math.floor(r * scale + offset + 0.5)))
    end
  end
  f:close()
end
do
  local x, y = mg.data.fashion_mnist("train")
  local xt, yt = mg.data.fashion_mnist("test")
  x, y, xt, yt = x:narrow(1, 1, 1024), y:narrow(1, 1, 1024), xt:narrow(1, 1, 1000), yt:narrow(1, 1, 1000)
  write_idx(tmp .. "/data/train-images-idx3-ubyte", x, 255, 0)
  write_idx(tmp .. "/data/train-labels-idx1-ubyte", y, 1, -1)
  write_idx(tmp .. "/data/t10k-images-idx3-ubyte", xt, 255, 0)
  write_idx(tmp .. "/data/t10k-labels-idx1-ubyte", yt, 1, -1)
  local x2, y2 = mg.data.fashion_mnist("train", tmp .. "/data")
  local xt2, yt2 = mg.data.fashion_mnist("test", tmp .. "/data")
  T:ok(x2:size(1) == 1024 and (x2 - x):abs():max():item() == 0 and (y2 - y):abs():max():item() == 0
       and xt2:size(1) == 1000 and (xt2 - xt):abs():max():item() == 0 and (yt2 - yt):abs():max():item() == 0,
       "the IDX subset reads back as the first images and labels of the data set")
end
local COMMON = "--limit 512 --test-limit 500 --batch-size 64 --seed 5 --threads 1"
local A, B = tmp .. "/straight", tmp .. "/resumed"

local okA, codeA, outA, errA = run(COMMON .. " --epochs 3 --out " .. q(A))
T:ok(okA, "3 epochs straight run")
if not okA then T:diag(("exit %s\n%s\n%s"):format(tostring(codeA), outA, errA)) end
local okB, codeB, outB, errB = run(COMMON .. " --epochs 2 --out " .. q(B))
T:ok(okB, "2 epochs run")
if not okB then T:diag(("exit %s\n%s\n%s"):format(tostring(codeB), outB, errB)) end
local okC, codeC, outC, errC = run("--resume " .. q(B .. "/epoch-2.safetensors") .. " --epochs 3 --test-limit 500 --threads 1 --out " .. q(B))
T:ok(okC, "resume from epoch 2 for one more epoch")
if not okC then T:diag(("exit %s\n%s\n%s"):format(tostring(codeC), outC, errC)) end
T:ok(outC:find("resuming from", 1, true) ~= nil and outC:find("epoch 3/3", 1, true) ~= nil
     and not outC:find("epoch 1/3", 1, true), "the resumed run trains epoch 3 only")

-- the epoch lines print the same numbers
local function epoch_line(out, e) return out:match("(epoch " .. e .. "/3  train loss [%d.]+  test loss [%d.]+  test accuracy [%d.]+%%)") end
T:ok(epoch_line(outA, 3) ~= nil and epoch_line(outA, 3) == epoch_line(outC, 3),
     ("epoch 3 metrics agree: '%s' vs '%s'"):format(tostring(epoch_line(outA, 3)), tostring(epoch_line(outC, 3))))

local ca_ok, ca = pcall(mg.load, A .. "/epoch-3.safetensors")
local cb_ok, cb = pcall(mg.load, B .. "/epoch-3.safetensors")
T:ok(ca_ok and cb_ok, "both epoch-3 checkpoints load")
if ca_ok and cb_ok then
  T:eq(ca.epoch, 3, "checkpoint records its epoch")
  -- mg.load returns nested tables ("1.weight" -> model[1].weight): compare every tensor
  local function tensors(t, prefix, out)
    for k, v in pairs(t) do
      local name = prefix == "" and tostring(k) or prefix .. "." .. tostring(k)
      if type(v) == "table" then tensors(v, name, out)
      elseif type(v) == "userdata" then out[name] = v end
    end
    return out
  end
  local ma, mb = tensors(ca.model, "", {}), tensors(cb.model, "", {})
  local names, same, worst = 0, true, 0
  for k, ta in pairs(ma) do
    names = names + 1
    local tb = mb[k]
    if not tb then same = false
    else
      local d = (ta - tb):abs():max():item()
      worst = math.max(worst, d)
      if d ~= 0 then same = false end
    end
  end
  T:eq(names, 6, "MLP state_dict: 3 weights and 3 biases")
  local m2 = tensors(mg.load(A .. "/epoch-2.safetensors").model, "", {})
  local moved = 0
  for k, t in pairs(ma) do moved = math.max(moved, (t - m2[k]):abs():max():item()) end
  T:ok(moved > 1e-4, ("epoch 3 changed the weights (max |diff| %g), so the comparison means something"):format(moved))
  T:ok(same, ("resumed weights identical to the straight run (max |diff| = %g)"):format(worst))
  -- and the momentum buffers, so a further resume would also be exact
  local oa, ob = ca.optim, cb.optim
  local ta, tb = tensors(oa, "", {}), tensors(ob, "", {})
  local n, osame = 0, true
  for k, v in pairs(ta) do
    n = n + 1
    if not tb[k] or (v - tb[k]):abs():max():item() ~= 0 then osame = false end
  end
  T:ok(n >= 6 and osame, ("optimizer state (%d tensors) identical"):format(n))
  local la = mg.load(A .. "/last.safetensors")
  T:eq(la.epoch, 3, "last.safetensors is the latest epoch")
end

-- the CNN with Adam (its default): the step counter and both moment buffers resume exactly too
do
  local C, D = tmp .. "/cnn-straight", tmp .. "/cnn-resumed"
  local CNN = "--model cnn --limit 256 --test-limit 500 --seed 3 --threads 1"
  local ok1 = run(CNN .. " --epochs 2 --out " .. q(C))
  local ok2 = run(CNN .. " --epochs 1 --out " .. q(D))
  local ok3, code3, out3, err3 = run("--resume " .. q(D .. "/epoch-1.safetensors") .. " --epochs 2 --test-limit 500 --out " .. q(D))
  T:ok(ok1 and ok2 and ok3, "cnn: 2 epochs, and 1 epoch + resume 1")
  if not ok3 then T:diag(("exit %s\n%s\n%s"):format(tostring(code3), out3, err3)) end
  local okc, c = pcall(mg.load, C .. "/epoch-2.safetensors")
  local okd, d = pcall(mg.load, D .. "/epoch-2.safetensors")
  if okc and okd then
    local function tensors(t, prefix, out)
      for k, v in pairs(t) do
        local name = prefix == "" and tostring(k) or prefix .. "." .. tostring(k)
        if type(v) == "table" then tensors(v, name, out) elseif type(v) == "userdata" then out[name] = v end
      end
      return out
    end
    local a, b = tensors({ model = c.model, optim = c.optim }, "", {}), tensors({ model = d.model, optim = d.optim }, "", {})
    local n, same = 0, true
    for k, v in pairs(a) do
      n = n + 1
      if not b[k] or (v - b[k]):abs():max():item() ~= 0 then same = false; T:diag("  differs: " .. k) end
    end
    T:ok(n >= 18 and same, ("cnn + adam: weights and optimizer state (%d tensors) identical after resume"):format(n))
    T:eq(c.settings.optim, "adam", "the cnn default optimizer is adam")
  else
    T:ok(false, "cnn checkpoints load: " .. tostring(okc and d or c))
  end
end

-- metrics: one row per epoch in both directories, the resumed CSV without duplicates
local csvA, csvB = read(A .. "/metrics.csv") or "", read(B .. "/metrics.csv") or ""
T:ok(csvA:match("^epoch,train_loss,test_loss,test_acc,time\n") ~= nil, "metrics.csv header")
local function epochs(csv) local t = {} for e in csv:gmatch("\n(%d+),") do t[#t + 1] = tonumber(e) end return table.concat(t, ",") end
T:eq(epochs(csvA), "1,2,3", "straight run logged epochs 1,2,3")
T:eq(epochs(csvB), "1,2,3", "resumed run's CSV has epochs 1,2,3 once each")
local svg = read(A .. "/metrics.svg") or ""
T:ok(svg:find("<svg", 1, true) ~= nil and svg:find("train_loss", 1, true) ~= nil, "metrics.svg plots train_loss")

-- misuse: clear errors, exit status 2
local ok1, code1, _, err1 = run("--bogus 1")
T:ok(not ok1 and code1 == 2 and err1:find("unknown option '--bogus'", 1, true) ~= nil, "unknown option is an error")
local ok2, code2, _, err2 = run("--epochs zero")
T:ok(not ok2 and code2 == 2 and err2:find("--epochs expects a positive integer, got 'zero'", 1, true) ~= nil,
     "bad value is an error")
local ok3, code3, _, err3 = run("--model rnn")
T:ok(not ok3 and code3 == 2 and err3:find("'mlp' or 'cnn'", 1, true) ~= nil, "bad model name is an error")
local ok4, _, _, err4 = run("--resume " .. q(B .. "/epoch-2.safetensors") .. " --model cnn --out " .. q(B))
T:ok(not ok4 and err4:find("conflicts with the checkpoint", 1, true) ~= nil, "resume with a different model is refused")
local ok5, _, out5 = run("--help")
T:ok(ok5 and out5:find("--resume FILE", 1, true) ~= nil, "--help prints the options")

os.execute("rm -rf " .. q(tmp))
T:done()
