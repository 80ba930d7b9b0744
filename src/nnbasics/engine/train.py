"""`train(cfg, run_dir) -> dict`: the testable core of every single run.

Reads top to bottom: validate the config, set up the data and loss (``engine.setup``), build the
model and its optimizer and LR schedule from their config groups, run the one training loop
(``engine.loop``) with one member, checkpoint every epoch, evaluate the test split once at the
end, and leave a run directory that describes itself (``engine.rundir``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from nnbasics.data import datasets as data_mod
from nnbasics.engine import loop
from nnbasics.engine.rundir import RunDir, WriteError, checkpoint_state, git_revision, write_json
from nnbasics.engine.profile import profiler_for
from nnbasics.engine.setup import Budget, Setup, checkpoint_policy, prepare, resolve_batch_size, resolve_device
from nnbasics.engine.validate import validate
from nnbasics.errors import ConfigError, DivergenceError, NNBasicsError
from nnbasics.nn.losses import correct
from nnbasics.nn.models import build_model, count_parameters, start_texts, summary
from nnbasics.optim.optimizers import build_optimizer
from nnbasics.optim.regularization import after_step_, param_groups, penalty
from nnbasics.optim.schedules import build_schedule

log = logging.getLogger("nnbasics")
CHECKPOINT_SECONDS = 1.0  # checkpoint.pt at most about this often (always after the first and the last epoch)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, split: data_mod.Split, loss_fn, task: str, chunk: int = 1024) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` (in eval mode) over a whole split, in chunks of
    ``chunk`` samples (small enough that, for the MLPs here, evaluation needs less memory than a
    training step of a few hundred samples: experiments/o6_oom_halving.py relies on it)."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=split.x.device)
    total_correct = torch.zeros((), device=split.x.device)
    for i in range(0, len(split), chunk):
        out = model(split.x[i:i + chunk])
        y = split.y[i:i + chunk]
        total_loss += loss_fn(out, y) * len(y)
        total_correct += correct(out, y, task)
    model.train(was_training)
    n = max(1, len(split))
    return {"loss": float(total_loss) / n, "acc": float(total_correct) / n}


class Solo:
    """The loop's learner for one model: a plain ``nn.Module`` and its optimizer, with the
    regularization penalty and constraints and the monitor's hooks around each update."""

    K = 1

    def __init__(self, cfg: Mapping, setup: Setup, model: torch.nn.Module, optimizer, schedule, monitor):
        self.cfg, self.setup, self.model, self.optimizer = cfg, setup, model, optimizer
        self.schedule, self.monitor = schedule, monitor
        self.seeds = [int(cfg.seed)]
        # a plain dict: the penalty and the constraint read it every update (a DictConfig lookup
        # costs ~60 us, three a step)
        self.reg = OmegaConf.to_container(cfg.regularization, resolve=True)
        self.step_count = 0

    def set_lr(self, step: int) -> None:
        self.step_count = step
        factor = self.schedule(step)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor

    def step(self, idxs):
        (idx,) = idxs
        split, step = self.setup.train, self.step_count
        # index_select: the same rows as x[idx], ~6x faster than advanced indexing on CPU
        x, y = split.x.index_select(0, idx), split.y.index_select(0, idx)
        self.optimizer.zero_grad(set_to_none=True)  # before the forward: the last step's gradients
        out = self.model(x)                          # are not held through this step's activations
        loss = self.loss_fn(out, y)
        reg = penalty(self.model, self.reg)
        objective = loss if reg is None else loss + reg
        objective.backward()
        self.monitor.before_step(step)
        self.optimizer.step()
        after_step_(self.model, self.reg)
        self.monitor.after_step(step)
        with torch.no_grad():
            hits = correct(out.detach(), y, self.setup.task)
        return loss.detach().view(1), hits.view(1), objective.detach().view(1)

    @property
    def loss_fn(self):
        return self.setup.loss_fn

    def lrs(self) -> list[float]:
        return [self.optimizer.param_groups[0]["lr"]]

    @torch.no_grad()
    def batch_losses(self, idxs) -> list[float]:
        """The loss on the mini-batch of ``idxs`` with the weights as they are now (after its update),
        in eval mode (no dropout mask drawn, BN's running statistics): ``curve_after_update``."""
        (idx,) = idxs
        x, y = self.setup.train.x.index_select(0, idx), self.setup.train.y.index_select(0, idx)
        was_training = self.model.training
        self.model.eval()
        loss = float(self.loss_fn(self.model(x), y))
        self.model.train(was_training)
        return [loss]

    def evaluate(self, split):
        r = evaluate(self.model, split, self.loss_fn, self.setup.task)
        return [r["loss"]], [r["acc"]]


def train(cfg: Mapping, run_dir: str | os.PathLike | None = None, *, data: data_mod.DataBundle | None = None,
          preprocessor=None, loss: Callable | None = None) -> dict:
    """Train the configured model and return its final metrics (also written to metrics.json).

    The parts a caller may supply instead of building them from the config (injection points:
    an experiment passes what it needs, it never patches the library):

    - ``data``: a ``DataBundle`` used instead of ``load_data(cfg.data)`` (e.g. loaded once for
      many runs);
    - ``preprocessor``: a *fitted* preprocessor (``transform(x)``, ``state_dict()``) used as given,
      instead of ``build_preprocessor(cfg.preprocess).fit(train.x)``;
    - ``loss``: a callable ``(output, target) -> scalar`` used instead of ``build_loss(cfg.loss)``;
      the config's loss-vs-task rule is then the caller's responsibility.

    ``run_dir`` defaults to ``cfg.resume`` (continue that run) or a fresh temporary folder.
    Raises ConfigError before any work when a config value is not allowed, and DivergenceError
    (after recording the run as diverged) when the loss becomes NaN or Inf.
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    validate(cfg, custom_loss=loss is not None)
    resolve_device(cfg.device)  # a missing CUDA device is refused before anything is written
    if cfg.get("resume"):
        run_dir = cfg.resume
        if not (Path(run_dir) / "checkpoint.pt").exists():
            raise ConfigError("resume", str(run_dir), "no checkpoint.pt there; give the directory of a run that was started with checkpoint=last or both (the default)")
    if run_dir is None:
        import tempfile

        run_dir = tempfile.mkdtemp(prefix="nnbasics-run-")
    rd = RunDir(run_dir)
    state = rd.open(cfg)

    setup = prepare(cfg, data=data, preprocessor=preprocessor, loss=loss)
    device = setup.device
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, setup.in_shape, setup.bundle.out_features).to(device)
    texts = start_texts(model)  # before any update: the init as drawn
    if cfg.batch_size == "auto":
        from nnbasics.engine.batch_size import find_batch_size

        batch_size = find_batch_size(model, setup.loss_fn, setup.train, start=512, log=log.info)
    else:
        batch_size = resolve_batch_size(cfg.batch_size, setup.n_train)
    budget = Budget.of(cfg, setup.n_train, batch_size)
    optimizer = build_optimizer(param_groups(model, cfg.regularization), cfg.optimizer, batch_size)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    schedule = build_schedule(cfg.scheduler, budget.total_steps, budget.steps_per_epoch)

    progress = loop.Progress(1)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        progress.generators[int(cfg.seed)] = torch.Generator().manual_seed(int(cfg.seed))
        progress.generators[int(cfg.seed)].set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        progress.epoch, progress.step = state["epoch"], state["step"]
        progress.history, progress.curve = [json.loads(state["history"])], [json.loads(state["curve"])]
        progress.elapsed_before = state["elapsed_s"]
        progress.start_loss = [float(state.get("start_loss", math.nan))]
        rd.writer(purge_step=progress.step)
        log.info(f"resuming {rd.path} at epoch {progress.epoch} (step {progress.step})")
    rd.start(cfg, setup.preprocessor.state_dict(), texts if state is None else None)

    from nnbasics.engine.monitor import Monitor

    monitor = Monitor(cfg.get("monitor"), model, rd.writer(), cfg, train_split=setup.train, task=setup.task,
                      run_dir=rd.path)
    log.info(f"data {setup.bundle.name}: {setup.n_train} train / {len(setup.val)} val, task {setup.task}, on {device}")
    log.info(f"model: {count_parameters(model):,} parameters; batch {batch_size}, {budget.steps_per_epoch} "
             f"updates/epoch, {budget.total_steps} updates in all")
    if state is None:
        log.info("model:\n" + summary(model, setup.in_shape))
        log.info("init audit:\n" + texts["model/init_audit"])
        monitor.on_train_start(progress.step)

    policy, watch = checkpoint_policy(cfg), loop.Watch.of(cfg)
    saved_at = [-math.inf]  # when checkpoint.pt was last written

    def on_epoch(p: loop.Progress, rows: list) -> None:
        rd.log_epoch(rows[0])
        monitor.on_epoch_end(p.epoch, p.step)
        if "best" in policy and p.improved(0):
            rd.save_best({"model": model.state_dict(), "epoch": p.epoch, "step": p.step, "metric": watch.metric,
                          "value": p.best_value[0]})
        # checkpoint.pt after an epoch: the first, then at most about one a second (an epoch of
        # full-batch gradient descent is one update: 10,000 epochs must not write 10,000 files), and
        # the last; a resume continues bit for bit from whichever was written last
        finished = p.step >= budget.total_steps or p.stopped_early[0] is not None
        if "last" in policy and (finished or time.perf_counter() - saved_at[0] >= CHECKPOINT_SECONDS):
            saved_at[0] = time.perf_counter()
            rd.save_checkpoint(checkpoint_state(
                model=model.state_dict(), optimizer=optimizer.state_dict(),
                generator=p.generators[int(cfg.seed)].get_state(), torch_rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                epoch=p.epoch, step=p.step, history=p.history[0], curve=p.curve[0], elapsed_s=p.elapsed(),
                start_loss=p.start_loss[0]))

    profiler, profile_step = profiler_for(cfg, rd.path)  # profile=true (debug=profiler): a few updates traced

    def on_step(p: loop.Progress) -> None:
        if p.curve[0] and p.curve[0][-1][0] == p.step:  # a point of the loss curve: every ~1/20 epoch
            rd.log_batch_loss(p.step, p.curve[0][-1][2])
        if profile_step is not None:
            profile_step(p)

    learner = Solo(cfg, setup, model, optimizer, schedule, monitor)
    try:
        with profiler:
            progress = loop.run(learner, setup, budget, progress=progress,
                                eval_every=int(cfg.get("eval_every", 1) or 1), show_bar=bool(cfg.get("progress", True)),
                                on_epoch=on_epoch, on_step=on_step, blowup=cfg.get("divergence_factor"), watch=watch,
                                curve_every=cfg.get("curve_every"), curve_after_update=bool(cfg.get("curve_after_update")))
    except OSError as e:  # a file of the run that could not be written (no space left on device, ...)
        error = e if isinstance(e, WriteError) else WriteError(Path(e.filename or rd.path), e)
        rd.fail({"error": str(error), "step": progress.step})
        raise error from None
    except (RuntimeError, MemoryError) as e:
        from nnbasics.engine.batch_size import is_out_of_memory

        if not is_out_of_memory(e):
            raise
        rd.fail({"error": "out of memory", "step": progress.step, "batch_size": batch_size})
        raise OutOfMemory(progress.step, batch_size, device) from e

    extra = {"seed": int(cfg.seed), "batch_size": batch_size, "parameters": count_parameters(model)}
    (final,) = loop.final_metrics(learner, setup, progress, cfg, [extra])
    monitor.on_train_end(progress.step)
    rd.finish(cfg, final, progress.history[0], progress.curve[0])
    if final["status"] == "diverged":
        raise DivergenceError(progress.diverged_at[0], progress.diverged_loss[0])
    return {**final, "history": progress.history[0]}


class OutOfMemory(NNBasicsError, MemoryError):
    """Training ran out of device memory."""

    def __init__(self, step: int, batch_size: int, device):
        super().__init__(f"out of memory on {device} at step {step} with batch_size={batch_size}: lower "
                         f"batch_size or model.width, or let batch_size=auto find a size that fits")


__all__ = ["train", "evaluate", "Solo", "OutOfMemory", "NNBasicsError", "resolve_device", "resolve_batch_size",
           "git_revision", "write_json"]
