"""Optimizers. `build_optimizer(param_groups, cfg, batch_size)` builds the configured one."""

from __future__ import annotations

from typing import Mapping

import torch

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def build_optimizer(params, cfg: Mapping, batch_size: int | None = None) -> torch.optim.Optimizer:
    name = cfg["name"]
    if name not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(OPTIMIZERS))}")
    kwargs = {"lr": float(cfg["lr"])}
    if name == "adam":
        kwargs.update(betas=tuple(cfg.get("betas", (0.9, 0.999))), eps=float(cfg.get("eps", 1e-8)))
    return OPTIMIZERS[name](params, **kwargs)
