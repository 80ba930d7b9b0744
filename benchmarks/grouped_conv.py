"""Would a population of CNNs gain on this CPU? A2's CNN (CIFAR-10 32x32x3, conv 3x3 -> 8, max-pool,
conv 3x3 -> 16, max-pool, fc 1024 -> 64 -> 10, batch 100) for K members: K separate forward and
backward passes against one stacked pass (the first convolution one product with K x 8 output
channels, the second a grouped convolution with ``groups=K``, the fully connected layers one
``bmm`` each), the way a batched CNN would stack its members. Contenders alternate; medians of
``--repeats`` blocks of 10 steps.

    .venv/bin/python benchmarks/grouped_conv.py --members 3 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, K = 100, args.members
    x = torch.randn(B, 3, 32, 32)

    def weights(k: int) -> list[torch.Tensor]:
        return [torch.randn(8 * k, 3, 3, 3, requires_grad=True), torch.randn(16 * k, 8, 3, 3, requires_grad=True),
                torch.randn(k, 64, 16 * 8 * 8, requires_grad=True), torch.randn(k, 10, 64, requires_grad=True)]

    def step(ws: list[torch.Tensor], k: int, act) -> None:
        h = F.max_pool2d(act(F.conv2d(x, ws[0], padding=1)), 2)         # one input for all members
        h = F.max_pool2d(act(F.conv2d(h, ws[1], padding=1, groups=k)), 2)
        h = h.reshape(B, k, -1).transpose(0, 1)                          # k x B x 1024
        h = act(torch.bmm(h, ws[2].transpose(1, 2)))
        torch.bmm(h, ws[3].transpose(1, 2)).sum().backward()

    print(f"# {K} CNN members, batch {B}, {args.threads} thread(s), torch {torch.__version__}")
    print("| activation | one by one (ms a step) | stacked (ms a step) | one by one / stacked |\n|---|---|---|---|")
    for name, act in (("relu", torch.relu), ("tanh", torch.tanh)):
        single, stacked = [weights(1) for _ in range(K)], weights(K)
        times: dict[str, list[float]] = {"single": [], "stacked": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(10):
                for ws in single:
                    step(ws, 1, act)
            times["single"].append((time.perf_counter() - t0) * 100)
            t0 = time.perf_counter()
            for _ in range(10):
                step(stacked, K, act)
            times["stacked"].append((time.perf_counter() - t0) * 100)
        a, b = statistics.median(times["single"]), statistics.median(times["stacked"])
        print(f"| {name} | {a:.1f} | {b:.1f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
