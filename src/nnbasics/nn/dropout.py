"""Dropout, p = the probability of *dropping* a unit: inverted dropout (Srivastava et al. 2014,
scaled at training time, nothing to do at test time), vanilla dropout (scaled at test time) and
DropConnect (Wan et al. 2013: drops weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnbasics.nn.linear import Linear


def _keep_mask(x: Tensor, p: float, generator=None) -> Tensor:
    """Bernoulli(1 - p) keep mask of x's shape (True = kept)."""
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Inverted dropout (Srivastava et al. 2014; cs231n): in training each unit is kept with
    probability 1 - p and the kept ones are scaled by 1/(1-p), so E[out] = x; in evaluation it is
    the identity, so inference code is unchanged."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    return x * _keep_mask(x, p, generator) / (1.0 - p)


def vanilla_dropout(x: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Vanilla dropout (the 2012/2014 papers' formulation): in training each unit is kept with
    probability 1 - p, unscaled, so E[out] = (1 - p) x; at test time every unit is kept and the
    output multiplied by 1 - p to match that expectation."""
    if p == 0.0:
        return x
    if not training:
        return x * (1.0 - p)
    return x * _keep_mask(x, p, generator)


class Dropout(nn.Module):
    """Inverted dropout (see ``dropout``)."""

    variant = "inverted"

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class VanillaDropout(Dropout):
    """Vanilla dropout (see ``vanilla_dropout``)."""

    variant = "vanilla"

    def forward(self, x: Tensor) -> Tensor:
        return vanilla_dropout(x, self.p, self.training)


DROPOUTS: dict[str, type[Dropout] | None] = {"inverted": Dropout, "vanilla": VanillaDropout, "dropconnect": None}


def make_dropout(variant: str, p: float) -> nn.Module | None:
    """The dropout Module of ``variant`` (inverted | vanilla), or None when p = 0 (the layer is
    left out, so a model without dropout is exactly the plain model)."""
    if p == 0.0:
        return None
    if variant not in ("inverted", "vanilla"):
        raise ValueError(f"dropout variant must be inverted or vanilla here, not {variant!r}")
    return DROPOUTS[variant](p)



class DropConnect(Linear):
    """DropConnect (Wan et al. 2013): drops *weights*, not activations. In training each weight is
    kept with probability 1 - p (one mask per mini-batch) and the kept ones scaled by 1/(1-p),
    so E[W_masked] = W; in evaluation the plain W is used (this inverted scaling replaces the
    paper's Gaussian moment matching at inference). Biases are not dropped."""

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, **kwargs):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropConnect p must be in [0, 1), got {p}")
        self.p = float(p)
        super().__init__(in_features, out_features, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return F.linear(x, self.weight, self.bias)
        keep = torch.rand_like(self.weight) >= self.p
        return F.linear(x, self.weight * keep / (1.0 - self.p), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}"


