"""Achieved GFLOP/s of the training step of a 1024-wide MLP vs the machine's matmul peak.

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/gflops.py --repeats 5

Peak: the median over repeats of a large square torch.mm (2 n^3 FLOP). Training step: the
784-1024-1024-10 MLP built by nnbasics (models.build_model, he_normal, ReLU), cross-entropy,
nnbasics Adam, one forward + backward + update on a batch of random MNIST-shaped inputs;
FLOP = 2 B sum(in*out) forward + 4 B sum(in*out) backward - 2 B 784*1024 (no input gradient of
the first layer). Also the same step for a population of K such MLPs (nnbasics.engine.population's
batched matmuls). Peak and step are measured alternately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compose, header  # noqa: E402


def timed(fn, n: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--n", type=int, default=2048, help="size of the square matmul for the peak")
    ap.add_argument("--population", type=int, default=4, help="K for the population step (0 = skip)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    header("GFLOP/s of the training step of a 784-1024-1024-10 MLP vs torch.mm peak", args.threads)
    from nnbasics.nn.losses import build_loss
    from nnbasics.nn.models import build_model
    from nnbasics.optim.optimizers import build_optimizer

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = compose(["model.width=1024", "model.depth=2", "optimizer=adam", "device=auto"])
    torch.manual_seed(0)
    model = build_model(cfg, (1, 28, 28), 10).to(dev)
    loss_fn = build_loss(cfg.loss)
    opt = build_optimizer(model.parameters(), cfg.optimizer, args.batch)
    B = args.batch
    x, y = torch.randn(B, 1, 28, 28, device=dev), torch.randint(0, 10, (B,), device=dev)
    a, b = torch.randn(args.n, args.n, device=dev), torch.randn(args.n, args.n, device=dev)
    macs = 784 * 1024 + 1024 * 1024 + 1024 * 10
    step_flop = 6 * B * macs - 2 * B * 784 * 1024

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    pop = None
    if args.population:
        pop = True
        K = args.population
        # K 784-1024-1024-10 members, stacked
        from nnbasics.engine.population import BatchedMLP
        from nnbasics.optim.batched import BatchedOptimizer

        models = []
        for k in range(K):
            torch.manual_seed(k)
            models.append(build_model(cfg, (1, 28, 28), 10).to(dev))
        net = BatchedMLP(models, 2)
        hp = [[{"lr": 1e-3, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}] * K
              for _ in net.parameters()]
        bopt = BatchedOptimizer(net.parameters(), hp, "adam")
        xk = x.unsqueeze(0).expand(K, *x.shape).contiguous()
        yk = y.unsqueeze(0).expand(K, B)
        vloss = torch.func.vmap(loss_fn)

        def pop_step():
            bopt.zero_grad()
            vloss(net(xk), yk).sum().backward()
            bopt.step(1.0)

    peaks, steps, psteps = [], [], []
    for r in range(args.repeats):
        peaks.append(2 * args.n ** 3 / timed(lambda: a @ b, 3) / 1e9)
        steps.append(step_flop / timed(step, 10) / 1e9)
        if pop is not None:
            psteps.append(K * step_flop / timed(pop_step, 5) / 1e9)
        print(f"repeat {r}: peak {peaks[-1]:.1f} GFLOP/s, MLP step {steps[-1]:.1f} GFLOP/s"
              + (f", population of {K} {psteps[-1]:.1f} GFLOP/s" if psteps else ""), flush=True)
    peak, s = statistics.median(peaks), statistics.median(steps)
    print(f"\nmedian peak (torch.mm {args.n}x{args.n}): {peak:.1f} GFLOP/s")
    print(f"median training step (batch {B}): {s:.1f} GFLOP/s = {100 * s / peak:.0f}% of peak "
          f"({step_flop / 1e9:.2f} GFLOP per step)")
    if psteps:
        ps = statistics.median(psteps)
        print(f"median population step (K={K}, batch {B}): {ps:.1f} GFLOP/s = {100 * ps / peak:.0f}% of peak")


if __name__ == "__main__":
    main()
