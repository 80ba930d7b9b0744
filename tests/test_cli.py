"""The command line as a user meets it: `nnbasics-train` runs, multiruns, and bad values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TOY

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(args: list[str], cwd: Path, module: bool = False, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nnbasics"] if module else [str(BIN / "nnbasics-train")]
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_single_run_prints_run_dir_last(tmp_path):
    out = run_cli(TOY + ["epochs=1"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("run dir: ")
    run_dir = Path(last.removeprefix("run dir: "))
    run_dir = run_dir if run_dir.is_absolute() else tmp_path / run_dir
    assert run_dir.parent.parent == tmp_path / "outputs" / "runs"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "test/acc" in metrics
    assert (run_dir / "tb").is_dir() and (run_dir / ".hydra" / "config.yaml").exists()


def test_multirun_leaves_distinct_run_dirs(tmp_path):
    out = run_cli(["-m"] + TOY + ["epochs=1", "optimizer.lr=0.01,0.1", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert len(runs) == 4
    from omegaconf import OmegaConf

    combos = set()
    for r in runs:
        c = OmegaConf.load(r / "config.yaml")
        combos.add((c.optimizer.lr, c.seed))
    assert combos == {(0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1)}


def test_two_runs_started_together_never_share_a_directory(tmp_path):
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([str(BIN / "nnbasics-train")] + TOY + ["epochs=1"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(dirs) == 2
    assert len(list((tmp_path / "outputs" / "runs").glob("*/*/metrics.json"))) == 2


def test_bad_value_fails_at_once_with_clear_message_and_no_results(tmp_path):
    out = run_cli(["model.depth=-1", "data=spiral", "progress=false"], cwd=tmp_path)
    assert out.returncode == 2
    assert "model.depth" in out.stderr and "-1" in out.stderr and ">= 0" in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.rglob("metrics.json"))
    assert not list(tmp_path.glob("outputs/runs/*/*"))  # the run directory Hydra made is removed


def test_unknown_group_option_lists_the_valid_ones(tmp_path):
    out = run_cli(["activation=swishy"] + TOY, cwd=tmp_path)
    assert out.returncode != 0
    assert "swishy" in out.stderr and "relu" in out.stderr  # Hydra lists the available options


def test_python_dash_m_is_the_same_command(tmp_path):
    out = run_cli(TOY + ["epochs=1"], cwd=tmp_path, module=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("run dir: ")


def test_data_command_reports_missing_data_clearly(tmp_path, monkeypatch):
    from nnbasics.cli import data as datacli
    from nnbasics.data import fetch as fetch_mod

    monkeypatch.setattr(fetch_mod, "torchvision_download", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    assert datacli.main(["fetch", "cifar10", "--root", str(tmp_path)]) == 1
