"""Models: the MLP (depth 0 = linear model). `build_model(cfg, in_shape, out_features)` builds
the configured one."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from nnbasics.activations import gain_name, get_activation
from nnbasics.init import init_layer_


class MLP(nn.Module):
    """input -> depth x [Linear(width) -> activation] -> Linear(out_features)."""

    def __init__(self, in_features: int, out_features: int, width: int, depth: int,
                 activation: Mapping | str = "relu", init: Mapping | None = None):
        super().__init__()
        init = init or {"name": "he_normal"}
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        self.init_audit: list[tuple[str, float]] = []
        nonlinearity, param = gain_name(activation)
        fan_in = in_features
        for _ in range(depth):
            linear = nn.Linear(fan_in, width)
            self.init_audit.append(("hidden", init_layer_(linear.weight, linear.bias, init, nonlinearity, param)))
            layers += [linear, get_activation(activation)]
            fan_in = width
        head = nn.Linear(fan_in, out_features)
        self.init_audit.append(("output", init_layer_(head.weight, head.bias, init, "linear")))
        layers.append(head)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.flatten(x))


def build_model(cfg: Mapping, in_shape: tuple[int, ...], out_features: int) -> nn.Module:
    """The model of ``cfg.model`` with ``cfg.activation`` and ``cfg.init``."""
    m = cfg["model"]
    if m["name"] == "mlp":
        return MLP(math.prod(in_shape), out_features, m["width"], m["depth"], cfg["activation"], cfg["init"])
    raise KeyError(f"unknown model {m['name']!r}; valid: mlp")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (weights and biases)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
