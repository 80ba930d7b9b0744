"""Hydra callbacks for sweeps (configured under ``hydra.callbacks`` in ``conf/train.yaml``).

`SweepCallback` checks a single run before Hydra creates its directory (``on_run_start``: the
pre-flight of ``nnbasics.cli.train``; a refusal is one line and exit status 2, nothing created),
and does five things around a multirun:

- **Nothing lost.** The sweep directory is checked before the launcher makes it; a job refused
  because its folder holds a finished run (a sweep run again into the same directory) or a live
  one writes nothing there; every job that failed or was refused is noted in ``failures.txt``
  and the multirun exits 1 after the summary is written.

- **Summary.** At the end of a multirun it writes ``summary.csv`` and ``summary.md`` into the
  sweep directory (`nnbasics.cli.summary`): mean and std over seeds per configuration, the best one
  by ``val/acc``, and every run that diverged or failed.
- **Failure does not sink a sweep.** A job that raises an error the training code did not
  handle is recorded as ``failed`` in its ``metrics.json`` (with the error), and handed back to
  Hydra's basic sweeper as a finished job returning NaN, so the other jobs still run and the
  summary is still written. For the Optuna sweeper, a job that returns NaN (diverged or failed)
  is handed back as a failed trial: Optuna records it as FAIL instead of crashing on the NaN.
- **Test-set firewall for searches.** Every trial of an Optuna sweep runs with ``search=true``
  and ``eval_test=false`` (added to the sweep's overrides), so no trial can read the test split,
  whatever the command line or config order says.
- **Threads per job.** Jobs that run side by side share the cores: unless ``threads`` is set, a
  joblib job gets ``usable cores // n_jobs`` torch threads and a submitit job ``cpus_per_task``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from nnbasics.engine.sweep import FAILURES, note_failure, read_failures  # noqa: F401 (failures.txt)

log = logging.getLogger("nnbasics")

FIREWALL = {"search": "true", "eval_test": "false"}


class TrialFailed(RuntimeError):
    """A trial that diverged or failed, handed to the Optuna sweeper as a failed job."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(config: DictConfig) -> int | None:
    """Torch threads for one job of a multirun: ``None`` leaves torch's default (or ``threads``)."""
    if config.get("threads"):
        return None  # train() sets it
    launcher = OmegaConf.select(config, "hydra.launcher") or {}
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        n_jobs, cores = int(launcher.get("n_jobs") or -1), usable_cores()
        at_once = cores if n_jobs < 0 else min(n_jobs, cores)  # joblib: -1 = one job per core
        return max(1, cores // at_once)
    if "submitit" in target.lower() and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


def is_optuna(config: DictConfig) -> bool:
    return "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_") or "").lower()


def _is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    return OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN


def _job_dir(config: DictConfig) -> Path | None:
    out = OmegaConf.select(config, "hydra.runtime.output_dir")
    return Path(out) if out else None


class SweepCallback(Callback):
    def __init__(self, metric: str = "val/acc", mode: str = "max", keep_going: bool = True,
                 set_threads: bool = True, firewall: bool = True) -> None:
        self.metric, self.mode = metric, mode
        self.keep_going, self.set_threads, self.firewall = keep_going, set_threads, firewall

    # --- in the process that runs the sweep ----------------------------------------------------

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A single run: refuse a bad config or run directory before Hydra creates or writes it."""
        from nnbasics.cli.train import preflight

        preflight(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from nnbasics.cli.train import check_sweep_dir

        check_sweep_dir(config)
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
        if sweep_dir:
            (Path(str(sweep_dir)) / FAILURES).unlink(missing_ok=True)  # failures of an earlier multirun there
        if not (self.firewall and is_optuna(config)):
            return
        task = list(config.hydra.overrides.task)
        kept = [o for o in task if o.split("=", 1)[0].lstrip("+~") not in FIREWALL]
        for line in sorted(set(task) - set(kept)):
            if line.split("=", 1)[1] != FIREWALL[line.split("=", 1)[0].lstrip("+~")]:
                log.warning(f"ignoring {line}: trials of a hyperparameter search never read the test split")
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.overrides.task = kept + [f"{k}={v}" for k, v in FIREWALL.items()]

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from nnbasics.cli.summary import write_summary

        sweep_dir = Path(str(config.hydra.sweep.dir))
        failures = read_failures(sweep_dir)
        try:
            s = write_summary(sweep_dir, self.metric, self.mode)
        except Exception as e:  # a summary must never turn a finished sweep into a failed one
            log.warning(f"no summary written for {sweep_dir}: {e}")
        else:
            n = sum(len(c.jobs) for c in s.configs)
            done = sum(c.count("completed") for c in s.configs)
            best = f"; best by {s.metric}: {s.label(s.best)}" if s.best is not None else ""
            log.info(f"summary of {n} runs ({done} completed){best}: {sweep_dir / 'summary.md'}")
        if failures:
            jobs = ", ".join(f"#{num}" for num, _ in failures)
            print(f"error: {len(failures)} job(s) of this multirun failed or were refused ({jobs}); "
                  f"each one's error is above and in {sweep_dir / FAILURES}", file=sys.stderr)
            sys.exit(1)

    # --- in the process that runs the job (a worker for joblib and submitit) -------------------

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        import warnings

        from nnbasics.cli.train import show_warning

        warnings.showwarning = show_warning  # a worker process (joblib, submitit) too: one line per warning
        if not (self.set_threads and _is_multirun(config)):
            return
        n = threads_per_job(config)
        if n is not None:
            import torch

            torch.set_num_threads(n)
            job_dir = _job_dir(config)
            if job_dir is None or not (job_dir / "metrics.json").exists():  # never a line into a finished run's log
                log.info(f"torch threads for this job: {n}")

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not (self.keep_going and _is_multirun(config)):
            return
        from hydra.core.utils import JobStatus

        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value
            sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
            if sweep_dir:
                note_failure(Path(str(sweep_dir)), OmegaConf.select(config, "hydra.job.num"),
                             f"{type(error).__name__}: {error}")
            _record_failure(_job_dir(config), error)
            log.error(f"job failed: {error!r}; the sweep goes on")
            if not is_optuna(config):  # Optuna records a raised error as a failed trial itself
                job_return.status, job_return.return_value = JobStatus.COMPLETED, math.nan
        elif is_optuna(config) and not _finite(job_return._return_value):
            job_return.status = JobStatus.FAILED
            job_return.return_value = TrialFailed(f"trial returned {job_return._return_value!r} "
                                                  f"(diverged or failed; see {_job_dir(config)}/metrics.json)")


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _record_failure(job_dir: Path | None, error: BaseException) -> None:
    """Write metrics.json {status: failed, error} unless the run already wrote its own, or the
    directory holds another run (finished, or live in another process)."""
    if job_dir is None:
        return
    path = job_dir / "metrics.json"
    from nnbasics.engine.rundir import lock_holder, write_json

    if path.exists() or lock_holder(job_dir) is not None:
        return

    job_dir.mkdir(parents=True, exist_ok=True)
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    write_json(path, {"status": "failed", "error": f"{type(error).__name__}: {error}", "traceback": tb})
