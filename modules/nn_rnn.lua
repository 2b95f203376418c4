-- mg.nn recurrent layers (chunk of mg.nn; modules/nn.lua loads first): LSTM, GRU.
local mg = ...
local nn = mg.nn
local H = nn._h
local fmt, concat, sqrt = string.format, table.concat, math.sqrt
local is_tensor, shapestr, check_opts, posint = H.is_tensor, H.shapestr, H.check_opts, H.posint
local new_param, class, init = H.new_param, H.class, nn.init

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
  if not is_tensor(x) then error(fmt("%s: expected an input tensor, got %s", who, mg._typename(x)), 3) end
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
    error("LSTM: the initial state must be a table {h0, c0}, got " .. mg._typename(hx), 2)
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
    error("GRU: the initial state must be a tensor h0, got " .. mg._typename(h0), 2)
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
