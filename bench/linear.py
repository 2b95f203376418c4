# PyTorch twin of bench/linear.lua: a Linear layer (batch 256, 4096 -> 4096) forward and
# forward + backward in GFLOP/s, best of `reps`.
#   python3 bench/linear.py [reps [threads]]
import sys, time
import torch
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
B, IN, OUT = 256, 4096, 4096
x = torch.randn(B, IN, requires_grad=True)
lin = torch.nn.Linear(IN, OUT)
gy = torch.ones(B, OUT)
flop = 2 * B * IN * OUT
def step():
    x.grad = None; lin.weight.grad = None; lin.bias.grad = None
    lin(x).backward(gy)
def fwd():
    with torch.no_grad():
        lin(x)
step()
bf = bs = float("inf")
for _ in range(reps):
    t0 = time.perf_counter(); fwd(); bf = min(bf, time.perf_counter() - t0)
    t0 = time.perf_counter(); step(); bs = min(bs, time.perf_counter() - t0)
print("forward %.1f GF" % (flop / bf / 1e9))
print("forward + backward %.1f GF" % (3 * flop / bs / 1e9))
print("time per step %.2f ms" % (bs * 1e3))
