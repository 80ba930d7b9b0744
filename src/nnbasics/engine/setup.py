"""The one set-up path: config -> data -> preprocessor -> splits -> budget -> loss.

Every way of training (a single run, a population, the suite, a search) starts here, so a data
convention, the test-set firewall or the budget arithmetic is written once. The parts a caller
supplies (a data bundle, a fitted preprocessor, a loss) are taken as given.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from nnbasics.data import datasets as data_mod
from nnbasics.data.preprocessing import build_preprocessor
from nnbasics.errors import ConfigError
from nnbasics.nn.losses import build_loss


def resolve_device(spec: str) -> torch.device:
    """auto -> CUDA when available, else CPU; a CUDA device that is not there is a config error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", spec, "CUDA is not available on this machine; use device=cpu or device=auto")
    return torch.device(spec)


def resolve_batch_size(spec, n_train: int) -> int:
    """An integer batch size: ``full`` is the whole training split (gradient descent); a number
    larger than the split is clipped to it."""
    if spec == "full":
        return n_train
    return min(int(spec), n_train)


CHECKPOINT_POLICIES = {"last": frozenset({"last"}), "best": frozenset({"best"}),
                       "both": frozenset({"last", "best"}), "none": frozenset(), True: frozenset({"last"}),
                       False: frozenset()}


def checkpoint_policy(cfg: Mapping) -> frozenset:
    """What a run keeps on disk: ``last`` (checkpoint.pt every epoch: what a resume needs),
    ``best`` (best.pt: the weights of the best epoch by ``best_metric``), both, or none;
    ``checkpoint: true`` means last and ``false`` none."""
    return CHECKPOINT_POLICIES[cfg.get("checkpoint", "last")]


def test_split_forbidden():
    raise RuntimeError("the test split is never read inside a hyperparameter search (search=true); "
                       "evaluate the chosen configuration in a separate final run")


@dataclass
class Budget:
    """How many updates, in how many epochs of how many steps (``steps`` wins over ``epochs``)."""

    batch_size: int
    steps_per_epoch: int
    total_steps: int
    epochs: int

    @classmethod
    def of(cls, cfg: Mapping, n_train: int, batch_size: int) -> "Budget":
        steps_per_epoch = math.ceil(n_train / batch_size)
        total = int(cfg["steps"]) if cfg.get("steps") else int(cfg["epochs"]) * steps_per_epoch
        return cls(batch_size, steps_per_epoch, total, math.ceil(total / steps_per_epoch))


@dataclass
class Setup:
    """What every trainer needs before its model exists: the data on the device (preprocessed),
    the fitted preprocessor, the loss, the task and the sampling rule."""

    device: torch.device
    bundle: data_mod.DataBundle
    preprocessor: Any
    train: data_mod.Split
    val: data_mod.Split
    loss_fn: Callable
    replacement: bool
    t_start: float = field(default_factory=time.perf_counter)

    @property
    def task(self) -> str:
        return self.bundle.task

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def load_test(self) -> data_mod.Split:
        """The test split, preprocessed like the others (read once, after training)."""
        test = self.bundle.load_test()
        return data_mod.Split(self.preprocessor.transform(test.x), test.y)


def _load(cfg_data: Mapping, device: torch.device) -> data_mod.DataBundle:
    """``load_data``, with the sizes only the loaded files can check: a validation split as large
    as the training file, a ``train_size`` above what is left for training (refused, not clipped)."""
    try:
        bundle = data_mod.load_data(cfg_data, device=device)
    except ValueError as e:
        if str(e).startswith("val_size="):  # carve_validation's message: the file is smaller than val_size
            raise ConfigError("data.val_size", cfg_data.get("val_size"), f"{e}: the training file of "
                              f"{cfg_data.get('name')} is smaller; lower data.val_size") from None
        raise
    train_size = cfg_data.get("train_size")
    if train_size and len(bundle.train) < int(train_size):
        raise ConfigError("data.train_size", train_size, f"the training split of {cfg_data.get('name')} has only "
                          f"{len(bundle.train)} samples (after the validation split); at most "
                          f"{len(bundle.train)}, or null for all of them")
    return bundle


def prepare(cfg: Mapping, *, data: data_mod.DataBundle | None = None, preprocessor=None,
            loss: Callable | None = None) -> Setup:
    """Set the threads, resolve the device, place the data on it, fit (or take) the preprocessor,
    build (or take) the loss. ``cfg`` has been validated."""
    t_start = time.perf_counter()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    device = resolve_device(cfg["device"])
    bundle = data if data is not None else _load(cfg["data"], device)
    if cfg.get("search"):
        # Test-set firewall: inside a hyperparameter search the test split cannot be read.
        bundle = dataclasses.replace(bundle, load_test=test_split_forbidden)
    pre = preprocessor if preprocessor is not None else build_preprocessor(cfg["preprocess"]).fit(bundle.train.x)
    return Setup(device=device, bundle=bundle, preprocessor=pre,
                 train=data_mod.Split(pre.transform(bundle.train.x), bundle.train.y),
                 val=data_mod.Split(pre.transform(bundle.val.x), bundle.val.y),
                 loss_fn=loss if loss is not None else build_loss(cfg["loss"]),
                 replacement=cfg.get("sampling") == "replacement", t_start=t_start)


__all__ = ["Setup", "Budget", "prepare", "resolve_device", "resolve_batch_size", "test_split_forbidden",
           "checkpoint_policy", "CHECKPOINT_POLICIES"]
