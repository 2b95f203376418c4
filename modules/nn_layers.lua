-- mg.nn layers (chunk of mg.nn; modules/nn.lua loads first): Linear, Conv2d, pooling,
-- normalisation, Dropout, Embedding, Flatten, activations, loss modules.
local mg = ...
local nn = mg.nn
local H = nn._h
local fmt, concat, sqrt = string.format, table.concat, math.sqrt
local is_tensor, shapestr, no_grad, boolstr = H.is_tensor, H.shapestr, H.no_grad, H.boolstr
local check_opts, posint, pair, pairstr = H.check_opts, H.posint, H.pair, H.pairstr
local new_param, class, init = H.new_param, H.class, nn.init


-- Linear(in, out [, {bias = true, dtype}]): y = x W^T + b, W U(-1/sqrt(in), 1/sqrt(in))
local Linear = class("Linear")
function Linear:init(inf, outf, opts)
  local o = check_opts("Linear", opts, { "bias", "dtype" })
  self.in_features = posint("Linear", "in_features", inf)
  self.out_features = posint("Linear", "out_features", outf)
  self.weight = init.kaiming_uniform_(new_param({ outf, inf }, o.dtype), { a = sqrt(5) }):requires_grad_(true)
  if o.bias ~= false then
    local bound = 1 / sqrt(inf)
    self.bias = init.uniform_(new_param({ outf }, o.dtype), -bound, bound):requires_grad_(true)
  end
end
function Linear:forward(x)
  if is_tensor(x) and x:dim() >= 1 and x:size(-1) ~= self.in_features then
    error(fmt("Linear(%d -> %d): input %s has %d features in its last dim, expected %d", self.in_features,
              self.out_features, shapestr(x), x:size(-1), self.in_features), 2)
  end
  return mg.linear(x, self.weight, self.bias)
end
function Linear:extra_repr()
  return fmt("in_features=%d, out_features=%d, bias=%s", self.in_features, self.out_features,
             boolstr(self.bias ~= nil))
end

-- Conv2d(in, out, k [, {stride = 1, padding = 0 | "same" | "valid", dilation = 1, groups = 1, bias = true, dtype}])
local Conv2d = class("Conv2d")
function Conv2d:init(cin, cout, k, opts)
  local o = check_opts("Conv2d", opts, { "stride", "padding", "dilation", "groups", "bias", "dtype" })
  self.in_channels = posint("Conv2d", "in_channels", cin)
  self.out_channels = posint("Conv2d", "out_channels", cout)
  self.kernel_size = pair("Conv2d", "kernel_size", k, 1)
  self.stride = pair("Conv2d", "stride", o.stride or 1, 1)
  self.dilation = pair("Conv2d", "dilation", o.dilation or 1, 1)
  self.groups = posint("Conv2d", "groups", o.groups or 1)
  local pad = o.padding or 0
  if pad == "valid" then pad = 0
  elseif pad == "same" then
    if self.stride[1] ~= 1 or self.stride[2] ~= 1 then
      error("Conv2d: padding \"same\" needs stride 1", 2)
    end
    local p = {}
    for i = 1, 2 do
      local total = self.dilation[i] * (self.kernel_size[i] - 1)
      if total % 2 ~= 0 then
        error(fmt("Conv2d: padding \"same\" with kernel %s and dilation %s needs asymmetric padding (unsupported)",
                  pairstr(self.kernel_size), pairstr(self.dilation)), 2)
      end
      p[i] = total // 2
    end
    pad = p
  end
  self.padding = pair("Conv2d", "padding", pad, 0)
  if cin % self.groups ~= 0 or cout % self.groups ~= 0 then
    error(fmt("Conv2d: in_channels (%d) and out_channels (%d) must be divisible by groups (%d)",
              cin, cout, self.groups), 2)
  end
  local kh, kw = self.kernel_size[1], self.kernel_size[2]
  self.weight = init.kaiming_uniform_(new_param({ cout, cin // self.groups, kh, kw }, o.dtype), { a = sqrt(5) })
                    :requires_grad_(true)
  if o.bias ~= false then
    local bound = 1 / sqrt(cin // self.groups * kh * kw)
    self.bias = init.uniform_(new_param({ cout }, o.dtype), -bound, bound):requires_grad_(true)
  end
end
function Conv2d:forward(x)
  if is_tensor(x) and (x:dim() ~= 4 and x:dim() ~= 3 or x:size(-3) ~= self.in_channels) then
    error(fmt("Conv2d(%d -> %d): expected input (N, %d, H, W), got %s", self.in_channels, self.out_channels,
              self.in_channels, shapestr(x)), 2)
  end
  return mg.conv2d(x, self.weight, self.bias, { stride = self.stride, padding = self.padding,
                                                dilation = self.dilation, groups = self.groups })
end
function Conv2d:extra_repr()
  local s = fmt("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
                pairstr(self.kernel_size), pairstr(self.stride))
  if self.padding[1] ~= 0 or self.padding[2] ~= 0 then s = s .. ", padding=" .. pairstr(self.padding) end
  if self.dilation[1] ~= 1 or self.dilation[2] ~= 1 then s = s .. ", dilation=" .. pairstr(self.dilation) end
  if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
  if self.bias == nil then s = s .. ", bias=false" end
  return s
end

local function pool_init(self, who, k, opts)
  local o = check_opts(who, opts, { "stride", "padding" })
  self.kernel_size = pair(who, "kernel_size", k, 1)
  self.stride = pair(who, "stride", o.stride or self.kernel_size, 1)
  self.padding = pair(who, "padding", o.padding or 0, 0)
  for i = 1, 2 do
    if self.padding[i] * 2 > self.kernel_size[i] then
      error(fmt("%s: padding %s must be at most half the kernel size %s", who, pairstr(self.padding),
                pairstr(self.kernel_size)), 3)
    end
  end
end
local function pool_repr(self)
  local function one(p) return p[1] == p[2] and tostring(p[1]) or pairstr(p) end
  return fmt("kernel_size=%s, stride=%s, padding=%s", one(self.kernel_size), one(self.stride), one(self.padding))
end

-- MaxPool2d(k [, {stride = k, padding = 0}])
local MaxPool2d = class("MaxPool2d")
function MaxPool2d:init(k, opts) pool_init(self, "MaxPool2d", k, opts) end
function MaxPool2d:forward(x)
  return mg.max_pool2d(x, self.kernel_size, { stride = self.stride, padding = self.padding })
end
MaxPool2d.extra_repr = pool_repr

-- AvgPool2d(k [, {stride = k, padding = 0}]) (padding counted in the average, as PyTorch's default)
local AvgPool2d = class("AvgPool2d")
function AvgPool2d:init(k, opts) pool_init(self, "AvgPool2d", k, opts) end
function AvgPool2d:forward(x)
  return mg.avg_pool2d(x, self.kernel_size, { stride = self.stride, padding = self.padding })
end
AvgPool2d.extra_repr = pool_repr

-- BatchNorm1d(n) / BatchNorm2d(c) [, {eps = 1e-5, momentum = 0.1, affine = true,
-- track_running_stats = true, dtype}]; momentum = false: cumulative average (PyTorch's None)
local function bn_init(self, who, n, opts)
  local o = check_opts(who, opts, { "eps", "momentum", "affine", "track_running_stats", "dtype" })
  self.num_features = posint(who, "num_features", n)
  self.eps = o.eps or 1e-5
  if o.momentum == false then self.momentum = false else self.momentum = o.momentum or 0.1 end
  if type(self.eps) ~= "number" or not (self.eps > 0) then error(who .. ": eps must be a positive number", 3) end
  if self.momentum and (type(self.momentum) ~= "number" or not (self.momentum >= 0 and self.momentum <= 1)) then
    error(fmt("%s: momentum must be in [0, 1] or false, got %s", who, tostring(self.momentum)), 3)
  end
  self.affine = o.affine ~= false
  self.track_running_stats = o.track_running_stats ~= false
  local dt = o.dtype or "float32"
  if self.affine then
    self.weight = mg.ones({ n }, { dtype = dt }):requires_grad_(true)
    self.bias = mg.zeros({ n }, { dtype = dt }):requires_grad_(true)
  end
  if self.track_running_stats then
    self:register_buffer("running_mean", mg.zeros({ n }, { dtype = dt }))
    self:register_buffer("running_var", mg.ones({ n }, { dtype = dt }))
    -- a count kept in float64 (exact to 2^53) and left alone by :to()
    self:register_buffer("num_batches_tracked", mg.tensor(0, { dtype = "float64" }))
    rawget(self, "__mg").keep = { num_batches_tracked = true }
  end
end
local function bn_forward(self, x)
  local factor = self.momentum or 0
  if self.training and self.track_running_stats then
    local nbt = self.num_batches_tracked
    no_grad(function() nbt:add_(1) end)
    if not self.momentum then factor = 1 / nbt:item() end
  end
  local use_batch = self.training or not self.track_running_stats
  -- in training the core updates running stats in place (unbiased variance), as F.batch_norm
  local rm, rv
  if self.track_running_stats then rm, rv = self.running_mean, self.running_var end
  return mg.batch_norm(x, rm, rv, self.weight, self.bias, use_batch, factor, self.eps)
end
local function bn_repr(self)
  return fmt("%d, eps=%g, momentum=%s, affine=%s, track_running_stats=%s", self.num_features, self.eps,
             self.momentum and fmt("%g", self.momentum) or "false", boolstr(self.affine),
             boolstr(self.track_running_stats))
end

local BatchNorm1d = class("BatchNorm1d")
function BatchNorm1d:init(n, opts) bn_init(self, "BatchNorm1d", n, opts) end
function BatchNorm1d:forward(x)
  if is_tensor(x) and ((x:dim() ~= 2 and x:dim() ~= 3) or x:size(2) ~= self.num_features) then
    error(fmt("BatchNorm1d(%d): expected input (N, %d) or (N, %d, L), got %s", self.num_features,
              self.num_features, self.num_features, shapestr(x)), 2)
  end
  return bn_forward(self, x)
end
BatchNorm1d.extra_repr = bn_repr

local BatchNorm2d = class("BatchNorm2d")
function BatchNorm2d:init(n, opts) bn_init(self, "BatchNorm2d", n, opts) end
function BatchNorm2d:forward(x)
  if is_tensor(x) and (x:dim() ~= 4 or x:size(2) ~= self.num_features) then
    error(fmt("BatchNorm2d(%d): expected input (N, %d, H, W), got %s", self.num_features,
              self.num_features, shapestr(x)), 2)
  end
  return bn_forward(self, x)
end
BatchNorm2d.extra_repr = bn_repr

-- LayerNorm(shape [, {eps = 1e-5, elementwise_affine = true, dtype}]): over the last dims
local LayerNorm = class("LayerNorm")
function LayerNorm:init(shape, opts)
  local o = check_opts("LayerNorm", opts, { "eps", "elementwise_affine", "dtype" })
  if type(shape) == "number" then shape = { shape } end
  if type(shape) ~= "table" or #shape == 0 then
    error("LayerNorm: normalized_shape must be a number or a list of sizes, got " .. tostring(shape), 2)
  end
  local s = {}
  for i, v in ipairs(shape) do s[i] = posint("LayerNorm", "normalized_shape", v) end
  self.normalized_shape = s
  self.eps = o.eps or 1e-5
  self.elementwise_affine = o.elementwise_affine ~= false
  if self.elementwise_affine then
    self.weight = mg.ones(s, { dtype = o.dtype or "float32" }):requires_grad_(true)
    self.bias = mg.zeros(s, { dtype = o.dtype or "float32" }):requires_grad_(true)
  end
end
function LayerNorm:forward(x)
  local s = self.normalized_shape
  if is_tensor(x) then
    local ok = x:dim() >= #s
    for i = 1, #s do ok = ok and x:size(x:dim() - #s + i) == s[i] end
    if not ok then
      error(fmt("LayerNorm(%s): input %s does not end with the normalized shape", shapestr(s), shapestr(x)), 2)
    end
  end
  return mg.layer_norm(x, s, self.weight, self.bias, self.eps)
end
function LayerNorm:extra_repr()
  return fmt("(%s%s), eps=%g, elementwise_affine=%s", concat(self.normalized_shape, ", "),
             #self.normalized_shape == 1 and "," or "", self.eps, boolstr(self.elementwise_affine))
end

-- Dropout([p = 0.5]): zeroes with probability p and scales by 1/(1-p) in training; identity in eval
local Dropout = class("Dropout")
function Dropout:init(p)
  p = p == nil and 0.5 or p
  if type(p) ~= "number" or not (p >= 0 and p <= 1) then
    error("Dropout: p must be a probability in [0, 1], got " .. tostring(p), 2)
  end
  self.p = p
end
function Dropout:forward(x) return mg.dropout(x, self.p, self.training) end
function Dropout:extra_repr() return fmt("p=%g", self.p) end

-- Embedding(n, d [, {dtype}]): rows N(0, 1); input: 1-based indices
local Embedding = class("Embedding")
function Embedding:init(n, d, opts)
  local o = check_opts("Embedding", opts, { "padding_idx", "dtype" })
  self.num_embeddings = posint("Embedding", "num_embeddings", n)
  self.embedding_dim = posint("Embedding", "embedding_dim", d)
  self.weight = init.normal_(new_param({ n, d }, o.dtype), 0, 1)
  local pad = o.padding_idx
  if pad ~= nil then
    if math.type(pad) ~= "integer" or pad == 0 or pad > n or pad < -n then
      error(fmt("Embedding: padding_idx must be an index in 1..%d (or -%d..-1), got %s", n, n, tostring(pad)), 2)
    end
    if pad < 0 then pad = n + 1 + pad end
    self.padding_idx = pad
    self.weight:select(1, pad):fill_(0)
  end
  self.weight:requires_grad_(true)
end
-- with padding_idx, positions holding it take the row's value without a gradient (PyTorch:
-- the padding row is not updated)
function Embedding:forward(idx)
  local out = mg.embedding(idx, self.weight)
  if self.padding_idx then
    local mask = idx:eq(self.padding_idx):unsqueeze(-1)
    out = mg.where(mask, out:detach(), out)
  end
  return out
end
function Embedding:extra_repr()
  return fmt("%d, %d", self.num_embeddings, self.embedding_dim) ..
         (self.padding_idx and ", padding_idx=" .. self.padding_idx or "")
end

-- Flatten([start_dim = 2 [, end_dim = -1]]) (1-based: keeps the batch dim)
local Flatten = class("Flatten")
function Flatten:init(s, e)
  self.start_dim, self.end_dim = s or 2, e or -1
  if math.type(self.start_dim) ~= "integer" or math.type(self.end_dim) ~= "integer" then
    error("Flatten: start_dim and end_dim must be integers", 2)
  end
end
function Flatten:forward(x) return x:flatten(self.start_dim, self.end_dim) end
function Flatten:extra_repr() return fmt("start_dim=%d, end_dim=%d", self.start_dim, self.end_dim) end

local ReLU = class("ReLU")
function ReLU:forward(x) return x:relu() end

-- LeakyReLU([negative_slope = 0.01])
local LeakyReLU = class("LeakyReLU")
function LeakyReLU:init(s)
  s = s == nil and 0.01 or s
  if type(s) ~= "number" then error("LeakyReLU: negative_slope must be a number, got " .. mg._typename(s), 2) end
  self.negative_slope = s
end
function LeakyReLU:forward(x) return x:leaky_relu(self.negative_slope) end
function LeakyReLU:extra_repr() return fmt("negative_slope=%g", self.negative_slope) end

local Sigmoid = class("Sigmoid")
function Sigmoid:forward(x) return x:sigmoid() end
local Tanh = class("Tanh")
function Tanh:forward(x) return x:tanh() end
-- GELU(): the exact x * Phi(x) (PyTorch's approximate = "none")
local GELU = class("GELU")
function GELU:forward(x) return x:gelu() end

-- SiLU(): x * sigmoid(x); Softplus(): log(1 + exp(x)) (beta = 1)
local SiLU = class("SiLU")
function SiLU:forward(x) return x * x:sigmoid() end
local Softplus = class("Softplus")
function Softplus:forward(x) return x:softplus() end

local function dim_init(who)
  return function(self, dim)
    if math.type(dim) ~= "integer" then
      error(who .. ": dim must be given as an integer (e.g. " .. who .. "(-1)), got " .. tostring(dim), 3)
    end
    self.dim = dim
  end
end
local function dim_repr(self) return "dim=" .. self.dim end
local Softmax = class("Softmax")
Softmax.init = dim_init("Softmax")
function Softmax:forward(x) return mg.softmax(x, self.dim) end
Softmax.extra_repr = dim_repr
local LogSoftmax = class("LogSoftmax")
LogSoftmax.init = dim_init("LogSoftmax")
function LogSoftmax:forward(x) return mg.log_softmax(x, self.dim) end
LogSoftmax.extra_repr = dim_repr

local Identity = class("Identity")
Identity.__tensor_input = nil  -- passes anything through, as PyTorch
function Identity:forward(x, ...) return x, ... end

---------------------------------------------------------------------------------------------
-- loss modules: thin wrappers over the loss plugins (mg.loss), PyTorch's class names
---------------------------------------------------------------------------------------------

local LOSSES = {
  MSELoss = "mse", L1Loss = "l1", SmoothL1Loss = "smooth_l1", HuberLoss = "huber",
  CrossEntropyLoss = "cross_entropy", NLLLoss = "nll", BCELoss = "bce",
  BCEWithLogitsLoss = "bce_with_logits", KLDivLoss = "kl_div",
}
for cname, plugin in pairs(LOSSES) do
  local C = class(cname)
  -- e.g. nn.CrossEntropyLoss({reduction = "sum", label_smoothing = 0.1}); crit(pred, target)
  function C:init(opts)
    if opts ~= nil and type(opts) ~= "table" then
      error(fmt("%s: options must be a table, got %s", cname, mg._typename(opts)), 3)
    end
    local copy = {}
    for k, v in pairs(opts or {}) do copy[k] = v end
    self.options = copy
    self.loss = mg.loss(plugin, opts)
  end
  function C:forward(pred, target) return self.loss(pred, target) end
  function C:extra_repr()
    local keys = {}
    for k in pairs(self.options) do keys[#keys + 1] = k end
    table.sort(keys)
    for i, k in ipairs(keys) do keys[i] = k .. "=" .. tostring(self.options[k]) end
    return concat(keys, ", ")
  end
end
