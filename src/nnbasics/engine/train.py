"""`train(cfg, run_dir) -> dict`: the testable core of every run.

Reads top to bottom: validate the config, place the data on the device, build the model, loss,
optimizer and LR schedule from their config groups, loop over mini-batches, validate every
epoch, checkpoint every epoch, evaluate the test split once at the end, and leave a run
directory that describes itself:

    config.yaml        the resolved config
    metrics.json       final metrics and status (completed | diverged | failed)
    history.json       per-epoch metrics and the per-step loss curve (with wall time)
    tb/                TensorBoard events (scalars train/loss, train/acc, val/loss, val/acc, lr; hparams)
    checkpoint.pt      the last checkpoint (model, optimizer, RNG states, data order position)
    preprocess.pt      the fitted preprocessing statistics
    git.txt            the git revision of the code
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from omegaconf import DictConfig, OmegaConf

from nnbasics.data import datasets as data_mod
from nnbasics.errors import ConfigError, DivergenceError, NNBasicsError
from nnbasics.nn.losses import build_loss, correct
from nnbasics.nn.models import build_model, count_parameters, format_init_audit, init_audit, summary
from nnbasics.optim.optimizers import build_optimizer
from nnbasics.data.preprocessing import build_preprocessor
from nnbasics.optim.regularization import after_step_, param_groups, penalty
from nnbasics.optim.schedules import build_schedule
from nnbasics.engine.validate import validate

log = logging.getLogger("nnbasics")

# Ordered as TensorBoard's HPARAMS tab shows them (it ticks the first five columns).
FINAL_KEYS = ("val/acc", "val/loss", "test/acc", "train/loss", "train/acc", "test/loss")
HPARAM_KEYS = {
    "activation": "activation.name", "init": "init.name", "optimizer": "optimizer.name", "lr": "optimizer.lr",
    "batch_size": "batch_size", "width": "model.width", "depth": "model.depth",
    "regularization": "regularization.name", "weight_decay": "regularization.weight_decay",
    "dropout": "model.dropout.p", "data": "data.name", "seed": "seed",
}


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def resolve_device(spec: str) -> torch.device:
    """auto -> CUDA when available, else CPU; a CUDA device that is not there is a config error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", spec, "CUDA is not available on this machine; use device=cpu or device=auto")
    return torch.device(spec)


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


def _select(cfg: Mapping, dotted: str):
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def hparams_of(cfg: Mapping) -> dict[str, Any]:
    """The hyperparameters shown in TensorBoard's HPARAMS tab (scalars and strings only)."""
    from nnbasics.nn.models import dropout_settings

    out = {}
    for name, key in HPARAM_KEYS.items():
        value = dropout_settings(cfg)["p"] if name == "dropout" else _select(cfg, key)
        if value is not None:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


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


def resolve_batch_size(spec, n_train: int) -> int:
    """An integer batch size: ``full`` is the whole training split (gradient descent); a number
    larger than the split is clipped to it."""
    if spec == "full":
        return n_train
    return min(int(spec), n_train)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def prepare_run_dir(run_dir: Path, cfg: Mapping) -> dict | None:
    """Create the run directory, or find the checkpoint to resume from. A directory that holds
    a finished run is never written into again."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        status = json.loads(metrics.read_text()).get("status")
        if status in ("completed", "diverged"):
            raise ConfigError("run dir", str(run_dir), f"it already holds a {status} run; start a new run "
                              f"(a fresh hydra.run.dir) instead of overwriting it")
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        return None
    saved = run_dir / "config.yaml"
    if saved.exists():
        before = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
        now = OmegaConf.to_container(OmegaConf.create(dict(cfg)), resolve=True) if not isinstance(cfg, DictConfig) \
            else OmegaConf.to_container(cfg, resolve=True)
        ignore = {"resume", "progress", "eval_test", "threads"}
        diff = sorted(k for k in set(before) | set(now) if k not in ignore and before.get(k) != now.get(k))
        if diff:
            raise ConfigError("resume", str(run_dir), f"the checkpoint there was made with a different config "
                              f"(differs in: {', '.join(diff)}); resume with the same config or start a new run")
    return torch.load(ckpt, map_location="cpu", weights_only=True)


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
    device = resolve_device(cfg.device)
    if cfg.get("resume"):
        run_dir = cfg.resume
        if not (Path(run_dir) / "checkpoint.pt").exists():
            raise ConfigError("resume", str(run_dir), "no checkpoint.pt there; give the directory of a run that was started with checkpoint=true")
    if run_dir is None:
        import tempfile

        run_dir = tempfile.mkdtemp(prefix="nnbasics-run-")
    run_dir = Path(run_dir)
    state = prepare_run_dir(run_dir, cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    t_start = time.perf_counter()

    # --- data, once, on the device ----------------------------------------------------------
    bundle = data if data is not None else data_mod.load_data(cfg.data, device=device)
    if cfg.get("search"):
        # Test-set firewall: inside a hyperparameter search the test split cannot be read.
        bundle.load_test = _test_split_forbidden
    pre = preprocessor if preprocessor is not None else build_preprocessor(cfg.preprocess).fit(bundle.train.x)
    train_split = data_mod.Split(pre.transform(bundle.train.x), bundle.train.y)
    val_split = data_mod.Split(pre.transform(bundle.val.x), bundle.val.y)
    n_train = len(train_split)
    batch_size = resolve_batch_size(cfg.batch_size, n_train) if cfg.batch_size != "auto" else None

    # --- model, loss, optimizer, schedule ------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, tuple(train_split.x.shape[1:]), bundle.out_features).to(device)
    audit = init_audit(model)  # before any update: the init as drawn
    loss_fn = loss if loss is not None else build_loss(cfg.loss)
    if batch_size is None:
        from nnbasics.engine.batch_size import find_batch_size

        batch_size = find_batch_size(model, loss_fn, train_split, start=512, log=log.info)
    optimizer = build_optimizer(param_groups(model, cfg.regularization), cfg.optimizer, batch_size)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = int(cfg.steps) if cfg.get("steps") else int(cfg.epochs) * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    schedule = build_schedule(cfg.scheduler, total_steps, steps_per_epoch)
    generator = torch.Generator().manual_seed(cfg.seed)

    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "git.txt").write_text(git_revision() + "\n")
    save_atomic(pre.state_dict(), run_dir / "preprocess.pt")
    start_epoch, step, history, curve, elapsed_before = 0, 0, [], [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start_epoch, step = state["epoch"], state["step"]
        history, curve, elapsed_before = json.loads(state["history"]), json.loads(state["curve"]), state["elapsed_s"]
        log.info(f"resuming {run_dir} at epoch {start_epoch} (step {step})")

    from torch.utils.tensorboard import SummaryWriter

    from nnbasics.engine.monitor import Monitor

    writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if state is not None else None)
    monitor = Monitor(cfg.get("monitor"), model, writer, cfg, train_split=train_split, task=bundle.task, run_dir=run_dir)
    log.info(f"data {bundle.name}: {n_train} train / {len(val_split)} val, task {bundle.task}, on {device}")
    log.info(f"model: {count_parameters(model):,} parameters; batch {batch_size}, {steps_per_epoch} updates/epoch, "
             f"{total_steps} updates in all")
    if state is None:
        log.info("model:\n" + summary(model, tuple(train_split.x.shape[1:])))
        log.info("init audit:\n" + format_init_audit(audit))
        writer.add_text("model/summary", "<pre>" + summary(model) + "</pre>", 0)
        writer.add_text("model/init_audit", "<pre>" + format_init_audit(audit) + "</pre>", 0)
        monitor.on_train_start(step)

    task, replacement = bundle.task, cfg.sampling == "replacement"
    check_every = 1 if device.type == "cpu" else 25
    log_every = max(1, steps_per_epoch // 20)
    status, diverged_at = "completed", None
    t_loop = time.perf_counter()
    try:
        for epoch in range(start_epoch, epochs):
            model.train()
            sum_loss = torch.zeros((), device=device)
            sum_correct = torch.zeros((), device=device)
            seen = 0
            batches = data_mod.minibatches(n_train, batch_size, generator, replacement, device)
            bar = _progress(cfg, steps_per_epoch, epoch, epochs)
            for idx in batches:
                if step >= total_steps:
                    break
                factor = schedule(step)
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
                # index_select: the same rows as x[idx], ~6x faster than advanced indexing on CPU
                x, y = train_split.x.index_select(0, idx), train_split.y.index_select(0, idx)
                optimizer.zero_grad(set_to_none=True)  # before the forward: the last step's gradients
                out = model(x)                          # are not held through this step's activations
                loss = loss_fn(out, y)
                reg = penalty(model, cfg.regularization)
                objective = loss if reg is None else loss + reg
                objective.backward()
                monitor.before_step(step)
                optimizer.step()
                after_step_(model, cfg.regularization)
                monitor.after_step(step)
                with torch.no_grad():
                    sum_loss += loss.detach() * len(idx)
                    sum_correct += correct(out.detach(), y, task)
                seen += len(idx)
                step += 1
                if step % check_every == 0 and not torch.isfinite(objective.detach()):
                    raise DivergenceError(step, float(objective.detach()))
                if step % log_every == 0:
                    curve.append([step, elapsed_before + time.perf_counter() - t_loop, float(loss.detach())])
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            if not torch.isfinite(sum_loss):
                raise DivergenceError(step, float(sum_loss))
            row = {"epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                   "train/loss": float(sum_loss) / max(1, seen), "train/acc": float(sum_correct) / max(1, seen),
                   "time_s": elapsed_before + time.perf_counter() - t_loop}
            if (epoch + 1) % int(cfg.get("eval_every", 1) or 1) == 0 or epoch + 1 == epochs:
                val = evaluate(model, val_split, loss_fn, task)
                row.update({"val/loss": val["loss"], "val/acc": val["acc"]})
            history.append(row)
            for k in ("train/loss", "train/acc", "val/loss", "val/acc", "lr"):
                if k in row:
                    writer.add_scalar(k, row[k], step)
            monitor.on_epoch_end(epoch + 1, step)
            log.info("epoch %d/%d  " % (epoch + 1, epochs) + "  ".join(
                f"{k} {row[k]:.4f}" for k in ("train/loss", "train/acc", "val/loss", "val/acc") if k in row))
            if cfg.get("checkpoint", True):
                save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                             "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                             "epoch": epoch + 1, "step": step, "history": json.dumps(history),
                             "curve": json.dumps(curve), "elapsed_s": elapsed_before + time.perf_counter() - t_loop},
                            run_dir / "checkpoint.pt")
            if step >= total_steps:
                break
    except DivergenceError as e:
        status, diverged_at = "diverged", e.step
        log.error(str(e))
        error = e
    except (RuntimeError, MemoryError) as e:
        from nnbasics.engine.batch_size import is_out_of_memory

        if not is_out_of_memory(e):
            raise
        writer.close()
        write_json(run_dir / "metrics.json", {"status": "failed", "error": "out of memory", "step": step,
                                              "batch_size": batch_size})
        raise OutOfMemory(step, batch_size, device) from e
    else:
        error = None

    # --- final evaluation: train and val in eval mode; the test split once ----------------------
    final: dict[str, Any] = {"status": status, "epochs": len(history), "steps": step, "seed": int(cfg.seed),
                             "batch_size": batch_size, "parameters": count_parameters(model)}
    if status == "completed":
        tr = evaluate(model, train_split, loss_fn, task)
        va = evaluate(model, val_split, loss_fn, task)
        final.update({"train/loss": tr["loss"], "train/acc": tr["acc"], "val/loss": va["loss"], "val/acc": va["acc"]})
        if cfg.get("eval_test", True) and not cfg.get("search"):
            test = bundle.load_test()
            te = evaluate(model, data_mod.Split(pre.transform(test.x), test.y), loss_fn, task)
            final.update({"test/loss": te["loss"], "test/acc": te["acc"]})
    else:
        final["diverged_at_step"] = diverged_at
    final["wall_time_s"] = elapsed_before + time.perf_counter() - t_start
    monitor.on_train_end(step)
    write_hparams(writer, hparams_of(cfg), {k: final[k] for k in FINAL_KEYS if k in final}, step)
    writer.close()
    write_json(run_dir / "history.json", {"epochs": history, "curve": curve, "curve_columns": ["step", "time_s", "train/loss"]})
    write_json(run_dir / "metrics.json", final)
    if error is not None:
        raise error
    return {**final, "history": history}


class OutOfMemory(NNBasicsError, MemoryError):
    """Training ran out of device memory."""

    def __init__(self, step: int, batch_size: int, device):
        super().__init__(f"out of memory on {device} at step {step} with batch_size={batch_size}: lower "
                         f"batch_size or model.width, or let batch_size=auto find a size that fits")


def _test_split_forbidden():
    raise RuntimeError("the test split is never read inside a hyperparameter search (search=true); "
                       "evaluate the chosen configuration in a separate final run")


def _progress(cfg: Mapping, total: int, epoch: int, epochs: int):
    if not cfg.get("progress", True):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", leave=False, unit="step", dynamic_ncols=True)


__all__ = ["train", "evaluate", "NNBasicsError"]
