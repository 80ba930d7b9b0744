"""SGD with momentum: heavy-ball (`Momentum`) and Nesterov's look-ahead (`Nesterov`), in
PyTorch's velocity-buffer form (the update is `kernels.sgd_`)."""

from __future__ import annotations

from nnbasics.optim.base import _Optimizer, _check
from nnbasics.optim import kernels


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
        kernels.sgd_(p, g, state, lr=group["lr"], weight_decay=group["weight_decay"], momentum=group["momentum"],
                     dampening=group["dampening"], nesterov=group["nesterov"])


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


__all__ = ["Momentum", "Nesterov"]
