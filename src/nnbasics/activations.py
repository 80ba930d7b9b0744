"""Activation functions: a function plus a Module each, looked up by name."""

from __future__ import annotations

from typing import Mapping

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


def get_activation(cfg: Mapping | str) -> nn.Module:
    """A fresh activation Module from a config node ``{name: relu, ...}`` or a name."""
    name = cfg if isinstance(cfg, str) else cfg["name"]
    if name not in ACTIVATIONS:
        raise KeyError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


def gain_name(cfg: Mapping | str) -> tuple[str, float | None]:
    """The nonlinearity name and parameter the initializer gain table knows this activation by."""
    name = cfg if isinstance(cfg, str) else cfg["name"]
    return name, None
