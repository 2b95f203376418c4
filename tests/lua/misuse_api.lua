-- Misuse corpus, part 1: tensors, math, reductions, linear algebra, layer ops,
-- index ops and autograd. Each bad call must raise a Lua error whose message
-- names the operation and the offending shapes/values; the process must survive
-- all of them (tests/lua/misuse.lua has the core's first cases; none repeated here).
local mg = require("moongrad")
local T = mg.test()

local f64 = {dtype = "float64"}
local a = mg.zeros(2, 3)
local v3 = mg.ones(3)
local img = mg.zeros(1, 2, 5, 5)

local cases = {
  -- construction
  {function() return mg.zeros(2, "x") end, "zeros: argument #2: expected a size or an options table, got string", "zeros with a string after a size"},
  {function() return mg.ones("x") end, "ones: argument #1: expected a size or an options table, got string", "ones with a string size"},
  {function() return mg.ones({2, -1}) end, "ones: size #2 is negative", "ones with a negative size in a table"},
  {function() return mg.empty(-5) end, "empty: size #1 is negative", "empty with a negative size"},
  {function() return mg.rand(0 / 0) end, "rand: size #1 must be an integer", "rand with a NaN size"},
  {function() return mg.randn(math.huge) end, "randn: size #1 must be an integer", "randn with an infinite size"},
  {function() return mg.full({2, 2}) end, "full: argument #2: expected a fill value, got no value", "full without a value"},
  {function() return mg.full({2, -2}, 1) end, "full: size #2 is negative", "full with a negative size"},
  {function() return mg.zeros(4e9, 4e9) end, "too large", "zeros: numel overflows"},
  {function() return mg.ones(2 ^ 38, {dtype = "float64"}) end, "cannot allocate", "ones: 2 TiB float64 cannot be allocated"},
  {function() return mg.rand(2 ^ 39) end, "cannot allocate", "rand: 2 TiB cannot be allocated"},
  {function() return mg.tensor() end, "tensor: expected numbers or nested tables, got no value", "tensor() without data"},
  {function() return mg.tensor(nil) end, "tensor: expected numbers or nested tables, got nil", "tensor(nil)"},
  {function() return mg.tensor({1, 2}, {dtype = "float16"}) end, "unknown dtype 'float16'", "tensor with an unknown dtype"},
  {function() return mg.tensor({1, 2}, {requires_grad = "yes"}) end, "tensor: option 'requires_grad' must be a boolean, got string", "tensor: requires_grad not a boolean"},
  {function() return mg.tensor({{1, 2}, {3, 4, 5}}) end, "tensor: ragged nested table: expected 2 elements at depth 2, got 3", "ragged second row"},
  {function() return mg.tensor({{1}, 2}) end, "tensor: ragged nested table: expected 1 elements at depth 2, got number", "number where a row is expected"},
  {function() return mg.tensor({1, {2}}) end, "tensor: expected a number at depth 1, got table (ragged nesting?)", "row where a number is expected"},
  {function() return mg.tensor({true}) end, "tensor: expected numbers or nested tables, got boolean", "boolean in a tensor literal"},
  {function() return mg.zeros_like(5) end, "zeros_like: argument #1: expected a tensor, got number", "zeros_like(number)"},
  {function() return mg.ones_like(nil) end, "ones_like: argument #1: expected a tensor, got nil", "ones_like(nil)"},
  {function() return mg.randint(1, 5, {-2}) end, "randint: size #1 is negative (-2)", "randint with a negative size"},
  {function() return mg.randint(1.5, 5, {2}) end, "randint: argument #1: expected an integer (lo), got 1.5", "randint with a fractional bound"},
  {function() return mg.randperm(1.5) end, "randperm: argument #1: expected an integer (n), got 1.5", "randperm of a fraction"},
  {function() return mg.randperm(2 ^ 40) end, "cannot allocate", "randperm too large"},
  {function() return mg.range(1, 10, -1):numel() == 0 or error("not empty") end, nil, "range with a step of the wrong sign is empty (like a Lua for)"},
  {function() return mg.range("a", 2) end, "range: argument #1: expected a number (start), got string", "range from a string"},
  {function() return mg.range(1, 0 / 0) end, "range: bounds and step must be finite", "range to NaN"},
  {function() return mg.range(1, math.huge) end, "range: bounds and step must be finite", "range to infinity"},
  {function() return mg.eye("n") end, "eye: argument #1: expected a size (integer), got string", "eye of a string"},
  {function() return mg.eye(2 ^ 31) end, "is too large", "eye too large"},

  -- inspection and element access
  {function() return a:size(3) end, "size: dim 3 out of range", "size dim out of range"},
  {function() return a:size("x") end, "size: argument #2: expected a dim (integer), got string", "size of a string dim"},
  {function() return a:get(0, 1) end, "get: index 0 out of range", "get with index 0 (1-based)"},
  {function() return a:get(1, 2, 3) end, "get: expected 2 indices", "get with too many indices"},
  {function() return a:get(1, -4) end, "get: index -4 out of range", "get negative index out of range"},
  {function() return a:set(1, 1) end, "set: expected 2 indices and a value for a tensor of shape {2,3}, got 2 arguments", "set without a value"},
  {function() return a:set(3, 1, 5) end, "set: index 3 out of range", "set out of range"},
  {function() return mg.zeros(0):item() end, "item: tensor of shape {0} has 0 elements", "item of an empty tensor"},
  {function() a[3] = 1 end, "index 3 out of range for dim 1 of size 2", "t[i] = v out of range"},
  {function() a[1] = "x" end, "index assignment: argument #3: expected a tensor or a number, got string", "t[i] = string"},
  {function() a[1] = mg.ones(4) end, "cannot be broadcast", "t[i] = tensor of the wrong shape"},
  {function() return a[0] end, "index 0 out of range", "t[0]"},
  {function() return a.nosuchfield end, nil, "unknown field reads as nil"},

  -- views
  {function() return a:view("x") end, "view: shape {} (1 elements) is invalid for a tensor of shape {2,3} (6 elements)", "view with a string"},
  {function() return a:view(0, -1) end, "view: shape {0,-1} is invalid for a tensor of 6 elements", "view with zero and -1"},
  {function() return a:reshape(5) end, "reshape: shape {5} (5 elements) is invalid for a tensor of shape {2,3}", "reshape with wrong numel"},
  {function() return a:reshape(-2, 3) end, "reshape: size #1 is negative (-2)", "reshape with -2"},
  {function() return a:transpose(1) end, "transpose: argument #3: expected a dim (integer), got no value", "transpose with one dim"},
  {function() return a:transpose(0, 1) end, "transpose: dim 0 out of range", "transpose dim 0"},
  {function() return a:permute(1, 2, 3) end, "permute: 3 dims given for a tensor of shape {2,3}", "permute with too many dims"},
  {function() return a:permute(2, 5) end, "permute: dim 5 out of range for a tensor with 2 dims (expected 1..2 or -2..-1)", "permute with an out-of-range dim"},
  {function() return a:narrow(1, 0, 1) end, "narrow: start 0 and length 1 out of range for dim 1 of size 2", "narrow start 0"},
  {function() return a:narrow(2, 1, -1) end, "narrow: start 1 and length -1 out of range for dim 2 of size 3 (shape {2,3})", "narrow negative length"},
  {function() return a:narrow(3, 1, 1) end, "narrow: dim 3 out of range", "narrow dim out of range"},
  {function() return a:select(3, 1) end, "select: dim 3 out of range", "select dim out of range"},
  {function() return a:select(2, 0) end, "select: index 0 out of range for dim 2 of size 3", "select index 0"},
  {function() return a:unsqueeze(-4) end, "unsqueeze: dim -4 out of range", "unsqueeze negative dim out of range"},
  {function() return mg.zeros(1, 1, 1, 1, 1, 1, 1, 1):unsqueeze(1) end, "unsqueeze: tensor already has 8 dims", "unsqueeze past 8 dims"},
  {function() return a:expand(2) end, "expand: cannot expand shape {2,3} to {2} (fewer dims)", "expand to fewer dims"},
  {function() return a:expand(-1, -1, -1) end, "expand: cannot expand shape {2,3} to {-1,-1,-1} (size 1 vs -1 at dim 1)", "expand with -1 for a new dim"},
  {function() return mg.zeros(4):view((1 << 62) + 1, 4) end, "view: shape {4611686018427387905,4} is too large", "view whose element count wraps around to numel"},
  {function() return mg.zeros(4):reshape(4, (1 << 62) + 1) end, "reshape: shape {4,4611686018427387905} is too large", "reshape whose element count wraps around"},
  {function() return mg.zeros(1):expand(1 << 33):item() end, "item: tensor of shape {8589934592} has 8589934592 elements", "item of a huge view gives its true element count"},
  {function() return mg.zeros(-(1 << 40)) end, "zeros: size #1 is negative (-1099511627776)", "zeros with a large negative size"},
  {function() return a:get(1, 1 << 40) end, "get: index 1099511627776 out of range for dim 2 of size 3", "get with a huge index"},
  {function() return mg.matmul(mg.zeros(1):expand(1 << 31, 2), mg.zeros(2, 1)) end, "matmul: a 2147483648 x 2 x 1 product is too large for BLAS", "matmul past BLAS's int sizes"},
  {function() return mg.zeros(1):expand(1 << 31):dot(mg.zeros(1):expand(1 << 31)) end, "dot: 2147483648 elements is too many for BLAS", "dot past BLAS's int sizes"},
  {function() return mg.zeros(3):expand(2 ^ 62, 3) end, "expand: shape {4611686018427387904,3} is too large", "expand past int64 elements"},
  {function() return mg.zeros(1, 3):expand(2 ^ 40, 3):contiguous() end, "cannot allocate", "contiguous copy of a huge expand"},
  {function() return mg.randint(math.mininteger, math.maxinteger, {2}):numel() == 2 or error("numel") end, nil, "randint over the full 64-bit range"},
  {function() return mg.randint(2 ^ 40, 1, {2}) end, "randint: empty range [1099511627776, 1]", "randint empty range with big bounds"},
  {function() return a:flatten(3) end, "flatten: dim 3 out of range for a tensor with 2 dims (expected 1..2 or -2..-1)", "flatten start out of range"},
  {function() return a:flatten(2, 1) end, "flatten: start dim 2 is after end dim 1", "flatten start after stop"},
  {function() return a:to(5) end, "to: argument #2: expected a dtype name (\"float32\" or \"float64\"), got number", "to(number)"},
  {function() return a:to() end, "to: argument #2: expected a dtype name (\"float32\" or \"float64\"), got no value", "to() without a dtype"},

  -- elementwise math
  {function() return a - mg.zeros(3, 2) end, "sub: shapes {2,3} and {3,2} cannot be broadcast", "sub broadcast mismatch"},
  {function() return a / mg.zeros(5) end, "div: shapes {2,3} and {5} cannot be broadcast", "div broadcast mismatch"},
  {function() return a ^ mg.zeros(4) end, "pow: shapes {2,3} and {4} cannot be broadcast", "pow broadcast mismatch"},
  {function() return a:mul(nil) end, "mul: argument #2: expected a tensor or a number, got nil", "mul(nil)"},
  {function() return a:add(true) end, "add: argument #2: expected a tensor or a number, got boolean", "add(boolean)"},
  {function() return {} - a end, "sub: argument #1: expected a tensor or a number, got table", "table - tensor"},
  {function() return a:maximum(mg.zeros(4)) end, "maximum: shapes {2,3} and {4} cannot be broadcast", "maximum broadcast"},
  {function() return a:minimum("x") end, "minimum: argument #2: expected a tensor or a number, got string", "minimum(string)"},
  {function() return a:leaky_relu("x") end, "leaky_relu: argument #2: expected a number (slope), got string", "leaky_relu with a string slope"},
  {function() return a:clamp("lo") end, "clamp: argument #2: expected a number or nil (lo), got string", "clamp with a string bound"},
  {function() return a:clamp(1, "x") end, "clamp: argument #3: expected a number or nil (hi), got string", "clamp with a string hi"},
  {function() return a:eq(mg.zeros(7)) end, "eq: shapes {2,3} and {7} cannot be broadcast", "eq broadcast"},
  {function() return a:lt("x") end, "lt: argument #2: expected a tensor or a number, got string", "lt(string)"},
  {function() return mg.where(a, a, mg.zeros(4)) end, "where: shapes {2,3} and {4} cannot be broadcast (size 3 vs 4 at dim 2)", "where broadcast mismatch"},
  {function() return mg.where(nil, a, a) end, "where: argument #1: expected a tensor", "where(nil, ...)"},
  {function() return mg.where(a, "x", a) end, "where: argument #2: expected a tensor or a number, got string", "where with a string branch"},
  {function() return a:exp(a, a) and mg.exp(nil) end, "exp: argument #1: expected a tensor, got nil", "mg.exp(nil)"},
  {function() return a.relu(5) end, "relu: expected a tensor as self (did you call t.relu(...) instead of t:relu(...)?), got number", "relu called on a number"},
  {function() return a:fill_("x") end, "fill_: argument #2: expected a number (the fill value), got string", "fill_ with a string"},
  {function() return a:mul_(mg.zeros(4)) end, "cannot be broadcast", "mul_ shape mismatch"},
  {function() return a:div_({}) end, "div_: argument #2: expected a tensor or a number, got table", "div_(table)"},
  {function() return a:clamp_(3, 1) end, "clamp_: lo (3) is greater than hi (1)", "clamp_ with lo > hi"},
  {function() return a:uniform_(0, 0 / 0) end, "uniform_: expected a <= b", "uniform_ with NaN"},
  {function() return a:normal_(0, 0 / 0) end, "normal_: std must be >= 0", "normal_ with NaN std"},
  {function() return a:add_(v3, "x") end, "add_: argument #3: expected a number (alpha), got string", "add_ with a string alpha"},
  {function() return a:copy_(5) end, "copy_: argument #2: expected a tensor, got number", "copy_(number)"},

  -- reductions
  {function() return a:sum(3) end, "sum: dim 3 out of range", "sum dim out of range"},
  {function() return a:sum(1, "yes") end, "sum: argument #3 (keepdim): expected a boolean, got string", "sum keepdim string"},
  {function() return a:mean(-3) end, "mean: dim -3 out of range", "mean dim out of range"},
  {function() return a:prod(5) end, "prod: dim 5 out of range", "prod dim out of range"},
  {function() return a:var(3) end, "var: dim 3 out of range", "var dim out of range"},
  {function() return a:std(1, true, "x") end, "std: argument #4 (unbiased): expected a boolean", "std unbiased string"},
  {function() return a:norm("nuc") end, "norm: argument #2 (p): expected a number or \"fro\", got string", "norm nuclear"},
  {function() return a:norm(2, 5) end, "norm: dim 5 out of range", "norm with a dim out of range"},
  {function() return a:max(3) end, "max: dim 3 out of range", "max dim out of range"},
  {function() return a:min("x") end, "min: argument #2: expected a dim (integer), got string", "min(string)"},
  {function() return mg.zeros(0):max() end, "max: cannot reduce an empty tensor of shape {0} (no elements)", "max of an empty tensor"},
  {function() return mg.zeros(0, 3):max(1) end, "max: cannot reduce dim 1 of size 0 (shape {0,3})", "max(dim) over an empty dim"},
  {function() return a:argmax(0) end, "argmax: dim 0 out of range", "argmax dim 0"},
  {function() return mg.zeros(0):argmin() end, "argmin: cannot reduce an empty tensor of shape {0} (no elements)", "argmin of an empty tensor"},
  {function() return a:logsumexp(4) end, "logsumexp: dim 4 out of range", "logsumexp dim out of range"},
  {function() return mg.sum(nil) end, "sum: argument #1: expected a tensor, got nil", "mg.sum(nil)"},

  -- linear algebra
  {function() return mg.matmul(mg.zeros(64, 784), mg.zeros(10, 256)) end,
    "matmul: shapes {64,784} and {10,256} do not match (784 ~= 10)", "matmul inner mismatch"},
  {function() return mg.matmul(mg.tensor(1), a) end, "matmul: both arguments need at least 1 dim, got shapes {} and {2,3}", "matmul of a 0-dim tensor"},
  {function() return mg.matmul(a, nil) end, "matmul: argument #2: expected a tensor, got nil", "matmul(a, nil)"},
  {function() return mg.matmul(mg.zeros(2, 2, 3), mg.zeros(3, 3, 4)) end, "matmul: batch dims of shapes {2,2,3} and {3,3,4} cannot be broadcast (size 2 vs 3 at batch dim 1)", "batched matmul batch mismatch"},
  {function() return mg.matmul(v3, mg.ones(4)) end, "matmul: shapes {3} and {4} do not match (3 ~= 4)", "matmul of vectors of different lengths"},
  {function() return v3:dot(mg.ones(4)) end, "dot: shapes {3} and {4} do not match (3 ~= 4)", "dot of different lengths"},
  {function() return a:dot(a) end, "dot: expected two 1-D tensors, got shapes {2,3} and {2,3}", "dot of 2-d tensors"},
  {function() return mg.outer(a, v3) end, "outer: expected two 1-D tensors, got shapes {2,3} and {3}", "outer of a 2-d tensor"},
  {function() return mg.outer(v3, "x") end, "outer: argument #2: expected a tensor, got string", "outer(v, string)"},
  {function() return mg.linear(mg.zeros(4, 5), mg.zeros(3, 6)) end, "linear: input of shape {4,5} and weight of shape {3,6} do not match (5 ~= 6)", "linear weight mismatch"},
  {function() return mg.linear(mg.zeros(4, 5), mg.zeros(3, 5), mg.zeros(4)) end, "linear: bias of shape {4} does not match weight of shape {3,5} (expected {3})", "linear bias mismatch"},
  {function() return mg.linear(mg.zeros(4, 5), mg.zeros(5)) end, "linear: weight must be 2-D {out, in}, got shape {5}", "linear with a 1-d weight"},
  {function() return mg.linear(mg.zeros(4, 5), mg.zeros(3, 5), "b") end, "linear: argument #3: expected a tensor, got string", "linear with a string bias"},

  -- convolution and pooling
  {function() return mg.conv2d(mg.zeros(5, 5), mg.zeros(3, 1, 3, 3)) end, "conv2d: expected a 3-D (C,H,W) or 4-D (N,C,H,W) input, got shape {5,5}", "conv2d 2-d input"},
  {function() return mg.conv2d(img, mg.zeros(3, 4, 3, 3)) end, "conv2d: input has 2 channels but weight expects 4 (weight shape {3,4,3,3})", "conv2d channel mismatch"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 7, 7)) end, "conv2d: input of shape {1,2,5,5} is smaller than the kernel (weight shape {3,2,7,7}, padding {0,0}, dilation {1,1})", "conv2d kernel larger than input"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 3, 3), mg.zeros(4)) end, "conv2d: bias of shape {4} does not match out_channels 3 (weight shape {3,2,3,3})", "conv2d bias mismatch"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 3, 3), {stride = 0}) end, "conv2d: stride {0,0} and dilation {1,1} must be >= 1 and padding {0,0} >= 0", "conv2d stride 0"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 3, 3), {padding = -1}) end, "conv2d: stride {1,1} and dilation {1,1} must be >= 1 and padding {-1,-1} >= 0", "conv2d negative padding"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 3, 3), {groups = 2}) end, "conv2d: out_channels 3 (weight shape {3,2,3,3}) is not divisible by groups 2", "conv2d groups not dividing out"},
  {function() return mg.conv2d(img, mg.zeros(4, 2, 3, 3), {groups = 0.5}) end, "conv2d: groups must be a positive integer", "conv2d fractional groups"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 3, 3), {strde = 1}) end, "conv2d: unknown option 'strde'", "conv2d misspelt option"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 3, 3), {stride = {1, 2, 3}}) end, "conv2d: stride must be an integer or a {h, w} pair", "conv2d stride triple"},
  {function() return mg.conv2d(img, mg.zeros(3, 2, 3, 3), {dilation = 0}) end, "conv2d: stride {1,1} and dilation {0,0} must be >= 1 and padding {0,0} >= 0", "conv2d dilation 0"},
  {function() return mg.conv2d(img, "w") end, "conv2d: argument #2: expected a tensor, got string", "conv2d string weight"},
  {function() return mg.max_pool2d(img) end, "max_pool2d: argument #2: expected a kernel size", "max_pool2d without kernel"},
  {function() return mg.max_pool2d(img, 0) end, "max_pool2d: kernel size {0,0} must be >= 1", "max_pool2d kernel 0"},
  {function() return mg.max_pool2d(img, 7) end, "max_pool2d: input of shape {1,2,5,5} is smaller than the kernel {7,7} (padding {0,0})", "max_pool2d kernel larger than input"},
  {function() return mg.max_pool2d(img, 2, {stride = -1}) end, "max_pool2d: stride {-1,-1} must be >= 1", "max_pool2d negative stride"},
  {function() return mg.max_pool2d(img, 2, {padding = 2}) end, "max_pool2d: padding {2,2} must be >= 0 and at most half the kernel size {2,2}", "max_pool2d padding over half the kernel"},
  {function() return mg.max_pool2d(mg.zeros(5), 2) end, "max_pool2d: expected a 3-D (C,H,W) or 4-D (N,C,H,W) input, got shape {5}", "max_pool2d 1-d input"},
  {function() return mg.avg_pool2d(img, 2.5) end, "avg_pool2d: kernel size must be an integer or a {h, w} pair of integers, got 2.5", "avg_pool2d fractional kernel"},
  {function() return mg.avg_pool2d(img, 2, {stide = 1}) end, "avg_pool2d: unknown option 'stide'", "avg_pool2d misspelt option"},
  {function() return mg.avg_pool2d(img, 10000000) end, "avg_pool2d: kernel size 10000000 is out of range", "avg_pool2d huge kernel"},

  -- softmax, dropout, norms, embedding
  {function() return mg.softmax(a) end, "softmax: argument #2: expected a dim (integer), got no value", "softmax without a dim"},
  {function() return mg.softmax(a, 3) end, "softmax: dim 3 out of range", "softmax dim out of range"},
  {function() return mg.log_softmax(a, "x") end, "log_softmax: argument #2: expected a dim (integer), got string", "log_softmax string dim"},
  {function() return mg.softmax(mg.zeros(2, 0), 2) end, nil, "softmax over an empty dim is empty, not an error"},
  {function() return mg.dropout(a, 1.5) end, "dropout: p must be a probability in [0, 1], got 1.5", "dropout p > 1"},
  {function() return mg.dropout(a, -0.1) end, "dropout: p must be a probability in [0, 1], got -0.1", "dropout p < 0"},
  {function() return mg.dropout(a, 0 / 0) end, "dropout: p must be a probability in [0, 1]", "dropout NaN p"},
  {function() return mg.dropout(a, "x") end, "dropout: argument #2 (p): expected a number, got string", "dropout string p"},
  {function() return mg.dropout(a, 0.5, "yes") end, "dropout: argument #3 (training): expected a boolean, got string", "dropout string training"},
  {function() return mg.batch_norm(mg.zeros(4, 3), mg.zeros(5), mg.ones(5)) end, "batch_norm: running_mean of shape {5} does not match the input's 3 channels (input shape {4,3})", "batch_norm running stats size mismatch"},
  {function() return mg.batch_norm(mg.zeros(4, 3), mg.zeros(3), nil, nil, nil, false) end, "batch_norm: running_mean and running_var must be given together", "batch_norm eval with running_mean but no running_var"},
  {function() return mg.batch_norm(mg.zeros(4, 3), mg.zeros(3), nil, nil, nil, true) end, "batch_norm: running_mean and running_var must be given together", "batch_norm training with running_mean but no running_var"},
  {function() return mg.batch_norm(mg.zeros(4, 3), nil, nil, mg.ones(4)) end, "batch_norm: weight of shape {4} does not match the input's 3 channels (input shape {4,3})", "batch_norm weight mismatch"},
  {function() return mg.batch_norm(mg.zeros(1, 3), nil, nil, nil, nil, true) end, "batch_norm: expected more than 1 value per channel when training, got input of shape {1,3}", "batch_norm training with one value per channel"},
  {function() return mg.batch_norm(mg.zeros(4, 3), nil, nil, nil, nil, true, 0.1, -1) end, "batch_norm: eps must be >= 0, got -1", "batch_norm negative eps"},
  {function() return mg.batch_norm(mg.zeros(4), nil, nil, nil, nil, true) end, "batch_norm: expected an input of shape {N,C} or {N,C,...}, got {4}", "batch_norm 1-d input"},
  {function() return mg.batch_norm(mg.zeros(4, 3), "rm") end, "batch_norm: argument #2 (running_mean): expected a tensor or nil, got string", "batch_norm string running_mean"},
  {function() return mg.layer_norm(a, 4) end, "layer_norm: input of shape {2,3} does not end with normalized_shape {4}", "layer_norm shape mismatch"},
  {function() return mg.layer_norm(a, {}) end, "layer_norm: argument #2 (normalized_shape)", "layer_norm empty shape"},
  {function() return mg.layer_norm(a, 3, mg.ones(4)) end, "layer_norm: weight of shape {4} does not match normalized_shape {3}", "layer_norm weight mismatch"},
  {function() return mg.layer_norm(a, {2, 3, 4}) end, "layer_norm: input of shape {2,3} does not end with normalized_shape {2,3,4}", "layer_norm shape longer than input"},
  {function() return mg.layer_norm(a, 3, nil, nil, -1e-5) end, "layer_norm: eps must be >= 0, got -1e-05", "layer_norm negative eps"},
  {function() return mg.embedding(mg.tensor({1, 11}), mg.zeros(10, 4)) end, "embedding: index 11 is out of range for dim 1 of size 10 (shape {10,4})", "embedding index out of range"},
  {function() return mg.embedding(mg.tensor({0}), mg.zeros(10, 4)) end, "embedding: index 0 is out of range for dim 1 of size 10 (shape {10,4})", "embedding index 0 (1-based)"},
  {function() return mg.embedding(mg.tensor({1.5}), mg.zeros(10, 4)) end, "embedding: index 1.5 is not an integer (indices must be whole numbers)", "embedding fractional index"},
  {function() return mg.embedding(mg.tensor({1}), mg.zeros(10)) end, "embedding: weight must be 2-D {num_embeddings, embedding_dim}, got shape {10}", "embedding 1-d weight"},
  {function() return mg.embedding({1, 2}, mg.zeros(10, 4)) end, "embedding: argument #1: expected a tensor, got table", "embedding with a Lua table of indices"},

  -- index ops
  {function() return mg.cat({}) end, "cat: expected a non-empty list of tensors", "cat of an empty list"},
  {function() return mg.cat(a) end, "cat: argument #1: expected a list of tensors, got", "cat of a tensor"},
  {function() return mg.cat({a, mg.zeros(2, 4)}, 1) end, "cat: tensor 2 has shape {2,4} but tensor 1 has shape {2,3} (sizes must match except in dim 1)", "cat shape mismatch"},
  {function() return mg.cat({a, mg.zeros(2, 3, 1)}) end, "cat: tensor 2 has shape {2,3,1} but tensor 1 has shape {2,3} (sizes must match except in dim 1)", "cat dim count mismatch"},
  {function() return mg.cat({a, 5}) end, "cat: element 2 of the list is a number, expected a tensor", "cat with a number"},
  {function() return mg.cat({a, a}, 3) end, "cat: dim 3 out of range", "cat dim out of range"},
  {function() return mg.stack({a, v3}) end, "stack: expected tensors of the same shape, but tensor 1 has shape {2,3} and tensor 2 has shape {3}", "stack shape mismatch"},
  {function() return mg.stack({a, a}, 4) end, "stack: dim 4 out of range", "stack dim out of range"},
  {function() return mg.stack(nil) end, "stack: argument #1: expected a list of tensors, got nil", "stack(nil)"},
  {function() return a:index_select(1, mg.tensor({3})) end, "index_select: index 3 is out of range for dim 1 of size 2 (shape {2,3})", "index_select index out of range"},
  {function() return a:index_select(1, mg.tensor({{1}})) end, "index_select: index must be a 1-D tensor, got shape {1,1}", "index_select 2-d index"},
  {function() return a:index_select(3, mg.tensor({1})) end, "index_select: dim 3 out of range", "index_select dim out of range"},
  {function() return a:index_select(1, {1}) end, "index_select: argument #3: expected a tensor, got table", "index_select Lua table"},
  {function() return a:gather(2, mg.tensor({{4}})) end, "gather: index 4 is out of range for dim 2 of size 3 (shape {2,3})", "gather index out of range"},
  {function() return a:gather(2, mg.tensor({1, 2})) end, "gather: index of shape {2} does not fit input of shape {2,3} (same number of dims, and no larger except in dim 2)", "gather index with fewer dims"},
  {function() return a:gather(2, mg.ones(3, 1)) end, "gather: index of shape {3,1} does not fit input of shape {2,3} (same number of dims, and no larger except in dim 2)", "gather index larger than input"},
  {function() return a:masked_fill(mg.ones(4), 0) end, "masked_fill: mask of shape {4} cannot be broadcast to the input's shape {2,3}", "masked_fill mask broadcast mismatch"},
  {function() return a:masked_fill(mg.ones(2, 3)) end, "masked_fill: argument #3: expected a number (the fill value), got no value", "masked_fill without value"},
  {function() return a:masked_fill("m", 0) end, "masked_fill: argument #2: expected a tensor, got string", "masked_fill string mask"},
}

-- autograd: a freed graph, a pending backward, Function and gradcheck misuse
local function twice_backward()
  local x = mg.tensor({1, 2}, {requires_grad = true})
  local y = (x * x):sum()
  y:backward()
  y:backward()
end
local function twice_backward_exp()
  local x = mg.tensor({1, 2}, {requires_grad = true})
  local y = x:exp():sum()
  y:backward()
  y:backward()
end
local function mutate_saved()
  local x = mg.tensor({1, 2}, {requires_grad = true})
  local h = x * 2
  local y = h:exp()            -- saves its output
  mg.no_grad(function() y:mul_(3) end)
  y:sum():backward()
end
local function mutate_input()
  local x = mg.tensor({1, 2}, {requires_grad = true})
  local w = mg.tensor({3, 4})
  local y = x * w              -- saves w
  w:add_(1)
  y:sum():backward()
end
local function mutate_view()
  local x = mg.tensor({1, 2, 3}, {requires_grad = true})
  local w = mg.tensor({3, 4, 5})
  local y = (x * w):sum()
  w:narrow(1, 2, 1):fill_(0)   -- a view shares the version counter
  y:backward()
end
local function closed_tensor()
  local t <close> = mg.ones(3)
  local keep = t
  return function() return keep end
end
local closed = closed_tensor()()
local Id = mg.Function{forward = function(ctx, t) return t * 1 end, backward = function(ctx, g) return g end}
local NoneBack = mg.Function{forward = function(ctx, t) return t * 1 end, backward = function(ctx, g) return "x" end}
local NotTensor = mg.Function{forward = function(ctx, t) return 42 end, backward = function(ctx, g) return g end}

local more = {
  {twice_backward, "backward: trying to backward through the graph of 'mul' a second time (its saved tensors were freed; pass retain_graph = true to the first backward)", "second backward through a freed graph (mul)"},
  {twice_backward_exp, "backward: trying to backward through the graph of 'exp' a second time (its saved tensors were freed; pass retain_graph = true to the first backward)", "second backward through a freed graph (exp)"},
  {mutate_saved, "modified by an in-place operation", "mutating a saved output before backward"},
  {mutate_input, "modified by an in-place operation", "mutating a saved input before backward"},
  {mutate_view, "modified by an in-place operation", "mutating a view of a saved input before backward"},
  {function() return closed + 1 end, "add: argument #1: tensor was closed", "using a tensor after <close>"},
  {function() return closed:sum() end, "sum: argument #1: tensor was closed", "reducing a closed tensor"},
  {function() return closed:shape() end, "shape: argument #1: tensor was closed", "shape of a closed tensor"},
  {function() return mg.ones(2, {requires_grad = true}):add_(1) end, "requires grad", "in-place on a leaf that requires grad"},
  {function() local l = mg.ones(2, {requires_grad = true}); l:backward() end, "grad can be implicitly created only for one-element outputs", "backward of a non-scalar leaf"},
  {function() local x = mg.ones(2, {requires_grad = true}); (x * 2):sum():backward({retain = true}) end,
    "backward: unknown option 'retain'", "backward misspelt option"},
  {function() local x = mg.ones(2, {requires_grad = true}); x.grad = "g" end, "grad assignment: argument #3: expected a tensor, got string", "grad assignment of a string"},
  {function() return mg.ones(2):requires_grad_(true):view(2):requires_grad_(false) end, "non-leaf", "requires_grad_(false) on a view of a leaf"},
  {function() return mg.no_grad() end, "no_grad: argument #1: expected a function, got no value", "no_grad without a function"},
  {function() return mg.no_grad(function() error("inner failure") end) end, "inner failure", "errors inside no_grad propagate"},
  {function() return mg.Function() end, "Function: argument #1: expected a table {forward = f, backward = g}, got no value", "Function without a table"},
  {function() return mg.Function{forward = function() end} end, "Function: 'backward' must be a function", "Function without backward"},
  {function() return Id(5) end, "Function forward: must return a tensor, got number", "Function called on a number"},
  {function() return NotTensor(mg.ones(2, {requires_grad = true})) end, "Function forward: must return a tensor, got number", "Function forward returning a number"},
  {function() NoneBack(mg.ones(2, {requires_grad = true})):sum():backward() end, "Function backward: result #1 must be a tensor or nil, got string", "Function backward returning a string"},
  {function() return mg.gradcheck(function(t) return t end, 5) end, "gradcheck: argument #2: expected a table of inputs, got number", "gradcheck inputs not a table"},
  {function() return mg.gradcheck(function(t) return 5 end, {mg.ones(2, f64):requires_grad_()}) end, "gradcheck: fn must return a tensor, got number", "gradcheck fn returning a number"},
  {function() return mg.gradcheck(function(t) return t:sum() end, {mg.ones(2, f64):requires_grad_()}, {eps = -1}) end, "gradcheck: option 'eps' must be a finite number >= 0 (eps > 0), got -1", "gradcheck negative eps"},
  {function() return mg.gradcheck(function(t) return t:sum() end, {mg.ones(2, f64):requires_grad_()}, {epsilon = 1}) end, "gradcheck: unknown option 'epsilon' (accepted: eps, atol, rtol)", "gradcheck unknown option"},
}
for _, c in ipairs(more) do cases[#cases + 1] = c end

local n = T:raises_each(cases)
T:ok(n >= 150, ("at least 150 misuse cases here (%d)"):format(n))
T:near(mg.ones(2) + 1, {2, 2}, 0, "runtime still works after every misuse")
T:done()
