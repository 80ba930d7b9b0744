"""Epoch time of a 784-256-256-10 MLP on MNIST: nnbasics vs a pytorch/examples-style loop.

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/epoch_time.py --repeats 3

Contenders, run interleaved in one process (each repeat runs every contender once, so machine
load hits them alike), all with Adam(lr=1e-3), the same architecture, torch threads = --threads:

- examples-64 / examples-128: pytorch/examples' mnist/main.py loop: torchvision MNIST with
  ToTensor + Normalize per sample, a shuffling DataLoader (batch 64 / 128), loss.item() every
  10 batches (its log line);
- plain-128: the data preloaded once as normalized tensors, a randperm per epoch, batch 128;
- nnbasics-128: ``nnbasics.train.train`` (monitor off, no checkpoint, no progress bar); its
  epoch time is the ``time_s`` of the first epoch in its history (the loop, validation included).

Prints per contender the median epoch time, the speed-up over examples-64, and the median test
accuracy after the epoch (the "equal accuracy" check).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, header  # noqa: E402


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def examples_epoch(root: str, batch_size: int, seed: int) -> tuple[float, float]:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(root, train=True, download=False, transform=transform)
    test_ds = datasets.MNIST(root, train=False, download=False, transform=transform)
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test_ds, batch_size=1000)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    t0 = time.perf_counter()
    for batch_idx, (data, target) in enumerate(train_loader):
        opt.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        opt.step()
        if batch_idx % 10 == 0:
            loss.item()
    epoch = time.perf_counter() - t0
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            correct += (model(data).argmax(1) == target).sum().item()
    return epoch, correct / len(test_ds)


def plain_epoch(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 128):
        idx = perm[i:i + 128]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    epoch = time.perf_counter() - t0
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    return epoch, acc


def nnbasics_epoch(seed: int) -> tuple[float, float]:
    from common import compose
    from nnbasics.engine.train import train

    cfg = compose(["data=mnist", "model.width=256", "model.depth=2", "optimizer=adam", "optimizer.lr=1e-3",
                   "scheduler=constant", "batch_size=128", "epochs=1", "monitor=off", "checkpoint=false",
                   "progress=false", f"seed={seed}", "device=auto"])
    out = train(cfg)
    return out["history"][0]["time_s"], out["test/acc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root()
    header("epoch time, 784-256-256-10 MLP on MNIST", args.threads)
    from nnbasics.data import datasets as data_mod

    xtr, ytr = data_mod.load_raw({"name": "mnist", "root": root}, train=True)
    xte, yte = data_mod.load_raw({"name": "mnist", "root": root}, train=False)
    x, xt = data_mod.normalize(xtr, "mnist", "cpu"), data_mod.normalize(xte, "mnist", "cpu")
    contenders = {
        "examples-64": lambda s: examples_epoch(root, 64, s),
        "examples-128": lambda s: examples_epoch(root, 128, s),
        "plain-128": lambda s: plain_epoch(x, ytr, xt, yte, s),
        "nnbasics-128": nnbasics_epoch,
    }
    nnbasics_epoch(99)  # warm-up: first-use imports (torch._dynamo via torch.optim, tensorboard)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    accs: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.repeats):
        for name, fn in contenders.items():
            t, a = fn(r)
            times[name].append(t)
            accs[name].append(a)
            print(f"repeat {r} {name:13s} epoch {t:6.2f} s  test/acc {a:.4f}", flush=True)
    base = statistics.median(times["examples-64"])
    print(f"\n{'contender':13s} {'median epoch s':>15s} {'speed-up vs examples-64':>24s} {'median test/acc':>16s}")
    for name in contenders:
        m = statistics.median(times[name])
        print(f"{name:13s} {m:15.2f} {base / m:23.1f}x {statistics.median(accs[name]):16.4f}")


if __name__ == "__main__":
    main()
