"""Learning-rate decay as pure functions of the step, each returning a multiplier of the base LR."""

from __future__ import annotations

import math
from typing import Callable, Mapping


def constant(step: int, total_steps: int) -> float:
    """lr(t) = lr."""
    return 1.0


def cosine(step: int, total_steps: int, min_factor: float = 0.0) -> float:
    """lr(t) = lr * [m + (1 - m) (1 + cos(pi t / T)) / 2] (Loshchilov and Hutter 2017, no restarts)."""
    t = min(step, total_steps) / max(1, total_steps)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))


def build_schedule(cfg: Mapping, total_steps: int, steps_per_epoch: int = 1) -> Callable[[int], float]:
    """The configured schedule as ``step -> multiplier``, with optional linear warm-up."""
    name = cfg["name"]
    warmup = int(cfg.get("warmup_steps", 0) or 0)
    if name == "constant":
        base = lambda s: constant(s, total_steps)  # noqa: E731
    elif name == "cosine":
        base = lambda s: cosine(s, total_steps, float(cfg.get("min_factor", 0.0)))  # noqa: E731
    else:
        raise KeyError(f"unknown scheduler {name!r}; valid: constant, cosine")
    if warmup <= 0:
        return base
    return lambda s: base(s) * min(1.0, (s + 1) / warmup)
