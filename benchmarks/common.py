"""Shared helpers of the benchmarks: data root, config composition, a header with the setup."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def data_root() -> str:
    root = os.environ.get("NNBASICS_DATA", str(REPO.parent / "shared" / "data"))
    if not (Path(root) / "MNIST" / "raw").is_dir():
        raise SystemExit(f"MNIST not found under {root}: set NNBASICS_DATA to a folder holding MNIST/raw/")
    os.environ["NNBASICS_DATA"] = root
    return root


def compose(overrides: list[str]):
    """The training config as `nnbasics-train <overrides>` composes it."""
    import nnbasics.cli.train  # noqa: F401  (registers the resolver conf/train.yaml uses)
    from hydra import compose as hydra_compose, initialize_config_dir

    from nnbasics.conf import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def header(title: str, threads: int | None = None) -> None:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {title}\n# torch {torch.__version__}, {os.cpu_count()} CPUs, device {dev}, "
          f"threads {threads or torch.get_num_threads()}, load average at start {load:.1f}", flush=True)
