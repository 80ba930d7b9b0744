"""Config helpers: read a dotted key, and check a name, a number, a boolean or a group's keys.

The bottom layer of the library: it imports nothing of nnbasics but its error types, so every
building block (nn/, optim/, data/) can validate its own config group with these helpers and the
engine only adds the top-level keys and the rules that join groups (``engine/validate.py``).

One rule for missing and null, everywhere (``OmegaConf.select``'s): a key that is absent, or a
path that runs through a null node, gives ``default``; a key that is present and null gives
``None``. A check that takes ``optional=True`` accepts both (returns None).

Each check raises ``ConfigError`` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from nnbasics.errors import ConfigError

# Keys that Hydra's instantiate gives a meaning to: any group may carry them.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})


def select(cfg: Mapping | None, key: str, default: Any = None) -> Any:
    """The value at the dotted ``key`` of ``cfg``: ``default`` when the key is absent (or a node
    on its path is absent or null, or a DictConfig value is ``???``); ``None`` when it is null.
    ``OmegaConf.select`` for DictConfigs; the same rule for plain dicts."""
    node: Any = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, DictConfig):
            return OmegaConf.select(node, ".".join(parts[i:]), default=default)
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def check_name(cfg: Mapping, key: str, valid: Iterable) -> Any:
    """Check that ``key`` is one of ``valid`` (a registry or a tuple of names)."""
    value = select(cfg, key)
    try:
        ok = value in valid
    except TypeError:  # an unhashable value (a list, a node) is no name
        ok = False
    if not ok:
        raise ConfigError(key, value, f"choose one of: {', '.join(sorted(map(str, valid)))}")
    return value


def check_number(cfg: Mapping, key: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 optional: bool = False) -> Any:
    """Check that ``key`` is a number in [low, high] (open ends when *_open); booleans, NaN and
    infinities are not numbers. ``optional``: absent or null is accepted (returns None)."""
    value = select(cfg, key)
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


def check_bool(cfg: Mapping, key: str, optional: bool = False) -> bool | None:
    """Check that ``key`` is a real boolean (true or false): no string (``yes``, ``no``,
    ``maybe``), no number. ``optional``: absent or null is accepted (returns None)."""
    value = select(cfg, key)
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def check_keys(node: Mapping | None, group: str, allowed: Iterable[str]) -> None:
    """Refuse any key of ``node`` (the config group ``group``; "" for the top level) outside
    ``allowed`` (Hydra's ``_target_``-style keys are always allowed), naming the closest valid
    key: a typo is an error, not a silently ignored setting."""
    if node is None:
        return
    allowed = set(allowed)
    for key in node:
        if key in allowed or key in HYDRA_KEYS:
            continue
        dotted = f"{group}.{key}" if group else str(key)
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
        hint = f"did you mean `{group + '.' if group else ''}{close[0]}`? " if close else ""
        name = node.get("name") if group else None
        owner = f"{group}={name} takes" if isinstance(name, str) else (f"{group} takes" if group else
                                                                       "the top-level keys are")
        raise ConfigError(dotted, _raw(node, key), f"unknown key; {hint}{owner}: {', '.join(sorted(allowed))}")


def _raw(node: Mapping, key: str) -> Any:
    """The value for the message, without failing on an interpolation that does not resolve."""
    try:
        return node[key]
    except Exception:  # noqa: BLE001 - only for the message
        return "?"
