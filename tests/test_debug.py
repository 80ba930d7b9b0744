"""The debug= presets (conf/debug/, named as lightning-hydra-template's), tags, print_config and
profile as config keys, and the profiler helper (nnbasics.engine.profile)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF_DIR
from nnbasics.engine.validate import validate
from nnbasics.errors import ConfigError

PRESETS = ("default", "fdr", "overfit", "limit", "profiler")
SMALL = ["data=spiral", "progress=false", "model.width=16", "model.depth=1"]


def test_every_preset_file_is_listed_and_says_what_it_mirrors():
    files = {p.stem: p.read_text() for p in Path(CONF_DIR, "debug").glob("*.yaml")}
    assert set(files) == set(PRESETS)
    for name, text in files.items():
        assert text.startswith("# @package _global_\n")
        assert "lightning-hydra-template" in text and f"debug={name}" in text


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_composes_and_validates(compose, preset):
    cfg = compose(["data=spiral", f"debug={preset}"])
    validate(cfg)
    assert cfg.tags == ["debug"] and cfg.checkpoint is False and cfg.eval_test is False
    assert cfg.monitor.level == "off"
    expected = {"default": {"epochs": 1, "steps": None},
                "fdr": {"steps": 5},
                "overfit": {"epochs": 200, "steps": None, "sampling": "shuffle", "data.train_size": cfg.batch_size,
                            "scheduler.name": "constant", "regularization.name": "none"},
                "limit": {"epochs": 3, "data.train_size": 500, "data.val_size": 200},
                "profiler": {"profile": True, "steps": 8}}[preset]
    for key, value in expected.items():
        assert OmegaConf.select(cfg, key) == value, key
    assert cfg.profile is (preset == "profiler")


def test_presets_write_under_outputs_debug_and_the_command_line_still_wins():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["debug=fdr", "steps=3", "monitor=basic", "tags=[mine]"],
                      return_hydra_config=True)
    hydra = OmegaConf.to_container(cfg.hydra, resolve=False)
    assert hydra["run"]["dir"].startswith("outputs/debug/runs/")
    assert hydra["sweep"]["dir"].startswith("outputs/debug/multirun/")
    assert cfg.steps == 3 and cfg.monitor.level == "basic" and list(cfg.tags) == ["mine"]


def test_the_default_config_has_the_new_keys(compose):
    cfg = compose([])
    assert list(cfg.tags) == [] and cfg.print_config is True and cfg.profile is False and "debug" not in cfg


# --- training with the presets ----------------------------------------------------------------


def _train(compose, overrides, tmp_path):
    from nnbasics.engine.train import train

    return train(compose(overrides), tmp_path / "run")


def test_fdr_trains_five_updates_and_keeps_no_checkpoint(compose, tmp_path):
    m = _train(compose, SMALL + ["debug=fdr"], tmp_path)
    assert m["status"] == "completed" and m["steps"] == 5 and math.isfinite(m["val/acc"])
    assert "test/acc" not in m and not (tmp_path / "run" / "checkpoint.pt").exists()
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert list(saved.tags) == ["debug"]


def test_limit_trains_three_epochs_on_500_samples(compose, tmp_path):
    m = _train(compose, SMALL + ["debug=limit"], tmp_path)
    assert m["status"] == "completed" and m["epochs"] == 3
    assert m["steps"] == 3 * math.ceil(500 / 128)


def test_overfit_with_few_epochs_trains_on_one_batch(compose, tmp_path):
    m = _train(compose, SMALL + ["debug=overfit", "epochs=3", "batch_size=32"], tmp_path)
    assert m["status"] == "completed" and m["steps"] == 3  # one update per epoch: the split is one batch


def test_overfit_learns_its_batch(compose, tmp_path):
    """The default MLP on 128 spiral points: 200 updates on the one batch reach train/acc 1.0."""
    m = _train(compose, ["data=spiral", "progress=false", "debug=overfit"], tmp_path)
    assert m["steps"] == 200 and m["train/acc"] == 1.0 and m["train/loss"] < 0.05


def test_profiler_preset_writes_a_trace_under_tb(compose, tmp_path):
    m = _train(compose, SMALL + ["debug=profiler"], tmp_path)
    assert m["status"] == "completed" and m["steps"] == 8
    traces = list((tmp_path / "run" / "tb").glob("*.pt.trace.json"))
    assert len(traces) == 1 and json.loads(traces[0].read_text())["traceEvents"]


# --- the profiler helper on its own --------------------------------------------------------------


def test_profiler_for_is_a_no_op_when_off(tmp_path):
    import contextlib

    from nnbasics.engine.profile import profiler_for

    ctx, on_step = profiler_for(OmegaConf.create({"profile": False}), tmp_path)
    assert isinstance(ctx, contextlib.nullcontext) and on_step is None
    assert not (tmp_path / "tb").exists()


def test_profiler_for_records_steps_into_a_tensorboard_trace(tmp_path):
    from nnbasics.engine.profile import profiler_for

    ctx, on_step = profiler_for(OmegaConf.create({"profile": True, "device": "cpu"}), tmp_path)
    model = torch.nn.Linear(4, 2)
    with ctx:
        for _ in range(8):
            model(torch.randn(3, 4)).sum().backward()
            on_step(None)
    (trace,) = (tmp_path / "tb").glob("*.pt.trace.json")
    names = {e.get("name", "") for e in json.loads(trace.read_text())["traceEvents"]}
    assert any("ProfilerStep#" in n for n in names)  # the recorded updates, step-marked
    assert any("addmm" in n or "linear" in n for n in names)


# --- validation of the new keys ---------------------------------------------------------------


@pytest.mark.parametrize("override, key", [
    ("tags=baseline", "tags"),
    ("tags=[ok,3]", "tags[1]"),
    ("tags=[ok,'']", "tags[1]"),
    ("print_config=yes", "print_config"),
    ("profile=1", "profile"),
])
def test_bad_values_of_the_new_keys_are_refused(compose, override, key):
    with pytest.raises(ConfigError) as e:
        validate(compose(["data=spiral", override]))
    assert e.value.key == key


def test_debug_is_a_group_never_a_value(compose):
    """Hydra refuses ++debug=fdr itself (a group); a config that sets the key anyway is refused by name."""
    from omegaconf import open_dict

    cfg = compose(["data=spiral"])
    with open_dict(cfg):
        cfg.debug = None
    validate(cfg)
    with open_dict(cfg):
        cfg.debug = "fdr"
    with pytest.raises(ConfigError, match="debug=<preset>") as e:
        validate(cfg)
    assert e.value.key == "debug"


def test_tags_are_accepted_and_saved_with_the_resolved_config(compose, tmp_path):
    m = _train(compose, SMALL + ["epochs=1", "checkpoint=false", "tags=[baseline,lr_sweep]"], tmp_path)
    assert m["status"] == "completed"
    assert list(OmegaConf.load(tmp_path / "run" / "config.yaml").tags) == ["baseline", "lr_sweep"]


def test_summary_shows_the_runs_tags(compose, tmp_path):
    from nnbasics.cli.summary import summarize, to_csv, to_markdown
    from nnbasics.engine.train import train

    for i, tags in enumerate(("[a]", "[b,c]")):
        train(compose(SMALL + ["epochs=1", "checkpoint=false", f"tags={tags}", f"seed={i}"]), tmp_path / str(i))
    s = summarize(tmp_path)
    md = to_markdown(s)
    assert "| tags | run dirs |" in md and "| a | 0 |" in md and "| b, c | 1 |" in md
    assert "tags" in to_csv(s).splitlines()[0].split(",")


def test_the_image_model_rules_cover_both_cnns(compose):
    with pytest.raises(ConfigError, match="preprocess.name"):
        validate(compose(["data=mnist", "model=examples_cnn", "preprocess=pca"]))
    with pytest.raises(ConfigError, match="model.groups"):
        validate(compose(["data=mnist", "model=examples_cnn", "model.norm=group", "model.groups=7"]))
    with pytest.raises(ConfigError, match="activation.pieces"):
        validate(compose(["data=mnist", "model=examples_cnn", "activation=maxout", "activation.pieces=5000"]))
    validate(compose(["data=mnist", "model=examples_cnn", "model.norm=group", "model.groups=8"]))
