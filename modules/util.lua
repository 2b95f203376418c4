-- mg.util: progress bars, CSV metric logging and SVG plots of metric curves.
-- Plain Lua over the standard library; uses mg.clock and mg.isatty when the core has them.
local mg = ...
local U = {}

local floor, max, min, huge = math.floor, math.max, math.min, math.huge
local fmt, concat = string.format, table.concat

local function now()
  if type(mg) == "table" and type(mg.clock) == "function" then return mg.clock() end
  return os.clock()
end

-- obj.method(...) instead of obj:method(...). mg._guard_methods(cls, who, var, what, is_self)
-- wraps each public method of cls (a name not starting with "_") so that a call whose self
-- fails is_self raises "who:name: expected <what> as self (did you call var.name(...)
-- instead of var:name(...)?), got <type>"; names in skip are left alone. The other Lua
-- modules use it too.
local function typename(n, v)
  if n == 0 then return "no value" end
  local mt = getmetatable(v)
  if type(mt) == "table" and type(mt.__name) == "string" then
    if mt.__name ~= "moongrad.Tensor" then return mt.__name end
    return pcall(v.dim, v) and "tensor" or "closed tensor"
  end
  return type(v)
end
-- the type of v as messages name it: "tensor", "closed tensor", a metatable's __name, else type(v)
function mg._typename(v) return typename(1, v) end

function mg._self_error(op, var, name, what, n, v)
  error(fmt("%s: expected %s as self (did you call %s.%s(...) instead of %s:%s(...)?), got %s", op, what, var, name,
            var, name, typename(n, v)), 3)
end

function mg._guard_methods(cls, who, var, what, is_self, skip)
  if type(cls) ~= "table" or type(is_self) ~= "function" then
    error("_guard_methods: expected a class table and a predicate (internal helper)", 2)
  end
  local self_error = mg._self_error
  local names = {}
  for k, f in pairs(cls) do
    if type(k) == "string" and type(f) == "function" and not k:find("^_") and not (skip and skip[k]) then
      names[#names + 1] = k
    end
  end
  for _, k in ipairs(names) do
    local f = cls[k]
    cls[k] = function(...)
      if not is_self((...)) then self_error(who .. ":" .. k, var, k, what, select("#", ...), (...)) end
      return f(...)
    end
  end
end

local function isnan(v) return v ~= v end
local function finite(v) return type(v) == "number" and v == v and v ~= huge and v ~= -huge end

-- a metric value as a Lua value: numbers stay, tensors with :item() become numbers
local function scalar(v)
  if type(v) == "number" or type(v) == "string" or type(v) == "boolean" then return v end
  local ok, r = pcall(function() return v:item() end)
  if ok and type(r) == "number" then return r end
  return tostring(v)
end

-- keys of a table in a stable order: well-known keys (epoch, step, ..., loss) first, then the rest sorted
local LEADING = { "epoch", "step", "iter", "batch", "time", "loss" }
local function ordered_keys(t, who)
  local keys, seen = {}, {}
  for _, k in ipairs(LEADING) do
    if t[k] ~= nil then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error(fmt("%s: expected string keys in a metrics table, got a %s key", who, mg._typename(k)), 3)
    end
    if not seen[k] then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

---------------------------------------------------------------------------------------------
-- progress
---------------------------------------------------------------------------------------------

local function hms(s)
  if not finite(s) or s < 0 then return "?" end
  s = floor(s + 0.5)
  local h, m = s // 3600, (s % 3600) // 60
  if h > 0 then return fmt("%d:%02d:%02d", h, m, s % 60) end
  return fmt("%02d:%02d", m, s % 60)
end

local function shortnum(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v == floor(v) and math.abs(v) < 1e15 then return fmt("%d", v) end
  return fmt("%.4g", v)
end

local function format_info(info)
  if info == nil then return nil end
  if type(info) == "string" then return info end
  if type(info) ~= "table" then return tostring(info) end
  local parts = {}
  for _, k in ipairs(ordered_keys(info, "progress")) do
    local v = scalar(info[k])
    parts[#parts + 1] = k .. "=" .. (type(v) == "number" and shortnum(v) or tostring(v))
  end
  return concat(parts, ", ")
end

local function detect_tty(out)
  if io == nil then return false end
  local fd = (out == io.stdout and 1) or (out == io.stderr and 2) or nil
  if not fd then return false end                -- a file or a user object: never a terminal
  if type(mg) == "table" and type(mg.isatty) == "function" then
    local ok, r = pcall(mg.isatty, fd)
    if ok then return r and true or false end
  end
  local term = os.getenv("TERM")
  return term ~= nil and term ~= "" and term ~= "dumb"
end

-- without io (an embedding sandbox): whole lines through the global print, which the host
-- may redefine; a live bar's "\r" redraws collapse to the last state of each line
local function print_writer()
  local buf = ""
  return {
    write = function(_, s)
      buf = buf .. s
      for line in buf:gmatch("([^\n]*)\n") do print((line:match("([^\r]*)$"))) end
      buf = buf:match("([^\n]*)$"):match("([^\r]*)$")
    end,
  }
end

local Bar = {}
Bar.__index = Bar
local PROGRESS_OPTS = { label = true, width = true, out = true, tty = true, interval = true, min_interval = true,
                        redraw = true }

-- mg.util.progress(total [, {label=, width=, out=, tty=, interval=, min_interval=}])
--   total: number of items (nil when unknown); width: characters of the bar (default 25);
--   out: anything with :write (default io.stderr); tty: force live (true) or plain (false)
--   output; plain output prints a line at each 10% of progress when at least min_interval
--   seconds (default 1) have passed since the last one, a line every `interval` seconds
--   (default 30) in between, and a final line: a fast loop prints only its final line.
function U.progress(total, opts)
  if total ~= nil and (type(total) ~= "number" or total < 0 or isnan(total)) then
    error("progress: total must be a non-negative number or nil, got " .. tostring(total), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("progress: options must be a table, got " .. mg._typename(opts), 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not PROGRESS_OPTS[k] then
      error(fmt("progress: unknown option '%s' (accepted: label, width, out, tty, interval, min_interval, redraw)",
                tostring(k)), 2)
    end
  end
  for _, k in ipairs({ "interval", "min_interval", "redraw" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or not (v >= 0)) then
      error(fmt("progress: '%s' must be a non-negative number of seconds, got %s", k, tostring(v)), 2)
    end
  end
  local out = opts.out or (io and io.stderr) or print_writer()
  if type(out) ~= "userdata" and type(out) ~= "table" then
    error("progress: 'out' must be a file or an object with :write, got " .. mg._typename(out), 2)
  end
  local width = opts.width or 25
  if type(width) ~= "number" or not (width >= 1 and width < 1e4) then
    error("progress: 'width' must be a positive number, got " .. tostring(width), 2)
  end
  local tty = opts.tty
  if tty == nil then tty = detect_tty(out) end
  local t0 = now()
  local self = setmetatable({
    total = total, n = 0, label = opts.label and tostring(opts.label) or nil,
    width = floor(width), out = out, tty = tty, t0 = t0,
    interval = opts.interval or 30, min_interval = opts.min_interval or 1, redraw = opts.redraw or 0.1,
    last_draw = -huge, last_line = t0, next_pct = 10, finished = false, linelen = 0,
  }, Bar)
  if tty then self:_draw(t0) end
  return self
end

function Bar:_write(s)
  self.out:write(s)
  if self.out.flush then self.out:flush() end
end

-- the common text: "label  45% 450/1000 [00:12<00:15, 37.50 it/s] loss=0.12"
function Bar:_stats(t, bar)
  local el = t - self.t0
  local rate = el > 0 and self.n / el or nil
  local parts = {}
  if self.label then parts[#parts + 1] = self.label end
  local total = self.total
  if total and total > 0 then
    local frac = min(self.n / total, 1)
    parts[#parts + 1] = fmt("%3d%%", floor(frac * 100))
    if bar then parts[#parts + 1] = bar(frac) end
    parts[#parts + 1] = fmt("%s/%s", shortnum(self.n), shortnum(total))
  else
    parts[#parts + 1] = shortnum(self.n)
  end
  local timing
  local r = rate and (rate >= 1 and fmt("%.2f it/s", rate) or fmt("%.2f s/it", 1 / max(rate, 1e-12))) or "? it/s"
  if self.finished or not (total and rate and rate > 0) then
    timing = fmt("[%s, %s]", hms(el), r)
  else
    timing = fmt("[%s<%s, %s]", hms(el), hms(max(total - self.n, 0) / rate), r)
  end
  parts[#parts + 1] = timing
  local s = concat(parts, " ")
  if self.info then s = s .. " " .. self.info end
  return s
end

local BLOCKS = { "▏", "▎", "▍", "▌", "▋", "▊", "▉" }
function Bar:_draw(t)
  local w = self.width
  local line = self:_stats(t, function(frac)
    local cells = frac * w
    local full = floor(cells)
    local s = string.rep("█", full)
    if full < w then
      local part = floor((cells - full) * 8)
      s = s .. (part > 0 and BLOCKS[part] or " ") .. string.rep(" ", w - full - 1)
    end
    return "|" .. s .. "|"
  end)
  local len = utf8.len(line) or #line
  local pad = self.linelen > len and string.rep(" ", self.linelen - len) or ""
  self.linelen = len
  self:_write("\r" .. line .. pad)
  self.last_draw = t
end

function Bar:_plain(t)
  self:_write(self:_stats(t) .. "\n")
  self.last_line = t
end

function Bar:_tick(force)
  local t = now()
  if self.tty then
    if force or t - self.last_draw >= self.redraw then self:_draw(t) end
    return
  end
  local due = false
  if self.total and self.total > 0 then
    local pct = self.n / self.total * 100
    if pct >= self.next_pct then
      due = t - self.last_line >= self.min_interval
      while self.next_pct <= pct do self.next_pct = self.next_pct + 10 end
    end
  end
  if t - self.last_line >= self.interval and self.n > 0 then due = true end
  if due and (not self.total or self.n < self.total) then self:_plain(t) end
end

-- bar:update(n [, info]): n items done so far; info is a table of metrics or a string
function Bar:update(n, info)
  if type(n) ~= "number" or isnan(n) then
    error("progress:update: expected a number of items done, got " .. tostring(n), 2)
  end
  if self.finished then return self end
  self.n = n
  if info ~= nil then self.info = format_info(info) end
  if self.total and n >= self.total then return self:done() end
  self:_tick(false)
  return self
end

-- bar:advance([k [, info]]): k more items done (default 1)
function Bar:advance(k, info)
  k = k or 1
  if type(k) ~= "number" or isnan(k) then
    error("progress:advance: expected a number of items, got " .. tostring(k), 2)
  end
  return self:update(self.n + k, info)
end

-- bar:done([info]): final redraw (or final line) and newline; idempotent
function Bar:done(info)
  if self.finished then return self end
  if info ~= nil then self.info = format_info(info) end
  self.finished = true
  local t = now()
  if self.tty then self:_draw(t); self:_write("\n") else self:_plain(t) end
  return self
end
-- bar:print(...): a line of text above a live bar (clears it, prints, redraws)
function Bar:print(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  local line = concat(parts, "\t", 1, parts.n)
  if self.tty and not self.finished then
    self:_write("\r" .. string.rep(" ", self.linelen) .. "\r" .. line .. "\n")
    self.linelen = 0
    self:_draw(now())
  else
    self:_write(line .. "\n")
  end
  return self
end

Bar.close = Bar.done
mg._guard_methods(Bar, "progress", "bar", "a progress bar", function(v) return getmetatable(v) == Bar end)
Bar.__close = function(self) self:done() end
Bar.__tostring = function(self) return self:_stats(now()) end

---------------------------------------------------------------------------------------------
-- Logger
---------------------------------------------------------------------------------------------

-- the shortest decimal that reads back as the same double
local function numstr(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "nan" end
  if v == huge then return "inf" elseif v == -huge then return "-inf" end
  if v == floor(v) and math.abs(v) < 2^53 then return fmt("%d", v) end
  for p = 6, 17 do
    local s = fmt("%." .. p .. "g", v)
    if tonumber(s) == v then return s end
  end
  return fmt("%.17g", v)
end

local function csvcell(v)
  if v == nil then return "" end
  v = scalar(v)
  if type(v) == "number" then return numstr(v) end
  local s = tostring(v)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- split one CSV record (RFC 4180 quoting) from text starting at pos; returns fields, next pos
local function csvrecord(text, pos)
  local fields, n = {}, #text
  while true do
    local c = text:sub(pos, pos)
    if c == '"' then
      local buf, i = {}, pos + 1
      while true do
        local q = text:find('"', i, true)
        if not q then buf[#buf + 1] = text:sub(i); pos = n + 1; break end
        buf[#buf + 1] = text:sub(i, q - 1)
        if text:sub(q + 1, q + 1) == '"' then buf[#buf + 1] = '"'; i = q + 2
        else pos = q + 1; break end
      end
      fields[#fields + 1] = concat(buf)
      local e = text:find("[,\r\n]", pos) or n + 1
      pos = e
    else
      local e = text:find("[,\r\n]", pos) or n + 1
      fields[#fields + 1] = text:sub(pos, e - 1)
      pos = e
    end
    local d = text:sub(pos, pos)
    if d == "," then pos = pos + 1
    else
      if d == "\r" then pos = pos + 1 end
      if text:sub(pos, pos) == "\n" then pos = pos + 1 end
      return fields, pos
    end
  end
end

local function csvread(text)
  local rows, pos = {}, 1
  while pos <= #text do
    local r
    r, pos = csvrecord(text, pos)
    if not (#r == 1 and r[1] == "") then rows[#rows + 1] = r end
  end
  return rows
end
U._csvread = csvread

local Logger = {}
Logger.__index = Logger

-- mg.util.Logger(path [, fields]): appends metric rows to a CSV file. Columns are `fields`
-- when given, else the existing file's header, else the keys of the first :log row
-- (epoch/step/iter/batch/time first, the rest sorted). The header is written once.
function U.Logger(path, fields)
  if type(path) ~= "string" then
    error("Logger: expected a file path, got " .. mg._typename(path), 2)
  end
  if fields ~= nil then
    if type(fields) ~= "table" or #fields == 0 then
      error("Logger: fields must be a non-empty array of column names", 2)
    end
    local seen = {}
    for i, f in ipairs(fields) do
      if type(f) ~= "string" then error(fmt("Logger: field %d is a %s, expected a string", i, mg._typename(f)), 2) end
      if seen[f] then error(fmt("Logger: field '%s' given twice", f), 2) end
      seen[f] = true
    end
  end
  local self = setmetatable({ path = path }, Logger)
  local f = io.open(path, "rb")
  if f then
    local text = f:read("a") or ""
    f:close()
    if #text > 0 then
      local header = csvrecord(text, 1)
      if fields then
        if concat(header, ",") ~= concat(fields, ",") then
          error(fmt("Logger: %s has columns (%s) but fields are (%s)", path,
                    concat(header, ", "), concat(fields, ", ")), 2)
        end
      end
      self.columns = header
      self.header_written = true
      self.needs_newline = text:sub(-1) ~= "\n"
    end
  end
  if not self.columns and fields then self.columns = { table.unpack(fields) } end
  local fh, err = io.open(path, "ab")
  if not fh then error("Logger: cannot open " .. tostring(err), 2) end
  self.fh = fh
  return self
end

-- logger:log{epoch = 1, loss = 0.5}: appends one row (missing fields are empty cells)
function Logger:log(row)
  if type(row) ~= "table" then error("Logger:log: expected a table of values, got " .. mg._typename(row), 2) end
  if not self.fh then error("Logger:log: " .. self.path .. " is closed", 2) end
  if not self.columns then self.columns = ordered_keys(row, "Logger:log") end
  local cols = self.columns
  local index = {}
  for i, c in ipairs(cols) do index[c] = i end
  for k in pairs(row) do
    if not index[k] then
      error(fmt("Logger:log: field '%s' is not a column of %s (columns: %s)",
                tostring(k), self.path, concat(cols, ", ")), 2)
    end
  end
  local buf = {}
  if self.needs_newline then buf[1] = "\n"; self.needs_newline = false end
  if not self.header_written then
    local h = {}
    for i, c in ipairs(cols) do h[i] = csvcell(c) end
    buf[#buf + 1] = concat(h, ",") .. "\n"
    self.header_written = true
  end
  local cells = {}
  for i, c in ipairs(cols) do cells[i] = csvcell(row[c]) end
  buf[#buf + 1] = concat(cells, ",") .. "\n"
  self.fh:write(concat(buf))
  self.fh:flush()
  return self
end

function Logger:close()
  if self.fh then self.fh:close(); self.fh = nil end
end
mg._guard_methods(Logger, "Logger", "logger", "a Logger", function(v) return getmetatable(v) == Logger end)
Logger.__close = Logger.close
Logger.__gc = Logger.close
Logger.__tostring = function(self)
  return fmt("Logger(%s: %s)", self.path, self.columns and concat(self.columns, ", ") or "no columns yet")
end

---------------------------------------------------------------------------------------------
-- plot
---------------------------------------------------------------------------------------------

-- "nice" axis ticks (Heckbert): about n ticks covering [lo, hi]
local function nicenum(x, round)
  local e = floor(math.log(x, 10))
  local f = x / 10 ^ e
  local nf
  if round then
    nf = (f < 1.5 and 1) or (f < 3 and 2) or (f < 7 and 5) or 10
  else
    nf = (f <= 1 and 1) or (f <= 2 and 2) or (f <= 5 and 5) or 10
  end
  return nf * 10 ^ e
end

local function ticks(lo, hi, n, minstep)
  local range = nicenum(hi - lo, false)
  local step = nicenum(range / (n - 1), true)
  if minstep and step < minstep then step = minstep end
  if not finite(step) or step <= 0 then return { lo, hi }, lo, hi, 0 end  -- e.g. hi - lo overflows
  local t0, t1 = floor(lo / step) * step, math.ceil(hi / step) * step
  local digits = max(-floor(math.log(step, 10) + 1e-9), 0)
  local out = {}
  local k = 0
  while true do
    local v = t0 + k * step
    if v > t1 + step * 1e-6 or k > 100 then break end     -- k: a guard against rounding
    if math.abs(v) < step * 1e-9 then v = 0 end
    out[#out + 1] = v
    k = k + 1
  end
  return out, t0, t1, digits
end
U._ticks = ticks

local function ticklabel(v, digits)
  local a = math.abs(v)
  if a ~= 0 and (a >= 1e6 or a < 1e-4) then
    local s = fmt("%.3g", v)
    return s
  end
  return fmt("%." .. digits .. "f", v)
end

local function xml(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local COLORS = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" }

local function cellnum(s)
  if s == nil then return nil end
  s = s:match("^%s*(.-)%s*$")
  local v = tonumber(s)
  if v == nil or not finite(v) then return nil end   -- empty, nan, inf, text: a gap
  return v
end

-- ticks for log10 values in [lo, hi]: decades, or 1-2-5 steps when the range is narrow
local function logticks(lo, hi)
  local a, b = floor(lo + 1e-9), math.ceil(hi - 1e-9)
  if b <= a then b = a + 1 end
  local out = {}
  if b - a >= 2 then
    local step = math.max(1, math.ceil((b - a) / 8))
    local v = a
    while v < hi + step - 1e-9 do out[#out + 1] = v; v = v + step end
    return out, out[1], out[#out]
  end
  for k = a, b do
    for _, m in ipairs({ 1, 2, 5 }) do
      local v = k + math.log(m, 10)
      if v >= lo - 1e-9 and v <= hi + 1e-9 then out[#out + 1] = v end
    end
  end
  if #out < 3 then                 -- less than a decade: nice linear values, log-placed
    local lin = ticks(10 ^ lo, 10 ^ hi, 5)
    out = {}
    for _, v in ipairs(lin) do if v > 0 then out[#out + 1] = math.log(v, 10) end end
    if #out < 2 then return ticks(lo, hi, 5) end
  end
  return out, math.min(lo, out[1]), math.max(hi, out[#out])
end

-- the [lo, hi] range of finite values, padded when degenerate
local function padrange(lo, hi)
  if lo == huge then return 0, 1 end
  if lo == hi then
    local d = lo == 0 and 1 or math.abs(lo) * 0.1
    return lo - d, hi + d
  end
  return lo, hi
end

-- how much room a series needs: its range, or its magnitude when constant (0 fits anywhere)
local function extent(s)
  if s.hi > s.lo then return s.hi - s.lo end
  if s.lo == 0 then return huge end
  return math.abs(s.lo)
end

-- group series so that each one spans at least a tenth of its panel's range
local function group_series(series, mode)
  if mode == "single" then return { series } end
  if mode == "separate" then
    local g = {}
    for i, s in ipairs(series) do g[i] = { s } end
    return g
  end
  local groups = {}
  for _, s in ipairs(series) do
    local placed = false
    for _, g in ipairs(groups) do
      local lo, hi = s.lo, s.hi
      for _, o in ipairs(g) do lo, hi = min(lo, o.lo), max(hi, o.hi) end
      local span, ok = hi - lo, true
      for _, o in ipairs(g) do
        if extent(o) < span / 10 then ok = false end
      end
      if extent(s) < span / 10 then ok = false end
      if ok then g[#g + 1] = s; placed = true; break end
    end
    if not placed then groups[#groups + 1] = { s } end
  end
  return groups
end

-- mg.util.plot(csv_path, svg_path [, {x=, y=, title=, width=, height=, panels=, logy=}])
--   x: the x column (default "epoch" when present, else the first column); y: a column name
--   or a list (default every other column with numbers); panels: "auto" (series of very
--   different scales get their own panel), "single" or "separate"; logy: log-scale y axes
--   (values <= 0 become gaps). Returns svg_path.
function U.plot(csv_path, svg_path, opts)
  if type(csv_path) ~= "string" then error("plot: expected a CSV path, got " .. mg._typename(csv_path), 2) end
  if type(svg_path) ~= "string" then error("plot: expected an SVG output path, got " .. mg._typename(svg_path), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("plot: options must be a table, got " .. mg._typename(opts), 2) end
  opts = opts or {}
  local accepted = { x = true, y = true, title = true, width = true, height = true, panels = true, logy = true }
  for k in pairs(opts) do
    if not accepted[k] then
      error(fmt("plot: unknown option '%s' (accepted: x, y, title, width, height, panels, logy)", tostring(k)), 2)
    end
  end
  for _, k in ipairs({ "width", "height" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or not (v >= 150 and v <= 20000)) then
      error(fmt("plot: '%s' must be a number of pixels in [150, 20000], got %s", k, tostring(v)), 2)
    end
  end
  local f, err = io.open(csv_path, "rb")
  if not f then error("plot: cannot open " .. tostring(err), 2) end
  local text = f:read("a") or ""
  f:close()
  local rows = csvread(text)
  if #rows == 0 then error("plot: " .. csv_path .. " is empty (no header)", 2) end
  local header = table.remove(rows, 1)
  local colidx = {}
  for i, c in ipairs(header) do colidx[c] = colidx[c] or i end
  local function need(name)
    if type(name) ~= "string" then error("plot: column names must be strings, got " .. mg._typename(name), 3) end
    if not colidx[name] then
      error(fmt("plot: column '%s' not in %s (columns: %s)", name, csv_path, concat(header, ", ")), 3)
    end
    return colidx[name]
  end
  local xname = opts.x or (colidx.epoch and "epoch") or header[1]
  local xi = need(xname)
  local ynames = opts.y
  if type(ynames) == "string" then ynames = { ynames } end
  if ynames == nil then
    ynames = {}
    for i, c in ipairs(header) do
      if i ~= xi then
        for _, r in ipairs(rows) do
          if cellnum(r[i]) then ynames[#ynames + 1] = c; break end
        end
      end
    end
    if #ynames == 0 then
      error(fmt("plot: no numeric column to plot besides '%s' in %s (columns: %s)", xname, csv_path,
                concat(header, ", ")), 2)
    end
  elseif type(ynames) ~= "table" or #ynames == 0 then
    error("plot: 'y' must be a column name or a non-empty list of column names", 2)
  end
  local logy = opts.logy and true or false
  local panels = opts.panels or "auto"
  if panels ~= "auto" and panels ~= "single" and panels ~= "separate" then
    error("plot: 'panels' must be \"auto\", \"single\" or \"separate\", got " .. tostring(panels), 2)
  end

  local xnum = 0
  for _, r in ipairs(rows) do if cellnum(r[xi]) then xnum = xnum + 1 end end
  if #rows > 0 and xnum == 0 then
    error(fmt("plot: x column '%s' of %s holds no numbers", xname, csv_path), 2)
  end

  -- data
  local xlo, xhi = huge, -huge
  local series = {}
  for k, name in ipairs(ynames) do
    local yi = need(name)
    local s = { name = name, color = COLORS[(k - 1) % #COLORS + 1], pts = {}, lo = huge, hi = -huge }
    for _, r in ipairs(rows) do
      local x, y = cellnum(r[xi]), cellnum(r[yi])
      if logy and y then y = y > 0 and math.log(y, 10) or nil end
      if x then
        if y then
          s.pts[#s.pts + 1] = { x, y }
          s.lo, s.hi = min(s.lo, y), max(s.hi, y)
          xlo, xhi = min(xlo, x), max(xhi, x)
        else
          s.pts[#s.pts + 1] = false     -- a gap
        end
      end
    end
    series[#series + 1] = s
  end
  local any = false
  for _, s in ipairs(series) do
    if s.lo <= s.hi then any = true end
  end
  local groups
  local with_data = {}
  for _, s in ipairs(series) do if s.lo <= s.hi then with_data[#with_data + 1] = s end end
  groups = group_series(with_data, panels)
  for _, s in ipairs(series) do          -- columns without data still get a legend entry
    if s.lo > s.hi then
      if #groups == 0 then groups[1] = {} end
      local g = groups[#groups]
      g[#g + 1] = s
    end
  end
  -- integer x values (epochs, steps) get integer ticks
  local xint = true
  for _, s in ipairs(series) do
    for _, pnt in ipairs(s.pts) do if pnt and pnt[1] ~= floor(pnt[1]) then xint = false end end
  end
  if xint and xlo == xhi then xlo, xhi = xlo - 1, xhi + 1 end
  xlo, xhi = padrange(xlo, xhi)
  local xt, x0, x1, xdig = ticks(xlo, xhi, 6, xint and 1 or nil)

  -- layout
  local W = opts.width or 720
  local PH = opts.height or 300
  local ML, MR, MT, MB = 80, 24, 48, 56
  local npan = #groups
  local H = MT + npan * PH + 12
  local pw = W - ML - MR
  local title = opts.title or (table.concat(ynames, ", ") .. " vs " .. xname)
  local o = {}
  local function w(...) o[#o + 1] = fmt(...) end
  w('<?xml version="1.0" encoding="UTF-8"?>\n')
  w('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
    'font-family="Helvetica, Arial, sans-serif" font-size="12">\n', W, H, W, H)
  w('<rect x="0" y="0" width="%d" height="%d" fill="white"/>\n', W, H)
  w('<text class="title" x="%.1f" y="28" text-anchor="middle" font-size="16" font-weight="bold">%s</text>\n',
    W / 2, xml(title))
  local function X(x) return ML + (x - x0) / (x1 - x0) * pw end
  -- long series: per pixel column keep the first, lowest, highest and last point (in order),
  -- which draws the same picture from a few thousand points
  for _, s in ipairs(series) do
    if #s.pts > 4 * pw then
      local out, bucket, col = {}, {}, nil
      local function flush()
        if #bucket == 0 then return end
        local lo, hi = bucket[1], bucket[1]
        for _, b in ipairs(bucket) do
          if b[2][2] < lo[2][2] then lo = b end
          if b[2][2] > hi[2][2] then hi = b end
        end
        local keep = { bucket[1], lo, hi, bucket[#bucket] }
        table.sort(keep, function(a, b) return a[1] < b[1] end)
        local last
        for _, b in ipairs(keep) do
          if b ~= last then out[#out + 1] = b[2]; last = b end
        end
        bucket = {}
      end
      for i, pnt in ipairs(s.pts) do
        if pnt then
          local c = floor(X(pnt[1]))
          if c ~= col then flush(); col = c end
          bucket[#bucket + 1] = { i, pnt }
        else
          flush(); col = nil
          out[#out + 1] = false
        end
      end
      flush()
      s.pts = out
    end
  end
  for p, g in ipairs(groups) do
    local top = MT + (p - 1) * PH
    local ph = PH - MB
    local lo, hi = huge, -huge
    for _, s in ipairs(g) do if s.lo <= s.hi then lo, hi = min(lo, s.lo), max(hi, s.hi) end end
    lo, hi = padrange(lo, hi)
    local yt, y0, y1, ydig
    if logy then
      if lo == hi then lo, hi = lo - 0.5, hi + 0.5 end
      yt, y0, y1 = logticks(lo, hi)
    else
      yt, y0, y1, ydig = ticks(lo, hi, 6)
    end
    local function Y(y) return top + ph - (y - y0) / (y1 - y0) * ph end
    w('<g class="panel" id="panel%d">\n', p)
    w('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>\n', ML, top, pw, ph)
    for _, v in ipairs(yt) do
      local yy = Y(v)
      w('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>\n', ML, yy, ML + pw, yy)
      w('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#444"/>\n', ML - 4, yy, ML, yy)
      w('<text class="ytick" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>\n',
        ML - 7, yy, logy and fmt("%g", tonumber(fmt("%.3g", 10 ^ v)) or 10 ^ v) or ticklabel(v, ydig))
    end
    for _, v in ipairs(xt) do
      local xx = X(v)
      w('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e5e5"/>\n', xx, top, xx, top + ph)
      w('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444"/>\n', xx, top + ph, xx, top + ph + 4)
      w('<text class="xtick" x="%.1f" y="%d" text-anchor="middle">%s</text>\n', xx, top + ph + 16,
        ticklabel(v, xdig))
    end
    w('<text class="xlabel" x="%.1f" y="%d" text-anchor="middle">%s</text>\n', ML + pw / 2, top + ph + 34,
      xml(xname))
    local names = {}
    for i, s in ipairs(g) do names[i] = s.name end
    local ylab = concat(names, ", ") .. (logy and " (log scale)" or "")
    w('<text class="ylabel" x="%d" y="%.1f" text-anchor="middle" transform="rotate(-90 %d %.1f)">%s</text>\n',
      16, top + ph / 2, 16, top + ph / 2, xml(ylab))
    -- series: one path each, gaps split it into sub-paths; isolated points get a dot
    for _, s in ipairs(g) do
      local d, pts, run = {}, s.pts, 0
      local dots = {}
      for i, pnt in ipairs(pts) do
        if pnt then
          d[#d + 1] = fmt("%s%.2f,%.2f", run == 0 and "M" or "L", X(pnt[1]), Y(pnt[2]))
          run = run + 1
          local nxt = pts[i + 1]
          if run == 1 and not nxt then dots[#dots + 1] = pnt end
        else
          run = 0
        end
      end
      w('<path class="series" data-name="%s" d="%s" fill="none" stroke="%s" stroke-width="1.8" ' ..
        'stroke-linejoin="round"/>\n', xml(s.name), concat(d, " "), s.color)
      for _, pnt in ipairs(dots) do
        w('<circle cx="%.2f" cy="%.2f" r="3" fill="%s"/>\n', X(pnt[1]), Y(pnt[2]), s.color)
      end
    end
    -- legend, top right inside the plot area
    local lw = 0
    for _, s in ipairs(g) do lw = max(lw, #s.name) end
    lw = lw * 7 + 40
    -- the corner whose box covers the fewest data points
    local lh = #g * 18 + 6
    local best, lx, ly = huge, nil, nil
    for _, c in ipairs({ { ML + pw - lw - 8, top + 8 }, { ML + pw - lw - 8, top + ph - lh - 8 },
                         { ML + 8, top + 8 }, { ML + 8, top + ph - lh - 8 } }) do
      local cnt = 0
      local function hit(px, py)
        if px >= c[1] - 4 and px <= c[1] + lw + 4 and py >= c[2] - 4 and py <= c[2] + lh + 4 then cnt = cnt + 1 end
      end
      for _, s in ipairs(g) do
        local pts = s.pts
        local k = max(1, math.min(16, 4000 // max(#pts, 1)))   -- samples along each segment
        for i, pnt in ipairs(pts) do
          if pnt then
            local px, py = X(pnt[1]), Y(pnt[2])
            hit(px, py)
            local q = pts[i + 1]
            if q then
              local qx, qy = X(q[1]), Y(q[2])
              for j = 1, k - 1 do hit(px + (qx - px) * j / k, py + (qy - py) * j / k) end
            end
          end
        end
      end
      if cnt < best then best, lx, ly = cnt, c[1], c[2] end
    end
    w('<g class="legend"><rect x="%.1f" y="%d" width="%d" height="%d" fill="white" fill-opacity="0.85" stroke="#bbb"/>\n',
      lx, ly, lw, lh)
    for i, s in ipairs(g) do
      local yy = ly + 3 + i * 18 - 9
      w('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2.5"/>\n', lx + 6, yy, lx + 28, yy, s.color)
      w('<text x="%.1f" y="%d" dominant-baseline="middle">%s%s</text>\n', lx + 34, yy, xml(s.name),
        s.lo > s.hi and " (no data)" or "")
    end
    w('</g>\n</g>\n')
  end
  if not any then
    w('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888">no data</text>\n', W / 2, MT + PH / 2)
  end
  w('</svg>\n')
  local out, err2 = io.open(svg_path, "wb")
  if not out then error("plot: cannot write " .. tostring(err2), 2) end
  out:write(concat(o))
  out:close()
  return svg_path
end

return U
