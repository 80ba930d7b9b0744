"""The `@hydra.main` wrappers and nothing else: `nnbasics-train` (and `python -m nnbasics`)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import uuid
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

CONF_DIR = str(Path(os.environ.get("NNBASICS_CONF", Path(__file__).resolve().parents[3] / "conf")))

# A short random id in every run and sweep directory name, so two jobs started in the same
# second never share a directory. use_cache: resolved once per config, so the name is stable.
if not OmegaConf.has_resolver("nnbasics_uid"):
    OmegaConf.register_new_resolver("nnbasics_uid", lambda: uuid.uuid4().hex[:6], use_cache=True)

log = logging.getLogger("nnbasics")


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _discard_if_empty(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's own files (a run that never
    started), so a failed launch leaves nothing that looks like a result."""
    leftovers = [p for p in run_dir.iterdir() if p.name not in (".hydra", "train.log")] if run_dir.exists() else []
    if not leftovers and run_dir.exists():
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def train_main(cfg: DictConfig) -> float | None:
    """Train one configuration; return val/acc (the value a Hydra sweeper optimizes)."""
    from hydra.core.hydra_config import HydraConfig

    from nnbasics.errors import ConfigError, DataError, DivergenceError, NNBasicsError
    from nnbasics.engine.rundir import write_json
    from nnbasics.engine.train import train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = train(cfg, run_dir=cfg.resume or run_dir)
    except DivergenceError as e:
        print(f"error: {e}", file=sys.stderr)
        print(f"run dir: {run_dir}")
        if _is_multirun():
            return float("nan")
        sys.exit(3)
    except (ConfigError, DataError, NNBasicsError) as e:
        print(f"error: {e}", file=sys.stderr)
        if _is_multirun():
            # Keep the sweep going; record the failure where the summary will find it.
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / "metrics.json", {"status": "failed", "error": str(e)})
            return float("nan")
        _discard_if_empty(run_dir)
        sys.exit(2)
    if cfg.resume and Path(cfg.resume).resolve() != run_dir.resolve():
        _discard_if_empty(run_dir)
        run_dir = Path(cfg.resume)
    shown = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("train/acc", "val/acc", "test/acc") if k in metrics)
    print(f"final: {shown}  ({metrics['wall_time_s']:.1f} s)")
    print(f"tensorboard: nnbasics-board --logdir {run_dir}")
    print(f"run dir: {run_dir}")
    return metrics.get("val/acc")


if __name__ == "__main__":
    train_main()
