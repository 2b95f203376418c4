-- Benchmark driver: every workload in moongrad and in PyTorch (bench/*.lua next to their
-- bench/*.py twins), alternating, BENCH_REPS repetitions each (default 3; PyTorch's 2-thread
-- epochs, which take minutes here, and the Linear runs, best-of-3 inside, run once). Prints one table
-- (median time, ratio moongrad/PyTorch, peak RSS of each process) and writes it to
-- bench/results.md.   lua5.4 bench/run.lua [BUILD_DIR]   (or `make bench`)
-- Environment: BENCH_REPS, BENCH_PYTHON (an interpreter with torch), BENCH_ONLY (a Lua
-- pattern selecting workloads by id, e.g. "mlp"; such a partial run leaves bench/results.md
-- alone), MOONGRAD_DATA.
local build = arg[1] or os.getenv("MG_BUILD") or "build"
local REPS = tonumber(os.getenv("BENCH_REPS")) or 3
local ONLY = os.getenv("BENCH_ONLY")
local OUT = "bench/results.md"
local fmt = string.format

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function exists(p) local f = io.open(p, "rb"); if f then f:close() return true end return false end
local function sh(cmd) local p = io.popen(cmd); local s = p:read("a"); p:close(); return s end
local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local runner = build .. "/moongrad"
if not exists(runner) then
  io.stderr:write("bench: ", runner, " not found; build first (make BUILD=", build, ")\n")
  os.exit(1)
end

-- an interpreter that has torch: $BENCH_PYTHON, Debian's /usr/bin/python3, then python3 on PATH
local python, torch_version
for _, py in ipairs({ os.getenv("BENCH_PYTHON") or false, "/usr/bin/python3", "python3" }) do
  if py then
    local v = trim(sh(q(py) .. " -c 'import torch, numpy; print(torch.__version__)' 2>/dev/null"))
    if v ~= "" then python, torch_version = py, v; break end
  end
end
if not python then
  io.stderr:write("bench: PyTorch not found (install python3-torch python3-numpy); running moongrad only\n")
end

local timecmd = exists("/usr/bin/time") and "/usr/bin/time" or nil
if not timecmd then io.stderr:write("bench: /usr/bin/time not found; peak RSS not measured\n") end

-- ---- workloads -------------------------------------------------------------------------
-- A job is one pair of commands; each prints metrics that rows pick out by key.
--   parse(out) -> {key = number}
local function kv(out)
  local r = {}
  for k, v in out:gmatch("([%w_]+)%s+([%d.]+)") do r[k] = r[k] or tonumber(v) end
  return r
end
local function linear_out(out)  -- bench/linear.lua's table, and bench/linear.py's lines
  local r = {}
  r.fwd, r.sgemm_fwd = out:match("\nforward%s+([%d.]+) GF%s*([%d.]*)")
  r.step, r.sgemm_step = out:match("forward %+ backward%s+([%d.]+) GF%s*([%d.]*)")
  for k, v in pairs(r) do r[k] = tonumber(v) end
  return r
end

local M = q(runner)
-- PyTorch's OpenBLAS ignores torch.set_num_threads (its own pool stays at the core count), so
-- each twin also gets OPENBLAS_NUM_THREADS for its workload's thread count
local P1 = python and "env OPENBLAS_NUM_THREADS=1 " .. q(python) or nil
local P2 = python and "env OPENBLAS_NUM_THREADS=2 " .. q(python) or nil
local jobs = {
  { id = "tiny", mg = M .. " bench/tiny_op.lua 200000", py = P1 and P1 .. " bench/tiny_op.py 200000", parse = kv },
  { id = "linreg", mg = M .. " bench/linreg_step.lua 3000", py = P1 and P1 .. " bench/linreg_step.py 3000", parse = kv },
  { id = "mlp1", mg = M .. " bench/fmnist.lua mlp 1", py = P1 and P1 .. " bench/fmnist.py --model mlp --threads 1", parse = kv },
  { id = "mlp2", mg = M .. " bench/fmnist.lua mlp 2", py = P2 and P2 .. " bench/fmnist.py --model mlp --threads 2", parse = kv,
    py_reps = 1 },
  { id = "cnn1", mg = M .. " bench/fmnist.lua cnn 1", py = P1 and P1 .. " bench/fmnist.py --model cnn --threads 1", parse = kv },
  { id = "cnn2", mg = M .. " bench/fmnist.lua cnn 2", py = P2 and P2 .. " bench/fmnist.py --model cnn --threads 2", parse = kv,
    py_reps = 1 },
}
local have_linear = exists("bench/linear.lua")
if have_linear then
  jobs[#jobs + 1] = { id = "linear1", mg = M .. " -t 1 bench/linear.lua 3", py = P1 and P1 .. " bench/linear.py 3 1",
                      parse = linear_out, reps = 1 }
  jobs[#jobs + 1] = { id = "linear2", mg = M .. " -t 2 bench/linear.lua 3", py = P2 and P2 .. " bench/linear.py 3 2",
                      parse = linear_out, reps = 1 }
end

-- rows: label, job, key, unit, kind ("time": lower is better, "rate": higher is better), target,
-- and how the target is checked: {"at_most", v} (moongrad's own figure), {"ratio", v}
-- (moongrad/PyTorch), {"faster_than", job} (moongrad's figure for that job, same key),
-- {"of_sgemm", v} (the layer's rate over the raw sgemm rate on the same row's job)
local rows = {
  { "tiny op `a + b`, 1-element tensors", "tiny", "tiny_op_add_us", "µs", "time", "≤ 0.3 µs", { "at_most", 0.3 } },
  { "tiny chain `(x*2+1):tanh()*x` + backward", "tiny", "tiny_chain_backward_us", "µs", "time", "" },
  { "linear-regression step (4×2, MSE, SGD)", "linreg", "linreg_step_us", "µs", "time", "ratio ≤ 0.07", { "ratio", 0.07 } },
  { "Fashion-MNIST MLP epoch, 1 thread", "mlp1", "epoch_s", "s", "time", "ratio ≤ 0.9", { "ratio", 0.9 } },
  { "Fashion-MNIST MLP epoch, 2 threads", "mlp2", "epoch_s", "s", "time", "< own 1-thread", { "faster_than", "mlp1" } },
  { "Fashion-MNIST CNN epoch, 1 thread", "cnn1", "epoch_s", "s", "time", "ratio ≤ 0.6", { "ratio", 0.6 } },
  { "Fashion-MNIST CNN epoch, 2 threads", "cnn2", "epoch_s", "s", "time", "< own 1-thread", { "faster_than", "cnn1" } },
}
if have_linear then
  rows[#rows + 1] = { "Linear 256×4096→4096 fwd+bwd, 1 thread", "linear1", "step", "GFLOP/s", "rate", "≥ 90% of sgemm",
                      { "of_sgemm", 0.9 } }
  rows[#rows + 1] = { "  raw sgemm, same products, 1 thread", "linear1", "sgemm_step", "GFLOP/s", "rate", "" }
  rows[#rows + 1] = { "Linear 256×4096→4096 fwd+bwd, 2 threads", "linear2", "step", "GFLOP/s", "rate", "≥ 90% of sgemm",
                      { "of_sgemm", 0.9 } }
  rows[#rows + 1] = { "  raw sgemm, same products, 2 threads", "linear2", "sgemm_step", "GFLOP/s", "rate", "" }
end
-- training workloads whose peak memory must not pass PyTorch's
local RSS_TARGET = { mlp1 = true, mlp2 = true, cnn1 = true, cnn2 = true, linreg = true }

-- ---- running -------------------------------------------------------------------------------

local tmp = os.tmpname()
-- run one command; returns its parsed metrics and peak RSS in KiB (or nil, message)
local function run(job, cmd)
  local full = cmd .. " 2>" .. q(tmp .. ".err")
  if timecmd then full = timecmd .. " -f %M -o " .. q(tmp .. ".rss") .. " " .. full end
  local p = io.popen(full)
  local out = p:read("a")
  local ok = p:close()
  if not ok then
    local f = io.open(tmp .. ".err"); local err = f and f:read("a") or ""; if f then f:close() end
    return nil, fmt("%s failed:\n%s%s", cmd, out, err)
  end
  local rss
  if timecmd then
    local f = io.open(tmp .. ".rss")
    if f then rss = tonumber((f:read("a") or ""):match("(%d+)%s*$")); f:close() end
  end
  return job.parse(out), rss
end

local function median(t)
  if #t == 0 then return nil end
  local s = { table.unpack(t) }
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local load0 = trim(sh("cut -d' ' -f1-3 /proc/loadavg 2>/dev/null"))
local t_start = os.time()
local results = {}   -- results[job.id][impl] = { metrics = {key = {values}}, rss = {values} }
local failures = {}
for _, job in ipairs(jobs) do
  if not ONLY or job.id:match(ONLY) then
    local res = { mg = { m = {}, rss = {} }, py = { m = {}, rss = {} } }
    results[job.id] = res
    local reps = math.min(REPS, job.reps or REPS)
    for rep = 1, reps do
      -- alternate which goes first, so drift on a busy machine hits both alike
      local order = rep % 2 == 1 and { "mg", "py" } or { "py", "mg" }
      for _, impl in ipairs(order) do
        local cmd = job[impl]
        local n = impl == "py" and math.min(reps, job.py_reps or reps) or reps
        if cmd and rep <= n then
          io.stderr:write(fmt("bench: %-8s %-2s rep %d/%d ...", job.id, impl, rep, n))
          local t0 = os.time()
          local m, rss = run(job, cmd)
          if not m then
            io.stderr:write(" FAILED\n", rss, "\n")
            failures[#failures + 1] = fmt("%s (%s): %s", job.id, impl, rss)
            job[impl] = nil       -- do not retry a broken command
          else
            for k, v in pairs(m) do
              res[impl].m[k] = res[impl].m[k] or {}
              table.insert(res[impl].m[k], v)
            end
            if rss then table.insert(res[impl].rss, rss) end
            io.stderr:write(fmt(" %ds\n", os.time() - t0))
          end
        end
      end
    end
  end
end
os.remove(tmp); os.remove(tmp .. ".err"); os.remove(tmp .. ".rss")

-- ---- the table -------------------------------------------------------------------------------

local function num(v, unit)
  if v == nil then return "—" end
  if unit == "µs" then return fmt("%.3g µs", v) end
  if unit == "s" then return fmt("%.2f s", v) end
  return fmt("%.1f %s", v, unit)
end
local function mib(kib) return kib and fmt("%.0f MiB", kib / 1024) or "—" end

local cpu = trim(sh("grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2"))
local ncpu = trim(sh("nproc 2>/dev/null"))
local load1 = trim(sh("cut -d' ' -f1-3 /proc/loadavg 2>/dev/null"))
local lines = {}
local function add(s) lines[#lines + 1] = s end
add("# moongrad benchmarks")
add("")
add(fmt("%s, %s CPU(s) (%s); %s; median of %d runs, moongrad and PyTorch alternating " ..
        "(PyTorch 2-thread epochs and the Linear rows: 1 run).",
        os.date("!%Y-%m-%d %H:%M UTC"), ncpu, cpu ~= "" and cpu or "unknown CPU",
        python and ("PyTorch " .. torch_version .. " (" .. python .. ")") or
          "**PyTorch not installed: moongrad only** (`sh tools/deps.sh bench`)", REPS))
add(fmt("Load average before/after: %s / %s (other processes disturb the timings).", load0, load1))
add("Ratio = moongrad time / PyTorch time (lower is better; for GFLOP/s rows, PyTorch rate / moongrad rate).")
add("Peak RSS is the whole process (interpreter, libraries, data set), from /usr/bin/time -f %M.")
add("")
add("| workload | moongrad | PyTorch | ratio | target | met | moongrad peak RSS | PyTorch peak RSS |")
add("|---|---:|---:|---:|---|---|---:|---:|")
local function med(jid, impl, key)
  local res = results[jid]
  return res and res[impl].m[key] and median(res[impl].m[key])
end
for _, r in ipairs(rows) do
  local label, jid, key, unit, kind, target, check = table.unpack(r)
  local res = results[jid]
  if res then
    local a, b = med(jid, "mg", key), med(jid, "py", key)
    if key == "sgemm_step" then b = nil end
    local ratio = "—"
    if a and b and a > 0 and b > 0 then ratio = fmt("%.2f", kind == "time" and a / b or b / a) end
    local met = ""
    if check and a then
      local how, v = check[1], check[2]
      if how == "at_most" then met = a <= v and "yes" or "no"
      elseif how == "ratio" and b then met = a / b <= v and "yes" or "no"
      elseif how == "faster_than" and med(v, "mg", key) then
        local own = med(v, "mg", key)
        met = fmt("%s (1 thread: %s)", a < own and "yes" or "no", num(own, unit))
      elseif how == "of_sgemm" and med(jid, "mg", "sgemm_step") then
        local f = a / med(jid, "mg", "sgemm_step")
        met = fmt("%s (%.0f%%)", f >= v and "yes" or "no", 100 * f)
      end
    end
    local rss_a, rss_b = median(res.mg.rss), median(res.py.rss)
    if key == "sgemm_step" then rss_a, rss_b = nil, nil end
    local rss_met = RSS_TARGET[jid] and rss_a and rss_b and (rss_a <= rss_b and "" or " (above PyTorch)") or ""
    add(fmt("| %s | %s | %s | %s | %s | %s | %s%s | %s |", label, num(a, unit), num(b, unit), ratio, target, met,
            mib(rss_a), rss_met, mib(rss_b)))
  end
end
add("")
add("Peak memory target: each training workload's peak RSS at most PyTorch's (marked where it is not).")
add("")
add(fmt("Total time %d s. Reproduce: `make bench` (BENCH_REPS=%d).", os.time() - t_start, REPS))
if #failures > 0 then
  add("")
  add("Failed runs:")
  for _, f in ipairs(failures) do add("    " .. f:gsub("\n", "\n    ")) end
end
local text = table.concat(lines, "\n") .. "\n"
io.write(text)
if ONLY then  -- a partial run does not replace the kept table
  io.stderr:write("bench: BENCH_ONLY set; ", OUT, " left as it was\n")
else
  local f = io.open(OUT, "wb")
  if f then f:write(text); f:close(); io.stderr:write("bench: wrote ", OUT, "\n") end
end
if #failures > 0 then os.exit(1) end
