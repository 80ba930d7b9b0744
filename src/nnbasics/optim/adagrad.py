"""AdaGrad: per-coordinate learning rates from the sum of squared gradients (the update is
`kernels.adagrad_`)."""

from __future__ import annotations

from nnbasics.optim.base import _Optimizer, _advance, _check, _step_counter
from nnbasics.optim import kernels


class AdaGrad(_Optimizer):
    """Per-coordinate learning rates from the running sum of squared gradients.

        g     <- g + wd * theta
        s     <- s + g * g                              (s starts at initial_accumulator_value)
        lr_t  =  lr / (1 + (t - 1) * lr_decay)          (t = 1, 2, ... counts this group's steps)
        theta <- theta - lr_t * g / (sqrt(s) + eps)

    eps sits outside the square root, as in deep-learning-from-scratch's ``AdaGrad``
    (``p -= lr * g / (sqrt(h) + 1e-7)``): the two differ only in eps (1e-7 there, 1e-10 here
    and in torch), so DLFS's AdaGrad is ``eps=1e-7``; there is no placement to choose (no bias
    correction, unlike Adam's ``eps_mode``).

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
        kernels.adagrad_(p, g, state, lr=group["lr"], step=_advance(state), weight_decay=group["weight_decay"],
                         lr_decay=group["lr_decay"], eps=group["eps"],
                         initial_accumulator_value=group["initial_accumulator_value"])


__all__ = ["AdaGrad"]
