-- conv_fast.lua again with the AVX2 kernels turned off (MOONGRAD_NO_SIMD=1): float32 conv2d then
-- takes the im2col + OpenBLAS path, as on a CPU without AVX2, and must agree with float64 the same.
local mg = require("moongrad")
local T = mg.test()
local runner = (os.getenv("MG_BUILD") or "build") .. "/moongrad"
local p = io.popen("MOONGRAD_NO_SIMD=1 '" .. runner .. "' tests/lua/conv_fast.lua 2>&1")
local out = p:read("a")
local ok = p:close()
local pass, fail = 0, {}
for line in out:gmatch("[^\n]+") do
  if line:match("^ok ") then pass = pass + 1 elseif line:match("^not ok") then fail[#fail + 1] = line end
end
local plan = tonumber(out:match("1%.%.(%d+)"))
T:ok(ok, "conv_fast.lua without SIMD kernels exits cleanly")
T:ok(plan and plan > 0 and pass == plan, ("all %s of its checks pass (%d passed)"):format(plan or "?", pass))
for _, f in ipairs(fail) do T:diag(f) end
T:done()
