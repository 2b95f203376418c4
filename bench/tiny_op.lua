-- Per-op overhead from Lua: `a + b` on one-element tensors, and a small chain
-- with backward. Prints microseconds per op: the median over 10 equal chunks of
-- the loop, so that a burst of other work on the machine moves one chunk, not
-- the figure. Twin: bench/tiny_op.py (timed the same way).
local mg = require("moongrad")
local N = tonumber(arg and arg[1]) or 1000000
local CHUNKS = 10

local function median(t)
  table.sort(t)
  return (t[#t // 2] + t[#t // 2 + 1]) / 2
end

-- microseconds per iteration of fn(n) (which runs n iterations), median of the chunks
local function per_op(fn, n)
  local each, times = n // CHUNKS, {}
  for k = 1, CHUNKS do
    local t0 = mg.clock()
    fn(each)
    times[k] = (mg.clock() - t0) / each * 1e6
  end
  return median(times)
end

local a, b = mg.tensor({1}), mg.tensor({2})
local c
local function adds(n) for _ = 1, n do c = a + b end end
adds(1000)  -- warm the allocator cache
print(("tiny_op_add_us %.3f"):format(per_op(adds, N)))

local x = mg.tensor({0.5}, {requires_grad = true})
local function chain(n)
  for _ = 1, n do
    local y = (x * 2 + 1):tanh() * x
    y:backward()
  end
end
chain(100)
print(("tiny_chain_backward_us %.3f"):format(per_op(chain, N // 10)))
