"""What an experiment works with: ``Context`` (its budget, seeds, folder and device, and the
ways to compose configs, train, tune a learning rate, reload a model and save figures),
``Outcome`` (what it returns) and ``ExperimentError``.

An experiment is one module ``experiments/<id>_<slug>.py`` that defines::

    ID = "I3"                       # the row of ../shared/EXPERIMENTS.md it reproduces
    TITLE = "..."                   # one line
    CLAIM = "..."                   # the classic claim, in words
    REFERENCE = "..."               # the published figures it is compared with (markdown)
    def verdict(numbers) -> (held, reason): ...   # a function of the numbers run returns
    def run(ctx: Context) -> Outcome: ...

``run`` trains through ``ctx.train`` (the real ``nnbasics.train.train`` on configs composed
from ``conf/train.yaml``; the parts an experiment supplies itself, a data bundle, a fitted
preprocessor or a loss, are passed to it as arguments, never patched into the library), draws
its figures through ``ctx.save_figure`` and returns an ``Outcome``: a markdown table (ours beside
the reference), the verdict ``verdict(numbers)`` (thresholds from the claim, written in the script;
differences decided by ``nnbasics.suite.stats.separated``), the figures and the numbers. ``nnbasics.suite.runner`` adds the rest (``result.md``, ``result.json``, the report).

Budgets (``ctx.budget``, choose values with ``ctx.pick(smoke=..., default=..., full=...)``):

- ``smoke``: toy data generated in code, seconds per experiment; the tests run every
  experiment at this budget (never real data, never the network).
- ``default``: real MNIST / Fashion-MNIST / CIFAR-10, sized so the whole suite runs on a
  2-core CPU in a few hours.
- ``full``: the published scale, for a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from nnbasics.suite.stats import mean_std

BUDGETS = ("smoke", "default", "full")
DEFAULT_SEEDS = (0, 1, 2)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = PACKAGE_DIR.parents[1]
from nnbasics.conf import CONF_DIR  # noqa: E402  (the configs inside the package)
# Run overrides every experiment run gets unless it sets them itself: quiet, no checkpoints, no
# monitor (experiments measure what they need themselves).
QUIET = {"progress": "false", "checkpoint": "false", "monitor": "off"}

log = logging.getLogger("nnbasics.suite")


class ExperimentError(RuntimeError):
    """An experiment could not be found or run."""


class Trial(NamedTuple):
    """One learning rate of ``Context.tune_lr``: its score (-inf when it cannot win) and its runs
    (one per tuning seed)."""

    score: float
    runs: list


@dataclass
class Outcome:
    """What an experiment returns.

    ``verdict``: True (the claim held here), False (it did not), None (inconclusive / not a
    yes-no claim). ``verdict_text`` names the deciding numbers and the thresholds. ``summary``
    (optional) is the one line of key numbers for the report's scoreboard; without it the first
    few scalar ``numbers`` are shown.
    """

    table_md: str
    verdict: bool | None
    verdict_text: str
    figures: list[Path] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    summary: str = ""
    notes: str = ""


@dataclass
class Context:
    """What an experiment's ``run`` gets: its budget, seeds, output folder and device, and the
    ways to compose configs, train, and save figures."""

    id: str
    budget: str = "default"
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    out_dir: Path = Path("outputs/experiments")
    device: str = "auto"
    threads: int | None = None
    verbose: bool = True
    population: bool = True  # train compatible runs of one call together (engine.population); false: one by one
    runs: int = field(default=0, init=False)
    train_time_s: float = field(default=0.0, init=False)
    _writer: Any = field(default=None, init=False, repr=False)
    _figure_steps: dict = field(default_factory=dict, init=False, repr=False)
    _composed: dict = field(default_factory=dict, init=False, repr=False)
    _bar: Any = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.budget not in BUDGETS:
            raise ExperimentError(f"budget={self.budget!r} is not allowed; choose one of {', '.join(BUDGETS)}")
        self.out_dir = Path(self.out_dir)
        self.seeds = [int(s) for s in self.seeds]
        if not self.seeds:
            raise ExperimentError("seeds must hold at least one seed")
        if self.threads is None and self.budget == "smoke":
            self.threads = 1  # toy models: one thread is fastest and leaves the other cores alone

    # --- budget -------------------------------------------------------------------------------
    def pick(self, smoke: Any = None, default: Any = None, full: Any = None) -> Any:
        """The value for this budget; ``full`` falls back to ``default`` when not given."""
        if self.budget == "smoke":
            return smoke
        if self.budget == "full" and full is not None:
            return full
        return default

    @property
    def smoke(self) -> bool:
        return self.budget == "smoke"

    def log(self, msg: str) -> None:
        line = f"[{self.id}] {msg}"
        log.info(line)
        if self.verbose:
            if self._bar is not None:
                self._bar.write(line)  # above the bar, which stays at the bottom
            else:
                print(line, flush=True)

    def _count_run(self) -> None:
        """The bar across the experiment's runs (on a terminal only: tqdm's disable=None)."""
        if self._bar is None and self.verbose:
            from tqdm.auto import tqdm

            self._bar = tqdm(desc=f"[{self.id}] runs", unit="run", leave=False, disable=None)
        if self._bar is not None:
            self._bar.update(1)

    # --- configs and runs ---------------------------------------------------------------------
    def _base_overrides(self) -> list[str]:
        base = [f"{k}={v}" for k, v in QUIET.items()] + [f"device={self.device}"]
        if self.threads:
            base.append(f"threads={int(self.threads)}")
        return base

    def compose(self, overrides: Sequence[str] = ()) -> Any:
        """The training config of ``conf/train.yaml`` with ``overrides``, as ``nnbasics-train
        <overrides>`` would see it (plus progress=false checkpoint=false monitor=off and the
        context's device unless the overrides set them)."""
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        given = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
        full = [o for o in self._base_overrides() if o.split("=", 1)[0] not in given] + list(overrides)
        if GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=f"experiment_{self.id}"):
            return compose(config_name="train", overrides=full, return_hydra_config=False)

    def classes(self, overrides: Sequence[str] = ()) -> int:
        """The number of classes of the data set the overrides select (for scale-aware thresholds:
        ``stats.chance_loss(ctx.classes(base))``)."""
        return classes_of(self.compose(overrides).data)

    def run_dir(self, name: str, seed: int) -> Path:
        """A new folder for a run of ``name`` with ``seed``: ``out_dir/runs/<name>/seed<k>``, or
        ``seed<k>-2``, ``seed<k>-3``, ... when an earlier run already holds it. An earlier run's
        folder is never removed or reused."""
        base = self.out_dir / "runs" / slug(name)
        path, n = base / f"seed{int(seed)}", 1
        while path.exists():
            n += 1
            path = base / f"seed{int(seed)}-{n}"
        return path

    def _config(self, overrides: Sequence[str], seed: int):
        from omegaconf import OmegaConf

        key = tuple(overrides)
        if key not in self._composed:  # composing costs ~0.5 s; seeds of one arm share it
            self._composed[key] = self.compose(list(overrides))
        cfg = self._composed[key].copy()
        OmegaConf.update(cfg, "seed", int(seed))
        return cfg

    def _finish(self, result: dict, run_dir: Path, name: str, seed: int, elapsed: float, how: str = "") -> dict:
        """What ``train`` returns, from a run's metrics and its history.json."""
        self.runs += 1
        self._count_run()
        hist_file = run_dir / "history.json"
        hist = json.loads(hist_file.read_text()) if hist_file.exists() else {}
        if result.get("status") != "completed":
            for k in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"):
                result.setdefault(k, float("nan"))
        result.setdefault("history", hist.get("epochs", []))
        result["curve"] = hist.get("curve", [])
        result["run_dir"] = str(run_dir)
        result["name"] = name
        shown = "  ".join(f"{k} {result[k]:.4f}" for k in ("train/loss", "val/acc", "test/acc")
                          if isinstance(result.get(k), float))
        self.log(f"{name} seed {seed}: {result.get('status', '?')}  {shown}  ({elapsed:.1f} s{how})")
        return result

    def train_many(self, jobs: Sequence[tuple[Sequence[str], int, str | None]]) -> list[dict]:
        """Train several runs, each ``(overrides, seed, name)``, and return their results in order
        (each what ``train`` returns). With ``population`` on (the default), runs that the engine
        can train together (``engine.population.group_configs``: the same model and data, differing
        in seed, initializer, optimizer hyperparameters, regularization, schedule, dropout rates and,
        unmonitored, the activation) are trained as one population in one process; the rest one by
        one, and so are runs too large to gain from it on a CPU (``CPU_MAX_MACS``). A member's
        numbers equal its single run's within float rounding (tests/test_population.py); each
        member gets its own run directory with the same files."""
        from nnbasics.engine.population import CPU_MAX_MACS, Population, group_configs, write_member
        from nnbasics.errors import Unsupported

        jobs = [(list(o), int(s), n or (slug("_".join(o)) or "base")) for o, s, n in jobs]
        cfgs = [self._config(o, s) for o, s, _ in jobs]
        results: list[dict | None] = [None] * len(jobs)
        # on a CPU, members too large to gain from stacking train alone (engine.population.worth_grouping)
        pops, alone = (group_configs(cfgs, cpu_max_macs=CPU_MAX_MACS) if self.population and len(jobs) > 1
                       else ([], list(range(len(jobs)))))
        for members in pops:
            dirs = [self.run_dir(jobs[i][2], jobs[i][1]) for i in members]
            t0 = time.perf_counter()
            try:
                trained = Population([cfgs[i] for i in members], log_every_epoch=False).run()
            except Unsupported as e:
                self.log(f"{len(members)} runs not trained together ({e}); one by one")
                alone.extend(members)
                continue
            elapsed = time.perf_counter() - t0
            self.train_time_s += elapsed
            for i, member, run_dir in zip(members, trained, dirs):
                metrics = write_member(member, run_dir)
                results[i] = self._finish(dict(metrics), run_dir, jobs[i][2], jobs[i][1], elapsed / len(members),
                                          f", population of {len(members)}")
        for i in sorted(alone):
            o, s, n = jobs[i]
            results[i] = self.train(o, seed=s, name=n)
        return results  # type: ignore[return-value]

    def train(self, overrides: Sequence[str] = (), seed: int = 0, name: str | None = None, *,
              data=None, preprocessor=None, loss: Callable | None = None) -> dict:
        """Train one configuration with one seed into ``out_dir/runs/<name>/seed<k>`` (a repeated
        name and seed gets its own ``seed<k>-2`` folder: nothing earlier is removed).

        ``data`` (a ``DataBundle``), ``preprocessor`` (a fitted one) and ``loss`` (a callable
        ``(output, target) -> scalar``) go to ``nnbasics.train.train``'s injection points: the
        run uses them instead of building them from the config.

        Returns the final metrics of ``nnbasics.train.train`` plus ``history`` (per-epoch rows),
        ``curve`` (per-step [step, time_s, train/loss]), ``run_dir`` and ``name``. A diverged run
        does not raise: its ``status`` is ``diverged`` and its losses are nan.
        """
        from nnbasics.engine.train import train
        from nnbasics.errors import DivergenceError

        overrides = list(overrides)
        name = name or (slug("_".join(overrides)) or "base")
        cfg = self._config(overrides, seed)
        run_dir = self.run_dir(name, seed)
        t0 = time.perf_counter()
        try:
            result = dict(train(cfg, run_dir=run_dir, data=data, preprocessor=preprocessor, loss=loss))
        except DivergenceError:
            result = json.loads((run_dir / "metrics.json").read_text())
        elapsed = time.perf_counter() - t0
        self.train_time_s += elapsed
        return self._finish(result, run_dir, name, seed, elapsed)

    def train_seeds(self, overrides: Sequence[str] = (), name: str | None = None,
                    seeds: Sequence[int] | None = None, **parts) -> list[dict]:
        """``train`` once per seed of the context (or ``seeds``); ``parts`` (``data=``,
        ``preprocessor=``, ``loss=``) go to every run. Without parts, the seeds train as one
        population where the engine can (``train_many``)."""
        seeds = self.seeds if seeds is None else seeds
        if parts:
            return [self.train(overrides, seed=s, name=name, **parts) for s in seeds]
        return self.train_many([(overrides, s, name) for s in seeds])

    def train_arms(self, arms: Mapping[str, Sequence[str]], seeds: Sequence[int] | None = None) -> dict[str, list[dict]]:
        """``train_seeds`` for every arm (``name -> overrides``) in one call, so that the runs of
        different arms that the engine can group (arms that differ only in per-member keys: the
        initializer, optimizer hyperparameters, regularization, schedule, dropout rates and,
        unmonitored, the activation) train as one population, not one population per arm. Returns ``{name:
        runs}``, each arm's runs in seed order, as ``train_seeds`` would."""
        seeds = list(self.seeds if seeds is None else seeds)
        names = list(arms)
        trained = self.train_many([(list(arms[n]), s, n) for n in names for s in seeds])
        return {n: trained[i * len(seeds):(i + 1) * len(seeds)] for i, n in enumerate(names)}

    def tune_lr(self, overrides: Sequence[str], lrs: Sequence[float], seed: int | None = None,
                key: str = "val/acc", *, seeds: Sequence[int] | None = None,
                score: Callable[[dict], float] | None = None, name: str = "tune", **parts) -> tuple[float, dict]:
        """Pick the learning rate of ``lrs`` whose run scores best on validation.

        Each ``lr`` trains ``overrides + ["optimizer.lr=<lr>"]`` with ``seed`` (default: the
        context's first seed), or with every seed of ``seeds``, as the run ``<name> lr <lr>``.
        A run scores ``score(run)`` (default ``run[key]``; higher is better) and an ``lr`` the
        mean of its runs' scores.

        The one NaN rule: a run that did not complete (diverged) or whose score is NaN or Inf
        scores -inf, and an ``lr`` with such a run scores -inf: it never wins against an ``lr``
        whose runs all finished with a finite score. Ties (and a grid where every ``lr`` scores
        -inf) go to the earliest ``lr`` of ``lrs``.

        Returns ``(best_lr, table)``; ``table[lr]`` is a ``Trial(score, runs)``, so the caller can
        show the sweep and reuse the tuning runs.
        """
        return self.tune_arms({name: overrides}, lrs, seed, key, seeds=seeds, score=score, **parts)[name]

    def tune_arms(self, arms: Mapping[str, Sequence[str]], lrs: Sequence[float], seed: int | None = None,
                  key: str = "val/acc", *, seeds: Sequence[int] | None = None,
                  score: Callable[[dict], float] | None = None, **parts) -> dict[str, tuple[float, dict]]:
        """``tune_lr`` for every arm (``name -> overrides``, runs named ``<name> lr <lr>``) in one
        call, so that the grids of arms the engine can group train as one population. Returns
        ``{name: (best_lr, table)}``, each as ``tune_lr`` returns it."""
        if not lrs:
            raise ExperimentError("tune_lr needs at least one learning rate")
        seeds = [self.seeds[0] if seed is None else seed] if seeds is None else list(seeds)
        score = score or (lambda run: run.get(key, math.nan))

        def run_score(run: dict) -> float:
            value = float(score(run)) if run.get("status") == "completed" else math.nan
            return value if math.isfinite(value) else -math.inf

        grid = [(list(over) + [f"optimizer.lr={lr}"], s, f"{name} lr {lr}")
                for name, over in arms.items() for lr in lrs for s in seeds]
        if parts:
            trained = [self.train(o, seed=s, name=n, **parts) for o, s, n in grid]
        else:
            trained = self.train_many(grid)  # the grids as populations where the engine can
        out: dict[str, tuple[float, dict]] = {}
        for a, name in enumerate(arms):
            table: dict[float, Trial] = {}
            for j, lr in enumerate(lrs):
                first = (a * len(lrs) + j) * len(seeds)
                scores = [run_score(r) for r in trained[first:first + len(seeds)]]
                table[lr] = Trial(-math.inf if -math.inf in scores else mean_std(scores)[0],
                                  trained[first:first + len(seeds)])
            out[name] = (max(lrs, key=lambda lr: table[lr].score), table)
        return out

    def model_of(self, result: dict, bundle=None):
        """The trained model of a run made with ``checkpoint=true`` (in eval mode, on the CPU)
        and its data bundle (``bundle`` when given: the runs of one data config share it): for
        experiments that look inside the weights after training."""
        import torch
        from omegaconf import OmegaConf

        from nnbasics.data.datasets import load_data
        from nnbasics.nn.models import build_model

        run_dir = Path(result["run_dir"])
        if not (run_dir / "checkpoint.pt").exists():
            raise ExperimentError(f"{run_dir} has no checkpoint.pt: train it with checkpoint=true to look inside")
        cfg = OmegaConf.load(run_dir / "config.yaml")
        bundle = bundle if bundle is not None else load_data(cfg.data, device="cpu")
        model = build_model(cfg, tuple(bundle.train.x.shape[1:]), bundle.out_features)
        state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        return model.eval(), bundle

    # --- figures ------------------------------------------------------------------------------
    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tb"))
        return self._writer

    def save_figure(self, fig, name: str) -> Path:
        """Save ``fig`` as ``out_dir/<name>.png`` and log it as the TensorBoard image
        ``<ID>/<name>`` in ``out_dir/tb``. Returns the PNG's path."""
        from nnbasics.viz.figures import save_figure

        name = slug(name)
        step = self._figure_steps.get(name, 0)
        self._figure_steps[name] = step + 1
        path = save_figure(fig, self.out_dir / f"{name}.png", self.writer, f"{self.id}/{name}", step)
        self.writer.flush()
        return path

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


TEN_CLASS_SETS = ("mnist", "fashion_mnist", "cifar10")


def classes_of(data_cfg: Any) -> int:
    """The number of classes of a ``data`` config: 10 for MNIST, Fashion-MNIST and CIFAR-10, the
    ``classes`` key of spiral and blobs, 2 for the other toy sets (xor, moons, circles)."""
    name = str(data_cfg.get("name"))
    if name in TEN_CLASS_SETS:
        return 10
    if name in ("spiral", "blobs"):
        return int(data_cfg.get("classes", 3))
    return 2


def slug(text: str) -> str:
    """``text`` as a file name: runs of other characters than ``A-Za-z0-9._=-`` become ``_``;
    long names are cut and end in a short hash."""
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_")
    if len(s) <= 80:
        return s
    return s[:60] + "_" + hashlib.sha1(s.encode()).hexdigest()[:8]
