"""Weight initializers, written out (not delegated to torch.nn.init).

Every initializer is an in-place function ``name_(tensor, ..., generator=None)`` whose
docstring carries its formula and source; it draws from the tensor's own RNG primitives
(``Tensor.uniform_`` / ``Tensor.normal_``), so with the same seed it draws the same numbers as its
``torch.nn.init`` twin where one exists. The weight of a layer is ``[out, in, *kernel]``: one row
per unit, holding that unit's incoming weights.

``init_layer_(weight, bias, cfg, nonlinearity, param)`` applies the configured initializer (the
``init`` config group) to one layer and returns the theoretical std of its weights, which the
layer keeps as ``init_std`` for the init audit.

Gain: the variance-scaling initializers (He, Glorot, orthogonal, sparse) multiply their std by a
gain. ``init.gain: auto`` takes it from the activation that follows the layer
(``calculate_gain``); a number fixes it. He and orthogonal default to ``auto``; Glorot/Xavier
defaults to 1 (the 2010 paper, and torch's default), so "Xavier vs He" compares the two rules
as published.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import Tensor

from nnbasics.config import check_keys, check_name, check_number, select
from nnbasics.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# Fans and gains: one of each, shared by every initializer
# ----------------------------------------------------------------------------------------------


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """fan_in = inputs per unit, fan_out = outputs per input; for conv kernels both are
    multiplied by the receptive field size (torch's convention: weight is [out, in, *kernel])."""
    if tensor.dim() < 2:
        raise ValueError("fan in and fan out need a tensor with at least 2 dimensions")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


# nonlinearity -> gain g such that Var[f(z)] * g^2 ~ Var[z] keeps the signal's scale through a
# layer (He et al. 2015; torch's table). relu: half the units are zero, E[relu(z)^2] = Var[z]/2.
GAINS: dict[str, float] = {
    "identity": 1.0, "linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "sigmoid": 1.0,
    "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75,
    # ELU has no closed form; Clevert et al. 2015 trained ELU nets with He init.
    "elu": math.sqrt(2.0),
    # max of two i.i.d. zero-mean Gaussians has E[max^2] = Var: gain 1 for maxout.
    "maxout": 1.0,
}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain that keeps activation variance constant through a layer with this nonlinearity:
    linear/identity/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu / prelu sqrt(2 / (1 + a^2)) with
    a the negative slope (default 0.01), selu 3/4, elu sqrt(2), maxout 1."""
    if nonlinearity in ("leaky_relu", "prelu"):
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in GAINS:
        raise ValueError(f"no gain for nonlinearity {nonlinearity!r}; known: "
                         f"{', '.join(sorted(list(GAINS) + ['leaky_relu', 'prelu']))}")
    return GAINS[nonlinearity]


def _fan(tensor: Tensor, mode: str) -> int:
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be fan_in or fan_out, not {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


# ----------------------------------------------------------------------------------------------
# The initializers
# ----------------------------------------------------------------------------------------------


def zeros_(tensor: Tensor, generator=None) -> Tensor:
    """W = 0. Breaks no symmetry: every unit of a layer computes the same thing and gets the same
    gradient, so the units stay identical forever."""
    with torch.no_grad():
        return tensor.fill_(0.0)


def ones_(tensor: Tensor, generator=None) -> Tensor:
    """W = 1. Breaks no symmetry (see ``zeros_``) and blows up the signal by fan_in per layer."""
    with torch.no_grad():
        return tensor.fill_(1.0)


def constant_(tensor: Tensor, value: float, generator=None) -> Tensor:
    """W = c for every entry. Breaks no symmetry (see ``zeros_``)."""
    with torch.no_grad():
        return tensor.fill_(float(value))


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """W ~ U(a, b): mean (a + b) / 2, std (b - a) / sqrt(12)."""
    with torch.no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    """W ~ N(mean, std^2)."""
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def small_random_(tensor: Tensor, std: float = 0.01, generator=None) -> Tensor:
    """W = 0.01 * N(0, 1) (cs231n "small random numbers"): breaks symmetry, but in a deep net the
    signal shrinks by about std * sqrt(fan_in) per layer and the gradients vanish."""
    return normal_(tensor, 0.0, std, generator=generator)


def calibrated_(tensor: Tensor, generator=None) -> Tensor:
    """W = N(0, 1) / sqrt(fan_in) (cs231n "calibrating the variances with 1/sqrt(n)"): the output
    of a linear unit has the variance of its inputs. The same distribution as LeCun normal."""
    fan_in, _ = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, 1.0 / math.sqrt(fan_in), generator=generator)


def lecun_uniform_(tensor: Tensor, generator=None) -> Tensor:
    """LeCun et al. 1998 (Efficient BackProp): W ~ U(-a, a), a = sqrt(3 / fan_in), so
    Var[W] = 1 / fan_in."""
    fan_in, _ = fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0 / fan_in)
    return uniform_(tensor, -a, a, generator=generator)


def lecun_normal_(tensor: Tensor, generator=None) -> Tensor:
    """LeCun et al. 1998: W ~ N(0, 1 / fan_in) (untruncated); with SELU this keeps activations
    at zero mean and unit variance (Klambauer et al. 2017)."""
    fan_in, _ = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, 1.0 / math.sqrt(fan_in), generator=generator)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot and Bengio 2010: W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)), so
    Var[W] = gain^2 * 2 / (fan_in + fan_out) (the average of the forward and backward conditions)."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator=generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Glorot and Bengio 2010: W ~ N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


def he_uniform_(tensor: Tensor, gain: float = math.sqrt(2.0), mode: str = "fan_in", generator=None) -> Tensor:
    """He et al. 2015: W ~ U(-a, a), a = gain * sqrt(3 / fan), fan = fan_in (keeps the forward
    signal) or fan_out (keeps the backward signal); gain sqrt(2) for ReLU,
    sqrt(2 / (1 + slope^2)) for leaky ReLU / PReLU."""
    a = gain * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -a, a, generator=generator)


def he_normal_(tensor: Tensor, gain: float = math.sqrt(2.0), mode: str = "fan_in", generator=None) -> Tensor:
    """He et al. 2015: W ~ N(0, std^2), std = gain / sqrt(fan), fan = fan_in or fan_out."""
    return normal_(tensor, 0.0, gain / math.sqrt(_fan(tensor, mode)), generator=generator)


def sparse_(tensor: Tensor, k: int = 15, std: float | None = None, gain: float = 1.0, generator=None) -> Tensor:
    """Martens 2010 (sparse initialization): each unit gets exactly k nonzero incoming weights,
    drawn N(0, std^2) at k input positions chosen uniformly without replacement; the rest are 0.
    ``std=None`` uses gain / sqrt(k), which keeps the pre-activation variance as He/LeCun do with
    fan_in = k (Martens used std 1). k is capped at fan_in."""
    fan_in, _ = fan_in_and_fan_out(tensor)
    k = min(int(k), fan_in)
    std = gain / math.sqrt(k) if std is None else float(std)
    rows = tensor.shape[0]
    with torch.no_grad():
        flat = tensor.view(rows, fan_in) if tensor.is_contiguous() else tensor.reshape(rows, fan_in)
        flat.zero_()
        # k distinct positions per row: the first k of a random permutation of each row's inputs
        keys = torch.rand(rows, fan_in, generator=generator, device=tensor.device)
        idx = keys.argsort(dim=1)[:, :k]
        values = torch.empty(rows, k, dtype=tensor.dtype, device=tensor.device).normal_(0.0, std, generator=generator)
        flat.scatter_(1, idx, values)
        if flat.data_ptr() != tensor.data_ptr():
            tensor.copy_(flat.view_as(tensor))
    return tensor


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """Saxe et al. 2013: W = gain * Q, Q the orthogonal factor of the QR decomposition of an
    N(0, 1) matrix (rows x fan_in), its column signs fixed by sign(diag R) so Q is uniform over
    the orthogonal group (Mezzadri 2007). A wide W has orthonormal rows, a tall one orthonormal
    columns: every singular value is gain, so the layer preserves norms exactly."""
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    with torch.no_grad():
        a = tensor.new_empty((rows, cols)).normal_(0.0, 1.0, generator=generator)
        if rows < cols:
            a = a.t()
        q, r = torch.linalg.qr(a)
        q = q * torch.diagonal(r).sign()
        if rows < cols:
            q = q.t()
        tensor.view_as(q).copy_(q).mul_(gain)
    return tensor


def torch_default_(tensor: Tensor, generator=None) -> Tensor:
    """PyTorch's ``nn.Linear`` / ``nn.Conv`` default (kaiming_uniform with a = sqrt(5)):
    W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), so std = 1 / sqrt(3 fan_in), a third of LeCun's
    variance. Its bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) too (``bias: torch``)."""
    fan_in, _ = fan_in_and_fan_out(tensor)
    a = 1.0 / math.sqrt(fan_in)
    return uniform_(tensor, -a, a, generator=generator)


INITIALIZERS: dict[str, Callable[..., Tensor]] = {
    "zeros": zeros_, "ones": ones_, "constant": constant_, "uniform": uniform_, "normal": normal_,
    "small_random": small_random_, "calibrated": calibrated_,
    "lecun_uniform": lecun_uniform_, "lecun_normal": lecun_normal_,
    "xavier_uniform": xavier_uniform_, "xavier_normal": xavier_normal_,
    "he_uniform": he_uniform_, "he_normal": he_normal_,
    "sparse": sparse_, "orthogonal": orthogonal_, "torch_default": torch_default_,
}

# Which initializers take a gain, and its default when ``init.gain`` is not given.
GAIN_DEFAULT = {"he_uniform": "auto", "he_normal": "auto", "orthogonal": "auto", "sparse": "auto",
                "xavier_uniform": 1.0, "xavier_normal": 1.0}


def get_initializer(name: str | Callable) -> Callable:
    """Look an initializer up by name (a callable is returned as it is); an unknown name lists
    the valid ones."""
    if callable(name):
        return name
    if name not in INITIALIZERS:
        raise ConfigError("init.name", name, f"choose one of: {', '.join(sorted(INITIALIZERS))}")
    return INITIALIZERS[name]


# ----------------------------------------------------------------------------------------------
# From the config node to one layer
# ----------------------------------------------------------------------------------------------


def _resolve_gain(cfg: Mapping, nonlinearity: str, param: float | None) -> float:
    gain = cfg.get("gain", GAIN_DEFAULT.get(cfg["name"], 1.0))
    if gain is None or gain == "auto":
        return calculate_gain(nonlinearity, param)
    return float(gain)


def _kwargs(weight: Tensor, cfg: Mapping, gain: float) -> dict:
    """The arguments of the configured initializer, taken from the config node."""
    name = cfg["name"]
    if name == "constant":
        return {"value": float(cfg.get("value", 0.0))}
    if name == "uniform":
        return {"a": float(cfg.get("a", -0.05)), "b": float(cfg.get("b", 0.05))}
    if name == "normal":
        return {"mean": float(cfg.get("mean", 0.0)), "std": float(cfg.get("std", 0.01))}
    if name == "small_random":
        return {"std": float(cfg.get("std", 0.01))}
    if name in ("he_uniform", "he_normal"):
        return {"gain": gain, "mode": cfg.get("mode", "fan_in") or "fan_in"}
    if name in ("xavier_uniform", "xavier_normal", "orthogonal"):
        return {"gain": gain}
    if name == "sparse":
        std = cfg.get("std")
        return {"k": int(cfg.get("k", 15)), "std": None if std is None else float(std), "gain": gain}
    return {}


def theoretical_std(weight: Tensor, cfg: Mapping, nonlinearity: str = "relu", param: float | None = None) -> float:
    """The std over the entries of ``weight`` that the configured initializer gives in
    expectation (0 for constants; nan for an unknown initializer)."""
    fan_in, fan_out = fan_in_and_fan_out(weight)
    name = cfg["name"]
    kw = _kwargs(weight, cfg, _resolve_gain(cfg, nonlinearity, param)) if name in INITIALIZERS else {}
    if name in ("zeros", "ones", "constant"):
        return 0.0
    if name == "uniform":
        return (kw["b"] - kw["a"]) / math.sqrt(12.0)
    if name in ("normal", "small_random"):
        return kw["std"]
    if name in ("calibrated", "lecun_uniform", "lecun_normal"):
        return 1.0 / math.sqrt(fan_in)
    if name in ("xavier_uniform", "xavier_normal"):
        return kw["gain"] * math.sqrt(2.0 / (fan_in + fan_out))
    if name in ("he_uniform", "he_normal"):
        return kw["gain"] / math.sqrt(fan_in if kw["mode"] == "fan_in" else fan_out)
    if name == "sparse":
        k = min(kw["k"], fan_in)
        std = kw["gain"] / math.sqrt(k) if kw["std"] is None else kw["std"]
        return std * math.sqrt(k / fan_in)  # k of fan_in entries per row are nonzero
    if name == "orthogonal":
        # orthonormal rows (wide) or columns (tall): mean square entry 1 / max(rows, cols)
        return kw["gain"] / math.sqrt(max(weight.shape[0], weight.numel() // weight.shape[0]))
    if name == "torch_default":
        return 1.0 / math.sqrt(3.0 * fan_in)
    return float("nan")


def init_bias_(bias: Tensor, weight: Tensor, value, generator=None) -> Tensor:
    """b = value (0, or a small positive constant such as 0.01 so ReLUs start active);
    ``value="torch"``: PyTorch's default, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    if value == "torch":
        fan_in, _ = fan_in_and_fan_out(weight)
        a = 1.0 / math.sqrt(fan_in)
        return uniform_(bias, -a, a, generator=generator)
    return constant_(bias, float(value or 0.0))


def init_layer_(weight: Tensor, bias: Tensor | None, cfg: Mapping, nonlinearity: str = "relu",
                param: float | None = None, generator=None) -> float:
    """Initialize one layer: ``weight`` with the configured initializer (its gain from the
    nonlinearity that follows the layer, unless ``cfg.gain`` fixes it) and ``bias`` with
    ``cfg.bias``. Returns the theoretical std of the weight."""
    name = cfg["name"]
    fn = get_initializer(name)
    gain = _resolve_gain(cfg, nonlinearity, param)
    fn(weight, **_kwargs(weight, cfg, gain), generator=generator)
    if bias is not None:
        init_bias_(bias, weight, cfg.get("bias", 0.0), generator=generator)
    return theoretical_std(weight, cfg, nonlinearity, param)


# ----------------------------------------------------------------------------------------------
# Config checks
# ----------------------------------------------------------------------------------------------

# Each initializer's own config keys (besides name and bias, which every one takes).
INIT_KEYS: dict[str, tuple[str, ...]] = {
    "zeros": (), "ones": (), "constant": ("value",), "uniform": ("a", "b"), "normal": ("mean", "std"),
    "small_random": ("std",), "calibrated": (), "lecun_uniform": (), "lecun_normal": (),
    "xavier_uniform": ("gain",), "xavier_normal": ("gain",), "he_uniform": ("mode", "gain"),
    "he_normal": ("mode", "gain"), "sparse": ("k", "std", "gain"), "orthogonal": ("gain",), "torch_default": (),
}
MODES = ("fan_in", "fan_out")


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``init`` group; raise ConfigError on a bad one. Returns warnings."""
    notes: list[str] = []
    name = check_name(cfg, "init.name", INITIALIZERS)
    check_keys(select(cfg, "init"), "init", {"name", "bias", *INIT_KEYS.get(name, ())})
    if select(cfg, "init.mode") is not None:
        check_name(cfg, "init.mode", MODES)
    gain = select(cfg, "init.gain")
    if gain is not None and gain != "auto":
        if isinstance(gain, str):
            raise ConfigError("init.gain", gain, "must be a number > 0 or 'auto' (the gain of the activation)")
        check_number(cfg, "init.gain", low=0, low_open=True)
    bias = select(cfg, "init.bias")
    if bias is not None and bias != "torch":
        if isinstance(bias, str):
            raise ConfigError("init.bias", bias, "must be a number (e.g. 0 or 0.01) or 'torch' (PyTorch's default)")
        check_number(cfg, "init.bias")
    if name in ("normal", "small_random"):
        check_number(cfg, "init.std", low=0, optional=True)
        check_number(cfg, "init.mean", optional=True)
    if name == "sparse":
        check_number(cfg, "init.k", low=1, integer=True, optional=True)
        check_number(cfg, "init.std", low=0, low_open=True, optional=True)
    if name == "constant":
        check_number(cfg, "init.value", optional=True)
    if name == "uniform":
        a = check_number(cfg, "init.a", optional=True)
        b = check_number(cfg, "init.b", optional=True)
        if a is not None and b is not None and not a < b:
            raise ConfigError("init.b", b, f"must be greater than init.a={a}")
    if name in ("zeros", "ones", "constant"):
        notes.append(f"init={name}: every unit of a layer starts identical and stays so (no symmetry breaking)")
    return notes
