"""Adadelta: RMSprop whose step is scaled by the RMS of the past updates, so it needs (almost) no
learning rate (the update is `kernels.adadelta_`)."""

from __future__ import annotations

from nnbasics.optim.base import _Optimizer, _advance, _check, _step_counter
from nnbasics.optim import kernels


class Adadelta(_Optimizer):
    """Running averages of the squared gradients and of the squared updates; their ratio is
    each coordinate's step size.

        g     <- g + wd * theta
        s     <- rho * s + (1 - rho) * g * g
        d     =  sqrt(u + eps) / sqrt(s + eps) * g        (u from the previous steps)
        u     <- rho * u + (1 - rho) * d * d
        theta <- theta - lr * d

    lr = 1 is Zeiler's algorithm; the ratio sqrt(u) / sqrt(s) gives the update the units of
    theta (the "units" argument of the paper's section 3.2).

    Source: Zeiler (2012), "ADADELTA: an adaptive learning rate method", Algorithm 1.
    Twin: ``torch.optim.Adadelta`` (same defaults: lr 1.0, rho 0.9, eps 1e-6, weight_decay 0).
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0):
        _check(lr >= 0.0, "learning rate", lr)
        _check(0.0 <= rho <= 1.0, "rho value", rho)
        _check(eps >= 0.0, "epsilon value", eps)
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _update(self, p, g, state, group):
        if not state:
            state["step"] = _step_counter()
        _advance(state)
        kernels.adadelta_(p, g, state, lr=group["lr"], rho=group["rho"], eps=group["eps"],
                          weight_decay=group["weight_decay"])


__all__ = ["Adadelta"]
