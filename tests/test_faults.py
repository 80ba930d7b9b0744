"""Fault injection: runs killed at random points (mid-checkpoint included) resume to the numbers of
an uninterrupted run; a full disk ends a run with one line naming the file; a sweep run twice into
one directory leaves every completed run whole. (Item numbers: the reliability issue, second round.)"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TOY

BIN = Path(sys.executable).parent
ARGS = ["data=spiral", "model.width=64", "model.depth=2", "epochs=12", "progress=false", "monitor=off",
        "batch_size=8", "model.dropout.p=0.1"]


def env_for(tmp_path: Path) -> dict:
    return {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}


def tree(path: Path) -> dict:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


def comparable(run: Path) -> tuple[dict, list]:
    m = json.loads((run / "metrics.json").read_text())
    m.pop("wall_time_s")
    h = json.loads((run / "history.json").read_text())
    return m, [{k: v for k, v in r.items() if k != "time_s"} for r in h["epochs"]]


def continue_args(run: Path) -> list[str]:
    """Resume from the checkpoint when there is one; else start the run (again) in its folder."""
    return [f"resume={run}"] if (run / "checkpoint.pt").exists() else [f"hydra.run.dir={run}"]


# A run that SIGKILLs itself inside its n-th checkpoint write: after the new file is written under
# its temporary name, before the rename that makes it the checkpoint.
DIE_MID_CHECKPOINT = """
import os, signal, sys
real_replace, seen = os.replace, [0]
def replace(src, dst):
    if str(dst).endswith("checkpoint.pt"):
        seen[0] += 1
        if seen[0] == int(os.environ["NNBASICS_DIE_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
os.replace = replace
sys.argv = ["nnbasics-train"] + sys.argv[1:]
from nnbasics.cli.train import train_main
train_main()
"""


@pytest.mark.slow  # five processes of a 12-epoch run: ~40 s on 2 busy cores
def test_runs_killed_at_random_points_resume_to_the_uninterrupted_numbers(tmp_path):
    env = env_for(tmp_path)
    full = tmp_path / "full"
    subprocess.run([str(BIN / "nnbasics-train")] + ARGS + [f"hydra.run.dir={full}"], cwd=tmp_path, env=env,
                   check=True, capture_output=True, timeout=300)

    run = tmp_path / "killed"
    died = subprocess.run([sys.executable, "-c", DIE_MID_CHECKPOINT] + ARGS + [f"hydra.run.dir={run}"], cwd=tmp_path,
                          env={**env, "NNBASICS_DIE_AT": "3"}, capture_output=True, timeout=300)
    assert died.returncode == -signal.SIGKILL
    assert (run / ".checkpoint.pt.partial").exists() and not (run / "metrics.json").exists()

    rng = random.Random(0)
    for attempt in range(8):
        proc = subprocess.Popen([str(BIN / "nnbasics-train")] + ARGS + continue_args(run), cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if attempt < 3:  # killed at a random moment: at start-up, mid-epoch, mid-write
            time.sleep(rng.uniform(0.5, 6.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
    assert proc.returncode == 0
    assert comparable(run) == comparable(full)
    assert not (run / ".lock").exists()


def test_full_disk_ends_the_run_with_one_line_naming_it(tmp_path):
    """A real full disk (a 64 KiB tmpfs; needs root): 'no space left on device while writing ...'."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a size-limited tmpfs needs root (tests/test_reliability.py patches the writes instead)")
    try:
        out = subprocess.run([str(BIN / "nnbasics-train")] + TOY + ["epochs=3", "model.width=256", "model.depth=3",
                             "monitor=basic", f"hydra.run.dir={disk}/run"], cwd=tmp_path, env=env_for(tmp_path),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2
        assert "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith(f"error: no space left on device while writing {disk}/run")
        assert not (disk / "run" / ".lock").exists()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_sweep_run_twice_into_one_directory_leaves_every_completed_run_whole(tmp_path):
    """Item 1: the second sweep refuses each finished job (exit 1), rewrites none of its files, and
    the summary still counts the completed runs."""
    sweep = tmp_path / "sweep"
    cmd = [str(BIN / "nnbasics-train"), "-m"] + TOY + ["epochs=1", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    runs = {d.name: tree(d) for d in sweep.iterdir() if d.is_dir()}
    assert sorted(runs) == ["0", "1"]
    second = subprocess.run(cmd, cwd=tmp_path, env=env_for(tmp_path), capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert second.stderr.count("already holds a completed run") == 2 and "Traceback" not in second.stderr
    assert {d.name: tree(d) for d in sweep.iterdir() if d.is_dir()} == runs
    for d in ("0", "1"):
        assert json.loads((sweep / d / "metrics.json").read_text())["status"] == "completed"
    summary = (sweep / "summary.csv").read_text().splitlines()
    header, row = summary[0].split(","), summary[1].split(",")
    assert row[header.index("n_completed")] == "2"
