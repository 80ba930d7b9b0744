"""``PopulationLauncher``: group a multirun's jobs into populations and train each in one process.

For every batch of jobs the sweeper hands over:

1. take each job's config (composed once, when the sweeper checks the batch: `_compose_once`)
   and the task config it would receive;
2. group the task configs with ``nnbasics.engine.population.group_configs``: configs equal in all but
   per-member hyperparameters (seed, init, optimizer hyperparameters, regularization,
   scheduler, dropout rates) form a population; monitored jobs (``monitor=basic
   monitor.figures=false``) too: the population monitors every member as its single run would;
   a monitor that is not batched (``monitor.level=full`` or figures) runs its jobs one by one
   (``monitored_jobs=sequential``, the default) or in populations without the monitor
   (``monitored_jobs=population``);
3. train each population with ``nnbasics.engine.population.Population`` (one process, stacked
   weights); then, job by job, Hydra's own ``run_job`` makes the job's run directory
   (``.hydra/`` with config.yaml, hydra.yaml, overrides.yaml, the job log), fires the job
   callbacks, and writes the member's files (config.yaml, metrics.json, history.json, tb/,
   checkpoint.pt, ...) there with ``nnbasics.engine.population.write_member``; the job returns what
   ``nnbasics-train`` returns (val/acc, NaN when diverged);
4. run every other job (unsupported, alone in its group, or a population that was refused)
   with the task function through ``run_job``, exactly as the basic launcher does.

The JobReturns come back in the order of the jobs.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)


class PopulationLauncher(Launcher):
    def __init__(self, min_size: int = 2, max_size: Optional[int] = None, monitored_jobs: str = "sequential",
                 **kwargs: Any) -> None:
        if monitored_jobs not in ("sequential", "population"):
            raise ValueError(f"hydra.launcher.monitored_jobs={monitored_jobs!r}: choose sequential or population")
        self.min_size, self.max_size, self.monitored_jobs = max(1, int(min_size)), max_size, monitored_jobs
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.task_function, self.hydra_context = config, task_function, hydra_context
        _compose_once(hydra_context.config_loader)

    # --- helpers --------------------------------------------------------------------------------

    def _sweep_config(self, overrides: Sequence[str], num: int) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = num
            sweep_config.hydra.job.num = num
        return sweep_config

    @staticmethod
    def _task_config(sweep_config: DictConfig) -> DictConfig:
        """The config the job's task function would receive (as run_job makes it), resolved."""
        sweep_config = copy.deepcopy(sweep_config)
        before = HydraConfig.instance().cfg
        try:
            out = str(OmegaConf.select(sweep_config, "hydra.sweep.dir"))
            out = os.path.join(out, str(OmegaConf.select(sweep_config, "hydra.sweep.subdir")))
            with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
                sweep_config.hydra.runtime.output_dir = os.path.abspath(out)
            HydraConfig.instance().set_config(sweep_config)
            task = copy.deepcopy(sweep_config)
            with read_write(task), open_dict(task):
                del task["hydra"]
            OmegaConf.resolve(task)
            return task
        finally:
            HydraConfig.instance().cfg = before

    def _run(self, sweep_config: DictConfig, task_function: TaskFunction) -> JobReturn:
        assert self.hydra_context is not None and self.config is not None
        ret = run_job(hydra_context=self.hydra_context, task_function=task_function, config=sweep_config,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    # --- the launch -----------------------------------------------------------------------------

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from nnbasics.engine.monitor import population_refusal
        from nnbasics.engine.population import Population, group_configs

        setup_globals()
        assert self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Population launcher: {len(job_overrides)} jobs")
        sweep_configs = []
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + idx} : {' '.join(filter_overrides(overrides))}")
            sweep_configs.append(self._sweep_config(overrides, initial_job_idx + idx))
        task_cfgs = [self._task_config(sc) for sc in sweep_configs]
        # a monitor the population batches (basic without figures) goes with its job; one it does not
        # batch (full, figures) keeps its jobs apart, or is dropped with monitored_jobs=population
        unbatched = [i for i, t in enumerate(task_cfgs) if population_refusal(t) is not None]
        if self.monitored_jobs == "population":
            for i in unbatched:
                task_cfgs[i].monitor.level = "off"
        elif len(unbatched) >= self.min_size:
            log.info(f"{len(unbatched)} jobs run one by one: {population_refusal(task_cfgs[unbatched[0]])}; to train "
                     f"them as populations, add monitor.figures=false (with monitor=basic), monitor=off, or "
                     f"hydra.launcher.monitored_jobs=population (the monitor is dropped)")
        pops, alone = group_configs(task_cfgs, self.min_size, self.max_size)

        returns: dict[int, JobReturn] = {}
        for members in pops:
            nums = [initial_job_idx + i for i in members]
            log.info(f"population of {len(members)} jobs: #{', #'.join(map(str, nums))}")
            try:
                results = Population([task_cfgs[i] for i in members]).run()
            except Exception as e:  # noqa: BLE001 - refused or failed: the jobs run one by one
                log.warning(f"population #{nums[0]}.. not trained together ({type(e).__name__}: {e}); "
                            f"running its {len(members)} jobs one by one")
                alone.extend(members)
                continue
            for i, result in zip(members, results):
                returns[i] = self._run(sweep_configs[i], _member_task(result))
        for i in sorted(alone):
            returns[i] = self._run(sweep_configs[i], self.task_function)
        return [returns[i] for i in range(len(job_overrides))]


def _compose_once(config_loader) -> None:
    """Hydra's sweepers compose every job's config to check the batch before launching it, and a
    launcher composes it again ("This repeat work the launcher will do", hydra/plugins/sweeper.py:
    the launcher may run elsewhere). This launcher runs in the sweeper's process, so it takes the
    config the check composed: ``load_sweep_config`` keeps each result, keyed by master config and
    overrides, and hands it out once more. About 0.15 s a job here (3 s of a 16-job sweep)."""
    if getattr(config_loader, "_nnbasics_compose_once", False):
        return
    compose = config_loader.load_sweep_config
    kept: dict[tuple[int, tuple[str, ...]], DictConfig] = {}

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list) -> DictConfig:
        key = (id(master_config), tuple(sweep_overrides))
        if key in kept:
            return kept.pop(key)
        cfg = compose(master_config, sweep_overrides)
        kept[key] = copy.deepcopy(cfg)
        return cfg

    config_loader.load_sweep_config = load_sweep_config
    config_loader._nnbasics_compose_once = True


def _member_task(result) -> Callable[[DictConfig], Any]:
    """A task function that writes a trained member's run directory (inside run_job, so the job
    has its .hydra/ files, log and callbacks) and returns what nnbasics-train returns."""

    def task(cfg: DictConfig) -> Any:
        from nnbasics.engine.population import write_member

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        m = result.metrics
        job_log = logging.getLogger("nnbasics")
        job_log.info(f"trained as member {m['population_member']} of a population of {m['population_size']} "
                     f"(hydra/launcher=population)")
        for row in result.history:
            job_log.info(f"epoch {row['epoch']}  " + "  ".join(
                f"{k} {row[k]:.4f}" for k in ("train/loss", "train/acc", "val/loss", "val/acc") if k in row))
        metrics = write_member(result, run_dir)
        if metrics["status"] != "completed":
            print(f"error: diverged at step {metrics.get('diverged_at_step')}")
            print(f"run dir: {run_dir}")
            return math.nan
        shown = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("train/acc", "val/acc", "test/acc") if k in metrics)
        print(f"final: {shown}  (population of {metrics['population_size']}, {metrics['wall_time_s']:.1f} s)")
        print(f"run dir: {run_dir}")
        return metrics.get("val/acc")

    return task
