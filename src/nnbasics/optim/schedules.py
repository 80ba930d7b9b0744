"""Learning-rate decay as pure functions of the step, each returning a multiplier of the base LR.

``t`` is the number of updates already made (0 for the first update), ``T`` the total number of
updates of the run, ``S`` the updates per epoch. Schedules with a ``unit`` key measure time in
epochs (``unit: epoch``, the default: ``e = t // S`` for the staircase schedules, ``e = t / S``
for the smooth ones) or in updates (``unit: step``, ``e = t``), so an epoch-based schedule
decays at the same pace whatever the batch size.

    constant      1
    step          gamma ** floor(e / step_size)
    multistep     gamma ** #{m in milestones : m <= e}
    exponential   gamma ** e                         (e = t / S, smooth)
    inverse_time  1 / (1 + k * e)                    (e = t / S, smooth)
    cosine        m + (1 - m) * (1 + cos(pi * t / T)) / 2,  m = min_factor

Linear warm-up composes with any of them (``warmup_steps: W > 0``):
``multiplier(t) = min(1, (t + 1) / W) * schedule(t)`` (Goyal et al. 2017).

`build_schedule(cfg.scheduler, total_steps, steps_per_epoch)` returns ``t -> multiplier``; the
training loop sets ``lr = base_lr * multiplier(t)`` before update ``t`` and logs it as ``lr``.
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Callable, Mapping, Sequence

from nnbasics.config import check_keys, check_name, check_number, select
from nnbasics.errors import ConfigError

UNITS = ("epoch", "step")


def _time(t: int, steps_per_epoch: int, unit: str, whole: bool) -> float:
    if unit == "step":
        return t
    return t // steps_per_epoch if whole else t / steps_per_epoch


def constant(t: int) -> float:
    """lr(t) = lr."""
    return 1.0


def step_decay(t: int, step_size: int, gamma: float, steps_per_epoch: int = 1, unit: str = "epoch") -> float:
    """lr(t) = lr * gamma ** floor(e / step_size), e = t // S (whole epochs) or t (unit=step).

    "Reduce the learning rate by a constant factor every few epochs" (cs231n; torch StepLR)."""
    e = _time(t, steps_per_epoch, unit, whole=True)
    return gamma ** (e // step_size)


def multistep(t: int, milestones: Sequence[int], gamma: float, steps_per_epoch: int = 1, unit: str = "epoch") -> float:
    """lr(t) = lr * gamma ** (number of milestones m with m <= e), e = t // S or t (torch MultiStepLR)."""
    e = _time(t, steps_per_epoch, unit, whole=True)
    return gamma ** sum(1 for m in milestones if m <= e)


def exponential(t: int, gamma: float, steps_per_epoch: int = 1, unit: str = "epoch") -> float:
    """lr(t) = lr * gamma ** e = lr * exp(-k e) with k = -ln(gamma), e = t / S (fractional epochs,
    smooth) or t (unit=step). Equals torch ExponentialLR at every epoch boundary."""
    return gamma ** _time(t, steps_per_epoch, unit, whole=False)


def inverse_time(t: int, k: float, steps_per_epoch: int = 1, unit: str = "epoch") -> float:
    """lr(t) = lr / (1 + k * e), e = t / S (fractional epochs) or t (unit=step): 1/t decay (cs231n)."""
    return 1.0 / (1.0 + k * _time(t, steps_per_epoch, unit, whole=False))


def cosine(t: int, total_steps: int, min_factor: float = 0.0) -> float:
    """lr(t) = lr * [m + (1 - m) (1 + cos(pi t / T)) / 2], t clipped to T, m = min_factor
    (Loshchilov and Hutter 2017, SGDR without restarts)."""
    x = min(t, total_steps) / max(1, total_steps)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * x))


def linear_warmup(t: int, warmup_steps: int) -> float:
    """min(1, (t + 1) / W): from lr / W at the first update to lr at update W - 1 (Goyal et al. 2017)."""
    return min(1.0, (t + 1) / warmup_steps)


def with_warmup(t: int, schedule: Callable[[int], float], warmup_steps: int) -> float:
    """min(1, (t + 1) / W) * schedule(t)."""
    return linear_warmup(t, warmup_steps) * schedule(t)


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant, "step": step_decay, "multistep": multistep, "exponential": exponential,
    "inverse_time": inverse_time, "cosine": cosine,
}

# Each schedule's own config keys (besides name and warmup_steps) and their defaults.
SCHEDULE_KEYS: dict[str, dict[str, object]] = {
    "constant": {},
    "step": {"step_size": None, "gamma": 0.1, "unit": "epoch"},
    "multistep": {"milestones": None, "gamma": 0.1, "unit": "epoch"},
    "exponential": {"gamma": None, "unit": "epoch"},
    "inverse_time": {"k": None, "unit": "epoch"},
    "cosine": {"min_factor": 0.0},
}


def build_schedule(cfg: Mapping, total_steps: int, steps_per_epoch: int = 1) -> Callable[[int], float]:
    """The configured schedule as ``t -> multiplier`` (a pure function of the update count ``t``),
    with linear warm-up over ``cfg.warmup_steps`` updates when that is > 0."""
    name = cfg["name"]
    if name not in SCHEDULES:
        raise ConfigError("scheduler.name", name, f"choose one of: {', '.join(sorted(SCHEDULES))}")
    kwargs = {}
    for key, default in SCHEDULE_KEYS[name].items():
        value = cfg.get(key, default)
        if value is None:
            raise ConfigError(f"scheduler.{key}", value, f"scheduler={name} needs {key}")
        kwargs[key] = [int(m) for m in value] if key == "milestones" else value
    if name == "cosine":
        kwargs["total_steps"] = int(total_steps)
    elif name != "constant":
        kwargs["steps_per_epoch"] = max(1, int(steps_per_epoch))
    schedule = partial(SCHEDULES[name], **kwargs)
    warmup = int(cfg.get("warmup_steps", 0) or 0)
    if warmup <= 0:
        return schedule
    if warmup >= total_steps:
        warnings.warn(f"scheduler.warmup_steps={warmup} >= the {total_steps} updates of the run: the learning rate "
                      f"never reaches its base value", stacklevel=2)
    return partial(with_warmup, schedule=schedule, warmup_steps=warmup)


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``scheduler`` group; raise ConfigError on a bad one. Returns warnings."""
    name = check_name(cfg, "scheduler.name", SCHEDULES)
    notes: list[str] = []
    check_keys(select(cfg, "scheduler"), "scheduler", ("name", "warmup_steps", *SCHEDULE_KEYS[name]))
    check_number(cfg, "scheduler.warmup_steps", low=0, integer=True, optional=True)
    required = [k for k, v in SCHEDULE_KEYS[name].items() if v is None]
    for key in required:
        if select(cfg, f"scheduler.{key}") is None:
            raise ConfigError(f"scheduler.{key}", None, f"scheduler={name} needs {key}")
    if "unit" in SCHEDULE_KEYS[name] and select(cfg, "scheduler.unit") is not None:
        check_name(cfg, "scheduler.unit", UNITS)
    if "gamma" in SCHEDULE_KEYS[name] and select(cfg, "scheduler.gamma") is not None:
        gamma = check_number(cfg, "scheduler.gamma", low=0, low_open=True)
        if gamma > 1:
            notes.append(f"scheduler.gamma={gamma} > 1: the learning rate grows instead of decaying")
    if name == "step":
        check_number(cfg, "scheduler.step_size", low=1, integer=True)
    if name == "multistep":
        ms = select(cfg, "scheduler.milestones")
        ok = not isinstance(ms, (str, bytes, Mapping)) and hasattr(ms, "__len__") and all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in ms) and list(ms) == sorted(set(ms))
        if not ok:
            raise ConfigError("scheduler.milestones", ms, "must be a list of increasing integers >= 1 (epochs, or "
                              "updates with unit=step)")
    if name == "inverse_time":
        check_number(cfg, "scheduler.k", low=0)
    if name == "cosine":
        check_number(cfg, "scheduler.min_factor", low=0, high=1, optional=True)
    return notes
