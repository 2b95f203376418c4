-- A tensor is recognised by a secret tag in its userdata, not by its metatable:
-- other userdata (here io.stdout, a full userdata of the same 16 bytes) must be
-- rejected with an error wherever a tensor is expected, also when a tensor
-- metamethod is called on it directly or it is given the tensor metatable.
local mg = require("moongrad")
local T = mg.test()

local a = mg.tensor({1, 2})
local mt = getmetatable(a)
local f = io.stdout

T:raises_each({
  {function() return a + f end, "add: argument #2: expected a tensor or a number, got FILE*", "file as operand 2"},
  {function() return f * a end, "mul: argument #1: expected a tensor or a number, got FILE*", "file as operand 1"},
  {function() return mt.__add(f, f) end, "add: expected a tensor operand, got FILE* and FILE*", "__add on two files"},
  {function() return mt.__index(f, "grad") end, "index: argument #1: expected a tensor, got FILE*", "__index on a file"},
  {function() return mt.__tostring(f) end, "tostring: argument #1: expected a tensor, got FILE*", "__tostring on a file"},
  {function() return mt.__unm(f) end, "neg: argument #1: expected a tensor, got FILE*", "__unm on a file"},
  {function() return mg.exp(f) end, "expected a tensor", "mg.exp of a file"},
  {function() return a + 0x7fffffff end, nil, "a number operand still works"},
})

-- the finaliser and __close ignore what is not a tensor
T:ok(pcall(mt.__gc, f), "__gc on a file returns")
T:ok(pcall(mt.__close, f), "__close on a file returns")
T:eq(io.type(f), "file", "the file is untouched")

-- a userdata given the tensor metatable (debug library) is still not a tensor
local g = io.stderr
local old = debug.getmetatable(g)
debug.setmetatable(g, mt)
local ok, err = pcall(function() return g + a end)
debug.setmetatable(g, old)
T:ok(not ok and err:find("add: argument #1: expected a tensor or a number, got", 1, true),
     "a file with the tensor metatable is rejected: " .. tostring(err))

-- closed tensors are still recognised, as closed
local closed
do
  local c <close> = mg.tensor({5})
  closed = c
end
T:raises(function() return closed + a end, "add: argument #1: tensor was closed", "closed tensor as operand")
T:eq(tostring(closed), "tensor(closed)", "tostring of a closed tensor")

T:near((a + a):totable(), {2, 4}, 0, "real tensors still add")
T:near((a * 3 - 1):totable(), {2, 5}, 0, "and mix with numbers")
T:done()
