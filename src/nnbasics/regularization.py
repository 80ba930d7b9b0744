"""Regularization: penalties on weights only (never biases or norm parameters)."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


def weight_parameters(model: nn.Module) -> list[torch.nn.Parameter]:
    """The weights of Linear and conv layers: the only parameters a penalty touches."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.requires_grad]


def param_groups(model: nn.Module, cfg: Mapping) -> list[dict]:
    """Optimizer parameter groups (weights / the rest), for optimizers with decoupled decay."""
    weights = {id(p) for p in weight_parameters(model)}
    return [{"params": [p for p in model.parameters() if id(p) in weights]},
            {"params": [p for p in model.parameters() if id(p) not in weights]}]


def penalty(model: nn.Module, cfg: Mapping) -> torch.Tensor | None:
    """The term added to the loss: l2 -> weight_decay/2 * sum ||W||^2; none -> None."""
    if cfg["name"] == "none":
        return None
    if cfg["name"] == "l2":
        return 0.5 * float(cfg["weight_decay"]) * sum((w * w).sum() for w in weight_parameters(model))
    raise KeyError(f"unknown regularization {cfg['name']!r}; valid: none, l2")


def after_step_(model: nn.Module, cfg: Mapping) -> None:
    """Constraints applied after each optimizer step (max-norm); none here yet."""
