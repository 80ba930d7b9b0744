"""Optimizers as readable single-tensor update loops, each a `torch.optim.Optimizer` subclass.

Every class validates its arguments like its torch twin, packs them into ``defaults`` (so each
parameter group may override them, e.g. a weights-only group with its own ``weight_decay``),
and updates one tensor at a time with the same operations, in the same order, as torch's
single-tensor path. That is why ``optimizer.impl=nnbasics`` and ``optimizer.impl=torch`` give the
same numbers (tests/test_optim.py checks 100+ steps in lockstep).

Notation: ``g`` is the gradient of the loss, ``lr`` the (scheduled) learning rate, ``wd`` the
weight decay. L2-style decay adds ``wd * theta`` to the gradient (all but AdamW); AdamW shrinks
the weights directly (decoupled).

    name       class      torch twin
    sgd        SGD        torch.optim.SGD
    momentum   Momentum   torch.optim.SGD(momentum=mu)
    nesterov   Nesterov   torch.optim.SGD(momentum=mu, nesterov=True)
    adagrad    AdaGrad    torch.optim.Adagrad
    rmsprop    RMSprop    torch.optim.RMSprop
    adam       Adam       torch.optim.Adam
    adamw      AdamW      torch.optim.AdamW

`build_optimizer(param_groups, cfg.optimizer, batch_size)` builds the configured one.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from nnbasics.errors import ConfigError

LR_SCALINGS = ("none", "linear", "sqrt")
IMPLS = ("nnbasics", "torch")


def _check(ok: bool, what: str, value) -> None:
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _grads(group: dict):
    """(parameter, gradient) of each parameter of ``group`` that has a dense gradient."""
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError(f"nnbasics optimizers do not support sparse gradients (shape {tuple(p.shape)})")
        yield p, p.grad


def _step_counter() -> Tensor:
    """The per-parameter step count, kept as torch.optim keeps it (a float32 CPU scalar tensor),
    so state_dicts move between ``impl: nnbasics`` and ``impl: torch``."""
    return torch.tensor(0.0, dtype=torch.float32)


def _advance(state: dict) -> float:
    """Count this step and return t = 1, 2, ... as a Python number."""
    state["step"] += 1
    return state["step"].item() if torch.is_tensor(state["step"]) else state["step"]


def _undecorated(name: str):
    """torch.optim.Optimizer's method ``name`` without its ``torch._disable_dynamo`` wrapper
    (functools.wraps keeps the original as ``__wrapped__``; the method itself when unwrapped)."""
    method = getattr(torch.optim.Optimizer, name)
    return getattr(method, "__wrapped__", method)


class _Optimizer(torch.optim.Optimizer):
    """Shared `step(closure)`: evaluate the closure with gradients on, update without.

    torch wraps ``add_param_group``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` in
    ``torch._disable_dynamo``, whose first call imports ``torch._dynamo`` (about 1.7 s on a
    2-core CPU, a sixth of the time-to-98% budget) even when nothing is compiled; these
    optimizers are plain eager code, so they use torch's own methods undecorated. Everything else
    (param groups, state, hooks, ``isinstance(opt, torch.optim.Optimizer)`` for torch's LR
    schedulers) is torch's.
    """

    add_param_group = _undecorated("add_param_group")
    zero_grad = _undecorated("zero_grad")
    state_dict = _undecorated("state_dict")
    load_state_dict = _undecorated("load_state_dict")

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p, g in _grads(group):
                self._update(p, g, self.state[p], group)
        return loss

    def _update(self, p: Tensor, g: Tensor, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(_Optimizer):
    """Plain (stochastic, mini-batch or full-batch) gradient descent.

        g     <- g + wd * theta
        theta <- theta - lr * g

    Source: Robbins and Monro (1951); cs231n "Optimization: stochastic gradient descent".
    Twin: ``torch.optim.SGD(lr, weight_decay=wd)``.
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0):
        _check(lr >= 0.0, "learning rate", lr)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    def _update(self, p, g, state, group):
        if group["weight_decay"] != 0:
            g = g.add(p, alpha=group["weight_decay"])
        p.add_(g, alpha=-group["lr"])


class Momentum(_Optimizer):
    """SGD with (heavy-ball) momentum, in PyTorch's form: a velocity buffer of gradients.

        g     <- g + wd * theta
        v     <- g                                  (first step)
        v     <- mu * v + (1 - dampening) * g       (later steps)
        theta <- theta - lr * v

    With a constant ``lr`` and no dampening this is the textbook ``v <- mu v - lr g;
    theta <- theta + v`` with the velocity scaled by -lr. With ``nesterov=True`` the step uses the
    look-ahead gradient ``g + mu * v`` instead of ``v`` (see `Nesterov`).

    Source: Polyak (1964); Sutskever et al. (2013), "On the importance of initialization and
    momentum in deep learning". Twin: ``torch.optim.SGD(lr, momentum=mu, dampening, weight_decay)``.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.9, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        _check(lr >= 0.0, "learning rate", lr)
        _check(momentum >= 0.0, "momentum value", momentum)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, p, g, state, group):
        mu = group["momentum"]
        if group["weight_decay"] != 0:
            g = g.add(p, alpha=group["weight_decay"])
        if mu != 0:
            v = state.get("momentum_buffer")
            if v is None:
                v = state["momentum_buffer"] = g.detach().clone()
            else:
                v.mul_(mu).add_(g, alpha=1 - group["dampening"])
            g = g.add(v, alpha=mu) if group["nesterov"] else v
        p.add_(g, alpha=-group["lr"])


class Nesterov(Momentum):
    """Nesterov accelerated gradient, in the reformulation PyTorch uses (Bengio et al. 2012):

        g     <- g + wd * theta
        v     <- g  (first step),   v <- mu * v + g  (later steps)
        theta <- theta - lr * (g + mu * v)

    The step direction ``g + mu * v`` approximates the gradient at the look-ahead point
    ``theta - lr * mu * v`` without a second gradient evaluation.

    Source: Nesterov (1983); Sutskever et al. (2013); cs231n "Nesterov momentum".
    Twin: ``torch.optim.SGD(lr, momentum=mu, nesterov=True, weight_decay)``.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, dampening=0.0, weight_decay=weight_decay, nesterov=True)


class AdaGrad(_Optimizer):
    """Per-coordinate learning rates from the running sum of squared gradients.

        g     <- g + wd * theta
        s     <- s + g * g                              (s starts at initial_accumulator_value)
        lr_t  =  lr / (1 + (t - 1) * lr_decay)          (t = 1, 2, ... counts this group's steps)
        theta <- theta - lr_t * g / (sqrt(s) + eps)

    Source: Duchi, Hazan and Singer (2011), "Adaptive subgradient methods for online learning
    and stochastic optimization". Twin: ``torch.optim.Adagrad``.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        _check(lr >= 0.0, "learning rate", lr)
        _check(lr_decay >= 0.0, "lr_decay value", lr_decay)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        _check(initial_accumulator_value >= 0.0, "initial_accumulator_value value", initial_accumulator_value)
        _check(eps >= 0.0, "epsilon value", eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _update(self, p, g, state, group):
        if not state:
            state["step"] = _step_counter()
            state["sum"] = torch.full_like(p, group["initial_accumulator_value"], memory_format=torch.preserve_format)
        t = _advance(state)
        if group["weight_decay"] != 0:
            g = g.add(p, alpha=group["weight_decay"])
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        s = state["sum"]
        s.addcmul_(g, g, value=1)
        p.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-lr_t)


class RMSprop(_Optimizer):
    """AdaGrad with a leaky (exponentially decaying) average of squared gradients.

        g     <- g + wd * theta
        s     <- alpha * s + (1 - alpha) * g * g
        d     =  sqrt(s) + eps                                   (plain)
        m     <- alpha * m + (1 - alpha) * g;  d = sqrt(s - m^2) + eps   (centered=True)
        theta <- theta - lr * g / d                              (momentum = 0)
        b     <- mu * b + g / d;  theta <- theta - lr * b        (momentum mu > 0)

    Source: Hinton, Srivastava and Swersky, Coursera "Neural Networks for Machine Learning",
    lecture 6e (2012); centered variant: Graves (2013). Twin: ``torch.optim.RMSprop``.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        _check(lr >= 0.0, "learning rate", lr)
        _check(eps >= 0.0, "epsilon value", eps)
        _check(momentum >= 0.0, "momentum value", momentum)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        _check(alpha >= 0.0, "alpha value", alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, p, g, state, group):
        alpha, mu = group["alpha"], group["momentum"]
        if not state:
            state["step"] = _step_counter()
            state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if mu > 0:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        _advance(state)
        if group["weight_decay"] != 0:
            g = g.add(p, alpha=group["weight_decay"])
        s = state["square_avg"]
        s.mul_(alpha).addcmul_(g, g, value=1 - alpha)
        if group["centered"]:
            m = state["grad_avg"]
            m.lerp_(g, 1 - alpha)                        # m <- alpha m + (1 - alpha) g
            d = s.addcmul(m, m, value=-1).sqrt_()
        else:
            d = s.sqrt()
        d = d.add_(group["eps"])
        if mu > 0:
            b = state["momentum_buffer"]
            b.mul_(mu).addcdiv_(g, d)
            p.add_(b, alpha=-group["lr"])
        else:
            p.addcdiv_(g, d, value=-group["lr"])


class Adam(_Optimizer):
    """Momentum on the gradient plus RMSprop scaling, with bias correction of both averages.

        g     <- g + wd * theta                         (L2 decay through the gradient)
        m     <- beta1 * m + (1 - beta1) * g
        v     <- beta2 * v + (1 - beta2) * g * g
        m_hat =  m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)      (t = 1, 2, ...)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    computed as ``theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.
    ``amsgrad=True`` uses the running maximum of ``v`` (Reddi et al. 2018).

    Source: Kingma and Ba (2015), "Adam: a method for stochastic optimization", Algorithm 1.
    Twin: ``torch.optim.Adam``.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        _check(lr >= 0.0, "learning rate", lr)
        _check(eps >= 0.0, "epsilon value", eps)
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _update(self, p, g, state, group):
        (beta1, beta2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
        if not state:
            state["step"] = _step_counter()
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        t = _advance(state)
        if wd != 0:
            if self.decoupled:
                p.mul_(1 - lr * wd)                      # AdamW: shrink the weights directly
            else:
                g = g.add(p, alpha=wd)                   # Adam: L2 through the gradient
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - beta1)                            # m <- beta1 m + (1 - beta1) g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)    # v <- beta2 v + (1 - beta2) g^2
        step_size = lr / (1 - beta1 ** t)
        bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
        if group["amsgrad"]:
            v_max = state["max_exp_avg_sq"]
            torch.maximum(v_max, v, out=v_max)
            v = v_max
        p.addcdiv_(m, (v.sqrt() / bias_correction2_sqrt).add_(group["eps"]), value=-step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay: the decay shrinks the weights, it does not enter m or v.

        theta <- theta * (1 - lr * wd)
        then the Adam step on the raw gradient g (see `Adam`).

    Unlike L2 through the gradient, the decay is not divided by sqrt(v_hat), so every weight
    decays at the same relative rate. Parameter groups without weights (biases, norm
    parameters) can be given ``weight_decay=0``.

    Source: Loshchilov and Hutter (2019), "Decoupled weight decay regularization", Algorithm 2.
    Twin: ``torch.optim.AdamW``.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
    "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW,
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
}

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
        return cls(groups, **kwargs, **fixed)
    return OPTIMIZERS[name](groups, **kwargs)


def _plain(value):
    """OmegaConf lists (betas) -> tuples of floats; numbers and bools unchanged."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return tuple(float(v) for v in value)
    return value


def validate_config(cfg: Mapping) -> list[str]:
    """Check the optimizer's own options (validate.py checks name, lr > 0, impl, momentum >= 0,
    weight_decay >= 0 and eps > 0). Returns warnings."""
    from nnbasics.engine.validate import _get, check_name, check_number

    notes: list[str] = []
    name = _get(cfg, "optimizer.name")
    node = _get(cfg, "optimizer") or {}
    if name not in OPTIMIZERS:
        return notes
    if _get(cfg, "optimizer.lr_scaling") is not None:
        check_name(cfg, "optimizer.lr_scaling", LR_SCALINGS)
    check_number(cfg, "optimizer.base_batch_size", low=1, integer=True, optional=True)
    allowed = set(COMMON_KEYS) | set(hyperparameters(name))
    for key in node:
        if key not in allowed:
            raise ConfigError(f"optimizer.{key}", node[key], f"optimizer={name} takes: {', '.join(sorted(allowed))}")
    betas = _get(cfg, "optimizer.betas")
    if betas is not None:
        ok = not isinstance(betas, (str, bytes, Mapping)) and hasattr(betas, "__len__") and len(betas) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        if not ok:
            raise ConfigError("optimizer.betas", betas, "must be two numbers [beta1, beta2], each in [0, 1)")
    check_number(cfg, "optimizer.dampening", low=0, high=1, optional=True)
    check_number(cfg, "optimizer.alpha", low=0, high=1, high_open=True, optional=True)
    check_number(cfg, "optimizer.lr_decay", low=0, optional=True)
    check_number(cfg, "optimizer.initial_accumulator_value", low=0, optional=True)
    for key in ("centered", "amsgrad", "nesterov"):
        value = _get(cfg, f"optimizer.{key}")
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"optimizer.{key}", value, "must be true or false")
    momentum = _get(cfg, "optimizer.momentum")
    if name == "nesterov" and momentum is not None and momentum <= 0:
        raise ConfigError("optimizer.momentum", momentum, "Nesterov momentum needs momentum > 0")
    nesterov_on = name == "momentum" and _get(cfg, "optimizer.nesterov")
    if nesterov_on and ((momentum or 0) <= 0 or _get(cfg, "optimizer.dampening")):
        raise ConfigError("optimizer.nesterov", True, "Nesterov momentum needs momentum > 0 and dampening 0")
    if isinstance(momentum, (int, float)) and momentum >= 1:
        notes.append(f"optimizer.momentum={momentum} >= 1: the velocity never decays and training usually diverges")
    return notes
