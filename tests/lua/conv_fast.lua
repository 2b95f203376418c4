-- float32 conv2d with up to 16 filters per group goes through k_sgemm (AVX2 kernels that read
-- the images directly when the stride is 1 and there is no padding, and per-image products on
-- im2col columns otherwise); more filters, and float64, go through OpenBLAS. The two must
-- agree, forward and every gradient, over shapes
-- that hit the kernels' edges: filter counts not a multiple of 4, output widths not a multiple
-- of 8 or 16, dilation, groups, one image, many chunks, and inputs that need no gradient.
local mg = require("moongrad")
local T = mg.test()

local function rel(a, b)  -- max |a - b| relative to max |b|
  local scale = b:abs():max():item()
  return (a:double() - b):abs():max():item() / (scale > 0 and scale or 1)
end

local cases = {
  { "LeNet conv1", { 64, 1, 28, 28 }, { 8, 1, 5, 5 } },
  { "LeNet conv2", { 64, 8, 12, 12 }, { 16, 8, 5, 5 } },
  { "odd sizes, 7 filters", { 3, 3, 13, 19 }, { 7, 3, 3, 4 } },
  { "one filter, width 1", { 2, 2, 6, 5 }, { 1, 2, 2, 5 } },
  { "dilation", { 4, 3, 17, 23 }, { 6, 3, 3, 3 }, { dilation = 2 } },
  { "groups", { 5, 6, 11, 11 }, { 9, 2, 3, 3 }, { groups = 3 } },
  { "padding (columns path)", { 4, 3, 10, 10 }, { 5, 3, 3, 3 }, { padding = 1 } },
  { "stride 2 (columns path)", { 4, 3, 15, 14 }, { 6, 3, 3, 3 }, { stride = 2 } },
  { "one 3-D image", { 4, 9, 9 }, { 5, 4, 3, 3 } },
  { "wide rows", { 2, 2, 5, 70 }, { 6, 2, 2, 3 } },
  { "rows of 14 (masked tails)", { 6, 5, 16, 16 }, { 12, 5, 3, 3 } },
  { "20 filters (OpenBLAS path)", { 3, 4, 9, 9 }, { 20, 4, 3, 3 } },
}
for _, c in ipairs(cases) do
  for _, need_x in ipairs({ true, false }) do
    mg.manual_seed(5)
    local x64 = mg.randn(c[2], { dtype = "float64" })
    local w64 = mg.randn(c[3], { dtype = "float64" })
    local b64 = mg.randn(c[3][1], { dtype = "float64" })
    local x32, w32, b32 = x64:float(), w64:float(), b64:float()
    -- the float64 reference starts from the float32 numbers
    x64, w64, b64 = x32:double(), w32:double(), b32:double()
    for _, t in ipairs({ x64, x32 }) do t:requires_grad_(need_x) end
    for _, t in ipairs({ w64, b64, w32, b32 }) do t:requires_grad_() end
    local y64 = mg.conv2d(x64, w64, b64, c[4])
    local y32 = mg.conv2d(x32, w32, b32, c[4])
    local g64 = mg.randn(y64:shape(), { dtype = "float64" })
    y64:backward(g64)
    y32:backward(g64:float())
    local tag = c[1] .. (need_x and "" or " (input without grad)")
    T:ok(rel(y32, y64) < 1e-5, ("%s: float32 output matches float64 (%.2g)"):format(tag, rel(y32, y64)))
    T:ok(rel(w32.grad, w64.grad) < 1e-5, ("%s: weight gradient (%.2g)"):format(tag, rel(w32.grad, w64.grad)))
    T:ok(rel(b32.grad, b64.grad) < 1e-5, ("%s: bias gradient (%.2g)"):format(tag, rel(b32.grad, b64.grad)))
    if need_x then
      T:ok(rel(x32.grad, x64.grad) < 1e-5, ("%s: input gradient (%.2g)"):format(tag, rel(x32.grad, x64.grad)))
    else
      T:ok(x32.grad == nil, tag .. ": no input gradient computed")
    end
  end
end

-- no-grad forward (no columns kept) equals the recorded one
mg.manual_seed(9)
local x, w, b = mg.randn(6, 3, 12, 12), mg.randn(4, 3, 5, 5, { requires_grad = true }), mg.randn(4)
local y1 = mg.no_grad(mg.conv2d, x, w, b)
local y2 = mg.conv2d(x, w, b)
T:eq(y1:ne(y2):sum():item(), 0, "no-grad and recorded forwards give identical values")
T:done()
