"""Validate the whole config before any work starts.

Each check raises ConfigError naming the key, the value and what is allowed. The registries of
the library modules (initializers, activations, losses, optimizers, ...) are the source of the
allowed names, so a new entry is valid as soon as it is registered.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

from nnbasics.errors import ConfigError


def _get(cfg: Mapping, dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if node is None or part not in node:
            return default
        node = node[part]
    return node


def check_name(cfg: Mapping, key: str, valid) -> str:
    value = _get(cfg, key)
    if value not in valid:
        raise ConfigError(key, value, f"choose one of: {', '.join(sorted(map(str, valid)))}")
    return value


def check_number(cfg: Mapping, key: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 optional: bool = False) -> Any:
    """Check that ``key`` is a number in [low, high] (open ends when *_open)."""
    value = _get(cfg, key)
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)) \
            or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(key, value, f"must be {kind}{_range_text(low, high, low_open, high_open)}")
    if (low is not None and (value < low or (low_open and value == low))) or \
            (high is not None and (value > high or (high_open and value == high))):
        raise ConfigError(key, value, f"must be {kind}{_range_text(low, high, low_open, high_open)}")
    return value


def _range_text(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low}"
    if low is None:
        return f" {'<' if high_open else '<='} {high}"
    return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def validate(cfg: Mapping, *, custom_loss: bool = False) -> list[str]:
    """Check every value of a training config; raise ConfigError on the first bad one.
    Returns warnings (combinations that are allowed but usually a mistake). ``custom_loss``: the
    caller supplies its own loss callable (``train(..., loss=fn)``), so the loss-vs-task rule is
    not applied."""
    from nnbasics.nn import activations
    from nnbasics.data import datasets as data
    from nnbasics.nn import init
    from nnbasics.nn import losses
    from nnbasics.nn import models
    from nnbasics.optim import optimizers as optim
    from nnbasics.data import preprocessing
    from nnbasics.optim import regularization
    from nnbasics.optim import schedules

    notes: list[str] = []
    for group in ("data", "model", "activation", "init", "loss", "optimizer", "scheduler", "regularization", "preprocess"):
        if not isinstance(_get(cfg, group), Mapping):
            raise ConfigError(group, _get(cfg, group), f"the config group '{group}' must be selected (e.g. {group}=<option>)")

    # budget
    steps = check_number(cfg, "steps", low=1, integer=True, optional=True)
    if steps is None:
        check_number(cfg, "epochs", low=1, integer=True)
    bs = _get(cfg, "batch_size")
    if bs not in ("full", "auto"):
        check_number(cfg, "batch_size", low=1, integer=True)
    check_name(cfg, "sampling", ("shuffle", "replacement"))
    check_number(cfg, "seed", low=0, integer=True)
    check_number(cfg, "eval_every", low=1, integer=True, optional=True)
    device = _get(cfg, "device")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ConfigError("device", device, "choose auto, cpu, cuda or cuda:N")
    check_number(cfg, "threads", low=1, integer=True, optional=True)

    # data
    name = check_name(cfg, "data.name", data.DATASETS)
    if name in data.IMAGE_SETS:
        check_number(cfg, "data.val_size", low=0, high=50000, integer=True)
        check_name(cfg, "data.target", ("label", "parity", "attributes"))
    else:
        check_name(cfg, "data.target", ("value",) if name == "curve" else ("label", "parity", "attributes"))
        n = check_number(cfg, "data.n_samples", low=4, integer=True)
        check_number(cfg, "data.val_size", low=1, integer=True)
        check_number(cfg, "data.test_size", low=1, integer=True)
        if _get(cfg, "data.val_size") + _get(cfg, "data.test_size") >= n:
            raise ConfigError("data.val_size", _get(cfg, "data.val_size"),
                              f"val_size + test_size must be below data.n_samples={n}")
        check_number(cfg, "data.noise", low=0)
    check_number(cfg, "data.train_size", low=1, integer=True, optional=True)

    # model
    check_name(cfg, "model.name", getattr(models, "MODELS", ("mlp",)))
    if _get(cfg, "model.name") == "mlp":
        check_number(cfg, "model.depth", low=0, integer=True)
        check_number(cfg, "model.width", low=1, integer=True)
    for key in ("model.dropout.p", "model.dropout.input_p"):
        if _get(cfg, key) is not None:
            check_number(cfg, key, low=0, high=1, high_open=True)
    check_name(cfg, "activation.name", activations.ACTIVATIONS)
    check_name(cfg, "init.name", init.INITIALIZERS)
    if _get(cfg, "init.mode") is not None:
        check_name(cfg, "init.mode", ("fan_in", "fan_out"))

    # loss and task
    loss = check_name(cfg, "loss.name", losses.LOSSES)
    task = data.task_of(_get(cfg, "data.target", "label"), 10)[0]
    if not custom_loss and task not in losses.LOSS_TASKS.get(loss, {task}):
        raise ConfigError("loss.name", loss, f"a {task} target ({name}, target={_get(cfg, 'data.target', 'label')}) "
                          f"needs one of: {', '.join(sorted(k for k, v in losses.LOSS_TASKS.items() if task in v))}")

    # optimization
    check_name(cfg, "optimizer.name", optim.OPTIMIZERS)
    check_number(cfg, "optimizer.lr", low=0, low_open=True)
    if _get(cfg, "optimizer.impl") is not None:
        check_name(cfg, "optimizer.impl", ("nnbasics", "torch"))
    for key in ("optimizer.momentum", "optimizer.weight_decay"):
        if _get(cfg, key) is not None:
            check_number(cfg, key, low=0)
    if _get(cfg, "optimizer.eps") is not None:
        check_number(cfg, "optimizer.eps", low=0, low_open=True)
    check_name(cfg, "scheduler.name", getattr(schedules, "SCHEDULES", ("constant", "cosine")))
    if _get(cfg, "scheduler.warmup_steps") is not None:
        check_number(cfg, "scheduler.warmup_steps", low=0, integer=True)

    # regularization and preprocessing
    check_name(cfg, "regularization.name", getattr(regularization, "REGULARIZERS", ("none", "l2")))
    for key in ("regularization.weight_decay", "regularization.l1"):
        if _get(cfg, key) is not None:
            check_number(cfg, key, low=0)
    check_name(cfg, "preprocess.name", getattr(preprocessing, "PREPROCESSORS", ("none",)))
    if _get(cfg, "preprocess.eps") is not None:
        check_number(cfg, "preprocess.eps", low=0, low_open=True)

    # monitor
    if _get(cfg, "monitor") is not None:
        check_name(cfg, "monitor.level", ("off", "basic", "full"))
        check_number(cfg, "monitor.every", low=1, integer=True)

    # each library module checks its own options (see the module's validate_config)
    from nnbasics.engine import monitor
    for module in (init, activations, models, losses, optim, schedules, regularization, preprocessing, monitor):
        hook = getattr(module, "validate_config", None)
        if hook is not None:
            notes.extend(hook(cfg) or [])

    if _get(cfg, "activation.name") == "selu" and _get(cfg, "init.name") not in ("lecun_normal", "lecun_uniform"):
        notes.append(f"activation=selu is self-normalizing only with LeCun init; init={_get(cfg, 'init.name')} "
                     f"may not keep activations normalized (use init=lecun_normal)")
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return notes
