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
  if type(opts) ~= "table" then error(fmt("%s: options must be a table, got %s", who, mg._typename(opts)), 3) end
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

-- m.forward(x) instead of m:forward(x): every class's forward (and extra_repr) checks its
-- self; the forward of a built-in layer (C.__tensor_input) also checks that x is a tensor
local GUARDED = { forward = true, extra_repr = true }
local function guard(C, k, f)
  local self_error, who = mg._self_error, C.__classname .. ":" .. k
  return function(...)
    local self, x = ...
    if not is_module(self) then self_error(who, "m", k, "an nn module", select("#", ...), self) end
    if k == "forward" and rawget(C, "__tensor_input") and not is_tensor(x) then
      error(fmt("%s: argument #1: expected a tensor, got %s", who, select("#", ...) < 2 and "no value" or mg._typename(x)), 2)
    end
    return f(...)
  end
end

local function class_newindex(C, k, v)
  if GUARDED[k] and type(v) == "function" then v = guard(C, k, v) end
  rawset(C, k, v)
end

local function make_class(name, parent)
  local C = { __classname = name }
  C.__imt = { __index = C, __newindex = inst_newindex, __call = inst_call,
              __tostring = inst_tostring, __len = inst_len, __name = "moongrad.nn." .. name }
  return setmetatable(C, {
    __index = parent,
    __newindex = class_newindex,
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
    error("extend: the class name must be a string, got " .. mg._typename(name), 2)
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
    error(fmt("%s: name must be a string, got %s", who, mg._typename(name)), 3)
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
    error(fmt("register_parameter: '%s' must be a tensor, got %s", name, mg._typename(t)), 2)
  end
  if t ~= nil and not t.requires_grad then t:requires_grad_(true) end
  return register(self, name, "param", t)
end
-- m:register_buffer(name, t [, persistent = true]): state that is not trained (in state_dict)
function Module:register_buffer(name, t, persistent)
  name = reg_name(self, "register_buffer", name)
  if t ~= nil and not is_tensor(t) then
    error(fmt("register_buffer: '%s' must be a tensor, got %s", name, mg._typename(t)), 2)
  end
  register(self, name, persistent == false and "tmpbuf" or "buffer", t)
  return t
end
-- m:add_module(name, child)
function Module:add_module(name, m)
  name = reg_name(self, "add_module", name)
  if m ~= nil and not is_module(m) then error(fmt("add_module: '%s' must be a module, got %s", name, mg._typename(m)), 2) end
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
      if holds and not warned[key] and io and io.stderr then
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
  if type(fn) ~= "function" then error("apply: expected a function of a module, got " .. mg._typename(fn), 2) end
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
    error("load_state_dict: expected a table of tensors, got " .. mg._typename(sd), 2)
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
-- containers
---------------------------------------------------------------------------------------------

-- m.parameters() instead of m:parameters(): say so (new, extend: called on classes)
mg._guard_methods(Module, "nn.Module", "m", "an nn module", is_module, { new = true, extend = true, init = true })

-- built-in classes: their forward takes a tensor first (containers and Identity opt out)
local function class(name)
  local C = Module:extend(name)
  rawset(C, "__tensor_input", true)
  nn[name] = C
  return C
end

-- Sequential{m1, m2, ...} or Sequential(m1, m2, ...): children named "1", "2", ...
local Sequential = class("Sequential")
Sequential.__tensor_input = nil  -- its first child checks
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
      error(fmt("%s: element %d is a %s, expected a module", self.__classname, i, mg._typename(list[i])), 3)
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
  if not is_module(m) then
    error("Sequential:add: expected a module, got " .. mg._typename(m) ..
          (m == nil and " (did you call seq.add(m) instead of seq:add(m)?)" or ""), 2)
  end
  self:add_module(tostring(#self:children() + 1), m)
  return self
end
mg._guard_methods(Sequential, "Sequential", "m", "an nn module", is_module, { init = true, forward = true })
Sequential.append = Sequential.add

-- ModuleList{...}: an indexable list of modules whose parameters are registered
local ModuleList = class("ModuleList")
ModuleList.__tensor_input = nil
ModuleList.init, ModuleList.add, ModuleList.append = Sequential.init, Sequential.add, Sequential.add
function ModuleList:forward()
  error("ModuleList: has no forward; iterate over it with ipairs", 2)
end
---------------------------------------------------------------------------------------------
-- utilities
---------------------------------------------------------------------------------------------

-- a tensor made a parameter (requires_grad set); for user modules
function nn.Parameter(t)
  if not is_tensor(t) then error("Parameter: expected a tensor, got " .. mg._typename(t), 2) end
  if not t.requires_grad then t:requires_grad_(true) end
  return t
end

local function param_list(params, who)
  if is_tensor(params) then return { params } end
  if is_module(params) then return params:parameters() end
  if type(params) ~= "table" then
    error(fmt("%s: expected a list of tensors, a tensor or a module, got %s", who, mg._typename(params)), 3)
  end
  for i, p in ipairs(params) do
    if not is_tensor(p) then error(fmt("%s: element %d is a %s, expected a tensor", who, i, mg._typename(p)), 3) end
  end
  return params
end

-- clip_grad_norm(params, max_norm [, norm_type = 2]): scales every gradient by
-- max_norm / (total + 1e-6) when the total norm exceeds max_norm; returns the total norm
-- (the norm of the per-gradient norms, as PyTorch's clip_grad_norm_). norm_type may be math.huge;
-- error_if_nonfinite = true makes a NaN or infinite total an error.
function nn.clip_grad_norm(params, max_norm, norm_type, error_if_nonfinite)
  local ps = param_list(params, "clip_grad_norm")
  if type(max_norm) ~= "number" or max_norm ~= max_norm or max_norm < 0 then
    error("clip_grad_norm: max_norm must be a non-negative number, got " .. tostring(max_norm), 2)
  end
  norm_type = norm_type or 2
  if type(norm_type) ~= "number" or not (norm_type > 0) then
    error("clip_grad_norm: norm_type must be a positive number or math.huge, got " .. tostring(norm_type), 2)
  end
  if error_if_nonfinite ~= nil and type(error_if_nonfinite) ~= "boolean" then
    error("clip_grad_norm: error_if_nonfinite must be a boolean, got " .. mg._typename(error_if_nonfinite), 2)
  end
  local grads = {}
  for _, p in ipairs(ps) do if p.grad ~= nil then grads[#grads + 1] = p.grad end end
  if #grads == 0 then return 0 end
  local total
  if norm_type == math.huge then
    total = 0
    for _, g in ipairs(grads) do
      local m = g:abs():max():item()
      if m ~= m or m > total then total = m end
      if total ~= total then break end
    end
  else
    local acc = 0
    for _, g in ipairs(grads) do acc = acc + g:norm(norm_type):item() ^ norm_type end
    total = acc ^ (1 / norm_type)
  end
  if error_if_nonfinite and (total ~= total or total == math.huge) then
    error(fmt("clip_grad_norm: the total norm of order %g of the gradients is non-finite (%s), so they " ..
              "cannot be clipped", norm_type, tostring(total)), 2)
  end
  -- as PyTorch: an infinite total scales by 0, a NaN total spreads NaN
  local coef = max_norm / (total + 1e-6)
  if coef < 1 or coef ~= coef then
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

-- helpers shared with the other nn chunks (modules/nn_layers.lua, modules/nn_rnn.lua); private
nn._h = {
  is_tensor = is_tensor, is_module = is_module, shapestr = shapestr, no_grad = no_grad, boolstr = boolstr,
  check_opts = check_opts, posint = posint, pair = pair, pairstr = pairstr, new_param = new_param,
  class = class,
}

return nn
