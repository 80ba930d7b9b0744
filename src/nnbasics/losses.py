"""Losses and the output layer that follows the task.

Tasks: ``multiclass`` (integer labels, softmax), ``binary`` (0/1 float targets, one logit +
sigmoid), ``multilabel`` (N x K 0/1 targets, independent sigmoids), ``regression`` (float targets,
identity output)."""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """L = mean_i [ -z_{i,y_i} + log sum_j exp z_ij ] (softmax + categorical cross-entropy)."""
    return F.cross_entropy(logits, target)


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"cross_entropy": cross_entropy}
LOSS_TASKS: dict[str, set[str]] = {"cross_entropy": {"multiclass"}}


def build_loss(cfg: Mapping) -> Callable[[Tensor, Tensor], Tensor]:
    name = cfg["name"]
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


def correct(output: Tensor, target: Tensor, task: str) -> Tensor:
    """Sum over the batch of per-sample accuracy (a 0-dim float tensor, no device sync):
    multiclass argmax == label; binary logit > 0 == target; multilabel mean over attributes;
    regression: nan (accuracy is undefined)."""
    if task == "multiclass":
        return (output.argmax(dim=1) == target).sum().float()
    if task == "binary":
        return ((output.reshape(-1) > 0).float() == target.reshape(-1)).sum().float()
    if task == "multilabel":
        return ((output > 0).float() == target).float().mean(dim=1).sum()
    return torch.tensor(float("nan"), device=output.device)
