"""Weight initializers, written out (not delegated to torch.nn.init).

Every initializer is an in-place function ``name_(tensor, ...)`` whose docstring carries its
formula and source. ``init_layer_`` applies the configured one to a layer's weight and bias and
returns the theoretical std of the weights (for the init audit).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import Tensor


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """fan_in = inputs per unit, fan_out = outputs per input; for conv kernels both are
    multiplied by the receptive field size (torch's convention: weight is [out, in, *kernel])."""
    if tensor.dim() < 2:
        raise ValueError("fan in and fan out need a tensor with at least 2 dimensions")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activation variance constant through a layer with this nonlinearity:
    linear/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + slope^2)), selu 3/4."""
    table = {"identity": 1.0, "linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in table:
        raise ValueError(f"no gain for nonlinearity {nonlinearity!r}; known: {sorted(table) + ['leaky_relu']}")
    return table[nonlinearity]


def zeros_(tensor: Tensor) -> Tensor:
    """W = 0: breaks no symmetry, every unit in a layer stays identical."""
    with torch.no_grad():
        return tensor.zero_()


def he_normal_(tensor: Tensor, gain: float = math.sqrt(2.0), mode: str = "fan_in", generator=None) -> Tensor:
    """He et al. 2015: W ~ N(0, std^2), std = gain / sqrt(fan) with fan = fan_in or fan_out."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    std = gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot and Bengio 2010: W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-a, a, generator=generator)


INITIALIZERS: dict[str, Callable] = {"he_normal": he_normal_, "xavier_uniform": xavier_uniform_, "zeros": zeros_}


def get_initializer(name: str) -> Callable:
    """Look an initializer up by name; an unknown name lists the valid ones."""
    if callable(name):
        return name
    if name not in INITIALIZERS:
        raise KeyError(f"unknown initializer {name!r}; valid: {', '.join(sorted(INITIALIZERS))}")
    return INITIALIZERS[name]


def theoretical_std(weight: Tensor, cfg: Mapping, nonlinearity: str = "relu", param: float | None = None) -> float:
    """The std the configured initializer should give this weight (nan when not defined)."""
    fan_in, fan_out = fan_in_and_fan_out(weight)
    name, gain = cfg["name"], calculate_gain(nonlinearity, param)
    if name == "he_normal":
        return gain / math.sqrt(fan_in if cfg.get("mode", "fan_in") == "fan_in" else fan_out)
    if name == "xavier_uniform":
        return gain * math.sqrt(2.0 / (fan_in + fan_out))
    if name == "zeros":
        return 0.0
    return float("nan")


def init_layer_(weight: Tensor, bias: Tensor | None, cfg: Mapping, nonlinearity: str = "relu",
                param: float | None = None) -> float:
    """Initialize one layer's weight with the configured initializer and its bias with the
    constant ``cfg.bias`` (default 0). Returns the theoretical weight std."""
    name = cfg["name"]
    fn = get_initializer(name)
    gain = calculate_gain(nonlinearity, param)
    if name == "he_normal":
        fn(weight, gain=gain, mode=cfg.get("mode", "fan_in"))
    elif name == "xavier_uniform":
        fn(weight, gain=gain)
    else:
        fn(weight)
    if bias is not None:
        with torch.no_grad():
            bias.fill_(float(cfg.get("bias", 0.0) or 0.0))
    return theoretical_std(weight, cfg, nonlinearity, param)
