"""Models: the MLP (depth 0 = the linear model / perceptron), a small CNN for images, the
pytorch/examples MNIST CNN, and the run-start reports (parameter summary, init audit).
``build_model(cfg, in_shape, out_features)`` builds the configured one.

Every weight layer is a ``layers.Linear`` / ``layers.Conv2d`` (``nn.Linear`` / ``nn.Conv2d``
subclasses) that initializes itself with the configured initializer and keeps its theoretical
std as ``init_std``. The last layer outputs raw scores (logits); the loss applies the output
nonlinearity the task needs (see ``losses.py``), and its initializer gain is that of a linear unit.

MLP widths: ``model.widths`` (a list, one width per hidden layer: LeNet-300-100 is
``[300, 100]``) when set, else ``model.depth`` layers of ``model.width`` (``hidden_widths``); with
widths set, ``model.depth`` must equal its length (the validator refuses a mismatch, so the
recorded depth is always the model's).

Dropout rule: the hidden-layer and input dropout probabilities are ``regularization.dropout_p``
and ``regularization.input_dropout_p`` when those are set (the ``dropout`` regularization
options set them), else ``model.dropout.p`` and ``model.dropout.input_p``; the variant is always
``model.dropout.variant`` (``dropout_settings``). For the MLP, ``model.dropout.p`` may be one
rate per hidden layer (a list); ``regularization.dropout_p`` is one rate for every layer.
Input noise is ``regularization.input_noise``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from nnbasics.config import check_keys, check_name, check_number, select
from nnbasics.data.datasets import IMAGE_SIZES
from nnbasics.nn.activations import gain_name, get_activation, pieces_of
from nnbasics.nn.norms import NORMS, SPATIAL_NORMS, make_norm
from nnbasics.nn.linear import Conv2d, Linear
from nnbasics.nn.dropout import DropConnect, make_dropout
from nnbasics.nn.noise import InputNoise

DROPOUT_VARIANTS = ("inverted", "vanilla", "dropconnect")
POOLS = ("max", "avg", "none")


def _dropout_args(dropout: Mapping | float | None, depth: int) -> tuple[str, list[float], float]:
    """(variant, p of each hidden layer, input p) from a ``{variant, p, input_p}`` node or a p;
    ``p`` may be one number or one per hidden layer."""
    if dropout is None:
        return "inverted", [0.0] * depth, 0.0
    if isinstance(dropout, (int, float)):
        return "inverted", [float(dropout)] * depth, 0.0
    variant = str(dropout.get("variant", "inverted") or "inverted")
    p = dropout.get("p")
    p = 0.0 if p is None else p
    ps = [float(v) for v in p] if isinstance(p, Sequence) and not isinstance(p, str) else [float(p)] * depth
    if len(ps) != depth:
        raise ValueError(f"dropout p has {len(ps)} values for {depth} hidden layers")
    if variant not in DROPOUT_VARIANTS:
        raise ValueError(f"dropout variant must be one of {', '.join(DROPOUT_VARIANTS)}, not {variant!r}")
    return variant, ps, float(dropout.get("input_p", 0.0) or 0.0)


def _linear(in_f: int, out_f: int, p_in: float, variant: str, **kw) -> Linear:
    """A Linear layer; a DropConnect one when the variant is dropconnect and p_in > 0 (the
    probability that would otherwise drop this layer's inputs drops its weights)."""
    if variant == "dropconnect" and p_in > 0:
        return DropConnect(in_f, out_f, p=p_in, **kw)
    return Linear(in_f, out_f, **kw)


def _input_layers(input_noise: float, input_p: float, variant: str) -> list[nn.Module]:
    """Input noise then input dropout (inverted when the hidden variant is dropconnect)."""
    layers: list[nn.Module] = []
    if input_noise > 0:
        layers.append(InputNoise(input_noise))
    drop = make_dropout("inverted" if variant == "dropconnect" else variant, input_p)
    if drop is not None:
        layers.append(drop)
    return layers


class MLP(nn.Module):
    """input -> [input noise] -> [input dropout] -> depth x [Linear(width) -> norm -> activation ->
    dropout] -> Linear(out_features). depth 0 is the linear model (perceptron / linear classifier:
    with hinge loss a linear SVM, with cross-entropy softmax regression). ``widths`` (one width per
    hidden layer, e.g. ``[300, 100]`` for LeNet-300-100) replaces width x depth; ``depth``, when
    not 0, must then equal its length. The dropout ``p`` may be one rate or one per hidden layer.
    With maxout each hidden Linear has width * pieces outputs. Layers that do nothing (p = 0, norm
    none, no noise) are left out, so the plain MLP is Flatten, Linear/activation pairs and the
    output Linear."""

    def __init__(self, in_features: int, out_features: int, width: int = 0, depth: int = 0,
                 activation: Mapping | str = "relu", init: Mapping | None = None,
                 dropout: Mapping | float | None = None, norm: str = "none", groups: int = 8, norm_eps: float = 1e-5,
                 input_noise: float = 0.0, widths: Sequence[int] | None = None):
        super().__init__()
        if widths is not None:
            widths = [int(w) for w in widths]
            if depth not in (0, len(widths)):
                raise ValueError(f"widths {widths} give {len(widths)} hidden layers, not depth={depth}")
            depth = len(widths)
        else:
            widths = [int(width)] * depth
        if norm in SPATIAL_NORMS and depth > 0:
            raise ValueError(f"norm={norm!r} normalizes each channel over its pixels; an MLP's hidden layers have "
                             f"no spatial dimensions (one value per unit and sample): use batch, layer or group")
        init = init if init is not None else {"name": "he_normal"}
        variant, ps, input_p = _dropout_args(dropout, depth)
        nonlinearity, param = gain_name(activation)
        k = pieces_of(activation)
        self.flatten = nn.Flatten()
        layers = _input_layers(input_noise, input_p, variant)
        fan_in, p_in = in_features, 0.0
        for i, width in enumerate(widths):
            layers.append(_linear(fan_in, width * k, p_in, variant, init=init, nonlinearity=nonlinearity, param=param))
            norm_layer = make_norm(norm, width * k, groups, norm_eps)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(get_activation(activation, num_features=width))
            drop = make_dropout(variant, ps[i]) if variant != "dropconnect" else None
            if drop is not None:
                layers.append(drop)
            fan_in, p_in = width, ps[i]
        layers.append(_linear(fan_in, out_features, p_in, variant, init=init, nonlinearity="linear"))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.flatten(x))


class CNN(nn.Module):
    """A small configurable CNN for images (C x H x W):
    depth x [Conv(k x k, 'same' padding) -> norm -> activation -> 2x2 pool], the channel count
    starting at ``width`` and doubling every block; then flatten -> [Linear(hidden) -> activation
    -> dropout] -> Linear(out_features). Dropout applies to the fully connected part (input
    dropout to the pixels); ``norm: layer`` normalizes each sample over channels and pixels."""

    def __init__(self, in_shape: Sequence[int], out_features: int, width: int = 32, depth: int = 2,
                 kernel_size: int = 3, pool: str = "max", hidden: int = 128,
                 activation: Mapping | str = "relu", init: Mapping | None = None,
                 dropout: Mapping | float | None = None, norm: str = "none", groups: int = 8, norm_eps: float = 1e-5,
                 input_noise: float = 0.0):
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"the CNN needs image input (C, H, W), got shape {tuple(in_shape)}")
        init = init if init is not None else {"name": "he_normal"}
        variant, ps, input_p = _dropout_args(dropout, 1)
        p = ps[0] if hidden > 0 else 0.0
        nonlinearity, param = gain_name(activation)
        k = pieces_of(activation)
        c, h, w = (int(s) for s in in_shape)
        layers = _input_layers(input_noise, input_p, variant)
        for i in range(depth):
            out_c = width * 2**i
            layers.append(Conv2d(c, out_c * k, kernel_size, padding=kernel_size // 2, init=init,
                                 nonlinearity=nonlinearity, param=param))
            norm_layer = make_norm(norm, out_c * k, groups, norm_eps)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(get_activation(activation, num_features=out_c))
            if pool != "none":
                layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = out_c
        if h < 1 or w < 1:
            raise ValueError(f"{depth} pooled blocks shrink a {in_shape[1]}x{in_shape[2]} image to nothing")
        layers.append(nn.Flatten())
        fan_in = c * h * w
        if hidden > 0:
            layers.append(_linear(fan_in, hidden * k, p, variant, init=init, nonlinearity=nonlinearity, param=param))
            layers.append(get_activation(activation, num_features=hidden))
            drop = make_dropout(variant, p) if variant != "dropconnect" else None
            if drop is not None:
                layers.append(drop)
            fan_in = hidden
        layers.append(_linear(fan_in, out_features, p, variant, init=init, nonlinearity="linear"))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ExamplesCNN(nn.Module):
    """The CNN of pytorch/examples ``mnist/main.py`` (class ``Net``), for C x H x W images:

        conv 3x3 C->32 (valid) - act - conv 3x3 32->64 (valid) - act - max-pool 2 - dropout 0.25
        - flatten - fc 64 * ((H-4)//2) * ((W-4)//2) -> 128 - act - dropout 0.5 - fc 128 -> out

    On MNIST (1 x 28 x 28) the fc input is 64 * 12 * 12 = 9216 and the model has 1,199,882
    parameters (320 + 18,496 + 1,179,776 + 1,290); other image sizes get their own fc input
    (CIFAR-10, 3 x 32 x 32: 64 * 14 * 14 = 12,544). The source uses ReLU, PyTorch's default init
    (``init=torch_default``) and element-wise (inverted) ``nn.Dropout``; here the activation,
    the initializer, ``conv_dropout`` (after the pooling) and ``dropout`` (``{variant, p,
    input_p}``, p after the fc hidden layer) are configurable. ``norm`` (default none, as the
    source) goes after each convolution. The last layer gives logits: the source's log-softmax +
    NLL is ``loss=cross_entropy``."""

    def __init__(self, in_shape: Sequence[int], out_features: int, conv_dropout: float = 0.25,
                 activation: Mapping | str = "relu", init: Mapping | None = None,
                 dropout: Mapping | float | None = 0.5, norm: str = "none", groups: int = 8, norm_eps: float = 1e-5,
                 input_noise: float = 0.0, channels: tuple[int, int] = (32, 64), hidden: int = 128):
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"the examples CNN needs image input (C, H, W), got shape {tuple(in_shape)}")
        c, h, w = (int(s) for s in in_shape)
        h, w = (h - 4) // 2, (w - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"two valid 3x3 convolutions and a 2x2 pool need an image of at least 6x6, "
                             f"got {in_shape[1]}x{in_shape[2]}")
        init = init if init is not None else {"name": "torch_default", "bias": "torch"}
        variant, ps, input_p = _dropout_args(dropout, 1)
        nonlinearity, param = gain_name(activation)
        k = pieces_of(activation)
        layers = _input_layers(input_noise, input_p, variant)
        for out_c in channels:
            layers.append(Conv2d(c, out_c * k, 3, init=init, nonlinearity=nonlinearity, param=param))
            norm_layer = make_norm(norm, out_c * k, groups, norm_eps)
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(get_activation(activation, num_features=out_c))
            c = out_c
        layers.append(nn.MaxPool2d(2))
        drop = make_dropout("inverted" if variant == "dropconnect" else variant, conv_dropout)
        if drop is not None:
            layers.append(drop)
        layers.append(nn.Flatten())
        layers.append(Linear(c * h * w, hidden * k, init=init, nonlinearity=nonlinearity, param=param))
        layers.append(get_activation(activation, num_features=hidden))
        drop = make_dropout(variant, ps[0]) if variant != "dropconnect" else None
        if drop is not None:
            layers.append(drop)
        layers.append(_linear(hidden, out_features, ps[0], variant, init=init, nonlinearity="linear"))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "linear": MLP, "cnn": CNN, "examples_cnn": ExamplesCNN}
IMAGE_MODELS = ("cnn", "examples_cnn")  # need C x H x W input (image data, no flattening preprocessor)


def _first(cfg: Mapping, *keys: str, default: Any) -> Any:
    """The value of the first of ``keys`` that is set (neither absent nor null), else ``default``."""
    for key in keys:
        value = select(cfg, key)
        if value is not None:
            return value
    return default


def hidden_widths(model_cfg: Mapping) -> list[int]:
    """The MLP's hidden-layer widths from its ``model`` node: ``widths`` when set, else ``depth``
    copies of ``width`` (the linear model: none)."""
    if model_cfg.get("name") == "linear":
        return []
    widths = model_cfg.get("widths")
    if widths is not None:
        return [int(w) for w in widths]
    return [int(model_cfg["width"])] * int(model_cfg["depth"])


def dropout_settings(cfg: Mapping) -> dict[str, Any]:
    """The dropout the model gets: ``{variant, p, input_p}``; p and input_p from
    ``regularization.dropout_p`` / ``input_dropout_p`` when set, else from ``model.dropout``
    (p: a float, or a list with one rate per hidden layer)."""
    p = _first(cfg, "regularization.dropout_p", "model.dropout.p", default=0.0)
    p = [float(v) for v in p] if isinstance(p, Sequence) and not isinstance(p, str) else p
    return {"variant": str(_first(cfg, "model.dropout.variant", default="inverted")),
            "p": p,
            "input_p": float(_first(cfg, "regularization.input_dropout_p", "model.dropout.input_p", default=0.0))}


def build_model(cfg: Mapping, in_shape: tuple[int, ...], out_features: int) -> nn.Module:
    """The model of ``cfg.model`` with ``cfg.activation``, ``cfg.init`` and the model-side parts of
    ``cfg.regularization`` (dropout probabilities, input noise)."""
    m = cfg["model"]
    name = m["name"]
    common = dict(activation=cfg["activation"], init=cfg["init"], dropout=dropout_settings(cfg),
                  norm=str(m.get("norm", "none") or "none"), groups=int(m.get("groups", 8) or 8),
                  norm_eps=float(m.get("norm_eps") or 1e-5),  # 0 and below are refused by validate_config
                  input_noise=float(_first(cfg, "regularization.input_noise", default=0.0)))
    if name in ("mlp", "linear"):
        return MLP(math.prod(in_shape), out_features, widths=hidden_widths(m), **common)
    if name == "cnn":
        return CNN(in_shape, out_features, width=int(m.get("width", 32)), depth=int(m.get("depth", 2)),
                   kernel_size=int(m.get("kernel_size", 3)), pool=str(m.get("pool", "max")),
                   hidden=int(m.get("hidden", 128)), **common)
    if name == "examples_cnn":
        return ExamplesCNN(in_shape, out_features, conv_dropout=float(m.get("conv_dropout", 0.25)), **common)
    from nnbasics.errors import ConfigError

    raise ConfigError("model.name", name, f"choose one of: {', '.join(sorted(MODELS))}")


# ----------------------------------------------------------------------------------------------
# Reports printed at the start of a run
# ----------------------------------------------------------------------------------------------


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (weights and biases; norm and PReLU parameters included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _weight_layers(model: nn.Module):
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and getattr(m, "weight", None) is not None]


def init_audit(model: nn.Module) -> list[dict]:
    """Per weight layer: ``layer`` (its name in the model), ``initializer``, ``theoretical_std``
    (what the initializer's formula gives; nan when undefined), ``measured_std`` (the std of the
    weights now: call it right after building) and ``shape``."""
    rows = []
    for name, m in _weight_layers(model):
        w = m.weight.detach()
        rows.append({"layer": name, "initializer": getattr(m, "initializer", "unknown"),
                     "theoretical_std": float(getattr(m, "init_std", float("nan"))),
                     "measured_std": float(w.float().std()) if w.numel() > 1 else 0.0,
                     "shape": list(w.shape)})
    return rows


def format_init_audit(rows: list[dict]) -> str:
    """The init audit as an aligned text table (for the log and TensorBoard text)."""
    lines = [f"{'layer':<12} {'initializer':<15} {'shape':<16} {'theoretical std':>15} {'measured std':>13}"]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        lines.append(f"{r['layer']:<12} {r['initializer']:<15} {shape:<16} {r['theoretical_std']:>15.4g} "
                     f"{r['measured_std']:>13.4g}")
    return "\n".join(lines)


def start_texts(model: nn.Module) -> dict[str, str]:
    """The start-of-run reports (TensorBoard TEXT tag -> text): the model summary and the init
    audit, taken right after the model is built."""
    return {"model/summary": summary(model), "model/init_audit": format_init_audit(init_audit(model))}


def summary(model: nn.Module, in_shape: Sequence[int] | None = None) -> str:
    """Per layer (leaf modules in order): its name, type, output shape (when ``in_shape`` is
    given: one forward pass of a zero sample, in eval mode), parameter shapes and parameter
    count; then the total. The cs231n examples: [3, 4, 2] has 26 parameters, [3, 4, 4, 1] 41."""
    leaves = [(n, m) for n, m in model.named_modules()
              if n and (isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or not list(m.children()))]
    shapes: dict[str, tuple] = {}
    if in_shape is not None:
        hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:])))
                 for n, m in leaves]
        was = model.training
        model.eval()
        try:
            p = next(model.parameters(), None)
            with torch.no_grad():
                model(torch.zeros(1, *in_shape, device=p.device if p is not None else None,
                                  dtype=p.dtype if p is not None else None))
        finally:
            model.train(was)
            for h in hooks:
                h.remove()
    rows = [("layer", "type", "output", "parameters", "count")]
    for n, m in leaves:
        params = [f"{'x'.join(map(str, p.shape))}" for p in m.parameters(recurse=False)]
        count = sum(p.numel() for p in m.parameters(recurse=False))
        out = "x".join(map(str, shapes[n])) if n in shapes else ""
        rows.append((n, type(m).__name__, out, " + ".join(params), str(count)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    total = sum(p.numel() for p in model.parameters())
    lines.append(f"total parameters: {total:,} (trainable {count_parameters(model):,})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Config checks (the rules that join groups, e.g. a CNN needs image data, live in engine/validate.py)
# ----------------------------------------------------------------------------------------------

# Each model's config keys. ``linear`` is an MLP without hidden layers (width and depth unused).
MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "mlp": ("name", "width", "widths", "depth", "norm", "norm_eps", "groups", "dropout"),
    "linear": ("name", "width", "depth", "norm", "norm_eps", "groups", "dropout"),
    "cnn": ("name", "width", "depth", "kernel_size", "pool", "hidden", "norm", "norm_eps", "groups", "dropout"),
    "examples_cnn": ("name", "conv_dropout", "norm", "norm_eps", "groups", "dropout"),
}
DROPOUT_KEYS = ("variant", "p", "input_p")


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``model`` group (and its ``dropout`` node); raise ConfigError on a
    bad one."""
    from nnbasics.errors import ConfigError

    name = check_name(cfg, "model.name", MODELS)
    check_keys(select(cfg, "model"), "model", MODEL_KEYS[name])
    if name == "mlp":
        check_number(cfg, "model.depth", low=0, integer=True)
        check_number(cfg, "model.width", low=1, integer=True)
        _check_widths(cfg)
    elif name == "linear":
        check_number(cfg, "model.depth", low=0, integer=True, optional=True)
        check_number(cfg, "model.width", low=0, integer=True, optional=True)
    elif name == "examples_cnn":
        check_number(cfg, "model.conv_dropout", low=0, high=1, high_open=True)
        data = select(cfg, "data.name")
        if data is not None and data not in IMAGE_SIZES:
            raise ConfigError("model.name", name, f"the examples CNN needs image data ({', '.join(IMAGE_SIZES)}); "
                              f"data={data} is not images: use model=mlp")
        if select(cfg, "model.norm") == "group":
            groups = check_number(cfg, "model.groups", low=1, integer=True)
            bad = [c * pieces_of(select(cfg, "activation")) for c in (32, 64)]
            bad = [c for c in bad if c % groups]
            if bad:
                raise ConfigError("model.groups", groups, f"must divide the channels of each convolution ({bad[0]})")
    else:
        check_number(cfg, "model.width", low=1, integer=True)
        check_number(cfg, "model.depth", low=0, integer=True)
        k = check_number(cfg, "model.kernel_size", low=1, integer=True)
        if k % 2 == 0:
            raise ConfigError("model.kernel_size", k, "must be odd (the 'same' padding is kernel_size // 2)")
        check_name(cfg, "model.pool", POOLS)
        check_number(cfg, "model.hidden", low=0, integer=True)
    if select(cfg, "model.norm") is not None:
        norm = check_name(cfg, "model.norm", NORMS)
        if norm in SPATIAL_NORMS and name not in IMAGE_MODELS:
            raise ConfigError("model.norm", norm, f"{norm} norm normalizes each channel over its pixels; model={name} "
                              f"has no spatial dimensions (one value per unit and sample): use batch, layer or "
                              f"group, or a CNN (model=cnn or examples_cnn)")
    check_number(cfg, "model.groups", low=1, integer=True, optional=select(cfg, "model.norm") != "group")
    check_number(cfg, "model.norm_eps", low=0.0, low_open=True, optional=True)
    dropout = select(cfg, "model.dropout")
    if dropout is not None:
        if not isinstance(dropout, Mapping):
            raise ConfigError("model.dropout", dropout, f"must be a node with the keys {', '.join(DROPOUT_KEYS)}")
        check_keys(dropout, "model.dropout", DROPOUT_KEYS)
        if select(cfg, "model.dropout.variant") is not None:
            check_name(cfg, "model.dropout.variant", DROPOUT_VARIANTS)
        _check_dropout_p(cfg, name)
        check_number(cfg, "model.dropout.input_p", low=0, high=1, high_open=True, optional=True)
    return []


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _shown(value: Any) -> Any:
    """A list node as a plain list (for an error message)."""
    return [v for v in value] if _is_list(value) else value


def _check_widths(cfg: Mapping) -> None:
    """``model.widths``: null, or a list of positive integers whose length is ``model.depth``."""
    from nnbasics.errors import ConfigError

    widths = select(cfg, "model.widths")
    if widths is None:
        return
    if not _is_list(widths):
        raise ConfigError("model.widths", widths, "must be null (width x depth) or a list of hidden-layer widths, "
                          "e.g. 'model.widths=[300,100]'")
    widths = _shown(widths)
    if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise ConfigError("model.widths", widths, "every width must be a positive integer")
    depth = select(cfg, "model.depth")
    if depth != len(widths):
        raise ConfigError("model.widths", widths, f"{len(widths)} hidden layers but model.depth={depth}; "
                          f"set model.depth={len(widths)} with it (depth counts the hidden layers)")
    if select(cfg, "model.norm") == "group":
        groups = check_number(cfg, "model.groups", low=1, integer=True)
        bad = [w * pieces_of(select(cfg, "activation")) for w in widths]
        bad = [u for u in bad if u % groups]
        if bad:
            raise ConfigError("model.groups", groups, f"must divide the number of units of each layer ({bad[0]})")


def _check_dropout_p(cfg: Mapping, name: str) -> None:
    """``model.dropout.p``: a rate in [0, 1); for the MLP also a list with one rate per hidden layer."""
    from nnbasics.errors import ConfigError

    p = select(cfg, "model.dropout.p")
    if not _is_list(p):
        check_number(cfg, "model.dropout.p", low=0, high=1, high_open=True, optional=True)
        return
    p = _shown(p)
    if name != "mlp":
        raise ConfigError("model.dropout.p", p, f"a list of rates (one per hidden layer) is for model=mlp; "
                          f"model={name} takes one number in [0, 1)")
    n = len(hidden_widths(select(cfg, "model")))
    if len(p) != n:
        raise ConfigError("model.dropout.p", p, f"has {len(p)} rates for {n} hidden layers: give one number "
                          f"in [0, 1), or a list of {n}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in p):
        raise ConfigError("model.dropout.p", p, "every rate must be a number in [0, 1)")
