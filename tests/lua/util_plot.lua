-- mg.util.plot: writes a well-formed standalone SVG with one path per series, axes, ticks,
-- labels, legend and title; separate panels for very different scales; gaps and edge cases.
local mg = require("moongrad")
local T = mg.test()
local U = mg.util

local csv, svg = os.tmpname(), os.tmpname()
local function write(path, s) local f = assert(io.open(path, "wb")); f:write(s); f:close() end
local function read(path) local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s end
local function count(s, pat) local _, n = s:gsub(pat, ""); return n end

-- a tiny XML check: every element closed in order, no stray '<' or '&'
local function wellformed(s)
  local stack = {}
  local body = s:gsub("^<%?xml[^>]*%?>%s*", "")
  for text, slash, name, attrs in body:gmatch("([^<]*)<(/?)([%w:_%-]+)([^>]*)>") do
    local selfclose = attrs:sub(-1)
    if text:find("&[^a-z#]") then return false, "bad entity in " .. text end
    if slash == "/" then
      if stack[#stack] ~= name then return false, "</" .. name .. "> closes <" .. tostring(stack[#stack]) .. ">" end
      stack[#stack] = nil
    elseif selfclose ~= "/" then
      stack[#stack + 1] = name
    end
  end
  return #stack == 0, "unclosed " .. tostring(stack[#stack])
end

-- every coordinate attribute is a finite number and every path holds only M/L commands
local function finite_coords(s)
  for attr, v in s:gmatch('%s([xyc][xy12]?)="([^"]*)"') do
    local n = tonumber(v)
    if not n or n ~= n or n == math.huge or n == -math.huge then return false end
  end
  for d in s:gmatch(' d="([^"]*)"') do
    if d:find("[^ML0-9%.,%- ]") then return false end
  end
  return true
end

local function texts(s, class)
  local out = {}
  for t in s:gmatch('<text class="' .. class .. '"[^>]*>([^<]*)</text>') do out[#out + 1] = t end
  return out
end

do -- two series of similar scale share a panel
  local rows = { "epoch,train_loss,test_acc" }
  for e = 1, 10 do rows[#rows + 1] = ("%d,%g,%g"):format(e, 1 / e, 0.5 + e / 25) end
  write(csv, table.concat(rows, "\n") .. "\n")
  T:eq(U.plot(csv, svg, { y = { "train_loss", "test_acc" }, title = "Run <1>" }), svg, "returns the svg path")
  local s = read(svg)
  T:ok(s:find("<svg", 1, true) ~= nil and s:find("</svg>\n$") ~= nil, "an <svg> document")
  local ok, why = wellformed(s)
  T:ok(ok, "well-formed XML" .. (ok and "" or (": " .. why)))
  T:eq(count(s, '<path class="series"'), 2, "one path per series")
  T:eq(count(s, 'class="panel"'), 1, "similar scales: one panel")
  T:ok(s:find('>Run &lt;1&gt;</text>', 1, true) ~= nil, "escaped title")
  T:eq(texts(s, "xlabel")[1], "epoch", "x axis label")
  T:eq(texts(s, "ylabel")[1], "train_loss, test_acc", "y axis label")
  T:eq(table.concat(texts(s, "xtick"), " "), "0 2 4 6 8 10", "nice x ticks")
  write(csv, "epoch,loss\n1,3\n2,2\n3,1\n")
  U.plot(csv, svg)
  T:eq(table.concat(texts(read(svg), "xtick"), " "), "1 2 3", "three epochs: integer ticks only")
  T:eq(table.concat(texts(s, "ytick"), " "), "0.0 0.2 0.4 0.6 0.8 1.0", "nice y ticks")
  T:ok(s:find('>train_loss</text>', 1, true) and s:find('>test_acc</text>', 1, true), "legend entries")
  local d = s:match('data%-name="train_loss" d="([^"]*)"')
  T:eq(count(d, "M"), 1, "unbroken line is one sub-path")
  T:eq(count(d, "L"), 9, "10 points -> 9 segments")
end

do -- very different scales: separate panels; default x and y
  local rows = { "step,loss,acc" }
  for i = 0, 20 do rows[#rows + 1] = ("%d,%g,%g"):format(i * 100, 5000 * math.exp(-i / 5), 0.1 + i / 30) end
  write(csv, table.concat(rows, "\n") .. "\n")
  U.plot(csv, svg)
  local s = read(svg)
  T:eq(count(s, 'class="panel"'), 2, "loss in thousands and acc in [0,1]: two panels")
  T:eq(table.concat(texts(s, "ylabel"), "|"), "loss|acc", "one y label per panel")
  T:eq(texts(s, "xlabel")[1], "step", "x defaults to the first column without 'epoch'")
  U.plot(csv, svg, { panels = "single" })
  T:eq(count(read(svg), 'class="panel"'), 1, "panels = \"single\"")
end

do -- gaps (nan, empty), an isolated point, a constant series, one row
  write(csv, "epoch,a,b\n1,1,5\n2,2,5\n3,nan,5\n4,,5\n5,3,5\n6,4,5\n8,6,\n9,,5\n")
  U.plot(csv, svg, { y = { "a", "b" }, panels = "separate" })
  local s = read(svg)
  local ok, why = wellformed(s)
  T:ok(ok, "well-formed with gaps" .. (ok and "" or (": " .. why)))
  local da = s:match('data%-name="a" d="([^"]*)"')
  T:eq(count(da, "M"), 2, "gap splits the line into two sub-paths")
  T:eq(count(s, "<circle"), 1, "the isolated point of b is drawn as a dot")
  T:ok(finite_coords(s), "finite coordinates (constant series padded)")
  write(csv, "epoch,loss\n1,0.5\n")
  U.plot(csv, svg)
  s = read(svg)
  T:eq(count(s, "<circle"), 1, "single row: one dot")
  T:eq(table.concat(texts(s, "xtick"), " "), "0 1 2", "single integer x: integer ticks around it")
  T:ok(wellformed(s) and finite_coords(s), "single row: valid, finite")
  write(csv, "epoch,loss\n")
  U.plot(csv, svg, { y = "loss" })
  T:ok(read(svg):find("no data", 1, true) ~= nil, "header only: an empty plot saying no data")
end

do -- a long series is reduced per pixel column, keeping its extremes
  local rows = { "step,loss" }
  for i = 1, 20000 do rows[#rows + 1] = ("%d,%g"):format(i, i == 12345 and 9 or math.sin(i / 50)) end
  write(csv, table.concat(rows, "\n") .. "\n")
  U.plot(csv, svg)
  local s = read(svg)
  local d = s:match('data%-name="loss" d="([^"]*)"')
  local n = count(d, "[ML]")
  T:ok(n < 4 * 616 and n > 616, ("20000 points drawn with %d vertices"):format(n))
  T:eq(table.concat(texts(s, "ytick"), " "), "-2 0 2 4 6 8 10", "the range still covers every value")
  local top = math.huge
  for y in d:gmatch(",([%d%.]+)") do top = math.min(top, tonumber(y)) end
  T:ok(top < 48 + 0.2 * 244, "the spike at step 12345 is kept")
end

do -- log-scale y: decade ticks, non-positive values are gaps
  local rows = { "epoch,loss" }
  for e = 1, 50 do rows[#rows + 1] = ("%d,%g"):format(e, e == 25 and 0 or 2.3 * math.exp(-e / 6) + 1e-4) end
  write(csv, table.concat(rows, "\n") .. "\n")
  U.plot(csv, svg, { logy = true })
  local s = read(svg)
  T:eq(table.concat(texts(s, "ytick"), " "), "0.0001 0.001 0.01 0.1 1 10", "logy: decade ticks")
  T:eq(texts(s, "ylabel")[1], "loss (log scale)", "logy: axis label says so")
  T:eq(count(s:match('data%-name="loss" d="([^"]*)"'), "M"), 2, "logy: a zero value is a gap")
  T:ok(finite_coords(s), "logy: finite coordinates")
end

write(csv, "epoch,loss\n1,0.5\n")
T:raises(function() U.plot(csv, svg, { y = "foo" }) end,
         ("plot: column 'foo' not in %s (columns: epoch, loss)"):format(csv), "unknown y column")
T:raises(function() U.plot(csv, svg, { x = "step" }) end, "plot: column 'step' not in", "unknown x column")
T:raises(function() U.plot("/nonexistent/x.csv", svg) end, "plot: cannot open /nonexistent/x.csv")
T:raises(function() U.plot(csv, svg, { panels = "many" }) end, "plot: 'panels' must be")
T:raises(function() U.plot(csv, svg, { ylabel = "x" }) end, "plot: unknown option 'ylabel' (accepted: x, y, title")
T:raises(function() U.plot(csv, svg, { width = 0 / 0 }) end, "plot: 'width' must be a number of pixels")
write(csv, "date,loss\nmon,1\ntue,2\n")
T:raises(function() U.plot(csv, svg, { x = "date" }) end, "plot: x column 'date' of " .. csv .. " holds no numbers")
write(csv, "")
T:raises(function() U.plot(csv, svg) end, "is empty (no header)")
os.remove(csv); os.remove(svg)
T:done()
