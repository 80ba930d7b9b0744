"""The network is matrix multiplication: one forward pass written four ways.

A fully connected layer is first explained as separate neurons: unit ``j`` takes the weighted
sum of its inputs plus a bias and passes it through the activation,

    a_j = f( b_j + sum_i W[j, i] * x_i ).

Written for all units at once this is one matrix-vector product, ``a = f(W x + b)``, and for a
batch of samples stacked as rows of ``X``, one matrix-matrix product, ``A = f(X W^T + b)``. The
three give the same numbers; they differ only in how much work each Python-level step hands to
optimized code, which is what made GPUs (built for big matrix products) the engine of deep
learning.

- ``forward_neurons``: the reference for reading. Loops over samples, layers, units and inputs
  with plain Python floats: every multiply-add is visible.
- ``forward_neuron_dots``: the same loop over units, but each unit's weighted sum is one
  ``torch.dot`` (a loop over neurons, not over inputs).
- ``forward_per_sample``: one matrix-vector product per layer, one sample at a time.
- ``forward_batched``: one matrix-matrix product per layer for the whole batch (what
  ``model(x)`` does).

They work on any model whose forward pass applies its leaf modules in registration order (the
project's MLP: ``Flatten``, then ``Linear``/activation pairs, then the output ``Linear``): every
``nn.Linear`` (``layers.Linear`` subclasses it) is computed by hand, every activation module
unit by unit when it is elementwise, and any other leaf module (flatten, dropout and norm layers
in eval mode, Maxout) is applied as it is. They compute the inference forward pass (the model is
put in eval mode for the duration). Each takes an optional ``plan`` (``forward_plan(model)``,
built once) so that timing loops do not pay for walking the model. ``count_flops`` counts the arithmetic, ``epoch_cost`` does
the seed material's arithmetic of time per epoch for gradient descent against mini-batch SGD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn


# ----------------------------------------------------------------------------------------------
# Walking the model
# ----------------------------------------------------------------------------------------------


def is_activation(module: nn.Module) -> bool:
    """An activation Module: the project's ``activations.Activation`` or one of torch's."""
    try:
        from nnbasics.nn.activations import Activation  # the project's base class, once it exists
    except ImportError:
        Activation = ()  # type: ignore[assignment]
    return isinstance(module, Activation) or type(module).__module__ == "torch.nn.modules.activation"


@dataclass
class Step:
    """One step of the forward pass: a dense layer (``weight``, ``bias``) optionally fused with
    an elementwise activation, or any other module applied as it is."""

    kind: str  # "dense" | "unitwise" (an elementwise activation on its own) | "module"
    module: nn.Module
    weight: Tensor | None = None  # out x in
    bias: Tensor | None = None  # out
    activation: nn.Module | None = None  # elementwise, applied unit by unit


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    """Leaf modules in registration order; an ``nn.Linear`` counts as a leaf whatever it holds."""
    children = list(module.children())
    if isinstance(module, nn.Linear) or not children:
        yield module
        return
    for child in children:
        yield from _leaves(child)


def _elementwise(act: nn.Module, width: int, dtype: torch.dtype) -> bool:
    """True when ``act`` acts on each unit alone and the same way for every unit (ReLU, tanh,
    ELU, a PReLU with one shared slope), so a unit can be activated on its own. Maxout (pools
    groups of units) and per-unit PReLU slopes are applied to the whole layer instead."""
    if sum(p.numel() for p in act.parameters()) > 1:
        return False
    probe = torch.linspace(-3.0, 3.0, width, dtype=dtype).reshape(1, width)
    with torch.no_grad():
        out = act(probe)
        if out.shape != probe.shape:
            return False
        one = torch.cat([act(probe[:, j:j + 1]) for j in range(min(width, 8))], dim=1)
    return torch.allclose(out[:, :one.shape[1]], one)


def forward_plan(model: nn.Module) -> list[Step]:
    """The model's leaf modules in order, as steps: each ``nn.Linear`` becomes a dense step
    (fused with the activation right after it when that activation is elementwise)."""
    dtype = _dtype(model)
    leaves = list(_leaves(model))
    steps: list[Step] = []
    i = 0
    while i < len(leaves):
        m = leaves[i]
        if isinstance(m, nn.Linear):
            nxt = leaves[i + 1] if i + 1 < len(leaves) else None
            fuse = nxt is not None and is_activation(nxt) and _elementwise(nxt, m.out_features, dtype)
            bias = m.bias if m.bias is not None else torch.zeros(m.out_features, dtype=m.weight.dtype)
            steps.append(Step("dense", m, m.weight.detach(), bias.detach(), nxt if fuse else None))
            i += 2 if fuse else 1
        elif is_activation(m) and i > 0 and _elementwise(m, _width_before(steps), dtype):
            steps.append(Step("unitwise", m, activation=m))  # e.g. after a norm layer
            i += 1
        else:
            steps.append(Step("module", m))
            i += 1
    return steps


def _width_before(steps: list[Step]) -> int:
    """A width to probe an activation with: the last dense layer's output size (or 8)."""
    dense = [s for s in steps if s.kind == "dense"]
    return int(dense[-1].weight.shape[0]) if dense else 8


def _dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's parameters (the default dtype for a model without any)."""
    return next((p.dtype for p in model.parameters()), torch.get_default_dtype())


class _eval_mode:
    def __init__(self, model: nn.Module):
        self.model, self.was = model, model.training

    def __enter__(self):
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was)


def _scalar_fn(act: nn.Module, dtype: torch.dtype) -> Callable[[float], float]:
    """The activation as a function of one Python float."""
    return lambda z: float(act(torch.tensor([[z]], dtype=dtype))[0, 0])


# ----------------------------------------------------------------------------------------------
# Four forward passes
# ----------------------------------------------------------------------------------------------


def neuron(weights: list[float], bias: float, inputs: list[float], f: Callable[[float], float]) -> float:
    """One neuron: the weighted sum of its inputs plus its bias, through the activation ``f``."""
    z = bias
    for w, x in zip(weights, inputs):
        z += w * x
    return f(z)


@torch.no_grad()
def forward_neurons(model: nn.Module, x: Tensor, plan: list[Step] | None = None) -> Tensor:
    """The model's output computed neuron by neuron in plain Python floats (float64 arithmetic):
    for each sample, for each layer, for each unit, a weighted sum plus an activation. Slow on
    purpose; it is the definition the other three forms are checked against."""
    with _eval_mode(model):
        steps = plan if plan is not None else forward_plan(model)
        dense = {id(s): (s.weight.tolist(), s.bias.tolist()) for s in steps if s.kind == "dense"}
        outputs = []
        for sample in x:
            a: Tensor | list[float] = sample.unsqueeze(0)
            for s in steps:
                if s.kind == "dense":
                    W, b = dense[id(s)]
                    inputs = a if isinstance(a, list) else a.reshape(-1).tolist()
                    f = _scalar_fn(s.activation, s.weight.dtype) if s.activation is not None else (lambda z: z)
                    a = [neuron(W[j], b[j], inputs, f) for j in range(len(W))]
                elif s.kind == "unitwise":
                    f = _scalar_fn(s.activation, _dtype(model))
                    a = [f(v) for v in (a if isinstance(a, list) else a.reshape(-1).tolist())]
                else:
                    t = torch.tensor([a], dtype=_dtype(model)) if isinstance(a, list) else a
                    a = s.module(t)
            out = torch.tensor([a], dtype=_dtype(model)) if isinstance(a, list) else a
            outputs.append(out.reshape(1, -1))
        return torch.cat(outputs).to(x.device)


@torch.no_grad()
def forward_neuron_dots(model: nn.Module, x: Tensor, plan: list[Step] | None = None) -> Tensor:
    """Neuron by neuron, each unit's weighted sum one ``torch.dot``: a Python loop over samples
    and units, the loop over inputs inside the library."""
    with _eval_mode(model):
        steps = plan if plan is not None else forward_plan(model)
        outputs = []
        for sample in x:
            a = sample.unsqueeze(0)
            for s in steps:
                if s.kind == "dense":
                    v = a.reshape(-1)
                    z = torch.stack([torch.dot(s.weight[j], v) + s.bias[j] for j in range(s.weight.shape[0])])
                    if s.activation is not None:
                        z = torch.cat([s.activation(z[j:j + 1].reshape(1, 1)).reshape(1) for j in range(z.shape[0])])
                    a = z.reshape(1, -1)
                elif s.kind == "unitwise":
                    v = a.reshape(-1)
                    a = torch.cat([s.activation(v[j:j + 1].reshape(1, 1)).reshape(1) for j in range(v.shape[0])]).reshape(1, -1)
                else:
                    a = s.module(a)
            outputs.append(a.reshape(1, -1))
        return torch.cat(outputs)


@torch.no_grad()
def forward_per_sample(model: nn.Module, x: Tensor, plan: list[Step] | None = None) -> Tensor:
    """One sample at a time, each layer one matrix-vector product ``a = f(W a + b)``."""
    with _eval_mode(model):
        steps = plan if plan is not None else forward_plan(model)
        outputs = []
        for sample in x:
            a = sample.unsqueeze(0)
            for s in steps:
                if s.kind == "dense":
                    a = torch.mv(s.weight, a.reshape(-1)) + s.bias
                    a = a.reshape(1, -1)
                    if s.activation is not None:
                        a = s.activation(a)
                else:
                    a = s.module(a)
            outputs.append(a.reshape(1, -1))
        return torch.cat(outputs)


@torch.no_grad()
def forward_batched(model: nn.Module, x: Tensor, plan: list[Step] | None = None) -> Tensor:
    """The whole batch at once, each layer one matrix-matrix product ``A = f(X W^T + b)``."""
    with _eval_mode(model):
        a = x
        for s in plan if plan is not None else forward_plan(model):
            if s.kind == "dense":
                a = torch.addmm(s.bias, a.reshape(a.shape[0], -1), s.weight.t())
                if s.activation is not None:
                    a = s.activation(a)
            else:
                a = s.module(a)
        return a


FORWARDS: dict[str, Callable[[nn.Module, Tensor], Tensor]] = {
    "neuron_loop": forward_neurons,
    "neuron_dot": forward_neuron_dots,
    "per_sample": forward_per_sample,
    "batched": forward_batched,
}


# ----------------------------------------------------------------------------------------------
# Counting and the epoch arithmetic
# ----------------------------------------------------------------------------------------------


def count_flops(model: nn.Module, batch_size: int = 1) -> int:
    """Floating-point operations of the forward pass through the dense layers: a unit with
    ``n_in`` inputs does ``n_in`` multiplies and ``n_in`` adds (the first add is the bias), so a
    layer costs ``2 * n_in * n_out`` per sample. Activations (one op per unit) are not counted;
    the backward pass costs about twice the forward."""
    per_sample = sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    return per_sample * batch_size


def epoch_cost(n_samples: int, per_sample_s: float, batch_size: int, epochs: int = 100,
               per_update_s: float = 0.0) -> dict[str, float]:
    """The seed material's arithmetic. Computing the gradient costs ``per_sample_s`` per sample
    whatever the batch, so one epoch (every sample once) costs ``n * per_sample_s`` for gradient
    descent (batch = n) and mini-batch SGD alike; what differs is how many updates that buys:
    one per epoch for GD, ``ceil(n / batch)`` for SGD. ``per_update_s`` adds a fixed cost per
    update (the optimizer step, a kernel launch).

    Returns ``updates_per_epoch``, ``epoch_s``, ``total_s`` (for ``epochs``), ``total_updates``,
    ``update_s`` and ``gd_s_for_same_updates`` (what gradient descent would need for as many
    updates as this schedule makes)."""
    if n_samples < 1 or batch_size < 1 or per_sample_s < 0 or epochs < 0:
        raise ValueError("n_samples and batch_size must be >= 1, per_sample_s and epochs >= 0")
    batch_size = min(batch_size, n_samples)
    updates = math.ceil(n_samples / batch_size)
    epoch_s = n_samples * per_sample_s + updates * per_update_s
    gd_epoch_s = n_samples * per_sample_s + per_update_s
    return {"updates_per_epoch": updates, "epoch_s": epoch_s, "total_s": epochs * epoch_s,
            "total_updates": epochs * updates, "update_s": epoch_s / updates,
            "gd_s_for_same_updates": epochs * updates * gd_epoch_s}
