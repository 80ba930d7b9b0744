"""The experiment suite's machinery and the ``nnbasics-experiment`` command.

An experiment is one module ``experiments/<id>_<slug>.py`` that defines::

    ID = "I3"                       # the row of ../shared/EXPERIMENTS.md it reproduces
    TITLE = "..."                   # one line
    CLAIM = "..."                   # the classic claim, in words
    REFERENCE = "..."               # the published figures it is compared with (markdown)
    def run(ctx: Context) -> Outcome: ...

``run`` trains through ``ctx.train`` (the real ``nnbasics.train.train`` on configs composed
from ``conf/train.yaml``), draws its figures through ``ctx.save_figure`` and returns an
``Outcome``: a markdown table (ours beside the reference), a verdict decided by thresholds
written in the script, the figures and the numbers. The runner adds the rest: ``result.md`` and
``result.json`` in the experiment's folder (claim, reference, table, verdict, cost, the command
that reproduces it) and the suite's report ``REPORT.md`` (a scoreboard of every claim, then one
section per experiment, with its figures copied beside it).

Budgets (``ctx.budget``, choose values with ``ctx.pick(smoke=..., default=..., full=...)``):

- ``smoke``: toy data generated in code, seconds per experiment; the tests run every
  experiment at this budget (never real data, never the network).
- ``default``: real MNIST / Fashion-MNIST / CIFAR-10, sized so the whole suite runs on a
  2-core CPU in a few hours.
- ``full``: the published scale, for a GPU.

Command line (``key=value`` arguments, like the training command)::

    nnbasics-experiment I3                     # one experiment, default budget, 3 seeds
    nnbasics-experiment O1 O3 budget=smoke seeds=2
    nnbasics-experiment all budget=default     # the whole suite, then the report
    nnbasics-experiment list                   # the experiments found, with their claims
    nnbasics-experiment report budget=default  # rebuild REPORT.md from the results on disk
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Sequence

BUDGETS = ("smoke", "default", "full")
DEFAULT_SEEDS = (0, 1, 2)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = PACKAGE_DIR.parents[1]
CONF_DIR = Path(os.environ.get("NNBASICS_CONF", REPO_DIR / "conf"))
# Run overrides every experiment run gets unless it sets them itself: quiet, no checkpoints, no
# monitor (experiments measure what they need themselves).
QUIET = {"progress": "false", "checkpoint": "false", "monitor": "off"}
# The order of the groups in ../shared/EXPERIMENTS.md (for listings and the report).
GROUP_ORDER = "OAIRLPHMUV"

log = logging.getLogger("nnbasics.suite.experiment")


# ----------------------------------------------------------------------------------------------
# Numbers and tables
# ----------------------------------------------------------------------------------------------


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of the finite values;
    (nan, nan) when none is finite. NaN and Inf values (diverged runs) are left out."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def fmt(mean: float, std: float | None = None, digits: int = 3, percent: bool = False) -> str:
    """``0.912 ± 0.004`` (or ``91.2 ± 0.4 %`` with percent); ``n/a`` when the mean is nan."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    scale, unit = (100.0, " %") if percent else (1.0, "")
    d = max(0, digits - 2) if percent else digits
    text = f"{mean * scale:.{d}f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std * scale:.{d}f}"
    return text + unit


def fmt_values(values: Iterable[float], digits: int = 3, percent: bool = False) -> str:
    """``fmt(*mean_std(values))``, with the count of non-finite values (diverged runs) noted."""
    values = list(values)
    bad = sum(1 for v in values if v is None or not math.isfinite(float(v)))
    text = fmt(*mean_std(values), digits=digits, percent=percent)
    return text + (f" ({bad}/{len(values)} diverged)" if bad else "")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; cells are str()-ed, floats with 4 significant digits."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def new_figure(width: float = 6.0, height: float = 4.0, dpi: int = 100):
    """A matplotlib Figure on the Agg canvas (object API: no pyplot state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def first_at(history: Sequence[dict], key: str, below: float | None = None, above: float | None = None,
             unit: str = "epoch") -> float:
    """The first ``unit`` (epoch or step) at which ``history[i][key]`` drops below ``below`` (or
    rises above ``above``); inf when it never does."""
    for row in history:
        v = row.get(key)
        if v is None or not math.isfinite(v):
            continue
        if (below is not None and v < below) or (above is not None and v > above):
            return float(row[unit])
    return float("inf")


def curve_at(curve: Sequence[Sequence[float]], step: int, window: int = 1) -> float:
    """The training loss of a per-step curve ([step, time_s, loss] rows) at ``step``: the mean
    over the ``window`` logged points at or before it (nan when there are none)."""
    pts = [r[2] for r in curve if r[0] <= step]
    if not pts:
        return float("nan")
    pts = pts[-window:]
    return sum(pts) / len(pts)


def smooth(values: Sequence[float], k: int) -> list[float]:
    """A trailing moving average over ``k`` points (for noisy mini-batch loss curves)."""
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


# ----------------------------------------------------------------------------------------------
# Outcome and Context
# ----------------------------------------------------------------------------------------------


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


class ExperimentError(RuntimeError):
    """An experiment could not be found or run."""


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
    runs: int = field(default=0, init=False)
    train_time_s: float = field(default=0.0, init=False)
    _writer: Any = field(default=None, init=False, repr=False)
    _figure_steps: dict = field(default_factory=dict, init=False, repr=False)
    _composed: dict = field(default_factory=dict, init=False, repr=False)

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

    def available(self, group: str, option: str) -> bool:
        """Whether ``conf/<group>/<option>.yaml`` exists (an option another part of the library
        may not provide yet): experiments skip an arm that is not there and say so."""
        return (CONF_DIR / group / f"{option}.yaml").exists()

    def log(self, msg: str) -> None:
        line = f"[{self.id}] {msg}"
        log.info(line)
        if self.verbose:
            print(line, flush=True)

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
        import nnbasics.cli.train  # noqa: F401  (registers the nnbasics_uid resolver of conf/train.yaml)
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        given = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
        full = [o for o in self._base_overrides() if o.split("=", 1)[0] not in given] + list(overrides)
        if GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=f"experiment_{self.id}"):
            return compose(config_name="train", overrides=full, return_hydra_config=False)

    def run_dir(self, name: str, seed: int) -> Path:
        return self.out_dir / "runs" / _slug(name) / f"seed{int(seed)}"

    def train(self, overrides: Sequence[str] = (), seed: int = 0, name: str | None = None) -> dict:
        """Train one configuration with one seed into ``out_dir/runs/<name>/seed<k>``.

        Returns the final metrics of ``nnbasics.train.train`` plus ``history`` (per-epoch rows),
        ``curve`` (per-step [step, time_s, train/loss]), ``run_dir`` and ``name``. A diverged run
        does not raise: its ``status`` is ``diverged`` and its losses are nan.
        """
        from nnbasics.errors import DivergenceError
        from nnbasics.engine.train import train

        from omegaconf import OmegaConf

        overrides = list(overrides)
        name = name or (_slug("_".join(overrides)) or "base")
        key = tuple(overrides)
        if key not in self._composed:  # composing costs ~0.5 s; seeds of one arm share it
            self._composed[key] = self.compose(overrides)
        cfg = self._composed[key].copy()
        OmegaConf.update(cfg, "seed", int(seed))
        run_dir = self.run_dir(name, seed)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        try:
            result = dict(train(cfg, run_dir=run_dir))
        except DivergenceError:
            result = json.loads((run_dir / "metrics.json").read_text())
            for k in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"):
                result.setdefault(k, float("nan"))
        elapsed = time.perf_counter() - t0
        self.runs += 1
        self.train_time_s += elapsed
        hist_file = run_dir / "history.json"
        hist = json.loads(hist_file.read_text()) if hist_file.exists() else {}
        result.setdefault("history", hist.get("epochs", []))
        result["curve"] = hist.get("curve", [])
        result["run_dir"] = str(run_dir)
        result["name"] = name
        shown = "  ".join(f"{k} {result[k]:.4f}" for k in ("train/loss", "val/acc", "test/acc")
                          if isinstance(result.get(k), float))
        self.log(f"{name} seed {seed}: {result.get('status', '?')}  {shown}  ({elapsed:.1f} s)")
        return result

    def train_seeds(self, overrides: Sequence[str] = (), name: str | None = None,
                    seeds: Sequence[int] | None = None) -> list[dict]:
        """``train`` once per seed of the context (or ``seeds``)."""
        return [self.train(overrides, seed=s, name=name) for s in (self.seeds if seeds is None else seeds)]

    def model_of(self, result: dict):
        """The trained model of a run made with ``checkpoint=true`` (in eval mode, on the CPU)
        and its data bundle: for experiments that look inside the weights after training."""
        import torch
        from omegaconf import OmegaConf

        from nnbasics.data import datasets as data_mod
        from nnbasics.nn.models import build_model

        run_dir = Path(result["run_dir"])
        if not (run_dir / "checkpoint.pt").exists():
            raise ExperimentError(f"{run_dir} has no checkpoint.pt: train it with checkpoint=true to look inside")
        cfg = OmegaConf.load(run_dir / "config.yaml")
        bundle = data_mod.load_data(cfg.data, device="cpu")
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
        import numpy as np

        name = _slug(name)
        path = self.out_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        step = self._figure_steps.get(name, 0)
        self._figure_steps[name] = step + 1
        self.writer.add_image(f"{self.id}/{name}", image, step, dataformats="HWC")
        self.writer.flush()
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_")
    if len(s) <= 80:
        return s
    import hashlib

    return s[:60] + "_" + hashlib.sha1(s.encode()).hexdigest()[:8]


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------


def experiments_dir() -> Path:
    """``$NNBASICS_EXPERIMENTS``, else the repository's ``experiments/`` beside ``src/``."""
    env = os.environ.get("NNBASICS_EXPERIMENTS")
    return Path(env).expanduser() if env else REPO_DIR / "experiments"


def _sort_key(exp_id: str) -> tuple:
    m = re.match(r"([A-Za-z]+)(\d+)", exp_id)
    if not m:
        return (len(GROUP_ORDER), exp_id, 0)
    group, num = m.group(1).upper(), int(m.group(2))
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group, num)


def load_module(path: Path) -> ModuleType:
    """Import one experiment file (under a private module name) and check its contract."""
    spec = importlib.util.spec_from_file_location(f"nnbasics_experiments.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ExperimentError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [a for a in ("ID", "TITLE", "CLAIM", "REFERENCE", "run") if not hasattr(module, a)]
    if missing:
        raise ExperimentError(f"{path} does not define {', '.join(missing)}")
    return module


def discover(folder: Path | None = None) -> dict[str, Path]:
    """``{ID: path}`` of every experiment file (``<id>_<slug>.py``) in the folder, in suite order.
    The ID is read from the file's ``ID = "..."`` line (no import needed)."""
    folder = Path(folder) if folder is not None else experiments_dir()
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        m = re.search(r'^ID\s*=\s*["\']([^"\']+)["\']', path.read_text(encoding="utf-8"), re.M)
        exp_id = m.group(1).upper() if m else path.stem.split("_")[0].upper()
        if exp_id in found:
            raise ExperimentError(f"two experiments with ID {exp_id}: {found[exp_id]} and {path}")
        found[exp_id] = path
    return dict(sorted(found.items(), key=lambda kv: _sort_key(kv[0])))


# ----------------------------------------------------------------------------------------------
# Running one experiment: result.md and result.json
# ----------------------------------------------------------------------------------------------


def command_line(ids: Sequence[str], budget: str, seeds: Sequence[int], device: str) -> str:
    seeds = list(seeds)
    seed_arg = f"seeds={len(seeds)}" if seeds == list(range(len(seeds))) else "seeds=" + ",".join(map(str, seeds))
    return f"nnbasics-experiment {' '.join(ids)} budget={budget} {seed_arg} device={device}"


def verdict_word(verdict: bool | None, status: str = "ok") -> str:
    if status != "ok":
        return "ERRORED"
    return {True: "HELD", False: "DID NOT HOLD", None: "INCONCLUSIVE"}[verdict]


def run_experiment(path: Path, budget: str = "default", seeds: Sequence[int] = DEFAULT_SEEDS,
                   out: Path = Path("outputs/experiments"), device: str = "auto", threads: int | None = None,
                   verbose: bool = True) -> dict:
    """Run one experiment file into ``out/<budget>/<ID>/`` (cleared first) and write its
    ``result.md`` and ``result.json``. An experiment that raises is recorded as errored (with
    its traceback); the exception does not propagate. Returns the result record."""
    path = Path(path)
    t0 = time.perf_counter()
    record: dict[str, Any] = {"id": path.stem.split("_")[0].upper(), "file": path.name, "budget": budget,
                              "seeds": list(seeds), "device": device, "status": "ok"}
    ctx = None
    try:
        module = load_module(path)
        record.update(id=str(module.ID).upper(), title=module.TITLE, claim=module.CLAIM, reference=module.REFERENCE)
        out_dir = Path(out) / budget / record["id"]
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        ctx = Context(record["id"], budget, list(seeds), out_dir, device, threads, verbose)
        ctx.log(f"{module.TITLE} (budget {budget}, seeds {list(seeds)})")
        outcome = module.run(ctx)
        if not isinstance(outcome, Outcome):
            raise ExperimentError(f"{path.name}: run() returned {type(outcome).__name__}, not an Outcome")
        record.update(table_md=outcome.table_md, verdict=outcome.verdict, verdict_text=outcome.verdict_text,
                      figures=[str(Path(f).resolve()) for f in outcome.figures], numbers=_jsonable(outcome.numbers),
                      summary=outcome.summary or _auto_summary(outcome.numbers), notes=outcome.notes)
    except Exception as e:  # noqa: BLE001 - one failing experiment must not sink the suite
        record.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(),
                      verdict=None, verdict_text=f"the experiment raised {type(e).__name__}: {e}")
        print(f"[{record['id']}] ERROR {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        if ctx is not None:
            ctx.close()
    record["wall_time_s"] = time.perf_counter() - t0
    record["runs"] = ctx.runs if ctx else 0
    record["train_time_s"] = ctx.train_time_s if ctx else 0.0
    record["command"] = command_line([record["id"]], budget, seeds, device)
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    from nnbasics.engine.train import git_revision

    record["git"] = git_revision()
    out_dir = Path(out) / budget / record["id"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").write_text(json.dumps(record, indent=2, default=_json_default))
    (out_dir / "result.md").write_text(result_markdown(record, out_dir))
    if verbose:
        print(f"[{record['id']}] {verdict_word(record.get('verdict'), record['status'])} "
              f"({record['wall_time_s']:.1f} s) -> {out_dir / 'result.md'}", flush=True)
    return record


def _json_default(o: Any):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _jsonable(obj: Any) -> Any:
    """Numbers as plain JSON (nan and inf as strings would break readers: kept as floats, which
    Python's json writes as NaN / Infinity)."""
    return json.loads(json.dumps(obj, default=_json_default))


def _auto_summary(numbers: dict, limit: int = 4) -> str:
    parts = []
    for k, v in numbers.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
        if len(parts) == limit:
            break
    return "; ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def result_markdown(record: dict, out_dir: Path, figure_prefix: str = "") -> str:
    """The markdown of one experiment's result (also one section of the report)."""
    lines = [f"# {record['id']}: {record.get('title', '')}", ""]
    if record.get("claim"):
        lines += [f"**Claim.** {record['claim']}", ""]
    if record.get("reference"):
        lines += [f"**Reference.** {record['reference']}", ""]
    word = verdict_word(record.get("verdict"), record.get("status", "ok"))
    lines += [f"**Verdict: {word}.** {record.get('verdict_text', '')}", ""]
    if record.get("table_md"):
        lines += ["## Ours beside the reference", "", record["table_md"], ""]
    if record.get("notes"):
        lines += [record["notes"], ""]
    figs = record.get("figures") or []
    if figs:
        lines += ["## Figures", ""]
        for f in figs:
            p = Path(f)
            if not p.is_absolute():
                rel = figure_prefix + str(p)
            elif p.parent == Path(out_dir).resolve():
                rel = figure_prefix + p.name
            else:
                rel = str(p)
            lines += [f"![{p.stem}]({rel})", ""]
    if record.get("status") == "error":
        lines += ["## Error", "", "```", record.get("traceback", record.get("error", "")).rstrip(), "```", ""]
    seeds = record.get("seeds", [])
    lines += ["## Cost and reproduction", "",
              f"- budget `{record['budget']}`, seeds {seeds}, device `{record.get('device')}`",
              f"- wall time {_duration(record['wall_time_s'])} ({record.get('runs', 0)} training runs, "
              f"{_duration(record.get('train_time_s', 0.0))} in training); finished {record.get('finished', '')}, "
              f"code {record.get('git', '')}",
              f"- reproduce: `{record['command']}`", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


def write_report(out: Path, budget: str, report_dir: Path, known: dict[str, Path] | None = None,
                 command: str | None = None) -> Path:
    """``report_dir/REPORT.md``: the scoreboard of every experiment's latest result under
    ``out/<budget>/`` (and the known experiments not yet run), then each result with its figures,
    which are copied into ``report_dir/figures/``."""
    known = known if known is not None else discover()
    base = Path(out) / budget
    records = {}
    for f in sorted(base.glob("*/result.json")) if base.is_dir() else []:
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        records[rec["id"]] = rec
    ids = sorted(set(records) | set(known), key=_sort_key)
    report_dir = Path(report_dir)
    fig_dir = report_dir / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    fig_dir.mkdir(parents=True)
    held = sum(1 for r in records.values() if r.get("status") == "ok" and r.get("verdict") is True)
    failed = sum(1 for r in records.values() if r.get("status") == "ok" and r.get("verdict") is False)
    errored = sum(1 for r in records.values() if r.get("status") != "ok")
    total_s = sum(r.get("wall_time_s", 0.0) for r in records.values())
    lines = [f"# nnbasics experiment report (budget `{budget}`)", "",
             f"{len(records)} of {len(ids)} experiments have results: {held} held, {failed} did not hold, "
             f"{len(records) - held - failed - errored} inconclusive, {errored} errored; "
             f"{_duration(total_s)} of wall time in all.", ""]
    if command:
        lines += [f"Made by: `{command}`", ""]
    lines += ["## Scoreboard", "", "| id | claim | held? | key numbers | cost |", "|---|---|---|---|---|"]
    for i in ids:
        r = records.get(i)
        if r is None:
            try:
                claim = str(load_module(known[i]).CLAIM).replace("|", "\\|") if i in known else ""
            except Exception:  # noqa: BLE001 - a broken module still gets its row
                claim = ""
            lines.append(f"| {i} | {claim} | not run | - | - |")
            continue
        claim = (r.get("claim") or r.get("title") or "").replace("|", "\\|").replace("\n", " ")
        key = (r.get("summary") or r.get("error", "") if r.get("status") != "ok" else r.get("summary", "")) or ""
        lines.append(f"| [{i}](#{i.lower()}) | {claim} | {verdict_word(r.get('verdict'), r.get('status', 'ok'))} "
                     f"| {key.replace('|', '/')} | {_duration(r.get('wall_time_s', 0.0))} |")
    lines.append("")
    for i in ids:
        r = records.get(i)
        if r is None:
            continue
        figs = []
        for f in r.get("figures") or []:
            src = Path(f)
            if src.exists():
                dst = fig_dir / f"{i}_{src.name}"
                shutil.copyfile(src, dst)
                figs.append(str(dst.relative_to(report_dir)))
        section = result_markdown({**r, "figures": figs}, report_dir)
        section = section.replace(f"# {i}:", f'<a id="{i.lower()}"></a>\n\n## {i}:', 1)
        section = re.sub(r"^## (Ours beside|Figures|Error|Cost)", r"### \1", section, flags=re.M)
        lines += ["---", "", section]
    path = report_dir / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------


USAGE = """usage: nnbasics-experiment ID [ID ...] | all | list | report  [key=value ...]

  budget=smoke|default|full   data and scale (default: default)
  seeds=N | seeds=a,b,c       N seeds 0..N-1, or the seeds listed (default: 3)
  device=auto|cpu|cuda        where training runs (default: auto)
  threads=N                   torch CPU threads (default: torch's; 1 at smoke)
  out=PATH                    results go to PATH/<budget>/<ID>/ (default: outputs/experiments)
  report=PATH                 the report goes to PATH/REPORT.md (default: outputs/report)
  data=PATH                   the data folder (sets NNBASICS_DATA)
"""


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    ids, opts = [], {"budget": "default", "seeds": list(DEFAULT_SEEDS), "device": "auto", "threads": None,
                     "out": "outputs/experiments", "report": "outputs/report", "data": None}
    for arg in argv:
        if "=" not in arg:
            ids.append(arg)
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("-")
        if key not in opts:
            raise ExperimentError(f"unknown option {key!r}; valid: {', '.join(opts)}")
        if key == "seeds":
            try:
                parts = [int(p) for p in value.split(",") if p.strip()]
            except ValueError:
                raise ExperimentError(f"seeds={value!r}: give a count (seeds=3) or a list (seeds=0,4,7)") from None
            if len(parts) == 1 and "," not in value:
                if parts[0] < 1:
                    raise ExperimentError(f"seeds={value}: need at least one seed")
                parts = list(range(parts[0]))
            opts["seeds"] = parts
        elif key == "threads":
            opts["threads"] = int(value)
        elif key == "budget":
            if value not in BUDGETS:
                raise ExperimentError(f"budget={value!r} is not allowed; choose one of {', '.join(BUDGETS)}")
            opts["budget"] = value
        else:
            opts[key] = value
    return ids, opts


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.split("Command line")[0].strip() + "\n\n" + USAGE)
        return 0
    try:
        ids, opts = parse_args(argv)
        known = discover()
        if opts["data"]:
            os.environ["NNBASICS_DATA"] = str(Path(opts["data"]).expanduser().resolve())
        if ids == ["list"]:
            for exp_id, path in known.items():
                module = load_module(path)
                print(f"{exp_id:4s} {path.name:34s} {module.CLAIM}")
            return 0
        out, report_dir = Path(opts["out"]), Path(opts["report"])
        cmd_for_report = "nnbasics-experiment " + " ".join(argv)
        if ids == ["report"]:
            print(f"report: {write_report(out, opts['budget'], report_dir, known, None)}")
            return 0
        if not ids:
            raise ExperimentError("name at least one experiment ID, or all")
        if [i.lower() for i in ids] == ["all"]:
            chosen = list(known)
        else:
            chosen = []
            for i in ids:
                if i.upper() not in known:
                    raise ExperimentError(f"no experiment {i!r} in {experiments_dir()}; known: {', '.join(known) or 'none'}")
                chosen.append(i.upper())
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    records = [run_experiment(known[i], opts["budget"], opts["seeds"], out, opts["device"], opts["threads"])
               for i in chosen]
    report = write_report(out, opts["budget"], report_dir, known, cmd_for_report)
    print()
    for r in records:
        print(f"{r['id']:4s} {verdict_word(r.get('verdict'), r['status']):13s} {_duration(r['wall_time_s']):>9s}  "
              f"{r.get('summary') or r.get('error', '')}")
    print(f"report: {report}")
    return 1 if any(r["status"] != "ok" for r in records) else 0


if __name__ == "__main__":
    # `python -m nnbasics.suite.experiment`: run the importable module's main, so experiments and the
    # runner share one set of classes (not this __main__ copy).
    from nnbasics.suite.experiment import main as _main

    sys.exit(_main())
