"""The one training loop: epochs of mini-batches for K members (K = 1 for a single run).

The loop owns the bookkeeping every way of training shares: the data streams (one seeded
``torch.Generator`` per seed, as ``data.minibatches`` draws them), the LR schedule step, the
running train loss and accuracy, the divergence rule, the loss curve, validation every
``eval_every`` epochs, the per-epoch history rows and log line, the budget, and the final
evaluation. What one update *is* belongs to a ``Learner``:

- ``engine.train.Solo``: one ``nn.Module`` and its optimizer (monitor hooks, checkpoints, resume);
- ``engine.population.Population``: K models with stacked weights, one batched update.

A Learner has ``K``, ``seeds`` (member k reads the data stream of ``seeds[k]``) and:

    set_lr(step)                 the schedule's LR for this update
    step(idxs) -> (losses, correct, check)   one update on the streams' batch indices; K-vectors:
                                 the members' mini-batch losses, correct counts, and the value
                                 whose finiteness decides divergence
    lrs() -> list[float]         each member's current LR
    evaluate(split) -> (losses, accs)        per-member means over a split (eval mode)

Divergence: a member whose loss (checked every update on CPU, every 25 on CUDA, and at the end of
each epoch) is not finite, or has grown past ``blowup`` (``divergence_factor``) times its first
mini-batch loss, stops training; the others go on; when none is left the loop ends. The best
epoch by ``Watch.metric`` is followed for every member (``best/*`` metrics, ``best.pt``), and a
single run may stop early (``early_stopping.patience``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch
from torch import Tensor

from nnbasics.config import select
from nnbasics.data import datasets as data_mod
from nnbasics.engine.setup import Budget, Setup

log = logging.getLogger("nnbasics")

ROW_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")


class Learner(Protocol):
    K: int
    seeds: Sequence[int]

    def set_lr(self, step: int) -> None: ...
    def step(self, idxs: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]: ...
    def lrs(self) -> list[float]: ...
    def evaluate(self, split: data_mod.Split) -> tuple[list[float], list[float]]: ...


BEST_METRICS = {"val/acc": "max", "val/loss": "min"}


@dataclass(frozen=True)
class Watch:
    """Which validation metric decides the best epoch (``best.pt``, ``best/*`` metrics) and when
    to stop early: after ``patience`` validated epochs without an improvement of more than
    ``min_delta`` (None: never)."""

    metric: str = "val/acc"
    patience: int | None = None
    min_delta: float = 0.0

    @classmethod
    def of(cls, cfg: Mapping) -> "Watch":
        """From the config's ``best_metric`` and ``early_stopping`` (patience, min_delta)."""
        return cls(metric=cfg.get("best_metric") or "val/acc", patience=select(cfg, "early_stopping.patience"),
                   min_delta=float(select(cfg, "early_stopping.min_delta") or 0.0))

    def better(self, value: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return math.isfinite(value)
        if BEST_METRICS[self.metric] == "max":
            return value > best + self.min_delta
        return value < best - self.min_delta


@dataclass
class Progress:
    """Where the loop stands: everything a checkpoint keeps and the final metrics read."""

    K: int
    epoch: int = 0
    step: int = 0
    elapsed_before: float = 0.0
    history: list[list[dict]] = field(default_factory=list)
    curve: list[list[list[float]]] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)
    diverged_at: list[int | None] = field(default_factory=list)
    diverged_loss: list[float] = field(default_factory=list)
    steps_done: list[int | None] = field(default_factory=list)
    start_loss: list[float] = field(default_factory=list)   # each member's first mini-batch loss
    best_epoch: list[int | None] = field(default_factory=list)  # by the Watch's metric
    best_value: list[float | None] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)         # validated epochs since the best
    stopped_early: list[int | None] = field(default_factory=list)  # the epoch early stopping ended
    generators: dict[int, torch.Generator] = field(default_factory=dict)
    t_loop: float = 0.0

    def __post_init__(self):
        K = self.K
        self.history = self.history or [[] for _ in range(K)]
        self.curve = self.curve or [[] for _ in range(K)]
        self.alive = self.alive or [True] * K
        self.diverged_at = self.diverged_at or [None] * K
        self.diverged_loss = self.diverged_loss or [math.nan] * K
        self.steps_done = self.steps_done or [None] * K
        self.start_loss = self.start_loss or [math.nan] * K
        self.best_epoch = self.best_epoch or [None] * K
        self.best_value = self.best_value or [None] * K
        self.stale = self.stale or [0] * K
        self.stopped_early = self.stopped_early or [None] * K

    def watch(self, k: int, row: Mapping[str, Any], watch: "Watch") -> None:
        """Follow member k's best epoch through a history row (replayed from the history on resume)."""
        if watch.metric not in row:
            return
        if watch.better(row[watch.metric], self.best_value[k]):
            self.best_epoch[k], self.best_value[k], self.stale[k] = row["epoch"], row[watch.metric], 0
        else:
            self.stale[k] += 1

    def improved(self, k: int) -> bool:
        """Whether member k's last epoch is its best so far."""
        return self.best_epoch[k] is not None and self.best_epoch[k] == self.epoch

    def training(self, k: int) -> bool:
        return self.alive[k] and self.stopped_early[k] is None

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_loop

    def kill(self, k: int, value: float, label: str) -> None:
        if not self.alive[k]:
            return
        self.alive[k] = False
        self.diverged_at[k], self.steps_done[k], self.diverged_loss[k] = self.step, self.step, value
        log.error(f"{label}training diverged: loss is {value} at step {self.step}")


def run(learner: Learner, setup: Setup, budget: Budget, *, progress: Progress | None = None,
        eval_every: int = 1, show_bar: bool = False, log_epochs: bool = True, blowup: float | None = None,
        watch: Watch = Watch(), on_epoch: Callable[[Progress, list], None] | None = None,
        on_step: Callable[[Progress], None] | None = None, label: Callable[[int], str] = lambda k: "",
        curve_every: int | None = None, curve_after_update: bool = False) -> Progress:
    """Train ``learner`` for ``budget`` (continuing ``progress`` when resuming); ``on_epoch(progress,
    rows)`` runs after each epoch's validation (rows[k] is member k's row, None when it is gone).
    ``blowup``: a member whose loss exceeds ``blowup`` times its first mini-batch loss has
    diverged too (None: only NaN and Inf count). ``watch``: the best epoch's metric and early
    stopping (a single member stops the loop; members of a population cannot stop early).
    ``on_step(progress)`` runs after every update (the profiler's step, the batch-loss scalar).
    ``curve_every``: a point of the loss curve every this many updates (None: about 20 an epoch);
    a point ``[step, time_s, loss]`` holds the loss of the mini-batch of update ``step`` (counted
    from 1) before that update, or, with ``curve_after_update``, on the same mini-batch after it
    (``learner.batch_losses(idxs)``, eval mode: DLFS's ``network.loss(x_batch, t_batch)`` after
    ``optimizer.update``)."""
    K, device = learner.K, setup.device
    p = progress or Progress(K)
    if watch.patience is not None and K > 1:
        raise ValueError("early stopping stops one model; a population cannot stop a member early")
    if progress is not None:  # resumed: the best epoch so far, replayed from the history
        for k in range(K):
            for row in p.history[k]:
                p.watch(k, row, watch)
    streams = sorted(set(int(s) for s in learner.seeds))
    for s in streams:
        p.generators.setdefault(s, torch.Generator().manual_seed(s))
    check_every = 1 if device.type == "cpu" else 25
    limit = None
    bar, logged_at = None, -math.inf
    log_every = int(curve_every) if curve_every else max(1, budget.steps_per_epoch // 20)
    p.t_loop = time.perf_counter()
    for epoch in range(p.epoch, budget.epochs):
        sum_loss = torch.zeros(K, device=device)
        sum_correct = torch.zeros(K, device=device)
        seen = 0
        batchers = [data_mod.minibatches(setup.n_train, budget.batch_size, p.generators[s], setup.replacement, device)
                    for s in streams]
        if show_bar and bar is None:
            bar = _bar(budget.total_steps, p.step)
        if bar is not None:
            bar.set_description_str(f"epoch {epoch + 1}/{budget.epochs}", refresh=False)
        for idxs in zip(*batchers):
            if p.step >= budget.total_steps:
                break
            learner.set_lr(p.step)
            losses, correct, check = learner.step(idxs)
            with torch.no_grad():
                sum_loss += losses.detach() * len(idxs[0])
                sum_correct += correct
            seen += len(idxs[0])
            p.step += 1
            if p.step == 1:
                p.start_loss = [abs(v) for v in check.detach().cpu().tolist()]
            if p.step % check_every == 0:
                bad = ~torch.isfinite(check.detach())
                if blowup is not None:
                    if limit is None:  # once: blowup x each member's first mini-batch loss
                        limit = blowup * torch.tensor(p.start_loss, device=device)
                    bad |= check.detach().abs() > limit
                bad = bad.cpu().tolist()
                if any(bad):
                    values = check.detach().cpu().tolist()
                    for k in range(K):
                        if bad[k]:
                            p.kill(k, values[k], label(k))
                    if not any(p.alive):
                        break
            if p.step % log_every == 0:
                now, values = p.elapsed(), losses.detach().cpu().tolist()
                if curve_after_update:
                    values = learner.batch_losses(idxs)
                for k in range(K):
                    if p.alive[k]:
                        p.curve[k].append([p.step, now, values[k]])
            if bar is not None:
                bar.update(1)
            if on_step is not None:
                on_step(p)
        if not any(p.alive):
            break
        train_loss = (sum_loss.cpu().double() / max(1, seen)).tolist()
        train_acc = (sum_correct.cpu().double() / max(1, seen)).tolist()
        for k in range(K):
            if not math.isfinite(train_loss[k]):
                p.kill(k, train_loss[k], label(k))
        if not any(p.alive):
            break
        val = None
        if len(setup.val) and ((epoch + 1) % eval_every == 0 or epoch + 1 == budget.epochs):
            val = learner.evaluate(setup.val)
        lrs, rows = learner.lrs(), []
        for k in range(K):
            if not p.alive[k]:
                rows.append(None)
                continue
            row = {"epoch": epoch + 1, "step": p.step, "lr": lrs[k], "train/loss": train_loss[k],
                   "train/acc": train_acc[k], "time_s": p.elapsed()}
            if val is not None:
                row.update({"val/loss": val[0][k], "val/acc": val[1][k]})
            p.history[k].append(row)
            p.watch(k, row, watch)
            rows.append(row)
        p.epoch = epoch + 1
        # the epoch's log line: every epoch, but at most about one a second when epochs are tiny
        # (full-batch gradient descent: an epoch is one update), and always the last
        last = p.step >= budget.total_steps
        if log_epochs and (last or time.perf_counter() - logged_at >= 1.0):
            _log_epoch(p, rows, budget.epochs)
            logged_at = time.perf_counter()
        if watch.patience is not None and val is not None and p.stale[0] >= watch.patience:
            p.stopped_early[0] = p.epoch
            log.info(f"early stopping at epoch {p.epoch}: {watch.metric} has not improved for {watch.patience} "
                     f"validated epochs (best {p.best_value[0]:.4f} at epoch {p.best_epoch[0]})")
        if on_epoch is not None:
            on_epoch(p, rows)
        if p.step >= budget.total_steps or p.stopped_early[0] is not None:
            break
    if bar is not None:
        bar.close()
    return p


def _log_epoch(p: Progress, rows: list, epochs: int) -> None:
    if len(rows) == 1:
        row = rows[0]
        log.info("epoch %d/%d  " % (p.epoch, epochs) + "  ".join(f"{k} {row[k]:.4f}" for k in ROW_KEYS if k in row))
        return
    best = max((r.get("val/acc", float("nan")) for r in rows if r), default=float("nan"))
    log.info(f"population epoch {p.epoch}/{epochs}: {sum(p.alive)}/{len(rows)} members training, "
             f"best val/acc {best:.4f}")


def final_metrics(learner: Learner, setup: Setup, p: Progress, cfg: Mapping,
                  extra: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Each member's final metrics: train and val in eval mode; the test split once (never inside
    a search, and only for members that finished). A split with no samples (``data.val_size=0``)
    has no metrics at all (absent, not 0). ``best/*``: the best epoch by the watched metric
    (``best_metric``: val/acc by default) and its numbers (what a source that keeps its
    best-validation parameters reports). ``extra[k]``: member k's own keys (seed, ...)."""
    K = learner.K
    finals: list[dict[str, Any]] = []
    evals: dict[str, tuple[list[float], list[float]]] = {}
    if any(p.alive):
        evals["train"] = learner.evaluate(setup.train)
        if len(setup.val):
            evals["val"] = learner.evaluate(setup.val)
        if cfg.get("eval_test", True) and not cfg.get("search"):
            test = setup.load_test()
            if len(test):
                evals["test"] = learner.evaluate(test)
    wall = p.elapsed_before + time.perf_counter() - setup.t_start
    for k in range(K):
        final: dict[str, Any] = {"status": "completed" if p.alive[k] else "diverged", "epochs": len(p.history[k]),
                                 "steps": p.step if p.alive[k] else p.steps_done[k], **extra[k]}
        if p.alive[k]:
            for split, (loss, acc) in evals.items():
                final.update({f"{split}/loss": loss[k], f"{split}/acc": acc[k]})
            if p.best_epoch[k] is not None:
                best = next(r for r in p.history[k] if r["epoch"] == p.best_epoch[k])
                final.update({"best/epoch": best["epoch"], "best/val/acc": best["val/acc"],
                              "best/val/loss": best["val/loss"]})
            if p.stopped_early[k] is not None:
                final["stopped_early_at_epoch"] = p.stopped_early[k]
        else:
            final["diverged_at_step"] = p.diverged_at[k]
        final["wall_time_s"] = wall
        finals.append(final)
    return finals


def _bar(total: int, done: int):
    """One bar across the run's updates (its description names the epoch)."""
    from tqdm.auto import tqdm

    # disable=None: no bar when the output is not a terminal (SLURM and piped logs get no carriage returns)
    return tqdm(total=total, initial=done, leave=False, unit="step", dynamic_ncols=True, disable=None)


__all__ = ["Learner", "Progress", "Watch", "BEST_METRICS", "run", "final_metrics"]
