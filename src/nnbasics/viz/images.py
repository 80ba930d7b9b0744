"""Look at the data and at the mistakes: arrays shown as images.

- ``class_samples``: a grid with one row per class and ``per_class`` samples in each.
- ``confident_mistakes`` / ``mistakes_grid``: the test images the model got wrong with the most
  confidence, titled "true -> predicted (p)".
- ``first_layer_weights``: each hidden unit's incoming weights of the first linear layer reshaped
  to the input image (28 x 28 grey on a diverging map centred at 0, or 32 x 32 x 3 RGB rescaled
  per unit): the templates the first layer matches.
- ``confusion_matrix`` / ``confusion_figure``: counts of (true, predicted) pairs.

Figures are made by ``nnbasics.viz.figures.new_figure`` (a matplotlib ``Figure`` on an Agg
canvas: no pyplot state, no display) and saved with ``nnbasics.viz.figures.save_figure``; the
mosaic of a grid is laid out by ``torchvision.utils.make_grid``. Image tensors are N x C x H x W or N x H x W (normalized or not: each grid
is rescaled to its own range for display).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from nnbasics.viz.figures import new_figure


def grid_shape(fig) -> tuple[int, int]:
    """(rows, columns) of an image grid drawn by this module."""
    return fig.nnbasics_grid["rows"], fig.nnbasics_grid["cols"]


def grid_cell(fig, k: int) -> np.ndarray:
    """The array shown in cell ``k`` (row by row) of an image grid drawn by this module."""
    g = fig.nnbasics_grid
    mosaic = np.ma.getdata(fig.axes[0].images[0].get_array())
    (h, w), pad, gap = g["cell"], g["pad"], g["gap"]
    r, c = divmod(k, g["cols"])
    top, left = pad + gap + r * (h + pad + gap), pad + c * (w + pad)
    return mosaic[top:top + h, left:left + w]


def _as_images(x: Tensor) -> Tensor:
    """N x C x H x W float tensor (C = 1 grey or 3 RGB) from N x C x H x W, N x H x W or N x D
    (flat vectors: square grey images)."""
    x = x.detach().float().cpu()
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"cannot show vectors of size {x.shape[1]} as square images; pass in_shape")
        x = x.reshape(-1, side, side)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x[:, :1] if x.shape[1] != 3 else x


def _mosaic(images: Tensor, rows: int, cols: int, pad: int, gap: int) -> np.ndarray:
    """One mosaic of ``images`` (N x C x H x W) laid out row by row by ``make_grid``: ``pad``
    pixels between cells, ``gap`` more above each row (room for titles); empty space is nan
    (shown blank). H' x W' for grey images, H' x W' x 3 for RGB."""
    from torchvision.utils import make_grid

    n, c, h, w = images.shape
    cells = torch.full((rows * cols, c, h + gap, w), float("nan"))
    cells[:n, :, gap:] = images
    grid = make_grid(cells, nrow=cols, padding=pad, pad_value=float("nan"))
    return (grid[0] if c == 1 else grid.permute(1, 2, 0)).double().numpy()


def image_grid(images: Tensor, rows: int, cols: int, titles: Sequence[str] | None = None,
               row_labels: Sequence[str] | None = None, title: str = "", cmap: str = "gray",
               symmetric: bool = False, cell: float = 0.9):
    """``images`` (at most rows * cols) laid out row by row in a rows x cols grid (one mosaic on
    one axes: fast to draw at any size); empty cells stay blank. Grey images share one colour
    scale (centred at 0 with ``symmetric``); RGB images are rescaled to [0, 1] together.
    ``titles`` are written above the cells, ``row_labels`` left of the rows."""
    from matplotlib import colormaps

    imgs = _as_images(images)
    if len(imgs) > rows * cols:
        raise ValueError(f"{len(imgs)} images do not fit a {rows} x {cols} grid")
    values = imgs.numpy()
    rgb = imgs.shape[1] == 3
    if rgb:
        lo, hi = (float(np.nanmin(values)), float(np.nanmax(values))) if len(imgs) else (0.0, 1.0)
        imgs = (imgs - lo) / (hi - lo) if hi > lo else torch.zeros_like(imgs)
        vmin, vmax = 0.0, 1.0
    elif symmetric:
        vmax = float(np.nanmax(np.abs(values))) if len(imgs) else 1.0
        vmax, vmin = (vmax or 1.0), -(vmax or 1.0)
    else:
        vmin, vmax = (float(np.nanmin(values)), float(np.nanmax(values))) if len(imgs) else (0.0, 1.0)
    h, w = imgs.shape[2:4]
    pad, gap = 1, (max(2, round(0.3 * h)) if titles else 0)
    mosaic = _mosaic(imgs, rows, cols, pad, gap)
    if rgb:
        mosaic = np.where(np.isnan(mosaic), 1.0, mosaic)
    left_in = 0.5 if row_labels else 0.05
    top_in = 0.35 if title else 0.05
    width_in = cols * cell + left_in + 0.05
    height_in = rows * cell * (h + gap) / h + top_in + 0.05
    fig = new_figure(width_in, height_in)
    ax = fig.add_axes((left_in / width_in, 0.05 / height_in, cols * cell / width_in, (height_in - top_in - 0.05) / height_in))
    cm = colormaps[cmap].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=None if rgb else cm, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    for k, text in enumerate((titles or [])[:rows * cols]):
        r, c = divmod(k, cols)
        ax.text(pad + c * (w + pad) + w / 2, pad + gap + r * (h + pad + gap) - 0.8, text,
                ha="center", va="bottom", fontsize=6)
    if row_labels:
        ax.set_yticks([pad + gap + r * (h + pad + gap) + h / 2 for r in range(rows)], list(row_labels)[:rows], fontsize=8)
        ax.tick_params(axis="y", length=0)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.05 / height_in, va="top")
    fig.nnbasics_grid = {"rows": rows, "cols": cols, "cell": (h, w), "pad": pad, "gap": gap}
    return fig


def class_samples(x: Tensor, y: Tensor, classes: Sequence[str] | None = None, per_class: int = 8,
                  title: str = "samples per class"):
    """One row per class (``classes`` or every label present), the first ``per_class`` samples of
    that class left to right (a class with fewer samples leaves blanks)."""
    y = y.detach().cpu()
    labels = list(range(len(classes))) if classes is not None else sorted(set(y.tolist()))
    names = list(classes) if classes is not None else [str(c) for c in labels]
    cells: list[Tensor] = []
    blank = torch.full_like(x[0].detach().cpu(), float("nan"))  # shown blank
    for c in labels:
        idx = torch.nonzero(y == c).flatten()[:per_class]
        row = [x[i].detach().cpu() for i in idx] + [blank] * (per_class - len(idx))
        cells += row
    return image_grid(torch.stack(cells), len(labels), per_class, row_labels=names, title=title)


def confident_mistakes(logits: Tensor, target: Tensor, k: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Indices of the ``k`` misclassified samples with the highest predicted-class probability,
    most confident first, with their predictions and those probabilities."""
    p = torch.softmax(logits.detach().float(), dim=1)
    conf, pred = p.max(dim=1)
    wrong = torch.nonzero(pred != target).flatten()
    order = wrong[torch.argsort(conf[wrong], descending=True, stable=True)][:k]
    return order, pred[order], conf[order]


def mistakes_grid(x: Tensor, target: Tensor, logits: Tensor, classes: Sequence[str] | None = None,
                  k: int = 16, cols: int = 8, title: str = "most confident mistakes"):
    """The ``k`` most confident mistakes, titled "true -> predicted (probability)"."""
    idx, pred, conf = confident_mistakes(logits, target.to(logits.device), k)
    name = (lambda c: classes[c]) if classes is not None else str
    titles = [f"{name(int(target[i]))}->{name(int(p))} ({float(c):.2f})" for i, p, c in zip(idx, pred, conf)]
    n = max(len(idx), 1)
    cols = min(cols, n)
    images = x[idx.to(x.device)] if len(idx) else x[:0]
    return image_grid(images, math.ceil(n / cols), cols, titles=titles, title=title)


def first_linear(model: nn.Module) -> nn.Linear:
    """The model's first ``nn.Linear`` in registration order."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            return m
    raise ValueError("the model has no nn.Linear layer")


def first_layer_weights(model: nn.Module, in_shape: Sequence[int], units: int = 64, cols: int = 8,
                        title: str = "first-layer weights"):
    """The incoming weights of the first ``units`` hidden units of the first linear layer, each
    reshaped to ``in_shape`` (1 x 28 x 28, 28 x 28, or 3 x 32 x 32): grey images on a diverging
    map centred at 0 (red positive, blue negative), RGB ones rescaled per unit to [0, 1]."""
    w = first_linear(model).weight.detach().float().cpu()[:units]
    shape = tuple(in_shape)
    if int(np.prod(shape)) != w.shape[1]:
        raise ValueError(f"first layer has {w.shape[1]} inputs, in_shape {shape} has {int(np.prod(shape))}")
    w = w.reshape(-1, *shape)
    rows = math.ceil(w.shape[0] / cols)
    if w.dim() == 4 and w.shape[1] == 3:
        lo = w.amin(dim=(1, 2, 3), keepdim=True)
        hi = w.amax(dim=(1, 2, 3), keepdim=True)
        w = (w - lo) / (hi - lo).clamp_min(1e-12)
        return image_grid(w, rows, cols, title=title)
    return image_grid(w, rows, cols, title=title, cmap="RdBu_r", symmetric=True)


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """C x C counts: entry [t, p] is how many samples of true class t were predicted as p."""
    pred, target = pred.reshape(-1).long().cpu(), target.reshape(-1).long().cpu()
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_figure(cm: Tensor, classes: Sequence[str] | None = None, title: str = "confusion matrix",
                     normalize: bool = True):
    """The confusion matrix as a heat map (rows: true class, columns: predicted), each row
    normalized to sum to 1 with ``normalize``, the counts written in the cells."""
    cm = cm.detach().cpu()
    C = cm.shape[0]
    names = list(classes) if classes is not None else [str(i) for i in range(C)]
    shown = cm.double() / cm.sum(1, keepdim=True).clamp_min(1) if normalize else cm.double()
    size = max(3.5, 0.45 * C + 1.5)
    fig = new_figure(size, size)
    ax = fig.subplots(1, 1)
    im = ax.imshow(shown.numpy(), cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(C), names, fontsize=7, rotation=90 if C > 10 else 0)
    ax.set_yticks(range(C), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if C <= 20:
        top = float(shown.max()) or 1.0
        for t in range(C):
            for p in range(C):
                ax.text(p, t, str(int(cm[t, p])), ha="center", va="center", fontsize=6,
                        color="white" if float(shown[t, p]) > 0.6 * top else "black")
    acc = float(cm.diag().sum() / cm.sum().clamp_min(1))
    ax.set_title(f"{title} (accuracy {acc:.4f})", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.92, bottom=0.12, top=0.92)
    return fig
