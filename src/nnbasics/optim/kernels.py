"""The update rules, once: functional kernels that update one tensor in place.

This is torch's ``_single_tensor_*`` pattern (torch/optim/sgd.py, adagrad.py, rmsprop.py,
adam.py, adadelta.py): the optimizer classes (``optim/sgd.py`` ... ``optim/adam.py``) keep the parameter
groups and the step count and call one kernel per parameter; the batched optimizer
(``optim/batched.py``) calls the same kernels on K stacked members.

Every hyperparameter may be

- a Python number: the kernel then makes exactly the calls torch's single-tensor path makes
  (e.g. ``p.add_(g, alpha=-lr)``, a fused multiply-add on CPU), so the results equal
  ``torch.optim``'s bit for bit;
- a tensor broadcastable to ``p`` (K x 1 x 1 ... for K members stacked on the leading axis):
  one value per member, with the equivalent tensor arithmetic (``p.sub_(g * lr)``).

``state`` is the parameter's state dict in torch.optim's key names (``momentum_buffer``,
``sum``, ``square_avg``, ``grad_avg``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``,
``acc_delta``); a
kernel creates the entries it needs on the first call. The step count ``t`` (1, 2, ...) is the
caller's: the classes keep it per parameter as torch does, the batched optimizer once.
Call the kernels under ``torch.no_grad()``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _nonzero(v) -> bool:
    """Whether a term with coefficient ``v`` changes anything (for a tensor: for any member)."""
    return bool((v != 0).any()) if isinstance(v, Tensor) else v != 0


def _add_scaled(g: Tensor, x: Tensor, c) -> Tensor:
    """g + c * x, out of place."""
    return g.add(x * c) if isinstance(c, Tensor) else g.add(x, alpha=c)


def _step_(p: Tensor, d: Tensor, lr) -> None:
    """theta <- theta - lr * d."""
    if isinstance(lr, Tensor):
        p.sub_(d * lr)
    else:
        p.add_(d, alpha=-lr)


def _step_ratio_(p: Tensor, num: Tensor, den: Tensor, lr) -> None:
    """theta <- theta - lr * num / den (``den`` may be overwritten)."""
    if isinstance(lr, Tensor):
        p.sub_(torch.div(num, den, out=den).mul_(lr))
    else:
        p.addcdiv_(num, den, value=-lr)


def _ema_sq_(s: Tensor, g: Tensor, beta) -> Tensor:
    """s <- beta * s + (1 - beta) * g * g."""
    if isinstance(beta, Tensor):
        return s.mul_(beta).add_(g * g * (1 - beta))
    return s.mul_(beta).addcmul_(g, g, value=1 - beta)


def _zeros(state: dict, key: str, p: Tensor) -> Tensor:
    if key not in state:
        state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state[key]


def sgd_(p: Tensor, g: Tensor, state: dict, *, lr, weight_decay=0.0, momentum=0.0, dampening=0.0,
         nesterov: bool = False) -> None:
    """SGD with optional L2 decay, (heavy-ball) momentum and Nesterov's look-ahead step.

        g     <- g + wd * theta
        v     <- g                                  (first step)
        v     <- mu * v + (1 - dampening) * g       (later steps)
        d     =  g + mu * v  (nesterov),  v  (momentum),  g  (mu = 0)
        theta <- theta - lr * d

    Source: Robbins and Monro (1951); Polyak (1964); Sutskever et al. (2013), "On the
    importance of initialization and momentum in deep learning".
    Reference: torch/optim/sgd.py, ``_single_tensor_sgd``. State: ``momentum_buffer``.
    """
    if _nonzero(weight_decay):
        g = _add_scaled(g, p, weight_decay)
    if _nonzero(momentum):
        v = state.get("momentum_buffer")
        if v is None:
            v = state["momentum_buffer"] = g.detach().clone()
        else:
            v.mul_(momentum)
            if isinstance(dampening, Tensor):
                v.add_(g * (1 - dampening))
            else:
                v.add_(g, alpha=1 - dampening)
        g = _add_scaled(g, v, momentum) if nesterov else v
    _step_(p, g, lr)


def adagrad_(p: Tensor, g: Tensor, state: dict, *, lr, step: float, weight_decay=0.0, lr_decay=0.0, eps=1e-10,
             initial_accumulator_value=0.0) -> None:
    """AdaGrad: per-coordinate learning rates from the running sum of squared gradients.

        g     <- g + wd * theta
        s     <- s + g * g                              (s starts at initial_accumulator_value)
        lr_t  =  lr / (1 + (t - 1) * lr_decay)          (t = ``step`` = 1, 2, ...)
        theta <- theta - lr_t * g / (sqrt(s) + eps)

    Source: Duchi, Hazan and Singer (2011), "Adaptive subgradient methods for online learning
    and stochastic optimization". Reference: torch/optim/adagrad.py, ``_single_tensor_adagrad``.
    State: ``sum``.
    """
    if "sum" not in state:
        if isinstance(initial_accumulator_value, Tensor):
            state["sum"] = torch.zeros_like(p, memory_format=torch.preserve_format).add_(initial_accumulator_value)
        else:
            state["sum"] = torch.full_like(p, initial_accumulator_value, memory_format=torch.preserve_format)
    if _nonzero(weight_decay):
        g = _add_scaled(g, p, weight_decay)
    lr_t = lr / (1 + (step - 1) * lr_decay)
    s = state["sum"]
    s.addcmul_(g, g, value=1)
    _step_ratio_(p, g, s.sqrt().add_(eps), lr_t)


def rmsprop_(p: Tensor, g: Tensor, state: dict, *, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
             centered: bool = False) -> None:
    """RMSprop: AdaGrad with a leaky (exponentially decaying) average of squared gradients.

        g     <- g + wd * theta
        s     <- alpha * s + (1 - alpha) * g * g
        d     =  sqrt(s) + eps                                   (plain)
        m     <- alpha * m + (1 - alpha) * g;  d = sqrt(s - m^2) + eps   (centered=True)
        theta <- theta - lr * g / d                              (momentum = 0)
        b     <- mu * b + g / d;  theta <- theta - lr * b        (momentum mu > 0)

    Source: Hinton, Srivastava and Swersky, Coursera "Neural Networks for Machine Learning",
    lecture 6e (2012); centered variant: Graves (2013). Reference: torch/optim/rmsprop.py,
    ``_single_tensor_rmsprop``. State: ``square_avg``, ``momentum_buffer``, ``grad_avg``.
    """
    s = _zeros(state, "square_avg", p)
    if _nonzero(momentum):
        _zeros(state, "momentum_buffer", p)
    if centered:
        _zeros(state, "grad_avg", p)
    if _nonzero(weight_decay):
        g = _add_scaled(g, p, weight_decay)
    _ema_sq_(s, g, alpha)
    if centered:
        m = state["grad_avg"]
        m.lerp_(g, 1 - alpha)                        # m <- alpha m + (1 - alpha) g
        d = s.addcmul(m, m, value=-1).sqrt_()
    else:
        d = s.sqrt()
    d = d.add_(eps)
    if _nonzero(momentum):
        b = state["momentum_buffer"]
        b.mul_(momentum).addcdiv_(g, d)
        _step_(p, b, lr)
    else:
        _step_ratio_(p, g, d, lr)


def adam_(p: Tensor, g: Tensor, state: dict, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
          decoupled: bool = False, amsgrad: bool = False, step: float, scratch: Tensor | None = None,
          eps_mode: str = "torch") -> None:
    """Adam (``decoupled=False``) and AdamW (``decoupled=True``).

        theta <- theta * (1 - lr * wd)                  (AdamW: decay the weights directly)
        g     <- g + wd * theta                         (Adam: L2 decay through the gradient)
        m     <- beta1 * m + (1 - beta1) * g
        v     <- beta2 * v + (1 - beta2) * g * g
        v     <- max(v_max, v)                          (amsgrad, Reddi et al. 2018)
        theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    that is ``theta - lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected averages
    ``m_hat = m / (1 - beta1^t)``, ``v_hat = v / (1 - beta2^t)``; t = ``step`` = 1, 2, ...

    ``eps_mode`` says where eps goes (the averages m and v are the same either way):

        torch:  theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
        dlfs:   theta <- theta - lr_t * m / (sqrt(v) + eps),  lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)

    ``dlfs`` (deep-learning-from-scratch, common/optimizer.py ``Adam``; also Kingma and Ba's
    "more efficient" ordering in section 2) adds eps to the *uncorrected* sqrt(v), which is
    the torch form with eps scaled by sqrt(1 - beta2^t): early on (sqrt(1 - 0.999^1) = 0.032)
    the effective eps is 32x smaller.
    ``scratch``, a tensor like ``p`` that the caller keeps between steps, receives the
    denominator (saves one allocation a step; the same operations either way).

    Source: Kingma and Ba (2015), "Adam: a method for stochastic optimization", Algorithm 1;
    Loshchilov and Hutter (2019), "Decoupled weight decay regularization", Algorithm 2.
    Reference: torch/optim/adam.py, ``_single_tensor_adam``. State: ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq``.
    """
    m, v = _zeros(state, "exp_avg", p), _zeros(state, "exp_avg_sq", p)
    if amsgrad:
        _zeros(state, "max_exp_avg_sq", p)
    if _nonzero(weight_decay):
        if decoupled:
            p.mul_(1 - lr * weight_decay)
        else:
            g = _add_scaled(g, p, weight_decay)
    m.lerp_(g, 1 - beta1)
    _ema_sq_(v, g, beta2)
    step_size = lr / (1 - beta1 ** step)
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    if amsgrad:
        v_max = state["max_exp_avg_sq"]
        torch.maximum(v_max, v, out=v_max)
        v = v_max
    denom = v.sqrt() if scratch is None else torch.sqrt(v, out=scratch)
    if eps_mode == "dlfs":
        _step_ratio_(p, m, denom.add_(eps), step_size * bias_correction2_sqrt)
    elif eps_mode == "torch":
        _step_ratio_(p, m, denom.div_(bias_correction2_sqrt).add_(eps), step_size)
    else:
        raise ValueError(f"eps_mode must be 'torch' or 'dlfs', not {eps_mode!r}")


def adadelta_(p: Tensor, g: Tensor, state: dict, *, lr, rho=0.9, eps=1e-6, weight_decay=0.0) -> None:
    """Adadelta: RMSprop whose step size is the RMS of the recent updates themselves, so the
    update has the units of theta and needs (almost) no learning rate.

        g     <- g + wd * theta
        s     <- rho * s + (1 - rho) * g * g                  (s: running average of g^2)
        d     =  sqrt(u + eps) / sqrt(s + eps) * g            (u: running average of d^2, before this step)
        u     <- rho * u + (1 - rho) * d * d
        theta <- theta - lr * d

    lr = 1 is the paper's algorithm (torch's default and pytorch/examples' MNIST setting); eps
    both starts the first steps (u = 0 gives d = sqrt(eps / (s + eps)) g) and keeps the ratio
    finite.

    Source: Zeiler (2012), "ADADELTA: an adaptive learning rate method", Algorithm 1.
    Reference: torch/optim/adadelta.py, ``_single_tensor_adadelta``. State: ``square_avg``,
    ``acc_delta``.
    """
    s, u = _zeros(state, "square_avg", p), _zeros(state, "acc_delta", p)
    if _nonzero(weight_decay):
        g = _add_scaled(g, p, weight_decay)
    _ema_sq_(s, g, rho)
    std = s.add(eps).sqrt_()
    d = u.add(eps).sqrt_().div_(std).mul_(g)
    _ema_sq_(u, d, rho)
    _step_(p, d, lr)


__all__ = ["sgd_", "adagrad_", "rmsprop_", "adam_", "adadelta_"]
