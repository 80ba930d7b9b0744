"""RMSprop: a leaky average of squared gradients scales each coordinate (the update is
`kernels.rmsprop_`)."""

from __future__ import annotations

from nnbasics.optim.base import _Optimizer, _advance, _check, _step_counter
from nnbasics.optim import kernels


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
        if not state:
            state["step"] = _step_counter()
        _advance(state)
        kernels.rmsprop_(p, g, state, lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                         weight_decay=group["weight_decay"], momentum=group["momentum"], centered=group["centered"])


__all__ = ["RMSprop"]
