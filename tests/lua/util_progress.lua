-- mg.util.progress: plain periodic lines when not a terminal, a redrawn bar on one.
-- The clock is replaced by a fake one so rates and ETAs are exact.
local mg = require("moongrad")
local T = mg.test()
local U = mg.util

local real_clock = mg.clock
local now = 0
mg.clock = function() return now end
local function sink()
  local s = { buf = {} }
  function s:write(x) self.buf[#self.buf + 1] = x end
  function s:text() return table.concat(self.buf) end
  return s
end
local function lines(s)
  local out = {}
  for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

do -- 1000 items at 100 it/s, not a terminal: one line per 10%
  local out = sink()
  local bar = U.progress(1000, { label = "train", out = out, min_interval = 0.5 })
  T:eq(bar.tty, false, "an object with :write is not a terminal")
  for i = 1, 1000 do now = now + 0.01; bar:update(i, { loss = 1 / i }) end
  local text = out:text()
  local ls = lines(text)
  T:eq(#ls, 10, "ten plain lines for 1000 updates")
  T:ok(not text:find("\r", 1, true), "no carriage returns")
  T:eq(ls[1], "train  10% 100/1000 [00:01<00:09, 100.00 it/s] loss=0.01", "10% line: percent, count, ETA, rate, metric")
  T:eq(ls[10], "train 100% 1000/1000 [00:10, 100.00 it/s] loss=0.001", "final line")
  bar:done()
  T:eq(#lines(out:text()), 10, "done() after completion prints nothing more")
end

do -- many fast updates never flood: 10% lines need min_interval (1 s) since the last line
  now = 0
  local out = sink()
  local bar = U.progress(100000, { out = out })
  for i = 1, 100000 do bar:update(i) end
  T:eq(#lines(out:text()), 1, "100000 instant updates -> only the final line")
  now = 0
  out = sink()
  bar = U.progress(1000, { out = out })
  for i = 1, 1000 do now = i * 0.004; bar:update(i) end
  T:eq(#lines(out:text()), 4, "a 4-second loop: lines at 30%, 60%, 90% (>= 1 s apart) and the final one")
end

do -- unknown total: a line at most every `interval` seconds, and at done
  now = 0
  local out = sink()
  local bar = U.progress(nil, { out = out, interval = 30, label = "eval" })
  for _ = 1, 100 do now = now + 1; bar:advance() end
  bar:done({ acc = 0.5 })
  local ls = lines(out:text())
  T:eq(#ls, 4, "three interval lines plus the final one")
  T:eq(ls[4], "eval 100 [01:40, 1.00 it/s] acc=0.5", "counter line without percent")
end

do -- a real file is not a terminal
  now = 0
  local f = io.tmpfile()
  local bar = U.progress(4, { out = f })
  T:eq(bar.tty, false, "a file is not a terminal")
  for _ = 1, 4 do now = now + 1; bar:advance(1, "x") end
  f:seek("set")
  T:eq(f:read("a"), " 25% 1/4 [00:01<00:03, 1.00 it/s] x\n 50% 2/4 [00:02<00:02, 1.00 it/s] x\n" ..
       " 75% 3/4 [00:03<00:01, 1.00 it/s] x\n100% 4/4 [00:04, 1.00 it/s] x\n", "lines in the file")
  f:close()
end

do -- forced terminal mode: \r redraws, a bar, a final newline
  now = 0
  local out = sink()
  local bar = U.progress(50, { out = out, tty = true, label = "tty", width = 10 })
  for _ = 1, 50 do now = now + 0.05; bar:advance(1, { loss = 0.5 }) end
  local text = out:text()
  local _, nr = text:gsub("\r", "")
  T:ok(nr >= 20 and nr <= 52, "redraws throttled to about 10 per second (" .. nr .. ")")
  T:eq(text:sub(-1), "\n", "ends with a newline")
  T:ok(text:find("\rtty 100% |██████████| 50/50 [00:02, 20.00 it/s] loss=0.5", 1, true) ~= nil, "final bar")
  T:ok(text:find("|█████     | 25/50 [00:01<00:01, 20.00 it/s]", 1, true) ~= nil, "half-way bar with ETA")
end

do -- bar:print writes a line above a live bar and redraws it; plain mode just writes the line
  now = 0
  local out = sink()
  local bar = U.progress(10, { out = out, tty = true, width = 4 })
  bar:advance(5)
  out.buf = {}
  bar:print("checkpoint", 5)
  local text = out:text()
  T:ok(text:find("^\r +\rcheckpoint\t5\n\r 50%% |") ~= nil, "line cleared, message printed, bar redrawn")
  local out2 = sink()
  U.progress(10, { out = out2 }):print("hello")
  T:eq(out2:text(), "hello\n", "plain mode: just the line")
end

do -- without the io library (a sandboxed runtime): lines go through print; an explicit out works
  local saved, saved_print, lines = io, print, {}
  io = nil
  print = function(...) lines[#lines + 1] = table.concat({...}, "\t") end
  local ok, err = pcall(function()
    local b = U.progress(3, { label = "sb", min_interval = 0 })
    for _ = 1, 3 do b:advance() end
    b:print("note")
  end)
  local ok_tty, err_tty = pcall(function()
    local b = U.progress(2, { tty = true, label = "live" })
    b:advance(); b:advance()
  end)
  local out = sink()
  local ok2 = pcall(function() local b = U.progress(2, { out = out }); b:advance(); b:advance() end)
  io, print = saved, saved_print
  T:ok(ok, "no io: progress works through print" .. (ok and "" or ": " .. tostring(err)))
  -- lines: the plain bar's lines, "note", then the live bar's final state
  T:ok(ok_tty and #lines >= 3, "no io: lines were printed (" .. tostring(err_tty) .. ")")
  T:ok(lines[#lines - 2]:find("^sb 100%% 3/3") ~= nil, "no io: the final line (" .. tostring(lines[#lines - 2]) .. ")")
  T:eq(lines[#lines - 1], "note", "no io: bar:print(...) is printed")
  T:ok(lines[#lines]:find("^live 100%% |") ~= nil and not lines[#lines]:find("\r", 1, true),
       "no io: a live bar prints its final state once, without \\r (" .. tostring(lines[#lines]) .. ")")
  T:ok(ok2 and out:text():find("100%", 1, true) ~= nil, "no io: works with an explicit out")
end

T:raises(function() U.progress(10, { lable = "x" }) end, "progress: unknown option 'lable' (accepted: label, width")
T:raises(function() U.progress(10, { interval = 0 / 0 }) end, "progress: 'interval' must be a non-negative number of seconds")
T:raises(function() U.progress(10, { width = 0 / 0, out = sink() }) end, "progress: 'width' must be a positive number")
T:raises(function() U.progress(-1) end, "progress: total must be a non-negative number or nil, got -1")
T:raises(function() U.progress(10, { width = 0, out = sink() }) end, "progress: 'width' must be a positive number")
T:raises(function() U.progress(10, { out = sink() }):update("x") end, "progress:update: expected a number")
mg.clock = real_clock
T:done()
