"""Regularization: penalties on weights only (never biases, norm parameters or PReLU slopes),
decoupled weight decay, the max-norm constraint; the model-side parts (dropout, input noise) are
read by ``models.build_model``.

The config node (group ``regularization``) has the same keys in every option, and the keys, not
the option's name, say what happens, so options compose by overriding keys:

    weight_decay     lambda of the L2 penalty  lambda/2 * sum ||W||^2          (0 = off)
    l1               lambda_1 of the L1 penalty  lambda_1 * sum |W|            (0 = off)
    decoupled        true: no L2 term in the loss; the optimizer decays the weights group by
                     weight_decay (with adamw: decoupled, Loshchilov and Hutter 2019)
    max_norm         c: after every step each unit's incoming weight vector is projected to
                     ||w|| <= c (Srivastava et al. 2014)                        (null = off)
    input_noise      std of Gaussian noise added to the inputs in training     (0 = off)
    dropout_p        hidden-unit dropout probability; null = model.dropout.p
    input_dropout_p  input dropout probability; null = model.dropout.input_p
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from nnbasics.config import check_bool, check_keys, check_name, check_number, select

# option name -> the keys it is meant to switch on (validate_config warns when none is on)
REGULARIZERS: dict[str, tuple[str, ...]] = {
    "none": (),
    "l2": ("weight_decay",),
    "l2_decoupled": ("weight_decay",),
    "l1": ("l1",),
    "elastic_net": ("weight_decay", "l1"),
    "maxnorm": ("max_norm",),
    "dropout": ("dropout_p", "input_dropout_p"),
    "maxnorm_dropout": ("max_norm", "dropout_p", "input_dropout_p"),
    "input_noise": ("input_noise",),
}
# The keys of the group besides name: every option has all of them (see the module docstring).
KEYS = ("weight_decay", "l1", "decoupled", "max_norm", "input_noise", "dropout_p", "input_dropout_p")


def _num(cfg: Mapping, key: str, default: float = 0.0) -> float:
    value = cfg.get(key, default) if cfg is not None else default
    return default if value is None else float(value)


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and conv layers: the only ones whose weights are penalized or constrained."""
    return [m for m in model.modules()
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and getattr(m, "weight", None) is not None]


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The weights of Linear and conv layers: the only parameters a penalty touches."""
    return [m.weight for m in weight_layers(model) if m.weight.requires_grad]


def param_groups(model: nn.Module, cfg: Mapping) -> list[dict]:
    """Optimizer parameter groups: the weights, then everything else (biases, norm parameters,
    PReLU slopes). The second group always carries ``weight_decay = 0``: no decay, from the
    regularization node or the optimizer's own ``weight_decay``, ever touches a bias or a norm
    parameter. With ``decoupled: true`` the weights group carries
    ``weight_decay = cfg.weight_decay`` (the optimizer applies it; decoupled with adamw);
    otherwise it carries none, so the optimizer's own ``weight_decay`` applies to the weights."""
    weights = {id(p) for p in weight_parameters(model)}
    w = [p for p in model.parameters() if id(p) in weights]
    rest = [p for p in model.parameters() if id(p) not in weights and p.requires_grad]
    groups = [{"params": w}, {"params": rest, "weight_decay": 0.0}]
    if cfg is not None and cfg.get("decoupled"):
        groups[0]["weight_decay"] = _num(cfg, "weight_decay")
    return [g for g in groups if g["params"]]


def l2_penalty(model: nn.Module, weight_decay: float) -> torch.Tensor:
    """lambda/2 * sum_W ||W||^2 over weights only: its gradient lambda W shrinks every weight
    towards 0 in proportion to its size ("weight decay")."""
    return 0.5 * weight_decay * sum((w * w).sum() for w in weight_parameters(model))


def l1_penalty(model: nn.Module, l1: float) -> torch.Tensor:
    """lambda_1 * sum_W |W| over weights only: its gradient lambda_1 sign(W) pushes small weights
    to exactly 0 (sparse weights)."""
    return l1 * sum(w.abs().sum() for w in weight_parameters(model))


def penalty(model: nn.Module, cfg: Mapping) -> torch.Tensor | None:
    """The term added to the loss: L2 (unless decoupled) + L1; elastic net is both. None when
    there is nothing to add."""
    if cfg is None:
        return None
    terms = []
    wd, l1 = _num(cfg, "weight_decay"), _num(cfg, "l1")
    if wd > 0 and not cfg.get("decoupled"):
        terms.append(l2_penalty(model, wd))
    if l1 > 0:
        terms.append(l1_penalty(model, l1))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


@torch.no_grad()
def max_norm_(model: nn.Module, c: float) -> None:
    """Project each unit's incoming weight vector (a row of W; for a conv layer, its whole kernel)
    onto the ball ||w||_2 <= c: w <- w * min(1, c / ||w||). Rows already inside are unchanged."""
    for m in weight_layers(model):
        w = m.weight
        norms = w.reshape(w.shape[0], -1).norm(dim=1)
        scale = (c / norms.clamp(min=1e-12)).clamp(max=1.0)
        w.mul_(scale.reshape(-1, *([1] * (w.dim() - 1))))


def after_step_(model: nn.Module, cfg: Mapping) -> None:
    """Constraints applied after each optimizer step: max-norm when ``max_norm`` is set."""
    if cfg is not None and cfg.get("max_norm") is not None:
        max_norm_(model, float(cfg["max_norm"]))


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``regularization`` group; raise ConfigError on a bad one. Returns
    warnings (the ones that join the optimizer's settings live in engine/validate.py)."""
    notes: list[str] = []
    name = check_name(cfg, "regularization.name", REGULARIZERS)
    check_keys(select(cfg, "regularization"), "regularization", ("name", *KEYS))
    for key in ("regularization.weight_decay", "regularization.l1", "regularization.input_noise"):
        check_number(cfg, key, low=0, optional=True)
    check_number(cfg, "regularization.max_norm", low=0, low_open=True, optional=True)
    for key in ("regularization.dropout_p", "regularization.input_dropout_p"):
        check_number(cfg, key, low=0, high=1, high_open=True, optional=True)
    check_bool(cfg, "regularization.decoupled", optional=True)
    values = {k: select(cfg, f"regularization.{k}") for k in REGULARIZERS[name]}
    if values and not any(v not in (None, 0, 0.0) for v in values.values()):
        notes.append(f"regularization={name} with {', '.join(f'{k}={v}' for k, v in values.items())} regularizes nothing")
    return notes
