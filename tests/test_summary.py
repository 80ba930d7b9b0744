"""Many runs gathered into one answer: `nnbasics-summary` and the summary a multirun leaves.

The multirun tests run the real command line in a subprocess on toy data; the others build
sweep directories by hand, as if their jobs had run elsewhere.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from nnbasics.cli.summary import main as summary_main
from nnbasics.cli.summary import summarize

BIN = Path(sys.executable).parent
FAST = ["data=spiral", "epochs=1", "progress=false", "monitor=off", "model.width=16", "model.depth=1",
        "checkpoint=false"]


def multirun(args: list[str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / "nnbasics-train"), "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_multirun_summary_is_mean_and_std_of_the_runs_metrics(tmp_path):
    """2 learning rates x 3 seeds: the summary written at the end of the multirun has one row per
    learning rate whose mean/std are those of its three runs' metrics.json, and picks the best by
    mean val/acc."""
    sweep = tmp_path / "sweep"
    out = multirun(FAST + ["optimizer.lr=0.003,0.03", "seed=0,1,2", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = {}
    for m in sweep.glob("*/metrics.json"):
        cfg = (m.parent / ".hydra" / "overrides.yaml").read_text()
        lr = "0.003" if "optimizer.lr=0.003" in cfg else "0.03"
        runs.setdefault(lr, []).append(json.loads(m.read_text()))
    assert {k: len(v) for k, v in runs.items()} == {"0.003": 3, "0.03": 3}

    rows = {r["optimizer.lr"]: r for r in read_csv(sweep / "summary.csv")}
    assert set(rows) == {"0.003", "0.03"}
    for lr, metrics in runs.items():
        row = rows[lr]
        assert row["n"] == "3" and row["n_completed"] == "3" and sorted(row["seeds"].split()) == ["0", "1", "2"]
        for key in ("val/acc", "val/loss", "train/acc", "test/acc"):
            values = [m[key] for m in metrics]
            assert float(row[f"{key}_mean"]) == pytest.approx(statistics.fmean(values), rel=1e-5, abs=1e-9)
            assert float(row[f"{key}_std"]) == pytest.approx(statistics.stdev(values), rel=1e-5, abs=1e-9)
        dirs = row["run_dirs"].split()
        assert len(dirs) == 3 and all((sweep / d / "metrics.json").exists() for d in dirs)
    best = max(runs, key=lambda lr: statistics.fmean(m["val/acc"] for m in runs[lr]))
    assert rows[best]["best"] == "1" and rows[{"0.003": "0.03", "0.03": "0.003"}[best]]["best"] == "0"
    md = (sweep / "summary.md").read_text()
    assert f"**Best by val/acc (max)**: `optimizer.lr={best}`" in md
    assert "6 runs in 2 configurations: 6 completed" in md

    # nnbasics-summary rebuilds the same files from the directory alone
    csv_before = (sweep / "summary.csv").read_text()
    (sweep / "summary.csv").unlink()
    (sweep / "summary.md").unlink()
    rebuilt = subprocess.run([str(BIN / "nnbasics-summary"), str(sweep), "--quiet"], capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (sweep / "summary.csv").read_text() == csv_before and (sweep / "summary.md").exists()


def test_diverged_and_failed_jobs_do_not_sink_the_sweep(tmp_path):
    """One job diverges (SGD at lr=1e30), two fail their config check (depth -1): the other jobs
    go on, the healthy job completes, the summary records each outcome, and the multirun exits 1
    (a job failed)."""
    sweep = tmp_path / "sweep"
    base = [o for o in FAST if not o.startswith("model.depth")]
    out = multirun(base + ["optimizer=sgd", "optimizer.lr=0.1,1e30", "model.depth=1,-1", f"hydra.sweep.dir={sweep}"],
                   cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # any failed job makes the multirun exit non-zero, after its summary
    status = {}
    for m in sweep.glob("*/metrics.json"):
        o = (m.parent / ".hydra" / "overrides.yaml").read_text()
        status[("lr=1e+30" in o, "depth=-1" in o)] = json.loads(m.read_text())["status"]
    assert status == {(False, False): "completed", (True, False): "diverged",
                      (False, True): "failed", (True, True): "failed"}
    rows = read_csv(sweep / "summary.csv")
    by_outcome = sorted((r["n_completed"], r["n_diverged"], r["n_failed"]) for r in rows)
    assert by_outcome == [("0", "0", "1"), ("0", "0", "1"), ("0", "1", "0"), ("1", "0", "0")]
    best = [r for r in rows if r["best"] == "1"]
    assert len(best) == 1 and best[0]["n_completed"] == "1" and best[0]["model.depth"] == "1"
    md = (sweep / "summary.md").read_text()
    assert "1 completed, 1 diverged, 2 failed" in md
    assert "**diverged**: diverged at step" in md and md.count("**failed**: config error: model.depth=-1") == 2


# ----------------------------------------------------------------------------------------------
# Sweep directories written by hand (jobs that ran elsewhere)
# ----------------------------------------------------------------------------------------------


def make_job(root: Path, num: int, overrides: list[str], metrics: dict | None) -> Path:
    d = root / str(num)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def done(val_acc: float, seed: int, **extra) -> dict:
    return {"status": "completed", "val/acc": val_acc, "val/loss": 1 - val_acc, "train/acc": val_acc + 0.01,
            "test/acc": val_acc - 0.02, "seed": seed, "wall_time_s": 1.0, **extra}


def test_summary_of_a_sweep_run_elsewhere(tmp_path, capsys):
    root = tmp_path / "sweep"
    # width 8: three good seeds; width 16: a higher mean, but one seed diverged; width 32: no result yet
    for i, (acc, seed) in enumerate([(0.80, 0), (0.84, 1), (0.82, 2)]):
        make_job(root, i, ["data=moons", f"seed={seed}", "model.width=8"], done(acc, seed))
    make_job(root, 3, ["data=moons", "seed=0", "model.width=16"], done(0.95, 0))
    make_job(root, 4, ["data=moons", "seed=1", "model.width=16"], {"status": "diverged", "seed": 1, "diverged_at_step": 7})
    make_job(root, 5, ["data=moons", "seed=0", "model.width=32"], None)
    make_job(root, 10, ["data=moons", "seed=2", "model.width=16"], done(0.93, 2))

    assert summary_main([str(root)]) == 0
    printed = capsys.readouterr().out
    rows = {r["model.width"]: r for r in read_csv(root / "summary.csv")}
    assert set(rows) == {"8", "16", "32"}
    w8 = rows["8"]
    assert (w8["n"], w8["n_completed"], w8["best"]) == ("3", "3", "1")
    assert float(w8["val/acc_mean"]) == pytest.approx(0.82)
    assert float(w8["val/acc_std"]) == pytest.approx(statistics.stdev([0.80, 0.84, 0.82]))
    assert w8["run_dirs"] == "0 1 2"
    w16 = rows["16"]  # best mean, yet a diverged seed ranks it after the configuration that always completed
    assert (w16["n"], w16["n_completed"], w16["n_diverged"], w16["best"]) == ("3", "2", "1", "0")
    assert float(w16["val/acc_mean"]) == pytest.approx(0.94) and w16["run_dirs"] == "3 4 10"
    w32 = rows["32"]
    assert (w32["n_missing"], w32["val/acc_mean"], w32["val/acc_std"]) == ("1", "", "")
    md = (root / "summary.md").read_text()
    assert printed.startswith(md)
    assert "Shared by every run: `data=moons`" in md
    assert "`4` (model.width=16 seed=1): **diverged**: diverged at step 7" in md
    assert "`5` (model.width=32 seed=0): **missing**: no metrics.json" in md

    # by the validation loss instead (min): the lowest mean val/loss among always-completed configs
    s = summarize(root, metric="val/loss", mode="min")
    assert s.label(s.best) == "model.width=8"


def test_single_seed_has_no_std_and_nan_metrics_are_skipped(tmp_path):
    root = tmp_path / "sweep"
    make_job(root, 0, ["optimizer.lr=0.1"], done(0.5, 0))
    make_job(root, 1, ["optimizer.lr=0.2"], done(float("nan"), 0))
    s = summarize(root)
    a, b = s.configs
    assert a.mean("val/acc") == 0.5 and math.isnan(a.std("val/acc"))
    assert math.isnan(b.mean("val/acc")) and s.best is a


def test_summary_refuses_what_it_cannot_answer(tmp_path, capsys):
    assert summary_main([str(tmp_path / "nowhere")]) == 2
    (tmp_path / "empty").mkdir()
    assert summary_main([str(tmp_path / "empty")]) == 2
    assert "no runs under" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # choosing a configuration by a test metric is not offered
        summary_main([str(tmp_path), "--metric", "test/acc"])
