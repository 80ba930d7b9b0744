"""Search on validation only: the hparams_search configs, the test-set firewall, the narrowing
of ranges, and `nnbasics-search` end to end (coarse stage, fine stage, final run) with its
studies kept in SQLite."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR
from nnbasics.cli.search import Range, narrow

BIN = Path(sys.executable).parent
# optuna 2.x (the version the Hydra sweeper needs) warns about SQLAlchemy 2.0 on import
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated API features detected:DeprecationWarning")
FAST = ["data=spiral", "epochs=1", "progress=false", "monitor=off", "model.width=16", "model.depth=1",
        "checkpoint=false"]
needs_optuna = pytest.mark.skipif(
    __import__("importlib").util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
    reason="the sweep extra is not installed (pip install -e '.[sweep]')")


def env(cwd: Path) -> dict:
    return {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}


def compose_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


# ----------------------------------------------------------------------------------------------
# Configs and the firewall
# ----------------------------------------------------------------------------------------------


@needs_optuna
@pytest.mark.parametrize("name, sampler", [("tpe", "optuna.samplers.TPESampler"),
                                           ("random", "optuna.samplers.RandomSampler")])
def test_search_configs_are_wide_log_ranges_on_val_acc(name, sampler):
    cfg = compose_hydra([f"hparams_search={name}"])
    sw = cfg.hydra.sweeper
    assert sw._target_.endswith("OptunaSweeper") and sw.sampler._target_ == sampler
    assert sw.direction == "maximize"  # of what the task returns: val/acc
    assert dict(sw.params) == {"optimizer.lr": "tag(log, interval(1e-6, 1e-1))",
                               "regularization.weight_decay": "tag(log, interval(1e-8, 1e-2))"}
    assert cfg.regularization.name == "l2"  # so that weight_decay is an L2 penalty
    # the ranges parse into the log-uniform distributions Optuna samples from
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.distributions import LogUniformDistribution

    space, _ = create_params_from_overrides([f"{k}={v}" for k, v in sw.params.items()])
    assert space == {"optimizer.lr": LogUniformDistribution(1e-6, 1e-1),
                     "regularization.weight_decay": LogUniformDistribution(1e-8, 1e-2)}


def test_a_search_run_cannot_read_the_test_split(compose, toy_overrides, tmp_path, monkeypatch):
    from nnbasics.engine import train as train_mod

    setups = []
    real_prepare = train_mod.prepare

    def spy(*a, **kw):
        setups.append(real_prepare(*a, **kw))
        return setups[-1]

    monkeypatch.setattr(train_mod, "prepare", spy)
    normal = train_mod.train(compose(toy_overrides + ["epochs=1"]), run_dir=tmp_path / "normal")
    assert "test/acc" in normal  # control: outside a search the test split is evaluated once
    searched = train_mod.train(compose(toy_overrides + ["epochs=1", "search=true", "eval_test=true"]),
                               run_dir=tmp_path / "search")
    assert not any(k.startswith("test/") for k in searched)
    on_disk = json.loads((tmp_path / "search" / "metrics.json").read_text())
    assert on_disk["status"] == "completed" and not any(k.startswith("test/") for k in on_disk)
    with pytest.raises(RuntimeError, match="never read inside a hyperparameter search"):
        setups[-1].load_test()  # the run's own data: its test split is locked
    setups[0].load_test()  # and the normal run's is not


# ----------------------------------------------------------------------------------------------
# Narrowing
# ----------------------------------------------------------------------------------------------


def test_narrowed_range_is_the_span_of_the_best_trials_inside_the_coarse_one():
    lr = Range("optimizer.lr", "float", 1e-6, 1e-1, log=True)
    fine = narrow(lr, [3e-3, 1e-2, 5e-4])
    assert (fine.low, fine.high, fine.log) == (5e-4, 1e-2, True) and lr.contains(fine)
    point = narrow(lr, [1e-2, 1e-2], widen=3.0)  # one point: widened by x3 each way
    assert point.low == pytest.approx(1e-2 / 3) and point.high == pytest.approx(3e-2) and lr.contains(point)
    edge = narrow(lr, [0.1], widen=3.0)  # ... but never past the coarse range
    assert edge.high == 0.1 and edge.low == pytest.approx(0.1 / 3) and lr.contains(edge)
    lin = Range("model.dropout.p", "float", 0.0, 0.8)
    assert lin.contains(narrow(lin, [0.0])) and narrow(lin, [0.0]).low == 0.0
    width = Range("model.width", "int", 16, 512, step=1)
    assert (narrow(width, [64, 128, 64]).low, narrow(width, [64, 128]).high) == (64, 128)
    act = Range("activation", "categorical", choices=["relu", "tanh", "sigmoid"])
    assert narrow(act, ["tanh", "relu"]).choices == ["relu", "tanh"]
    assert not lr.contains(Range("optimizer.lr", "float", 1e-7, 1e-2, log=True))


@needs_optuna
@pytest.mark.parametrize("r", [Range("optimizer.lr", "float", 1.5e-4, 0.0123, log=True),
                               Range("model.dropout.p", "float", 0.1, 0.5),
                               Range("model.width", "int", 16, 256, step=16),
                               Range("model.depth", "int", 1, 4, step=1),
                               Range("activation", "categorical", choices=["relu", "tanh"])])
def test_range_override_is_what_the_sweeper_samples(r):
    """A narrowed range written as a Hydra override comes back as the same Optuna distribution."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    space, fixed = create_params_from_overrides([r.to_override()])
    assert not fixed and Range.from_distribution(r.name, space[r.name]) == r


# ----------------------------------------------------------------------------------------------
# Hydra's Optuna sweeper with the sweep callback, and nnbasics-search
# ----------------------------------------------------------------------------------------------


@needs_optuna
def test_a_diverged_trial_is_a_failed_trial_and_the_search_goes_on(tmp_path):
    """Without the sweep callback, the Optuna sweeper crashes on a trial that returns NaN."""
    sweep, db = tmp_path / "sweep", tmp_path / "study.db"
    # the random sampler with its seed 0 draws lr 1e30 and then 0.1 (checked below)
    out = subprocess.run([str(BIN / "nnbasics-train"), "-m", "hparams_search=random", *FAST, "optimizer=sgd",
                          "optimizer.lr=choice(0.1,1e30)", "regularization.weight_decay=1e-5",
                          "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=sqlite:///{db}",
                          "hydra.sweeper.study_name=diverge", f"hydra.sweep.dir={sweep}"],
                         cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    import optuna

    trials = optuna.load_study(study_name="diverge", storage=f"sqlite:///{db}").trials
    states = {t.params["optimizer.lr"]: t.state.name for t in trials}
    assert states == {0.1: "COMPLETE", 1e30: "FAIL"}
    md = (sweep / "summary.md").read_text()
    assert "1 completed, 1 diverged" in md and "**diverged**" in md
    assert OmegaConf.load(sweep / "optimization_results.yaml").best_params["optimizer.lr"] == 0.1


@pytest.mark.slow  # four Hydra processes, 8 toy trials: about 30 s on 2 cores (-m slow)
@needs_optuna
def test_coarse_to_fine_search_then_one_final_run(tmp_path):
    out_dir = tmp_path / "search"
    cmd = [str(BIN / "nnbasics-search"), *FAST, "--coarse-trials", "4", "--fine-trials", "3", "--min-top", "2",
           "--dir", str(out_dir)]
    out = subprocess.run(cmd, cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((out_dir / "search.json").read_text())
    coarse, fine = report["stages"]
    assert coarse["ranges"]["optimizer.lr"]["text"] == "[1e-06, 0.1] (log)"
    assert coarse["ranges"]["regularization.weight_decay"]["text"] == "[1e-08, 0.01] (log)"
    assert (coarse["n_completed"], fine["n_completed"]) == (4, 3)

    # the fine ranges are the span of the best coarse trials, inside the coarse ranges
    for name in ("optimizer.lr", "regularization.weight_decay"):
        c, f = coarse["ranges"][name], fine["ranges"][name]
        best = [t["params"][name] for t in coarse["top"]]
        assert len(best) == 2 and c["low"] <= f["low"] < f["high"] <= c["high"]
        assert (f["low"], f["high"]) == pytest.approx((min(best), max(best)))

    # every trial of each stage was sampled inside that stage's ranges, and read no test split
    trials = sorted(out_dir.glob("coarse/*/metrics.json")) + sorted(out_dir.glob("fine/*/metrics.json"))
    assert len(trials) == 7
    for m in trials:
        stage = report["stages"][0 if m.parent.parent.name == "coarse" else 1]
        cfg = OmegaConf.load(m.parent / "config.yaml")
        assert cfg.search is True and cfg.eval_test is False
        assert not any(k.startswith("test/") for k in json.loads(m.read_text()))
        for name, r in stage["ranges"].items():
            assert r["low"] <= OmegaConf.select(cfg, name) <= r["high"]

    # the final run: the best trial of both stages by val/acc, a normal run that reports test/acc
    best_value = max(t["value"] for s in (coarse, fine) for t in s["top"])
    assert report["best"]["val/acc"] == best_value
    final = json.loads((out_dir / "final" / "metrics.json").read_text())
    cfg = OmegaConf.load(out_dir / "final" / "config.yaml")
    assert cfg.search is False and "test/acc" in final and final["status"] == "completed"
    for name, value in report["best"]["params"].items():
        assert OmegaConf.select(cfg, name) == value
    assert final["val/acc"] == best_value  # same config and seed on CPU: the same numbers
    assert f"test/acc {final['test/acc']:.4f}" in out.stdout

    # both studies are in SQLite, and a later sweep with the same storage and name adds to them
    import optuna

    storage = f"sqlite:///{out_dir / 'optuna.db'}"
    assert len(optuna.load_study(study_name="search-coarse", storage=storage).trials) == 4
    assert len(optuna.load_study(study_name="search-fine", storage=storage).trials) == 3
    again = subprocess.run([str(BIN / "nnbasics-train"), "-m", "hparams_search=random", *FAST,
                            "hydra.sweeper.n_trials=1", f"hydra.sweeper.storage={storage}",
                            "hydra.sweeper.study_name=search-coarse", f"hydra.sweep.dir={tmp_path / 'more'}"],
                           cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="search-coarse", storage=storage)
    assert len(study.trials) == 5 and all(math.isfinite(t.value) for t in study.trials)


@pytest.mark.slow  # ~10 s: one Hydra process whose trials all diverge
@needs_optuna
def test_search_where_every_coarse_trial_diverges_stops_with_a_clear_error(tmp_path):
    out_dir = tmp_path / "search"
    cmd = [str(BIN / "nnbasics-search"), *FAST, "optimizer=sgd", "optimizer.lr=tag(log,interval(1e29,1e31))",
           "--coarse-trials", "2", "--fine-trials", "2", "--dir", str(out_dir)]
    out = subprocess.run(cmd, cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "no coarse trial completed" in out.stderr
    report = json.loads((out_dir / "search.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["coarse"] and "final" not in report
    assert report["stages"][0]["n_failed"] == 2
    assert "2 diverged" in (out_dir / "coarse" / "summary.md").read_text()  # written although the sweep crashed
    assert not (out_dir / "final").exists()
