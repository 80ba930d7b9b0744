"""A 16-configuration sweep (4 learning rates x 4 seeds, a small MLP, MNIST): the population
launcher vs Hydra's basic launcher, each a whole `nnbasics-train -m` command from process start
to exit, run alternately (basic, population, basic, population, ...).

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/sweep_launchers.py --repeats 3

Also checks that the two sweeps agree: the largest difference in val/acc and test/acc between
a population job and the basic launcher's job with the same overrides.

And times a third command, the population sweep with `steps=1` (everything but the training:
start-up, Hydra's composes, data, set-up, final evaluation, 16 run directories): basic wall /
that wall is the most this sweep could gain from a faster population step (Amdahl's bound).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, header  # noqa: E402

SWEEP = ["data=mnist", "model.width=64", "model.depth=1", "optimizer=adam", "batch_size=128", "monitor=off",
         "progress=false", "checkpoint=false", "optimizer.lr=3e-4,1e-3,3e-3,1e-2", "seed=0,1,2,3"]


def run(sweep_dir: Path, extra: list[str], epochs: int) -> float:
    """Wall time of one whole multirun command."""
    exe = Path(sys.executable).parent / "nnbasics-train"
    t0 = time.perf_counter()
    subprocess.run([str(exe), "-m", *SWEEP, f"epochs={epochs}", *extra, f"hydra.sweep.dir={sweep_dir}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def metrics(sweep_dir: Path) -> dict[str, dict]:
    out = {}
    for d in sweep_dir.iterdir():
        if (d / "metrics.json").exists():
            key = (d / ".hydra" / "overrides.yaml").read_text()
            out[key] = json.loads((d / "metrics.json").read_text())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=None, help="data.train_size (default: all 55000)")
    args = ap.parse_args()
    extra = [f"data.train_size={args.train_size}"] if args.train_size else []
    data_root()
    header(f"16-config sweep (4 lr x 4 seeds), 784-64-10 MLP, MNIST ({args.train_size or 55000} training "
           f"images), {args.epochs} epochs")
    walls: dict[str, list[float]] = {"basic": [], "population": [], "population, 1 update": []}
    diff = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            b = Path(tmp) / f"basic{r}"
            p = Path(tmp) / f"pop{r}"
            walls["basic"].append(run(b, extra, args.epochs))
            print(f"repeat {r} basic launcher      {walls['basic'][-1]:7.1f} s", flush=True)
            walls["population"].append(run(p, extra + ["hydra/launcher=population"], args.epochs))
            print(f"repeat {r} population launcher {walls['population'][-1]:7.1f} s", flush=True)
            walls["population, 1 update"].append(run(Path(tmp) / f"one{r}", extra + ["hydra/launcher=population",
                                                                                  "steps=1"], args.epochs))
            print(f"repeat {r} population, 1 update {walls['population, 1 update'][-1]:7.1f} s", flush=True)
            mb, mp = metrics(b), metrics(p)
            assert len(mb) == len(mp) == 16, (len(mb), len(mp))
            assert all(m.get("population_size") == 16 for m in mp.values()), "not trained as one population"
            diff = max([diff] + [abs(mb[k][m] - mp[k][m]) for k in mb for m in ("val/acc", "test/acc")])
    mb_, mp_ = statistics.median(walls["basic"]), statistics.median(walls["population"])
    m1 = statistics.median(walls["population, 1 update"])
    print(f"\nmedian wall: basic {mb_:.1f} s, population {mp_:.1f} s, speed-up {mb_ / mp_:.1f}x")
    print(f"population with 1 update (all but the training) {m1:.1f} s: the speed-up could reach at most "
          f"{mb_ / m1:.1f}x with a population step that took no time")
    print(f"largest |difference| in val/acc or test/acc between the two launchers' jobs: {diff:.2e}")


if __name__ == "__main__":
    main()
