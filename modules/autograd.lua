-- mg.gradcheck: analytic gradients against central finite differences.
--   ok, report = mg.gradcheck(fn, inputs [, {eps = 1e-6, atol = 1e-5, rtol = 1e-3}])
-- fn(table.unpack(inputs)) returns a tensor; every input that requires grad is
-- checked, one Jacobian entry at a time. Use float64 inputs.
local mg = ...

local function flat_get(t, i)
  local shape = t:shape()
  local idx, r = {}, i - 1
  for d = #shape, 1, -1 do idx[d] = r % shape[d] + 1; r = r // shape[d] end
  return idx
end

function mg.gradcheck(fn, inputs, opts)
  if type(fn) ~= "function" then error("gradcheck: argument #1: expected a function, got " .. mg._typename(fn), 2) end
  if type(inputs) ~= "table" then error("gradcheck: argument #2: expected a table of inputs, got " .. mg._typename(inputs), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("gradcheck: argument #3: expected an options table, got " .. mg._typename(opts), 2) end
  opts = opts or {}
  for k, v in pairs(opts) do
    if k ~= "eps" and k ~= "atol" and k ~= "rtol" then
      error(("gradcheck: unknown option '%s' (accepted: eps, atol, rtol)"):format(tostring(k)), 2)
    end
    if type(v) ~= "number" or not (v >= 0 and v < math.huge) or (k == "eps" and v == 0) then
      error(("gradcheck: option '%s' must be a finite number >= 0 (eps > 0), got %s"):format(k, tostring(v)), 2)
    end
  end
  local eps, atol, rtol = opts.eps or 1e-6, opts.atol or 1e-5, opts.rtol or 1e-3
  local function eval()
    local out = mg.no_grad(fn, table.unpack(inputs))
    if type(out) ~= "userdata" then error("gradcheck: fn must return a tensor, got " .. mg._typename(out), 3) end
    return out:contiguous():view(-1):totable()
  end
  local y0 = fn(table.unpack(inputs))
  if type(y0) ~= "userdata" then error("gradcheck: fn must return a tensor, got " .. mg._typename(y0), 2) end
  local n_out = y0:numel()
  local report, worst = {}, 0
  for k, x in ipairs(inputs) do
    if type(x) == "userdata" and x.requires_grad then
      if x:dtype() ~= "float64" then report[#report + 1] = ("input %d is %s: use float64 for gradcheck"):format(k, x:dtype()) end
      -- analytic: one backward per output element
      local analytic = {}
      for j = 1, n_out do
        for _, z in ipairs(inputs) do if type(z) == "userdata" and z.requires_grad then z.grad = nil end end
        local y = fn(table.unpack(inputs))
        local g = mg.zeros(y:numel(), {dtype = y:dtype()})
        g:set(j, 1)
        y:backward(g:view(y:shape()))
        local gx = x.grad
        analytic[j] = gx and gx:contiguous():view(-1):totable() or false
      end
      -- numeric: perturb one element at a time
      for i = 1, x:numel() do
        local idx = flat_get(x, i)
        local orig = x:get(table.unpack(idx))
        mg.no_grad(function() idx[#idx + 1] = orig + eps; x:set(table.unpack(idx)) end)
        local yp = eval()
        mg.no_grad(function() idx[#idx] = orig - eps; x:set(table.unpack(idx)) end)
        local ym = eval()
        mg.no_grad(function() idx[#idx] = orig; x:set(table.unpack(idx)) end)
        table.remove(idx)
        for j = 1, n_out do
          local num = (yp[j] - ym[j]) / (2 * eps)
          local ana = analytic[j] and analytic[j][i] or 0
          local err = math.abs(num - ana)
          if err > atol + rtol * math.abs(num) or ana ~= ana then
            report[#report + 1] = ("input %d, element %d, output %d: analytic %.8g, numeric %.8g"):format(k, i, j, ana, num)
          end
          if err > worst then worst = err end
        end
      end
      x.grad = nil
    end
  end
  if #report == 0 then return true, ("ok (max abs error %.3g)"):format(worst) end
  if #report > 10 then local n = #report; report = {table.unpack(report, 1, 10)}; report[11] = ("... %d mismatches in all"):format(n) end
  return false, table.concat(report, "\n")
end
