"""`nnbasics-search`: coarse-to-fine hyperparameter search on the validation split, then one
final run of the chosen configuration that reports test accuracy once.

    nnbasics-search data=spiral epochs=5 --coarse-trials 20 --fine-trials 20

1. **Coarse stage.** A Hydra multirun with the Optuna sweeper over the wide ranges of a
   ``conf/hparams_search`` option (default ``tpe``: lr in [1e-6, 1e-1], weight decay in
   [1e-8, 1e-2], both log-scale), sampled at random by default.
2. **Fine stage.** The same, with every range narrowed to the span of the best coarse trials (the
   top ``--top`` fraction by ``val/acc``, at least ``--min-top``), TPE by default. Each narrowed
   range is checked to lie inside its coarse range.
3. **Final run.** A normal run (``search=false eval_test=true``) of the best trial of both stages
   by ``val/acc``: the only time the test split is read.

Every trial runs with ``search=true``: the test split loader raises inside it. Both studies are
kept in SQLite (``<dir>/optuna.db`` by default; ``--storage``/``--study-name`` to share one and
add trials to it later). The search directory holds ``coarse/`` and ``fine/`` (sweep dirs with
their summary.md), ``final/`` (the run), ``coarse.log``/``fine.log``/``final.log`` and
``search.json``/``search.md`` (ranges, best trials, final metrics).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SAMPLERS = ("random", "tpe")
FIREWALL = ["search=true", "eval_test=false"]


# ----------------------------------------------------------------------------------------------
# Ranges: an Optuna distribution as a Hydra sweep override, and its narrowing
# ----------------------------------------------------------------------------------------------


@dataclass
class Range:
    name: str
    kind: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list = field(default_factory=list)

    @classmethod
    def from_distribution(cls, name: str, d: Any) -> "Range":
        from optuna import distributions as D

        if isinstance(d, D.LogUniformDistribution):
            return cls(name, "float", d.low, d.high, log=True)
        if isinstance(d, D.UniformDistribution):
            return cls(name, "float", d.low, d.high)
        if isinstance(d, D.DiscreteUniformDistribution):
            return cls(name, "float", d.low, d.high, step=d.q)
        if isinstance(d, D.IntLogUniformDistribution):  # only from the deprecated search_space config
            return cls(name, "int", d.low, d.high, step=1)  # narrowed, it is searched uniformly
        if isinstance(d, D.IntUniformDistribution):
            return cls(name, "int", d.low, d.high, step=d.step)
        if isinstance(d, D.CategoricalDistribution):
            return cls(name, "categorical", choices=list(d.choices))
        raise TypeError(f"{name}: unsupported distribution {d!r}")

    def to_override(self) -> str:
        """The Hydra override that makes the Optuna sweeper sample this range."""
        if self.kind == "categorical":
            vals = [_fmt(c) for c in self.choices]
            return f"{self.name}={vals[0]}" if len(vals) == 1 else f"{self.name}=choice({','.join(vals)})"
        lo, hi = _fmt(self.low), _fmt(self.high)
        if self.kind == "int":  # Hydra's interval() is always float; range(a,b,s) is Optuna's int a..b
            return f"{self.name}=range({lo},{hi},{self.step or 1})"
        if self.log:
            return f"{self.name}=tag(log,interval({lo},{hi}))"
        if self.step is not None:
            return f"{self.name}=range({lo},{hi},{_fmt(self.step)})"
        return f"{self.name}=interval({lo},{hi})"

    def contains(self, other: "Range") -> bool:
        if self.kind != other.kind:
            return False
        if self.kind == "categorical":
            return set(other.choices) <= set(self.choices)
        return self.low <= other.low <= other.high <= self.high

    def __str__(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"[{self.low:.4g}, {self.high:.4g}]" + (" (log)" if self.log else "")


def _fmt(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x).lower() if x is not None else "null"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return repr(x)
    return str(x)


def narrow(r: Range, values: list, widen: float = 3.0) -> Range:
    """The range spanned by ``values`` (the best trials' values), inside ``r``. A span of one
    point is widened by the factor ``widen`` each way (log scale) or by 10% of ``r`` (linear)."""
    if not values:
        return r
    if r.kind == "categorical":
        return Range(r.name, r.kind, choices=[c for c in r.choices if c in values])
    lo, hi = min(values), max(values)
    if r.kind == "int":
        lo, hi = int(lo), int(hi)
        if lo == hi:
            lo, hi = max(int(r.low), lo - 1), min(int(r.high), hi + 1)
        return Range(r.name, r.kind, lo, hi, r.log, r.step)
    if r.log and hi <= lo * (1 + 1e-9):
        lo, hi = lo / widen, hi * widen
    elif not r.log and hi - lo <= 1e-12 * max(1.0, abs(hi)):
        pad = 0.1 * (r.high - r.low)
        lo, hi = lo - pad, hi + pad
    lo, hi = max(float(r.low), float(lo)), min(float(r.high), float(hi))
    return Range(r.name, r.kind, lo, hi, r.log, r.step)


# ----------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------


@dataclass
class Trial:
    number: int
    params: dict
    value: float


@dataclass
class Stage:
    name: str
    study: str
    sampler: str
    n_trials: int
    sweep_dir: str
    returncode: int = 0
    ranges: dict = field(default_factory=dict)  # name -> Range
    n_completed: int = 0
    n_failed: int = 0
    top: list = field(default_factory=list)  # best Trials, best first
    wall_time_s: float = 0.0


def _quote(value: str) -> str:
    return f"'{value}'" if "'" not in value else value


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(override).is_sweep_override()
    except HydraException:
        return False  # not valid Hydra syntax: nnbasics-train will say so


def _run(cmd: list[str], log_path: Path, verbose: bool) -> int:
    env = dict(os.environ)
    with open(log_path, "w") as log:
        log.write(" ".join(cmd) + "\n\n")
        log.flush()
        if verbose:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            return proc.wait()
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def run_stage(stage: Stage, args: argparse.Namespace, base: list[str], ranges: list[str], storage: str,
              log_path: Path) -> Stage:
    cmd = [sys.executable, "-m", "nnbasics", "-m", f"hparams_search={args.hparams_search}", *base, *ranges,
           *FIREWALL, f"hydra/sweeper/sampler={stage.sampler}", f"hydra.sweeper.sampler.seed={args.sampler_seed}",
           f"hydra.sweeper.n_trials={stage.n_trials}", f"hydra.sweeper.storage={_quote(storage)}",
           f"hydra.sweeper.study_name={stage.study}", f"hydra.sweep.dir={_quote(stage.sweep_dir)}"]
    if args.jobs > 1:
        cmd += ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={args.jobs}", f"hydra.sweeper.n_jobs={args.jobs}"]
    t0 = time.perf_counter()
    stage.returncode = _run(cmd, log_path, args.verbose)
    stage.wall_time_s = time.perf_counter() - t0
    sweep_dir = Path(stage.sweep_dir)
    if sweep_dir.is_dir() and not (sweep_dir / "summary.md").exists():  # the sweep crashed before its end
        from nnbasics.cli.summary import write_summary

        try:
            write_summary(sweep_dir)
        except (FileNotFoundError, ValueError):
            pass  # no trial ran at all
    return stage


def read_study(stage: Stage, storage: str, top_frac: float, min_top: int) -> Stage:
    """Fill the stage's ranges (the distributions its trials were drawn from), counts and best
    trials from the Optuna study in ``storage``."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=stage.study, storage=storage)
    except KeyError:
        return stage  # the stage failed before it made its study
    trials = study.get_trials(deepcopy=False)
    for t in trials:  # the latest trial's distributions are this run's ranges
        for name, d in t.distributions.items():
            stage.ranges[name] = Range.from_distribution(name, d)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    done = [t for t in done if all(n in t.params and _inside(stage.ranges[n], t.params[n]) for n in stage.ranges)]
    stage.n_completed = len(done)
    stage.n_failed = sum(t.state == TrialState.FAIL for t in trials)
    done.sort(key=lambda t: (-t.value, t.number))
    k = min(len(done), max(min_top, math.ceil(top_frac * len(done))))
    stage.top = [Trial(t.number, dict(t.params), float(t.value)) for t in done[:k]]
    return stage


def _inside(r: Range, v: Any) -> bool:
    if r.kind == "categorical":
        return v in r.choices
    return r.low <= v <= r.high


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


def _default_dir() -> Path:
    return Path("outputs/search") / time.strftime("%Y-%m-%d") / f"{time.strftime('%H-%M-%S')}_{uuid.uuid4().hex[:6]}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nnbasics-search", description=(
        "Coarse-to-fine hyperparameter search on the validation split (Hydra's Optuna sweeper), "
        "then one final run of the best configuration that reports test accuracy once. "
        "Positional arguments are nnbasics-train overrides shared by every run (data=spiral epochs=5 ...)."))
    p.add_argument("overrides", nargs="*", help="nnbasics-train overrides for every trial and the final run")
    p.add_argument("--hparams-search", default="tpe", help="the conf/hparams_search option with the coarse "
                   "ranges (default tpe); a sweep override such as 'optimizer.lr=tag(log,interval(1e-5,1))' "
                   "among the overrides replaces that range")
    p.add_argument("--coarse-trials", type=int, default=20, help="trials of the coarse stage (default 20)")
    p.add_argument("--fine-trials", type=int, default=20, help="trials of the fine stage (default 20)")
    p.add_argument("--coarse-sampler", choices=SAMPLERS, default="random", help="default random")
    p.add_argument("--fine-sampler", choices=SAMPLERS, default="tpe", help="default tpe")
    p.add_argument("--top", type=float, default=0.25, help="fraction of the coarse trials whose span the fine "
                   "ranges take (default 0.25)")
    p.add_argument("--min-top", type=int, default=3, help="at least this many best trials (default 3)")
    p.add_argument("--widen", type=float, default=3.0, help="a one-point span becomes [x/widen, x*widen] (log ranges)")
    p.add_argument("--jobs", type=int, default=1, help="trials at once (joblib launcher; default 1)")
    p.add_argument("--sampler-seed", type=int, default=0, help="seed of the Optuna samplers (default 0)")
    p.add_argument("--dir", type=Path, default=None, help="search directory (default outputs/search/<date>/<time>_<id>)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///<dir>/optuna.db)")
    p.add_argument("--study-name", default="search", help="studies are <name>-coarse and <name>-fine; the same "
                   "name and storage again add trials to them (default search)")
    p.add_argument("--verbose", action="store_true", help="show the trials' output (always in <dir>/*.log)")
    args = p.parse_intermixed_args(argv)
    if args.coarse_trials < 1 or args.fine_trials < 0:
        p.error("--coarse-trials must be >= 1 and --fine-trials >= 0")
    if not 0 < args.top <= 1 or args.min_top < 1:
        p.error("--top must be in (0, 1] and --min-top >= 1")
    if args.widen <= 1:
        p.error("--widen must be > 1")
    bad = [o for o in args.overrides if o.split("=", 1)[0].lstrip("+~") in ("search", "eval_test", "hparams_search")]
    if bad:
        p.error(f"{' '.join(bad)}: set by nnbasics-search itself (trials: search=true; final run: eval_test=true; "
                f"the search space: --hparams-search)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        print("error: nnbasics-search needs the Optuna sweeper: pip install -e '.[sweep]'", file=sys.stderr)
        return 2
    out = (args.dir or _default_dir()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{out / 'optuna.db'}"
    space = [o for o in args.overrides if _is_sweep(o)]  # user-given coarse ranges
    base = [o for o in args.overrides if o not in space]  # fixed for every run
    report: dict[str, Any] = {"hparams_search": args.hparams_search, "overrides": base, "storage": storage,
                              "dir": str(out), "stages": []}

    def stage_report(s: Stage) -> dict:
        d = asdict(s)
        d["ranges"] = {k: {**asdict(r), "text": str(r), "override": r.to_override()} for k, r in s.ranges.items()}
        return d

    def finish(code: int, message: str | None = None) -> int:
        if message:
            report["error"] = message
            print(f"error: {message}", file=sys.stderr)
        (out / "search.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "search.md").write_text(to_markdown(report))
        print(f"search dir: {out}")
        return code

    # 1. coarse ------------------------------------------------------------------------------------
    coarse = Stage("coarse", f"{args.study_name}-coarse", args.coarse_sampler, args.coarse_trials, str(out / "coarse"))
    print(f"coarse stage: {coarse.n_trials} trials ({coarse.sampler} sampler) -> {coarse.sweep_dir}", flush=True)
    run_stage(coarse, args, base, space, storage, out / "coarse.log")
    read_study(coarse, storage, args.top, args.min_top)
    report["stages"].append(stage_report(coarse))
    print(_stage_line(coarse), flush=True)
    if not coarse.top:
        return finish(1, f"no coarse trial completed (exit code {coarse.returncode}); see {out / 'coarse.log'} "
                         f"and {coarse.sweep_dir}/*/metrics.json")

    # 2. fine: every range narrowed to the span of the best coarse trials ---------------------------
    best, best_stage = coarse.top[0], "coarse"
    if args.fine_trials > 0:
        fine_ranges = {n: narrow(r, [t.params[n] for t in coarse.top], args.widen) for n, r in coarse.ranges.items()}
        for n, r in fine_ranges.items():
            if not coarse.ranges[n].contains(r):  # never search outside what the coarse stage allowed
                raise AssertionError(f"fine range of {n} {r} is not inside the coarse range {coarse.ranges[n]}")
        fine = Stage("fine", f"{args.study_name}-fine", args.fine_sampler, args.fine_trials, str(out / "fine"))
        print(f"fine stage: {fine.n_trials} trials ({fine.sampler} sampler), ranges "
              + ", ".join(f"{n} {r}" for n, r in fine_ranges.items()), flush=True)
        run_stage(fine, args, base, [r.to_override() for r in fine_ranges.values()], storage, out / "fine.log")
        read_study(fine, storage, args.top, args.min_top)
        report["stages"].append(stage_report(fine))
        print(_stage_line(fine), flush=True)
        if fine.top and fine.top[0].value > best.value:
            best, best_stage = fine.top[0], "fine"
    report["best"] = {"stage": best_stage, "trial": best.number, "params": best.params, "val/acc": best.value}

    # 3. final: the chosen configuration, a normal run that reads the test split once --------------
    chosen = [f"{n}={_fmt(v)}" for n, v in best.params.items()]
    final_dir = out / "final"
    cmd = [sys.executable, "-m", "nnbasics", f"hparams_search={args.hparams_search}", *base, *chosen,
           "search=false", "eval_test=true", f"hydra.run.dir={_quote(str(final_dir))}"]
    report["final"] = {"command": "nnbasics-train " + " ".join(cmd[3:-1]), "run_dir": str(final_dir)}
    print(f"final run: {' '.join(chosen)} -> {final_dir}", flush=True)
    rc = _run(cmd, out / "final.log", args.verbose)
    metrics_path = final_dir / "metrics.json"
    if rc != 0 or not metrics_path.exists():
        return finish(1, f"the final run failed (exit code {rc}); see {out / 'final.log'}")
    metrics = json.loads(metrics_path.read_text())
    report["final"]["metrics"] = {k: v for k, v in metrics.items() if k != "history"}
    print("final: " + "  ".join(f"{k} {metrics[k]:.4f}" for k in ("train/acc", "val/acc", "test/acc") if k in metrics))
    return finish(0)


def _stage_line(s: Stage) -> str:
    best = f"; best val/acc {s.top[0].value:.4f} at {s.top[0].params}" if s.top else ""
    return f"{s.name} stage: {s.n_completed} completed, {s.n_failed} failed ({s.wall_time_s:.0f} s){best}"


def to_markdown(report: dict) -> str:
    lines = [f"# Search: {report['dir']}", "",
             f"Search space `hparams_search={report['hparams_search']}`, fixed overrides "
             f"`{' '.join(report['overrides']) or '(none)'}`, studies in `{report['storage']}`. "
             "Trials ran with search=true (the test split cannot be read); the choice is by val/acc.", ""]
    for s in report["stages"]:
        lines += [f"## {s['name']} stage: {s['n_trials']} trials, {s['sampler']} sampler (study `{s['study']}`)", "",
                  f"{s['n_completed']} completed, {s['n_failed']} failed; sweep dir `{s['sweep_dir']}`.", "",
                  "| parameter | range |", "|---|---|"]
        lines += [f"| {n} | {r['text']} |" for n, r in s["ranges"].items()]
        lines += ["", f"Best {len(s['top'])} trials (val/acc): " + "; ".join(
            f"{t['value']:.4f} " + " ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items()) for t in s["top"]), ""]
    if "best" in report:
        b = report["best"]
        lines += ["## Chosen", "", f"Trial {b['trial']} of the {b['stage']} stage, val/acc {b['val/acc']:.4f}: `"
                  + " ".join(f"{k}={_fmt(v)}" for k, v in b["params"].items()) + "`", ""]
    if "final" in report:
        f = report["final"]
        lines += ["## Final run", "", f"`{f['command']}` in `{f['run_dir']}`", ""]
        m = f.get("metrics", {})
        if m:
            lines += ["| " + " | ".join(k for k in ("train/acc", "val/acc", "test/acc") if k in m) + " |",
                      "|" + "---|" * sum(k in m for k in ("train/acc", "val/acc", "test/acc")),
                      "| " + " | ".join(f"{m[k]:.4f}" for k in ("train/acc", "val/acc", "test/acc") if k in m) + " |", ""]
    if "error" in report:
        lines += [f"**Error**: {report['error']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
