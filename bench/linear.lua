-- A large Linear layer, forward and forward + backward, in GFLOP/s next to raw
-- OpenBLAS sgemm for the same three products (y = x w^T, gx = g w, gw = g^T x).
-- The layer should reach >= 90% of raw sgemm: everything else it does (bias,
-- bias gradient, allocation, the autodiff engine) is small next to the gemms.
-- Layer and raw runs alternate and the best of each is kept, so a busy machine
-- disturbs both alike.
--   moongrad [-t THREADS] bench/linear.lua [reps [batch [in [out]]]]
local mg = require("moongrad")
local reps = tonumber(arg and arg[1]) or 5
local B = tonumber(arg and arg[2]) or 256
local IN = tonumber(arg and arg[3]) or 4096
local OUT = tonumber(arg and arg[4]) or 4096

local x = mg.randn(B, IN, {requires_grad = true})
local w = mg.empty(OUT, IN):uniform_(-1 / math.sqrt(IN), 1 / math.sqrt(IN)):requires_grad_()
local b = mg.zeros(OUT, {requires_grad = true})
local gy = mg.ones(B, OUT)
local flop = 2 * B * IN * OUT  -- one gemm

local function timed(fn)
  local t0 = mg.clock()
  fn()
  return mg.clock() - t0
end
local function forward() local y <close> = mg.no_grad(mg.linear, x, w, b) end
local function step()
  x.grad, w.grad, b.grad = nil, nil, nil
  local y <close> = mg.linear(x, w, b)
  y:backward(gy)
end
-- raw sgemm, row-major, the same shapes and transposes as the layer
local function raw_fwd() return mg._bench_sgemm(B, OUT, IN, 1, false, true) end
local function raw_bwd() return mg._bench_sgemm(B, IN, OUT, 1, false, false) + mg._bench_sgemm(OUT, IN, B, 1, true, false) end

step(); raw_fwd(); raw_bwd()  -- warm-up: allocator cache, BLAS buffers
local best = {fwd = math.huge, step = math.huge, rfwd = math.huge, rstep = math.huge}
for _ = 1, reps do
  best.fwd = math.min(best.fwd, timed(forward))
  local rf = raw_fwd()
  best.rfwd = math.min(best.rfwd, rf)
  best.step = math.min(best.step, timed(step))
  best.rstep = math.min(best.rstep, raw_fwd() + raw_bwd())
end

local function gf(t, n) return n * flop / t / 1e9 end
print(("linear %dx%d -> %d, float32, %d thread(s), best of %d"):format(B, IN, OUT, mg.get_num_threads(), reps))
print(("%-20s %10s %10s %8s"):format("", "layer", "sgemm", "ratio"))
print(("%-20s %7.1f GF %7.1f GF %7.1f%%"):format("forward", gf(best.fwd, 1), gf(best.rfwd, 1), 100 * best.rfwd / best.fwd))
print(("%-20s %7.1f GF %7.1f GF %7.1f%%"):format("forward + backward", gf(best.step, 3), gf(best.rstep, 3),
                                                  100 * best.rstep / best.step))
print(("%-20s %7.2f ms %7.2f ms"):format("time per step", 1e3 * best.step, 1e3 * best.rstep))
