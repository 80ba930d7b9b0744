"""Finding and running experiments: ``discover`` the ``experiments/<id>_<slug>.py`` files,
``load_module`` one and check its contract, ``run_experiment`` it into a new folder
``out/<budget>/<ID>/<YYYYmmdd-HHMMSS>_<6-hex>/`` with its ``result.md`` and ``result.json`` (an
earlier run's folder is never touched: the report reads the latest complete one)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from nnbasics.suite.context import DEFAULT_SEEDS, REPO_DIR, Context, ExperimentError, Outcome
from nnbasics.suite.report import SMOKE_WORD, command_line, result_markdown, sort_key, verdict_word
from nnbasics.suite.stats import INCONCLUSIVE

CONTRACT = ("ID", "TITLE", "CLAIM", "REFERENCE", "verdict", "run")
PROTOCOL_ATTRS = ("PROTOCOL", "SCALE_DOWN")
"""What every experiment also states about its source's protocol (checked by tests/test_experiments.py):
``PROTOCOL`` (what budget=full runs: the protocol overlay ``experiment=<name>`` exactly, or the largest
setup its source describes), ``AT_PROTOCOL`` (the budgets whose runs are that protocol; default
``("full",)``), ``SCALE_DOWN`` (what the budgets below it change) and ``DIFFERS`` (a text, or
``differs(numbers, budget) -> str``: why ours may differ, shown under every verdict but HELD)."""


def experiments_dir() -> Path:
    """``$NNBASICS_EXPERIMENTS``, else the repository's ``experiments/`` beside ``src/``."""
    env = os.environ.get("NNBASICS_EXPERIMENTS")
    return Path(env).expanduser() if env else REPO_DIR / "experiments"


def load_module(path: Path) -> ModuleType:
    """Import one experiment file (under a private module name) and check its contract."""
    spec = importlib.util.spec_from_file_location(f"nnbasics_experiments.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ExperimentError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [a for a in CONTRACT if not hasattr(module, a)]
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
    return dict(sorted(found.items(), key=lambda kv: sort_key(kv[0])))


def at_protocol(module: ModuleType, budget: str) -> bool:
    """Whether ``budget``'s runs of the experiment are its source's protocol (``AT_PROTOCOL``)."""
    return budget in tuple(getattr(module, "AT_PROTOCOL", ("full",)))


def below_protocol(held: bool | None, reason: str, module: ModuleType, budget: str) -> tuple[bool | None, str]:
    """The suite's budget rule: a claim that did not hold at a budget below its protocol is
    INCONCLUSIVE at that budget (the protocol named), not DID NOT HOLD; at the protocol, or when it
    held, the verdict stands."""
    if held is not False or at_protocol(module, budget):
        return held, reason
    scale = str(getattr(module, "SCALE_DOWN", "") or "").strip()
    return None, (f"{INCONCLUSIVE}budget {budget} is below the protocol ({getattr(module, 'PROTOCOL', '?')}"
                  + (f"; {scale}" if scale else "") + f"), and at it the claim did not hold: {reason}")


def differs_text(module: ModuleType, numbers: dict, budget: str) -> str:
    """The experiment's "why ours may differ" paragraph (``differs(numbers, budget)`` or ``DIFFERS``)."""
    fn = getattr(module, "differs", None)
    if callable(fn):
        return str(fn(numbers, budget) or "")
    return str(getattr(module, "DIFFERS", "") or "")


def new_result_dir(out: Path, budget: str, exp_id: str) -> Path:
    """A new, empty folder ``out/<budget>/<ID>/<YYYYmmdd-HHMMSS>_<6-hex>/`` for one run of an
    experiment (created here; never an existing one)."""
    base = Path(out) / budget / exp_id
    while True:
        folder = base / f"{time.strftime('%Y%m%d-%H%M%S')}_{secrets.token_hex(3)}"
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue


def check_verdict(module: ModuleType, numbers: dict) -> tuple[bool | None, str]:
    """``module.verdict(numbers)``, checked: a (True | False | None, reason) pair."""
    result = module.verdict(numbers)
    if (not isinstance(result, tuple) or len(result) != 2 or result[0] not in (True, False, None)
            or not isinstance(result[1], str) or not result[1]):
        raise ExperimentError(f"{module.ID}: verdict(numbers) returned {result!r}, not (True | False | None, reason)")
    return bool(result[0]) if result[0] is not None else None, result[1]


def run_experiment(path: Path, budget: str = "default", seeds: Sequence[int] = DEFAULT_SEEDS,
                   out: Path = Path("outputs/experiments"), device: str = "auto", threads: int | None = None,
                   verbose: bool = True, population: bool = True) -> dict:
    """Run one experiment file into a new folder ``out/<budget>/<ID>/<YYYYmmdd-HHMMSS>_<6-hex>/``
    and write its ``result.md`` and ``result.json`` there (``result.json`` last: a folder without
    it is an unfinished run). Nothing of an earlier run is removed. ``population``: train an
    experiment's compatible runs together (``Context.train_many``); false: one by one.

    The verdict is the experiment's ``verdict(numbers)`` on the numbers its ``run`` returned;
    the runner checks that it is (re-computed from the numbers as written to ``result.json``).
    At ``budget=smoke`` there is no verdict: the record says "smoke: runs only".

    An experiment that raises is recorded as errored (with its traceback); the exception does not
    propagate. Returns the result record (``result_dir`` is its folder)."""
    path = Path(path)
    t0 = time.perf_counter()
    record: dict[str, Any] = {"id": path.stem.split("_")[0].upper(), "file": path.name, "budget": budget,
                              "seeds": list(seeds), "device": device, "status": "ok"}
    ctx = None
    out_dir = None
    try:
        module = load_module(path)
        record.update(id=str(module.ID).upper(), title=module.TITLE, claim=module.CLAIM, reference=module.REFERENCE,
                      protocol=str(getattr(module, "PROTOCOL", "")), at_protocol=at_protocol(module, budget),
                      scale_down=str(getattr(module, "SCALE_DOWN", "") or ""))
        out_dir = new_result_dir(out, budget, record["id"])
        # an experiment whose claim is about the time of its runs (``TIMED = True``) trains them one by
        # one on either path: a member of a population has no time of its own
        timed = bool(getattr(module, "TIMED", False))
        ctx = Context(record["id"], budget, list(seeds), out_dir, device, threads, verbose, population and not timed)
        ctx.log(f"{module.TITLE} (budget {budget}, seeds {list(seeds)}) -> {out_dir}"
                + (" (its claim is about time: its runs train one by one)" if timed and population else ""))
        outcome = module.run(ctx)
        if not isinstance(outcome, Outcome):
            raise ExperimentError(f"{path.name}: run() returned {type(outcome).__name__}, not an Outcome")
        numbers = _jsonable(outcome.numbers)
        held, reason = check_verdict(module, numbers)
        if held != outcome.verdict:
            raise ExperimentError(f"{path.name}: run() returned the verdict {outcome.verdict!r} "
                                  f"({outcome.verdict_text!r}), but verdict(numbers) on its numbers gives "
                                  f"{held!r} ({reason!r}): the verdict must be a function of the numbers")
        reason = outcome.verdict_text or reason
        measured = held
        held, reason = below_protocol(held, reason, module, budget)
        if budget == "smoke":
            held, reason = None, f"{SMOKE_WORD}: toy data checks that the experiment runs; it decides no claim."
        elif held is not True:
            record["differs"] = differs_text(module, numbers, budget)
        record["measured_verdict"] = measured  # verdict(numbers) before the budget rule
        record.update(table_md=outcome.table_md, verdict=held, verdict_text=reason,
                      figures=[str(Path(f).resolve()) for f in outcome.figures], numbers=numbers,
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
    record["threads"] = threads
    record["population"] = population
    record["data"] = os.environ.get("NNBASICS_DATA")
    record["command"] = command_line([record["id"]], budget, seeds, device, threads, record["data"], population)
    record["machine"] = machine()
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    from nnbasics.engine.train import git_revision

    record["git"] = git_revision()
    if out_dir is None:
        out_dir = new_result_dir(out, budget, record["id"])
    record["result_dir"] = str(out_dir)
    (out_dir / "result.md").write_text(result_markdown(record, out_dir))
    tmp = out_dir / "result.json.part"  # written whole, then renamed: a result.json is always complete
    tmp.write_text(json.dumps(record, indent=2, default=_json_default))
    os.replace(tmp, out_dir / "result.json")
    if verbose:
        print(f"[{record['id']}] {verdict_word(record.get('verdict'), record['status'], budget)} "
              f"({record['wall_time_s']:.1f} s) -> {out_dir / 'result.md'}", flush=True)
    return record


def machine() -> str:
    """One line naming where a run happened: CPU count and model, torch version, the accelerator."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


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


def claims_of(known: dict[str, Path]) -> dict[str, str]:
    """``{ID: claim}`` of the experiment files ``known`` (an empty claim for one that does not
    import: a broken module still gets its row in the report)."""
    claims = {}
    for exp_id, path in known.items():
        try:
            claims[exp_id] = str(load_module(path).CLAIM)
        except Exception:  # noqa: BLE001
            claims[exp_id] = ""
    return claims
