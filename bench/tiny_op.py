# PyTorch twin of bench/tiny_op.lua: `a + b` on one-element tensors, and a small chain
# (x * 2 + 1).tanh() * x with backward, in microseconds per op: the median over 10 equal
# chunks of the loop, as the Lua side does.
import statistics, sys, time
import torch
torch.set_num_threads(1)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
CHUNKS = 10


def per_op(fn, n):
    each, times = n // CHUNKS, []
    for _ in range(CHUNKS):
        t0 = time.perf_counter()
        fn(each)
        times.append((time.perf_counter() - t0) / each * 1e6)
    return statistics.median(times)


a, b = torch.tensor([1.]), torch.tensor([2.])


def adds(n):
    for _ in range(n):
        c = a + b


adds(1000)
print("tiny_op_add_us %.3f" % per_op(adds, N))
x = torch.tensor([0.5], requires_grad=True)


def chain(n):
    for _ in range(n):
        y = (x * 2 + 1).tanh() * x
        y.backward()


chain(100)
print("tiny_chain_backward_us %.3f" % per_op(chain, N // 10))
