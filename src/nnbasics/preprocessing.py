"""Preprocessing fitted on the training split only, applied unchanged to validation and test."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor


class Identity:
    """No preprocessing."""

    def fit(self, x: Tensor) -> "Identity":
        return self

    def transform(self, x: Tensor) -> Tensor:
        return x

    def state_dict(self) -> dict:
        return {}


def build_preprocessor(cfg: Mapping):
    if cfg["name"] == "none":
        return Identity()
    raise KeyError(f"unknown preprocess {cfg['name']!r}; valid: none")
