-- mg.data.DataLoader: batching, coverage, shuffling under the seed, drop_last, errors.
local mg = require("moongrad")
local T = mg.test()
local D = mg.data

local N = 10
local y = mg.range(1, N)                    -- sample i has label i ...
local x = mg.stack({ y, y * 2, y * 3 }, 2)  -- ... and features {i, 2i, 3i}

local function epoch(loader)
  local seen, sizes, paired = {}, {}, true
  for xb, yb in loader:iter() do
    sizes[#sizes + 1] = yb:size(1)
    if xb:size(1) ~= yb:size(1) or xb:size(2) ~= 3 then paired = false end
    for i = 1, yb:size(1) do
      local v = yb:get(i)
      seen[#seen + 1] = math.tointeger(v) or v
      if xb:get(i, 1) ~= v or xb:get(i, 3) ~= 3 * v then paired = false end
    end
  end
  return seen, sizes, paired
end
local function sorted(t) local c = { table.unpack(t) }; table.sort(c); return table.concat(c, ",") end
local ALL = "1,2,3,4,5,6,7,8,9,10"

do
  local L = D.DataLoader({ x, y }, { batch_size = 4 })
  T:eq(#L, 3, "#loader: 10 samples in batches of 4 -> 3")
  local seen, sizes, paired = epoch(L)
  T:eq(table.concat(seen, ","), ALL, "no shuffle: samples in order, each once")
  T:eq(table.concat(sizes, ","), "4,4,2", "batch sizes 4,4,2 (last one short)")
  T:ok(paired, "x and y batches stay paired")
  local seen2 = epoch(L)
  T:eq(table.concat(seen2, ","), ALL, "a second epoch gives the same batches")
end

do
  local L = D.DataLoader({ x, y }, { batch_size = 4, drop_last = true })
  T:eq(#L, 2, "drop_last: 2 batches")
  local seen, sizes = epoch(L)
  T:eq(table.concat(sizes, ","), "4,4", "drop_last: only full batches")
  T:eq(table.concat(seen, ","), "1,2,3,4,5,6,7,8", "drop_last: the last 2 samples dropped")
  local L2 = D.DataLoader({ x, y }, { batch_size = 5, drop_last = true })
  T:eq(#L2, 2, "drop_last with an exact split keeps every batch")
  local L3 = D.DataLoader({ x, y }, { batch_size = 11, drop_last = true })
  T:eq(#L3, 0, "drop_last with batch_size > N: no batches")
  T:eq(#epoch(L3), 0, "... and the iterator yields nothing")
end

do
  local L = D.DataLoader({ x, y }, { batch_size = 3, shuffle = true })
  T:eq(#L, 4, "shuffle: 4 batches of 3,3,3,1")
  mg.manual_seed(42)
  local a, sizes, paired = epoch(L)
  T:eq(sorted(a), ALL, "shuffle: every sample exactly once per epoch")
  T:eq(table.concat(sizes, ","), "3,3,3,1", "shuffle: batch sizes")
  T:ok(paired, "shuffle: x and y stay paired")
  local b = epoch(L)
  T:eq(sorted(b), ALL, "second shuffled epoch covers every sample once")
  T:ok(table.concat(a, ",") ~= table.concat(b, ","), "each epoch draws a new order")
  T:ok(table.concat(a, ",") ~= ALL, "the order is shuffled")
  mg.manual_seed(42)
  local a2 = epoch(L)
  T:eq(table.concat(a2, ","), table.concat(a, ","), "same seed => same order")
  mg.manual_seed(43)
  T:ok(table.concat(epoch(L), ",") ~= table.concat(a, ","), "another seed => another order")
end

do -- larger: every index once, shuffled, with drop_last
  local n = 1000
  local ids = mg.range(1, n)
  local L = D.DataLoader({ ids }, { batch_size = 64, shuffle = true, drop_last = true })
  T:eq(#L, 15, "1000 samples, batches of 64, drop_last: 15")
  local count, dup = 0, false
  local hit = {}
  for b in L:iter() do
    T:ok(b:size(1) == 64, "full batch") -- 15 checks
    for i = 1, 64 do
      local v = b:get(i)
      if hit[v] then dup = true end
      hit[v] = true
      count = count + 1
    end
  end
  T:eq(count, 960, "960 samples seen")
  T:ok(not dup, "no sample twice")
end

do -- a single tensor, an empty data set, tostring
  local L = D.DataLoader(y, { batch_size = 20 })
  T:eq(#L, 1, "a single tensor; batch_size > N gives one batch")
  local n = 0
  for b in L:iter() do n = n + b:size(1) end
  T:eq(n, 10, "... of all 10 samples")
  local E = D.DataLoader({ mg.zeros(0, 3) }, { batch_size = 4, shuffle = true })
  T:eq(#E, 0, "an empty data set has no batches")
  T:eq(#epoch(E), 0, "... and iterates nothing")
  T:eq(tostring(D.DataLoader({ x, y }, { batch_size = 4, shuffle = true })),
       "DataLoader(10 samples, batch_size=4, 3 batches, shuffle)", "tostring")
  T:eq(#D.DataLoader({ x, y }), 10, "batch_size defaults to 1")
end

T:raises(function() D.DataLoader({ x, mg.range(1, 9) }, { batch_size = 2 }) end,
         "data.DataLoader: tensors have different sizes along dim 1 (10 and 9): {10,3} vs {9}", "mismatched sizes")
T:raises(function() D.DataLoader({ x, "y" }) end, "data.DataLoader: element 2 is a string, expected a tensor", "a non-tensor")
T:raises(function() D.DataLoader({}) end, "expected a list of tensors", "an empty list")
T:raises(function() D.DataLoader({ x }, { batch_size = 0 }) end, "batch_size must be a positive integer, got 0", "batch_size 0")
T:raises(function() D.DataLoader({ x }, { batch_size = 2.5 }) end, "batch_size must be a positive integer, got 2.5", "batch_size 2.5")
T:raises(function() D.DataLoader({ x }, { batchsize = 2 }) end,
         "unknown option 'batchsize' (accepted: batch_size, shuffle, drop_last)", "misspelt option")
T:raises(function() D.DataLoader({ x }, { shuffle = 1 }) end, "option 'shuffle' must be a boolean", "shuffle = 1")
T:raises(function() D.DataLoader({ mg.tensor(3) }) end, "tensor 1 is 0-dim", "a 0-dim tensor")
T:done()
