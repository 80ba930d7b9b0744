"""Where stacking stops paying on this device: K members trained as one population against the same
K runs one by one, for MLPs of growing width (784-W-W-10, ReLU, momentum SGD, batch 100, 2,000 MNIST
training images, a fixed number of updates, no validation), one process, contenders alternating.

For each width it prints the median training time of both and their ratio (one by one / population),
and the member's multiply-adds per update (batch x weights, forward; the backward is twice that),
the quantity ``engine.population.worth_grouping`` compares with its per-device threshold.

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/population_width.py --repeats 3 -- threads=1
    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/population_width.py --widths 512 -- threads=1 \
        regularization=dropout regularization.dropout_p=0.5 regularization.input_dropout_p=0.2
    python3 benchmarks/population_width.py --members 16 --widths 256 1024 4096 -- device=cuda   # benchmarks/gpu.sh

Everything after ``--`` is a config override of every run. Each contender's time is the whole call
(building the members, training, the final evaluation on the training and validation splits).
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


def main() -> None:
    from nnbasics.engine.population import Population, member_macs
    from nnbasics.engine.train import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("overrides", nargs="*", help="e.g. threads=1 device=cpu")
    args = ap.parse_args()
    data_root()
    threads = next((int(o.split("=")[1]) for o in args.overrides if o.startswith("threads=")), None)
    if threads:
        torch.set_num_threads(threads)
    header(f"population of {args.members} vs {args.members} runs one by one, 784-W-W-10, {args.steps} updates",
           threads)
    print("| width | member multiply-adds per update | one by one (s) | population (s) | one by one / population |")
    print("|---|---|---|---|---|")
    for width in args.widths:
        cfgs = [compose(["data=mnist", "data.train_size=2000", f"model.width={width}", "model.depth=2",
                         "activation=relu", "init=he_normal", "optimizer=momentum", "batch_size=100",
                         f"steps={args.steps}", "eval_every=1000000", "eval_test=false", "monitor=off",
                         "progress=false", "checkpoint=false", f"seed={k}", *args.overrides])
                for k in range(args.members)]
        times = {"single": [], "population": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for c in cfgs:
                train(c)
            times["single"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            Population(cfgs, log_every_epoch=False).run()
            times["population"].append(time.perf_counter() - t0)
        s, p = statistics.median(times["single"]), statistics.median(times["population"])
        print(f"| {width} | {member_macs(cfgs[0]) / 1e6:.1f} M | {s:.2f} | {p:.2f} | {s / p:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
