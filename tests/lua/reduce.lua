-- tests/lua/reduce.lua — reductions: values against PyTorch, float64 gradient checks
-- over every dim (with and without keepdim, negative dims, strided views), PyTorch's
-- gradient conventions (ties, zeros), edge cases and misuse errors.
--
-- The table R was produced with PyTorch 1.13 (python3-torch) from the same inputs:
--   X = torch.tensor([((i*7) % 11 - 5) / 2 for i in range(24)], dtype=torch.float64).view(2,3,4)
-- then e.g. R.sum2 = X.sum(1), R.var3 = X.var(2), R.imax1 = X.max(0)[1] + 1 (1-based),
-- R.varb* = var(unbiased=False), R.lse* = logsumexp, R.g* = .grad after backward of the named
-- op (R.gmax3: X.max(2)[0].sum()), R.norm[p] = X.norm(p); the other
-- inputs are written out next to their use. NaN is written 0/0.
local mg = require("moongrad")
local T = mg.test()
local R = {norm = {}}
R.X = {{{-2.5, 1.0, -1.0, 2.5}, {0.5, -1.5, 2.0, 0.0}, {-2.0, 1.5, -0.5, -2.5}}, {{1.0, -1.0, 2.5, 0.5}, {-1.5, 2.0, 0.0, -2.0}, {1.5, -0.5, -2.5, 1.0}}}
R.sum = -1.5
R.sum1 = {{-1.5, 0.0, 1.5, 3.0}, {-1.0, 0.5, 2.0, -2.0}, {-0.5, 1.0, -3.0, -1.5}}
R.mean1 = {{-0.75, 0.0, 0.75, 1.5}, {-0.5, 0.25, 1.0, -1.0}, {-0.25, 0.5, -1.5, -0.75}}
R.prod1 = {{-2.5, -1.0, -2.5, 1.25}, {-0.75, -3.0, 0.0, -0.0}, {-3.0, -0.75, 1.25, -2.5}}
R.var1 = {{6.125, 2.0, 6.125, 2.0}, {2.0, 6.125, 2.0, 2.0}, {6.125, 2.0, 2.0, 6.125}}
R.varb1 = {{3.0625, 1.0, 3.0625, 1.0}, {1.0, 3.0625, 1.0, 1.0}, {3.0625, 1.0, 1.0, 3.0625}}
R.std1 = {{2.4748737341529163, 1.4142135623730951, 2.4748737341529163, 1.4142135623730951}, {1.4142135623730951, 2.4748737341529163, 1.4142135623730951, 1.4142135623730951}, {2.4748737341529163, 1.4142135623730951, 1.4142135623730951, 2.4748737341529163}}
R.lse1 = {{1.0297504182726207, 1.1269280110429727, 2.5297504182726205, 2.6269280110429727}, {0.6269280110429726, 2.0297504182726205, 2.1269280110429727, 0.1269280110429726}, {1.5297504182726207, 1.6269280110429727, -0.3730719889570274, 1.0297504182726207}}
R.max1 = {{1.0, 1.0, 2.5, 2.5}, {0.5, 2.0, 2.0, 0.0}, {1.5, 1.5, -0.5, 1.0}}
R.imax1 = {{2.0, 1.0, 2.0, 1.0}, {1.0, 2.0, 1.0, 1.0}, {2.0, 1.0, 1.0, 2.0}}
R.min1 = {{-2.5, -1.0, -1.0, 0.5}, {-1.5, -1.5, 0.0, -2.0}, {-2.0, -0.5, -2.5, -2.5}}
R.imin1 = {{1.0, 2.0, 1.0, 2.0}, {2.0, 1.0, 2.0, 2.0}, {1.0, 2.0, 2.0, 1.0}}
R.argmax1 = {{2.0, 1.0, 2.0, 1.0}, {1.0, 2.0, 1.0, 1.0}, {2.0, 1.0, 1.0, 2.0}}
R.argmin1 = {{1.0, 2.0, 1.0, 2.0}, {2.0, 1.0, 2.0, 2.0}, {1.0, 2.0, 2.0, 1.0}}
R.sum2 = {{-4.0, 1.0, 0.5, 0.0}, {1.0, 0.5, 0.0, -0.5}}
R.mean2 = {{-1.3333333333333333, 0.3333333333333333, 0.16666666666666666, 0.0}, {0.3333333333333333, 0.16666666666666666, 0.0, -0.16666666666666666}}
R.prod2 = {{2.5, -2.25, 1.0, -0.0}, {-2.25, 1.0, -0.0, -1.0}}
R.var2 = {{2.5833333333333335, 2.583333333333333, 2.5833333333333335, 6.25}, {2.583333333333333, 2.5833333333333335, 6.25, 2.583333333333333}}
R.varb2 = {{1.7222222222222223, 1.722222222222222, 1.7222222222222223, 4.166666666666667}, {1.722222222222222, 1.7222222222222223, 4.166666666666667, 1.722222222222222}}
R.std2 = {{1.6072751268321592, 1.607275126832159, 1.6072751268321592, 2.5}, {1.607275126832159, 1.6072751268321592, 2.5, 1.607275126832159}}
R.lse2 = {{0.6238729583693673, 2.0045969023422834, 2.1238729583693674, 2.58509724636431}, {2.0045969023422834, 2.1238729583693674, 2.58509724636431, 1.5045969023422834}}
R.max2 = {{0.5, 1.5, 2.0, 2.5}, {1.5, 2.0, 2.5, 1.0}}
R.imax2 = {{2.0, 3.0, 2.0, 1.0}, {3.0, 2.0, 1.0, 3.0}}
R.min2 = {{-2.5, -1.5, -1.0, -2.5}, {-1.5, -1.0, -2.5, -2.0}}
R.imin2 = {{1.0, 2.0, 1.0, 3.0}, {2.0, 1.0, 3.0, 2.0}}
R.argmax2 = {{2.0, 3.0, 2.0, 1.0}, {3.0, 2.0, 1.0, 3.0}}
R.argmin2 = {{1.0, 2.0, 1.0, 3.0}, {2.0, 1.0, 3.0, 2.0}}
R.sum3 = {{0.0, 1.0, -3.5}, {3.0, -1.5, -0.5}}
R.mean3 = {{0.0, 0.25, -0.875}, {0.75, -0.375, -0.125}}
R.prod3 = {{6.25, -0.0, -3.75}, {-1.25, 0.0, 1.875}}
R.var3 = {{4.833333333333333, 2.083333333333333, 3.2291666666666665}, {2.083333333333333, 3.2291666666666665, 3.2291666666666665}}
R.varb3 = {{3.625, 1.5624999999999998, 2.421875}, {1.5624999999999998, 2.421875, 2.421875}}
R.std3 = {{2.1984843263788196, 1.4433756729740643, 1.796988221070652}, {1.4433756729740643, 1.796988221070652, 1.796988221070652}}
R.lse3 = {{2.731163696255373, 2.3283412890257247, 1.6687704079392338}, {2.8283412890257247, 2.168770407939234, 2.0654169752271}}
R.max3 = {{2.5, 2.0, 1.5}, {2.5, 2.0, 1.5}}
R.imax3 = {{4.0, 3.0, 2.0}, {3.0, 2.0, 1.0}}
R.min3 = {{-2.5, -1.5, -2.5}, {-1.0, -2.0, -2.5}}
R.imin3 = {{1.0, 2.0, 4.0}, {2.0, 4.0, 3.0}}
R.argmax3 = {{4.0, 3.0, 2.0}, {3.0, 2.0, 1.0}}
R.argmin3 = {{1.0, 2.0, 4.0}, {2.0, 4.0, 3.0}}
R.mean = -0.0625
R.prod = -0.0
R.var = 2.702445652173913
R.varb = 2.58984375
R.std = 1.6439116923283663
R.lse = 4.166211979569234
R.norm[2] = 7.88986691902975
R.norm[1] = 33.5
R.norm[math.huge] = 2.5
R.norm[-math.huge] = 0.0
R.norm[3] = 5.054405853407577
R.norm[0.5] = 691.1617344397007
R.norm[1.5] = 12.62160105820697
R.norm[0] = 22.0
R.max = 2.5
R.min = -2.5
R.argmax = 4.0
R.argmin = 1.0
R.gmax = {{{0.0, 0.0, 0.0, 0.5}, {0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}}, {{0.0, 0.0, 0.5, 0.0}, {0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}}}
R.gmin = {{{0.3333333333333333, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.3333333333333333}}, {{0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.3333333333333333, 0.0}}}
R.gmax3 = {{{0.0, 0.0, 0.0, 1.0}, {0.0, 0.0, 1.0, 0.0}, {0.0, 1.0, 0.0, 0.0}}, {{0.0, 0.0, 1.0, 0.0}, {0.0, 1.0, 0.0, 0.0}, {1.0, 0.0, 0.0, 0.0}}}
R.gninf = {{{-0.2, 0.0, -0.0, 0.2}, {0.0, -0.0, 0.0, 0.0}, {-0.0, 0.0, -0.0, -0.2}}, {{0.0, -0.0, 0.2, 0.0}, {-0.0, 0.0, 0.0, -0.0}, {0.0, -0.0, -0.2, 0.0}}}
R.gprod_z1 = {0.0, 24.0, 0.0, 0.0}
R.gprod_z2 = {0.0, 0.0, 0.0, 0.0}
R.gprod_z0 = {-12.0, 24.0, -8.0, -6.0}
R.gprod_rows = {{0.0, 6.0, 0.0}, {0.0, 0.0, 0.0}, {6.0, 3.0, 2.0}}
R.gprod_cols = {{0.0, 10.0, 0.0}, {2.0, 0.0, 9.0}, {0.0, 0.0, 0.0}}
R.gnorm0 = {0.0, 0.0, 0.0}
R.gstd_const = {0.0, 0.0, 0.0, 0.0}
R.nanmax = 0/0
R.nanargmax = 2.0
R.lse_big = 1000.6931471805599
R.lse_ninf = -math.huge
R.esum = 0.0
R.emean = 0/0
R.eprod = 1.0
R.esum1 = {0.0, 0.0, 0.0}
R.else1 = {-math.huge, -math.huge, -math.huge}
R.tie_max = {3.0, 5.0}
R.tie_imax = {2.0, 1.0}
R.tie_argmax = {2.0, 1.0}
R.tie_argmin0 = {1.0, 1.0, 2.0, 1.0}
R.tie_gmax = {{0.0, 1.0, 0.0, 0.0}, {1.0, 0.0, 0.0, 0.0}}
R.tie_min0 = {1.0, 3.0, 1.0, 2.0}
R.tie_imin0 = {1.0, 1.0, 2.0, 1.0}
R.Ysum2 = {{-4.0, 1.0}, {1.0, 0.5}, {0.5, 0.0}, {0.0, -0.5}}
R.Yvar1 = {{4.833333333333333, 2.083333333333333}, {2.083333333333333, 3.2291666666666665}, {3.2291666666666665, 3.2291666666666665}}
R.Ylse3 = {{1.0297504182726207, 0.6269280110429726, 1.5297504182726207}, {1.1269280110429727, 2.0297504182726205, 1.6269280110429727}, {2.5297504182726205, 2.1269280110429727, -0.3730719889570274}, {2.6269280110429727, 0.1269280110429726, 1.0297504182726207}}
R.Zsum3 = {{0.0, 0.5, 1.0}, {1.5, 2.0, -3.0}}
R.Zprod = 0.0
R.Zmax2 = {{1.5, 2.0}, {2.0, 2.5}}
R.Zimax2 = {{3.0, 2.0}, {2.0, 1.0}}

local function shape(t) return table.concat(t:shape(), ",") end
local f64 = {dtype = "float64"}

-- ---- forward values, float32 and float64 ------------------------------------------
for _, dt in ipairs({"float32", "float64"}) do
  local X = mg.tensor(R.X, {dtype = dt})
  local tol = dt == "float32" and 1e-6 or 1e-12
  local function near(got, want, name) T:near(got, want, tol, dt .. " " .. name) end
  near(X:sum(), R.sum, "sum()")
  near(X:mean(), R.mean, "mean()")
  near(X:prod(), R.prod, "prod()")
  near(X:var(), R.var, "var()")
  near(X:var(false), R.varb, "var(false) is biased")
  near(X:std(), R.std, "std()")
  near(X:logsumexp(), R.lse, "logsumexp() over all dims")
  near(X:max(), R.max, "max()")
  near(X:min(), R.min, "min()")
  near(X:argmax(), R.argmax, "argmax() is a 1-based flat index")
  near(X:argmin(), R.argmin, "argmin()")
  T:eq(X:max():dim(), 0, dt .. " max() is 0-dim")
  T:eq(X:argmax():dim(), 0, dt .. " argmax() is 0-dim")
  for d = 1, 3 do
    near(X:sum(d), R["sum" .. d], "sum(" .. d .. ")")
    near(X:mean(d), R["mean" .. d], "mean(" .. d .. ")")
    near(X:prod(d), R["prod" .. d], "prod(" .. d .. ")")
    near(X:var(d), R["var" .. d], "var(" .. d .. ")")
    near(X:var(d, false, false), R["varb" .. d], "var(" .. d .. ", false, false)")
    near(X:std(d), R["std" .. d], "std(" .. d .. ")")
    near(X:logsumexp(d), R["lse" .. d], "logsumexp(" .. d .. ")")
    local v, i = X:max(d)
    near(v, R["max" .. d], "max(" .. d .. ") values")
    near(i, R["imax" .. d], "max(" .. d .. ") 1-based indices")
    T:eq(i:dtype(), dt, dt .. " max(" .. d .. ") indices have the input's dtype")
    v, i = X:min(d)
    near(v, R["min" .. d], "min(" .. d .. ") values")
    near(i, R["imin" .. d], "min(" .. d .. ") 1-based indices")
    near(X:argmax(d), R["argmax" .. d], "argmax(" .. d .. ")")
    near(X:argmin(d), R["argmin" .. d], "argmin(" .. d .. ")")
    -- negative dims count from the end
    near(X:sum(d - 4), R["sum" .. d], "sum(" .. (d - 4) .. ")")
    near(X:var(d - 4), R["var" .. d], "var(" .. (d - 4) .. ")")
    near((X:max(d - 4)), R["max" .. d], "max(" .. (d - 4) .. ")")
  end
  for p, want in pairs(R.norm) do near(X:norm(p), want, ("norm(%g)"):format(p)) end
  near(X:norm(), R.norm[2], "norm() is the 2-norm")
  near(X:norm("fro"), R.norm[2], "norm('fro')")
  -- keepdim shapes
  T:eq(shape(X:sum(2, true)), "2,1,4", dt .. " sum(2, true) keeps the dim")
  T:eq(shape(X:sum(-1, true)), "2,3,1", dt .. " sum(-1, true)")
  T:eq(shape(X:sum(nil, true)), "1,1,1", dt .. " sum(nil, true) keeps every dim")
  T:eq(shape(X:mean(1)), "3,4", dt .. " mean(1) drops the dim")
  local v, i = X:max(3, true)
  T:eq(shape(v) .. " " .. shape(i), "2,3,1 2,3,1", dt .. " max(3, true) keeps the dim in values and indices")
  near(i:view(2, 3), R.imax3, "max(3, true) indices")
  T:eq(shape(X:argmax(2, true)), "2,1,4", dt .. " argmax(2, true)")
  T:eq(shape(X:var(1, true)), "1,3,4", dt .. " var(1, true)")
  T:eq(shape(X:logsumexp(3, true)), "2,3,1", dt .. " logsumexp(3, true)")
  -- strided inputs: a transpose and a narrow
  local Y, Z = X:transpose(1, 3), X:narrow(3, 2, 2)
  near(Y:sum(2), R.Ysum2, "sum of a transposed view")
  near(Y:var(1), R.Yvar1, "var of a transposed view")
  near(Y:logsumexp(3), R.Ylse3, "logsumexp of a transposed view")
  near(Z:sum(3), R.Zsum3, "sum of a narrowed view")
  near(Z:prod(), R.Zprod, "prod of a narrowed view")
  local zv, zi = Z:max(2)
  near(zv, R.Zmax2, "max(2) of a narrowed view")
  near(zi, R.Zimax2, "max(2) indices of a narrowed view")
  -- a table of dims (sum and mean): PyTorch's X.sum((1, 2)), X.mean((0, 2), keepdim=True)
  near(X:sum({2, 3}), {R.sum3[1][1] + R.sum3[1][2] + R.sum3[1][3], R.sum3[2][1] + R.sum3[2][2] + R.sum3[2][3]}, "sum({2, 3})")
  near(X:sum({3, -2}), X:sum({2, 3}), "sum({3, -2}) in any order")
  near(X:mean({1, 3}, true):view(3), {(R.sum3[1][1] + R.sum3[2][1]) / 8, (R.sum3[1][2] + R.sum3[2][2]) / 8,
       (R.sum3[1][3] + R.sum3[2][3]) / 8}, "mean({1, 3}, true)")
  T:eq(shape(X:mean({1, 3}, true)), "1,3,1", dt .. " mean({1, 3}, true) keeps both dims")
  near(X:sum({}), R.sum, "sum({}) reduces every dim, as PyTorch")
  -- a transposed matrix and permuted tensors are reduced in place: same values as their copies
  local M = X:view(6, 4):t()
  local Mc = M:contiguous()
  for d = 1, 2 do
    near(M:sum(d), Mc:sum(d), "sum(" .. d .. ") of a transposed matrix")
    near(M:var(d, true), Mc:var(d, true), "var(" .. d .. ", true) of a transposed matrix")
    near(M:logsumexp(d), Mc:logsumexp(d), "logsumexp(" .. d .. ") of a transposed matrix")
    local v1, i1 = M:max(d)
    local v2, i2 = Mc:min(d)
    near(v1, (Mc:max(d)), "max(" .. d .. ") of a transposed matrix")
    near(i1, select(2, Mc:max(d)), "max(" .. d .. ") indices of a transposed matrix")
    near((M:min(d)), v2, "min(" .. d .. ") of a transposed matrix")
    near(select(2, M:min(d)), i2, "min(" .. d .. ") indices of a transposed matrix")
  end
  near(M:argmax(), Mc:argmax(), "argmax() of a transposed matrix is a flat index in its own order")
  local P = X:permute(3, 1, 2)
  near(P:sum(), R.sum, "sum() of a permuted tensor")
  near(P:var(), R.var, "var() of a permuted tensor")
  near(P:prod(), R.prod, "prod() of a permuted tensor")
  near(P:max(), R.max, "max() of a permuted tensor")
  near(P:logsumexp(), R.lse, "logsumexp() of a permuted tensor")
  near(P:norm(3), R.norm[3], "norm(3) of a permuted tensor")
  near(P:argmin(), P:contiguous():argmin(), "argmin() of a permuted tensor")
  -- ties: the first occurrence, as PyTorch
  local tie = mg.tensor({{1, 3, 3, 2}, {5, 5, 1, 5}}, {dtype = dt})
  local tv, ti = tie:max(2)
  near(tv, R.tie_max, "max(2) with ties: values")
  near(ti, R.tie_imax, "max(2) with ties: first index")
  near(tie:argmax(2), R.tie_argmax, "argmax(2) with ties")
  near(tie:argmin(1), R.tie_argmin0, "argmin(1) with ties")
  tv, ti = tie:min(1)
  near(tv, R.tie_min0, "min(1) with ties: values")
  near(ti, R.tie_imin0, "min(1) with ties: first index")
  -- long rows take the vector path: a NaN anywhere wins, ties give the first index
  local long = {}
  for i = 1, 100 do long[i] = -((i * 37) % 101) end  -- distinct negatives, max -1 at i = 71, min -100 at i = 30
  local L = mg.tensor(long, {dtype = dt})
  near(L:max(), -1, "max of a long row")
  near(L:argmax(), 71, "argmax of a long row")
  near(L:argmin(), 30, "argmin of a long row")
  long[90] = -1
  near(mg.tensor(long, {dtype = dt}):argmax(), 71, "argmax of a long row with a later tie")
  long[5] = -1
  near(mg.tensor(long, {dtype = dt}):argmax(), 5, "argmax of a long row with an earlier tie")
  long[37] = 0 / 0
  local Ln = mg.tensor(long, {dtype = dt})
  near(Ln:max(), 0 / 0, "max of a long row with a NaN is NaN")
  near(Ln:min(), 0 / 0, "min of a long row with a NaN is NaN")
  near(Ln:argmax(), 37, "argmax of a long row points at the NaN")
  local lv, li = Ln:view(4, 25):max(2)
  near(li, {5, 12, 21, 15}, "max(2) indices of rows, one with a NaN")
  near(lv:select(1, 2), 0 / 0, "that row's max is NaN")
  -- edge cases
  near(mg.tensor({3}, {dtype = dt}):var(), 0 / 0, "var of one element is NaN (unbiased)")
  near(mg.tensor({3}, {dtype = dt}):std(), 0 / 0, "std of one element is NaN (unbiased)")
  near(mg.tensor({3}, {dtype = dt}):var(false), 0, "biased var of one element is 0")
  local nan = mg.tensor({1, 0 / 0, 3, 0 / 0}, {dtype = dt})
  near(nan:max(), R.nanmax, "max propagates NaN")
  near(nan:argmax(), R.nanargmax, "argmax points at the first NaN")
  near(mg.tensor({1000, 1000, -1000}, {dtype = dt}):logsumexp(1), R.lse_big, "logsumexp is stable for large inputs")
  near(mg.tensor({-math.huge, -math.huge}, {dtype = dt}):logsumexp(1), R.lse_ninf, "logsumexp of all -inf is -inf")
  local e = mg.zeros(0, 3, {dtype = dt})
  near(e:sum(), R.esum, "sum of an empty tensor is 0")
  near(e:mean(), R.emean, "mean of an empty tensor is NaN")
  near(e:prod(), R.eprod, "prod of an empty tensor is 1")
  near(e:sum(1), R.esum1, "sum(1) of {0,3}")
  near(e:logsumexp(1), R.else1, "logsumexp(1) of {0,3} is -inf")
  T:eq(shape(e:max(2)), "0", dt .. " max(2) of {0,3} is empty")
  near(e:norm(), 0, "norm of an empty tensor is 0")
  local s = mg.tensor(4, {dtype = dt})
  near(s:sum(1), 4, "sum(1) of a 0-dim tensor")
  near(s:max(), 4, "max() of a 0-dim tensor")
end

-- ---- float32 accumulation -------------------------------------------------------------
-- float(0.1) * 4e6 = 400000.006: a float accumulator would drift by whole units
T:near(mg.full({4000000}, 0.1):sum(), 400000, 1e-12, "float32 sum of 4e6 elements accumulates in double (exact to float precision)")
T:near(mg.full({4000000}, 0.1):mean(), 0.1, 1e-7, "float32 mean of 4e6 elements")
T:near(mg.full({1000000, 4}, 0.1):sum(1), {100000, 100000, 100000, 100000}, 1e-7, "float32 sum over rows (dim 1)")
T:near(mg.full({2, 1000000, 2}, 0.1):sum(2), {{100000, 100000}, {100000, 100000}}, 1e-7, "float32 sum over a middle dim")
T:near(mg.full({1000000}, 1.5):var(), 0, 1e-12, "float32 var of a constant is 0")

-- ---- gradients ------------------------------------------------------------------------
mg.manual_seed(7)
local function rnd(...) return mg.tensor(mg.randn(...), {dtype = "float64", requires_grad = true}) end
local function gc(name, fn, inputs, opts) return T:gradcheck(name, fn, inputs, opts) end

local x = rnd(2, 3, 4)
local ops = {
  sum = function(t, d, k) return t:sum(d, k) end,
  mean = function(t, d, k) return t:mean(d, k) end,
  prod = function(t, d, k) return t:prod(d, k) end,
  var = function(t, d, k) return t:var(d, k) end,
  var_biased = function(t, d, k) return t:var(d, k, false) end,
  std = function(t, d, k) return t:std(d, k) end,
  std_biased = function(t, d, k) return t:std(d, k, false) end,
  logsumexp = function(t, d, k) return t:logsumexp(d, k) end,
  max = function(t, d, k) if d then return (t:max(d, k)) end return t:max() end,
  min = function(t, d, k) if d then return (t:min(d, k)) end return t:min() end,
}
local names = {}
for k in pairs(ops) do names[#names + 1] = k end
table.sort(names)
for _, name in ipairs(names) do
  local f = ops[name]
  gc(name .. "()", function(t) return f(t) end, {x})
  for _, d in ipairs({1, 2, 3, -1, -3}) do
    for _, k in ipairs({false, true}) do
      gc(("%s(%d, %s)"):format(name, d, k), function(t) return f(t, d, k) end, {x})
    end
  end
  gc(name .. " of a transposed view", function(t) return f(t:transpose(1, 3), 2) end, {x})
  gc(name .. " of a narrowed view", function(t) return f(t:narrow(3, 2, 2), 3, true) end, {x})
end
local m2 = rnd(4, 3)
for _, name in ipairs(names) do
  for _, d in ipairs({1, 2}) do
    gc(name .. " of a transposed matrix over dim " .. d, function(t) return ops[name](t:t(), d) end, {m2})
  end
  gc(name .. "() of a permuted tensor", function(t) return ops[name](t:permute(3, 1, 2)) end, {x})
end
gc("mean over a table of dims", function(t) return t:mean({1, 3}) end, {x})
gc("sum over a table of dims with keepdim", function(t) return t:sum({-1, 2}, true) end, {x})
for _, p in ipairs({2, 1, 3, 1.5, 0.5, math.huge, -math.huge}) do
  gc(("norm(%g)"):format(p), function(t) return t:norm(p) end, {x})
end
gc("norm of a transposed view", function(t) return t:transpose(1, 2):norm() end, {x})
gc("sum of a 0-dim tensor", function(t) return t:sum() * 3 end, {mg.tensor(2, {dtype = "float64", requires_grad = true})})

-- prod with zeros (PyTorch's formula): the zero's gradient is the product of the others
local function grad_of(vals, fn)
  local t = mg.tensor(vals, {dtype = "float64", requires_grad = true})
  fn(t):backward()
  return t.grad
end
T:near(grad_of({2, 0, 3, 4}, function(t) return t:prod() end), R.gprod_z1, 1e-12, "prod grad with one zero")
T:near(grad_of({2, 0, 3, 0}, function(t) return t:prod() end), R.gprod_z2, 1e-12, "prod grad with two zeros")
T:near(grad_of({2, -1, 3, 4}, function(t) return t:prod() end), R.gprod_z0, 1e-12, "prod grad without zeros")
local zz = {{2, 0, 3}, {0, 5, 0}, {1, 2, 3}}
T:near(grad_of(zz, function(t) return t:prod(2):sum() end), R.gprod_rows, 1e-12, "prod(2) grad with zeros in rows")
T:near(grad_of(zz, function(t) return t:prod(1):sum() end), R.gprod_cols, 1e-12, "prod(1) grad with zeros in columns")
gc("prod with a zero", function(t) return t:prod(2) end, {mg.tensor(zz, {dtype = "float64", requires_grad = true})})

-- ties: whole-tensor max/min share the gradient evenly (amax); max(dim) picks the index
T:near(grad_of(R.X, function(t) return t:max() end), R.gmax, 1e-12, "max() grad is shared by ties")
T:near(grad_of(R.X, function(t) return t:min() end), R.gmin, 1e-12, "min() grad is shared by 3 ties")
T:near(grad_of(R.X, function(t) return (t:max(3)):sum() end), R.gmax3, 1e-12, "max(3) grad goes to the selected index")
T:near(grad_of({{1, 3, 3, 2}, {5, 5, 1, 5}}, function(t) return (t:max(2)):sum() end), R.tie_gmax, 1e-12,
       "max(2) grad goes to the first of tied values")
T:near(grad_of(R.X, function(t) return t:norm(math.huge) end), R.gninf, 1e-12, "norm(inf) grad is shared by ties")
T:near(grad_of({0, 0, 0}, function(t) return t:norm() end), R.gnorm0, 0, "norm() grad at 0 is 0")
T:near(grad_of({2, 2, 2, 2}, function(t) return t:std() end), R.gstd_const, 0, "std() grad of a constant is 0")

-- float32 gradients flow with the input's dtype; indices from max(dim) are private to the graph
do
  local a = mg.tensor({{1, 5, 2}, {7, 0, 3}}, {requires_grad = true})
  local v, i = a:max(2)
  i:fill_(1)  -- the caller owns the index tensor: writing into it must not move the gradient
  v:sum():backward()
  T:near(a.grad, {{0, 1, 0}, {1, 0, 0}}, 0, "float32 max(2) backward after the caller overwrote the indices")
  T:eq(a.grad:dtype(), "float32", "float32 grad dtype")
  local b = mg.tensor({1, 2, 3, 4}, {requires_grad = true})
  b:mean():backward()
  T:near(b.grad, {0.25, 0.25, 0.25, 0.25}, 0, "mean grad")
  T:ok(not (a:argmax()).requires_grad, "argmax is not differentiable")
end

-- ---- misuse -------------------------------------------------------------------------------
local X = mg.tensor(R.X)
T:raises(function() return X:sum(4) end, "sum: dim 4 out of range for a tensor with 3 dims (expected 1..3 or -3..-1)")
T:raises(function() return X:mean(-4) end, "mean: dim -4 out of range for a tensor with 3 dims")
T:raises(function() return X:prod(0) end, "prod: dim 0 out of range")
T:raises(function() return X:sum(1.5) end, "sum: dim must be an integer, got 1.5")
T:raises(function() return X:sum("a") end, "sum: argument #2: expected a dim (integer), got string")
T:raises(function() return X:sum(1, 1) end, "sum: argument #3 (keepdim): expected a boolean, got number")
T:raises(function() return X:var(1, false, "yes") end, "var: argument #4 (unbiased): expected a boolean, got string")
T:raises(function() return mg.sum(5) end, "sum: argument #1: expected a tensor, got number")
T:raises(function() return mg.max({1, 2}) end, "max: argument #1: expected a tensor, got table")
T:raises(function() return X:sum({1, -3}) end, "sum: dim 1 appears twice in the list of dims")
T:raises(function() return X:mean({1, 4}) end, "mean: dim 4 out of range for a tensor with 3 dims")
T:raises(function() return X:logsumexp(4) end, "logsumexp: dim 4 out of range")
T:raises(function() return X:max(5) end, "max: dim 5 out of range")
T:raises(function() return X:argmin(-5) end, "argmin: dim -5 out of range")
T:raises(function() return X:norm("x") end, 'norm: argument #2 (p): expected a number or "fro", got string')
-- norm over a dim, as torch.norm(x, p, dim, keepdim)
do
  local Y = mg.tensor({{3, -4, 0}, {1, 2, -2}}, {dtype = "float64"})
  T:near(Y:norm(2, 2), {5, 3}, 1e-12, "norm(2, dim)")
  T:near(Y:norm(1, 1), {4, 6, 2}, 1e-12, "norm(1, dim)")
  T:near(Y:norm(2, 2, true):shape(), {2, 1}, 0, "norm(p, dim, keepdim) keeps the dim")
  local Z = mg.randn(3, 4, {dtype = "float64"}):requires_grad_()
  local ok, rep = mg.gradcheck(function(z) return z:norm(3, -1) end, {Z})
  T:ok(ok, "gradcheck norm(3, dim)")
  if not ok then T:diag(rep) end
end
T:raises(function() return mg.zeros(0, 3):max() end, "max: cannot reduce an empty tensor of shape {0,3} (no elements)")
T:raises(function() return mg.zeros(0, 3):min(1) end, "min: cannot reduce dim 1 of size 0 (shape {0,3})")
T:raises(function() return mg.zeros(0):argmax() end, "argmax: cannot reduce an empty tensor of shape {0}")
T:raises(function() return mg.zeros(2, 0):argmin(2) end, "argmin: cannot reduce dim 2 of size 0 (shape {2,0})")
T:raises(function() return X:max(mg.zeros(5)) end, "maximum: shapes {2,3,4} and {5} cannot be broadcast")

T:done()
