-- mg.data.idx and mg.data.csv on small synthetic files, well-formed and not.
local mg = require("moongrad")
local T = mg.test()

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local function P(name) return dir .. "/" .. name end
local function writeall(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
-- fn must fail with a message containing every part
local function refuses(fn, parts, name)
  local ok, err = pcall(fn)
  local good = not ok
  for _, part in ipairs(parts) do good = good and tostring(err):find(part, 1, true) ~= nil end
  T:ok(good, name)
  if not good then T:diag("  got: " .. (ok and "no error" or tostring(err))) end
end
local function gz(p) assert(os.execute("gzip -kf '" .. p .. "'")); return p .. ".gz" end

-- IDX: header 0 0 code ndim, big-endian u32 dims, big-endian data
local function idx(code, dims, payload)
  local h = string.char(0, 0, code, #dims)
  for _, d in ipairs(dims) do h = h .. string.pack(">I4", d) end
  return h .. payload
end

local cases = {
  { 0x08, { 2, 3 }, string.char(0, 1, 2, 127, 128, 255), { { 0, 1, 2 }, { 127, 128, 255 } }, "ubyte {2,3}" },
  { 0x09, { 3 }, string.char(255, 128, 5), { -1, -128, 5 }, "signed byte" },
  { 0x0B, { 2 }, string.pack(">i2>i2", -2, 300), { -2, 300 }, "short" },
  { 0x0C, { 2 }, string.pack(">i4>i4", -70000, 5), { -70000, 5 }, "int" },
  { 0x0D, { 2, 1 }, string.pack(">f>f", 1.5, -0.25), { { 1.5 }, { -0.25 } }, "float {2,1}" },
  { 0x0E, { 1 }, string.pack(">d", 0.125), { 0.125 }, "double" },
}
for _, c in ipairs(cases) do
  local p = P("a.idx")
  writeall(p, idx(c[1], c[2], c[3]))
  for _, path in ipairs({ p, gz(p) }) do
    local t = mg.data.idx(path)
    local kind = path:sub(-3) == ".gz" and "gzipped" or "plain"
    T:eq(t:dtype(), "float32", ("idx %s (%s): float32"):format(c[5], kind))
    T:eq(table.concat(t:shape(), ","), table.concat(c[2], ","), ("idx %s (%s): shape"):format(c[5], kind))
    T:near(t, c[4], 0, ("idx %s (%s): values"):format(c[5], kind))
  end
end

-- malformed IDX files: each a clear error naming the file
local bad = {
  { "\1\0\8\1" .. string.pack(">I4", 1) .. "\0", "not an IDX file: magic bytes 01 00", "bad magic" },
  { "\0\0\7\1" .. string.pack(">I4", 1) .. "\0", "unknown data type code 0x07", "bad type code" },
  { "\0\0\8\0", "0 dims", "no dims" },
  { "\0\0\8\2" .. string.pack(">I4", 1), "truncated in the IDX header", "dims cut short" },
  { idx(8, { 10 }, string.rep("\0", 9)), "promises 10 ubyte values (10 bytes), the file has 9", "data cut short" },
  { idx(8, { 2 }, "\0\0\0"), "more data than the header", "extra data" },
  { "\0\0", "too short for an IDX header", "2 bytes" },
}
for _, b in ipairs(bad) do
  local p = P("bad.idx")
  writeall(p, b[1])
  refuses(function() mg.data.idx(p) end, { "data.idx: " .. p .. ": ", b[2] }, "idx refused: " .. b[3])
  local g = gz(p)
  refuses(function() mg.data.idx(g) end, { "data.idx: " .. g .. ": ", b[2] }, "idx refused (gzipped): " .. b[3])
end
-- a gzip file cut short
writeall(P("long.idx"), idx(8, { 1000 }, string.rep("\7", 1000)))
local f = assert(io.open(gz(P("long.idx")), "rb"))
local z = f:read("a")
f:close()
writeall(P("cut.idx.gz"), z:sub(1, #z - 5))
T:raises(function() mg.data.idx(P("cut.idx.gz")) end, "cut.idx.gz: ", "a gzip stream cut short is refused")
T:raises(function() mg.data.idx(P("nope.idx")) end, "data.idx: " .. P("nope.idx") .. ": cannot open", "missing file")
T:raises(function() mg.data.idx(42) end, "data.idx: expected a file path (string), got number", "not a path")

-- CSV
writeall(P("a.csv"), "1,2,3\n4,5.5,-6e-1\n")
local t = mg.data.csv(P("a.csv"))
T:eq(table.concat(t:shape(), ","), "2,3", "csv: 2x3")
T:eq(t:dtype(), "float32", "csv: float32")
T:near(t, { { 1, 2, 3 }, { 4, 5.5, -0.6 } }, 1e-7, "csv: values")
writeall(P("h.csv"), "epoch,loss, acc\r\n1,0.5,0.25\r\n\r\n2,0.25,0.5\r\n")
local h, names = mg.data.csv(P("h.csv"), { header = true })
T:eq(table.concat(h:shape(), ","), "2,3", "csv with header: 2x3 (blank line skipped, CRLF)")
T:eq(table.concat(names, "|"), "epoch|loss|acc", "header names as the second result")
T:near(h, { { 1, 0.5, 0.25 }, { 2, 0.25, 0.5 } }, 0, "csv with header: values")
local t2, n2 = mg.data.csv(P("a.csv"), { header = false })
T:eq(n2, nil, "no names without a header")
T:eq(t2:size(1), 2, "header = false keeps line 1 as data")
writeall(P("s.csv"), '"x;1";y\n1;2\n')
local s, sn = mg.data.csv(P("s.csv"), { header = true, delimiter = ";" })
T:eq(sn[1], "x;1", "quoted name with the delimiter inside")
T:near(s, { { 1, 2 } }, 0, "';' delimiter")
writeall(P("t.csv"), "1\t2\n")
T:near(mg.data.csv(P("t.csv"), { delimiter = "\t" }), { { 1, 2 } }, 0, "tab delimiter")
writeall(P("g.csv"), "a,b\n1,2\n3,4\n")
local gt, gn = mg.data.csv(gz(P("g.csv")), { header = true })
T:near(gt, { { 1, 2 }, { 3, 4 } }, 0, "gzipped csv")
T:eq(gn[2], "b", "gzipped csv names")
writeall(P("only.csv"), "a,b,c\n")
T:eq(table.concat(mg.data.csv(P("only.csv"), { header = true }):shape(), ","), "0,3", "header only: 0x3")

local cbad = {
  { "1,2\n3\n", nil, "line 2 has 1 column, expected 2 (as line 1)", "ragged row" },
  { "1,2\n3,abc\n", nil, "line 2, column 2: 'abc' is not a number", "non-numeric cell" },
  { "a,b\n1,2\n", nil, "line 1, column 1: 'a' is not a number (if this line holds column names, pass {header = true})",
    "a header without header=true" },
  { "1,,2\n", nil, "line 1, column 2: empty cell", "empty cell" },
  { "", nil, "empty file", "empty file" },
  { "x,y\n1,2,3\n", { header = true }, "line 2 has 3 columns, expected 2 (as line 1)", "row wider than the header" },
}
for _, c in ipairs(cbad) do
  writeall(P("bad.csv"), c[1])
  T:raises(function() mg.data.csv(P("bad.csv"), c[2]) end, "data.csv: " .. P("bad.csv") .. ": " .. c[3], "csv refused: " .. c[4])
end
T:raises(function() mg.data.csv(P("a.csv"), { headers = true }) end, "unknown option 'headers' (accepted: header, delimiter)",
         "misspelt option")
T:raises(function() mg.data.csv(P("a.csv"), { delimiter = ";;" }) end, "'delimiter' must be a one-character string",
         "two-character delimiter")
T:raises(function() mg.data.csv(P("a.csv"), { header = 1 }) end, "'header' must be a boolean", "non-boolean header")
T:raises(function() mg.data.csv(P("none.csv")) end, "data.csv: " .. P("none.csv") .. ": cannot open", "missing csv")

os.execute("rm -rf '" .. dir .. "'")
T:done()
