"""The `@hydra.main` wrappers and nothing else: `nnbasics-train` (and `python -m nnbasics`).

Order of a run (see docs/validation.md, "Before anything is written"): Hydra composes the config;
``preflight`` (called by ``SweepCallback.on_run_start`` before Hydra creates the run directory)
refuses a bad value, an unusable, finished or busy run directory and an unresumable checkpoint
with one line and exit status 2; Hydra then creates the directory and calls ``train_main``, which
takes the directory's lock (``RunDir.open``), checks again under it, and only then writes
``.hydra/`` (``hydra.output_subdir`` is null, so Hydra itself never writes it), logs the resolved
config (``print_config``) and trains.

Before Hydra sees the command line, ``train_main`` (the console script) refuses ``--key value``
with a one-line hint (Hydra takes ``key=value`` overrides; its own usage text would not say so),
and turns Python warnings into one log line each (``warning: <text>``, no source path).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import threading
import uuid
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

# The configs ship inside the package (pkg://nnbasics.conf: found by an installed wheel too);
# NNBASICS_CONF points at another config folder instead.
CONF_PATH = os.environ.get("NNBASICS_CONF") or "pkg://nnbasics.conf"

# A short random id in every run and sweep directory name, so two jobs started in the same
# second never share a directory. use_cache: resolved once per config, so the name is stable.
if not OmegaConf.has_resolver("nnbasics_uid"):
    OmegaConf.register_new_resolver("nnbasics_uid", lambda: uuid.uuid4().hex[:6], use_cache=True)

log = logging.getLogger("nnbasics")

HYDRA_SUBDIR = ".hydra"  # where Hydra would write config.yaml, hydra.yaml, overrides.yaml


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _discard_if_empty(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's own files (a run that never
    started), so a failed launch leaves nothing that looks like a result."""
    leftovers = [p for p in run_dir.iterdir() if p.name not in (HYDRA_SUBDIR, "train.log")] if run_dir.is_dir() else []
    if not leftovers and run_dir.is_dir():
        shutil.rmtree(run_dir, ignore_errors=True)


def _thread_error(args) -> None:
    """A background writer (TensorBoard's) that fails on a full disk: one line, not a traceback;
    the run itself then stops with the error named."""
    if issubclass(args.exc_type, OSError):
        print(f"error: a background writer failed: {args.exc_value}", file=sys.stderr)
        return
    threading.__excepthook__(args)


def _fail(message: str, status: int = 2):
    """One line on stderr, the exit status; no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def _task_config(config: DictConfig) -> DictConfig:
    """The config a job's task function sees: Hydra's own node removed."""
    task = config.copy()
    with open_dict(task):
        task.pop("hydra", None)
    return task


def _resume(cfg: DictConfig):
    return OmegaConf.select(cfg, "resume", throw_on_resolution_failure=False)


def _target(cfg: DictConfig, run_dir: Path) -> Path:
    resume = _resume(cfg)
    return Path(resume) if isinstance(resume, str) and resume else run_dir


def _key(cfg: DictConfig, multirun: bool) -> str:
    return "resume" if _resume(cfg) else ("hydra.sweep.dir" if multirun else "hydra.run.dir")


def check_config(cfg: DictConfig, run_dir: Path | str, key: str) -> None:
    """Everything that refuses a run before any work, read-only: the config's values, the device,
    the run directory (or the resumed one), its checkpoint. Raises ConfigError."""
    from nnbasics.engine.rundir import RunDir
    from nnbasics.engine.setup import resolve_device
    from nnbasics.engine.validate import validate
    from nnbasics.errors import ConfigError

    if not str(run_dir).strip():
        raise ConfigError(key, str(run_dir), "must be a folder for the run (the default: outputs/runs/<date>/<time>_<id>)")
    run_dir = Path(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # train() shows them once, when it validates again
        validate(cfg)
    resolve_device(cfg.device)
    target = _target(cfg, run_dir)
    if cfg.get("resume") and not (target / "checkpoint.pt").is_file():
        raise ConfigError("resume", str(target), "no checkpoint.pt there; give the directory of a run that was "
                          "started with checkpoint=true")
    RunDir(target, key=key).check(cfg)


def preflight(config: DictConfig) -> None:
    """A single run's checks before Hydra creates or writes anything (``SweepCallback.on_run_start``):
    a refusal is one line on stderr and exit status 2, and no directory is created or changed."""
    from nnbasics.errors import NNBasicsError

    run_dir = OmegaConf.select(config, "hydra.run.dir", throw_on_resolution_failure=False)
    try:
        check_config(_task_config(config), str(run_dir or ""), "hydra.run.dir")
    except NNBasicsError as e:
        _fail(str(e))


def check_sweep_dir(config: DictConfig) -> None:
    """A multirun's sweep directory must be a folder that can be made (``on_multirun_start``)."""
    from nnbasics.engine.rundir import RunDir, RunRefused

    sweep = OmegaConf.select(config, "hydra.sweep.dir", throw_on_resolution_failure=False)
    if sweep is None:
        return  # a config without Hydra's sweep node (a test's): nothing to check
    sweep = str(sweep)
    if not sweep.strip():
        _fail(f"config error: hydra.sweep.dir={sweep!r} is not allowed; must be a folder for the sweep")
    path = Path(sweep)
    try:
        if path.exists() and not path.is_dir():
            raise RunRefused("hydra.sweep.dir", sweep, "that is a file, not a folder; choose a folder")
        if not path.exists():
            RunDir(path, key="hydra.sweep.dir")._creatable()
    except RunRefused as e:
        _fail(str(e))


def _write_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """What Hydra writes into ``.hydra/`` (config, Hydra's config, the overrides), written by us
    once the run directory is known to be ours."""
    from hydra.core.hydra_config import HydraConfig

    from nnbasics.engine.rundir import write_text

    out = run_dir / HYDRA_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    hydra_cfg = HydraConfig.instance().cfg
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    write_text(out / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
    write_text(out / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))


def log_config(cfg: DictConfig) -> None:
    """The resolved config as YAML, logged at the start of the run (console and train.log), like
    lightning-hydra-template's ``print_config_tree`` but plain; ``print_config=false`` turns it off."""
    if cfg.get("print_config", True):
        log.info("config:\n" + OmegaConf.to_yaml(cfg, resolve=True).rstrip())


def _record_failed_job(run_dir: Path, cfg: DictConfig, error: Exception, owned: bool) -> None:
    """A multirun job that failed: ``metrics.json`` (status failed, the error) and ``.hydra/`` in
    its own directory, unless that directory holds (or is running) another run, or the run
    already recorded itself."""
    from nnbasics.engine.rundir import lock_holder, write_json

    holds_run = (run_dir / "metrics.json").exists() or (run_dir / "checkpoint.pt").exists()
    if (holds_run and not owned) or lock_holder(run_dir) is not None:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / HYDRA_SUBDIR).exists():
            _write_hydra_files(run_dir, cfg)
        if not (run_dir / "metrics.json").exists():
            write_json(run_dir / "metrics.json", {"status": "failed", "error": str(error)})
    except OSError:
        pass  # the error itself was printed; a disk that cannot take the record cannot be helped


PROG = "nnbasics-train"
KEY = re.compile(r"[A-Za-z_][\w.@/-]*")  # a config key as an override names it (optimizer.lr, hydra/launcher)


def flag_hint(argv: list[str]) -> str | None:
    """The ``key=value`` spelling of every ``--key value`` (or ``--key=value``) in ``argv`` that is
    not one of Hydra's own options (``--help``, ``--cfg job``, ``-m``, ``--multirun``, ``--info``,
    ``-c``, ``--config-name``, ... and their unique prefixes, as argparse takes them); None when
    there is none."""
    from hydra._internal.utils import get_args_parser

    options = get_args_parser()._option_string_actions
    fixes, i = [], 0
    while i < len(argv):
        token, i = argv[i], i + 1
        if token == "--":
            break
        if not token.startswith("-") or token == "-":
            continue
        name, eq, value = token.partition("=")
        hits = [o for o in options if o.startswith("--") and o.startswith(name)] if name.startswith("--") else []
        action = options.get(name) or (options[hits[0]] if len(hits) == 1 else None)
        if action is not None:  # Hydra's own: skip its value
            if not eq and i < len(argv) and (action.nargs is None or (action.nargs == "?" and argv[i] in (action.choices or ()))):
                i += 1
            continue
        key = name.lstrip("-")
        if not KEY.fullmatch(key) or (not name.startswith("--") and len(key) < 3):
            continue  # not a key (-x is a short option argparse will refuse by itself)
        if not eq and i < len(argv) and not argv[i].startswith("-") and "=" not in argv[i]:
            value, i = argv[i], i + 1
        fixes.append(f"{key}={value if (eq or value) else '<value>'}")
    return " ".join(fixes) or None


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the commands: one log line, ``warning: <text>`` (a library's
    warning other than a UserWarning keeps its category), no source path or source line."""
    text = " ".join(str(message).split())
    kind = "" if category is UserWarning else f"{category.__name__}: "
    log.warning(f"warning: {kind}{text}")


def train_main() -> float | None:
    """``nnbasics-train`` (and ``python -m nnbasics``): the command line checked for ``--key value``
    (one line, exit status 2, before Hydra prints its usage or creates anything), warnings as one
    line each, then Hydra (``hydra_main``)."""
    argv = sys.argv[1:]
    if not {"-h", "--help", "--hydra-help"} & set(argv):  # help wins: Hydra prints it
        fixes = flag_hint(argv)
        if fixes:
            _fail(f"{PROG} takes key=value overrides, not --key value: write {fixes}")
    warnings.showwarning = show_warning
    return hydra_main()


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Train one configuration; return val/acc (the value a Hydra sweeper optimizes)."""
    from hydra.core.hydra_config import HydraConfig

    from nnbasics.engine.rundir import RunDir, RunRefused
    from nnbasics.engine.sweep import note_failure
    from nnbasics.engine.train import train
    from nnbasics.errors import DivergenceError, NNBasicsError

    threading.excepthook = _thread_error
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = _is_multirun()
    rd, owned = None, False
    try:
        key = _key(cfg, multirun)
        check_config(cfg, run_dir if multirun else str(hc.run.dir or ""), key)
        target = _target(cfg, run_dir)
        rd = RunDir(target, key=key)
        rd.open(cfg)  # the lock, for the whole run; the same checks again under it
        owned = True
        if not _resume(cfg):
            _write_hydra_files(run_dir, cfg)
        log_config(cfg)
        metrics = train(cfg, run_dir=target)
    except DivergenceError as e:
        print(f"error: {e}", file=sys.stderr)
        print(f"run dir: {_target(cfg, run_dir)}")
        if multirun:
            return float("nan")
        sys.exit(3)
    except (NNBasicsError, OSError) as e:
        if not isinstance(e, NNBasicsError):  # a write outside the loop (TensorBoard's, ...) that failed
            from nnbasics.engine.rundir import WriteError

            e = WriteError(Path(e.filename or _target(cfg, run_dir)), e)
        print(f"error: {e}", file=sys.stderr)
        if rd is not None:
            rd.release()
        if multirun:
            note_failure(Path(str(hc.sweep.dir)), hc.job.get("num"), str(e))
            if not isinstance(e, RunRefused):  # a refused job's directory is never written into
                _record_failed_job(run_dir, cfg, e, owned and not _resume(cfg))
            return float("nan")
        if not isinstance(e, RunRefused) or _target(cfg, run_dir).resolve() != run_dir.resolve():
            _discard_if_empty(run_dir)  # Hydra's folder for this invocation, never a refused run's
        sys.exit(2)
    finally:
        if rd is not None:
            rd.release()
    if cfg.resume and Path(cfg.resume).resolve() != run_dir.resolve():
        _discard_if_empty(run_dir)
        run_dir = Path(cfg.resume)
    shown = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("train/acc", "val/acc", "test/acc") if k in metrics)
    print(f"final: {shown}  ({metrics['wall_time_s']:.1f} s)")
    print(f"tensorboard: nnbasics-board --logdir {run_dir}")
    print(f"run dir: {run_dir}")
    return metrics.get("val/acc")


if __name__ == "__main__":
    train_main()
