-- Per-op overhead from Lua: `a + b` on one-element tensors, and a small chain
-- with backward. Prints microseconds per op.
local mg = require("moongrad")
local N = tonumber(arg and arg[1]) or 1000000
local a, b = mg.tensor({1}), mg.tensor({2})
local c
for _ = 1, 1000 do c = a + b end  -- warm the allocator cache
local t0 = mg.clock()
for _ = 1, N do c = a + b end
local t1 = mg.clock()
print(("tiny_op_add_us %.3f"):format((t1 - t0) / N * 1e6))

local x = mg.tensor({0.5}, {requires_grad = true})
local M = N // 10
t0 = mg.clock()
for _ = 1, M do
  local y = (x * 2 + 1):tanh() * x
  y:backward()
end
t1 = mg.clock()
print(("tiny_chain_backward_us %.3f"):format((t1 - t0) / M * 1e6))
