"""Adam and AdamW: momentum plus RMSprop scaling with bias correction; AdamW decays the weights
directly (the update is `kernels.adam_`)."""

from __future__ import annotations

from nnbasics.optim.base import _Optimizer, _advance, _check, _step_counter
from nnbasics.optim import kernels

EPS_MODES = ("torch", "dlfs")


class Adam(_Optimizer):
    """Momentum on the gradient plus RMSprop scaling, with bias correction of both averages.

        g     <- g + wd * theta                         (L2 decay through the gradient)
        m     <- beta1 * m + (1 - beta1) * g
        v     <- beta2 * v + (1 - beta2) * g * g
        m_hat =  m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)      (t = 1, 2, ...)
        theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)

    computed as ``theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.
    ``amsgrad=True`` uses the running maximum of ``v`` (Reddi et al. 2018).

    ``eps_mode`` places eps: ``torch`` (above, torch.optim.Adam's) or ``dlfs``
    (deep-learning-from-scratch's ``Adam``, Kingma and Ba's section-2 ordering)::

        lr_t  =  lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        theta <- theta - lr_t * m / (sqrt(v) + eps)          (eps on the uncorrected sqrt(v))

    the same as ``torch`` with eps replaced by eps * sqrt(1 - beta2^t) (smaller early on).
    torch.optim.Adam has only the first, so ``eps_mode="dlfs"`` has no torch twin. The group
    key ``eps_mode`` is stored only for ``dlfs``: with torch's placement the parameter groups
    (and state_dicts) are exactly torch.optim.Adam's.

    Source: Kingma and Ba (2015), "Adam: a method for stochastic optimization", Algorithm 1.
    Twin: ``torch.optim.Adam``.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, eps_mode: str = "torch"):
        _check(lr >= 0.0, "learning rate", lr)
        _check(eps >= 0.0, "epsilon value", eps)
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        _check(weight_decay >= 0.0, "weight_decay value", weight_decay)
        _check(eps_mode in EPS_MODES, "eps_mode (torch or dlfs)", eps_mode)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        if eps_mode != "torch":
            defaults["eps_mode"] = eps_mode
        super().__init__(params, defaults)

    def _update(self, p, g, state, group):
        if not state:
            state["step"] = _step_counter()
        beta1, beta2 = group["betas"]
        kernels.adam_(p, g, state, lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"], decoupled=self.decoupled, amsgrad=group["amsgrad"],
                      step=_advance(state), eps_mode=group.get("eps_mode", "torch"))


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


__all__ = ["Adam", "AdamW", "EPS_MODES"]
