"""Time from process start to 98.0% MNIST test accuracy with an MLP (nnbasics-train).

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/time_to_accuracy.py --repeats 5

Each repeat starts a fresh `nnbasics-train` process with a fixed recipe (chosen beforehand,
never stopped early by peeking at the test split) and measures the wall time from process
start to exit; the run's own metrics.json gives test/acc and the in-process wall_time_s (data
load + training + evaluation), so the rest is interpreter start-up and imports.
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

# Chosen on the validation split only (5,000 images carved from training; eval_test=false), seeds
# 0-4, by the rule "the fastest recipe (median process wall, candidates timed alternately) whose
# mean val acc is >= 98.2 %": 98.0 % plus one standard error of an accuracy near 98 % measured on
# 5,000 images (0.2 points), so that test accuracy, a different sample, clears 98.0 % too.
# The candidates: benchmarks/time_to_accuracy_candidates.py; their numbers and how the rule came
# about: benchmarks/RESULTS.md, section (3).
COMMON = ["data=mnist", "model.width=256", "model.depth=2", "model.norm=batch", "activation=relu", "init=he_normal",
          "optimizer=adam", "scheduler=cosine", "monitor=off", "checkpoint=false", "progress=false", "device=auto"]
CHOSEN = ["preprocess=pca", "preprocess.k=64", "preprocess.fit_size=10000", "optimizer.lr=1e-2", "batch_size=512",
          "epochs=5"]
RECIPE = COMMON + CHOSEN


def timed_run(overrides: list[str], run_dir: Path) -> tuple[float, dict]:
    """One fresh `nnbasics-train` process: its wall time from start to exit and its metrics.json."""
    exe = Path(sys.executable).parent / "nnbasics-train"
    t0 = time.perf_counter()
    subprocess.run([str(exe), *overrides, f"hydra.run.dir={run_dir}"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("overrides", nargs="*", help="overrides added to the recipe")
    args = ap.parse_args()
    data_root()
    header("time from process start to MNIST test accuracy >= 98.0% (MLP)")
    print("# recipe: " + " ".join(RECIPE + args.overrides))
    walls, inner, accs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            wall, m = timed_run([*RECIPE, *args.overrides, f"seed={r}"], Path(tmp) / f"run{r}")
            walls.append(wall)
            inner.append(m["wall_time_s"])
            accs.append(m["test/acc"])
            print(f"run {r} (seed {r}): process wall {walls[-1]:.1f} s, of which train() {inner[-1]:.1f} s; "
                  f"test/acc {accs[-1]:.4f}", flush=True)
    w = statistics.median(walls)
    print(f"\nmedian: process wall {w:.1f} s (train() {statistics.median(inner):.1f} s, start-up and imports "
          f"{w - statistics.median(inner):.1f} s), test/acc {statistics.median(accs):.4f}, min test/acc {min(accs):.4f}")
    print(f"reached 98.0% in every run: {all(a >= 0.98 for a in accs)}; target <= 10 s: {'met' if w <= 10 and all(a >= 0.98 for a in accs) else 'missed'}")


if __name__ == "__main__":
    main()
