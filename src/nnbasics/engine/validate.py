"""Validate the whole config before any work starts.

Each building block checks every key of its own config group (its ``validate_config``, with the
helpers of ``nnbasics.config``); this module checks the top-level keys (budget, batches, seed,
placement, the run switches), refuses unknown top-level keys, runs the group checks through one
explicit table (``GROUP_VALIDATORS``), then the rules that join groups (loss vs task, a CNN needs
images, SELU wants LeCun init, ...). Each check raises ConfigError naming the key, the value and
what is allowed; the registries of the library modules are the source of the allowed names.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Mapping, Sequence

from nnbasics.config import check_bool, check_keys, check_name, check_number, select
from nnbasics.data import datasets, preprocessing
from nnbasics.engine import monitor
from nnbasics.errors import ConfigError
from nnbasics.nn import activations, init, losses, models
from nnbasics.optim import optimizers, regularization, schedules

__all__ = ["GROUP_VALIDATORS", "validate"]

# Each config group and the building block that checks every key of it, in checking order.
GROUP_VALIDATORS: dict[str, Callable[[Mapping], list[str]]] = {
    "data": datasets.validate_config,
    "model": models.validate_config,
    "activation": activations.validate_config,
    "init": init.validate_config,
    "loss": losses.validate_config,
    "optimizer": optimizers.validate_config,
    "scheduler": schedules.validate_config,
    "regularization": regularization.validate_config,
    "preprocess": preprocessing.validate_config,
    "monitor": monitor.validate_config,
}
OPTIONAL_GROUPS = ("monitor",)  # absent or null: no monitor

# The top-level keys of conf/train.yaml besides the groups (hydra: Hydra's own node, present
# when a config is composed with return_hydra_config=True).
BOOLEANS = ("eval_test", "search", "progress", "curve_after_update")
TOP_LEVEL_KEYS = ("epochs", "steps", "batch_size", "sampling", "seed", "device", "threads", "eval_every", "curve_every",
                  "resume", "divergence_factor", "checkpoint", "best_metric", "early_stopping", "hydra") + BOOLEANS
EARLY_STOPPING_KEYS = ("patience", "min_delta")

# The run's record and debugging switches (conf/train.yaml): tags (a list of strings), print_config and
# profile (booleans); debug names the conf/debug/ group, so as a key it may only be absent or null.
RUN_SWITCHES = ("print_config", "profile")
BOOLEANS += RUN_SWITCHES
TOP_LEVEL_KEYS += ("tags", "debug") + RUN_SWITCHES
DEBUG_PRESETS = ("default", "fdr", "overfit", "limit", "profiler")  # conf/debug/*.yaml

# Bounds that keep a value from overflowing torch (seeds, thread counts) or allocating without
# bound (a model or a toy data set far beyond what this library trains).
MAX_SEED = 2**32 - 1              # numpy's and most libraries' seed range; torch takes it too
MAX_THREADS = 1024
MAX_TOY_SAMPLES = 10_000_000      # the toy sets are generated in memory
MAX_PARAMETERS = 2**31            # 8 GiB of float32 weights, before gradients and optimizer state
IN_FEATURES = {"mnist": 784, "fashion_mnist": 784, "cifar10": 3072, "curve": 1}  # toy sets: 2


def validate(cfg: Mapping, *, custom_loss: bool = False) -> list[str]:
    """Check every value of a training config; raise ConfigError on the first bad one.
    Returns warnings (combinations that are allowed but usually a mistake). ``custom_loss``: the
    caller supplies its own loss callable (``train(..., loss=fn)``), so the loss-vs-task rule is
    not applied."""
    _check_resolvable(cfg)
    check_keys(cfg, "", (*TOP_LEVEL_KEYS, *GROUP_VALIDATORS))
    for group in GROUP_VALIDATORS:
        node = select(cfg, group)
        if not isinstance(node, Mapping) and not (group in OPTIONAL_GROUPS and node is None):
            raise ConfigError(group, node, f"the config group '{group}' must be selected (e.g. {group}=<option>)")
    _check_top_level(cfg)
    _check_run_record(cfg)
    notes: list[str] = []
    for check in GROUP_VALIDATORS.values():
        notes.extend(check(cfg))
    notes.extend(_check_across_groups(cfg, custom_loss))
    _check_sizes(cfg)
    notes.extend(_check_budget(cfg))
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return notes


def _check_top_level(cfg: Mapping) -> None:
    steps = check_number(cfg, "steps", low=1, integer=True, optional=True)
    check_number(cfg, "epochs", low=1, integer=True, optional=steps is not None)
    if select(cfg, "batch_size") not in ("full", "auto"):
        check_number(cfg, "batch_size", low=1, integer=True)
    check_name(cfg, "sampling", ("shuffle", "replacement"))
    check_number(cfg, "seed", low=0, high=MAX_SEED, integer=True)
    check_number(cfg, "eval_every", low=1, integer=True, optional=True)
    check_number(cfg, "curve_every", low=1, integer=True, optional=True)
    device = select(cfg, "device")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ConfigError("device", device, "choose auto, cpu, cuda or cuda:N")
    check_number(cfg, "threads", low=1, high=MAX_THREADS, integer=True, optional=True)
    check_number(cfg, "divergence_factor", low=1, low_open=True, optional=True)
    for key in BOOLEANS:  # absent: the engine's default; present: a real boolean (null is none)
        if key in cfg:
            check_bool(cfg, key)
    resume = select(cfg, "resume")
    if resume is not None and not (isinstance(resume, str) and resume):
        raise ConfigError("resume", resume, "must be the directory of a run to continue, or null")
    _check_checkpointing(cfg)


def _check_checkpointing(cfg: Mapping) -> None:
    """``checkpoint``: a policy (last | best | both | none) or a boolean (true = last, false =
    none) and nothing else; ``best_metric``: val/acc or val/loss; ``early_stopping``: patience (an
    integer >= 1, or null = off) and min_delta (>= 0)."""
    from nnbasics.engine.loop import BEST_METRICS
    from nnbasics.engine.setup import CHECKPOINT_POLICIES

    if "checkpoint" in cfg:
        value = select(cfg, "checkpoint")
        if not any(value is k or (isinstance(k, str) and value == k) for k in CHECKPOINT_POLICIES):
            raise ConfigError("checkpoint", value, "choose last (checkpoint.pt every epoch, for resuming), best "
                              "(best.pt: the best epoch's weights), both or none; true means last, false none")
    if "best_metric" in cfg:
        check_name(cfg, "best_metric", BEST_METRICS)
    node = select(cfg, "early_stopping")
    if node is not None:
        if not isinstance(node, Mapping):
            raise ConfigError("early_stopping", node, "must be a group of keys: early_stopping.patience, "
                              "early_stopping.min_delta")
        check_keys(node, "early_stopping", EARLY_STOPPING_KEYS)
        check_number(cfg, "early_stopping.patience", low=1, integer=True, optional=True)
        check_number(cfg, "early_stopping.min_delta", low=0, optional=True)
        if select(cfg, "early_stopping.patience") is not None and int(select(cfg, "data.val_size", 1) or 0) == 0:
            raise ConfigError("early_stopping.patience", select(cfg, "early_stopping.patience"),
                              "early stopping follows a validation metric, and data.val_size=0 leaves no "
                              "validation split; set data.val_size or early_stopping.patience=null")


def _check_run_record(cfg: Mapping) -> None:
    """``tags``: a list of non-empty strings (absent or null: none); ``debug``: the conf/debug/
    group is chosen with ``debug=<preset>``, so the key itself is only ever absent or null."""
    tags = select(cfg, "tags")
    if tags is not None:
        if isinstance(tags, str) or not isinstance(tags, Sequence):
            raise ConfigError("tags", tags, "must be a list of strings, e.g. tags=[baseline] or tags=[lr_sweep,adam]")
        for i, tag in enumerate(tags):
            if not isinstance(tag, str) or not tag.strip():
                raise ConfigError(f"tags[{i}]", tag, "must be a non-empty string (quote a number: "
                                  "tags=['2024'])")
    debug = select(cfg, "debug")
    if "debug" in cfg and debug is not None:
        raise ConfigError("debug", debug, f"debug is a config group, not a value: choose a preset with "
                          f"debug=<preset> ({', '.join(DEBUG_PRESETS)}; see conf/debug/)")


def _check_resolvable(cfg: Mapping) -> None:
    """Every interpolation resolves (``${oc.env:X}`` with X unset, ``${nope}``): refused naming
    the key, before a check or a resolver further down meets it half-way."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(cfg, DictConfig):
        return
    body = cfg.copy()
    if "hydra" in body:  # Hydra's own node resolves only inside a running job
        from omegaconf import open_dict

        with open_dict(body):
            del body["hydra"]
    try:
        OmegaConf.to_container(body, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raw = None
        try:
            raw = OmegaConf.to_container(body, resolve=False)
            for part in key.split("."):
                raw = raw[int(part)] if isinstance(raw, list) else raw[part]
        except Exception:  # noqa: BLE001 - only for the message
            pass
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(key, raw, f"it cannot be resolved ({reason}); set the variable or key it refers to, "
                          f"or give a plain value") from None


def _check_sizes(cfg: Mapping) -> None:
    """Values that are valid numbers but beyond what torch or memory can take: seeds that
    overflow, a toy data set or a model far too large to allocate."""
    check_number(cfg, "data.split_seed", low=0, high=MAX_SEED, integer=True, optional=True)
    data = select(cfg, "data.name")
    if data in datasets.TOY_SETS:
        check_number(cfg, "data.n_samples", low=4, high=MAX_TOY_SAMPLES, integer=True)
    model = select(cfg, "model.name")
    width = select(cfg, "model.width") or 1
    depth = select(cfg, "model.depth") or 0
    pieces = activations.pieces_of(select(cfg, "activation"))
    n_in = IN_FEATURES.get(data, 2)
    if model == "examples_cnn":  # fixed 3x3 convs 32, 64, a 2x2 pool, fc 128 (nn.models.ExamplesCNN)
        c, fc_in = 3 if data == "cifar10" else 1, 64 * ((datasets.IMAGE_SIZES.get(data, 28) - 4) // 2) ** 2
        n = (9 * c * 32 + 9 * 32 * 64 + fc_in * 128) * pieces + 128 * 10
    elif model == "cnn":
        k, hidden = select(cfg, "model.kernel_size") or 3, select(cfg, "model.hidden") or 0
        chans = [3 if data == "cifar10" else 1] + [width * 2**i for i in range(depth)]
        n = sum(k * k * a * b * pieces for a, b in zip(chans, chans[1:])) + chans[-1] * n_in * hidden * pieces
    elif model == "linear" or depth == 0:
        n = n_in * 10
    else:
        sizes = [n_in] + models.hidden_widths(select(cfg, "model")) + [10]  # model.widths, or depth x width
        n = sum(a * b for a, b in zip(sizes, sizes[1:])) * pieces
        width = max(sizes[1:-1])
    if n > MAX_PARAMETERS:
        key, value = ("activation.pieces", pieces) if pieces > max(64, width) else ("model.width", width)
        if key == "model.width" and select(cfg, "model.widths") is not None:
            key, value = "model.widths", list(select(cfg, "model.widths"))
        raise ConfigError(key, value, f"the model would have about {n:.3g} parameters ({4 * n / 2**30:.3g} GiB "
                          f"of float32 weights), more than the {MAX_PARAMETERS:.3g} a run here can take; "
                          f"lower model.width (or model.widths), model.depth or activation.pieces")


def _check_budget(cfg: Mapping) -> list[str]:
    """Values that fit the config but not the run: a training subset larger than the split (an
    toy set's split is known here, an image set's once it is loaded: ``setup.prepare``), LR
    milestones that the run never reaches."""
    notes: list[str] = []
    data, train_size = select(cfg, "data.name"), select(cfg, "data.train_size")
    if data in datasets.TOY_SETS:
        split = select(cfg, "data.n_samples") - select(cfg, "data.val_size") - select(cfg, "data.test_size")
    else:
        split = None
    if train_size is not None and split is not None and train_size > split:
        raise ConfigError("data.train_size", train_size, f"the training split of {data} has only {split} samples "
                          f"(after the validation and test splits); at most {split}, or null for all of them")
    unit = select(cfg, "scheduler.unit", "epoch")
    steps, epochs = select(cfg, "steps"), select(cfg, "epochs")
    length = steps if unit == "step" else (epochs if steps is None else None)
    if length is not None:
        for key in ("scheduler.milestones", "scheduler.step_size"):
            value = select(cfg, key)
            values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
            late = [v for v in values if isinstance(v, (int, float)) and v >= length]
            if late:
                notes.append(f"{key}={value}: {', '.join(map(str, late))} at or beyond the run's {length} "
                             f"{'updates' if unit == 'step' else 'epochs'}: that LR change never happens")
    return notes


def _check_across_groups(cfg: Mapping, custom_loss: bool) -> list[str]:
    """The rules that join two groups (each group's own keys are already checked)."""
    notes: list[str] = []
    data, model = select(cfg, "data.name"), select(cfg, "model.name")

    # loss and task
    target = select(cfg, "data.target", "label")
    task = datasets.task_of(target, 10)[0]
    loss = select(cfg, "loss.name")
    if not custom_loss and task not in losses.LOSS_TASKS.get(loss, {task}):
        raise ConfigError("loss.name", loss, f"a {task} target ({data}, target={target}) "
                          f"needs one of: {', '.join(sorted(k for k, v in losses.LOSS_TASKS.items() if task in v))}")

    # model and data, model and activation
    if model == "cnn":
        if data not in datasets.IMAGE_SIZES:
            raise ConfigError("model.name", model, f"the CNN needs image data ({', '.join(datasets.IMAGE_SIZES)}); "
                              f"data={data} is not images: use model=mlp")
        depth, size = select(cfg, "model.depth"), datasets.IMAGE_SIZES[data]
        if select(cfg, "model.pool") != "none" and 2**depth > size:
            raise ConfigError("model.depth", depth, f"{depth} blocks with 2x2 pooling shrink a {size}-pixel image "
                              f"to nothing; at most {int(math.log2(size))}")
    if select(cfg, "model.norm") == "group":
        pieces = activations.pieces_of(select(cfg, "activation"))
        width = select(cfg, "model.width")
        if model == "cnn":
            channels = [width * 2**i * pieces for i in range(select(cfg, "model.depth"))]
        elif model == "examples_cnn":
            channels = [32 * pieces, 64 * pieces]
        else:
            channels = [int(w) * pieces for w in models.hidden_widths(select(cfg, "model"))] if model == "mlp" else []
        groups = select(cfg, "model.groups")
        bad = [c for c in channels if c % groups]
        if bad:
            raise ConfigError("model.groups", groups, f"must divide the number of units per layer ({bad[0]})")
    if select(cfg, "model.norm") == "batch" and select(cfg, "batch_size") == 1:
        notes.append("model.norm=batch with batch_size=1: every unit normalizes to beta (batch statistics of one sample)")

    # preprocessing and model
    pre = select(cfg, "preprocess.name")
    if pre in preprocessing.FLATTENING and model in models.IMAGE_MODELS:
        raise ConfigError("preprocess.name", pre, f"{pre} flattens the input to k features, which model={model} "
                          f"cannot take; use model=mlp, or preprocess=zca (keeps the image shape)")

    # regularization and optimizer
    decoupled = select(cfg, "regularization.decoupled")
    optimizer = select(cfg, "optimizer.name")
    if decoupled and optimizer not in ("adamw", "sgd", "momentum", "nesterov"):
        notes.append(f"regularization.decoupled=true with optimizer={optimizer}: its weight_decay is "
                     f"added to the gradient (coupled); use optimizer=adamw for decoupled weight decay")
    penalty = (select(cfg, "regularization.weight_decay") or 0) > 0 or (select(cfg, "regularization.l1") or 0) > 0
    if (select(cfg, "optimizer.weight_decay") or 0) > 0 and not decoupled and penalty:
        # (with decoupled=true the parameter groups carry their own weight_decay, which overrides the optimizer's)
        notes.append("both optimizer.weight_decay and a regularization penalty are set: the weights are decayed twice")

    # activation and init
    if select(cfg, "activation.name") == "selu" and select(cfg, "init.name") not in ("lecun_normal", "lecun_uniform"):
        notes.append(f"activation=selu is self-normalizing only with LeCun init; init={select(cfg, 'init.name')} "
                     f"may not keep activations normalized (use init=lecun_normal)")
    return notes
