-- mg.save / mg.load: nested round trips, exact values, the file format, errors.
local mg = require("moongrad")
local T = mg.test()

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local function P(name) return dir .. "/" .. name end
local function readall(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function writeall(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
local function same_tensor(a, b)
  if type(a) ~= "userdata" then return false end
  if a:dtype() ~= b:dtype() or table.concat(a:shape(), ",") ~= table.concat(b:shape(), ",") then return false end
  local x, y = a:contiguous():view(-1), b:contiguous():view(-1)
  for i = 1, a:numel() do
    local u, v = x:get(i), y:get(i)
    if not (u == v or (u ~= u and v ~= v)) then return false end
  end
  return true
end

-- a model-and-optimizer-like structure
local w1 = mg.tensor({ { 1, -2, 3.5 }, { 0, 1e-30, -7 } })
local b1 = mg.tensor({ 0.1, 0.2 }, { dtype = "float64" })
local big = mg.randn(17, 33)
local state = {
  model = { layers = { { weight = w1, bias = b1 }, { weight = big } } },
  optim = { lr = 1e-3, betas = { 0.9, 0.999 }, step = 1200, amsgrad = false, name = "adam",
            state = { [1] = { exp_avg = mg.zeros(2, 3) } } },
  epoch = 7, best = 0.1 + 0.2, tiny = 5e-324, neg_zero = -0.0, inf = math.huge, ninf = -math.huge,
  maxint = math.maxinteger, minint = math.mininteger, flag = true, note = "héllo \"quoted\"\n\ttab",
  bytes = "\0\1\255binary\128", empty = {}, nested_empty = { a = {} }, sparse = { [3] = 1, [-2] = 2, [0] = 3 },
  intlike = { ["07"] = 1, ["-0"] = 2 },
}
mg.save(P("ck.safetensors"), state)
local r, meta = mg.load(P("ck.safetensors"))

T:ok(same_tensor(r.model.layers[1].weight, w1), "float32 tensor round-trips (dtype, shape, values)")
T:ok(same_tensor(r.model.layers[1].bias, b1), "float64 tensor keeps its dtype")
T:ok(same_tensor(r.model.layers[2].weight, big), "a 17x33 randn tensor is bit-identical")
T:ok(same_tensor(r.optim.state[1].exp_avg, mg.zeros(2, 3)), "integer keys nest: optim.state[1].exp_avg")
T:eq(math.type(r.optim.step), "integer", "integers stay integers")
T:eq(r.optim.step, 1200, "integer value")
T:eq(math.type(r.optim.lr), "float", "floats stay floats")
T:eq(r.optim.lr, 1e-3, "1e-3 exact")
T:eq(r.best, 0.1 + 0.2, "0.1 + 0.2 exact (17 significant digits)")
T:eq(r.tiny, 5e-324, "smallest denormal exact")
T:eq(1 / r.neg_zero, -math.huge, "-0.0 keeps its sign")
T:eq(r.inf, math.huge, "inf")
T:eq(r.ninf, -math.huge, "-inf")
T:eq(r.maxint, math.maxinteger, "math.maxinteger")
T:eq(r.minint, math.mininteger, "math.mininteger")
T:eq(r.optim.betas[1], 0.9, "array element 1")
T:eq(r.optim.betas[2], 0.999, "array element 2")
T:eq(#r.optim.betas, 2, "array length")
T:eq(r.optim.amsgrad, false, "false stays false (not nil)")
T:eq(r.flag, true, "true")
T:eq(r.optim.name, "adam", "string")
T:eq(r.note, state.note, "UTF-8, quotes, newline and tab in a string")
T:eq(r.bytes, state.bytes, "binary string with NUL and invalid UTF-8 bytes")
T:eq(type(r.empty), "table", "empty table restored")
T:eq(next(r.empty), nil, "... and empty")
T:eq(type(r.nested_empty.a), "table", "nested empty table restored")
T:eq(r.sparse[3], 1, "sparse integer key 3")
T:eq(r.sparse[-2], 2, "negative integer key")
T:eq(r.sparse[0], 3, "zero key")
T:eq(r.intlike["07"], 1, "string key '07' stays a string")
T:eq(r.intlike["-0"], 2, "string key '-0' stays a string")
T:eq(meta["moongrad.format"], "1", "second result: the raw metadata (format)")
T:eq(meta.epoch, "7", "raw metadata holds numbers as text")
T:ok(meta["moongrad.crc32"] ~= nil and #meta["moongrad.crc32"] == 8, "a CRC-32 is stored")

-- every key present in the original is present after loading, and nothing else
local function count(t)
  local n = 0
  for _, v in pairs(t) do n = n + ((type(v) == "table") and count(v) + 1 or 1) end
  return n
end
T:eq(count(r), count(state), "same number of entries at every level")

-- the file as another tool sees it: tensor names are the dotted paths
local s = readall(P("ck.safetensors"))
local hlen = string.unpack("<I8", s)
local header = s:sub(9, 8 + hlen)
T:ok(header:find('"model.layers.1.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[', 1, true) ~= nil,
     "header entry for model.layers.1.weight (F32, [2,3])")
T:ok(header:find('"model.layers.1.bias":{"dtype":"F64","shape":[2]', 1, true) ~= nil, "F64 entry for the bias")
T:ok(header:find('"optim.betas.1":"0.90000000000000002"', 1, true) ~= nil, "numbers in __metadata__ as %.17g text")
T:eq((8 + hlen) % 8, 0, "data section aligned to 8 bytes")

-- state_dict-style flat dotted keys: saved under the dotted names, loaded as they were
local sd = { ["1.weight"] = w1, ["1.bias"] = b1, ["fc.out.weight"] = big, ["bn.num_batches_tracked"] = 3 }
mg.save(P("sd.st"), { model = sd, nested = { [1] = { weight = w1 } }, str = { ["3"] = "s", [4] = "i" } })
local l = mg.load(P("sd.st"))
T:ok(same_tensor(l.model["1.weight"], w1), "key '1.weight' comes back as one key")
T:ok(same_tensor(l.model["fc.out.weight"], big), "key 'fc.out.weight' comes back as one key")
T:eq(l.model.bn, nil, "... not as nested tables")
T:eq(l.model["bn.num_batches_tracked"], 3, "a dotted key with a number")
T:ok(same_tensor(l.nested[1].weight, w1), "a real nested table next to them stays nested")
T:eq(l.str["3"], "s", "string key '3' stays a string")
T:eq(l.str[4], "i", "integer key 4 stays an integer")
T:eq(l.str[3], nil, "... and '3' is not an integer key")
local raw = readall(P("sd.st"))
T:ok(raw:find('"model.1.weight":{', 1, true) ~= nil, "the file names the tensor 'model.1.weight'")
T:ok(raw:find('\\"model.1.weight\\":[\\"ss\\",\\"model\\",\\"1.weight\\"]', 1, true) ~= nil,
     "moongrad.keys records the keys of 'model.1.weight'")
T:raises(function() mg.save(P("e.st"), { a = { ["b.c"] = 1 }, ["a.b"] = { c = 2 } }) end,
         "two values would both be saved as 'a.b.c'", "two spellings of one dotted name")
T:raises(function() mg.save(P("e.st"), { ["3"] = 1, [3] = 2 }) end, "two values would both be saved as '3'",
         "string key '3' next to integer key 3")

-- a bare tensor
mg.save(P("t.safetensors"), big)
local t2 = mg.load(P("t.safetensors"))
T:ok(same_tensor(t2, big), "a bare tensor loads as a tensor")
-- non-contiguous tensors and views are saved as their values
local tr = big:t()
mg.save(P("v.safetensors"), { tr = tr, row = big[3] })
local v = mg.load(P("v.safetensors"))
T:ok(same_tensor(v.tr, tr), "a transposed (non-contiguous) tensor saves its values")
T:ok(same_tensor(v.row, big[3]), "a row view saves just the row")
-- 0-dim and empty tensors
mg.save(P("z.safetensors"), { s = mg.tensor(2.5), e = mg.zeros(0, 4) })
local z = mg.load(P("z.safetensors"))
T:eq(z.s:dim(), 0, "0-dim tensor stays 0-dim")
T:eq(z.s:item(), 2.5, "0-dim value")
T:eq(table.concat(z.e:shape(), ","), "0,4", "empty {0,4} tensor")
-- overwriting a checkpoint
mg.save(P("ck.safetensors"), { epoch = 8 })
T:eq(mg.load(P("ck.safetensors")).epoch, 8, "saving again replaces the checkpoint")

-- an interrupted save (a killed writer leaves its temporary file) leaves the checkpoint intact
mg.save(P("int.st"), { version = 1, w = mg.ones(100) })
local full = readall(P("int.st"))
writeall(P("int.st") .. ".tmp.99999.0", full:sub(1, #full // 2))
local iv = mg.load(P("int.st"))
T:eq(iv.version, 1, "with a half-written temporary file next to it, the previous checkpoint loads")
mg.save(P("int.st"), { version = 2, w = mg.ones(100) })
T:eq(mg.load(P("int.st")).version, 2, "the next save succeeds and replaces it")

-- errors at save time
T:raises(function() mg.save(P("e.st"), { ["a..b"] = 1 }) end, "key 'a..b' (in '(root)') would make an empty part",
         "'..' in a key")
T:raises(function() mg.save(P("e.st"), { x = { [".a"] = 1 } }) end, "key '.a' (in 'x') would make an empty part",
         "a key starting with '.'")
T:raises(function() mg.save(P("e.st"), { ["a.b"] = mg.ones(1), a = { b = mg.ones(1) } }) end,
         "two values would both be saved as 'a.b'", "a dotted key colliding with a nested key (tensors)")
T:raises(function() mg.save(P("e.st"), { ["a.b"] = 1, a = { b = 2 } }) end,
         "two values would both be saved as 'a.b'", "a dotted key colliding with a nested key (numbers)")
T:raises(function() mg.save(P("e.st"), { x = { [""] = 1 } }) end, "empty key in the table at 'x'", "empty key")
T:raises(function() mg.save(P("e.st"), { f = print }) end, "value at 'f' is a function", "a function value")
T:raises(function() mg.save(P("e.st"), { [1.5] = 1 }) end, "has a non-integer number key", "a float key")
T:raises(function() mg.save(P("e.st"), { [true] = 1 }) end, "has a boolean key", "a boolean key")
local cyc = {}
cyc.self = cyc
T:raises(function() mg.save(P("e.st"), { c = cyc }) end, "the table at 'c.self' contains itself", "a cycle")
T:raises(function() mg.save(P("e.st"), 42) end, "expected a tensor or a table, got number", "a number at the root")
T:raises(function() mg.save(P("e.st")) end, "got nothing", "nothing to save")
T:raises(function() mg.save(P("e.st"), { moongrad = { types = "x" } }) end, "'moongrad.types' is reserved",
         "reserved metadata key")
T:raises(function() mg.save(dir .. "/no/such/dir/x.st", { a = 1 }) end, "save: " .. dir .. "/no/such/dir/x.st",
         "unwritable path: message names it")
local shared = { 1, 2 }
mg.save(P("shared.st"), { a = shared, b = shared })
T:eq(mg.load(P("shared.st")).b[2], 2, "a table referenced twice (not a cycle) saves")
T:ok(readall(P("shared.st")) ~= nil and io.open(P("e.st")) == nil, "nothing written by refused saves")

-- errors at load time: always a clear message, never a crash
mg.save(P("good.st"), { w = big, epoch = 3 })
local good = readall(P("good.st"))
writeall(P("cut.st"), good:sub(1, #good - 100))
T:raises(function() mg.load(P("cut.st")) end, "load: " .. P("cut.st") .. ": truncated", "truncated file")
local flipped = good:sub(1, #good - 10) .. string.char(good:byte(#good - 9) ~ 4) .. good:sub(#good - 8)
writeall(P("flip.st"), flipped)
T:raises(function() mg.load(P("flip.st")) end, "checksum mismatch", "a flipped bit in the data")
writeall(P("junk.st"), "this is not a checkpoint at all")
T:raises(function() mg.load(P("junk.st")) end, "load: " .. P("junk.st") .. ": ", "a text file")
writeall(P("empty.st"), "")
T:raises(function() mg.load(P("empty.st")) end, "too short for a safetensors file", "an empty file")
T:raises(function() mg.load(P("missing.st")) end, "load: " .. P("missing.st") .. ": cannot open", "a missing file")
local hdr = '{"__metadata__":{"moongrad.types":"{\\"a\\":\\"i\\"}"}}'
writeall(P("badval.st"), string.pack("<I8", #hdr) .. hdr)
T:raises(function() mg.load(P("badval.st")) end, "entry 'a' is listed in moongrad.types but missing", "types without value")
hdr = '{"__metadata__":{"a":"x1","moongrad.types":"{\\"a\\":\\"i\\"}"}}'
writeall(P("badint.st"), string.pack("<I8", #hdr) .. hdr)
T:raises(function() mg.load(P("badint.st")) end, "entry 'a': 'x1' is not an integer", "malformed integer")
hdr = '{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a.b":{"dtype":"F32","shape":[],"data_offsets":[4,8]}}'
writeall(P("conflict.st"), string.pack("<I8", #hdr) .. hdr .. string.rep("\0", 8))
T:raises(function() mg.load(P("conflict.st")) end, "entry 'a.b' conflicts with another entry", "a tensor and a table at one key")

-- a file from another tool: no moongrad metadata, F16 and I64 data, header padding
hdr = '{"__metadata__":{"format":"pt"},"emb.weight":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},'
  .. '"ids":{"dtype":"I64","shape":[1],"data_offsets":[4,12]}}  '
writeall(P("foreign.st"), string.pack("<I8", #hdr) .. hdr .. string.pack("<I2I2i8", 0x3C00, 0xC000, -3))
local f, fm = mg.load(P("foreign.st"))
T:eq(f.emb.weight:dtype(), "float32", "F16 loads as float32")
T:near(f.emb.weight, { 1, -2 }, 0, "F16 values")
T:eq(f.ids:dtype(), "float64", "I64 loads as float64")
T:eq(f.ids:get(1), -3, "I64 value")
T:eq(fm.format, "pt", "foreign metadata in the second result")
T:eq(f.format, nil, "foreign metadata is not mixed into the tensors")

os.execute("rm -rf '" .. dir .. "'")
T:done()
