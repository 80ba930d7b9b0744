"""The optimizers by name: the registry, their torch.optim twins, and `build_optimizer`.

The classes are readable single-tensor update loops, each a `torch.optim.Optimizer` subclass in
a file named for its concept (below), each calling its update rule in ``optim/kernels.py``.

Every class validates its arguments like its torch twin, packs them into ``defaults`` (so each
parameter group may override them, e.g. a weights-only group with its own ``weight_decay``),
and updates one tensor at a time with the same operations, in the same order, as torch's
single-tensor path. That is why ``optimizer.impl=nnbasics`` and ``optimizer.impl=torch`` give the
same numbers (tests/test_optim.py checks 100+ steps in lockstep).

Notation: ``g`` is the gradient of the loss, ``lr`` the (scheduled) learning rate, ``wd`` the
weight decay. L2-style decay adds ``wd * theta`` to the gradient (all but AdamW); AdamW shrinks
the weights directly (decoupled).

    name       class      file               kernel      torch twin
    sgd        SGD        optim/sgd.py       sgd_        torch.optim.SGD
    momentum   Momentum   optim/momentum.py  sgd_        torch.optim.SGD(momentum=mu)
    nesterov   Nesterov   optim/momentum.py  sgd_        torch.optim.SGD(momentum=mu, nesterov=True)
    adagrad    AdaGrad    optim/adagrad.py   adagrad_    torch.optim.Adagrad
    rmsprop    RMSprop    optim/rmsprop.py   rmsprop_    torch.optim.RMSprop
    adam       Adam       optim/adam.py      adam_       torch.optim.Adam (eps_mode=torch only)
    adamw      AdamW      optim/adam.py      adam_       torch.optim.AdamW
    adadelta   Adadelta   optim/adadelta.py  adadelta_   torch.optim.Adadelta

`build_optimizer(param_groups, cfg.optimizer, batch_size)` builds the configured one.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from nnbasics.config import check_bool, check_keys, check_name, check_number, select
from nnbasics.errors import ConfigError
from nnbasics.optim.adadelta import Adadelta
from nnbasics.optim.adagrad import AdaGrad
from nnbasics.optim.adam import EPS_MODES, Adam, AdamW
from nnbasics.optim.momentum import Momentum, Nesterov
from nnbasics.optim.rmsprop import RMSprop
from nnbasics.optim.sgd import SGD

LR_SCALINGS = ("none", "linear", "sqrt")
IMPLS = ("nnbasics", "torch")


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
    "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW, "adadelta": Adadelta,
}

# name -> (torch.optim class, arguments fixed by the name)
TORCH_TWINS: dict[str, tuple[type[torch.optim.Optimizer], dict]] = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {}),
    "nesterov": (torch.optim.SGD, {"nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "adadelta": (torch.optim.Adadelta, {}),
}

# Our arguments that the torch twin lacks, with the one value the twin implements.
TWIN_ONLY = {"eps_mode": "torch"}

# Config keys that are not constructor arguments.
COMMON_KEYS = ("name", "impl", "lr", "lr_scaling", "base_batch_size")


def hyperparameters(name: str) -> tuple[str, ...]:
    """The constructor arguments of optimizer ``name`` (its config keys besides COMMON_KEYS)."""
    import inspect

    sig = inspect.signature(OPTIMIZERS[name].__init__)
    return tuple(k for k in sig.parameters if k not in ("self", "params"))


def scaled_lr(lr: float, batch_size: int | None, scaling: str = "none", base_batch_size: int = 128) -> float:
    """The learning rate for ``batch_size`` (Goyal et al. 2017, "Accurate, large minibatch SGD"):

        none:    lr
        linear:  lr * B / B0          (the linear scaling rule)
        sqrt:    lr * sqrt(B / B0)    (square-root scaling: Krizhevsky 2014; Hoffer et al. 2017)

    with B0 = ``base_batch_size``, the batch size ``lr`` was tuned for.
    """
    if scaling == "none" or batch_size is None:
        return lr
    ratio = batch_size / base_batch_size
    if scaling == "linear":
        return lr * ratio
    if scaling == "sqrt":
        return lr * math.sqrt(ratio)
    raise ConfigError("optimizer.lr_scaling", scaling, f"choose one of: {', '.join(LR_SCALINGS)}")


def build_optimizer(param_groups, cfg: Mapping, batch_size: int | None = None) -> torch.optim.Optimizer:
    """The optimizer ``cfg.name`` over ``param_groups`` (parameters, or dicts with ``params`` and
    per-group overrides such as ``weight_decay``), hand-written (``impl: nnbasics``) or its
    ``torch.optim`` twin (``impl: torch``) with the same hyperparameters. The learning rate (of
    the defaults and of any group that sets its own) is scaled for ``batch_size`` by
    ``cfg.lr_scaling`` relative to ``cfg.base_batch_size``."""
    name, impl = cfg["name"], cfg.get("impl", "nnbasics") or "nnbasics"
    if name not in OPTIMIZERS:
        raise ConfigError("optimizer.name", name, f"choose one of: {', '.join(sorted(OPTIMIZERS))}")
    if impl not in IMPLS:
        raise ConfigError("optimizer.impl", impl, f"choose one of: {', '.join(IMPLS)}")
    scaling, base = cfg.get("lr_scaling", "none") or "none", int(cfg.get("base_batch_size", 128) or 128)

    def lr_for(lr) -> float:
        return scaled_lr(float(lr), batch_size, scaling, base)

    kwargs: dict[str, Any] = {"lr": lr_for(cfg["lr"])}
    for key in hyperparameters(name):
        if key in cfg and key != "lr" and cfg[key] is not None:
            kwargs[key] = _plain(cfg[key])
    unknown = sorted(k for k in cfg if k not in COMMON_KEYS and k not in kwargs and cfg[k] is not None)
    if unknown:
        raise ConfigError(f"optimizer.{unknown[0]}", cfg[unknown[0]],
                          f"{name} takes: {', '.join(COMMON_KEYS[1:] + hyperparameters(name)[1:])}")
    groups = list(param_groups)
    if groups and isinstance(groups[0], Mapping):
        groups = [dict(g, lr=lr_for(g["lr"])) if "lr" in g else dict(g) for g in groups]
    if impl == "torch":
        cls, fixed = TORCH_TWINS[name]
        for key, only in TWIN_ONLY.items():
            value = kwargs.pop(key, only)
            if value != only:
                raise ConfigError(f"optimizer.{key}", value, f"{cls.__module__}.{cls.__name__} implements only "
                                  f"{key}={only}; use optimizer.impl=nnbasics")
        return cls(groups, **kwargs, **fixed)
    return OPTIMIZERS[name](groups, **kwargs)


def _plain(value):
    """OmegaConf lists (betas) -> tuples of floats; numbers and bools unchanged."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return tuple(float(v) for v in value)
    return value


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``optimizer`` group: the name, the keys that optimizer takes
    (COMMON_KEYS and its constructor's arguments) and each value. Returns warnings."""
    notes: list[str] = []
    name = check_name(cfg, "optimizer.name", OPTIMIZERS)
    check_keys(select(cfg, "optimizer"), "optimizer", set(COMMON_KEYS) | set(hyperparameters(name)))
    check_number(cfg, "optimizer.lr", low=0, low_open=True)
    if select(cfg, "optimizer.impl") is not None:
        check_name(cfg, "optimizer.impl", IMPLS)
    if select(cfg, "optimizer.lr_scaling") is not None:
        check_name(cfg, "optimizer.lr_scaling", LR_SCALINGS)
    check_number(cfg, "optimizer.base_batch_size", low=1, integer=True, optional=True)
    momentum = check_number(cfg, "optimizer.momentum", low=0, optional=True)
    check_number(cfg, "optimizer.weight_decay", low=0, optional=True)
    check_number(cfg, "optimizer.eps", low=0, low_open=True, optional=True)
    betas = select(cfg, "optimizer.betas")
    if betas is not None:
        ok = not isinstance(betas, (str, bytes, Mapping)) and hasattr(betas, "__len__") and len(betas) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        if not ok:
            raise ConfigError("optimizer.betas", betas, "must be two numbers [beta1, beta2], each in [0, 1)")
    check_number(cfg, "optimizer.dampening", low=0, high=1, optional=True)
    check_number(cfg, "optimizer.alpha", low=0, high=1, high_open=True, optional=True)
    check_number(cfg, "optimizer.lr_decay", low=0, optional=True)
    check_number(cfg, "optimizer.initial_accumulator_value", low=0, optional=True)
    check_number(cfg, "optimizer.rho", low=0, high=1, high_open=True, optional=True)
    if select(cfg, "optimizer.eps_mode") is not None:
        mode = check_name(cfg, "optimizer.eps_mode", EPS_MODES)
        if mode != TWIN_ONLY["eps_mode"] and select(cfg, "optimizer.impl") == "torch":
            raise ConfigError("optimizer.eps_mode", mode, "torch.optim.Adam implements only eps_mode=torch "
                              "(eps after the bias correction); use optimizer.impl=nnbasics for eps_mode=dlfs")
    for key in ("centered", "amsgrad", "nesterov"):
        check_bool(cfg, f"optimizer.{key}", optional=True)
    if name == "nesterov" and momentum is not None and momentum <= 0:
        raise ConfigError("optimizer.momentum", momentum, "Nesterov momentum needs momentum > 0")
    nesterov_on = name == "momentum" and select(cfg, "optimizer.nesterov")
    if nesterov_on and ((momentum or 0) <= 0 or select(cfg, "optimizer.dampening")):
        raise ConfigError("optimizer.nesterov", True, "Nesterov momentum needs momentum > 0 and dampening 0")
    if momentum is not None and momentum >= 1:
        notes.append(f"optimizer.momentum={momentum} >= 1: the velocity never decays and training usually diverges")
    return notes
