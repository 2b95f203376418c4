-- Misuse corpus, part 3: checkpoints (mg.save/mg.load with bad paths, bad values
-- and corrupt files written here), data readers, DataLoader, util (progress,
-- Logger, plot), threads/seeds and plugins. Each bad call must raise a Lua error
-- naming the operation and what was wrong; the process must survive them all.
local mg = require("moongrad")
local T = mg.test()

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local function P(name) return dir .. "/" .. name end
local function writeall(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
local function readall(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end

-- a good checkpoint, then damaged copies of it
mg.save(P("good.safetensors"), {w = mg.ones(4, 3), b = mg.zeros(3), step = 7})
local good = readall(P("good.safetensors"))
local hlen = string.unpack("<I8", good)
writeall(P("empty.st"), "")
writeall(P("short.st"), good:sub(1, 5))
writeall(P("cut_header.st"), good:sub(1, 8 + hlen // 2))
writeall(P("cut_data.st"), good:sub(1, #good - 7))
writeall(P("huge_len.st"), string.pack("<I8", 1 << 62) .. good:sub(9))
writeall(P("bad_json.st"), string.pack("<I8", 5) .. "{nope" .. good:sub(9 + hlen))
writeall(P("not_object.st"), string.pack("<I8", 2) .. "[]")
writeall(P("bad_dtype.st"), (function()
  local h = '{"x":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}'
  return string.pack("<I8", #h) .. h .. ("\0"):rep(8)
end)())
writeall(P("bad_offsets.st"), (function()
  local h = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}'
  return string.pack("<I8", #h) .. h .. ("\0"):rep(8)
end)())
writeall(P("shape_mismatch.st"), (function()
  local h = '{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}'
  return string.pack("<I8", #h) .. h .. ("\0"):rep(8)
end)())
writeall(P("neg_shape.st"), (function()
  local h = '{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}'
  return string.pack("<I8", #h) .. h .. ("\0"):rep(8)
end)())
writeall(P("huge_shape.st"), (function()
  local h = '{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}'
  return string.pack("<I8", #h) .. h .. ("\0"):rep(8)
end)())
writeall(P("garbage.st"), ("\255"):rep(64))
local flipped = good:sub(1, 8) .. good:sub(9, 8 + hlen):gsub('"shape"', '"shapf"', 1) .. good:sub(9 + hlen)
writeall(P("no_shape.st"), flipped)
local cyc = {}
cyc.self = cyc

-- data files
writeall(P("ragged.csv"), "1,2,3\n4,5\n")
writeall(P("words.csv"), "1,2\n3,abc\n")
writeall(P("empty.csv"), "")
writeall(P("bad.idx"), "\0\0\8\1\0\0\0\5abc")       -- says 5 bytes, has 3
writeall(P("badmagic.idx"), "\1\2\3\4\0\0\0\1x")
writeall(P("notgz.idx.gz"), "\31\139garbage")
writeall(P("metrics.csv"), "step,loss\n1,0.5\n2,0.25\n")
writeall(P("text.csv"), "step,name\n1,a\n2,b\n")

local x, y = mg.zeros(10, 3), mg.zeros(10)
local out_sink = {write = function() end}

local cases = {
  -- mg.save
  {function() return mg.save() end, "save: argument #1: expected a file path, got no value", "save without arguments"},
  {function() return mg.save(P("a.st")) end, "save: expected a tensor or a table to save, got nothing", "save without a value"},
  {function() return mg.save(P("a.st"), 5) end, "save: expected a tensor or a table, got number", "save a bare number"},
  {function() return mg.save(P("a.st"), print) end, "save: expected a tensor or a table, got function", "save a function"},
  {function() return mg.save(nil, mg.ones(2)) end, "save: argument #1: expected a file path, got nil", "save to a nil path"},
  {function() return mg.save(dir .. "/no/such/dir/x.st", mg.ones(2)) end, "save: " .. dir .. "/no/such/dir/x.st: cannot create", "save into a missing directory"},
  {function() return mg.save(dir, mg.ones(2)) end, "save: " .. dir .. ": cannot write", "save onto a directory"},
  {function() return mg.save(P("a.st"), {f = print}) end, "save: value at 'f' is a function", "save a table holding a function"},
  {function() return mg.save(P("a.st"), {c = coroutine.create(print)}) end, "save: value at 'c' is a thread", "save a table holding a coroutine"},
  {function() return mg.save(P("a.st"), {u = io.stdout}) end, "save: value at 'u' is a FILE*", "save a table holding a file"},
  {function() return mg.save(P("a.st"), cyc) end, "contains itself (a cycle)", "save a cyclic table"},
  {function() return mg.save(P("a.st"), {[true] = 1}) end, "save: keys must be strings or integers", "save a boolean key"},
  {function() return mg.save(P("a.st"), {[""] = 1}) end, "save: empty key in the table at", "save an empty key"},
  {function() return mg.save(P("a.st"), {["a.b"] = 1, a = {b = 2}}) end, "would both be saved as 'a.b'", "save colliding dotted keys"},
  {function() return mg.save(P("a.st"), {[1.5] = 1}) end, "save: keys must be strings or integers", "save a fractional key"},
  -- mg.load
  {function() return mg.load() end, "load: argument #1: expected a file path, got no value", "load without a path"},
  {function() return mg.load(P("missing.st")) end, "load: " .. P("missing.st"), "load a missing file"},
  {function() return mg.load(dir) end, "load: " .. dir, "load a directory"},
  {function() return mg.load(P("empty.st")) end, "load: " .. P("empty.st"), "load an empty file"},
  {function() return mg.load(P("short.st")) end, "load: " .. P("short.st"), "load a 5-byte file"},
  {function() return mg.load(P("cut_header.st")) end, "load: " .. P("cut_header.st"), "load a file cut in its header"},
  {function() return mg.load(P("cut_data.st")) end, "load: " .. P("cut_data.st"), "load a file cut in its data"},
  {function() return mg.load(P("huge_len.st")) end, "load: " .. P("huge_len.st"), "load a header length of 2^62"},
  {function() return mg.load(P("bad_json.st")) end, "load: " .. P("bad_json.st"), "load a header that is not JSON"},
  {function() return mg.load(P("not_object.st")) end, "load: " .. P("not_object.st"), "load a JSON array header"},
  {function() return mg.load(P("bad_dtype.st")) end, "dtype 'Q9' is not supported", "load an unknown dtype"},
  {function() return mg.load(P("bad_offsets.st")) end, "load: " .. P("bad_offsets.st"), "load offsets past the end"},
  {function() return mg.load(P("shape_mismatch.st")) end, "load: " .. P("shape_mismatch.st"), "load shape/offsets mismatch"},
  {function() return mg.load(P("neg_shape.st")) end, "load: " .. P("neg_shape.st"), "load a negative shape"},
  {function() return mg.load(P("huge_shape.st")) end, "load: " .. P("huge_shape.st"), "load an overflowing shape"},
  {function() return mg.load(P("garbage.st")) end, "load: " .. P("garbage.st"), "load garbage bytes"},
  {function() return mg.load(P("no_shape.st")) end, "load: " .. P("no_shape.st"), "load an entry without a shape"},

  -- data readers
  {function() return mg.data.idx() end, "data.idx: expected a file path (string), got nil", "idx without a path"},
  {function() return mg.data.idx(P("bad.idx")) end, "data.idx: " .. P("bad.idx"), "idx truncated"},
  {function() return mg.data.idx(P("badmagic.idx")) end, "data.idx: " .. P("badmagic.idx"), "idx bad magic"},
  {function() return mg.data.idx(P("notgz.idx.gz")) end, P("notgz.idx.gz"), "idx corrupt gzip"},
  {function() return mg.data.idx(dir) end, "data.idx: " .. dir, "idx of a directory"},
  {function() return mg.data.csv(nil) end, "data.csv: expected a file path (string), got nil", "csv without a path"},
  {function() return mg.data.csv(P("missing.csv")) end, "data.csv: " .. P("missing.csv"), "csv missing file"},
  {function() return mg.data.csv(P("ragged.csv")) end, "data.csv: " .. P("ragged.csv"), "csv ragged rows"},
  {function() return mg.data.csv(P("words.csv")) end, "data.csv: " .. P("words.csv"), "csv non-numeric cell"},
  {function() return mg.data.csv(P("empty.csv")) end, "data.csv: " .. P("empty.csv"), "csv empty file"},
  {function() return mg.data.csv(P("metrics.csv"), {header = "yes"}) end, "data.csv: option 'header' must be a boolean, got string", "csv header not a boolean"},
  {function() return mg.data.csv(P("metrics.csv"), {headr = true}) end, "data.csv: unknown option 'headr'", "csv misspelt option"},
  {function() return mg.data.csv(P("metrics.csv"), {delimiter = ";;"}) end, "data.csv: option 'delimiter' must be a one-character string", "csv long delimiter"},
  {function() return mg.data.csv(P("metrics.csv"), "header") end, "data.csv: options must be a table, got string", "csv options not a table"},
  {function() return mg.data.fashion_mnist("validation") end, "data.fashion_mnist: split must be 'train' or 'test', got", "fashion_mnist unknown split"},
  {function() return mg.data.fashion_mnist("train", 5) end, "data.fashion_mnist: dir must be a string, got number", "fashion_mnist numeric dir"},
  {function() return mg.data.fashion_mnist("train", dir) end, "not found in " .. dir, "fashion_mnist empty dir"},
  -- DataLoader
  {function() return mg.data.DataLoader() end, "DataLoader: expected a list of tensors {x, y, ...}, got nil", "DataLoader without data"},
  {function() return mg.data.DataLoader({x, 5}) end, "DataLoader: element 2 is a number, expected a tensor", "DataLoader with a number"},
  {function() return mg.data.DataLoader({x, mg.zeros(9)}) end, "DataLoader: tensors have different sizes along dim 1 (10 and 9)", "DataLoader size mismatch"},
  {function() return mg.data.DataLoader({mg.tensor(3)}) end, "DataLoader: tensor 1 is 0-dim", "DataLoader 0-dim tensor"},
  {function() return mg.data.DataLoader({x, y}, {batch_size = 0}) end, "DataLoader: batch_size must be a positive integer, got 0", "DataLoader batch 0"},
  {function() return mg.data.DataLoader({x, y}, {batch_size = 2.5}) end, "DataLoader: batch_size must be a positive integer, got 2.5", "DataLoader fractional batch"},
  {function() return mg.data.DataLoader({x, y}, {batch_size = 0 / 0}) end, "DataLoader: batch_size must be a positive integer", "DataLoader NaN batch"},
  {function() return mg.data.DataLoader({x, y}, {shuffle = "yes"}) end, "DataLoader: option 'shuffle' must be a boolean, got string", "DataLoader string shuffle"},
  {function() return mg.data.DataLoader({x, y}, {batchsize = 4}) end, "DataLoader: unknown option 'batchsize'", "DataLoader misspelt option"},

  -- util
  {function() return mg.util.progress(-1) end, "progress: total must be a non-negative number or nil, got -1", "progress negative total"},
  {function() return mg.util.progress(0 / 0) end, "progress: total must be a non-negative number or nil", "progress NaN total"},
  {function() return mg.util.progress("ten") end, "progress: total must be a non-negative number or nil, got ten", "progress string total"},
  {function() return mg.util.progress(10, 5) end, "progress: options must be a table, got number", "progress options not a table"},
  {function() return mg.util.progress(10, {out = 5}) end, "progress: 'out' must be a file or an object with :write, got number", "progress bad out"},
  {function() return mg.util.progress(10, {out = out_sink, width = -3}) end, "progress: 'width' must be a positive number, got -3", "progress negative width"},
  {function() return mg.util.progress(10, {out = out_sink}):update("x") end, "progress:update: expected a number of items done, got x", "progress update string"},
  {function() return mg.util.progress(10, {out = out_sink}):advance(0 / 0) end, "progress:advance: expected a number of items", "progress advance NaN"},
  {function() return mg.util.Logger() end, "Logger: expected a file path, got nil", "Logger without a path"},
  {function() return mg.util.Logger(P("l.csv"), {}) end, "Logger: fields must be a non-empty array of column names", "Logger empty fields"},
  {function() return mg.util.Logger(P("l.csv"), {"a", 3}) end, "Logger: field 2 is a number, expected a string", "Logger numeric field"},
  {function() return mg.util.Logger(P("l.csv"), {"a", "a"}) end, "Logger: field 'a' given twice", "Logger duplicate field"},
  {function() return mg.util.Logger(dir .. "/no/such/dir/l.csv") end, "Logger: cannot open", "Logger in a missing directory"},
  {function() return mg.util.Logger(P("metrics.csv"), {"epoch", "acc"}) end, "Logger: " .. P("metrics.csv") .. " has columns (step, loss)", "Logger appending with other columns"},
  {function() local l = mg.util.Logger(P("l2.csv")); l:log(5) end, "Logger:log: expected a table of values, got number", "Logger:log a number"},
  {function() local l = mg.util.Logger(P("l3.csv")); l:log({[1] = 2}) end, "expected string keys in a metrics table", "Logger:log an array"},
  {function() local l = mg.util.Logger(P("l4.csv")); l:log({a = 1}); l:close(); l:log({a = 2}) end, "Logger:log: " .. P("l4.csv") .. " is closed", "Logger:log after close"},
  {function() local l = mg.util.Logger(P("l5.csv"), {"a"}); l:log({b = 1}) end, "Logger:log: field 'b' is not a column of", "Logger:log unknown field"},
  {function() return mg.util.plot() end, "plot: expected a CSV path, got nil", "plot without arguments"},
  {function() return mg.util.plot(P("metrics.csv")) end, "plot: expected an SVG output path, got nil", "plot without an output"},
  {function() return mg.util.plot(P("metrics.csv"), P("o.svg"), 5) end, "plot: options must be a table, got number", "plot options not a table"},
  {function() return mg.util.plot(P("missing.csv"), P("o.svg")) end, "plot: cannot open", "plot a missing CSV"},
  {function() return mg.util.plot(P("empty.csv"), P("o.svg")) end, "plot: " .. P("empty.csv") .. " is empty", "plot an empty CSV"},
  {function() return mg.util.plot(P("metrics.csv"), P("o.svg"), {y = "acc"}) end, "plot: column 'acc' not in", "plot an unknown column"},
  {function() return mg.util.plot(P("metrics.csv"), P("o.svg"), {x = "epoch"}) end, "plot: column 'epoch' not in", "plot an unknown x column"},
  {function() return mg.util.plot(P("metrics.csv"), P("o.svg"), {y = {}}) end, "plot: 'y' must be a column name or a non-empty list", "plot an empty y list"},
  {function() return mg.util.plot(P("metrics.csv"), P("o.svg"), {panels = "many"}) end, "plot: 'panels' must be", "plot unknown panels"},
  {function() return mg.util.plot(P("text.csv"), P("o.svg")) end, "plot: no numeric column to plot", "plot a CSV without numbers"},
  {function() return mg.util.plot(P("metrics.csv"), dir .. "/no/such/dir/o.svg") end, "plot: cannot write", "plot into a missing directory"},

  -- threads, seeds, plugins
  {function() return mg.set_num_threads(-1) end, "set_num_threads: expected 1..1024 threads, got -1", "negative threads"},
  {function() return mg.set_num_threads(100000) end, "set_num_threads: expected 1..1024 threads, got 100000", "too many threads"},
  {function() return mg.set_num_threads("four") end, "set_num_threads: argument #1: expected a thread count (integer), got string", "threads as a string"},
  {function() return mg.set_num_threads(1.5) end, "set_num_threads: argument #1: expected a thread count (integer), got 1.5", "fractional threads"},
  {function() return mg.manual_seed(1.5) end, "manual_seed: expected an integer seed, got number", "fractional seed"},
  {function() return mg.manual_seed() end, "manual_seed: expected an integer seed, got no value", "seed without a value"},
  {function() return mg.load_plugin(P("missing.so")) end, "load_plugin: " .. P("missing.so") .. ": no such file", "load_plugin missing file"},
  {function() return mg.load_plugin(P("metrics.csv")) end, "load_plugin: " .. P("metrics.csv") .. ": cannot load", "load_plugin a text file"},
  {function() return mg.load_plugin() end, "load_plugin: argument #1: expected a plugin file path, got no value", "load_plugin without a path"},
  {function() return mg.load_plugin("") end, "load_plugin: empty path", "load_plugin empty path"},
}

local n = T:raises_each(cases)
T:ok(n >= 90, ("at least 90 misuse cases here (%d)"):format(n))
-- extreme values in a data file: plot finishes (it once looped forever on a +-1e308 range)
writeall(P("extreme.csv"), "step,loss\n1,1e308\n2,-1e308\n3,inf\n4,nan\n")
T:eq(select(2, pcall(mg.util.plot, P("extreme.csv"), P("x.svg"))), P("x.svg"), "plot of a +-1e308 column finishes")
T:eq(select(2, pcall(mg.util.plot, P("extreme.csv"), P("x.svg"), {logy = true})), P("x.svg"), "plot of a +-1e308 column on a log axis finishes")
-- nothing was corrupted: the good checkpoint still loads, and save still works
local back = mg.load(P("good.safetensors"))
T:near(back.w, mg.ones(4, 3), 0, "the good checkpoint is intact after every misuse")
T:eq(back.step, 7, "its metadata too")
T:eq(io.open(P("a.st"), "rb"), nil, "no failed save left a file behind")
mg.save(P("after.st"), {t = mg.ones(2)})
T:near(mg.load(P("after.st")).t, {1, 1}, 0, "save/load still work after every misuse")
os.execute("rm -rf '" .. dir .. "'")
T:done()
