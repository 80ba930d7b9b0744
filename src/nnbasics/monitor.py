"""What goes to TensorBoard beyond the scalars. `monitor.level: off | basic | full`."""

from __future__ import annotations

from typing import Mapping

from torch import nn


class Monitor:
    """Hooks the training loop calls; `off` does nothing."""

    def __init__(self, cfg: Mapping | None, model: nn.Module, writer, run_cfg: Mapping | None = None,
                 train_split=None, task: str | None = None, run_dir=None):
        self.level = (cfg or {}).get("level", "off")
        self.every = int((cfg or {}).get("every", 100))
        self.model, self.writer = model, writer

    def on_train_start(self, step: int) -> None:
        if self.level == "off":
            return
        for name, p in self.model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", p.detach(), step)

    def before_step(self, step: int) -> None:
        pass

    def after_step(self, step: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, step: int) -> None:
        if self.level == "off":
            return
        for name, p in self.model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", p.detach(), step)

    def on_train_end(self, step: int) -> None:
        pass
