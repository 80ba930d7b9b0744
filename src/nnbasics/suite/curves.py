"""Training curves of the experiments' runs, drawn from a run's per-epoch ``history``."""

from __future__ import annotations

from typing import Mapping, Sequence

from nnbasics.viz.figures import new_figure


def plot_metric(ax, history: Sequence[Mapping], key: str, *, error: bool = False, percent: bool = False, **style):
    """``history[i][key]`` against the epoch on ``ax`` (the rows that hold ``key``); ``error``
    draws 1 - value, ``percent`` scales by 100. ``style`` goes to ``ax.plot``."""
    rows = [r for r in history if key in r]
    values = [(1.0 - r[key]) if error else r[key] for r in rows]
    return ax.plot([r["epoch"] for r in rows], [100 * v if percent else v for v in values], **style)


def accuracy_curves(runs: Mapping[str, Sequence[Mapping]], title: str, train_label: str = "train (running)",
                    legend_size: float | None = None):
    """One panel per arm of ``runs`` (``{arm: [run, ...]}``): the first seed's running training
    accuracy and its validation accuracy by epoch, titled ``<title>: <arm>``."""
    fig = new_figure(5 * len(runs), 4)
    for i, (arm, arm_runs) in enumerate(runs.items()):
        ax = fig.add_subplot(1, len(runs), i + 1)
        h = arm_runs[0]["history"]
        plot_metric(ax, h, "train/acc", label=train_label)
        plot_metric(ax, h, "val/acc", marker="o", ms=3, label="val")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (seed 0)")
        ax.set_title(f"{title}: {arm}")
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    return fig
