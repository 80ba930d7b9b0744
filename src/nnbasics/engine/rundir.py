"""The one run-directory writer: every way of training (a single run, a population member, the
suite, a search) leaves the same self-describing folder through ``RunDir``:

    config.yaml        the resolved config
    metrics.json       final metrics and status (completed | diverged | failed)
    history.json       per-epoch metrics and the per-step loss curve (with wall time)
    tb/                TensorBoard events (scalars train/loss, train/acc, val/loss, val/acc, lr; hparams)
    checkpoint.pt      the last checkpoint (model, optimizer, RNG states, data order position)
    preprocess.pt      the fitted preprocessing statistics
    git.txt            the git revision of the code

Rules: every file is written atomically (a reader never sees half a file); a directory that holds
a finished run (metrics.json with status completed or diverged) is never written into again; a
checkpoint is only ever resumed with the config that made it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from nnbasics.config import select
from nnbasics.errors import ConfigError

# Ordered as TensorBoard's HPARAMS tab shows them (it ticks the first five columns).
FINAL_KEYS = ("val/acc", "val/loss", "test/acc", "train/loss", "train/acc", "test/loss")
SCALAR_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "lr")
HPARAM_KEYS = {
    "activation": "activation.name", "init": "init.name", "optimizer": "optimizer.name", "lr": "optimizer.lr",
    "batch_size": "batch_size", "width": "model.width", "depth": "model.depth",
    "regularization": "regularization.name", "weight_decay": "regularization.weight_decay",
    "dropout": "model.dropout.p", "data": "data.name", "seed": "seed",
}
# Keys that may change between a run and its resume (they do not change the numbers).
RESUME_MAY_DIFFER = {"resume", "progress", "eval_test", "threads"}
FINISHED = ("completed", "diverged")


def git_revision() -> str:
    """The commit of the code that ran, with '-dirty' when the tree had changes."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float))
    os.replace(tmp, path)


def save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def hparams_of(cfg: Mapping) -> dict[str, Any]:
    """The hyperparameters shown in TensorBoard's HPARAMS tab (scalars and strings only)."""
    from nnbasics.nn.models import dropout_settings

    out = {}
    for name, key in HPARAM_KEYS.items():
        value = dropout_settings(cfg)["p"] if name == "dropout" else select(cfg, key)
        if value is not None:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _dictconfig(cfg: Mapping) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))


def write_hparams(writer, hparams: dict, metrics: dict, step: int = 0) -> None:
    """Write hparams into the run's own event file (not a sub-run), so a multirun's runs line up
    in one HPARAMS table; the metric columns are scalars logged under the same tags."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
    exp, ssi, sei = hparams_summary(hparams, metrics)
    writer.file_writer.add_summary(exp)
    writer.file_writer.add_summary(ssi)
    writer.file_writer.add_summary(sei)
    for k, v in metrics.items():
        writer.add_scalar(k, v, step)  # at the last step: a step going back would truncate curves


def checkpoint_state(*, model: Mapping, optimizer: Mapping, generator: torch.Tensor, torch_rng: torch.Tensor,
                     cuda_rng: torch.Tensor | None, epoch: int, step: int, history: list, curve: list,
                     elapsed_s: float, start_loss: float = math.nan) -> dict[str, Any]:
    """The checkpoint layout (``checkpoint.pt``): everything a resume needs to continue bit for bit."""
    return {"model": model, "optimizer": optimizer, "generator": generator, "torch_rng": torch_rng,
            "cuda_rng": cuda_rng, "epoch": epoch, "step": step, "history": json.dumps(history),
            "curve": json.dumps(curve), "elapsed_s": elapsed_s, "start_loss": start_loss}


class RunDir:
    """A run's folder and everything written into it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._writer = None

    # --- before the run ------------------------------------------------------------------------

    def open(self, cfg: Mapping) -> dict | None:
        """Create the folder, or find the checkpoint to resume from (returned, else None).
        Refuses a folder that holds a finished run, and a checkpoint made with another config."""
        self.path.mkdir(parents=True, exist_ok=True)
        metrics = self.path / "metrics.json"
        if metrics.exists():
            status = json.loads(metrics.read_text()).get("status")
            if status in FINISHED:
                raise ConfigError("run dir", str(self.path), f"it already holds a {status} run; start a new run "
                                  f"(a fresh hydra.run.dir) instead of overwriting it")
        ckpt = self.path / "checkpoint.pt"
        if not ckpt.exists():
            return None
        saved = self.path / "config.yaml"
        if saved.exists():
            before = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
            now = OmegaConf.to_container(_dictconfig(cfg), resolve=True)
            diff = sorted(k for k in set(before) | set(now) if k not in RESUME_MAY_DIFFER and before.get(k) != now.get(k))
            if diff:
                raise ConfigError("resume", str(self.path), f"the checkpoint there was made with a different config "
                                  f"(differs in: {', '.join(diff)}); resume with the same config or start a new run")
        return torch.load(ckpt, map_location="cpu", weights_only=True)

    def start(self, cfg: Mapping, preprocess_state: Mapping, texts: Mapping[str, str] | None = None,
              purge_step: int | None = None) -> None:
        """Write what describes the run (config, code revision, preprocessing) and open TensorBoard;
        ``texts`` (tag -> text: model summary, init audit) go to its TEXT tab."""
        (self.path / "config.yaml").write_text(OmegaConf.to_yaml(_dictconfig(cfg), resolve=True))
        (self.path / "git.txt").write_text(git_revision() + "\n")
        save_atomic(dict(preprocess_state), self.path / "preprocess.pt")
        for tag, text in (texts or {}).items():
            self.writer(purge_step).add_text(tag, "<pre>" + text + "</pre>", 0)

    def writer(self, purge_step: int | None = None):
        """The run's TensorBoard writer (``tb/``), opened on first use."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path / "tb"), purge_step=purge_step)
        return self._writer

    # --- during the run ------------------------------------------------------------------------

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One epoch's scalars at its last step."""
        for k in SCALAR_KEYS:
            if k in row:
                self.writer().add_scalar(k, row[k], row["step"])

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        save_atomic(dict(state), self.path / "checkpoint.pt")

    # --- after the run -------------------------------------------------------------------------

    def finish(self, cfg: Mapping, final: Mapping[str, Any], history: list, curve: list) -> None:
        """The final hparams, history.json and, last, metrics.json (a run is finished once it is there)."""
        write_hparams(self.writer(), hparams_of(cfg), {k: final[k] for k in FINAL_KEYS if k in final},
                      final.get("steps", 0))
        self.close()
        write_json(self.path / "history.json", {"epochs": history, "curve": curve,
                                                "curve_columns": ["step", "time_s", "train/loss"]})
        write_json(self.path / "metrics.json", dict(final))

    def fail(self, record: Mapping[str, Any]) -> None:
        """Record a run that could not finish (``status: failed``)."""
        self.close()
        write_json(self.path / "metrics.json", {"status": "failed", **record})

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["RunDir", "checkpoint_state", "git_revision", "write_json", "save_atomic", "hparams_of",
           "write_hparams", "FINAL_KEYS"]
