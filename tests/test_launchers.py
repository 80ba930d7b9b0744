"""Sweeps that do not run one job at a time: the joblib and submitit launcher configs, and the
sweep callback that sets threads per job, records failures and guards searches."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR
from nnbasics.cli.callbacks import SweepCallback, TrialFailed, threads_per_job, usable_cores

BIN = Path(sys.executable).parent
FAST = ["data=spiral", "epochs=1", "progress=false", "monitor=off", "model.width=16", "model.depth=1",
        "checkpoint=false"]


def multirun(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([str(BIN / "nnbasics-train"), "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def compose_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, target, keys", [
    ("parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", {"n_jobs": -1}),
    ("local_submitit", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", {"cpus_per_task": 1}),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
     {"cpus_per_task": 4, "partition": None, "timeout_min": 60}),
])
def test_launcher_configs_extend_the_plugins_own(name, target, keys):
    pytest.importorskip(".".join(target.split(".")[:2]))
    launcher = compose_hydra([f"hydra/launcher={name}"]).hydra.launcher
    assert launcher._target_ == target
    for k, v in keys.items():
        assert launcher[k] == v, k
    if "submitit" in target:  # the plugin's schema is there: its keys and interpolations
        assert launcher.submitit_folder.endswith("/.submitit/%j")


def test_every_run_has_the_sweep_callback():
    cfg = compose_hydra([])
    assert cfg.hydra.callbacks.sweep._target_ == "nnbasics.cli.callbacks.SweepCallback"


# ----------------------------------------------------------------------------------------------
# Threads per job, failures, the search firewall (the callback on its own)
# ----------------------------------------------------------------------------------------------


def job_config(launcher: dict | None = None, sweeper: str = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
               threads=None, output_dir: Path | None = None, task: list[str] | None = None):
    from hydra.types import RunMode

    return OmegaConf.create({"threads": threads, "hydra": {
        "mode": RunMode.MULTIRUN, "launcher": launcher or {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
        "sweeper": {"_target_": sweeper}, "runtime": {"output_dir": str(output_dir) if output_dir else None},
        "overrides": {"task": task or []}}})


def test_threads_per_job_share_the_cores_between_parallel_jobs():
    cores = usable_cores()
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert threads_per_job(job_config({"_target_": joblib, "n_jobs": -1})) == 1  # one job per core
    assert threads_per_job(job_config({"_target_": joblib, "n_jobs": 1})) == cores
    assert threads_per_job(job_config({"_target_": joblib, "n_jobs": 2})) == max(1, cores // min(2, cores))
    assert threads_per_job(job_config({"_target_": joblib, "n_jobs": 64})) == 1
    slurm = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "cpus_per_task": 6}
    assert threads_per_job(job_config(slurm)) == 6
    assert threads_per_job(job_config(slurm, threads=2)) is None  # an explicit threads=N wins (train sets it)
    assert threads_per_job(job_config()) is None  # one job at a time: torch's default


def test_unhandled_error_in_a_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("CUDA out of memory"))
    SweepCallback().on_job_end(job_config(output_dir=tmp_path / "3"), job_return=ret)
    assert ret.status == JobStatus.COMPLETED and math.isnan(ret.return_value)  # the basic sweeper goes on
    m = json.loads((tmp_path / "3" / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"] == "RuntimeError: CUDA out of memory"

    # a run that wrote its own metrics.json (diverged) keeps it
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "metrics.json").write_text('{"status": "diverged"}')
    SweepCallback().on_job_end(job_config(output_dir=tmp_path / "4"),
                               job_return=JobReturn(status=JobStatus.FAILED, _return_value=ValueError("x")))
    assert json.loads((tmp_path / "4" / "metrics.json").read_text()) == {"status": "diverged"}


def test_nan_trial_is_handed_to_optuna_as_a_failed_trial(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    optuna = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    nan = JobReturn(status=JobStatus.COMPLETED, _return_value=float("nan"))
    SweepCallback().on_job_end(job_config(sweeper=optuna, output_dir=tmp_path), job_return=nan)
    assert nan.status == JobStatus.FAILED
    with pytest.raises(TrialFailed):  # what the sweeper reads: an error, so Optuna records FAIL
        nan.return_value
    ok = JobReturn(status=JobStatus.COMPLETED, _return_value=0.75)
    SweepCallback().on_job_end(job_config(sweeper=optuna, output_dir=tmp_path), job_return=ok)
    assert ok.status == JobStatus.COMPLETED and ok.return_value == 0.75


def test_every_optuna_trial_gets_the_test_set_firewall():
    optuna = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    cfg = job_config(sweeper=optuna, task=["data=spiral", "search=false", "eval_test=true"])
    SweepCallback().on_multirun_start(cfg)
    assert list(cfg.hydra.overrides.task) == ["data=spiral", "search=true", "eval_test=false"]
    grid = job_config(task=["data=spiral", "seed=0,1"])  # a plain sweep (not a search) is left alone
    SweepCallback().on_multirun_start(grid)
    assert list(grid.hydra.overrides.task) == ["data=spiral", "seed=0,1"]


# ----------------------------------------------------------------------------------------------
# Real sweeps through the launchers
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow  # two fresh worker processes that each import torch: ~20 s on 2 busy cores (-m slow)
def test_joblib_sweep_runs_jobs_in_worker_processes_with_threads_shared(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    out = multirun(FAST + ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=0,1",
                           f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Joblib.Parallel(n_jobs=2" in out.stdout + out.stderr
    metrics = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert [m["status"] for m in metrics] == ["completed", "completed"] and {m["seed"] for m in metrics} == {0, 1}
    expected = max(1, usable_cores() // min(2, usable_cores()))
    for job in ("0", "1"):
        assert f"torch threads for this job: {expected}" in (sweep / job / "train.log").read_text()
    assert (sweep / "summary.csv").exists() and "2 completed" in (sweep / "summary.md").read_text()


def test_submitit_local_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    out = multirun(FAST + ["hydra/launcher=local_submitit", "optimizer.lr=0.01,0.1", f"hydra.sweep.dir={sweep}"],
                   cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    metrics = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert [m["status"] for m in metrics] == ["completed", "completed"]
    # each job ran as its own submitit job: its logs and pickled result are in .submitit/<job id>/
    job_dirs = [d for d in (sweep / ".submitit").iterdir() if d.name.isdigit()]
    assert len(job_dirs) == 2 and all(list(d.glob("*_result.pkl")) for d in job_dirs)
    for job in ("0", "1"):
        assert "torch threads for this job: 1" in (sweep / job / "train.log").read_text()  # cpus_per_task: 1
    assert "2 runs in 2 configurations: 2 completed" in (sweep / "summary.md").read_text()
