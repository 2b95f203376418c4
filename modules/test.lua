-- mg.test: a small TAP producer for tests and for users' own checks.
--   local T = mg.test()
--   T:ok(cond, name)              T:eq(got, want, name)
--   T:near(got, want, tol, name)  numbers, tensors or nested tables; |got-want| <= tol*(1+|want|)
--   T:raises(fn, text, name)      fn() must fail with a message containing text (plain match)
--   T:gradcheck(name, fn, inputs [, opts])  mg.gradcheck passes; its report is shown on failure
--   T:raises_each(cases)          {fn, text, name} per case (text nil: fn must succeed);
--                                 returns how many cases expected an error
--   T:diag(msg)                   T:done()  prints the plan and exits (status 1 on failure)
local mg = ...
local Tester = {}
Tester.__index = Tester

local function flatten(v, out)
  if type(v) == "number" then out[#out + 1] = v
  elseif type(v) == "table" then for _, x in ipairs(v) do flatten(x, out) end
  elseif type(v) == "userdata" and v.totable then
    if v:dim() == 0 then out[#out + 1] = v:item() else flatten(v:totable(), out) end
  else error("near: cannot compare a " .. type(v), 3) end
  return out
end

local function shape_of(v)
  if type(v) == "userdata" and v.shape then return table.concat(v:shape(), "x") end
  if type(v) == "table" then
    local s, t = {}, v
    while type(t) == "table" do s[#s + 1] = #t; t = t[1] end
    return table.concat(s, "x")
  end
  return ""
end

function Tester:diag(msg)
  for line in (tostring(msg) .. "\n"):gmatch("([^\n]*)\n") do io.write("# ", line, "\n") end
end

function Tester:ok(cond, name)
  self.n = self.n + 1
  if not cond then self.failed = self.failed + 1 end
  io.write(cond and "ok " or "not ok ", self.n, " - ", name or "", "\n")
  io.flush()
  return cond
end

function Tester:eq(got, want, name)
  local c = got == want
  self:ok(c, name)
  if not c then self:diag(("  got %s, want %s"):format(tostring(got), tostring(want))) end
  return c
end

function Tester:near(got, want, tol, name)
  tol = tol or 1e-6
  local ok_, a = pcall(flatten, got, {})
  local ok2, b = pcall(flatten, want, {})
  if not (ok_ and ok2) then self:ok(false, name); self:diag("  " .. tostring(ok_ and b or a)); return false end
  if #a ~= #b then
    self:ok(false, name)
    self:diag(("  %d values (%s) vs %d expected (%s)"):format(#a, shape_of(got), #b, shape_of(want)))
    return false
  end
  for i = 1, #a do
    local x, y = a[i], b[i]
    local same = (x ~= x and y ~= y) or x == y or math.abs(x - y) <= tol * (1 + math.abs(y))
    if not same then
      self:ok(false, name)
      self:diag(("  element %d: got %.10g, want %.10g (tol %g)"):format(i, x, y, tol))
      return false
    end
  end
  return self:ok(true, name)
end

function Tester:raises(fn, text, name)
  local ok_, err = pcall(fn)
  local c = not ok_ and tostring(err):find(text, 1, true) ~= nil
  self:ok(c, name or ("raises: " .. text))
  if not c then
    if ok_ then self:diag("  no error was raised") else self:diag("  error was: " .. tostring(err)) end
    self:diag("  expected it to contain: " .. text)
  end
  return c
end

function Tester:raises_each(cases)
  local n = 0
  for _, c in ipairs(cases) do
    if c[2] == nil then
      local ok_, err = pcall(c[1])
      self:ok(ok_, c[3])
      if not ok_ then self:diag("  error was: " .. tostring(err)) end
    else
      n = n + 1
      self:raises(c[1], c[2], c[3])
      if os.getenv("MISUSE_SHOW") then self:diag("  " .. tostring((select(2, pcall(c[1]))))) end
    end
  end
  return n
end

function Tester:gradcheck(name, fn, inputs, opts)
  local ok_, report = mg.gradcheck(fn, inputs, opts)
  self:ok(ok_, "gradcheck " .. name)
  if not ok_ then self:diag(report) end
  return ok_
end

function Tester:done()
  io.write("1..", self.n, "\n")
  io.flush()
  if self.failed > 0 then os.exit(1) end
  os.exit(0)
end

return setmetatable({}, {__call = function() return setmetatable({n = 0, failed = 0}, Tester) end})
