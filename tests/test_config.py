"""Every option of every config group composes, passes validation, and trains a few steps.

Parametrized over the YAML files in conf/, so a new option is covered the moment it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED_DATA, TOY
from nnbasics.nn import losses
from nnbasics.engine.train import train
from nnbasics.engine.validate import validate

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "model", "activation", "init", "loss", "optimizer", "scheduler", "regularization", "preprocess", "monitor"]
IMAGE_SETS = {"mnist", "fashion_mnist", "cifar10"}
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]

# A toy data set whose target suits each task, so every loss gets data it accepts.
DATA_FOR_TASK = {
    "multiclass": ["data=spiral"],
    "binary": ["data=moons", "data.target=parity"],
    "multilabel": ["data=blobs", "data.classes=10", "data.target=attributes"],
    "regression": ["data=curve"],
}


def overrides_for(group: str, option: str) -> list[str]:
    base = [o for o in TOY if not o.startswith("data=")] + ["steps=3", "batch_size=32", "checkpoint=false"]
    if group == "data":
        return base + [f"data={option}"] + (["loss=mse"] if option == "curve" else [])
    if group == "loss":
        tasks = losses.LOSS_TASKS.get(option, {"multiclass"})
        task = "multiclass" if "multiclass" in tasks else sorted(tasks)[0]
        return base + DATA_FOR_TASK[task] + [f"loss={option}"]
    if group == "model" and option == "cnn":
        return base + ["data=spiral"] + [f"model={option}"]
    return base + ["data=spiral", f"{group}={option}"]


def test_every_group_has_options():
    for group in GROUPS:
        assert list((CONF / group).glob("*.yaml")), group


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_validates_and_trains(compose, tmp_path, group, option):
    if group == "data" and option == "curve" and not (CONF / "loss" / "mse.yaml").exists():
        pytest.skip("regression needs loss=mse")
    ov = overrides_for(group, option)
    cfg = compose(ov)
    assert cfg[group] is not None
    if group == "data" and option in IMAGE_SETS:
        cfg.data.download = False
        validate(cfg)  # composing and validating needs no data files
        if option == "cifar10" or not (SHARED_DATA / ("MNIST" if option == "mnist" else "FashionMNIST") / "raw").is_dir():
            return
        cfg.data.root = str(SHARED_DATA)
        cfg.data.train_size = 256
    if group == "model" and option == "cnn":
        pytest.skip("the CNN needs image input; covered in tests/test_models.py")
    m = train(cfg, run_dir=tmp_path / "run")
    assert m["status"] == "completed" and m["steps"] == 3
