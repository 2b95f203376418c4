-- scripts/linear_regression.lua: the loss goes down and gradient descent lands on the
-- least-squares solution computed here in closed form.
local mg = require("moongrad")
local T = mg.test()

-- run the script with `args`, capturing what it prints
local function run(args)
  local lines, saved_print, saved_arg = {}, print, arg
  print = function(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = tostring(t[i]) end
    lines[#lines + 1] = table.concat(t, "\t")
  end
  arg = args
  local ok, r = pcall(dofile, "scripts/linear_regression.lua")
  print, arg = saved_print, saved_arg
  if not ok then error(r, 0) end
  return r, lines
end

-- The features are collinear, so the least-squares solutions form a line; gradient descent from
-- theta0 converges to theta0 + Q c, where Q is an orthonormal basis of the row space of
-- A = [X 1] (the directions the gradient can move in) and c solves min |A (theta0 + Q c) - y|.
local function gd_limit(X, y, theta0)
  local A = {}
  for i, row in ipairs(X) do A[i] = { row[1], row[2], 1 } end
  local function dot(u, v) local s = 0 for k = 1, #u do s = s + u[k] * v[k] end return s end
  local Q = {}
  for _, r in ipairs(A) do                            -- Gram-Schmidt on the rows
    local v = { table.unpack(r) }
    for _, q in ipairs(Q) do
      local d = dot(v, q)
      for k = 1, 3 do v[k] = v[k] - d * q[k] end
    end
    local nv = math.sqrt(dot(v, v))
    if nv > 1e-9 then for k = 1, 3 do v[k] = v[k] / nv end Q[#Q + 1] = v end
  end
  local m = #Q
  local B, r = {}, {}                                  -- B = A Q (n x m), r = y - A theta0
  for i, a in ipairs(A) do
    B[i] = {}
    for j = 1, m do B[i][j] = dot(a, Q[j]) end
    r[i] = y[i] - dot(a, theta0)
  end
  -- normal equations (B^T B) c = B^T r, m <= 3, Gaussian elimination
  local M, v = {}, {}
  for j = 1, m do
    M[j], v[j] = {}, 0
    for k = 1, m do local s = 0 for i = 1, #B do s = s + B[i][j] * B[i][k] end M[j][k] = s end
    for i = 1, #B do v[j] = v[j] + B[i][j] * r[i] end
  end
  for p = 1, m do
    for q = p + 1, m do
      local f = M[q][p] / M[p][p]
      for k = p, m do M[q][k] = M[q][k] - f * M[p][k] end
      v[q] = v[q] - f * v[p]
    end
  end
  local c = {}
  for p = m, 1, -1 do
    local s = v[p]
    for k = p + 1, m do s = s - M[p][k] * c[k] end
    c[p] = s / M[p][p]
  end
  local theta = { table.unpack(theta0) }
  for j = 1, m do for k = 1, 3 do theta[k] = theta[k] + c[j] * Q[j][k] end end
  return theta, m
end

local X, Y = { { 1, 2 }, { 2, 3 }, { 3, 4 }, { 4, 5 } }, { 1, 2, 3, 4 }

do -- the script as documented: lr 0.01, 1000 epochs, a loss line every 100 epochs
  local r, lines = run({})
  local losses = {}
  for _, l in ipairs(lines) do
    local e, v = l:match("^epoch%s+(%d+)%s+loss%s+([%d.e+-]+)")
    if e then losses[#losses + 1] = { tonumber(e), tonumber(v) } end
  end
  T:eq(#losses, 10, "a loss line every 100 epochs")
  T:eq(losses[10] and losses[10][1], 1000, "the last one at epoch 1000")
  local decreasing = #losses == 10
  for i = 2, #losses do decreasing = decreasing and losses[i][2] < losses[i - 1][2] end
  T:ok(decreasing, "printed loss decreases every 100 epochs")
  T:ok(r.loss < 1e-3, ("final loss %.3g < 1e-3"):format(r.loss))
  local pred = mg.no_grad(function() return r.model(r.X) end):view(4)
  T:near(pred, Y, 0.1, "predictions within 0.1 of y")
  local theta0 = { r.w0[1], r.w0[2], r.b0 }
  local star, rank = gd_limit(X, Y, theta0)
  T:eq(rank, 2, "collinear features: the design has rank 2")
  local dist0 = math.sqrt((theta0[1] - star[1]) ^ 2 + (theta0[2] - star[2]) ^ 2 + (theta0[3] - star[3]) ^ 2)
  local dist = math.sqrt((r.w[1] - star[1]) ^ 2 + (r.w[2] - star[2]) ^ 2 + (r.b - star[3]) ^ 2)
  -- the slowest direction of the row space has curvature 0.3436: (1 - 0.01 * 0.3436)^1000 = 0.032
  T:ok(dist <= 0.04 * dist0 + 1e-4,
       ("after 1000 epochs, |theta - theta*| = %.4g <= 4%% of the initial %.4g"):format(dist, dist0))
end

do -- long enough to converge fully: the exact closed-form point
  local r = run({ "--epochs", "8000", "--every", "0", "--seed", "7" })
  local star = gd_limit(X, Y, { r.w0[1], r.w0[2], r.b0 })
  T:near({ r.w[1], r.w[2], r.b }, star, 2e-3, "8000 epochs: (w1, w2, b) equals the closed-form GD limit")
  T:near(r.w[1] + r.w[2], 1, 1e-3, "w1 + w2 = 1 (y = x1 = x2 - 1)")
  T:ok(r.loss < 1e-6, ("final loss %.3g < 1e-6"):format(r.loss))
end

T:raises(function() run({ "--bogus", "1" }) end, "unknown option '--bogus'", "unknown flags are errors")
T:raises(function() run({ "--lr", "-1" }) end, "--lr expects a positive number", "bad values are errors")
T:done()
