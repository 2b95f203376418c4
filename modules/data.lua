-- mg.data: data set readers and batching.
--   mg.data.idx(path)                      IDX file (gzipped or plain) -> float32 tensor of its shape
--   mg.data.csv(path [, {header, delimiter}])  numeric CSV -> rows x cols float32 [, column names]
--   mg.data.fashion_mnist(split [, dir])   images N x 784 in [0,1], labels 1..10 (float32)
--   mg.data.DataLoader({x, y, ...}, {batch_size, shuffle, drop_last})
--     for xb, yb in loader:iter() do ... end;  #loader is the number of batches
-- The readers are C (runtime/mg_data.c, bound in l_io.c as mg._idx and mg._csv).
local mg = ...
local D = {}

local idx_raw, csv_raw = mg._idx, mg._csv
mg._idx, mg._csv = nil, nil
-- captured now: a sandboxed runtime may withhold io/os from scripts later
local io_open = io and io.open
local getenv = os and os.getenv
local fmt, floor = string.format, math.floor

-- call a C reader; its error is re-raised at the caller's caller (the user's script line)
local function call(fn, ...)
  local ok, r, names = pcall(fn, ...)
  if not ok then error(r, 3) end
  return r, names
end

local function is_tensor(v) return type(v) == "userdata" and getmetatable(v) ~= nil and v.numel ~= nil end

local function check_opts(op, opts, names)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(fmt("%s: options must be a table, got %s", op, mg._typename(opts)), 3) end
  for k in pairs(opts) do
    local known = false
    for _, n in ipairs(names) do if k == n then known = true end end
    if not known then
      error(fmt("%s: unknown option '%s' (accepted: %s)", op, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

function D.idx(path)
  if type(path) ~= "string" then error(fmt("data.idx: expected a file path (string), got %s", mg._typename(path)), 2) end
  local t = call(idx_raw, path) -- not a tail call: keeps the caller's line for errors
  return t
end

function D.csv(path, opts)
  if type(path) ~= "string" then error(fmt("data.csv: expected a file path (string), got %s", mg._typename(path)), 2) end
  opts = check_opts("data.csv", opts, { "header", "delimiter" })
  local header, delim = opts.header, opts.delimiter
  if header ~= nil and type(header) ~= "boolean" then
    error(fmt("data.csv: option 'header' must be a boolean, got %s", mg._typename(header)), 2)
  end
  if delim ~= nil and (type(delim) ~= "string" or #delim ~= 1) then
    error(fmt("data.csv: option 'delimiter' must be a one-character string, got %s",
              type(delim) == "string" and ("'" .. delim .. "'") or type(delim)), 2)
  end
  local t, names = call(csv_raw, path, header == true, delim)
  return t, names
end

-- ---- Fashion-MNIST ---------------------------------------------------------------

D.FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist" -- Debian package dataset-fashion-mnist

local function exists(p)
  if not io_open then return true end -- cannot look: let the reader report
  local f = io_open(p, "rb")
  if f then f:close() return true end
  return false
end

-- the path of name or name.gz in dir, or nil
local function find(dir, name)
  for _, p in ipairs({ dir .. "/" .. name .. ".gz", dir .. "/" .. name }) do
    if exists(p) then return p end
  end
end

function D.fashion_mnist(split, dir)
  local prefix = ({ train = "train", test = "t10k" })[split]
  if not prefix then
    error(fmt("data.fashion_mnist: split must be 'train' or 'test', got %s",
              type(split) == "string" and ("'" .. split .. "'") or mg._typename(split)), 2)
  end
  if dir ~= nil and type(dir) ~= "string" then
    error(fmt("data.fashion_mnist: dir must be a string, got %s", mg._typename(dir)), 2)
  end
  local dirs = {}
  if dir then dirs[1] = dir
  else
    local env = getenv and getenv("MOONGRAD_DATA")
    if env and env ~= "" then dirs[#dirs + 1] = env; dirs[#dirs + 1] = env .. "/fashion-mnist" end
    dirs[#dirs + 1] = D.FASHION_MNIST_DIR
  end
  local iname, lname = prefix .. "-images-idx3-ubyte", prefix .. "-labels-idx1-ubyte"
  local ipath, lpath
  for _, d in ipairs(dirs) do
    ipath, lpath = find(d, iname), find(d, lname)
    if ipath and lpath then break end
  end
  if not (ipath and lpath) then
    error(fmt("data.fashion_mnist: %s(.gz) and %s(.gz) not found in %s. Install the data set with "
              .. "`apt-get install dataset-fashion-mnist` (or `sh tools/deps.sh data`), or pass its "
              .. "directory as the second argument or in $MOONGRAD_DATA", iname, lname,
              table.concat(dirs, ", ")), 2)
  end
  local images, labels = call(idx_raw, ipath), call(idx_raw, lpath)
  local n = images:size(1)
  if images:dim() ~= 3 or images:size(2) ~= 28 or images:size(3) ~= 28 then
    error(fmt("data.fashion_mnist: %s holds a {%s} array, expected {N,28,28}", ipath,
              table.concat(images:shape(), ",")), 2)
  end
  if labels:dim() ~= 1 or labels:size(1) ~= n then
    error(fmt("data.fashion_mnist: %s holds {%s} labels for %d images", lpath,
              table.concat(labels:shape(), ","), n), 2)
  end
  images = images:view(n, 784)
  images:div_(255)
  labels:add_(1) -- 1-based class labels
  return images, labels
end

-- ---- DataLoader --------------------------------------------------------------------

local DataLoader = {}
DataLoader.__index = DataLoader
DataLoader.__name = "DataLoader"

function D.DataLoader(tensors, opts)
  local op = "data.DataLoader"
  if is_tensor(tensors) then tensors = { tensors } end
  if type(tensors) ~= "table" or #tensors == 0 then
    error(op .. ": expected a list of tensors {x, y, ...}, got " .. mg._typename(tensors), 2)
  end
  local n
  for i, t in ipairs(tensors) do
    if not is_tensor(t) then error(fmt("%s: element %d is a %s, expected a tensor", op, i, mg._typename(t)), 2) end
    if t:dim() == 0 then error(fmt("%s: tensor %d is 0-dim; batches are taken along dim 1", op, i), 2) end
    local m = t:size(1)
    if n and m ~= n then
      error(fmt("%s: tensors have different sizes along dim 1 (%d and %d): {%s} vs {%s}", op, n, m,
                table.concat(tensors[1]:shape(), ","), table.concat(t:shape(), ",")), 2)
    end
    n = m
  end
  opts = check_opts(op, opts, { "batch_size", "shuffle", "drop_last" })
  local bs = opts.batch_size or 1
  if type(bs) ~= "number" or bs ~= floor(bs) or bs < 1 then
    error(fmt("%s: batch_size must be a positive integer, got %s", op, tostring(bs)), 2)
  end
  for _, k in ipairs({ "shuffle", "drop_last" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      error(fmt("%s: option '%s' must be a boolean, got %s", op, k, mg._typename(opts[k])), 2)
    end
  end
  bs = floor(bs)
  local nb = opts.drop_last and n // bs or (n + bs - 1) // bs
  return setmetatable({ tensors = { table.unpack(tensors) }, n = n, batch_size = bs, shuffle = opts.shuffle == true,
                        drop_last = opts.drop_last == true, nbatches = nb }, DataLoader)
end

function DataLoader:__len() return self.nbatches end

function DataLoader:__tostring()
  return fmt("DataLoader(%d samples, batch_size=%d, %d batches%s%s)", self.n, self.batch_size, self.nbatches,
             self.shuffle and ", shuffle" or "", self.drop_last and ", drop_last" or "")
end

-- One epoch: an iterator returning one batch of every tensor per call. With
-- shuffle, each call of iter() draws a new permutation from mg's seeded RNG.
function DataLoader:iter()
  local ts, n, bs, nb = self.tensors, self.n, self.batch_size, self.nbatches
  local order = self.shuffle and n > 0 and mg.randperm(n) or nil
  local k, b = #ts, 0
  local out = {}
  return function()
    if b >= nb then return nil end
    local start = b * bs + 1
    local len = math.min(bs, n - start + 1)
    b = b + 1
    if order then
      local idx = order:narrow(1, start, len)
      for i = 1, k do out[i] = ts[i]:index_select(1, idx) end
    else
      for i = 1, k do out[i] = ts[i]:narrow(1, start, len) end
    end
    return table.unpack(out, 1, k)
  end
end
mg._guard_methods(DataLoader, "DataLoader", "loader", "a DataLoader", function(v) return getmetatable(v) == DataLoader end)

return D
