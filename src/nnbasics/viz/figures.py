"""The figure helpers every drawing in nnbasics uses: one place, one way.

- ``new_figure``: a matplotlib ``Figure`` on its own Agg canvas (the object API: no pyplot
  state, no display, safe in worker processes).
- ``figure_to_array``: the rendered figure as an H x W x 3 uint8 array (to test what was drawn).
- ``save_figure``: write a PNG and, given a TensorBoard ``SummaryWriter``, log the figure as an
  image through ``SummaryWriter.add_figure``.

Matplotlib is imported only when a figure is made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def new_figure(width: float = 6.0, height: float = 4.0, dpi: int = 100):
    """A ``matplotlib.figure.Figure`` of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_to_array(fig) -> np.ndarray:
    """The rendered figure as an H x W x 3 uint8 array."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def log_figure(writer, tag: str, fig, step: int = 0) -> None:
    """Log ``fig`` as the TensorBoard image ``tag`` at ``step`` (``SummaryWriter.add_figure``;
    the figure stays open: it belongs to the caller, not to pyplot)."""
    writer.add_figure(tag, fig, step, close=False)


def save_figure(fig, path: str | Path, writer=None, tag: str | None = None, step: int = 0) -> Path:
    """Write ``fig`` as PNG to ``path``; with a ``SummaryWriter``, also log it as the image
    ``tag`` (the file's stem when not given). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    if writer is not None:
        log_figure(writer, tag or path.stem, fig, step)
    return path
