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

``--set defaults`` (issue "one engine": the default path stays fast) measures instead, all with
SGD (lr 0.1) at batch 128 on the same 784-256-256-10 net:

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/epoch_time.py --set defaults --repeats 3

- examples-sgd-128: the pytorch/examples loop above with SGD; its epoch is train + test pass
  (as examples' main.py does per epoch);
- nnbasics-lean-128: ``nnbasics-train ... monitor=off checkpoint=false progress=false``;
- nnbasics-default-128: ``nnbasics-train ...`` with the defaults of conf/train.yaml as users run
  them (monitor basic, checkpoint every epoch, progress bar, cosine schedule, eval_test);
  both nnbasics contenders: ``data=mnist model.width=256 model.depth=2 optimizer=sgd
  batch_size=128``, epoch time = (wall of an ``epochs=3`` run - wall of an ``epochs=1`` run) / 2,
  so it includes validation, the checkpoint, TensorBoard writes, the monitor and the progress
  bar, and not what a run does once (imports, data loading, figures, final evaluation).
  ``--mode process`` (default) times fresh ``nnbasics-train`` processes (stdout and the
  progress bar's stderr to /dev/null); ``--mode inprocess`` calls ``train(cfg)`` instead (a
  fresh run directory each time, Hydra's composition of the same overrides); both pass
  ``threads=--threads`` so that every contender runs on the same number of torch threads (on a
  shared, oversubscribed machine 2 threads can be several times slower than 1 for these small
  products: use ``--threads 1`` there);
- mm-floor: the matrix-product floor of that model for one epoch: the 3 forward and 5 backward
  ``torch.mm`` products of each of the 430 steps (429 of 128 + one of 88; no input gradient),
  plus the 3 forward products of validation (5000 samples in chunks of 1024), on preallocated
  tensors (``out=``).

Printed: median epoch per contender, examples / contender and contender / floor ratios.
``--breakdown`` then runs the default settings in process with timers around the parts of the
loop that the lean settings do not have (monitor hooks, progress bar, checkpoint save,
TensorBoard scalars, validation), and times default against default with each of monitor=off,
checkpoint=false, progress=false, alternating.
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


def examples_epoch(root: str, batch_size: int, seed: int, optimizer: str = "adam",
                   include_test: bool = False) -> tuple[float, float]:
    """One epoch of pytorch/examples' loop; with ``include_test`` the timed epoch also holds the
    test pass (examples' main.py runs train() then test() every epoch)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(root, train=True, download=False, transform=transform)
    test_ds = datasets.MNIST(root, train=False, download=False, transform=transform)
    train_loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test_ds, batch_size=1000)
    model = mlp()
    opt = (torch.optim.SGD(model.parameters(), lr=0.1) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=1e-3))
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
    if include_test:
        epoch = time.perf_counter() - t0
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


# ----------------------------------------------------------------------------------------------
# --set defaults: the default settings vs the lean settings vs the examples loop, and the floor
# ----------------------------------------------------------------------------------------------

NET = ["data=mnist", "model.width=256", "model.depth=2", "optimizer=sgd", "batch_size=128"]
LEAN = ["monitor=off", "checkpoint=false", "progress=false"]


def nnbasics_run_s(overrides: list[str], epochs: int, mode: str, tmp: Path) -> tuple[float, float]:
    """Wall time of one run (a fresh ``nnbasics-train`` process, or ``train(cfg)`` in this one)
    and its test accuracy."""
    import json
    import subprocess
    import tempfile

    run_dir = Path(tempfile.mkdtemp(dir=tmp))
    ov = [*NET, f"threads={torch.get_num_threads()}", *overrides, f"epochs={epochs}"]
    if mode == "process":
        exe = Path(sys.executable).parent / "nnbasics-train"
        t0 = time.perf_counter()
        subprocess.run([str(exe), *ov, f"hydra.run.dir={run_dir}"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        acc = json.loads((run_dir / "metrics.json").read_text())["test/acc"]
        return wall, acc
    from common import compose
    from nnbasics.engine.train import train

    t0 = time.perf_counter()
    cfg = compose(ov)
    out = train(cfg, run_dir)
    return time.perf_counter() - t0, out["test/acc"]


def nnbasics_epoch_diff(overrides: list[str], mode: str, tmp: Path) -> tuple[float, float]:
    """(wall of 3 epochs - wall of 1 epoch) / 2, and the 3-epoch run's test accuracy."""
    t1, _ = nnbasics_run_s(overrides, 1, mode, tmp)
    t3, acc = nnbasics_run_s(overrides, 3, mode, tmp)
    return (t3 - t1) / 2, acc


def mm_floor_epoch(n_train: int = 55_000, n_val: int = 5_000, batch: int = 128, chunk: int = 1024,
                   sizes: tuple[int, ...] = (784, 256, 256, 10)) -> float:
    """Seconds of the matrix products alone of one epoch: per step, forward x W_l^T (3) and
    backward dW_l = g_l^T h_{l-1} (3) and dh_{l-1} = g_l W_l (2: no input gradient); then the
    validation forwards. torch.mm into preallocated outputs."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    ws = [torch.randn(o, i) for i, o in pairs]
    dws = [torch.empty(o, i) for i, o in pairs]

    def buffers(b):
        hs = [torch.randn(b, n) for n in sizes]  # inputs of each layer and the last output
        gs = [torch.randn(b, n) for n in sizes]  # gradients w.r.t. them
        return hs, gs

    sizes_steps = [batch] * (n_train // batch) + ([n_train % batch] if n_train % batch else [])
    sizes_val = [chunk] * (n_val // chunk) + ([n_val % chunk] if n_val % chunk else [])
    bufs = {b: buffers(b) for b in set(sizes_steps) | set(sizes_val)}
    t0 = time.perf_counter()
    for b in sizes_steps:
        hs, gs = bufs[b]
        for l, w in enumerate(ws):  # forward: h_{l+1} = h_l W_l^T
            torch.mm(hs[l], w.t(), out=hs[l + 1])
        for l in reversed(range(len(ws))):
            torch.mm(gs[l + 1].t(), hs[l], out=dws[l])  # dW_l
            if l > 0:
                torch.mm(gs[l + 1], ws[l], out=gs[l])  # dh_l
    for b in sizes_val:
        hs, _ = bufs[b]
        for l, w in enumerate(ws):
            torch.mm(hs[l], w.t(), out=hs[l + 1])
    return time.perf_counter() - t0


def run_defaults(args, root: str) -> None:
    import tempfile

    header(f"epoch time with the default settings, 784-256-256-10 MLP, SGD, batch 128 (mode {args.mode})",
           args.threads)
    with tempfile.TemporaryDirectory(prefix="epoch_time-") as tmp_s:
        tmp = Path(tmp_s)
        contenders = {
            "examples-sgd-128": lambda s: examples_epoch(root, 128, s, "sgd", include_test=True),
            "nnbasics-lean-128": lambda s: nnbasics_epoch_diff(LEAN, args.mode, tmp),
            "nnbasics-default-128": lambda s: nnbasics_epoch_diff([], args.mode, tmp),
            "mm-floor": lambda s: (mm_floor_epoch(), float("nan")),
        }
        if args.mode == "inprocess":  # warm-up: first-use imports (tensorboard, matplotlib, hydra)
            nnbasics_run_s([], 1, args.mode, tmp)
        times: dict[str, list[float]] = {k: [] for k in contenders}
        accs: dict[str, list[float]] = {k: [] for k in contenders}
        for r in range(args.repeats):
            order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
            for name in order:
                t, a = contenders[name](r)
                times[name].append(t)
                accs[name].append(a)
                print(f"repeat {r} {name:21s} epoch {t:7.3f} s  test/acc {a:.4f}  load {os.getloadavg()[0]:.1f}",
                      flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ex, floor = med["examples-sgd-128"], med["mm-floor"]
    print(f"\n{'contender':21s} {'epochs s (each repeat)':>30s} {'median':>8s} {'examples/this':>14s} "
          f"{'this/floor':>11s} {'test/acc':>9s}")
    for name in contenders:
        each = " / ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:21s} {each:>30s} {med[name]:8.3f} {ex / med[name]:13.1f}x {med[name] / floor:10.2f}x "
              f"{statistics.median(accs[name]):9.4f}")
    per_repeat = [times["examples-sgd-128"][r] / times["nnbasics-default-128"][r] for r in range(args.repeats)]
    per_lean = [times["nnbasics-lean-128"][r] / times["mm-floor"][r] for r in range(args.repeats)]
    print(f"\nper-repeat ratios: examples/default {', '.join(f'{v:.1f}x' for v in per_repeat)}; "
          f"lean/floor {', '.join(f'{v:.2f}x' for v in per_lean)}")
    print(f"targets: default >= 8x examples: {ex / med['nnbasics-default-128']:.1f}x; "
          f"lean <= 1.5x floor: {med['nnbasics-lean-128'] / floor:.2f}x")
    if args.breakdown:
        breakdown(args.repeats)


def breakdown(repeats: int) -> None:
    """Where the default settings' extra time goes, in this process: (a) timers around the parts
    the lean settings skip, in a 3-epoch default run; (b) default vs default with one of them off,
    alternating, each as (3-epoch - 1-epoch) / 2."""
    import tempfile

    import tqdm.std
    from torch.utils.tensorboard import SummaryWriter

    import nnbasics.engine.train as train_mod
    from nnbasics.engine.monitor import Monitor

    spent: dict[str, float] = {}
    calls: dict[str, int] = {}

    def timed(owner, name: str, label: str):
        fn = getattr(owner, name, None)
        if fn is None:  # the engine is being restructured: time what exists
            return lambda: None

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
                calls[label] = calls.get(label, 0) + 1
        setattr(owner, name, wrapper)
        return lambda: setattr(owner, name, fn)

    import importlib

    def module(name: str):
        try:
            return importlib.import_module(name)
        except ImportError:
            return None

    with tempfile.TemporaryDirectory(prefix="epoch_time-") as tmp_s:
        tmp = Path(tmp_s)
        nnbasics_run_s([], 1, "inprocess", tmp)  # warm-up
        print("\n# breakdown (a): seconds per epoch inside each part, default settings, in process, "
              "epochs 3 - epochs 1, halved; median over repeats")
        targets = [(Monitor, "before_step", "monitor.before_step"), (Monitor, "after_step", "monitor.after_step"),
                   (Monitor, "on_epoch_end", "monitor.on_epoch_end"),
                   (tqdm.std.tqdm, "update", "tqdm.update (per step)"), (tqdm.std.tqdm, "__init__", "tqdm create"),
                   (tqdm.std.tqdm, "close", "tqdm close"), (SummaryWriter, "add_scalar", "writer.add_scalar")]
        rundir = module("nnbasics.engine.rundir")
        if rundir is not None and hasattr(rundir, "RunDir"):  # the engine after 3a38161
            targets += [(rundir.RunDir, "save_checkpoint", "checkpoint save (RunDir.save_checkpoint)"),
                        (rundir.RunDir, "log_epoch", "epoch scalars (RunDir.log_epoch)")]
        else:
            targets += [(train_mod, "save_atomic", "checkpoint save (save_atomic)")]
        if hasattr(train_mod, "Solo"):
            targets += [(train_mod.Solo, "step", "Solo.step (the update, hooks included)")]
        undo = [timed(*t) for t in targets]
        evaluate = train_mod.evaluate

        def evaluate_by_split(model, split, *a, **k):  # validation apart from the final evaluations
            label = f"evaluate, {len(split)} samples"
            t = time.perf_counter()
            try:
                return evaluate(model, split, *a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
                calls[label] = calls.get(label, 0) + 1
        train_mod.evaluate = evaluate_by_split
        undo.append(lambda: setattr(train_mod, "evaluate", evaluate))
        rows: dict[str, list[float]] = {}
        try:
            for _ in range(repeats):
                per = []
                for epochs in (1, 3):
                    spent.clear()
                    calls.clear()
                    t, _acc = nnbasics_run_s([], epochs, "inprocess", tmp)
                    per.append((t, dict(spent), dict(calls)))
                (t1, s1, c1), (t3, s3, c3) = per
                rows.setdefault("epoch (whole)", []).append((t3 - t1) / 2)
                for k in s3:
                    rows.setdefault(k, []).append((s3[k] - s1.get(k, 0.0)) / 2)
                    rows.setdefault(k + " calls", []).append((c3[k] - c1.get(k, 0)) / 2)
        finally:
            for u in undo:
                u()
        for k, v in rows.items():
            if k.endswith(" calls"):
                continue
            n = statistics.median(rows.get(k + " calls", [float("nan")]))
            print(f"  {k:52s} {statistics.median(v):8.4f} s/epoch  ({n:.0f} calls/epoch)")

        print("\n# breakdown (b): epoch s (3 - 1 epochs, halved), in process, alternating")
        variants = {"default": [], "monitor=off": ["monitor=off"], "checkpoint=false": ["checkpoint=false"],
                    "progress=false": ["progress=false"], "lean": LEAN}
        res: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(repeats):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                t, _ = nnbasics_epoch_diff(variants[name], "inprocess", tmp)
                res[name].append(t)
        d = statistics.median(res["default"])
        for name, v in res.items():
            m = statistics.median(v)
            deltas = [res["default"][i] - v[i] for i in range(repeats)]
            print(f"  {name:18s} {' / '.join(f'{x:.3f}' for x in v):>28s}  median {m:.3f}  default - this: "
                  f"median {statistics.median(deltas):+.3f} s ({statistics.median(deltas) / d:+.0%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--set", choices=("issue8", "defaults"), default="issue8",
                    help="issue8: the Adam contenders above; defaults: default vs lean settings vs examples, SGD")
    ap.add_argument("--mode", choices=("process", "inprocess"), default="process",
                    help="--set defaults: nnbasics runs as fresh nnbasics-train processes or train() calls")
    ap.add_argument("--breakdown", action="store_true", help="--set defaults: also where the default's extra time goes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root()
    if args.set == "defaults":
        run_defaults(args, root)
        return
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
