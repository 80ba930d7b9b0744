"""The numbers and tables of the experiment suite: means over seeds, formatting, markdown
tables, and reading training curves."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of the finite values;
    (nan, nan) when none is finite. NaN and Inf values (diverged runs) are left out."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def fmt(mean: float, std: float | None = None, digits: int = 3, percent: bool = False) -> str:
    """``0.912 ± 0.004`` (or ``91.2 ± 0.4 %`` with percent); ``n/a`` when the mean is nan."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    scale, unit = (100.0, " %") if percent else (1.0, "")
    d = max(0, digits - 2) if percent else digits
    text = f"{mean * scale:.{d}f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std * scale:.{d}f}"
    return text + unit


def fmt_values(values: Iterable[float], digits: int = 3, percent: bool = False) -> str:
    """``fmt(*mean_std(values))``, with the count of non-finite values (diverged runs) noted."""
    values = list(values)
    bad = sum(1 for v in values if v is None or not math.isfinite(float(v)))
    text = fmt(*mean_std(values), digits=digits, percent=percent)
    return text + (f" ({bad}/{len(values)} diverged)" if bad else "")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; cells are str()-ed, floats with 4 significant digits."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def first_at(history: Sequence[dict], key: str, below: float | None = None, above: float | None = None,
             unit: str = "epoch") -> float:
    """The first ``unit`` (epoch or step) at which ``history[i][key]`` drops below ``below`` (or
    rises above ``above``); inf when it never does."""
    for row in history:
        v = row.get(key)
        if v is None or not math.isfinite(v):
            continue
        if (below is not None and v < below) or (above is not None and v > above):
            return float(row[unit])
    return float("inf")


def curve_at(curve: Sequence[Sequence[float]], step: int, window: int = 1) -> float:
    """The training loss of a per-step curve ([step, time_s, loss] rows) at ``step``: the mean
    over the ``window`` logged points at or before it (nan when there are none)."""
    pts = [r[2] for r in curve if r[0] <= step]
    if not pts:
        return float("nan")
    pts = pts[-window:]
    return sum(pts) / len(pts)


def smooth(values: Sequence[float], k: int) -> list[float]:
    """A trailing moving average over ``k`` points (for noisy mini-batch loss curves)."""
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out
