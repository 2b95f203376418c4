-- mg.data.fashion_mnist: a synthetic copy (dir argument, $MOONGRAD_DATA), the real
-- Debian package data, and the error when the data set is missing.
local mg = require("moongrad")
local T = mg.test()

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "/fashion-mnist'"))
local function writeall(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end

-- 3 synthetic 28x28 images: image k has pixel j = (k * 7 + j) % 256; labels 0, 9, 4
local img = { string.pack(">I4I4I4I4", 0x0803, 3, 28, 28) }
for k = 1, 3 do
  local px = {}
  for j = 0, 783 do px[#px + 1] = string.char((k * 7 + j) % 256) end
  img[#img + 1] = table.concat(px)
end
local sub = dir .. "/fashion-mnist"
writeall(sub .. "/t10k-images-idx3-ubyte", table.concat(img))
writeall(sub .. "/t10k-labels-idx1-ubyte", string.pack(">I4I4", 0x0801, 3) .. "\0\9\4")
assert(os.execute("gzip -f '" .. sub .. "/t10k-images-idx3-ubyte'")) -- one gzipped, one plain

local x, y = mg.data.fashion_mnist("test", sub)
T:eq(table.concat(x:shape(), ","), "3,784", "synthetic: images 3x784")
T:eq(x:dtype(), "float32", "images are float32")
local function f32(v) return (string.unpack("f", string.pack("f", v))) end
T:eq(x:get(2, 1), f32(14 / 255), "pixel bytes divided by 255 (float32)")
T:eq(x:get(1, 250), 0, "a pixel where the byte wraps to 0")
T:eq(x:get(3, 235), 1, "byte 255 is 1")
T:near(y, { 1, 10, 5 }, 0, "labels are 1-based classes")
T:eq(y:dtype(), "float32", "labels are float32")

-- $MOONGRAD_DATA, directly or with a fashion-mnist subdirectory
local runner = arg[-1] or ((os.getenv("MG_BUILD") or "build") .. "/moongrad")
local code = [[local mg = require("moongrad"); local x, y = mg.data.fashion_mnist("test"); io.write(x:size(1), " ", y:get(2))]]
for _, env in ipairs({ sub, dir }) do
  local p = io.popen(("MOONGRAD_DATA='%s' '%s' -e '%s' 2>&1"):format(env, runner, code))
  local out = p:read("a")
  p:close()
  T:eq(out, "3 10", "found through $MOONGRAD_DATA=" .. (env == sub and "<dir>" or "<parent of fashion-mnist/>"))
end

-- missing data: where it looked and how to install it
local ok, err = pcall(mg.data.fashion_mnist, "train", dir .. "/nowhere")
T:ok(not ok and err:find("train-images-idx3-ubyte(.gz) and train-labels-idx1-ubyte(.gz) not found in "
                         .. dir .. "/nowhere", 1, true) ~= nil, "missing data: names the files and the directory")
T:ok(not ok and err:find("apt-get install dataset-fashion-mnist", 1, true) ~= nil, "missing data: says how to install it")
T:raises(function() mg.data.fashion_mnist("validation") end, "split must be 'train' or 'test', got 'validation'", "bad split")
-- a corrupt file in the data set directory is a reader error naming the file
writeall(sub .. "/train-images-idx3-ubyte", string.pack(">I4I4I4I4", 0x0803, 2, 28, 28) .. "short")
writeall(sub .. "/train-labels-idx1-ubyte", string.pack(">I4I4", 0x0801, 2) .. "\0\1")
T:raises(function() mg.data.fashion_mnist("train", sub) end, sub .. "/train-images-idx3-ubyte: truncated", "truncated images file")
os.execute("rm -rf '" .. dir .. "'")

-- the real data set (Debian package dataset-fashion-mnist)
local real = mg.data.FASHION_MNIST_DIR
local f = io.open(real .. "/train-images-idx3-ubyte.gz", "rb")
if not T:ok(f ~= nil, "the Debian data set is installed in " .. real .. " (apt-get install dataset-fashion-mnist)") then
  T:done()
end
f:close()
local t0 = mg.clock()
local xtr, ytr = mg.data.fashion_mnist("train", real)
local xte, yte = mg.data.fashion_mnist("test", real)
T:diag(("loaded 70000 images in %.2f s"):format(mg.clock() - t0))
T:eq(table.concat(xtr:shape(), ","), "60000,784", "train images 60000x784")
T:eq(table.concat(ytr:shape(), ","), "60000", "train labels 60000")
T:eq(table.concat(xte:shape(), ","), "10000,784", "test images 10000x784")
T:eq(table.concat(yte:shape(), ","), "10000", "test labels 10000")
T:eq(ytr:min():item(), 1, "train labels start at 1")
T:eq(ytr:max():item(), 10, "train labels end at 10")
T:eq(yte:min():item(), 1, "test labels start at 1")
T:eq(yte:max():item(), 10, "test labels end at 10")
T:eq(xtr:min():item(), 0, "pixels >= 0")
T:eq(xtr:max():item(), 1, "pixels <= 1 (255/255)")
T:eq(ytr:get(1), 10, "first train label: ankle boot (class 9, 1-based 10)")
T:eq(yte:get(1), 10, "first test label: ankle boot")
T:near(ytr:sum():item(), 6000 * 55, 0, "6000 of each class (labels sum to 6000 * (1+...+10))")
T:near(xtr:mean():item(), 0.2860, 1e-3, "mean pixel 0.2860, as published for Fashion-MNIST")
T:done()
