# PyTorch twin of bench/fmnist.lua: Fashion-MNIST MLP 784-256-128-10 or LeNet-style CNN,
# batch 64, SGD momentum 0.9, batches drawn from a fresh randperm each epoch (as
# mg.data.DataLoader does). Prints "BENCH epoch_s <seconds>" per epoch (training only).
#   python3 bench/fmnist.py --model mlp|cnn [--threads N] [--epochs E] [--lr X] [--eval]
import argparse, gzip, os, struct, time
import numpy as np
import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
p.add_argument("--threads", type=int, default=1)
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--lr", type=float, default=None)
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--eval", action="store_true")
p.add_argument("--gamma", type=float, default=1.0)  # lr *= gamma after every epoch (tuning only)
p.add_argument("--data", default=os.environ.get("MOONGRAD_DATA") or "/usr/share/datasets/fashion-mnist")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

def idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    nd = data[3]
    shape = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(shape)

def load(split):
    pre = "train" if split == "train" else "t10k"
    find = lambda n: next(os.path.join(a.data, n + s) for s in (".gz", "") if os.path.exists(os.path.join(a.data, n + s)))
    x = torch.from_numpy(idx(find(pre + "-images-idx3-ubyte")).astype(np.float32) / 255).reshape(-1, 784)
    y = torch.from_numpy(idx(find(pre + "-labels-idx1-ubyte")).astype(np.int64))
    return x, y

xtr, ytr = load("train")
if a.model == "mlp":
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    shape = lambda x: x
else:
    model = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10))
    shape = lambda x: x.view(x.shape[0], 1, 28, 28)
lr = a.lr if a.lr is not None else (0.01 if a.model == "mlp" else 0.05)
opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
crit = nn.CrossEntropyLoss()
n, bs = xtr.shape[0], a.batch_size
if a.eval:
    xte, yte = load("test")
for epoch in range(1, a.epochs + 1):
    for g in opt.param_groups: g["lr"] = lr * a.gamma ** (epoch - 1)
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for s in range(0, n, bs):
        idx_b = perm[s:s + bs]
        xb, yb = xtr.index_select(0, idx_b), ytr.index_select(0, idx_b)
        opt.zero_grad()
        loss = crit(model(shape(xb)), yb)
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    print("BENCH epoch_s %.4f" % dt, flush=True)
    if a.eval:
        model.eval()
        with torch.no_grad():
            acc = (model(shape(xte)).argmax(1) == yte).float().mean().item() * 100
        print("epoch %d loss %.4f acc %.2f%% (%.1f s)" % (epoch, loss.item(), acc, dt), flush=True)
