"""Figures the monitor saves as PNG in the run directory and logs as TensorBoard images.

- ``activation_grid``: one histogram per hidden layer of the activations (and pre-activations)
  of a fixed sample of training data, with the layer's mean, std and dead or saturated fraction
  in the title: the cs231n picture of what an initializer does to the signal, layer by layer.
- ``decision_boundary``: the classes the model predicts over the plane of a 2-D toy set, with
  the training points on top (a regression on a 2-D input shows its output as a heat map).
- ``curve_fit``: the model's prediction against the data for a 1-D regression (the curve set).

Figures come from ``nnbasics.viz.figures`` (``new_figure``: the matplotlib object API on an Agg
canvas, never pyplot; ``save_figure``: PNG plus ``SummaryWriter.add_figure``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from nnbasics.viz.figures import new_figure


@dataclass
class LayerActivations:
    """What one hidden layer produced on the monitor's sample of training data."""

    name: str  # layer1, layer2, ...
    activation: str  # relu, tanh, ...
    pre: np.ndarray  # pre-activations (flattened; a subsample is fine)
    post: np.ndarray  # activations (flattened)
    dead: float | None = None  # fraction of units never active (ReLU family)
    saturated: float | None = None  # fraction of outputs within 0.01 of an asymptote (sigmoid, tanh)


def activation_grid(layers: list[LayerActivations], title: str = "", bins: int = 50):
    """A grid with one panel per hidden layer: the histogram of its activations (filled) over the
    histogram of its pre-activations (outline)."""
    n = max(1, len(layers))
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = new_figure(3.2 * cols, 2.6 * rows + 0.5)
    for i, layer in enumerate(layers):
        ax = fig.add_subplot(rows, cols, i + 1)
        post = layer.post[np.isfinite(layer.post)]
        pre = layer.pre[np.isfinite(layer.pre)]
        if pre.size:
            ax.hist(pre, bins=bins, histtype="step", color="0.45", density=True, label="pre-activation")
        notes = [f"mean {post.mean():.3g}  std {post.std():.3g}" if post.size else "no finite values"]
        zero = float((post == 0).mean()) if post.size else 0.0
        label = layer.activation
        if zero > 0.05:  # a ReLU's spike at exactly 0 would flatten the rest: drawn without it, counted
            post = post[post != 0]
            notes.append(f"=0: {zero:.0%}")
            label += " (nonzero)"
        if post.size:
            ax.hist(post, bins=bins, color="tab:blue", alpha=0.7, density=True, label=label)
        if layer.dead is not None:
            notes.append(f"dead {layer.dead:.1%}")
        if layer.saturated is not None:
            notes.append(f"saturated {layer.saturated:.1%}")
        ax.set_title(f"{layer.name} ({layer.activation})\n" + "  ".join(notes), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
        if i == 0:
            ax.legend(fontsize=6, loc="upper right")
    if not layers:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no hidden activations (linear model)", ha="center", va="center")
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


@torch.inference_mode()
def _predict(model: nn.Module, x: Tensor, chunk: int = 8192) -> Tensor:
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)]).float().cpu()
    finally:
        model.train(was_training)


def _sample(x: Tensor, y: Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) > n:
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n].to(x.device)
        x, y = x[idx], y[idx]
    return x.detach().float().cpu().numpy(), y.detach().float().cpu().numpy()


def decision_boundary(model: nn.Module, x: Tensor, y: Tensor, task: str, title: str = "",
                      resolution: int = 200, max_points: int = 2000):
    """The model's prediction over the plane spanned by the 2-D inputs ``x`` (the training
    split), with the points coloured by their label. multiclass: argmax class; binary: logit > 0;
    multilabel: the first attribute; regression: the (first) output as a heat map."""
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"a decision boundary needs 2-D inputs, got shape {tuple(x.shape)}")
    xs, ys = _sample(x, y, max_points)
    lo, hi = xs.min(axis=0), xs.max(axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution, dtype=np.float32)
    g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution, dtype=np.float32)
    mesh0, mesh1 = np.meshgrid(g0, g1)
    grid = torch.from_numpy(np.stack([mesh0.ravel(), mesh1.ravel()], axis=1)).to(device=x.device, dtype=x.dtype)
    out = _predict(model, grid)
    fig = new_figure(5.5, 5)
    ax = fig.add_subplot(1, 1, 1)
    if task == "multiclass":
        k = out.shape[1]
        z = out.argmax(dim=1).numpy().reshape(mesh0.shape)
        levels = np.arange(k + 1) - 0.5
        cmap = "tab10" if k <= 10 else "tab20"
        ax.contourf(mesh0, mesh1, z, levels=levels, cmap=cmap, vmin=-0.5, vmax=(10 if k <= 10 else 20) - 0.5, alpha=0.35)
        ax.scatter(xs[:, 0], xs[:, 1], c=ys, cmap=cmap, vmin=-0.5, vmax=(10 if k <= 10 else 20) - 0.5, s=8,
                   edgecolors="k", linewidths=0.2)
    elif task in ("binary", "multilabel"):
        logit = out.reshape(len(out), -1)[:, 0].numpy().reshape(mesh0.shape)
        prob = 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
        cs = ax.contourf(mesh0, mesh1, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45)
        ax.contour(mesh0, mesh1, prob, levels=[0.5], colors="k", linewidths=1)
        fig.colorbar(cs, ax=ax, label="p(y=1)")
        labels = ys.reshape(len(ys), -1)[:, 0]
        ax.scatter(xs[:, 0], xs[:, 1], c=labels, cmap="RdBu_r", vmin=0, vmax=1, s=8, edgecolors="k", linewidths=0.2)
    else:  # regression on a 2-D input
        z = out.reshape(len(out), -1)[:, 0].numpy().reshape(mesh0.shape)
        cs = ax.contourf(mesh0, mesh1, z, levels=20, cmap="viridis", alpha=0.6)
        fig.colorbar(cs, ax=ax, label="prediction")
        ax.scatter(xs[:, 0], xs[:, 1], c=ys.reshape(len(ys), -1)[:, 0], cmap="viridis", s=8, edgecolors="k", linewidths=0.2)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title or "decision boundary", fontsize=10)
    fig.tight_layout()
    return fig


def curve_fit(model: nn.Module, x: Tensor, y: Tensor, title: str = "", max_points: int = 2000):
    """A 1-D regression: the data points and the model's prediction along x."""
    xs, ys = _sample(x, y, max_points)
    grid = np.linspace(xs.min(), xs.max(), 400, dtype=np.float32)[:, None]
    out = _predict(model, torch.from_numpy(grid).to(device=x.device, dtype=x.dtype)).numpy()
    fig = new_figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(xs[:, 0], ys.reshape(len(ys), -1)[:, 0], s=5, color="0.6", label="training data")
    ax.plot(grid[:, 0], out.reshape(len(out), -1)[:, 0], color="tab:red", lw=2, label="model")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=8)
    ax.set_title(title or "fit", fontsize=10)
    fig.tight_layout()
    return fig
