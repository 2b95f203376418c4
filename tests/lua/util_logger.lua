-- mg.util.Logger: CSV content, header handling, column order, flushing, errors.
local mg = require("moongrad")
local T = mg.test()
local U = mg.util

local path = os.tmpname()
os.remove(path)
local function read() local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s end

do
  local log = U.Logger(path)
  log:log{ acc = 0.25, epoch = 1, loss = 0.5 }
  T:eq(read(), "epoch,loss,acc\n1,0.5,0.25\n", "header from the first row (epoch, loss first), row flushed at once")
  log:log{ epoch = 2, loss = 1 / 3, acc = 0 / 0 }
  log:log{ epoch = 3, loss = 2.0 }
  log:close()
  T:eq(read(), "epoch,loss,acc\n1,0.5,0.25\n2,0.3333333333333333,nan\n3,2,\n",
       "shortest round-trip numbers, nan, missing cell empty")
end

do -- reopening appends below the existing header, keeping its column order
  local log = U.Logger(path)
  T:eq(table.concat(log.columns, ","), "epoch,loss,acc", "columns taken from the existing header")
  log:log{ loss = 0.125, acc = 0.75, epoch = 4 }
  log:close()
  local want = "epoch,loss,acc\n1,0.5,0.25\n2,0.3333333333333333,nan\n3,2,\n4,0.125,0.75\n"
  T:eq(read(), want, "appending keeps one header")
  local log2 = U.Logger(path, { "epoch", "loss", "acc" })
  log2:log{ epoch = 5 }
  log2:close()
  T:eq(read(), want .. "5,,\n", "same explicit fields: appended")
  T:raises(function() U.Logger(path, { "epoch", "val" }) end,
           "has columns (epoch, loss, acc) but fields are (epoch, val)", "different header is an error")
  local log3 = U.Logger(path)
  T:raises(function() log3:log{ epoch = 6, foo = 1 } end,
           "field 'foo' is not a column of " .. path .. " (columns: epoch, loss, acc)", "unknown field named")
  log3:close()
end
os.remove(path)

do -- explicit field order, quoting, tensors as numbers, integers vs floats
  local log = U.Logger(path, { "step", "note", "value" })
  log:log{ step = 1, note = 'a,"b"', value = mg.tensor(1.5) }
  log:log{ step = 2, note = "plain", value = 1e-7 }
  log:close()
  T:eq(read(), 'step,note,value\n1,"a,""b""",1.5\n2,plain,1e-07\n', "fields order, CSV quoting, tensor values")
  local rows = U._csvread(read())
  T:eq(rows[2][2], 'a,"b"', "quoted cell reads back")
end
os.remove(path)

T:raises(function() U.Logger(path):log{ [1] = 2 } end, "Logger:log: expected string keys in a metrics table, got a number key")
os.remove(path)
T:raises(function() U.Logger(42) end, "Logger: expected a file path, got number")
T:raises(function() U.Logger(path, { "a", "a" }) end, "Logger: field 'a' given twice")
T:raises(function() U.Logger("/nonexistent-dir/x.csv") end, "Logger: cannot open")
T:done()
