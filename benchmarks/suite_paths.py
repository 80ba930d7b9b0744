"""The whole experiment suite, population path against sequential path, side by side.

Two `nnbasics-experiment` processes start together, each from a cold start, at the same code
and budget, each on its own CPU core (`threads=1`), into their own output folders:

    population=true    arms x seeds grouped as populations where the engine can (the default)
    population=false   every training run one by one (the sequential path)

Both see the same machine at the same time (load, thermal state, the other process), so the
ratio of their wall times is the measured gain; each wall time is the whole process, from the
interpreter's start to its exit, including data loading, composes and figures.

    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/suite_paths.py            # all, default budget
    NNBASICS_DATA=/work/shared/data .venv/bin/python benchmarks/suite_paths.py R1 I3 O4   # a subset

Writes `<out>/suite_paths.json` (both wall times, per-experiment wall times and verdicts of both
paths) and prints a table; the population path's output folder holds a complete suite result
(`nnbasics-experiment report out=<out>/population` builds its report).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, header  # noqa: E402


def latest(out: Path, budget: str) -> dict[str, dict]:
    from nnbasics.suite.report import latest_results

    return {i: rec for i, (rec, _) in latest_results(out, budget).items()}


def grouped_share(pop_rec: dict, seq_rec: dict) -> tuple[float, float, int]:
    """For one experiment: the sequential path's wall time of the runs that the population path
    trained as members (matched by run folder), the population path's wall time of those
    populations (each counted once), and how many runs that is."""
    pop_runs, seq_runs = Path(pop_rec["result_dir"]) / "runs", Path(seq_rec["result_dir"]) / "runs"
    seq_s, pop_s, seen, n = 0.0, 0.0, set(), 0
    for metrics in sorted(pop_runs.glob("**/metrics.json")) if pop_runs.is_dir() else []:
        m = json.loads(metrics.read_text())
        if "population_size" not in m:
            continue
        twin = seq_runs / metrics.relative_to(pop_runs)
        if not twin.exists():
            continue
        n += 1
        seq_s += float(json.loads(twin.read_text()).get("wall_time_s", 0.0))
        key = (round(float(m.get("wall_time_s", 0.0)), 6), m["population_size"])  # the members of one population
        if key not in seen:
            seen.add(key)
            pop_s += float(m.get("wall_time_s", 0.0))
    return seq_s, pop_s, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ids", nargs="*", default=["all"], help="experiment IDs (default: all)")
    ap.add_argument("--budget", default="default")
    ap.add_argument("--out", default="outputs/suite_paths", help="folder for both paths' results")
    args = ap.parse_args()
    root = data_root()
    header(f"experiment suite {' '.join(args.ids)} at budget={args.budget}: population path vs sequential path, "
           "side by side, threads=1 each", threads=1)
    exe = Path(sys.executable).parent / "nnbasics-experiment"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    procs, starts, walls = {}, {}, {}
    for path in ("population", "sequential"):
        cmd = [str(exe), *args.ids, f"budget={args.budget}", "threads=1", f"data={root}",
               f"out={out / path}", f"report={out / path / 'report'}",
               f"population={'true' if path == 'population' else 'false'}"]
        print(f"$ {' '.join(cmd)}", flush=True)
        log = open(out / f"{path}.log", "w")
        starts[path] = time.perf_counter()
        procs[path] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
    codes = {}
    while len(walls) < len(procs):
        for path, (proc, log) in procs.items():
            if path not in walls and proc.poll() is not None:
                walls[path] = time.perf_counter() - starts[path]
                codes[path] = proc.returncode
                log.close()
                print(f"{path} path finished in {walls[path]:.0f} s (exit {proc.returncode})", flush=True)
        time.sleep(1.0)
    recs = {path: latest(out / path, args.budget) for path in procs}
    print(f"\n| experiment | population wall (s) | sequential wall (s) | ratio | verdicts (pop / seq) |\n|---|---|---|---|---|")
    rows = {}
    for i in sorted(set(recs["population"]) | set(recs["sequential"])):
        p, s = recs["population"].get(i, {}), recs["sequential"].get(i, {})
        pw, sw = p.get("wall_time_s", float("nan")), s.get("wall_time_s", float("nan"))
        rows[i] = {"population_s": pw, "sequential_s": sw, "verdicts": [p.get("verdict"), s.get("verdict")]}
        print(f"| {i} | {pw:.0f} | {sw:.0f} | {sw / pw:.2f} | {p.get('verdict')} / {s.get('verdict')} |")
    ratio = walls["sequential"] / walls["population"]
    print(f"\nwhole suite, process wall: population {walls['population']:.0f} s, sequential {walls['sequential']:.0f} s, "
          f"sequential / population = {ratio:.2f}x")
    # What grouping can give at most: the runs the population path grouped, at their sequential cost,
    # against the populations that trained them; and the ceiling if those runs had cost nothing at all.
    seq_g = pop_g = 0.0
    n_g = 0
    for i in rows:
        if i in recs["population"] and i in recs["sequential"]:
            a, b, n = grouped_share(recs["population"][i], recs["sequential"][i])
            rows[i].update(grouped_runs=n, grouped_sequential_s=a, grouped_population_s=b)
            seq_g, pop_g, n_g = seq_g + a, pop_g + b, n_g + n
    rest = walls["sequential"] - seq_g
    ceiling = walls["sequential"] / rest if rest > 0 else float("inf")
    print(f"grouped runs: {n_g}; one by one they took {seq_g:.0f} s, as populations {pop_g:.0f} s "
          f"({seq_g / pop_g if pop_g else float('nan'):.2f}x); everything else took {rest:.0f} s on the sequential path, "
          f"so even free grouped runs give at most {ceiling:.2f}x")
    (out / "suite_paths.json").write_text(json.dumps(
        {"ids": args.ids, "budget": args.budget, "wall_s": walls, "exit": codes, "ratio": ratio, "experiments": rows,
         "grouped": {"runs": n_g, "sequential_s": seq_g, "population_s": pop_g, "rest_sequential_s": rest,
                     "ceiling": ceiling}},
        indent=2))


if __name__ == "__main__":
    main()
