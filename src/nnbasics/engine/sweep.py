"""A sweep directory read back as jobs: the one reader of ``nnbasics-summary`` (``cli/summary.py``)
and ``load_sweep`` (``engine/load.py``).

A sweep directory holds one directory per job (``<sweep dir>/<job.num>``; any folder of run
directories will do), each with ``.hydra/overrides.yaml`` (what the job changed), ``config.yaml``
(the resolved config, with its ``tags``) and ``metrics.json`` (what it measured). Only files are
read, so a sweep whose jobs ran elsewhere reads the same once its directories are copied here.
The sweep directory's ``failures.txt`` (``note_failure``, ``read_failures``) records the jobs of
the last multirun that failed or were refused, for the multirun's exit status.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("completed", "diverged", "failed", "missing")


@dataclass
class Job:
    """One run directory of a sweep."""

    dir: Path
    overrides: dict[str, str]  # key -> value as written on the command line
    seed: Any
    status: str  # completed | diverged | failed | missing (no metrics.json: killed, still running)
    metrics: dict[str, Any]
    tags: list[str] = field(default_factory=list)  # the run's ``tags`` (config.yaml)

    @property
    def error(self) -> str:
        if self.status == "diverged":
            return f"diverged at step {self.metrics.get('diverged_at_step')}"
        return str(self.metrics.get("error", "no metrics.json" if self.status == "missing" else ""))


# ----------------------------------------------------------------------------------------------
# Reading a sweep directory
# ----------------------------------------------------------------------------------------------


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_job_dirs(root: Path) -> list[Path]:
    """Every directory under ``root`` that is a run: it has ``.hydra/overrides.yaml`` or
    ``metrics.json``. Hidden folders (.submitit, .hydra) and the insides of runs are skipped."""
    found = []

    def walk(d: Path) -> None:
        if (d / ".hydra" / "overrides.yaml").exists() or (d / "metrics.json").exists():
            found.append(d)
            return
        for child in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
            walk(child)

    walk(root)
    return sorted(found, key=lambda p: _natural(p.relative_to(root)))


def _read_overrides(job_dir: Path) -> dict[str, str]:
    """``key -> value`` of the job's command-line overrides (``+``/``++`` prefixes dropped). A
    run without ``.hydra`` falls back to its flattened ``config.yaml``."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if path.exists():
        from omegaconf import OmegaConf

        out = {}
        for line in OmegaConf.to_container(OmegaConf.load(path)) or []:
            key, _, value = str(line).partition("=")
            out[key.lstrip("+~")] = value
        return out
    cfg_path = job_dir / "config.yaml"
    if cfg_path.exists():
        from omegaconf import OmegaConf

        return {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v)
                for k, v in _flatten(OmegaConf.to_container(OmegaConf.load(cfg_path))).items()}
    return {}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_job(job_dir: Path) -> Job:
    overrides = _read_overrides(job_dir)
    path = job_dir / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        metrics = {"status": "failed", "error": f"unreadable metrics.json: {e}"}
    status = metrics.get("status", "missing") if metrics else "missing"
    if status not in STATUSES:
        status = "failed"
    seed = metrics.get("seed", overrides.get("seed"))
    return Job(job_dir, overrides, seed, status, metrics, _read_tags(job_dir))


def _read_tags(job_dir: Path) -> list[str]:
    """The ``tags`` of the run's resolved config (``config.yaml``, else ``.hydra/config.yaml``);
    [] when there are none or the file cannot be read."""
    for path in (job_dir / "config.yaml", job_dir / ".hydra" / "config.yaml"):
        if path.exists():
            from omegaconf import OmegaConf

            try:
                tags = OmegaConf.to_container(OmegaConf.load(path)).get("tags")
            except Exception:  # noqa: BLE001 - a config that cannot be read has no tags to show
                return []
            return [str(t) for t in tags] if isinstance(tags, list) else []
    return []


FAILURES = "failures.txt"  # in the sweep directory: one line per job of the last multirun that failed or was refused


def note_failure(sweep_dir: Path, job_num: Any, message: str) -> None:
    """Note a job that failed or was refused (read by ``on_multirun_end`` for the exit status);
    one short appended line, so jobs in other processes can note theirs beside it."""
    line = f"{job_num}\t{' '.join(str(message).split())}\n"
    try:
        with open(sweep_dir / FAILURES, "a") as f:
            f.write(line)
    except OSError:
        pass


def read_failures(sweep_dir: Path) -> list[tuple[str, str]]:
    try:
        lines = (sweep_dir / FAILURES).read_text().splitlines()
    except OSError:
        return []
    return [tuple(line.split("\t", 1)) for line in lines if "\t" in line]


__all__ = ["Job", "STATUSES", "FAILURES", "find_job_dirs", "read_job", "note_failure", "read_failures"]
