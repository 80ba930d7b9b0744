"""One training step of the sweep benchmark's population (16 members of a 784-64-10 MLP, 4 data
streams, batch 128, Adam), timed in one process in alternating blocks, next to its floor:

- ``shared``: what ``Population.run`` does, each stream's batch read once (4 x 128 x 784) and the
  first layer one matrix product per stream (``BatchedMLP._linear``);
- ``gathered``: each member's batch copied (16 x 128 x 784), the first layer one ``baddbmm``
  over members (what ``run`` does when the streams differ in size);
- ``matmuls``: only the step's matrix products (first-layer forward and weight gradient,
  second-layer forward and both gradients) on tensors of the same shapes: what a step that
  did nothing else would cost.

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/population_step.py --blocks 20

Every variant runs the population's own forward, vectorized loss, backward and batched Adam.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compose, data_root, header  # noqa: E402

SWEEP_MEMBER = ["data=mnist", "model.width=64", "model.depth=1", "optimizer=adam", "batch_size=128", "monitor=off",
                "progress=false", "checkpoint=false", "epochs=1"]
STREAMS, BATCH = 4, 128


def main() -> None:
    from nnbasics.engine.population import Population

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=20, help="blocks per variant (alternating)")
    ap.add_argument("--steps", type=int, default=30, help="steps per block")
    args = ap.parse_args()
    data_root()
    cfgs = [compose(SWEEP_MEMBER + [f"optimizer.lr={lr}", f"seed={s}"])
            for lr in (3e-4, 1e-3, 3e-3, 1e-2) for s in range(STREAMS)]
    pop = Population(cfgs)  # inside: ordered by seed, 4 groups of 4 consecutive members
    K, x_all = pop.K, pop.train_split.x
    header(f"population step: K={K} members, {STREAMS} streams, batch {BATCH}, 784-64-10 MLP, Adam")
    gen = torch.Generator().manual_seed(0)
    stream_of = torch.arange(K) // (K // STREAMS)

    def step(shared: bool) -> None:
        idxs = [torch.randint(0, len(x_all), (BATCH,), generator=gen) for _ in range(STREAMS)]
        x, y = pop.batch(idxs, shared, stream_of)  # what Population.run reads each step
        out = pop.net(x)
        losses = pop.loss_vec(out, y)
        pop.opt.zero_grad()
        losses.sum().backward()
        pop.opt.step(1.0)

    # the products of BatchedMLP._linear (computed transposed: y^T = W h^T) and their gradients
    w1, w2 = (w.detach() for w in pop.net.weights)
    w1s = w1.reshape(STREAMS, -1, w1.shape[2])                       # 4 x 256 x 784
    xT = torch.randn(STREAMS, BATCH, w1.shape[2]).transpose(1, 2)    # 4 x 784 x 128 (a view)
    x = xT.transpose(1, 2)
    hT, h = torch.randn(K, w1.shape[1], BATCH), torch.randn(K, BATCH, w1.shape[1])
    g1T, g2T = torch.randn(STREAMS, w1s.shape[1], BATCH), torch.randn(K, w2.shape[1], BATCH)

    def matmuls() -> None:
        torch.bmm(w1s, xT)                                  # first layer, forward
        torch.bmm(g1T, x)                                   # its weight gradient
        torch.bmm(w2, hT)                                   # second layer, forward
        torch.bmm(g2T, h)                                   # its weight gradient
        torch.bmm(w2.transpose(1, 2), g2T)                  # its input gradient

    variants = {"shared": lambda: step(True), "gathered": lambda: step(False), "matmuls": matmuls}
    for f in variants.values():
        for _ in range(5):
            f()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.blocks):
        for name, f in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                f()
            times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    for name, ts in times.items():
        print(f"{name:9s} median {statistics.median(ts):6.2f} ms a step  (blocks: {min(ts):.2f}-{max(ts):.2f})")
    flop = 2 * BATCH * (K * w1.shape[1] * w1.shape[2] * 2 + K * w2.shape[1] * w2.shape[2] * 3)
    print(f"matrix products: {flop / 1e9:.3f} GFLOP a step, "
          f"{flop / statistics.median(times['matmuls']) / 1e6:.0f} GFLOP/s in the 'matmuls' variant")


if __name__ == "__main__":
    main()
