# PyTorch twin of bench/linreg_step.lua: microseconds per linear-regression training step.
import sys, time
import torch
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
torch.set_num_threads(1)
torch.manual_seed(42)
X = torch.tensor([[1., 2.], [2., 3.], [3., 4.], [4., 5.]])
y = torch.tensor([[1.], [2.], [3.], [4.]])
model = torch.nn.Linear(2, 1)
crit = torch.nn.MSELoss()
opt = torch.optim.SGD(model.parameters(), lr=0.01)
def step():
    opt.zero_grad()
    loss = crit(model(X), y)
    loss.backward()
    opt.step()
    return loss
for _ in range(200):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    loss = step()
dt = time.perf_counter() - t0
print("BENCH linreg_step_us %.3f" % (dt / steps * 1e6))
print("# final loss %.3g" % loss.item())
