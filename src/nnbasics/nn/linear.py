"""Layers that own their initialization: a Linear (y = x W^T + b) and a Conv2d whose
``reset_parameters`` applies the configured initializer, and the Maxout layer.

A layer that owns its initialization keeps the theoretical std of its initial weights as
``init_std`` (nan when not defined) and the initializer's name as ``initializer``: the init audit
and the monitor read them.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nnbasics.nn.activations import Maxout as MaxoutActivation
from nnbasics.nn.init import init_bias_, init_layer_, torch_default_


class _OwnsInit:
    """Mixin: ``reset_parameters`` calls the injected initializer.

    ``init`` is an ``init`` config node (``{name: he_normal, mode: fan_in, bias: 0.0}``), a
    callable ``f(weight)`` (bias set to 0), or None for PyTorch's default. ``nonlinearity`` and
    ``param`` name the activation that follows the layer, for the initializer's gain."""

    init_std: float
    initializer: str

    def _setup_init(self, init, nonlinearity: str, param: float | None) -> None:
        # a plain dict copy of a config node (a DictConfig inside a Module pickles poorly)
        self.init_cfg = {k: init[k] for k in init} if isinstance(init, Mapping) else init
        self.nonlinearity, self.param = nonlinearity, param
        self._owns_init = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not getattr(self, "_owns_init", False):
            return  # called from torch's __init__: the weights are set once the initializer is known
        cfg = self.init_cfg
        if cfg is None:
            torch_default_(self.weight)
            if self.bias is not None:
                init_bias_(self.bias, self.weight, "torch")
            fan_in = self.weight[0].numel()
            self.init_std, self.initializer = 1.0 / math.sqrt(3.0 * fan_in), "torch_default"
        elif callable(cfg) and not isinstance(cfg, Mapping):
            with torch.no_grad():
                cfg(self.weight)
                if self.bias is not None:
                    self.bias.zero_()
            self.init_std, self.initializer = float("nan"), getattr(cfg, "__name__", type(cfg).__name__)
        else:
            self.init_std = float(init_layer_(self.weight, self.bias, cfg, self.nonlinearity, self.param))
            self.initializer = str(cfg["name"])


class Linear(_OwnsInit, nn.Linear):
    """y = x W^T + b, an ``nn.Linear`` whose ``reset_parameters`` applies the injected
    initializer (see ``_OwnsInit``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: Mapping | Callable | None = None, nonlinearity: str = "relu", param: float | None = None,
                 device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._setup_init(init, nonlinearity, param)


def stacked_linear(h: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The linear layer y = h W^T + b of K models at once, their weights stacked: ``weight`` is
    K x out x in, ``bias`` K x out (or None), ``h`` is G x B x in with G dividing K (member k
    reads ``h[k // (K / G)]``: G = K, every member its own inputs; G < K, groups of K/G
    consecutive members share one input). Returns K x B x out.

    Computed transposed, y^T = W h^T + b: one ``baddbmm`` over the G groups, each group's weights
    one (K/G * out) x in matrix, so a shared input is never copied per member and the
    G x (K/G * out) x B result is K x out x B without a copy. Transposed because then autograd's
    weight gradient, dY^T h, comes out in W's own layout (the other way round it is a transposed
    tensor that must be copied into W.grad's layout, which cost as much as a matrix product on a
    2-core CPU), and the next layer's h^T is contiguous again. Member k's rows equal
    ``F.linear(h[k // (K / G)], weight[k], bias[k])`` up to float rounding (tests)."""
    K, out = weight.shape[0], weight.shape[1]
    G = h.shape[0]
    Wg = weight.reshape(G, (K // G) * out, weight.shape[2])
    hT = h.transpose(1, 2)
    yT = torch.bmm(Wg, hT) if bias is None else torch.baddbmm(bias.reshape(G, (K // G) * out, 1), Wg, hT)
    return yT.view(K, out, -1).transpose(1, 2)


class Conv2d(_OwnsInit, nn.Conv2d):
    """A 2-D convolution (``nn.Conv2d``) whose ``reset_parameters`` applies the injected
    initializer; fans count the receptive field (fan_in = in_channels * kh * kw)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, init: Mapping | Callable | None = None, nonlinearity: str = "relu",
                 param: float | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._setup_init(init, nonlinearity, param)


class MaxoutLinear(nn.Module):
    """A maxout layer (Goodfellow et al. 2013): ``out_features`` units, each the max of ``pieces``
    linear functions of the input: Linear(in, out * pieces) then the max over each group."""

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, **linear_kwargs):
        super().__init__()
        linear_kwargs.setdefault("nonlinearity", "maxout")
        self.linear = Linear(in_features, out_features * pieces, **linear_kwargs)
        self.maxout = MaxoutActivation(pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.maxout(self.linear(x))


