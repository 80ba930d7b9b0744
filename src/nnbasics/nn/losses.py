"""Losses and the output layer that follows the task, written out (not F.* losses).

The model always outputs raw scores z (logits); each loss applies the output nonlinearity its
task needs, in a numerically stable form:

=============  ==========================  ===================================================
task           output layer                losses (``LOSS_TASKS``)
=============  ==========================  ===================================================
multiclass     softmax over C scores        cross_entropy, hinge, squared_hinge, mse (one-hot)
binary         one logit + sigmoid          bce
multilabel     K independent sigmoids       multilabel_logistic, multilabel_hinge
regression     identity                     mse, mae
=============  ==========================  ===================================================

Targets: multiclass integer labels (N), binary 0/1 floats (N), multilabel 0/1 floats (N x K),
regression floats (N x K). Every loss returns the mean over the batch (a scalar).
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import torch
from torch import Tensor

from nnbasics.config import check_keys, check_name, check_number, select
from nnbasics.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# Output layers
# ----------------------------------------------------------------------------------------------


def log_softmax(z: Tensor) -> Tensor:
    """log softmax(z)_j = z_j - logsumexp(z), with logsumexp(z) = m + log sum_j exp(z_j - m),
    m = max_j z_j (no overflow)."""
    m = z.amax(dim=1, keepdim=True).detach()  # any constant works; its gradient cancels
    return z - (m + torch.log(torch.exp(z - m).sum(dim=1, keepdim=True)))


def softmax(z: Tensor) -> Tensor:
    """softmax(z)_j = exp(z_j - m) / sum_k exp(z_k - m): class probabilities summing to 1."""
    e = torch.exp(z - z.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


def probabilities(output: Tensor, task: str) -> Tensor:
    """What the output layer of ``task`` gives: softmax (multiclass), sigmoid of each logit
    (binary, multilabel), the scores themselves (regression)."""
    if task == "multiclass":
        return softmax(output)
    if task in ("binary", "multilabel"):
        from nnbasics.nn.activations import sigmoid

        return sigmoid(output)
    return output


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


def _like(output: Tensor, target: Tensor) -> Tensor:
    """The target as a float tensor of the output's shape: one-hot for integer class labels,
    N -> N x 1 for a single output."""
    if not target.is_floating_point():
        return torch.zeros_like(output).scatter_(1, target.reshape(-1, 1), 1.0)
    return target.reshape(output.shape).to(output.dtype)


def mse(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error: L = mean over samples and outputs of (z - t)^2; on class labels t is
    the one-hot vector (the "L2 loss" on raw scores of the classification comparison)."""
    d = output - _like(output, target)
    return (d * d).mean()


def mae(output: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error: L = mean |z - t| (robust to outliers; the median fit)."""
    return (output - _like(output, target)).abs().mean()


def _logistic(z: Tensor, t: Tensor) -> Tensor:
    """Elementwise -[t log sigma(z) + (1 - t) log(1 - sigma(z))] = max(z, 0) - z t + log(1 + e^-|z|)."""
    return z.clamp(min=0) - z * t + torch.log1p(torch.exp(-z.abs()))


def binary_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """One logit + sigmoid + binary cross-entropy, in the stable form
    L = mean [max(z, 0) - z t + log(1 + exp(-|z|))], t in {0, 1}."""
    return _logistic(output, _like(output, target)).mean()


def cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Softmax + categorical cross-entropy: L = mean_i [ -z_{i,y_i} + log sum_j exp z_ij ]."""
    return -log_softmax(output).gather(1, target.reshape(-1, 1)).mean()


def multiclass_hinge(output: Tensor, target: Tensor, margin: float = 1.0, power: int = 1) -> Tensor:
    """Weston-Watkins multiclass SVM loss: L_i = sum_{j != y_i} max(0, z_j - z_{y_i} + margin)^power
    (power 1: hinge, 2: squared hinge), averaged over the batch. torch's MultiMarginLoss divides
    the sum by the number of classes C."""
    correct = output.gather(1, target.reshape(-1, 1))
    margins = (output - correct + margin).clamp(min=0)
    margins = margins.scatter(1, target.reshape(-1, 1), 0.0)  # the j = y_i term is not a margin
    return (margins if power == 1 else margins**power).sum(dim=1).mean()


def squared_hinge(output: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    """L_i = sum_{j != y_i} max(0, z_j - z_{y_i} + margin)^2 (L2-SVM): penalizes violations
    quadratically, smooth at the margin."""
    return multiclass_hinge(output, target, margin, power=2)


def multilabel_hinge(output: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    """Per-attribute hinge: with s = 2t - 1 in {-1, +1}, L_i = mean_k max(0, margin - s_ik z_ik)
    (one binary SVM per attribute), averaged over the batch."""
    s = 2 * _like(output, target) - 1
    return (margin - s * output).clamp(min=0).mean()


def multilabel_logistic(output: Tensor, target: Tensor) -> Tensor:
    """Per-attribute logistic loss: one independent sigmoid + binary cross-entropy per
    attribute, L_i = mean_k [max(z, 0) - z t + log(1 + e^-|z|)], averaged over the batch."""
    return _logistic(output, _like(output, target)).mean()


LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": mse, "mae": mae, "bce": binary_cross_entropy, "cross_entropy": cross_entropy,
    "hinge": multiclass_hinge, "squared_hinge": squared_hinge,
    "multilabel_hinge": multilabel_hinge, "multilabel_logistic": multilabel_logistic,
}
# the tasks each loss accepts (validate.py refuses the others before any work)
LOSS_TASKS: dict[str, set[str]] = {
    "mse": {"regression", "multiclass"}, "mae": {"regression"}, "bce": {"binary"},
    "cross_entropy": {"multiclass"}, "hinge": {"multiclass"}, "squared_hinge": {"multiclass"},
    "multilabel_hinge": {"multilabel"}, "multilabel_logistic": {"multilabel"},
}
MARGIN_LOSSES = ("hinge", "squared_hinge", "multilabel_hinge")


def build_loss(cfg: Mapping | str) -> Callable[[Tensor, Tensor], Tensor]:
    """The configured loss as ``(output, target) -> mean scalar`` (``margin`` for the hinges);
    a callable is returned as it is."""
    if callable(cfg) and not isinstance(cfg, (str, Mapping)):
        return cfg
    name = cfg if isinstance(cfg, str) else cfg["name"]
    if name not in LOSSES:
        raise ConfigError("loss.name", name, f"choose one of: {', '.join(sorted(LOSSES))}")
    fn = LOSSES[name]
    if name in MARGIN_LOSSES and not isinstance(cfg, str) and cfg.get("margin") is not None:
        fn = functools.partial(fn, margin=float(cfg["margin"]))
    return fn


def correct(output: Tensor, target: Tensor, task: str) -> Tensor:
    """Sum over the batch of per-sample accuracy (a 0-dim float tensor, no device sync):
    multiclass argmax == label; binary logit > 0 == target; multilabel mean over attributes of
    (logit > 0) == target; regression: nan (accuracy is undefined)."""
    if task == "multiclass":
        return (output.argmax(dim=1) == target).sum().float()
    if task == "binary":
        return ((output.reshape(-1) > 0).float() == target.reshape(-1)).sum().float()
    if task == "multilabel":
        return ((output > 0).float() == target).float().mean(dim=1).sum()
    return torch.tensor(float("nan"), device=output.device)


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``loss`` group (the loss-vs-task rule joins two groups: it lives in
    engine/validate.py)."""
    name = check_name(cfg, "loss.name", LOSSES)
    check_keys(select(cfg, "loss"), "loss", {"name", "margin"} if name in MARGIN_LOSSES else {"name"})
    if name in MARGIN_LOSSES:
        check_number(cfg, "loss.margin", low=0, low_open=True, optional=True)
    return []
