"""The batched optimizer: SGD (momentum, dampening, Nesterov), Adam and AdamW on stacked
parameters (K members on a leading axis), with a K-vector for every hyperparameter that differs
between members. The update rules are those of ``nnbasics.optim.kernels`` (torch.optim's
formulas, step for step); this module only packs the per-member hyperparameters."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from nnbasics.errors import Unsupported
from nnbasics.optim import kernels

_IGNORED_GROUP_KEYS = {"params", "lr", "initial_lr", "weight_decay", "momentum", "dampening", "nesterov", "betas",
                       "eps", "foreach", "fused", "capturable", "differentiable", "maximize", "amsgrad",
                       "decoupled_weight_decay", "name"}


def group_hparams(group: Mapping, family: str, name: str) -> dict[str, Any]:
    """The hyperparameters of one library param group that the batched update uses."""
    for k, v in group.items():
        if k not in _IGNORED_GROUP_KEYS and v not in (None, False, 0, 0.0):
            raise Unsupported(f"optimizer option {k}={v!r} is not batched")
    if group.get("maximize") or group.get("amsgrad"):
        raise Unsupported("maximize/amsgrad are not batched")
    hp = {"lr": float(group["lr"]), "weight_decay": float(group.get("weight_decay", 0.0) or 0.0)}
    if family == "sgd":
        hp["momentum"] = float(group.get("momentum", 0.0) or 0.0)
        hp["dampening"] = float(group.get("dampening", 0.0) or 0.0)
        hp["nesterov"] = bool(group.get("nesterov", name == "nesterov"))
    else:
        b1, b2 = group.get("betas", (0.9, 0.999))
        hp.update(beta1=float(b1), beta2=float(b2), eps=float(group.get("eps", 1e-8)))
        if family == "adam" and group.get("decoupled_weight_decay"):
            raise Unsupported("Adam with decoupled_weight_decay is batched as optimizer=adamw")
    return hp


class BatchedOptimizer:
    """SGD (momentum, dampening, Nesterov), Adam and AdamW on stacked parameters, with a
    K-vector for every hyperparameter that differs between members (a float for one that does
    not), updated by ``kernels.sgd_`` and ``kernels.adam_``."""

    def __init__(self, params: Sequence[Tensor], hparams: Sequence[Sequence[dict]], family: str):
        # hparams[i][k]: the hyperparameters of member k for stacked parameter i
        self.params, self.family = list(params), family
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]
        self.step_count = 0
        self._scratch: list[Tensor | None] = [None] * len(self.params)  # Adam's denominator, reused
        self.hp: list[dict[str, Any]] = []
        for p, per_member in zip(self.params, hparams):
            shape = (-1,) + (1,) * (p.dim() - 1)
            entry = {}
            for key in per_member[0]:
                vals = [m[key] for m in per_member]
                if all(v == vals[0] for v in vals):
                    entry[key] = vals[0]
                else:
                    entry[key] = torch.tensor([float(v) for v in vals], dtype=p.dtype, device=p.device).view(shape)
            if isinstance(entry.get("nesterov"), Tensor):
                raise Unsupported("members differ in nesterov (one batched update needs one algorithm)")
            entry["lr"] = torch.tensor([m["lr"] for m in per_member], dtype=p.dtype, device=p.device).view(shape)
            self.hp.append(entry)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, factors: Tensor | float) -> None:
        """One update; the member's LR is its initial LR times ``factors`` (scalar or K-vector)."""
        self.step_count += 1
        for i, (p, hp, st) in enumerate(zip(self.params, self.hp, self.state)):
            if p.grad is None:
                continue
            f = factors if not isinstance(factors, Tensor) else factors.view((-1,) + (1,) * (p.dim() - 1))
            lr = hp["lr"] * f
            if self.family == "sgd":
                kernels.sgd_(p, p.grad, st, lr=lr, weight_decay=hp["weight_decay"], momentum=hp["momentum"],
                             dampening=hp["dampening"], nesterov=hp["nesterov"])
            else:
                # the denominator goes into one buffer kept from step to step (K x 51k parameters:
                # a fresh allocation each step, page faults included, cost more than the arithmetic)
                if self._scratch[i] is None:
                    self._scratch[i] = torch.empty_like(p)
                kernels.adam_(p, p.grad, st, lr=lr, beta1=hp["beta1"], beta2=hp["beta2"], eps=hp["eps"],
                              weight_decay=hp["weight_decay"], decoupled=self.family == "adamw", amsgrad=False,
                              step=self.step_count, scratch=self._scratch[i])

    def member_state(self, i: int, k: int) -> dict[str, Tensor]:
        """The optimizer state of stacked parameter i for member k, in torch.optim's format."""
        out: dict[str, Tensor] = {k2: v[k].clone() for k2, v in self.state[i].items()}
        if self.family != "sgd":
            out["step"] = torch.tensor(float(self.step_count))
        return out


__all__ = ["BatchedOptimizer", "group_hparams"]
