"""`nnbasics-summary DIR`: many runs of a sweep gathered into one answer.

A sweep directory holds one directory per job (``<sweep dir>/<job.num>``), each with
``.hydra/overrides.yaml`` (what the job changed) and ``metrics.json`` (what it measured), read by
``nnbasics.engine.sweep`` (the reader ``load_sweep`` uses too). Jobs
that differ only in ``seed`` are one configuration; for each configuration the summary gives the
mean and the sample standard deviation (ddof=1; blank for a single seed) of every final metric
over its completed seeds, how many seeds completed, diverged, failed or left no result, and the
run directories. The best configuration is chosen by a validation metric (``val/acc`` by
default), never by a test metric.

    summary.csv   one row per configuration (a column per varying override, <metric>_mean/_std)
    summary.md    the same as a table, the best configuration, and every run that did not complete
                  (both with a ``tags`` column when the runs have ``tags``)

Only files are read, so a sweep whose jobs ran elsewhere (a cluster, another machine) is
summarized the same way once its directories are copied here. A Hydra callback
(`nnbasics.cli.callbacks.SweepCallback`) writes the summary at the end of every multirun.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from nnbasics.engine.sweep import STATUSES, Job, find_job_dirs, read_job  # noqa: F401 (the one reader)

METRICS = ("val/acc", "val/loss", "train/acc", "train/loss", "test/acc", "test/loss", "wall_time_s")
IGNORED_KEYS = {"seed"}  # what separates runs of one configuration


@dataclass
class Config:
    """The jobs of one configuration (all overrides equal except the seed)."""

    key: tuple[tuple[str, str], ...]
    jobs: list[Job] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(j.status == status for j in self.jobs)

    def values(self, metric: str) -> list[float]:
        out = []
        for j in self.jobs:
            v = j.metrics.get(metric)
            if j.status == "completed" and isinstance(v, (int, float)) and math.isfinite(v):
                out.append(float(v))
        return out

    def mean(self, metric: str) -> float:
        v = self.values(metric)
        return statistics.fmean(v) if v else math.nan

    def std(self, metric: str) -> float:
        v = self.values(metric)
        return statistics.stdev(v) if len(v) > 1 else math.nan

    @property
    def tags(self) -> list[str]:
        """Every ``tags`` entry of its runs, in first-seen order."""
        return list(dict.fromkeys(t for j in self.jobs for t in j.tags))


@dataclass
class Summary:
    root: Path
    configs: list[Config]
    varying: list[str]  # override keys that differ between configurations
    common: dict[str, str]  # override keys every job shares
    metric: str
    mode: str
    best: Config | None

    def label(self, c: Config) -> str:
        d = dict(c.key)
        return " ".join(f"{k}={d[k]}" for k in self.varying if k in d) or "(one configuration)"


def summarize(root: str | Path, metric: str = "val/acc", mode: str = "max") -> Summary:
    """Read every run under ``root`` and group them into configurations."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be max or min, not {mode!r}")
    jobs = [read_job(d) for d in find_job_dirs(root)]
    if not jobs:
        raise FileNotFoundError(f"no runs under {root} (a run has .hydra/overrides.yaml or metrics.json)")
    keys = sorted({k for j in jobs for k in j.overrides} - IGNORED_KEYS)
    common = {}
    for k in keys:
        vals = {j.overrides.get(k) for j in jobs}
        if len(vals) == 1 and None not in vals:
            common[k] = vals.pop()
    varying = [k for k in keys if k not in common]
    groups: dict[tuple, Config] = {}
    for j in jobs:
        key = tuple((k, j.overrides[k]) for k in varying if k in j.overrides)
        groups.setdefault(key, Config(key)).jobs.append(j)
    configs = list(groups.values())
    best = _best(configs, metric, mode)
    return Summary(root, configs, varying, common, metric, mode, best)


def _best(configs: Iterable[Config], metric: str, mode: str) -> Config | None:
    """The configuration with the best mean ``metric``. Configurations whose every seed
    completed rank before those where some seed diverged or failed."""
    sign = 1.0 if mode == "max" else -1.0
    ranked = [(c.count("completed") == len(c.jobs), sign * c.mean(metric), i, c)
              for i, c in enumerate(configs) if math.isfinite(c.mean(metric))]
    if not ranked:
        return None
    return max(ranked, key=lambda t: (t[0], t[1], -t[2]))[3]


# ----------------------------------------------------------------------------------------------
# Writing it
# ----------------------------------------------------------------------------------------------


def _metrics_present(s: Summary) -> list[str]:
    return [m for m in METRICS if any(c.values(m) for c in s.configs)]


def _tagged(s: Summary) -> bool:
    """A tags column only when some run has tags (``tags=[baseline,lr]``)."""
    return any(c.tags for c in s.configs)


def _rel(s: Summary, p: Path) -> str:
    return str(p.relative_to(s.root)) if p != s.root else "."


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.6g}"


def _status_text(c: Config) -> str:
    parts = [f"{c.count(st)} {st}" for st in STATUSES if c.count(st)]
    return ", ".join(parts)


def to_csv(s: Summary) -> str:
    metrics = _metrics_present(s)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    tagged = _tagged(s)
    w.writerow(["config", *s.varying, "n", *[f"n_{st}" for st in STATUSES], "seeds",
                *[f"{m}_{stat}" for m in metrics for stat in ("mean", "std")], "best",
                *(["tags"] if tagged else []), "run_dirs"])
    for c in s.configs:
        d = dict(c.key)
        w.writerow([s.label(c), *[d.get(k, "") for k in s.varying], len(c.jobs),
                    *[c.count(st) for st in STATUSES], " ".join(str(j.seed) for j in c.jobs),
                    *[_num(f(m)) for m in metrics for f in (c.mean, c.std)],
                    int(c is s.best), *([" ".join(c.tags)] if tagged else []), " ".join(_rel(s, j.dir) for j in c.jobs)])
    return buf.getvalue()


def to_markdown(s: Summary) -> str:
    metrics = _metrics_present(s)
    lines = [f"# Sweep summary: {s.root}", ""]
    n_jobs = sum(len(c.jobs) for c in s.configs)
    totals = ", ".join(f"{sum(c.count(st) for c in s.configs)} {st}" for st in STATUSES
                       if any(c.count(st) for c in s.configs))
    lines.append(f"{n_jobs} runs in {len(s.configs)} configurations: {totals}. "
                 f"Mean ± sample std over the completed seeds of each configuration.")
    if s.common:
        lines.append("Shared by every run: `" + " ".join(f"{k}={v}" for k, v in s.common.items()) + "`")
    lines.append("")
    if s.best is not None:
        b = s.best
        shown = [f"{m} {_pm(b, m)}" for m in metrics if m.startswith(("val/", "test/"))]
        lines.append(f"**Best by {s.metric} ({s.mode})**: `{s.label(b)}` — " + ", ".join(shown)
                     + f" (n={b.count('completed')}).")
    else:
        lines.append(f"**Best by {s.metric} ({s.mode})**: none (no configuration has a finite {s.metric}).")
    lines.append("")
    tagged = _tagged(s)
    head = ["config", "n", "status", *metrics, *(["tags"] if tagged else []), "run dirs"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for c in s.configs:
        mark = " **(best)**" if c is s.best else ""
        cells = [f"`{s.label(c)}`{mark}", str(len(c.jobs)), _status_text(c), *[_pm(c, m) for m in metrics],
                 *([", ".join(c.tags)] if tagged else []), " ".join(_rel(s, j.dir) for j in c.jobs)]
        lines.append("| " + " | ".join(cells) + " |")
    bad = [j for c in s.configs for j in c.jobs if j.status != "completed"]
    if bad:
        lines += ["", "## Runs that did not complete", ""]
        for j in bad:
            label = " ".join(f"{k}={j.overrides[k]}" for k in [*s.varying, *IGNORED_KEYS] if k in j.overrides)
            lines.append(f"- `{_rel(s, j.dir)}` ({label}): **{j.status}**: {j.error}")
    return "\n".join(lines) + "\n"


def _pm(c: Config, m: str) -> str:
    mean, std = c.mean(m), c.std(m)
    if not math.isfinite(mean):
        return "–"
    return _f4(mean) + (f" ± {_f4(std)}" if math.isfinite(std) else "")


def _f4(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.4g}"


def write_summary(root: str | Path, metric: str = "val/acc", mode: str = "max") -> Summary:
    """Summarize ``root`` and write ``summary.csv`` and ``summary.md`` there."""
    s = summarize(root, metric, mode)
    (s.root / "summary.csv").write_text(to_csv(s))
    (s.root / "summary.md").write_text(to_markdown(s))
    return s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nnbasics-summary", description=(
        "Gather the runs of a sweep directory into summary.csv and summary.md: one row per "
        "configuration (all overrides but the seed) with mean and std over seeds, the best "
        "configuration by a validation metric, and every run that diverged or failed."))
    p.add_argument("dir", help="a sweep directory (e.g. outputs/multirun/<date>/<time>_<id>)")
    p.add_argument("--metric", default="val/acc", help="choose the best configuration by this metric (default val/acc)")
    p.add_argument("--mode", choices=("max", "min"), default=None,
                   help="max or min of --metric (default: min for a loss, else max)")
    p.add_argument("--quiet", action="store_true", help="write the files, print only their paths")
    args = p.parse_args(argv)
    if args.metric.startswith("test/"):
        p.error("the best configuration is chosen on validation (or train) metrics, never on test ones")
    mode = args.mode or ("min" if "loss" in args.metric else "max")
    try:
        s = write_summary(args.dir, args.metric, mode)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print((s.root / "summary.md").read_text())
    print(f"wrote {s.root / 'summary.csv'} and {s.root / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
