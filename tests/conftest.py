"""Shared test fixtures: compose the real configs (conf/train.yaml) with overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import nnbasics.cli.train  # noqa: F401  (registers the nnbasics_uid resolver that conf/train.yaml uses)

REPO = Path(__file__).resolve().parents[1]
from nnbasics.conf import CONF_DIR as _CONF  # noqa: E402  (the configs inside the package)

CONF_DIR = str(_CONF)
SHARED_DATA = Path(os.environ.get("NNBASICS_SHARED_DATA", REPO.parent / "shared" / "data"))

# Fast, quiet defaults for runs inside tests: toy data, no progress bars, no monitor, no checkpoint.
TOY = ["data=spiral", "epochs=2", "progress=false", "monitor=off", "model.width=16", "model.depth=1"]

torch.set_num_threads(1)  # tests run beside each other on a 2-core machine


def compose_cfg(overrides: list[str] | None = None):
    """The composed training config, exactly as `nnbasics-train <overrides>` would see it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides or []), return_hydra_config=False)


@pytest.fixture
def compose():
    return compose_cfg


@pytest.fixture
def toy_overrides():
    return list(TOY)
