"""Population training: K models that share an architecture, trained at once in one process.

A *population* is a list of training configs that are equal in everything but per-member
hyperparameters (``MEMBER_KEYS``: seed, init, optimizer hyperparameters, regularization,
scheduler, dropout rates; and the activation, when no monitor watches the run). Each member is
trained exactly as ``nnbasics.train.train`` would train its config alone, but all members share
one process, one copy of the data and one stream of batched kernels:

- **Weights stacked.** Member k's model is built by the library (``torch.manual_seed(seed)``
  then ``models.build_model``: the same initial weights as its solo run) and its layers are
  stacked along a leading member axis: ``W[i]`` is ``K x out x in``. A forward pass is one
  ``torch.baddbmm`` per layer for all members; autograd gives every member its own gradient
  (the objective is the sum of the members' losses, which are independent).
- **One data stream per seed.** Members draw their batch order from ``torch.Generator()
  .manual_seed(seed)`` through ``data.minibatches``, as ``train`` does; members with the same
  seed share a stream (one ``randperm`` per epoch), so a population of configs over one seed
  reads one data stream. Inside, members are ordered by seed, so the members of a stream are
  consecutive and, with equal-sized streams, each batch is read once per stream and the first
  layer is one matrix product per stream (``BatchedMLP._linear``), not one per member.
- **Per-member optimizer state and hyperparameters.** Each member's optimizer is built by the
  library (``optim.build_optimizer`` over ``regularization.param_groups``), and its resolved
  per-group hyperparameters (lr after any batch-size scaling, momentum, betas, eps, weight
  decay) become K-vectors of a batched update (``BatchedOptimizer``: SGD, momentum, Nesterov,
  Adam, AdamW, torch's formulas). Before training, a lockstep check steps the library
  optimizers and the batched one on the same random gradients (with a changing LR) and
  refuses the population (``Unsupported``) when they disagree, so a changed optimizer in the
  library never yields silently different numbers.
- **Library pieces reused.** The loss is ``losses.build_loss`` (vectorized over members with
  ``torch.func.vmap``), accuracy ``losses.correct``, the LR schedule ``schedules.build_schedule``
  per member, the penalty and constraints ``regularization.penalty`` / ``after_step_`` (called
  on each member's module with its stacked weights through ``torch.func.functional_call``),
  data ``data.load_data`` / ``data.minibatches``, preprocessing ``build_preprocessor``.
- **Checked forward.** The batched forward is checked against every member's own module on a
  few examples (evaluation and training mode) before training; a model it does not reproduce (normalization
  layers, parametric activations, a changed layer order) is refused (``Unsupported``) and a
  caller falls back to ``train`` one config at a time.

Equality with solo runs: member k draws its initial weights, its batch order and its random
numbers (dropout masks, input noise: its own modules, run with the global RNG set to the
member's saved stream) exactly as ``train(cfg_k)`` does, so its numbers equal the solo run's
within float tolerance (a batched matmul rounds differently from a single one);
tests/test_population.py checks this for every supported optimizer, dropout, L2 and max-norm.

Every member's results are written into its own run directory with the same files as
``train`` (``write_member``): config.yaml, metrics.json, history.json, tb/ (scalars and
hparams), checkpoint.pt, preprocess.pt, git.txt.

Monitor (``monitor.level=basic``): one ``engine.monitor.Monitor`` watches all members
(``Monitor.of_members``): the same statistics as a single run's monitor (gradient norm, update
ratio, weight std and histograms per layer, dead-ReLU and saturation fractions per activation),
computed once on the stacked tensors, at the same steps. While the population trains, member k's
TensorBoard calls go to an ``EventLog`` (its run directory is written after training), which
``write_member`` replays into the member's tb/ under the same tags. ``monitor.level=full`` and
``monitor.figures=true`` are not batched (``monitor.population_refusal``). A member that
diverges gets no monitor record after its divergence (its single run writes one last scan).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from nnbasics.config import select
from nnbasics.data import datasets as data_mod
from nnbasics.engine import loop
from nnbasics.engine.monitor import Members, Monitor, monitor_level, population_refusal
from nnbasics.engine.rundir import RunDir, checkpoint_state
from nnbasics.engine.setup import Budget, checkpoint_policy, prepare, resolve_batch_size
from nnbasics.engine.validate import validate
from nnbasics.errors import Unsupported
from nnbasics.nn.linear import stacked_linear
from nnbasics.nn.losses import correct
from nnbasics.nn.activations import Activation
from nnbasics.nn.models import build_model, count_parameters, start_texts
from nnbasics.optim.batched import BatchedOptimizer, group_hparams
from nnbasics.optim.optimizers import build_optimizer
from nnbasics.optim.regularization import after_step_, param_groups, penalty
from nnbasics.optim.schedules import build_schedule

log = logging.getLogger("nnbasics")

# Keys (dotted; a group name means the whole group) that may differ between members.
MEMBER_KEYS = ("seed", "init", "optimizer", "regularization", "scheduler", "model.dropout.p",
               "model.dropout.input_p", "progress", "checkpoint")
# ... except these, which must be equal (one batched algorithm for all members).
SHARED_SUBKEYS = ("optimizer.name", "optimizer.impl")
OPTIMIZER_FAMILIES = {"sgd": "sgd", "momentum": "sgd", "nesterov": "sgd", "adam": "adam", "adamw": "adamw"}


# ----------------------------------------------------------------------------------------------
# Which configs can share a population
# ----------------------------------------------------------------------------------------------


def _container(cfg: Mapping) -> dict:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return copy.deepcopy(dict(cfg))


def _pop(d: dict, dotted: str):
    node, parts = d, dotted.split(".")
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node.pop(parts[-1], None) if isinstance(node, dict) else None


def group_key(cfg: Mapping) -> str:
    """A string equal for two configs iff they may be members of one population: the config
    without its per-member keys (``MEMBER_KEYS``), keeping ``SHARED_SUBKEYS``. The activation is
    a per-member key too when no monitor watches the run (the monitor hooks one member's
    activation modules, so monitored members share their activation)."""
    d = _container(cfg)
    d.pop("hydra", None)
    keep = {k: select(d, k) for k in SHARED_SUBKEYS}
    for k in MEMBER_KEYS + (() if monitor_level(d) != "off" else ("activation",)):
        _pop(d, k)
    d["__shared__"] = keep
    return json.dumps(d, sort_keys=True, default=str)


# features of a flattened input, per data set (the toy sets have 2; anything else counts as small)
INPUT_FEATURES = {"mnist": 784, "fashion_mnist": 784, "cifar10": 3 * 32 * 32}
# On a CPU a member of more multiply-adds per update than this trains alone: its stacked step is as
# compute-bound as its single step and the copies of a population (per-member dropout, the gathered
# groups) cost more than the overheads it saves. Measured (benchmarks/population_width.py, 2-core
# EPYC, 1 thread, 3 members of 784-W-W-10 against 3 single runs): W=64 (5.5 M) 2.40x, 128 (11.8 M)
# 1.88x, 256 (26.9 M) 1.45x, 512 (66.9 M) 1.11x, and 0.99x with dropout, 1024 (186 M) 0.95x.
CPU_MAX_MACS = 50e6


def member_macs(cfg: Mapping) -> float:
    """Multiply-adds of one member's forward pass over one mini-batch: the batch size times the
    weights of its linear layers, from the config alone (10 outputs assumed; ``batch_size=full``
    counts ``data.train_size``, else the toy sets' ``data.n_samples``, else 55,000)."""
    from nnbasics.nn.models import hidden_widths

    model = select(cfg, "model") or {}
    widths = [INPUT_FEATURES.get(str(select(cfg, "data.name")), 2), *hidden_widths(model), 10]
    batch = select(cfg, "batch_size")
    if not isinstance(batch, int):
        batch = int(select(cfg, "data.train_size") or select(cfg, "data.n_samples") or 55_000)
    return float(batch * sum(a * b for a, b in zip(widths, widths[1:])))


def unsupported_reason(cfg: Mapping) -> str | None:
    """Why ``cfg`` cannot be a population member (None when it can), from the config alone.
    ``Population`` makes the remaining checks (model structure, optimizer lockstep)."""
    get = lambda k: select(cfg, k)  # noqa: E731
    if get("model.name") != "mlp":
        return f"model.name={get('model.name')} (population training supports the MLP family)"
    if get("activation.name") == "maxout":  # BatchedMLP would refuse it after building every member
        return "activation=maxout (its pieces are grouped along dimension 1, the batch dimension of K x B x units)"
    if get("activation.name") == "prelu":
        return "activation=prelu (its learned slopes are parameters outside the linear layers)"
    if str(get("model.norm") or "none") not in ("none", "None"):
        return f"model.norm={get('model.norm')} (normalization layers are not batched)"
    if str(get("optimizer.name")) not in OPTIMIZER_FAMILIES:
        return f"optimizer.name={get('optimizer.name')} (batched: {', '.join(OPTIMIZER_FAMILIES)})"
    if get("resume"):
        return "resume is set (a resumed run continues alone)"
    if get("early_stopping.patience") is not None:
        return "early_stopping.patience is set (early stopping stops one model)"
    if "best" in checkpoint_policy(cfg):
        return f"checkpoint={get('checkpoint')} (best.pt keeps one model's best weights; a member is trained alone)"
    if get("batch_size") == "auto":
        return "batch_size=auto (the batch size search runs per model)"
    return population_refusal(cfg)


def worth_grouping(cfg: Mapping, cpu_max_macs: float | None = CPU_MAX_MACS) -> bool:
    """Whether stacking ``cfg`` with others can save time: always on a GPU; on the CPU only for
    members of at most ``cpu_max_macs`` multiply-adds per update (``member_macs``), where the
    stacked step costs what its matrix products cost and pays the per-step overheads once."""
    device = str(select(cfg, "device") or "auto")
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return cpu_max_macs is None or not on_cpu or member_macs(cfg) <= cpu_max_macs


def group_configs(cfgs: Sequence[Mapping], min_size: int = 2, max_size: int | None = None,
                  cpu_max_macs: float | None = None) -> tuple[list[list[int]], list[int]]:
    """Split configs (by index) into populations of compatible configs and the rest (to be
    trained alone): a config that is unsupported, not worth grouping on this device
    (``worth_grouping`` with ``cpu_max_macs``; None, the launcher's choice: any size), or that
    no other config is compatible with (fewer than ``min_size``), is trained alone.
    ``max_size`` caps a population."""
    groups: dict[str, list[int]] = {}
    alone: list[int] = []
    for i, cfg in enumerate(cfgs):
        c = _container(cfg)
        if unsupported_reason(c) is not None or not worth_grouping(c, cpu_max_macs):
            alone.append(i)
            continue
        groups.setdefault(group_key(c), []).append(i)
    pops: list[list[int]] = []
    for members in groups.values():
        size = max_size or len(members)
        for j in range(0, len(members), size):
            chunk = members[j:j + size]
            (pops.append(chunk) if len(chunk) >= min_size else alone.extend(chunk))
    return pops, sorted(alone)


# ----------------------------------------------------------------------------------------------
# The batched MLP
# ----------------------------------------------------------------------------------------------


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _is_activation(m: nn.Module) -> bool:
    return isinstance(m, Activation)


def _plain_linear(m: nn.Module) -> bool:
    """nn.Linear or the project's Linear (which only owns its init); not DropConnect & co."""
    from nnbasics.nn.linear import Linear

    return type(m) is nn.Linear or type(m) is Linear


def _plan(model: nn.Module, depth: int) -> list[tuple[list[nn.Module], list[nn.Module]]]:
    """The model as segments around its linear layers: segment 0 is what comes before the first
    linear layer, segment i+1 what follows linear layer i. Each segment is (shared, member):
    ``shared`` are deterministic parameter-free layers (activations) applied to all members at
    once; ``member`` are the member's own parameter-free layers that come after them (dropout,
    input noise: they draw random numbers), applied member by member with the member's RNG.
    Raises Unsupported for anything else (norm layers, parametric activations, DropConnect)."""
    linears = _linears(model)
    if len(linears) != depth + 1 or not all(_plain_linear(m) for m in linears):
        raise Unsupported(f"expected {depth + 1} plain linear layers, found "
                          f"{', '.join(type(m).__name__ for m in linears) or 'none'}")
    owned = {id(p) for m in linears for p in m.parameters()}
    extra = [n for n, p in model.named_parameters() if id(p) not in owned]
    if extra:
        raise Unsupported(f"parameters outside linear layers ({', '.join(extra[:3])}) are not batched")
    if list(model.buffers()):
        raise Unsupported("models with buffers (running statistics) are not batched")
    segments: list[tuple[list[nn.Module], list[nn.Module]]] = [([], [])]
    for m in model.modules():
        if m is model or len(list(m.children())) > 0:
            continue
        if isinstance(m, nn.Linear):
            segments.append(([], []))
            continue
        shared, member = segments[-1]
        if isinstance(m, nn.Flatten):
            if len(segments) > 1 or shared or member:
                raise Unsupported("a Flatten layer after the input is not batched")
        elif isinstance(m, nn.Identity):
            continue
        elif _is_activation(m):
            if getattr(m, "name", "") == "maxout":  # reduces along dimension 1, the batch dimension of K x B x units
                raise Unsupported("maxout (its pieces are grouped along dimension 1) is not batched")
            if member:
                raise Unsupported(f"activation {type(m).__name__} after a random layer is not batched")
            shared.append(m)
        else:
            member.append(m)
    return segments


def _params(model: nn.Module) -> list[Tensor]:
    """The member's parameters in the order of ``BatchedMLP.parameters()``."""
    return [p for lin in _linears(model) for p in (lin.weight, lin.bias) if p is not None]


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class BatchedMLP:
    """K MLPs with stacked weights: ``weights[i]`` is K x out x in, ``biases[i]`` K x out.

    ``forward(x)``: x is K x B x ... (each member its own inputs) or G x B x ... (G groups of
    consecutive members sharing an input: data streams, evaluation), flattened to features;
    each linear layer is one ``baddbmm`` for all members (``_linear``); activations are applied
    once to the K x B x H tensor, or, when members differ in their activations, once to each
    group of members that share one (gathered, activated, and put back in member order); a
    member's random layers (dropout, input noise: its own modules, with its own p) run on its
    slice with the global RNG set to the member's own stream (``rng[k]``, saved after each
    use), so the member draws exactly the random numbers its solo run draws.
    """

    def __init__(self, models: Sequence[nn.Module], depth: int):
        self.models, self.K = list(models), len(models)
        plans = [_plan(m, depth) for m in models]
        shapes = {tuple((tuple(lin.weight.shape), lin.bias is not None) for lin in _linears(m)) for m in models}
        if len(shapes) > 1:
            raise Unsupported("members differ in layer shapes")
        self.shared = [seg[0] for seg in plans[0]]
        self.member = [[plan[s][1] for plan in plans] for s in range(len(plans[0]))]
        layers = [_linears(m) for m in models]
        n = len(layers[0])
        self.has_bias = [layers[0][i].bias is not None for i in range(n)]
        self.weights = [torch.stack([ls[i].weight.detach() for ls in layers]).requires_grad_(True) for i in range(n)]
        self.biases = [torch.stack([ls[i].bias.detach() for ls in layers]).requires_grad_(True)
                       if self.has_bias[i] else None for i in range(n)]
        self.device = self.weights[0].device
        # per segment: None when every member applies the same activations, else the groups of
        # members that share theirs ((modules, member indices)) and the order that undoes the grouping
        self.groups: list[tuple[list, Tensor] | None] = []
        for s in range(len(plans[0])):
            by_act: dict[tuple, list[int]] = {}
            for k, plan in enumerate(plans):
                by_act.setdefault(tuple(repr(a) for a in plan[s][0]), []).append(k)
            if len(by_act) == 1:
                self.groups.append(None)
                continue
            idx = lambda ks: torch.tensor(ks, device=self.device)  # noqa: E731
            order = [k for ks in by_act.values() for k in ks]
            self.groups.append(([(plans[ks[0]][s][0], idx(ks)) for ks in by_act.values()], idx(order).argsort()))
        self.rng: list[tuple[Tensor, Tensor | None] | None] = [None] * self.K
        self.random = any(mods for seg in self.member for mods in seg)

    def parameters(self) -> list[Tensor]:
        out = []
        for w, b in zip(self.weights, self.biases):
            out += [w] if b is None else [w, b]
        return out

    def _segment(self, s: int, h: Tensor, train: bool) -> Tensor:
        if self.groups[s] is None:
            for m in self.shared[s]:
                h = m(h)
        else:  # members differ in their activations: each group's own, then back in member order
            groups, undo = self.groups[s]
            if h.shape[0] != self.K:  # one input for several members (a stream): a copy each
                h = h.repeat_interleave(self.K // h.shape[0], dim=0)
            parts = []
            for mods, idx in groups:
                hg = h.index_select(0, idx)
                for m in mods:
                    hg = m(hg)
                parts.append(hg)
            h = torch.cat(parts).index_select(0, undo)
        if not any(self.member[s]):
            return h
        outs = []
        for k, mods in enumerate(self.member[s]):
            hk = h[k]
            if mods:
                if train and self.rng[k] is not None:
                    _set_rng_state(self.rng[k], self.device)
                for m in mods:
                    m.train(train)
                    hk = m(hk)
                if train and self.rng[k] is not None:
                    self.rng[k] = _rng_state(self.device)
            outs.append(hk)
        return torch.stack(outs)

    def _linear(self, i: int, h: Tensor) -> Tensor:
        """Linear layer i of every member (``nn.linear.stacked_linear``: the layer's maths for
        stacked weights, beside ``Linear``)."""
        return stacked_linear(h, self.weights[i], self.biases[i])

    def forward(self, x: Tensor, train: bool = True) -> Tensor:
        """x is G x B x ... with G dividing K, and member k reads ``x[k // (K // G)]``: G = K,
        each member its own inputs; G = 1, one input for all (evaluation); G = S, S data streams
        each read by K/S consecutive members. Returns K x B x outputs."""
        G = x.shape[0] if x.dim() >= 3 else 0
        if G == 0 or self.K % G:
            raise ValueError(f"forward expects inputs of shape G x B x ... with G dividing K={self.K}, "
                             f"got {tuple(x.shape)}")
        h = x.reshape(G, x.shape[1], -1)
        if G != self.K and any(self.member[0]):  # per-member input noise or dropout: a copy each
            h = h.repeat_interleave(self.K // G, dim=0)
        h = self._segment(0, h, train)
        for i in range(len(self.weights)):
            h = self._segment(i + 1, self._linear(i, h), train)
        # K x B x outputs in memory order: the loss and argmax reduce over the outputs, which in
        # _linear's transposed layout lie B apart (argmax over 10 such outputs took 4 ms for a
        # 1,024-sample evaluation chunk of 16 members; the copy takes ~0.1 ms)
        return h.contiguous()

    __call__ = forward


# ----------------------------------------------------------------------------------------------
# The population
# ----------------------------------------------------------------------------------------------


@dataclass
class MemberResult:
    """What one member's run produced (written to its run directory by ``write_member``)."""

    cfg: DictConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    curve: list[list[float]]
    model_state: dict[str, Tensor] = field(repr=False)
    optimizer_state: dict[str, Any] | None = field(repr=False, default=None)
    preprocess_state: dict[str, Tensor] = field(repr=False, default_factory=dict)
    generator_state: Tensor | None = field(repr=False, default=None)
    texts: dict[str, str] = field(repr=False, default_factory=dict)  # TensorBoard text (model summary, init audit)
    start_loss: float = math.nan  # the first mini-batch loss (the blow-up rule's reference)
    monitor_log: list = field(repr=False, default_factory=list)  # the monitor's TensorBoard calls (EventLog)


class EventLog:
    """Stands in for a member's TensorBoard writer while the population trains (its run directory
    is written afterwards, by ``write_member``): keeps the monitor's calls (``add_scalar``,
    ``add_histogram_raw``, ``add_text``, ``add_custom_scalars``; numbers and lists, no tensors)
    and ``replay(calls, writer)`` makes them on the run's writer, in order."""

    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))

    @staticmethod
    def replay(calls: Sequence[tuple[str, tuple, dict]], writer) -> None:
        for name, args, kwargs in calls:
            if name != "flush":
                getattr(writer, name)(*args, **kwargs)


class Population:
    """Train the configs ``cfgs`` (equal ``group_key``) as one population; ``run()`` returns one
    ``MemberResult`` per config, in order. Raises ``Unsupported`` (before training) when they
    cannot be trained together."""

    def __init__(self, cfgs: Sequence[Mapping], log_every_epoch: bool = True):
        given = [c if isinstance(c, DictConfig) else OmegaConf.create(c) for c in cfgs]
        if not given:
            raise ValueError("a population needs at least one config")
        for c in given:
            validate(c)
            reason = unsupported_reason(c)
            if reason:
                raise Unsupported(reason)
        # Inside, members are ordered by seed (stable): the members that read one data stream are
        # consecutive, so a batch is read once per stream (BatchedMLP.forward). run() returns
        # the results in the given order; ``order[k]`` is member k's place in it.
        self.order = sorted(range(len(given)), key=lambda i: int(given[i].seed))
        self.cfgs = [given[i] for i in self.order]
        keys = {group_key(c) for c in self.cfgs}
        if len(keys) > 1:
            raise Unsupported("the configs differ in more than per-member hyperparameters "
                              f"(allowed to differ: {', '.join(MEMBER_KEYS)})")
        cfg0 = self.cfgs[0]
        self.K = len(self.cfgs)
        self.log_every_epoch = log_every_epoch
        # data, preprocessing, loss: once for all members, through the one set-up path
        self.setup = prepare(cfg0)
        self.device, self.bundle, self.pre = self.setup.device, self.setup.bundle, self.setup.preprocessor
        self.train_split, self.val_split, self.task = self.setup.train, self.setup.val, self.setup.task
        self.n_train = self.setup.n_train
        self.batch_size = resolve_batch_size(cfg0.batch_size, self.n_train)
        self.budget = Budget.of(cfg0, self.n_train, self.batch_size)
        self.steps_per_epoch, self.total_steps = self.budget.steps_per_epoch, self.budget.total_steps
        self.epochs = self.budget.epochs

        # members: built by the library, exactly as train() builds them
        in_shape = tuple(self.train_split.x.shape[1:])
        self.models, self.optimizers, self.rng_after_init, self.texts = [], [], [], []
        for c in self.cfgs:
            torch.manual_seed(c.seed)
            m = build_model(c, in_shape, self.bundle.out_features).to(self.device)
            self.models.append(m)
            self.rng_after_init.append(_rng_state(self.device))
            self.texts.append(start_texts(m))
        self.loss_fn = self.setup.loss_fn
        self.family = OPTIMIZER_FAMILIES[str(cfg0.optimizer.name)]
        self.net = BatchedMLP(self.models, int(cfg0.model.depth))
        self._check_forward()
        self.hparams = self._optimizer_hparams()
        self._check_optimizer()
        self.opt = BatchedOptimizer(self.net.parameters(), self.hparams, self.family)
        self.schedules = [build_schedule(c.scheduler, self.total_steps, self.steps_per_epoch) for c in self.cfgs]
        self.same_schedule = len({json.dumps(_container(c.scheduler), sort_keys=True) for c in self.cfgs}) == 1
        self.loss_vec = self._vectorized_loss()
        # plain dicts: the penalty and the constraint read them every update
        self.regs = [OmegaConf.to_container(c.regularization, resolve=True) for c in self.cfgs]
        self.has_penalty = any(penalty(m, r) is not None for m, r in zip(self.models, self.regs))
        self.has_constraint = any(bool(select(c, "regularization.max_norm")) for c in self.cfgs)
        self.seeds = [int(c.seed) for c in self.cfgs]
        self._step = 0
        self._streams: tuple | None = None
        # the monitor (None when off: an unmonitored step pays one attribute test)
        self.monitor_logs = [EventLog() for _ in range(self.K)]
        monitor = Monitor.of_members(
            cfg0.get("monitor"), Members(self.models, self.net.weights, self.net.biases,
                                         lambda x: self.net(x.unsqueeze(0), train=False)),
            self.monitor_logs, cfg0, train_split=self.train_split, task=self.task)
        self.monitor: Monitor | None = monitor if monitor.enabled else None

    # --- checks before training ------------------------------------------------------------------

    def _member_params(self, k: int, per_member: tuple[list, list] | None = None) -> dict[str, Tensor]:
        """Member k's parameters by the names of its own module: views into the stacked tensors
        (``per_member``: the stacked weights and biases already split by ``_unbound``)."""
        weights, biases = per_member if per_member is not None else (self.net.weights, self.net.biases)
        out = {}
        for i, lin in enumerate(_linears(self.models[k])):
            name = self._linear_names[k][i]
            out[f"{name}.weight" if name else "weight"] = weights[i][k]
            if lin.bias is not None:
                out[f"{name}.bias" if name else "bias"] = biases[i][k]
        return out

    def _unbound(self) -> tuple[list, list]:
        """The stacked weights and biases split into their members by one ``unbind`` each: a
        member's slice taken by indexing (``w[k]``) back-propagates into a zero tensor of the whole
        stack, K of them per step (quadratic in K); one unbind's backward stacks the K gradients once."""
        return ([w.unbind(0) for w in self.net.weights],
                [b.unbind(0) if b is not None else None for b in self.net.biases])

    @property
    def _linear_names(self) -> list[list[str]]:
        if not hasattr(self, "_names"):
            self._names = [[n for n, m in model.named_modules() if isinstance(m, nn.Linear)] for model in self.models]
        return self._names

    @torch.no_grad()
    def _check_forward(self) -> None:
        """The batched forward must reproduce every member's own module, in evaluation and in
        training (the same random numbers for dropout and input noise from the same RNG state)."""
        x = self.train_split.x[: min(8, self.n_train)]
        xk = x.unsqueeze(0).expand(self.K, *x.shape).contiguous()
        for train in (False, True):
            self.net.rng = list(self.rng_after_init)
            batched = self.net(xk, train=train)
            for k, m in enumerate(self.models):
                m.train(train)
                _set_rng_state(self.rng_after_init[k], self.device)
                solo = m(x)
                m.train()
                if solo.shape != batched[k].shape or not torch.allclose(solo, batched[k], rtol=1e-4, atol=1e-5):
                    raise Unsupported(f"the batched MLP does not reproduce member {k}'s {type(m).__name__} "
                                      f"({'training' if train else 'evaluation'} mode)")
        self.net.rng = list(self.rng_after_init)  # training starts where each solo run would

    def _optimizer_hparams(self) -> list[list[dict]]:
        """hparams[i][k] for stacked parameter i and member k, from the library's optimizer."""
        per_member = []
        for k, (m, c) in enumerate(zip(self.models, self.cfgs)):
            opt = build_optimizer(param_groups(m, c.regularization), c.optimizer, self.batch_size)
            self.optimizers.append(opt)
            group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
            rows = []
            for p in _params(m):
                if id(p) not in group_of:
                    raise Unsupported("a parameter is missing from the optimizer's groups")
                rows.append(group_hparams(group_of[id(p)], self.family, str(c.optimizer.name)))
            per_member.append(rows)
        return [[per_member[k][i] for k in range(self.K)] for i in range(len(per_member[0]))]

    def _check_optimizer(self) -> None:
        """Lockstep: the library's optimizers and the batched one, 3 steps on the same random
        gradients with a changing LR factor, must give the same weights."""
        saved = [p.detach().clone() for p in self.net.parameters()]
        params = [p.detach().clone().requires_grad_(True) for p in self.net.parameters()]
        batched = BatchedOptimizer(params, self.hparams, self.family)
        solo = [_params(m) for m in self.models]
        for k in range(self.K):
            for g in self.optimizers[k].param_groups:
                g.setdefault("initial_lr", g["lr"])
        gen = torch.Generator().manual_seed(0)
        for factor in (1.0, 0.5, 0.25):
            for i, p in enumerate(params):
                p.grad = torch.randn(p.shape, generator=gen).to(p.device)
                for k in range(self.K):
                    solo[k][i].grad = p.grad[k].clone()
            for opt in self.optimizers:
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"] * factor
                opt.step()
            batched.step(factor)
        for i, p in enumerate(params):
            for k in range(self.K):
                q = solo[k][i]
                if not torch.allclose(p[k], q, rtol=1e-4, atol=1e-6):
                    raise Unsupported(f"the batched {self.family} update does not match the library's "
                                      f"{type(self.optimizers[k]).__name__} (member {k})")
        # restore the models' initial weights (the checkpoint writer reuses the modules)
        with torch.no_grad():
            for k, m in enumerate(self.models):
                for q, p in zip(_params(m), saved):
                    q.copy_(p[k])

    def _vectorized_loss(self) -> Callable[[Tensor, Tensor], Tensor]:
        """(out K x B x C, y K x B ...) -> K losses: vmap of the library's loss, or a loop."""
        loop = lambda out, y: torch.stack([self.loss_fn(out[k], y[k]) for k in range(self.K)])  # noqa: E731
        try:
            vm = torch.func.vmap(self.loss_fn)
            out = torch.randn(self.K, 3, self.bundle.out_features, device=self.device)
            y = self.train_split.y[:3].unsqueeze(0).expand(self.K, *self.train_split.y[:3].shape)
            if torch.allclose(vm(out, y), loop(out, y), rtol=1e-5, atol=1e-6):
                return vm
        except Exception:  # noqa: BLE001 - a loss vmap cannot batch runs member by member
            pass
        return loop

    def _correct_vec(self, out: Tensor, y: Tensor) -> Tensor:
        if self.task == "multiclass":
            return (out.argmax(dim=-1) == y).sum(dim=-1).float()
        return torch.stack([correct(out[k], y[k], self.task) for k in range(self.K)])

    # --- training --------------------------------------------------------------------------------

    def _factors(self, step: int) -> Tensor | float:
        if self.same_schedule:
            return float(self.schedules[0](step))
        return torch.tensor([float(s(step)) for s in self.schedules], device=self.device)

    def _regularize(self) -> Tensor | None:
        from torch.func import functional_call

        total, split = None, self._unbound()
        for k, (m, c) in enumerate(zip(self.models, self.cfgs)):
            r = functional_call(_Apply(m, lambda mod, reg=self.regs[k]: penalty(mod, reg)),
                                {f"model.{n}": t for n, t in self._member_params(k, split).items()}, ())
            if r is not None:
                total = r if total is None else total + r
        return total

    @torch.no_grad()
    def _constrain(self) -> None:
        from torch.func import functional_call

        for k, (m, c) in enumerate(zip(self.models, self.cfgs)):
            functional_call(_Apply(m, lambda mod, reg=self.regs[k]: after_step_(mod, reg)),
                            {f"model.{n}": t for n, t in self._member_params(k).items()}, ())

    @torch.no_grad()
    def evaluate(self, split: data_mod.Split, chunk: int = 4096) -> tuple[list[float], list[float]]:
        """Per-member mean loss and accuracy over a split (eval mode: no dropout)."""
        total_loss = torch.zeros(self.K, device=self.device)
        total_correct = torch.zeros(self.K, device=self.device)
        chunk = max(1, chunk // max(1, self.K // 4))
        for i in range(0, len(split), chunk):
            x, y = split.x[i:i + chunk], split.y[i:i + chunk]
            out = self.net(x.unsqueeze(0), train=False)
            yk = y.unsqueeze(0).expand(self.K, *y.shape)
            total_loss += self.loss_vec(out, yk) * len(y)
            total_correct += self._correct_vec(out, yk)
        n = max(1, len(split))
        return (total_loss.cpu().double() / n).tolist(), (total_correct.cpu().double() / n).tolist()

    def batch(self, idxs: Sequence[Tensor], shared_input: bool, stream_of: Tensor) -> tuple[Tensor, Tensor]:
        """One step's inputs and labels from each stream's batch indices ``idxs``. ``shared_input``
        (streams of equal size, their members consecutive): inputs S x B x ..., one per stream
        (``BatchedMLP.forward`` serves each to its members); else K x B x ..., member k a copy of
        stream ``stream_of[k]``'s batch. Labels K x B x .... index_select: the rows of x[idx], ~6x
        faster than advanced indexing on CPU."""
        x_all, y_all = self.train_split.x, self.train_split.y
        if shared_input:
            idx = idxs[0] if len(idxs) == 1 else torch.cat(idxs)
            x = x_all.index_select(0, idx).view(len(idxs), -1, *x_all.shape[1:])
            y = y_all.index_select(0, idx).view(len(idxs), -1, *y_all.shape[1:])
            return x, y.repeat_interleave(self.K // len(idxs), dim=0)
        idx = torch.stack(idxs)[stream_of]
        x = x_all.index_select(0, idx.reshape(-1)).view(*idx.shape, *x_all.shape[1:])
        return x, y_all.index_select(0, idx.reshape(-1)).view(*idx.shape, *y_all.shape[1:])

    # --- the loop's learner interface (engine.loop) ---------------------------------------------

    def set_lr(self, step: int) -> None:
        self._step = step

    def step(self, idxs: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """One update of every member on its stream's batch (``idxs``: one index tensor per stream)."""
        if self._streams is None:
            streams = sorted(set(self.seeds))
            stream_of = torch.tensor([streams.index(s) for s in self.seeds], device=self.device)
            # members are ordered by seed, so each stream's members are consecutive; with streams of
            # equal size, member k reads stream k // (K / S): each batch is read once per stream
            self._streams = (len({self.seeds.count(s) for s in streams}) == 1, stream_of)
        shared_input, stream_of = self._streams
        x, y = self.batch(idxs, shared_input, stream_of)
        out = self.net(x)
        losses = self.loss_vec(out, y)
        objective = losses.sum()
        if self.has_penalty:
            reg = self._regularize()
            if reg is not None:
                objective = objective + reg
        self.opt.zero_grad()
        objective.backward()
        monitor = self.monitor
        if monitor is not None:
            monitor.before_step(self._step)
        self.opt.step(self._factors(self._step))
        if self.has_constraint:
            self._constrain()
        if monitor is not None:
            monitor.after_step(self._step)
        with torch.no_grad():
            hits = self._correct_vec(out.detach(), y)
        return losses.detach(), hits, losses.detach()

    def batch_losses(self, idxs: Sequence[Tensor]) -> list[float]:
        """Every member's loss on its mini-batch of ``idxs`` with the weights as they are now (after
        the update), in evaluation mode: ``curve_after_update``, as ``Solo.batch_losses``."""
        shared_input, stream_of = self._streams
        x, y = self.batch(idxs, shared_input, stream_of)
        with torch.no_grad():
            return self.loss_vec(self.net(x, train=False), y).tolist()

    def lrs(self) -> list[float]:
        f = self._factors(self._step)
        fs = f.tolist() if isinstance(f, Tensor) else [f] * self.K
        return [float(self.hparams[0][k]["lr"]) * fs[k] for k in range(self.K)]

    def run(self) -> list[MemberResult]:
        """Train every member with the one loop; one ``MemberResult`` per config, in the given order."""
        log.info(f"population of {self.K} on {self.device}: {self.n_train} train / {len(self.val_split)} val, batch "
                 f"{self.batch_size}, {self.total_steps} updates, {len(set(self.seeds))} data stream(s)")
        monitor, on_epoch, on_step = self.monitor, None, None
        if monitor is not None:
            monitor.on_train_start(0)

            def on_step(p: loop.Progress) -> None:
                monitor.alive = p.alive  # a diverged member gets no more monitor records

            def on_epoch(p: loop.Progress, rows: list) -> None:
                monitor.on_epoch_end(p.epoch, p.step)

        p = loop.run(self, self.setup, self.budget, eval_every=int(self.cfgs[0].get("eval_every", 1) or 1),
                     log_epochs=self.log_every_epoch, blowup=self.cfgs[0].get("divergence_factor"),
                     on_epoch=on_epoch, on_step=on_step, curve_every=self.cfgs[0].get("curve_every"),
                     curve_after_update=bool(self.cfgs[0].get("curve_after_update")),
                     label=lambda k: f"member {self.order[k]} (seed {self.seeds[k]}): ")
        params = count_parameters(self.models[0])
        extra = [{"seed": int(c.seed), "batch_size": self.batch_size, "parameters": params} for c in self.cfgs]
        finals = loop.final_metrics(self, self.setup, p, self.cfgs[0], extra)
        if monitor is not None:
            monitor.on_train_end(p.step)
        results: list[MemberResult] = []
        for k, (c, final) in enumerate(zip(self.cfgs, finals)):
            final["population_size"] = self.K
            final["population_member"] = self.order[k]
            results.append(MemberResult(c, final, p.history[k], p.curve[k], self._state_dict(k),
                                        self._optimizer_state(k) if "last" in checkpoint_policy(c) else None,
                                        self.pre.state_dict(), p.generators[int(c.seed)].get_state(), self.texts[k],
                                        p.start_loss[k], self.monitor_logs[k].calls))
        in_given_order: list[MemberResult] = [results[0]] * self.K
        for k, i in enumerate(self.order):
            in_given_order[i] = results[k]
        return in_given_order

    # --- per-member states -----------------------------------------------------------------------

    @torch.no_grad()
    def _state_dict(self, k: int) -> dict[str, Tensor]:
        m = self.models[k]
        for q, p in zip(_params(m), self.net.parameters()):
            q.copy_(p[k])
        return {n: t.detach().cpu().clone() for n, t in m.state_dict().items()}

    def _optimizer_state(self, k: int) -> dict[str, Any]:
        """Member k's optimizer state as its library optimizer's state_dict (torch.optim keys)."""
        m, c = self.models[k], self.cfgs[k]
        opt = build_optimizer(param_groups(m, c.regularization), c.optimizer, self.batch_size)
        index = {id(p): i for i, p in enumerate(_params(m))}
        factor = self._factors(max(0, self.opt.step_count - 1))
        f = float(factor[k]) if isinstance(factor, Tensor) else factor
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
            g["lr"] = g["lr"] * f
            for p in g["params"]:
                st = self.opt.member_state(index[id(p)], k)
                if st:
                    opt.state[p] = st
        return opt.state_dict()


class _Apply(nn.Module):
    """``forward()`` = ``fn(model)``: lets functional_call run a library function (penalty,
    after_step_) on a member's module with the member's stacked weights substituted."""

    def __init__(self, model: nn.Module, fn: Callable[[nn.Module], Any]):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self):
        return self.fn(self.model)


# ----------------------------------------------------------------------------------------------
# Run directories
# ----------------------------------------------------------------------------------------------


def write_member(result: MemberResult, run_dir: str | Path) -> dict:
    """Write one member's run directory through the one run-directory writer (the files ``train``
    writes; a directory that holds a finished run is refused); returns its metrics (with
    ``history``, as ``train`` returns them)."""
    rd = RunDir(run_dir)
    rd.open(result.cfg)
    cfg, final = result.cfg, result.metrics
    rd.start(cfg, result.preprocess_state, result.texts)
    if result.monitor_log:  # the monitor's scalars, histograms and layer table, as a single run writes them
        EventLog.replay(result.monitor_log, rd.writer())
    for step, _, value in result.curve:  # the same scalars a single run writes as it goes
        rd.log_batch_loss(int(step), value)
    for row in result.history:
        rd.log_epoch(row)
    if "last" in checkpoint_policy(cfg) and result.optimizer_state is not None:
        last = result.history[-1] if result.history else {"epoch": 0, "step": 0, "time_s": 0.0}
        rd.save_checkpoint(checkpoint_state(
            model=result.model_state, optimizer=result.optimizer_state, generator=result.generator_state,
            torch_rng=torch.get_rng_state(), cuda_rng=None, epoch=last["epoch"], step=last["step"],
            history=result.history, curve=result.curve, elapsed_s=last["time_s"], start_loss=result.start_loss))
    rd.finish(cfg, final, result.history, result.curve)
    return {**final, "history": result.history}


def train_population(cfgs: Sequence[Mapping], run_dirs: Sequence[str | Path] | None = None) -> list[dict]:
    """Train ``cfgs`` as one population; write each member's run directory when ``run_dirs`` is
    given. Returns per member what ``train`` returns (final metrics with ``history``)."""
    results = Population(cfgs).run()
    if run_dirs is None:
        return [{**r.metrics, "history": r.history} for r in results]
    if len(run_dirs) != len(results):
        raise ValueError(f"{len(results)} configs but {len(run_dirs)} run directories")
    return [write_member(r, d) for r, d in zip(results, run_dirs)]


__all__ = ["Population", "BatchedMLP", "BatchedOptimizer", "MemberResult", "EventLog", "Unsupported", "group_key",
           "group_configs", "unsupported_reason", "train_population", "write_member", "MEMBER_KEYS"]
