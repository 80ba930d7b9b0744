"""Plain gradient descent: ``theta <- theta - lr * g`` (the update is `kernels.sgd_`)."""

from __future__ import annotations

from nnbasics.optim.base import _Optimizer, _check
from nnbasics.optim import kernels


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
        kernels.sgd_(p, g, state, lr=group["lr"], weight_decay=group["weight_decay"])


__all__ = ["SGD"]
