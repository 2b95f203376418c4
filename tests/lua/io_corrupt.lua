-- mg.load on damaged checkpoints: every truncation, and thousands of random
-- header mutations (names, types, keys, offsets), end in a clear "load: <file>: ..."
-- error or in a successful load, never in a crash or a different kind of error.
local mg = require("moongrad")
local T = mg.test()

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local src, bad = dir .. "/src.safetensors", dir .. "/bad.safetensors"
local function writeall(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end

mg.save(src, { model = { ["1.weight"] = mg.ones(2, 2), ["2"] = mg.zeros(1, { dtype = "float64" }) },
               opt = { lr = 0.5, s = { [1] = { m = mg.ones(3) } }, name = "x\0y", on = true }, e = {}, n = 3 })
local f = assert(io.open(src, "rb"))
local s = f:read("a")
f:close()
local hlen = string.unpack("<I8", s)

-- every truncation
local cut_ok = 0
for len = 0, #s - 1 do
  writeall(bad, s:sub(1, len))
  local ok, err = pcall(mg.load, bad)
  if not ok and tostring(err):find("load: " .. bad .. ": ", 1, true) then cut_ok = cut_ok + 1 end
end
T:eq(cut_ok, #s, ("all %d truncations refused with 'load: <file>: ...'"):format(#s))

-- random header mutations, biased towards JSON punctuation and type letters
local interesting = { 34, 46, 92, 123, 125, 91, 93, 44, 58, 48, 49, 45, 105, 110, 115, 116, 120, 84, 32 }
math.randomseed(99) -- reproducible
local loaded, refused, odd = 0, 0, 0
for _ = 1, 2500 do
  local b = { s:byte(1, 8 + hlen) }
  for _ = 1, math.random(3) do
    b[8 + math.random(hlen)] = interesting[math.random(#interesting)]
  end
  writeall(bad, string.char(table.unpack(b)) .. s:sub(9 + hlen))
  local ok, v = pcall(mg.load, bad)
  if ok then
    loaded = loaded + 1
    if type(v) ~= "table" and type(v) ~= "userdata" then odd = odd + 1 end
  elseif tostring(v):find("load: " .. bad .. ": ", 1, true) then refused = refused + 1
  else
    odd = odd + 1
    if odd <= 3 then T:diag("unexpected error: " .. tostring(v)) end
  end
end
T:diag(("%d mutated files loaded, %d refused"):format(loaded, refused))
T:eq(odd, 0, "every mutated header loads or fails with 'load: <file>: ...'")
T:ok(loaded > 0 and refused > 0, "the mutations reach both outcomes")
os.execute("rm -rf '" .. dir .. "'")
T:done()
