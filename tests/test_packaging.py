"""The configs are package data: a wheel built from this tree, installed outside the repository,
trains from an unrelated directory with its own code and configs (no network: --no-index)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_configs_and_trains_from_an_unrelated_directory(tmp_path):
    proj = tmp_path / "proj"  # a copy: the build writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, proj / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                          str(proj)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("nnbasics-*.whl")
    site = tmp_path / "site"
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    assert (site / "nnbasics" / "conf" / "train.yaml").is_file()
    assert len(list((site / "nnbasics" / "conf" / "experiment").glob("*.yaml"))) >= 10  # the overlays too

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NNBASICS_CONF", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)  # ahead of the test environment's (editable) nnbasics
    code = ("import sys, nnbasics\n"
            "print('package:', nnbasics.__file__)\n"
            "from nnbasics.cli.train import train_main\n"
            f"sys.argv = ['nnbasics-train', 'data=spiral', 'steps=1', 'progress=false', 'monitor=off', "
            f"'hydra.run.dir={elsewhere / 'run'}']\n"
            "train_main()\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"package: {site}" in out.stdout  # the wheel's code ran, not the repository's
    assert out.stdout.strip().splitlines()[-1] == f"run dir: {elsewhere / 'run'}"
    assert (elsewhere / "run" / "metrics.json").exists()
