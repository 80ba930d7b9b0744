"""What goes to TensorBoard beyond the scalars: a look inside the network while it trains.

``monitor.level``:

- ``off``: nothing (every hook returns at once).
- ``basic`` (the default): at every *snapshot* step (every ``monitor.every`` updates and the
  first update of every epoch), per weight layer, named by its module path (``net.0``, ``net.3``,
  ...: the names of the TEXT tab's model summary and init audit and of the state_dict), scalars
  under ``watch/`` (after the learning curves in the SCALARS tab):

  ===========================  ==============================================================
  ``watch/grad_norm/L``        ||dL/dW||_2 over the layer's weight and bias
                               (``watch/grad_norm/total`` over all monitored layers)
  ``watch/update_ratio/L``     ||W_after - W_before|| / ||W_before|| of that update; the cs231n
                               rule of thumb is ~1e-3 (much smaller: lr too low, much larger: too high)
  ``watch/weight_std/L``       std of the weights, next to ``watch/weight_std_init/L``, the std
                               the initializer should give (``layer.init_std``)
  ``weight/L``                 histogram of the weights
  ===========================  ==============================================================

  and at the start and the end of every epoch a separate no-grad pass (eval mode) over a fixed
  sample of the training split (``monitor.sample`` examples, all of them when null) gives, per
  hidden activation module A (``net.1``), ``watch/dead_relu/A`` (ReLU family: the fraction of units whose pre-activation is
  never positive over the whole pass) and ``watch/saturation/A`` (sigmoid, tanh: the fraction of
  outputs within 0.01 of an asymptote). Figures (``monitor.figures``): an activation-histogram
  grid of every hidden layer at the start and the end (``figures/activations``), and for 2-D
  toy sets the decision boundary at the end (``figures/decision_boundary``; a 1-D regression
  gets ``figures/fit``), saved as PNG in ``<run_dir>/figures/`` and logged as images.
- ``full``: also histograms of the gradients (``grad/L``), pre-activations
  (``pre_activation/A``) and activations (``activation/A``) of the snapshot step's
  training batch, taken by forward hooks that are registered for that one forward pass only.

Population (``engine.population``): one monitor watches K members whose weights are stacked
(``Monitor.of_members``): every statistic below is computed once on the stacked K x ... tensors
(a single model is the case K = 1) and member k's values go to member k's writer, at the same
steps and under the same tags as its single run. ``population_refusal`` names what is not
batched (``full``'s batch hooks, ``figures``): a population with those is refused.

Cost: between snapshots a hook does one integer test. A snapshot reads its numbers back from
the device once (histograms twice: fixed ``monitor.bins`` bins with ``torch.histc`` on the
device, then one transfer), never per step. See ``benchmarks/monitor_overhead.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

LEVELS = ("off", "basic", "full")
RELU_FAMILY = frozenset({"relu", "leaky_relu", "prelu", "rrelu", "relu6"})
# activation name -> (lower asymptote, upper asymptote); an output within SATURATION_MARGIN of
# either is saturated (its local gradient is nearly zero)
SATURATING = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
SATURATION_MARGIN = 0.01
# The monitor's scalars go under this group, which TensorBoard's SCALARS tab sorts after the learning
# curves' ``train`` and ``val`` (it opens the first two groups); ``watch`` as in ``wandb.watch``.
SCALARS = "watch"

# Until every activation Module subclasses nnbasics.nn.activations.Activation, these torch Modules
# are recognized as activations, by this name.
_TORCH_ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.PReLU: "prelu", nn.RReLU: "rrelu", nn.ReLU6: "relu6",
    nn.ELU: "elu", nn.SELU: "selu", nn.CELU: "celu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Softplus: "softplus",
    nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Hardtanh: "hardtanh",
}


# ----------------------------------------------------------------------------------------------
# Finding the layers
# ----------------------------------------------------------------------------------------------


@dataclass
class WeightLayer:
    name: str  # the module's qualified name in the model (net.0), as in the TEXT tab and state_dict
    path: str  # the same (kept for callers that read it)
    module: nn.Module
    init_std: float = float("nan")  # the initializer's theoretical std (nan when undefined)


@dataclass
class ActivationLayer:
    name: str  # the activation module's qualified name (net.1)
    path: str
    module: nn.Module
    kind: str  # relu, tanh, sigmoid, ...
    after: str = ""  # the name of the weight layer that feeds it ("" when none does)

    @property
    def dead_counted(self) -> bool:
        return self.kind in RELU_FAMILY

    @property
    def saturation_counted(self) -> bool:
        return self.kind in SATURATING


def _activation_base():
    try:
        from nnbasics.nn.activations import Activation
    except ImportError:
        return None
    return Activation


def activation_kind(module: nn.Module) -> str:
    """The activation's name: ``module.name`` (nnbasics Activations), else the torch class's."""
    name = getattr(module, "name", None)
    if isinstance(name, str) and name:
        return name.lower()
    for cls, known in _TORCH_ACTIVATIONS.items():
        if isinstance(module, cls):
            return known
    return type(module).__name__.lower()


def is_weight_layer(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and getattr(module, "weight", None) is not None


def find_layers(model: nn.Module) -> tuple[list[WeightLayer], list[ActivationLayer]]:
    """The weight layers (Linear, Conv) and the hidden activation Modules of ``model``, in
    registration order (the forward order of an MLP or a plain CNN), each named by its module path
    (``net.0``: the name in ``model.named_modules()``, the state_dict, the TEXT tab's model summary
    and init audit; ``model`` for a model that is itself one layer). An activation records the
    weight layer before it (``after``). Activations are the ``nnbasics.nn.activations.Activation``
    instances when the model has any, else the torch activation Modules; a Module nested inside
    an activation is not counted again."""
    base = _activation_base()
    modules = list(model.named_modules())
    use_base = base is not None and any(isinstance(m, base) for _, m in modules)
    act_types = (base,) if use_base else tuple(_TORCH_ACTIVATIONS)
    weights: list[WeightLayer] = []
    acts: list[ActivationLayer] = []
    taken: list[str] = []
    for path, m in modules:
        if any(path.startswith(t + ".") for t in taken):
            continue
        if is_weight_layer(m):
            weights.append(WeightLayer(path or "model", path, m))
        elif isinstance(m, act_types) and path:
            taken.append(path)
            acts.append(ActivationLayer(path, path, m, activation_kind(m), weights[-1].name if weights else ""))
    # theoretical init std: layer.init_std (the contract), else the MLP's init audit, in order
    audit = getattr(model, "init_audit", None)
    audit_stds = [float(s) for _, s in audit] if isinstance(audit, (list, tuple)) and len(audit) == len(weights) else None
    for i, layer in enumerate(weights):
        std = getattr(layer.module, "init_std", None)
        if std is None and audit_stds is not None:
            std = audit_stds[i]
        layer.init_std = float(std) if isinstance(std, (int, float)) else float("nan")
    return weights, acts


# ----------------------------------------------------------------------------------------------
# Histograms with fixed bins, computed on the device
# ----------------------------------------------------------------------------------------------


def write_histograms(writer, tensors: Mapping[str, Tensor], step: int, bins: int = 64) -> None:
    """Log each tensor as a TensorBoard histogram of ``bins`` equal bins between its min and max.
    The counts are computed on the tensor's device (``torch.histc``); everything is read back in
    two transfers for all tensors together. Non-finite values are left out (and counted in the
    scalar ``nonfinite/<tag>``)."""
    flat = {tag: t.detach().reshape(-1).float() for tag, t in tensors.items() if t is not None and t.numel() > 0}
    if not flat:
        return
    stats = torch.stack([torch.stack([t.amin(), t.amax(), t.sum(), (t * t).sum()]) for t in flat.values()])
    stats = stats.cpu().tolist()  # transfer 1
    counts, meta = [], []
    for (tag, t), (lo, hi, s, ss) in zip(flat.items(), stats):
        n = t.numel()
        if not all(math.isfinite(v) for v in (lo, hi, s, ss)):  # rare: only a diverging run
            finite = t[torch.isfinite(t)]
            writer.add_scalar(f"nonfinite/{tag}", n - finite.numel(), step)
            if finite.numel() == 0:
                continue
            t, n = finite, finite.numel()
            lo, hi, s, ss = (float(v) for v in (t.min(), t.max(), t.sum(), (t * t).sum()))
        lo_edge, hi_edge = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
        counts.append(torch.histc(t, bins=bins, min=lo_edge, max=hi_edge))
        meta.append((tag, lo, hi, n, s, ss, lo_edge, hi_edge))
    if not counts:
        return
    all_counts = torch.stack(counts).cpu().tolist()  # transfer 2
    for (tag, lo, hi, n, s, ss, lo_edge, hi_edge), c in zip(meta, all_counts):
        width = (hi_edge - lo_edge) / bins
        limits = [lo_edge + width * (i + 1) for i in range(bins)]
        writer.add_histogram_raw(tag, min=lo, max=hi, num=n, sum=s, sum_squares=ss,
                                 bucket_limits=limits, bucket_counts=c, global_step=step)


# ----------------------------------------------------------------------------------------------
# The pass over a sample of the training data
# ----------------------------------------------------------------------------------------------


@dataclass
class ScanResult:
    """Per hidden layer, what a no-grad pass over the monitor's sample produced."""

    step: int
    dead: dict[str, float] = field(default_factory=dict)  # fraction of units never active
    saturated: dict[str, float] = field(default_factory=dict)  # fraction of saturated outputs
    values: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (pre, post) numpy, for figures


# The statistics, defined once, on tensors with a leading member axis: K x ... for the K members of a
# population (their stacked weights, the K x B x units activations of the batched forward), and
# 1 x ... for one model (its tensors with ``unsqueeze(0)``). Each returns one value per member.


def grad_norm(grads: Sequence[Tensor]) -> Tensor:
    """Per member, ||dL/dW||_2 over a layer's parameters (weight and bias): ``grads`` are K x ...
    -> K."""
    K = grads[0].shape[0]
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float().reshape(K, -1), dim=1)
                                                 for g in grads]), dim=0)


def update_ratio_(before: Tensor, after: Tensor) -> Tensor:
    """Per member, ||W_after - W_before|| / ||W_before|| (K x ... each -> K); ``before`` is
    overwritten by the difference (a buffer kept for the next snapshot)."""
    K = before.shape[0]
    norm0 = torch.linalg.vector_norm(before.float().reshape(K, -1), dim=1)
    return torch.linalg.vector_norm(before.sub_(after).float().reshape(K, -1), dim=1) / norm0


def weight_std(w: Tensor) -> Tensor:
    """Per member, the std of a layer's weights (K x ... -> K; 0 for a single weight)."""
    K = w.shape[0]
    flat = w.float().reshape(K, -1)
    return flat.std(dim=1) if flat.shape[1] > 1 else torch.zeros(K, device=w.device)


def units_active(pre: Tensor) -> Tensor:
    """Per member and unit, whether any pre-activation is positive: ``pre`` is K x B x units
    (a conv channel, K x B x C x ..., counts all its positions) -> K x units."""
    positive = pre > 0
    if positive.dim() == 3:  # no transposed copy of the mask
        return positive.any(dim=1)
    return positive.transpose(1, 2).reshape(positive.shape[0], positive.shape[2], -1).any(dim=2)


def saturated_count(out: Tensor, kind: str) -> Tensor:
    """Per member, how many outputs (K x B x ...) lie within ``SATURATION_MARGIN`` of the
    activation's asymptotes -> K."""
    lo, hi = SATURATING[kind]
    # summed over every dim but the member's: no copy of a batched layer's transposed output
    return ((out <= lo + SATURATION_MARGIN) | (out >= hi - SATURATION_MARGIN)).sum(dim=tuple(range(1, out.dim())))


@dataclass
class Members:
    """K models trained with stacked weights (``engine.population.BatchedMLP``), as the monitor
    sees them: ``models[k]`` is member k's own module (layer names, init std, layer table),
    ``weights[i]`` / ``biases[i]`` the K x ... tensors of weight layer i (None: no bias), and
    ``forward(x)`` the batched forward in evaluation mode of one input for all members, which
    calls the activation modules of ``models[0]`` on K x B x units tensors."""

    models: Sequence[nn.Module]
    weights: Sequence[Tensor]
    biases: Sequence[Tensor | None]
    forward: Callable[[Tensor], Tensor]


def monitor_level(cfg: Mapping) -> str:
    """The monitor level a run config asks for: ``off`` (also for no monitor node, null or false),
    ``basic`` or ``full``."""
    from nnbasics.config import select

    level = select(cfg, "monitor.level") if select(cfg, "monitor") is not None else None
    return "off" if level in (None, False) or str(level) in ("off", "False", "false") else str(level)


def population_refusal(cfg: Mapping) -> str | None:
    """What of ``cfg``'s monitor a population cannot batch (None: nothing, or no monitor).
    ``full`` takes a training batch's activations by hooks on one model, and figures are drawn
    from one model; everything of ``basic`` is batched."""
    from nnbasics.config import select

    level = monitor_level(cfg)
    if level == "off":
        return None
    if level == "full":
        return ("monitor.level=full (its gradient and activation histograms of a training batch hook one "
                "model; monitor=basic is batched)")
    if bool(select(cfg, "monitor").get("figures", True)):
        return "monitor.figures=true (figures are drawn from one model; add monitor.figures=false)"
    return None


# ----------------------------------------------------------------------------------------------
# The monitor
# ----------------------------------------------------------------------------------------------


class Monitor:
    """The hooks the training loop calls (see docs/architecture.md); ``off`` does nothing.

    ``Monitor(cfg.monitor, model, writer, cfg, train_split=Split(x, y), task=..., run_dir=...)``
    watches one model; ``Monitor.of_members(cfg.monitor, Members(...), writers, train_split=...)``
    watches the K members of a population, member k writing to ``writers[k]``.
    """

    def __init__(self, cfg: Mapping | None, model: nn.Module, writer, run_cfg: Mapping | None = None,
                 train_split=None, task: str | None = None, run_dir=None, *, members: Members | None = None,
                 writers: Sequence | None = None):
        cfg = cfg or {}
        level = cfg.get("level", "off")
        self.level = "off" if level in (None, False) else str(level)
        if self.level not in LEVELS:
            raise ValueError(f"monitor.level={level!r}; valid: {', '.join(LEVELS)}")
        self.every = int(cfg.get("every", 100) or 100)
        self.bins = int(cfg.get("bins", 64) or 64)
        sample = cfg.get("sample", 4096)
        self.sample = None if sample is None else int(sample)
        self.figures = bool(cfg.get("figures", True))
        self.model, self.writer, self.run_cfg = model, writer, run_cfg
        self.train_split, self.task = train_split, task
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.members = members
        self.writers = list(writers) if writers is not None else [writer]
        self.K = len(self.writers)
        self.alive: Sequence[bool] = [True] * self.K  # a member that is gone (diverged) gets nothing more
        self.enabled = self.level != "off"
        if not self.enabled:
            return
        if members is not None:
            reason = population_refusal({"monitor": dict(cfg)})
            if reason:
                raise ValueError(f"not batched over members: {reason}")
            self.member_layers = [find_layers(m)[0] for m in members.models]
            _, self.activations = find_layers(members.models[0])  # the modules the batched forward calls
            self.layers = self.member_layers[0]
        else:
            self.layers, self.activations = find_layers(model)
            self.member_layers = [self.layers]
        self._force_snapshot = True  # the first update seen (also after a resume) is a snapshot
        self._pending: dict[str, Any] | None = None
        self._hooks: list = []
        self._captured: dict[str, tuple[Tensor, Tensor]] = {}
        self._sample_idx: Tensor | None = None
        self._sample_cache: tuple[Tensor, Tensor] | None = None  # (split.x it was taken from, the sample)
        self._before: list[Tensor] = []  # the weights before a snapshot's update, reused buffers
        self._last_scan: list[ScanResult] | None = None  # one per member
        self._last_weight_hist = -1
        if self.level == "full":
            self._arm()

    @classmethod
    def of_members(cls, cfg: Mapping | None, members: Members, writers: Sequence, run_cfg: Mapping | None = None,
                   train_split=None, task: str | None = None) -> "Monitor":
        """The monitor of a population's K members (``Members``); member k writes to ``writers[k]``.
        Raises ValueError for what ``population_refusal`` names."""
        return cls(cfg, None, None, run_cfg, train_split, task, members=members, writers=writers)

    # --- the members' tensors, K x ... (one model: 1 x ...) ---------------------------------------

    def _weights(self) -> list[Tensor]:
        if self.members is not None:
            return [w.detach() for w in self.members.weights]
        return [layer.module.weight.detach().unsqueeze(0) for layer in self.layers]

    def _grads(self, i: int) -> list[Tensor]:
        if self.members is not None:
            ps = [self.members.weights[i], self.members.biases[i]]
            return [p.grad.detach() for p in ps if p is not None and p.grad is not None]
        return [p.grad.detach().unsqueeze(0) for p in self.layers[i].module.parameters(recurse=False)
                if p.grad is not None]

    def _live(self):
        """(k, member k's writer) for every member still training."""
        return [(k, w) for k, w in enumerate(self.writers) if self.alive[k]]

    # --- the hooks ------------------------------------------------------------------------------

    def on_train_start(self, step: int) -> None:
        if not self.enabled:
            return
        for k, writer in self._live():
            writer.add_text("monitor/layers", self._layer_table(k), step)
            self._write_layout(writer)
        scans = self._scan(step, keep_values=self.figures)
        self._write_scan(scans)
        if self.figures:
            self._activation_figure(scans[0], "start")

    def before_step(self, step: int) -> None:
        if not self.enabled:
            return
        captured = self._captured
        if self._hooks:
            self._disarm()
        if not (self._force_snapshot or step % self.every == 0):
            return
        self._force_snapshot = False
        weights = self._weights()
        norms = []
        for i in range(len(self.layers)):
            grads = self._grads(i)
            norms.append(grad_norm(grads) if grads else torch.full((self.K,), float("nan"), device=weights[0].device))
        # the weights before the update, copied into buffers kept from one snapshot to the next
        if len(self._before) != len(weights) or any(b.shape != w.shape or b.dtype != w.dtype or b.device != w.device
                                                    for b, w in zip(self._before, weights)):
            self._before = [torch.empty_like(w, memory_format=torch.contiguous_format) for w in weights]
        for b, w in zip(self._before, weights):
            b.copy_(w)
        self._pending = {"step": step, "grad_norm": torch.stack(norms) if norms else None, "before": self._before}
        if step != self._last_weight_hist:
            for k, writer in self._live():
                hists = {f"weight/{layer.name}": w[k] for layer, w in zip(self.layers, weights)}
                if self.level == "full":  # one model only (population_refusal)
                    hists.update(self._batch_histograms(captured))
                write_histograms(writer, hists, step, self.bins)
            self._last_weight_hist = step
        elif self.level == "full":
            write_histograms(self.writers[0], self._batch_histograms(captured), step, self.bins)

    def _batch_histograms(self, captured: Mapping[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        """``full``: the gradients, and the pre-activations and activations of this step's batch."""
        hists = {}
        for layer in self.layers:
            if layer.module.weight.grad is not None:
                hists[f"grad/{layer.name}"] = layer.module.weight.grad
        for act in self.activations:
            if act.name in captured:
                pre, post = captured[act.name]
                hists[f"pre_activation/{act.name}"] = pre
                hists[f"activation/{act.name}"] = post
        return hists

    def after_step(self, step: int) -> None:
        if not self.enabled:
            return
        pending, self._pending = self._pending, None
        if pending is not None and pending["step"] == step and self.layers:
            after = self._weights()
            # ||W_after - W_before|| in place in the buffer (it is rewritten at the next snapshot)
            ratio = torch.stack([update_ratio_(w0, w) for w, w0 in zip(after, pending["before"])])
            std = torch.stack([weight_std(w) for w in after])
            # layers x K each; the one read-back
            grad_norms, ratios, stds = torch.stack([pending["grad_norm"].float(), ratio, std]).cpu().tolist()
            for k, writer in self._live():
                finite = []
                for i, layer in enumerate(self.member_layers[k]):
                    g = grad_norms[i][k]
                    self._scalar(writer, f"{SCALARS}/grad_norm/{layer.name}", g, step)
                    self._scalar(writer, f"{SCALARS}/update_ratio/{layer.name}", ratios[i][k], step)
                    self._scalar(writer, f"{SCALARS}/weight_std/{layer.name}", stds[i][k], step)
                    self._scalar(writer, f"{SCALARS}/weight_std_init/{layer.name}", layer.init_std, step)
                    if math.isfinite(g):
                        finite.append(g)
                if finite:
                    self._scalar(writer, f"{SCALARS}/grad_norm/total", math.sqrt(sum(g * g for g in finite)), step)
        if self.level == "full" and (step + 1) % self.every == 0:
            self._arm()

    def on_epoch_end(self, epoch: int, step: int) -> None:
        if not self.enabled:
            return
        self._write_scan(self._scan(step, keep_values=False))
        self._force_snapshot = True  # the first update of the next epoch
        if self.level == "full" and not self._hooks:
            self._arm()

    def on_train_end(self, step: int) -> None:
        if not self.enabled:
            return
        self._disarm()
        if step != self._last_weight_hist:
            weights = self._weights()
            for k, writer in self._live():
                write_histograms(writer, {f"weight/{layer.name}": w[k] for layer, w in zip(self.layers, weights)},
                                 step, self.bins)
            self._last_weight_hist = step
        written = self._last_scan is not None and self._last_scan[0].step == step
        scans = self._scan(step, keep_values=self.figures)
        if not written:
            self._write_scan(scans)
        if self.figures:
            self._activation_figure(scans[0], "end")
            self._data_figure(step)
        for _, writer in self._live():
            writer.flush()

    # --- pieces ---------------------------------------------------------------------------------

    @staticmethod
    def _scalar(writer, tag: str, value: float, step: int) -> None:
        if value is not None and math.isfinite(value):
            writer.add_scalar(tag, value, step)

    def _arm(self) -> None:
        """Register forward hooks that keep the next forward pass's pre-activations and
        activations (references only: no copy, no compute)."""
        if self._hooks or not self.activations:
            return
        self._captured = {}

        def keeper(name):
            def hook(module, inputs, output):
                if inputs and isinstance(inputs[0], Tensor) and isinstance(output, Tensor):
                    self._captured[name] = (inputs[0].detach(), output.detach())
            return hook

        self._hooks = [a.module.register_forward_hook(keeper(a.name)) for a in self.activations]

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._captured = {}

    def _sample_x(self) -> Tensor | None:
        split = self.train_split
        if split is None or len(split) == 0:
            return None
        if self.sample is None or self.sample >= len(split):
            return split.x
        if self._sample_cache is not None and self._sample_cache[0] is split.x:
            return self._sample_cache[1]  # gathered once per training split, not at every scan
        if self._sample_idx is None:
            # a fixed sample, drawn with its own generator: the run's random streams are untouched
            g = torch.Generator().manual_seed(0)
            self._sample_idx = torch.randperm(len(split), generator=g)[:self.sample].sort().values.to(split.x.device)
        x = split.x[self._sample_idx]
        self._sample_cache = (split.x, x)
        return x

    def _forward_eval(self, x: Tensor, chunk: int) -> None:
        """The model (all members) in evaluation mode over ``x``, in chunks."""
        if self.members is not None:
            for i in range(0, len(x), chunk):
                self.members.forward(x[i:i + chunk])
            return
        was_training = self.model.training
        self.model.eval()
        try:
            for i in range(0, len(x), chunk):
                self.model(x[i:i + chunk])
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def _scan(self, step: int, keep_values: bool, chunk: int = 4096, keep_max: int = 200_000) -> list[ScanResult]:
        """One no-grad pass (eval mode) over the sample; dead and saturated fractions per layer,
        one ScanResult per member."""
        last = self._last_scan
        if last is not None and last[0].step == step and (last[0].values or not keep_values):
            return last
        results = [ScanResult(step) for _ in range(self.K)]
        x = self._sample_x()
        if x is None or not self.activations:
            self._last_scan = results
            return results
        active: dict[str, Tensor] = {}
        saturated: dict[str, Tensor] = {}
        numel: dict[str, int] = {}
        kept: dict[str, tuple[Tensor, Tensor]] = {}
        stacked = self.members is not None

        def observer(act: ActivationLayer):
            def hook(module, inputs, output):
                if not (inputs and isinstance(inputs[0], Tensor) and isinstance(output, Tensor)):
                    return
                pre, out = inputs[0], output
                if not stacked:  # one model: a member axis of 1 (an unbatched 1-D input: a batch of 1)
                    pre, out = (pre.reshape(1, 1, -1), out.reshape(1, 1, -1)) if pre.dim() == 1 else (pre[None], out[None])
                if act.dead_counted and pre.shape == out.shape:
                    a = units_active(pre)
                    active[act.name] = a if act.name not in active else active[act.name] | a
                if act.saturation_counted:
                    c = saturated_count(out, act.kind)
                    saturated[act.name] = c if act.name not in saturated else saturated[act.name] + c
                    numel[act.name] = numel.get(act.name, 0) + out[0].numel()
                if keep_values and act.name not in kept:  # figures: one model only
                    rows = max(1, keep_max // max(1, out[0][0].numel()))
                    kept[act.name] = (pre[0][:rows].detach(), out[0][:rows].detach())
            return hook

        handles = [a.module.register_forward_hook(observer(a)) for a in self.activations]
        try:
            self._forward_eval(x, chunk if not stacked else max(1, chunk // self.K))
        finally:
            for h in handles:
                h.remove()
        names, fractions = [], []
        for name, a in active.items():
            names.append(("dead", name))
            fractions.append(1.0 - a.float().mean(dim=1))
        for name, c in saturated.items():
            names.append(("saturated", name))
            fractions.append(c.float() / max(1, numel[name]))
        if fractions:
            for (kind, name), per_member in zip(names, torch.stack(fractions).cpu().tolist()):
                for result, v in zip(results, per_member):
                    getattr(result, kind)[name] = v
        for name, (pre, post) in kept.items():
            results[0].values[name] = (pre.float().cpu().numpy().ravel(), post.float().cpu().numpy().ravel())
        self._last_scan = results
        return results

    def _write_scan(self, scans: Sequence[ScanResult]) -> None:
        for k, writer in self._live():
            scan = scans[k]
            for name, v in scan.dead.items():
                self._scalar(writer, f"{SCALARS}/dead_relu/{name}", v, scan.step)
            for name, v in scan.saturated.items():
                self._scalar(writer, f"{SCALARS}/saturation/{name}", v, scan.step)

    def _layer_table(self, k: int = 0) -> str:
        acts = {a.after: f"{a.name} ({a.kind})" for a in self.activations}
        rows = ["| layer | type | weight shape | init std | activation |", "|---|---|---|---|---|"]
        for layer in self.member_layers[k]:
            shape = "x".join(str(s) for s in layer.module.weight.shape)
            std = f"{layer.init_std:.4g}" if math.isfinite(layer.init_std) else "n/a"
            rows.append(f"| {layer.name} | {type(layer.module).__name__} | {shape} | {std} | "
                        f"{acts.get(layer.name, '-')} |")
        return "\n".join(rows)

    def _write_layout(self, writer) -> None:
        """A CUSTOM SCALARS page: every layer on one chart per diagnostic, and weight std against
        the initializer's per layer."""
        charts = {"gradient norm (per layer)": ["Multiline", [rf"{SCALARS}/grad_norm/.*"]],
                  "update / weight ratio (cs231n: ~1e-3)": ["Multiline", [rf"{SCALARS}/update_ratio/.*"]],
                  "weight std (per layer)": ["Multiline", [rf"{SCALARS}/weight_std/.*"]]}
        if any(a.dead_counted for a in self.activations):
            charts["dead ReLU fraction"] = ["Multiline", [rf"{SCALARS}/dead_relu/.*"]]
        if any(a.saturation_counted for a in self.activations):
            charts["saturated fraction"] = ["Multiline", [rf"{SCALARS}/saturation/.*"]]
        per_layer = {f"{layer.name}: weight std vs init":
                     ["Multiline", [rf"{SCALARS}/weight_std(_init)?/{re.escape(layer.name)}$"]] for layer in self.layers}
        training = {"loss": ["Multiline", [r"^(train|val)/loss$"]], "accuracy": ["Multiline", [r"^(train|val)/acc$"]]}
        writer.add_custom_scalars({"training": training, "diagnostics": charts, "weight std vs init": per_layer})

    def _activation_figure(self, scan: ScanResult, when: str) -> None:
        from nnbasics.viz import plots

        layers = [plots.LayerActivations(a.name, a.kind, *scan.values[a.name], scan.dead.get(a.name),
                                         scan.saturated.get(a.name))
                  for a in self.activations if a.name in scan.values]
        n = len(self._sample_x()) if self.train_split is not None and len(self.train_split) else 0
        fig = plots.activation_grid(layers, f"activations at the {when} of training (step {scan.step}, "
                                            f"{n} training examples)")
        self._save(fig, f"activations_{when}.png", "figures/activations", scan.step)

    def _data_figure(self, step: int) -> None:
        from nnbasics.viz import plots

        split = self.train_split
        if split is None or len(split) == 0 or split.x.dim() != 2:
            return
        if split.x.shape[1] == 2:
            fig = plots.decision_boundary(self.model, split.x, split.y, self.task or "multiclass",
                                          f"decision boundary at step {step} (training data)")
            self._save(fig, "decision_boundary.png", "figures/decision_boundary", step)
        elif split.x.shape[1] == 1 and self.task == "regression":
            fig = plots.curve_fit(self.model, split.x, split.y, f"fit at step {step} (training data)")
            self._save(fig, "fit.png", "figures/fit", step)

    def _save(self, fig, filename: str, tag: str, step: int) -> None:
        from nnbasics.viz.figures import log_figure, save_figure

        if self.run_dir is None:
            log_figure(self.writer, tag, fig, step)
        else:
            save_figure(fig, self.run_dir / "figures" / filename, self.writer, tag, step)


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``monitor`` group (absent or null: no monitor)."""
    from nnbasics.config import check_bool, check_keys, check_name, check_number, select

    node = select(cfg, "monitor")
    if node is None:
        return []
    check_keys(node, "monitor", ("level", "every", "sample", "bins", "figures"))
    check_name(cfg, "monitor.level", LEVELS)
    check_number(cfg, "monitor.every", low=1, integer=True)
    check_number(cfg, "monitor.sample", low=1, integer=True, optional=True)
    check_number(cfg, "monitor.bins", low=2, high=10_000, integer=True, optional=True)
    check_bool(cfg, "monitor.figures", optional=True)
    return []
