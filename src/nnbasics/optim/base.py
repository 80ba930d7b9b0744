"""What the readable optimizers share: a `torch.optim.Optimizer` whose ``step`` calls one
``_update(p, g, state, group)`` per parameter with a gradient, and the small helpers of their
constructors and updates (argument checks like torch's, the per-parameter step count kept as
torch keeps it). The update rules themselves live in ``nnbasics.optim.kernels``."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


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
