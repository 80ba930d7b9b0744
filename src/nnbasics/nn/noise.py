"""Gaussian input noise: a regularizer that perturbs the inputs during training only."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class InputNoise(nn.Module):
    """x + N(0, std^2) noise in training (a regularizer, Bishop 1995: like an L2 penalty for
    small std); the identity in evaluation."""

    def __init__(self, std: float):
        super().__init__()
        if std < 0:
            raise ValueError(f"input noise std must be >= 0, got {std}")
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0.0:
            return x
        return x + self.std * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"std={self.std}"


