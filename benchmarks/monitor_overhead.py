"""What the monitor costs: epoch time of the default run with ``monitor.level`` off against basic.

    NNBASICS_DATA=../shared/data .venv/bin/python benchmarks/monitor_overhead.py
    NNBASICS_DATA=../shared/data .venv/bin/python benchmarks/monitor_overhead.py --repeats 5 --levels off basic full

The default config (MNIST, MLP 784-512-512-10, Adam, batch 128: 430 updates per epoch) is
trained ``--epochs`` epochs per run, the levels interleaved (the order alternates every repeat)
so that drifting load on a shared machine hits all levels alike. An epoch's time runs from one
``on_epoch_end`` call to the next (stamped by a wrapper): it includes the update loop with the
monitor's per-step hooks and snapshots, validation, and the monitor's end-of-epoch pass of the
epoch before; the first epoch (warm-up) is left out. Wall and CPU time (all threads of the
process) are both recorded: on a machine shared with other jobs the CPU time is the steadier. Reported: the median epoch time per level
and its overhead against ``off`` (issue 5 asks for basic <= 5%), the median of the per-repeat
(adjacent-run) ratios, and the seconds spent inside the monitor's hooks per epoch as a fraction
of the ``off`` epoch: the last is the least noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def compose(overrides: list[str]):
    import nnbasics.cli.train  # noqa: F401  (registers the nnbasics_uid resolver)
    from hydra import compose as hydra_compose, initialize_config_dir

    from nnbasics.conf import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


PER_EPOCH_HOOKS = ("before_step", "after_step", "on_epoch_end")


def timed_hooks(spent: dict[str, float]):
    """Wrap the Monitor's per-epoch hooks to add the seconds spent inside them to ``spent`` (a
    direct measure of the monitor's own cost, much less sensitive to a shared machine's load
    than the difference of two epoch times). Returns a function that undoes the wrapping."""
    from nnbasics.engine.monitor import Monitor

    originals = {name: getattr(Monitor, name) for name in PER_EPOCH_HOOKS}
    spent.setdefault("_epoch_stamps", [])

    def wrap(name, fn):
        def timed(self, *args):
            t = time.perf_counter()
            if name == "on_epoch_end":  # epoch boundaries, wall and CPU time (of all this process's threads)
                spent["_epoch_stamps"].append((t, time.process_time()))
            try:
                return fn(self, *args)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
                if name == "on_epoch_end":
                    spent["_epoch_stamps"][-1] += (time.perf_counter() - t,)
        return timed

    for name, fn in originals.items():
        setattr(Monitor, name, wrap(name, fn))
    return lambda: [setattr(Monitor, name, fn) for name, fn in originals.items()]


def run_once(level: str, epochs: int, extra: list[str], workdir: Path) -> dict:
    from nnbasics.engine.train import train

    cfg = compose([f"monitor={level}", f"epochs={epochs}", "progress=false", "eval_test=false", *extra])
    run_dir = Path(tempfile.mkdtemp(prefix=f"{level}-", dir=workdir))
    spent: dict[str, float] = {}
    undo = timed_hooks(spent)
    t0 = time.perf_counter()
    try:
        metrics = train(cfg, run_dir=run_dir)
    finally:
        undo()
    wall = time.perf_counter() - t0
    stamps = spent.pop("_epoch_stamps")
    # epoch k (k >= 2): from the start of on_epoch_end(k-1) to the start of on_epoch_end(k), so it holds
    # the monitor's end-of-epoch pass of the epoch before, the update loop and validation
    epoch_s = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
    epoch_cpu_s = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    return {"level": level, "epoch_s": epoch_s, "epoch_cpu_s": epoch_cpu_s, "wall_s": wall,
            "hook_s_per_epoch": sum(spent.values()) / max(1, len(metrics["history"])),
            "hook_s": spent, "val_acc": metrics.get("val/acc"), "steps": metrics["steps"], "device": str(cfg.device)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs per level (default 3)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is left out (default 3)")
    p.add_argument("--levels", nargs="+", default=["off", "basic"], help="monitor levels (default: off basic)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    p.add_argument("overrides", nargs="*", help="extra config overrides, e.g. device=cpu threads=2")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is warm-up)")
    if "NNBASICS_DATA" not in os.environ and (REPO.parent / "shared" / "data").is_dir():
        os.environ["NNBASICS_DATA"] = str(REPO.parent / "shared" / "data")
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA {torch.cuda.is_available()}; "
          f"overrides: {' '.join(args.overrides) or '(none)'}", flush=True)
    results: dict[str, list[dict]] = {level: [] for level in args.levels}
    with tempfile.TemporaryDirectory(prefix="monitor-overhead-") as tmp:
        for r in range(args.repeats):
            order = args.levels if r % 2 == 0 else list(reversed(args.levels))
            for level in order:
                res = run_once(level, args.epochs, args.overrides, Path(tmp))
                results[level].append(res)
                print(f"repeat {r + 1}/{args.repeats} {level:>5}: epochs {', '.join(f'{s:.2f}' for s in res['epoch_s'])} s,"
                      f" in monitor hooks {res['hook_s_per_epoch']:.3f} s/epoch  (run {res['wall_s']:.1f} s, "
                      f"val/acc {res['val_acc']:.4f})", flush=True)
    base_level = args.levels[0]
    base = statistics.median(s for res in results[base_level] for s in res["epoch_s"])
    base_cpu = statistics.median(s for res in results[base_level] for s in res["epoch_cpu_s"])
    print(f"\n{'level':>6} {'median epoch s':>15} {'min':>7} {'max':>7} {'overhead':>9} {'paired':>8} {'in hooks':>9} "
          f"{'cpu s':>8} {'cpu ovh':>8}")
    summary = {}
    for level in args.levels:
        epochs = [s for res in results[level] for s in res["epoch_s"]]
        med = statistics.median(epochs)
        # paired: each repeat's median against the same repeat's base median (adjacent in time)
        paired = statistics.median(statistics.median(a["epoch_s"]) / statistics.median(b["epoch_s"]) - 1
                                   for a, b in zip(results[level], results[base_level]))
        hooks = statistics.median(res["hook_s_per_epoch"] for res in results[level])
        cpu = statistics.median(s for res in results[level] for s in res["epoch_cpu_s"])
        summary[level] = {"median_epoch_s": med, "epochs_s": epochs, "overhead": med / base - 1,
                          "paired_overhead": paired, "hook_s_per_epoch": hooks, "hook_fraction": hooks / base,
                          "median_epoch_cpu_s": cpu, "cpu_overhead": cpu / base_cpu - 1}
        print(f"{level:>6} {med:15.3f} {min(epochs):7.2f} {max(epochs):7.2f} {100 * (med / base - 1):+8.1f}% "
              f"{100 * paired:+7.1f}% {100 * hooks / base:8.2f}% {cpu:8.2f} {100 * (cpu / base_cpu - 1):+7.1f}%")
    print(f"overhead: median epoch (wall) time against {base_level}; paired: median over repeats of the ratio of "
          f"adjacent runs; in hooks: seconds inside the monitor's per-epoch hooks / median {base_level} epoch time; "
          f"cpu s: median CPU seconds (all threads) per epoch, and its overhead")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
