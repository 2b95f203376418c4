# PyTorch twin of bench/tiny_op.lua: `a + b` on one-element tensors, and a small chain
# (x * 2 + 1).tanh() * x with backward, in microseconds.
import sys, time
import torch
torch.set_num_threads(1)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
a, b = torch.tensor([1.]), torch.tensor([2.])
for _ in range(1000):
    c = a + b
t0 = time.perf_counter()
for _ in range(N):
    c = a + b
t1 = time.perf_counter()
print("tiny_op_add_us %.3f" % ((t1 - t0) / N * 1e6))
x = torch.tensor([0.5], requires_grad=True)
M = N // 10
t0 = time.perf_counter()
for _ in range(M):
    y = (x * 2 + 1).tanh() * x
    y.backward()
t1 = time.perf_counter()
print("tiny_chain_backward_us %.3f" % ((t1 - t0) / M * 1e6))
