-- mg.detect_anomaly: NaN/Inf in an op's output (forward) or in a gradient
-- (backward) is an error naming the op that produced it.
local mg = require("moongrad")
local T = mg.test()

T:eq(mg.detect_anomaly(), false, "anomaly detection is off by default")
local x = mg.tensor({1, -1}, {requires_grad = true})
T:ok(x:log():get(2) ~= x:log():get(2), "without detection, log(-1) is silently NaN")
mg.detect_anomaly(true)
T:raises(function() return x:log() end, "anomaly: 'log' produced NaN in its output (shape {2}, element 2)",
  "forward: log of a negative number names the op")
T:raises(function() return (x * 1e38) * 1e38 end, "anomaly: 'mul' produced Inf", "forward: overflow to Inf names the op")
-- a small model that goes wrong in backward only: sqrt'(0) = Inf
local w = mg.tensor({0, 4}, {requires_grad = true})
local y = w:sqrt()
T:raises(function() y:backward(mg.ones(2)) end, "anomaly: backward of 'sqrt' produced Inf in the gradient of its input 1",
  "backward: the gradient's op is named")
-- healthy computations pass
local ok = pcall(function() (mg.ones(3, {requires_grad = true}) * 2):exp():backward(mg.ones(3)) end)
T:ok(ok, "finite computations pass under anomaly detection")
T:eq(mg.detect_anomaly(false), true, "detect_anomaly returns the previous setting")
T:ok(x:log():get(2) ~= x:log():get(2), "switched off again")
T:done()
