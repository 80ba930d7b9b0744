"""Activation functions: a function plus a Module each, looked up by name.

Every Module subclasses ``Activation`` (an ``nn.Module`` with ``.name``), so the monitor finds the
hidden activations with ``isinstance(m, Activation)``. Sigmoid, tanh and ELU have hand-written
backward passes (the derivative is the lesson: sigma' = sigma (1 - sigma) <= 1/4 is why sigmoid
nets' gradients vanish), and so does ReLU (mask by the output, as fast as torch's); the other
piecewise-linear ones are plain tensor expressions that autograd differentiates.

Config group ``activation``: ``name`` plus ``negative_slope`` (leaky_relu, prelu: the initial
slope), ``alpha`` (elu), ``pieces`` (maxout), ``per_unit`` (prelu: one learned slope per unit
instead of one shared).
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from nnbasics.config import check_bool, check_keys, check_name, check_number, select
from nnbasics.errors import ConfigError

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# ----------------------------------------------------------------------------------------------
# Functions
# ----------------------------------------------------------------------------------------------


class _Sigmoid(torch.autograd.Function):
    """sigma(x) = 1 / (1 + e^-x), computed as 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0
    with e = e^-|x| (never overflows); d sigma / dx = sigma (1 - sigma)."""

    @staticmethod
    def forward(ctx, x):
        e = torch.exp(-x.abs())
        s = torch.where(x >= 0, 1 / (1 + e), e / (1 + e))
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s)


class _Tanh(torch.autograd.Function):
    """tanh(x) = (1 - e^-2x) / (1 + e^-2x), computed with |x| and the sign put back (never
    overflows); d tanh / dx = 1 - tanh^2."""

    @staticmethod
    def forward(ctx, x):
        e = torch.exp(-2 * x.abs())
        t = torch.sign(x) * (1 - e) / (1 + e)
        ctx.save_for_backward(t)
        return t

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        return grad * (1 - t * t)


class _ELU(torch.autograd.Function):
    """elu(x) = x for x > 0, alpha (e^x - 1) otherwise; derivative 1 for x > 0, elu(x) + alpha
    otherwise."""

    @staticmethod
    def forward(ctx, x, alpha: float):
        y = torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0)))
        ctx.save_for_backward(x, y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * torch.where(x > 0, torch.ones_like(y), y + ctx.alpha), None


class _ReLU(torch.autograd.Function):
    """relu(x) = max(0, x); derivative 1 where the output is positive, else 0 (0 at x = 0)."""

    @staticmethod
    def forward(ctx, x):
        y = x.clamp_min(0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (y > 0)


def sigmoid(x: Tensor) -> Tensor:
    """sigma(x) = 1 / (1 + e^-x), in (0, 1); saturates at both ends, output not zero-centred."""
    return _Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    """tanh(x) = 2 sigma(2x) - 1, in (-1, 1); saturates but is zero-centred."""
    return _Tanh.apply(x)


def relu(x: Tensor) -> Tensor:
    """relu(x) = max(0, x) (Nair and Hinton 2010); gradient 1 for x > 0, else 0 (0 at x = 0):
    a unit whose input stays negative gets no gradient and can die."""
    return _ReLU.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """leaky_relu(x) = x for x > 0, a x otherwise (Maas et al. 2013): no dead units."""
    return torch.where(x > 0, x, negative_slope * x)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """prelu(x) = x for x > 0, a x otherwise with a learned (He et al. 2015); ``weight`` holds one
    slope, or one per unit / channel (dimension 1 of x)."""
    a = weight if weight.numel() == 1 else weight.reshape(1, -1, *([1] * (x.dim() - 2)))
    return torch.where(x > 0, x, a * x)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """elu(x) = x for x > 0, alpha (e^x - 1) otherwise (Clevert et al. 2015): smooth, mean
    activations nearer zero, saturates to -alpha."""
    return _ELU.apply(x, float(alpha))


def selu(x: Tensor) -> Tensor:
    """selu(x) = scale * elu(x, alpha) with alpha = 1.6733, scale = 1.0507 (Klambauer et al.
    2017): with LeCun-normal weights, activations converge to zero mean and unit variance."""
    return SELU_SCALE * _ELU.apply(x, SELU_ALPHA)


def maxout(x: Tensor, pieces: int = 2) -> Tensor:
    """maxout(z)_j = max_{i < k} z_{j k + i} (Goodfellow et al. 2013): each output unit is the max
    of k consecutive pre-activations along dimension 1 (units or channels), so a layer of width
    w needs w * k linear units before it. Piecewise linear, never saturates, no dead units;
    costs k times the parameters."""
    c = x.shape[1]
    if c % pieces:
        raise ValueError(f"maxout with {pieces} pieces needs a multiple of {pieces} inputs, got {c}")
    return x.unflatten(1, (c // pieces, pieces)).amax(dim=2)


def identity(x: Tensor) -> Tensor:
    """f(x) = x: without a nonlinearity a deep net collapses to one linear map."""
    return x


# ----------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------


class Activation(nn.Module):
    """Base class of every activation Module; ``name`` is the registry name (``relu``, ...).
    ``pieces`` is how many pre-activations make one output unit (1 except for maxout)."""

    name: str = "activation"
    pieces: int = 1

    def extra_repr(self) -> str:
        return ""


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class Tanh(Activation):
    name = "tanh"

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


class ReLU(Activation):
    name = "relu"

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(Activation):
    """Leaky ReLU whose slope is a parameter, learned with the weights (no weight decay on it:
    regularization penalizes only Linear/conv weights). ``num_parameters`` 1 (shared) or the
    number of units / channels."""

    name = "prelu"

    def __init__(self, num_parameters: int = 1, negative_slope: float = 0.25):
        super().__init__()
        self.weight = nn.Parameter(torch.full((int(num_parameters),), float(negative_slope)))

    @property
    def negative_slope(self) -> float:
        """The mean current slope (what the init gain table uses)."""
        return float(self.weight.detach().mean())

    def forward(self, x: Tensor) -> Tensor:
        return prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.weight.numel()}"


class ELU(Activation):
    name = "elu"

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(Activation):
    name = "selu"

    def forward(self, x: Tensor) -> Tensor:
        return selu(x)


class Maxout(Activation):
    """The max over groups of ``pieces`` consecutive units (see ``maxout``); the layer before it
    must have ``pieces`` times as many outputs (``models.MLP`` and ``layers.Maxout`` do that)."""

    name = "maxout"

    def __init__(self, pieces: int = 2):
        super().__init__()
        self.pieces = int(pieces)

    def forward(self, x: Tensor) -> Tensor:
        return maxout(x, self.pieces)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


class Identity(Activation):
    name = "identity"

    def forward(self, x: Tensor) -> Tensor:
        return identity(x)


class FunctionActivation(Activation):
    """Any elementwise function as an activation Module (``get_activation(torch.nn.functional.gelu)``)."""

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str | None = None):
        super().__init__()
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


ACTIVATIONS: dict[str, type[Activation]] = {
    "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU, "prelu": PReLU,
    "elu": ELU, "selu": SELU, "maxout": Maxout, "identity": Identity,
}
FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu, "prelu": prelu,
    "elu": elu, "selu": selu, "maxout": maxout, "identity": identity,
}


def _name(cfg) -> str:
    return cfg if isinstance(cfg, str) else cfg["name"]


def _opt(cfg, key: str, default):
    if isinstance(cfg, str):
        return default
    value = cfg.get(key, default)
    return default if value is None else value


def get_activation(cfg: Mapping | str | Activation | type | Callable, num_features: int | None = None) -> Activation:
    """A fresh activation Module from a config node ``{name: leaky_relu, negative_slope: 0.1}``
    or a name; an ``Activation`` instance is returned as it is, a class is instantiated and any
    other callable is wrapped (``FunctionActivation``).
    ``num_features`` (units or channels) sizes a per-unit PReLU. An unknown name lists the
    valid ones."""
    if isinstance(cfg, Activation):
        return cfg
    if isinstance(cfg, type) and issubclass(cfg, Activation):
        return cfg()
    if callable(cfg) and not isinstance(cfg, (str, Mapping)):
        return FunctionActivation(cfg)
    name = _name(cfg)
    if name not in ACTIVATIONS:
        raise ConfigError("activation.name", name, f"choose one of: {', '.join(sorted(ACTIVATIONS))}")
    if name == "leaky_relu":
        return LeakyReLU(float(_opt(cfg, "negative_slope", 0.01)))
    if name == "prelu":
        n = num_features if (num_features and bool(_opt(cfg, "per_unit", False))) else 1
        return PReLU(n, float(_opt(cfg, "negative_slope", 0.25)))
    if name == "elu":
        return ELU(float(_opt(cfg, "alpha", 1.0)))
    if name == "maxout":
        return Maxout(int(_opt(cfg, "pieces", 2)))
    return ACTIVATIONS[name]()


def pieces_of(cfg: Mapping | str | Activation) -> int:
    """How many pre-activations make one unit of output (maxout: ``pieces``; else 1)."""
    if isinstance(cfg, Activation):
        return cfg.pieces
    return int(_opt(cfg, "pieces", 2)) if _name(cfg) == "maxout" else 1


def gain_name(cfg: Mapping | str | Activation) -> tuple[str, float | None]:
    """The nonlinearity name and parameter the initializer gain table (``init.calculate_gain``)
    knows this activation by: leaky_relu and prelu carry their (initial) negative slope."""
    if isinstance(cfg, Activation):
        name = cfg.name
        slope = getattr(cfg, "negative_slope", None)
        return ("leaky_relu", slope) if name in ("leaky_relu", "prelu") else (name, None)
    name = _name(cfg)
    if name == "leaky_relu":
        return "leaky_relu", float(_opt(cfg, "negative_slope", 0.01))
    if name == "prelu":
        return "leaky_relu", float(_opt(cfg, "negative_slope", 0.25))
    return name, None


# Each activation's own config keys (besides name).
ACTIVATION_KEYS: dict[str, tuple[str, ...]] = {
    "leaky_relu": ("negative_slope",), "prelu": ("negative_slope", "per_unit"), "elu": ("alpha",),
    "maxout": ("pieces",),
}


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``activation`` group; raise ConfigError on a bad one."""
    name = check_name(cfg, "activation.name", ACTIVATIONS)
    check_keys(select(cfg, "activation"), "activation", {"name", *ACTIVATION_KEYS.get(name, ())})
    if name in ("leaky_relu", "prelu"):
        check_number(cfg, "activation.negative_slope", low=0, high=1, high_open=True, optional=True)
    if name == "elu":
        check_number(cfg, "activation.alpha", low=0, low_open=True, optional=True)
    if name == "maxout":
        check_number(cfg, "activation.pieces", low=2, integer=True, optional=True)
    if name == "prelu":
        check_bool(cfg, "activation.per_unit", optional=True)
    return []
