-- mg.nn: modules over the compiled core (PyTorch's torch.nn semantics, 1-based Lua names).
-- A module is a table whose metatable records, in assignment order, the child modules and
-- parameters assigned to it as fields; parameters are tensors with requires_grad set when
-- assigned (or registered with :register_parameter), buffers are registered explicitly.
local mg = ...
local nn = {}

local fmt, concat, floor, sqrt = string.format, table.concat, math.floor, math.sqrt

---------------------------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------------------------

local function is_tensor(v)
  if type(v) ~= "userdata" then return false end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name == "moongrad.Tensor"
end
nn.is_tensor = is_tensor

local function is_module(v) return type(v) == "table" and rawget(v, "__mg") ~= nil end
nn.is_module = is_module

local function shapestr(t)
  if is_tensor(t) then t = t:shape() end
  return "{" .. concat(t, ",") .. "}"
end

local function no_grad(fn, ...)
  if mg.no_grad then return mg.no_grad(fn, ...) end
  return fn(...)
end

-- 1,234,567
local function thousands(n)
  local s = tostring(floor(n))
  local r = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (r:gsub("^,", ""))
end

local function boolstr(b) return b and "true" or "false" end

local function check_opts(who, opts, names)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(fmt("%s: options must be a table, got %s", who, type(opts)), 3) end
  local ok = {}
  for _, n in ipairs(names) do ok[n] = true end
  for k in pairs(opts) do
    if not ok[k] then
      error(fmt("%s: unknown option '%s' (accepted: %s)", who, tostring(k), concat(names, ", ")), 3)
    end
  end
  return opts
end

local function posint(who, what, v)
  if type(v) ~= "number" or v ~= floor(v) or v < 1 or v >= 2^53 then
    error(fmt("%s: %s must be a positive integer, got %s", who, what, tostring(v)), 3)
  end
  return floor(v)
end

-- a size given as a number or a pair: returns {a, b}
local function pair(who, what, v, minv)
  local p
  if type(v) == "number" then p = { v, v }
  elseif type(v) == "table" and #v == 2 then p = { v[1], v[2] }
  else error(fmt("%s: %s must be a number or a pair {h, w}, got %s", who, what, tostring(v)), 3) end
  for i = 1, 2 do
    if type(p[i]) ~= "number" or p[i] ~= floor(p[i]) or p[i] < minv then
      error(fmt("%s: %s must be integers >= %d, got %s", who, what, minv, tostring(p[i])), 3)
    end
    p[i] = floor(p[i])
  end
  return p
end
local function pairstr(p) return "(" .. p[1] .. ", " .. p[2] .. ")" end

local function new_param(shape, dtype)
  return mg.empty(shape, { dtype = dtype or "float32" })
end

---------------------------------------------------------------------------------------------
-- init (in place, no autodiff; PyTorch's torch.nn.init)
---------------------------------------------------------------------------------------------

local init = {}
nn.init = init

local function fans(t, who)
  local d = t:dim()
  if d < 2 then
    error(fmt("%s: fan in and fan out need a tensor with at least 2 dims, got %s", who, shapestr(t)), 3)
  end
  local rf = 1
  for i = 3, d do rf = rf * t:size(i) end
  return t:size(2) * rf, t:size(1) * rf
end
init.calculate_fan_in_and_fan_out = function(t) return fans(t, "calculate_fan_in_and_fan_out") end

-- gain for a nonlinearity (PyTorch's calculate_gain)
function init.calculate_gain(nonlinearity, param)
  nonlinearity = nonlinearity or "leaky_relu"
  if nonlinearity == "linear" or nonlinearity == "sigmoid" or nonlinearity:match("^conv") then return 1
  elseif nonlinearity == "tanh" then return 5 / 3
  elseif nonlinearity == "relu" then return sqrt(2)
  elseif nonlinearity == "leaky_relu" then
    local s = param == nil and 0.01 or param
    return sqrt(2 / (1 + s * s))
  elseif nonlinearity == "selu" then return 3 / 4
  end
  error("calculate_gain: unknown nonlinearity '" .. tostring(nonlinearity) .. "'", 2)
end

function init.uniform_(t, a, b)
  return no_grad(function() return t:uniform_(a or 0, b or 1) end)
end
function init.normal_(t, mean, std)
  return no_grad(function() return t:normal_(mean or 0, std or 1) end)
end
function init.constant_(t, v) return no_grad(function() return t:fill_(v) end) end
function init.zeros_(t) return no_grad(function() return t:fill_(0) end) end
function init.ones_(t) return no_grad(function() return t:fill_(1) end) end

local function kaiming_std(t, o, who)
  o = o or {}
  local fan_in, fan_out = fans(t, who)
  local mode = o.mode or "fan_in"
  if mode ~= "fan_in" and mode ~= "fan_out" then
    error(fmt("%s: mode must be \"fan_in\" or \"fan_out\", got %s", who, tostring(mode)), 3)
  end
  local fan = mode == "fan_in" and fan_in or fan_out
  local gain = init.calculate_gain(o.nonlinearity or "leaky_relu", o.a or 0)
  return gain / sqrt(fan)
end
-- kaiming_uniform_(t [, {a = 0, mode = "fan_in", nonlinearity = "leaky_relu"}])
function init.kaiming_uniform_(t, o)
  local bound = sqrt(3) * kaiming_std(t, o, "kaiming_uniform_")
  return init.uniform_(t, -bound, bound)
end
function init.kaiming_normal_(t, o)
  return init.normal_(t, 0, kaiming_std(t, o, "kaiming_normal_"))
end
-- xavier_uniform_(t [, gain = 1])
function init.xavier_uniform_(t, gain)
  local fi, fo = fans(t, "xavier_uniform_")
  local a = (gain or 1) * sqrt(6 / (fi + fo))
  return init.uniform_(t, -a, a)
end
function init.xavier_normal_(t, gain)
  local fi, fo = fans(t, "xavier_normal_")
  return init.normal_(t, 0, (gain or 1) * sqrt(2 / (fi + fo)))
end

---------------------------------------------------------------------------------------------
-- Module
---------------------------------------------------------------------------------------------

local Module = { __classname = "Module" }
nn.Module = Module

-- record children and parameters in assignment order
local function inst_newindex(self, k, v)
  local reg = rawget(self, "__mg")
  if v ~= nil and reg and (type(k) == "string" or math.type(k) == "integer") then
    local name = tostring(k)
    if not reg.kind[name] then
      if is_module(v) then
        reg.kind[name] = "module"; reg.order[#reg.order + 1] = name
      elseif is_tensor(v) and v.requires_grad then
        reg.kind[name] = "param"; reg.order[#reg.order + 1] = name
      end
    end
  end
  rawset(self, k, v)
end

local function get(self, name)
  local v = rawget(self, name)
  if v == nil then
    local i = tonumber(name)
    if i then v = rawget(self, i) end
  end
  return v
end

local function inst_call(self, ...) return self:forward(...) end
local function inst_tostring(self) return self:__repr(true) end
local function inst_len(self) return rawlen(self) end

local function make_class(name, parent)
  local C = { __classname = name }
  C.__imt = { __index = C, __newindex = inst_newindex, __call = inst_call,
              __tostring = inst_tostring, __len = inst_len, __name = "moongrad.nn." .. name }
  return setmetatable(C, {
    __index = parent,
    __call = function(cls, ...) return cls:new(...) end,
    __tostring = function() return "class " .. name end,
  })
end

-- local Net = mg.nn.Module:extend("Net"); function Net:init(...) end; function Net:forward(x) end
function Module:extend(name)
  if type(self) ~= "table" or not rawget(self, "__imt") then
    error("extend: call it on a class, e.g. mg.nn.Module:extend(\"Net\")", 2)
  end
  if name ~= nil and type(name) ~= "string" then
    error("extend: the class name must be a string, got " .. type(name), 2)
  end
  return make_class(name or "Module", self)
end

Module.__imt = { __index = Module, __newindex = inst_newindex, __call = inst_call,
                 __tostring = inst_tostring, __len = inst_len, __name = "moongrad.nn.Module" }
setmetatable(Module, { __call = function(cls, ...) return cls:new(...) end })

function Module:new(...)
  local obj = setmetatable({}, self.__imt)
  rawset(obj, "__mg", { order = {}, kind = {} })
  rawset(obj, "training", true)
  local init_fn = self.init
  if init_fn then init_fn(obj, ...) end
  return obj
end

function Module:init() end
function Module:forward()
  error(fmt("%s: forward is not implemented (define %s:forward)", self.__classname, self.__classname), 2)
end
function Module:extra_repr() return "" end

local function reg_name(self, who, name)
  if not is_module(self) then error(who .. ": call it as a method (m:" .. who .. "(...))", 3) end
  if type(name) ~= "string" and math.type(name) ~= "integer" then
    error(fmt("%s: name must be a string, got %s", who, type(name)), 3)
  end
  name = tostring(name)
  if name:find("%.") or name == "" then error(fmt("%s: bad name '%s' (non-empty, no dots)", who, name), 3) end
  return name
end

local function register(self, name, kind, v)
  local reg = rawget(self, "__mg")
  if not reg.kind[name] then reg.order[#reg.order + 1] = name end
  reg.kind[name] = kind
  local i = tonumber(name)
  if i and math.type(i) == "integer" and tostring(i) == name then rawset(self, i, v) else rawset(self, name, v) end
  return v
end

-- m:register_parameter(name, t): t becomes a parameter (requires_grad set)
function Module:register_parameter(name, t)
  name = reg_name(self, "register_parameter", name)
  if t ~= nil and not is_tensor(t) then
    error(fmt("register_parameter: '%s' must be a tensor, got %s", name, type(t)), 2)
  end
  if t ~= nil and not t.requires_grad then t:requires_grad_(true) end
  return register(self, name, "param", t)
end
-- m:register_buffer(name, t [, persistent = true]): state that is not trained (in state_dict)
function Module:register_buffer(name, t, persistent)
  name = reg_name(self, "register_buffer", name)
  if t ~= nil and not is_tensor(t) then
    error(fmt("register_buffer: '%s' must be a tensor, got %s", name, type(t)), 2)
  end
  register(self, name, persistent == false and "tmpbuf" or "buffer", t)
  return t
end
-- m:add_module(name, child)
function Module:add_module(name, m)
  name = reg_name(self, "add_module", name)
  if m ~= nil and not is_module(m) then error(fmt("add_module: '%s' must be a module, got %s", name, type(m)), 2) end
  return register(self, name, "module", m)
end

-- iterate own entries of one kind (or a set of kinds), in order: name, value
local function check_self(self)
  if not is_module(self) then
    error("nn: module methods are called with ':' on a module instance (m:parameters()), got a " ..
          type(self), 4)
  end
end

local function own(self, kinds)
  check_self(self)
  local reg = rawget(self, "__mg")
  local out = {}
  for _, name in ipairs(reg.order) do
    local k = reg.kind[name]
    if kinds[k] then
      local v = get(self, name)
      if v ~= nil and ((k == "module" and is_module(v)) or (k ~= "module" and is_tensor(v))) then
        out[#out + 1] = { name, v }
      end
    end
  end
  return out
end

local K_MODULE, K_PARAM = { module = true }, { param = true }
local K_BUFFER, K_PERSIST = { buffer = true, tmpbuf = true }, { param = true, buffer = true }

local function iter(list)
  local i = 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return e[1], e[2] end
  end
end

-- all modules in pre-order (self first) with their dotted names; each module once
-- a plain Lua table of modules as a field is a classic mistake (their parameters would not be
-- trained): say so once per class and field
local warned = {}
local function warn_plain_tables(m)
  for k, v in pairs(m) do
    if type(v) == "table" and getmetatable(v) == nil and k ~= "__mg" then
      local holds = false
      for _, x in pairs(v) do if is_module(x) then holds = true; break end end
      local key = m.__classname .. "." .. tostring(k)
      if holds and not warned[key] then
        warned[key] = true
        io.stderr:write(fmt("moongrad: warning: %s is a plain Lua table holding modules; their parameters " ..
                            "are not registered (use mg.nn.ModuleList{...})\n", key))
      end
    end
  end
end

local function named_modules_list(self)
  check_self(self)
  local out, seen = {}, {}
  local function walk(m, prefix)
    if seen[m] then return end
    seen[m] = true
    warn_plain_tables(m)
    out[#out + 1] = { prefix, m }
    for _, e in ipairs(own(m, K_MODULE)) do
      walk(e[2], prefix == "" and e[1] or prefix .. "." .. e[1])
    end
  end
  walk(self, "")
  return out
end

-- entries of the given kinds over the whole tree (PyTorch order: each module's own entries,
-- modules in pre-order); tensors shared between modules are listed once
local function collect(self, kinds, dedupe)
  local out, seen = {}, {}
  for _, e in ipairs(named_modules_list(self)) do
    local prefix, m = e[1], e[2]
    for _, p in ipairs(own(m, kinds)) do
      if not (dedupe and seen[p[2]]) then
        seen[p[2]] = true
        out[#out + 1] = { prefix == "" and p[1] or prefix .. "." .. p[1], p[2] }
      end
    end
  end
  return out
end

function Module:parameters()
  local out = {}
  for i, e in ipairs(collect(self, K_PARAM, true)) do out[i] = e[2] end
  return out
end
function Module:named_parameters() return iter(collect(self, K_PARAM, true)) end
function Module:buffers()
  local out = {}
  for i, e in ipairs(collect(self, K_BUFFER, true)) do out[i] = e[2] end
  return out
end
function Module:named_buffers() return iter(collect(self, K_BUFFER, true)) end
function Module:children()
  local out = {}
  for i, e in ipairs(own(self, K_MODULE)) do out[i] = e[2] end
  return out
end
function Module:named_children() return iter(own(self, K_MODULE)) end
function Module:modules()
  local out = {}
  for i, e in ipairs(named_modules_list(self)) do out[i] = e[2] end
  return out
end
function Module:named_modules() return iter(named_modules_list(self)) end

-- number of parameter elements (trainable only when `trainable` is true)
function Module:num_parameters(trainable)
  local n = 0
  for _, p in ipairs(self:parameters()) do
    if not trainable or p.requires_grad then n = n + p:numel() end
  end
  return n
end

function Module:train(mode)
  check_self(self)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode and true or false) end
  return self
end
function Module:eval() check_self(self); return self:train(false) end

-- fn(m) on every module, children before parents (PyTorch's apply)
function Module:apply(fn)
  for _, c in ipairs(self:children()) do c:apply(fn) end
  fn(self)
  return self
end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do
    if p.grad ~= nil then
      if p.zero_grad then p:zero_grad() else no_grad(function() p.grad:zero_() end) end
    end
  end
  return self
end

-- m:requires_grad_([bool]): freeze or unfreeze every parameter
function Module:requires_grad_(b)
  if b == nil then b = true end
  for _, p in ipairs(self:parameters()) do p:requires_grad_(b) end
  return self
end

-- convert parameters and floating buffers to dtype (new tensors: build optimizers after this)
function Module:to(dtype)
  if dtype ~= "float32" and dtype ~= "float64" and dtype ~= "float" and dtype ~= "double" then
    error("to: dtype must be \"float32\" or \"float64\", got " .. tostring(dtype), 2)
  end
  if dtype == "float" then dtype = "float32" elseif dtype == "double" then dtype = "float64" end
  local done = {}          -- a tensor shared by several modules (tied weights) stays shared
  for _, m in ipairs(self:modules()) do
    local reg = rawget(m, "__mg")
    for _, name in ipairs(reg.order) do
      local kind, v = reg.kind[name], get(m, name)
      if kind ~= "module" and is_tensor(v) and v:dtype() ~= dtype and not (reg.keep or {})[name] then
        local nv = done[v]
        if not nv then
          nv = no_grad(function() return v:to(dtype) end)
          if kind == "param" then
            if nv.is_leaf == false or nv.requires_grad then nv = nv:detach() end
            nv:requires_grad_(v.requires_grad)
          end
          done[v] = nv
        end
        local i = tonumber(name)
        if i and math.type(i) == "integer" and rawget(m, i) ~= nil then rawset(m, i, nv) else rawset(m, name, nv) end
      end
    end
  end
  return self
end
function Module:double() return self:to("float64") end
function Module:float() return self:to("float32") end

-- flat table: dotted name -> tensor (parameters and persistent buffers, detached)
function Module:state_dict()
  local sd = {}
  for _, e in ipairs(collect(self, K_PERSIST, false)) do
    local t = e[2]
    sd[e[1]] = t.detach and t:detach() or t
  end
  return sd
end

-- names of the state_dict in order (handy for printing)
function Module:state_dict_keys()
  local out = {}
  for i, e in ipairs(collect(self, K_PERSIST, false)) do out[i] = e[1] end
  return out
end

-- nested tables (as mg.load may return) -> flat dotted names
local function flatten_sd(sd, prefix, out)
  for k, v in pairs(sd) do
    local name = prefix and (prefix .. "." .. tostring(k)) or tostring(k)
    if type(v) == "table" and not is_tensor(v) then flatten_sd(v, name, out) else out[name] = v end
  end
  return out
end

-- m:load_state_dict(sd [, strict = true]): copies values in place; returns
-- {missing = {...}, unexpected = {...}}. Strict: missing or unexpected keys are errors.
-- A shape mismatch is always an error.
function Module:load_state_dict(sd, strict)
  if type(sd) ~= "table" then
    error("load_state_dict: expected a table of tensors, got " .. type(sd), 2)
  end
  if strict == nil then strict = true end
  local flat = flatten_sd(sd, nil, {})
  local entries = collect(self, K_PERSIST, false)
  local expected, missing, unexpected, errs = {}, {}, {}, {}
  for _, e in ipairs(entries) do
    expected[e[1]] = true
    if flat[e[1]] == nil then missing[#missing + 1] = e[1] end
  end
  for k in pairs(flat) do if not expected[k] then unexpected[#unexpected + 1] = k end end
  table.sort(unexpected)
  if strict and (#missing > 0 or #unexpected > 0) then
    local parts = {}
    if #missing > 0 then parts[#parts + 1] = "missing keys: " .. concat(missing, ", ") end
    if #unexpected > 0 then parts[#parts + 1] = "unexpected keys: " .. concat(unexpected, ", ") end
    errs[#errs + 1] = concat(parts, "; ")
  end
  for _, e in ipairs(entries) do
    local src, dst = flat[e[1]], e[2]
    if src ~= nil then
      if type(src) == "number" and dst:numel() == 1 then
        -- a scalar saved as a number (e.g. a counter)
      elseif not is_tensor(src) then
        errs[#errs + 1] = fmt("'%s' is a %s, expected a tensor", e[1], type(src))
      else
        local a, b = src:shape(), dst:shape()
        if concat(a, ",") ~= concat(b, ",") then
          errs[#errs + 1] = fmt("size mismatch for %s: checkpoint has %s, model has %s", e[1], shapestr(a), shapestr(b))
        end
      end
    end
  end
  if #errs > 0 then error("load_state_dict: " .. concat(errs, "; "), 2) end
  no_grad(function()
    for _, e in ipairs(entries) do
      local src, dst = flat[e[1]], e[2]
      if type(src) == "number" then dst:fill_(src)
      elseif src ~= nil and not rawequal(src, dst) then
        if src:dtype() ~= dst:dtype() then src = src:to(dst:dtype()) end
        dst:copy_(src)
      end
    end
  end)
  return { missing = missing, unexpected = unexpected }
end

-- readable tree, PyTorch's repr plus parameter counts (and a total line for containers)
function Module:__repr(top)
  local kids = own(self, K_MODULE)
  local extra = self:extra_repr()
  local head = self.__classname .. "("
  local nown = 0
  for _, e in ipairs(own(self, K_PARAM)) do nown = nown + e[2]:numel() end
  local s
  if #kids == 0 then
    s = head .. extra .. ")"
    if nown > 0 then s = s .. "  -- " .. thousands(nown) .. " params" end
  else
    local lines = { head .. extra }
    for _, e in ipairs(kids) do
      local sub = e[2]:__repr(false):gsub("\n", "\n  ")
      lines[#lines + 1] = "  (" .. e[1] .. "): " .. sub
    end
    lines[#lines + 1] = ")"
    s = concat(lines, "\n")
  end
  if top and #kids > 0 then
    local total, train = 0, 0
    for _, p in ipairs(self:parameters()) do
      total = total + p:numel()
      if p.requires_grad then train = train + p:numel() end
    end
    s = s .. "\nTotal parameters: " .. thousands(total)
    if train ~= total then s = s .. " (" .. thousands(train) .. " trainable)" end
  end
  return s
end

---------------------------------------------------------------------------------------------
-- layers
---------------------------------------------------------------------------------------------

local function class(name) local C = Module:extend(name); nn[name] = C; return C end

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
  if type(s) ~= "number" then error("LeakyReLU: negative_slope must be a number, got " .. type(s), 2) end
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
function Identity:forward(x, ...) return x, ... end

-- Sequential{m1, m2, ...} or Sequential(m1, m2, ...): children named "1", "2", ...
local Sequential = class("Sequential")
function Sequential:init(...)
  local n, list = select("#", ...), table.pack(...)
  if n == 1 and type(list[1]) == "table" and not is_module(list[1]) then
    list = list[1]
    n = #list
    for k in pairs(list) do
      if math.type(k) ~= "integer" or k < 1 or k > n then
        error(fmt("%s: expected a list of modules, got a table with key '%s'", self.__classname, tostring(k)), 3)
      end
    end
  end
  for i = 1, n do
    if not is_module(list[i]) then
      error(fmt("%s: element %d is a %s, expected a module", self.__classname, i, type(list[i])), 3)
    end
    self:add_module(tostring(i), list[i])
  end
end
function Sequential:forward(x, ...)
  local out = table.pack(x, ...)
  for _, m in ipairs(self:children()) do out = table.pack(m(table.unpack(out, 1, out.n))) end
  return table.unpack(out, 1, out.n)
end
-- seq:add(m): append a module
function Sequential:add(m)
  if not is_module(m) then error("Sequential:add: expected a module, got " .. type(m), 2) end
  self:add_module(tostring(#self:children() + 1), m)
  return self
end
Sequential.append = Sequential.add

-- ModuleList{...}: an indexable list of modules whose parameters are registered
local ModuleList = class("ModuleList")
ModuleList.init, ModuleList.add, ModuleList.append = Sequential.init, Sequential.add, Sequential.add
function ModuleList:forward()
  error("ModuleList: has no forward; iterate over it with ipairs", 2)
end

---------------------------------------------------------------------------------------------
-- recurrent layers
---------------------------------------------------------------------------------------------

local function rnn_init(self, who, gates, inf, hidden, opts)
  local o = check_opts(who, opts, { "num_layers", "bias", "batch_first", "dropout", "bidirectional", "dtype" })
  self.input_size = posint(who, "input_size", inf)
  self.hidden_size = posint(who, "hidden_size", hidden)
  self.num_layers = posint(who, "num_layers", o.num_layers or 1)
  self.bias = o.bias ~= false
  self.batch_first = o.batch_first == true
  self.bidirectional = o.bidirectional == true
  self.dropout = o.dropout or 0
  if type(self.dropout) ~= "number" or not (self.dropout >= 0 and self.dropout <= 1) then
    error(fmt("%s: dropout must be in [0, 1], got %s", who, tostring(self.dropout)), 3)
  end
  self.gates = gates
  local D = self.bidirectional and 2 or 1
  local bound = 1 / sqrt(hidden)
  local function U(shape) return init.uniform_(new_param(shape, o.dtype), -bound, bound):requires_grad_(true) end
  -- PyTorch's order and names: per layer, per direction (suffix _reverse): w_ih, w_hh, b_ih, b_hh
  for l = 0, self.num_layers - 1 do
    local lin = l == 0 and inf or hidden * D
    for d = 1, D do
      local sfx = l .. (d == 2 and "_reverse" or "")
      self:register_parameter("weight_ih_l" .. sfx, U({ gates * hidden, lin }))
      self:register_parameter("weight_hh_l" .. sfx, U({ gates * hidden, hidden }))
      if self.bias then
        self:register_parameter("bias_ih_l" .. sfx, U({ gates * hidden }))
        self:register_parameter("bias_hh_l" .. sfx, U({ gates * hidden }))
      end
    end
  end
end

local function rnn_repr(self)
  local s = fmt("%d, %d", self.input_size, self.hidden_size)
  if self.num_layers ~= 1 then s = s .. ", num_layers=" .. self.num_layers end
  if not self.bias then s = s .. ", bias=false" end
  if self.batch_first then s = s .. ", batch_first=true" end
  if self.dropout ~= 0 then s = s .. fmt(", dropout=%g", self.dropout) end
  if self.bidirectional then s = s .. ", bidirectional=true" end
  return s
end

-- checks input and initial states; returns x as (T, B, I), whether unbatched, and the states
-- (each (num_layers * directions, B, H))
local function rnn_prepare(self, who, x, states, nstate)
  if not is_tensor(x) then error(fmt("%s: expected an input tensor, got %s", who, type(x)), 3) end
  local unbatched = x:dim() == 2
  if x:dim() ~= 3 and not unbatched then
    error(fmt("%s: expected input (seq, batch, %d)%s or (seq, %d), got %s", who, self.input_size,
              self.batch_first and " (batch first)" or "", self.input_size, shapestr(x)), 3)
  end
  if x:size(-1) ~= self.input_size then
    error(fmt("%s: input %s has %d features, expected %d", who, shapestr(x), x:size(-1), self.input_size), 3)
  end
  if x:size(1) == 0 then error(fmt("%s: input %s has no time steps", who, shapestr(x)), 3) end
  if unbatched then x = x:unsqueeze(2)
  elseif self.batch_first then x = x:transpose(1, 2) end
  local B, H = x:size(2), self.hidden_size
  local LD = self.num_layers * (self.bidirectional and 2 or 1)
  local want = unbatched and { LD, H } or { LD, B, H }
  local out = {}
  for k = 1, nstate do
    local s = states and states[k]
    if s == nil then
      s = mg.zeros({ LD, B, H }, { dtype = x:dtype() })
    else
      if not is_tensor(s) or concat(s:shape(), ",") ~= concat(want, ",") then
        error(fmt("%s: initial state %d must have shape %s, got %s", who, k, shapestr(want),
                  is_tensor(s) and shapestr(s) or type(s)), 3)
      end
      if unbatched then s = s:unsqueeze(2) end
    end
    out[k] = s
  end
  return x, unbatched, out
end

-- Runs every layer and direction. Time steps are kept as separate (B, features) tensors all
-- the way (projections per step, outputs stacked once at the end): the backward of a select
-- from one big (T, ...) tensor would cost a full-size gradient per step.
-- cell(w, x_t, state) -> new state (a list whose first entry is h); w holds the direction's
-- weights. Returns y (as the input's layout) and, per state entry, the final (L*D, B, H).
local function rnn_run(self, x, unbatched, st, cell)
  local T, D = x:size(1), self.bidirectional and 2 or 1
  local input = {}
  for t = 1, T do input[t] = x:select(1, t) end
  local finals = {}
  for k = 1, #st do finals[k] = {} end
  for l = 0, self.num_layers - 1 do
    local outs = {}
    for d = 1, D do
      local sfx = l .. (d == 2 and "_reverse" or "")
      local w = { ih = self["weight_ih_l" .. sfx], bih = self["bias_ih_l" .. sfx],
                  hh = self["weight_hh_l" .. sfx], bhh = self["bias_hh_l" .. sfx] }
      local idx = l * D + d
      local state = {}
      for k = 1, #st do state[k] = st[k]:select(1, idx) end
      local o = {}
      local first, last, step = 1, T, 1
      if d == 2 then first, last, step = T, 1, -1 end
      for t = first, last, step do
        state = cell(w, input[t], state)
        o[t] = state[1]
      end
      for k = 1, #st do finals[k][idx] = state[k] end
      outs[d] = o
    end
    local y = outs[1]
    if D == 2 then
      y = {}
      for t = 1, T do y[t] = mg.cat({ outs[1][t], outs[2][t] }, 2) end
    end
    if l < self.num_layers - 1 and self.dropout > 0 and self.training then
      for t = 1, T do y[t] = mg.dropout(y[t], self.dropout, true) end
    end
    input = y
  end
  local y = mg.stack(input, 1)                                   -- (T, B, D*H)
  if unbatched then y = y:squeeze(2)
  elseif self.batch_first then y = y:transpose(1, 2) end
  local res = {}
  for k = 1, #st do
    res[k] = mg.stack(finals[k], 1)
    if unbatched then res[k] = res[k]:squeeze(2) end
  end
  return y, res
end

-- LSTM(input_size, hidden_size [, {num_layers = 1, bias = true, batch_first = false, dropout = 0,
-- bidirectional = false, dtype}]); lstm(x [, {h0, c0}]) -> output (seq, batch, D*hidden),
-- {h_n, c_n} (each (num_layers*D, batch, hidden)).
-- Gates in PyTorch's order i, f, g, o: c' = f*c + i*g, h' = o*tanh(c')
local LSTM = class("LSTM")
function LSTM:init(inf, hidden, opts) rnn_init(self, "LSTM", 4, inf, hidden, opts) end
function LSTM:forward(x, hx)
  if hx ~= nil and type(hx) ~= "table" then
    error("LSTM: the initial state must be a table {h0, c0}, got " .. type(hx), 2)
  end
  local xs, unbatched, st = rnn_prepare(self, "LSTM", x, hx, 2)
  local H = self.hidden_size
  local y, fin = rnn_run(self, xs, unbatched, st, function(w, xt, s)
    local g = mg.linear(xt, w.ih, w.bih) + mg.linear(s[1], w.hh, w.bhh)
    local i = g:narrow(2, 1, H):sigmoid()
    local f = g:narrow(2, H + 1, H):sigmoid()
    local gg = g:narrow(2, 2 * H + 1, H):tanh()
    local o = g:narrow(2, 3 * H + 1, H):sigmoid()
    local c = f * s[2] + i * gg
    return { o * c:tanh(), c }
  end)
  return y, fin
end
LSTM.extra_repr = rnn_repr

-- GRU(input_size, hidden_size [, opts as LSTM]); gru(x [, h0]) -> output, h_n
-- gates r, z, n: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h
local GRU = class("GRU")
function GRU:init(inf, hidden, opts) rnn_init(self, "GRU", 3, inf, hidden, opts) end
function GRU:forward(x, h0)
  if h0 ~= nil and not is_tensor(h0) then
    error("GRU: the initial state must be a tensor h0, got " .. type(h0), 2)
  end
  local xs, unbatched, st = rnn_prepare(self, "GRU", x, { h0 }, 1)
  local H = self.hidden_size
  local y, fin = rnn_run(self, xs, unbatched, st, function(w, xt, s)
    local a, b, h = mg.linear(xt, w.ih, w.bih), mg.linear(s[1], w.hh, w.bhh), s[1]
    local r = (a:narrow(2, 1, H) + b:narrow(2, 1, H)):sigmoid()
    local z = (a:narrow(2, H + 1, H) + b:narrow(2, H + 1, H)):sigmoid()
    local n = (a:narrow(2, 2 * H + 1, H) + r * b:narrow(2, 2 * H + 1, H)):tanh()
    return { n + z * (h - n) }
  end)
  return y, fin[1]
end
GRU.extra_repr = rnn_repr

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
      error(fmt("%s: options must be a table, got %s", cname, type(opts)), 3)
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

---------------------------------------------------------------------------------------------
-- utilities
---------------------------------------------------------------------------------------------

-- a tensor made a parameter (requires_grad set); for user modules
function nn.Parameter(t)
  if not is_tensor(t) then error("Parameter: expected a tensor, got " .. type(t), 2) end
  if not t.requires_grad then t:requires_grad_(true) end
  return t
end

local function param_list(params, who)
  if is_tensor(params) then return { params } end
  if is_module(params) then return params:parameters() end
  if type(params) ~= "table" then
    error(fmt("%s: expected a list of tensors, a tensor or a module, got %s", who, type(params)), 3)
  end
  for i, p in ipairs(params) do
    if not is_tensor(p) then error(fmt("%s: element %d is a %s, expected a tensor", who, i, type(p)), 3) end
  end
  return params
end

-- clip_grad_norm(params, max_norm [, norm_type = 2]): scales every gradient by
-- max_norm / (total + 1e-6) when the total norm exceeds max_norm; returns the total norm
-- (the norm of the per-gradient norms, as PyTorch's clip_grad_norm_). norm_type may be math.huge.
function nn.clip_grad_norm(params, max_norm, norm_type)
  local ps = param_list(params, "clip_grad_norm")
  if type(max_norm) ~= "number" or max_norm ~= max_norm or max_norm < 0 then
    error("clip_grad_norm: max_norm must be a non-negative number, got " .. tostring(max_norm), 2)
  end
  norm_type = norm_type or 2
  if type(norm_type) ~= "number" or not (norm_type > 0) then
    error("clip_grad_norm: norm_type must be a positive number or math.huge, got " .. tostring(norm_type), 2)
  end
  local grads = {}
  for _, p in ipairs(ps) do if p.grad ~= nil then grads[#grads + 1] = p.grad end end
  if #grads == 0 then return 0 end
  local total
  if norm_type == math.huge then
    total = 0
    for _, g in ipairs(grads) do total = math.max(total, g:abs():max():item()) end
  else
    local acc = 0
    for _, g in ipairs(grads) do acc = acc + g:norm(norm_type):item() ^ norm_type end
    total = acc ^ (1 / norm_type)
  end
  local coef = max_norm / (total + 1e-6)
  if coef < 1 then
    no_grad(function() for _, g in ipairs(grads) do g:mul_(coef) end end)
  end
  return total
end
nn.clip_grad_norm_ = nn.clip_grad_norm

-- clip_grad_value(params, v): clamps every gradient to [-v, v]
function nn.clip_grad_value(params, v)
  local ps = param_list(params, "clip_grad_value")
  if type(v) ~= "number" or v < 0 then
    error("clip_grad_value: clip value must be a non-negative number, got " .. tostring(v), 2)
  end
  no_grad(function()
    for _, p in ipairs(ps) do if p.grad ~= nil then p.grad:clamp_(-v, v) end end
  end)
end

return nn
