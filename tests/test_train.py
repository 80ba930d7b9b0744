"""The training core: a short run learns, and its run directory describes itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch

from omegaconf import open_dict

from nnbasics.engine.train import train
from nnbasics.errors import DivergenceError

CONF = CONF_DIR


def event_tags(tb_dir: Path) -> dict[str, list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc.Tags()


def test_short_toy_run_learns_and_describes_itself(compose, toy_overrides, tmp_path):
    cfg = compose(toy_overrides + ["data=moons", "epochs=30", "model.width=32", "optimizer.lr=0.01", "batch_size=32"])
    run = tmp_path / "run"
    m = train(cfg, run_dir=run)
    # moons with noise 0.1 is nearly separable by a small MLP: a stated bar, well above chance (0.5)
    assert m["status"] == "completed"
    assert m["val/acc"] >= 0.95 and m["test/acc"] >= 0.95
    on_disk = json.loads((run / "metrics.json").read_text())
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "epochs", "seed", "wall_time_s"):
        assert key in on_disk, key
    assert on_disk["epochs"] == 30 and on_disk["seed"] == 0
    assert (run / "config.yaml").exists() and (run / "checkpoint.pt").exists() and (run / "git.txt").exists()
    history = json.loads((run / "history.json").read_text())
    assert len(history["epochs"]) == 30 and history["curve"]
    assert history["epochs"][-1]["train/loss"] < history["epochs"][0]["train/loss"]
    tags = event_tags(run / "tb")
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "train/lr"):
        assert tag in tags["scalars"], tag


def test_loss_at_initialization_is_log_of_class_count(compose, toy_overrides, tmp_path):
    """A 10-class softmax with small random logits starts near ln 10 = 2.303."""
    from nnbasics.data.datasets import load_data
    from nnbasics.nn.losses import build_loss
    from nnbasics.nn.models import build_model

    cfg = compose(toy_overrides + ["data=blobs", "data.classes=10", "model.width=64"])
    bundle = load_data(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg, bundle.in_shape, bundle.out_features)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.out_features == 10:
                m.weight.mul_(0.01)
        loss = build_loss(cfg.loss)(model(bundle.train.x), bundle.train.y)
    assert abs(float(loss) - 2.3026) < 0.05


def test_steps_budget_counts_updates(compose, toy_overrides, tmp_path):
    cfg = compose(toy_overrides + ["steps=7", "batch_size=50"])
    m = train(cfg, run_dir=tmp_path / "r")
    assert m["steps"] == 7


def test_eval_test_false_never_reads_test(compose, toy_overrides, tmp_path):
    m = train(compose(toy_overrides + ["eval_test=false"]), run_dir=tmp_path / "r")
    assert "test/acc" not in m


def test_search_mode_forbids_the_test_split(compose, toy_overrides, tmp_path, monkeypatch):
    """search=true: the final evaluation skips test, and any attempt to read it raises (the set-up
    every trainer shares hands out a bundle whose test split is sealed; the caller's bundle is not
    changed)."""
    import nnbasics.engine.setup as setup_mod

    seen = {}
    real = setup_mod.prepare

    def spy(*a, **k):
        seen["setup"] = real(*a, **k)
        return seen["setup"]

    monkeypatch.setattr(setup_mod, "prepare", spy)
    import nnbasics.engine.train as train_mod
    monkeypatch.setattr(train_mod, "prepare", spy)
    m = train(compose(toy_overrides + ["search=true", "eval_test=true"]), run_dir=tmp_path / "r")
    assert "test/acc" not in m
    with pytest.raises(RuntimeError, match="never read inside a hyperparameter search"):
        seen["setup"].load_test()
    with pytest.raises(RuntimeError, match="never read inside a hyperparameter search"):
        seen["setup"].bundle.load_test()
    given = setup_mod.prepare(compose(toy_overrides))
    sealed = setup_mod.prepare(compose(toy_overrides + ["search=true"]), data=given.bundle)
    with pytest.raises(RuntimeError, match="never read inside a hyperparameter search"):
        sealed.load_test()
    assert len(given.load_test()) > 0  # the bundle a caller passed in still reads its test split


def test_hparams_are_in_the_run_events(compose, toy_overrides, tmp_path):
    train(compose(toy_overrides), run_dir=tmp_path / "r")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "r" / "tb"))
    acc.Reload()
    plugins = acc.PluginTagToContent("hparams")
    assert "_hparams_/experiment" in plugins and "_hparams_/session_start_info" in plugins
    start = plugins["_hparams_/session_start_info"]
    for name in (b"activation", b"optimizer", b"lr", b"seed", b"width", b"depth"):
        assert name in start


def test_an_empty_validation_split_has_no_val_metrics(compose, toy_overrides, tmp_path):
    """With no validation samples (data.val_size=0), val metrics are absent, not 0: a search that
    minimizes val/loss can never pick such a run for a 0.0 it never measured."""
    import dataclasses

    from nnbasics.data.datasets import Split, load_data

    cfg = compose(toy_overrides)
    bundle = load_data(cfg.data)
    empty = dataclasses.replace(bundle, val=Split(bundle.val.x[:0], bundle.val.y[:0]))
    m = train(cfg, run_dir=tmp_path / "r", data=empty)
    assert m["status"] == "completed" and "train/acc" in m and "test/acc" in m
    assert not any(k.startswith("val/") or k.startswith("best/") for k in m)
    assert all("val/acc" not in row and "val/loss" not in row for row in m["history"])
    on_disk = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert not any(k.startswith("val/") for k in on_disk)


def test_best_epoch_numbers_come_from_the_history(compose, toy_overrides, tmp_path):
    m = train(compose(toy_overrides + ["epochs=4"]), run_dir=tmp_path / "r")
    best = max(m["history"], key=lambda r: r["val/acc"])
    assert (m["best/epoch"], m["best/val/acc"], m["best/val/loss"]) == (best["epoch"], best["val/acc"], best["val/loss"])



def test_a_loss_that_blows_up_is_divergence(compose, toy_overrides, tmp_path):
    """Adam at lr 1e6 does not produce NaN quickly but a loss many orders above its start: with
    divergence_factor set, that is recorded as diverged, like a NaN."""
    cfg = compose(toy_overrides + ["optimizer=adam", "optimizer.lr=1e6", "scheduler=constant", "epochs=3"])
    with open_dict(cfg):
        cfg.divergence_factor = 1e3
    with pytest.raises(DivergenceError):
        train(cfg, run_dir=tmp_path / "r")
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["status"] == "diverged" and m["diverged_at_step"] >= 1


def test_progress_bar_is_off_when_output_is_not_a_terminal(compose, toy_overrides, tmp_path):
    """progress=true draws tqdm's bar on a terminal only: a piped or SLURM log gets no carriage
    returns."""
    import subprocess
    import sys

    code = ("import nnbasics.cli.train\n"
            "from hydra import compose, initialize_config_dir\n"
            "from nnbasics.engine.train import train\n"
            f"with initialize_config_dir(config_dir={str(CONF_DIR)!r}, version_base='1.3'):\n"
            f"    cfg = compose(config_name='train', overrides={toy_overrides + ['progress=true']!r})\n"
            f"train(cfg, run_dir={str(tmp_path / 'r')!r})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr and "it/s" not in out.stderr and "step/s" not in out.stderr


@pytest.mark.parametrize("policy,files", [("last", {"checkpoint.pt"}), ("best", {"best.pt"}),
                                          ("both", {"checkpoint.pt", "best.pt"}), ("none", set()),
                                          (True, {"checkpoint.pt"}), (False, set())])
def test_checkpoint_policy_decides_what_is_kept(compose, toy_overrides, tmp_path, policy, files):
    cfg = compose(toy_overrides + ["epochs=3"])
    cfg.checkpoint = policy
    train(cfg, run_dir=tmp_path / "r")
    assert {f for f in ("checkpoint.pt", "best.pt") if (tmp_path / "r" / f).exists()} == files


@pytest.mark.parametrize("value", ["off", "yes", 1, "last,best"])
def test_checkpoint_takes_its_choices_and_nothing_else(compose, toy_overrides, value):
    from nnbasics.engine.validate import validate
    from nnbasics.errors import ConfigError

    cfg = compose(toy_overrides)
    cfg.checkpoint = value
    with pytest.raises(ConfigError, match="checkpoint"):
        validate(cfg)


@pytest.mark.parametrize("metric", ["val/acc", "val/loss"])
def test_best_pt_holds_the_best_epoch_by_the_chosen_metric(compose, toy_overrides, tmp_path, metric):
    """best.pt is the model of the epoch best_metric picks (max val/acc, min val/loss); loading it
    reproduces that epoch's validation numbers."""
    import nnbasics

    m = train(compose(toy_overrides + ["epochs=5", "checkpoint=both", f"best_metric={metric}"]), run_dir=tmp_path / "r")
    values = [r[metric] for r in m["history"]]
    best = (values.index(max(values)) if metric == "val/acc" else values.index(min(values))) + 1
    assert m["best/epoch"] == best
    state = torch.load(tmp_path / "r" / "best.pt", weights_only=True)
    assert state["epoch"] == best and state["metric"] == metric
    run = nnbasics.load_run(tmp_path / "r", checkpoint="best.pt")
    ev = run.evaluate("val")
    assert ev["acc"] == pytest.approx(m["best/val/acc"], abs=1e-6) and ev["loss"] == pytest.approx(m["best/val/loss"], rel=1e-5)


def test_early_stopping_stops_after_patience_epochs_without_improvement(compose, toy_overrides, tmp_path):
    """A learning rate of 1e-12 leaves the model as it is: val/loss never improves after epoch 1,
    so patience 2 stops the run at epoch 3 of 10, recorded as completed and stopped early."""
    m = train(compose(toy_overrides + ["epochs=10", "optimizer=sgd", "optimizer.lr=1e-12", "scheduler=constant",
                                       "best_metric=val/loss", "early_stopping.patience=2"]), run_dir=tmp_path / "r")
    assert m["status"] == "completed" and m["epochs"] == 3 and m["stopped_early_at_epoch"] == 3
    assert m["best/epoch"] == 1 and "test/acc" in m


def test_early_stopping_is_off_by_default_and_needs_a_validation_split(compose, toy_overrides):
    from nnbasics.engine.validate import validate
    from nnbasics.errors import ConfigError

    assert compose(toy_overrides).early_stopping.patience is None
    with pytest.raises(ConfigError, match="early_stopping.patience"):
        validate(compose(toy_overrides + ["early_stopping.patience=0"]))


def test_the_loss_curve_and_the_final_numbers_have_their_own_tensorboard_tags(compose, toy_overrides, tmp_path):
    """train/batch_loss: a point every ~1/20 epoch; whole/<split>/<metric>: the final evaluation,
    never written into the running train/loss curve (which would draw a false drop at the end)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    m = train(compose(toy_overrides + ["epochs=2", "batch_size=16"]), run_dir=tmp_path / "r")
    acc = EventAccumulator(str(tmp_path / "r" / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/batch_loss", "whole/train/loss", "whole/val/acc", "whole/test/acc"} <= tags
    assert len(acc.Scalars("train/batch_loss")) >= 20
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx([r["train/loss"] for r in m["history"]])
    assert acc.Scalars("whole/val/acc")[-1].value == pytest.approx(m["val/acc"])


def test_full_batch_runs_do_not_write_a_checkpoint_per_update(compose, toy_overrides, tmp_path, monkeypatch):
    """Full-batch gradient descent makes every update an epoch: checkpoint.pt is written after
    the first epoch, then at most about once a second, and after the last (500 epochs of a toy
    set: a handful of writes, not 500), and the run still resumes from it."""
    from nnbasics.engine import rundir

    writes = []
    real = rundir.RunDir.save_checkpoint
    monkeypatch.setattr(rundir.RunDir, "save_checkpoint", lambda self, state: (writes.append(state["epoch"]),
                                                                               real(self, state))[1])
    m = train(compose(toy_overrides + ["batch_size=full", "steps=500", "optimizer=sgd", "optimizer.lr=0.1"]),
              run_dir=tmp_path / "r")
    assert m["epochs"] == 500 and writes[0] == 1 and writes[-1] == 500
    assert len(writes) < 50, len(writes)
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["epoch"] == 500
