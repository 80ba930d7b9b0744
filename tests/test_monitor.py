"""The monitor: what it finds in a model, what it computes (against hand-computed values), when
it computes it (snapshots only, hooks only for one forward), and that it never changes training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from nnbasics.engine import monitor as monitor_mod
from nnbasics.data.datasets import Split
from nnbasics.errors import ConfigError
from nnbasics.engine.monitor import Monitor, find_layers, write_histograms


class RecordingWriter:
    """Stands in for SummaryWriter: records every call as (method, tag, value, step)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def add_scalar(self, tag, value, step=None):
        self.calls.append(("scalar", tag, float(value), step))

    def add_histogram_raw(self, tag, **kw):
        self.calls.append(("histogram", tag, kw, kw["global_step"]))

    def add_image(self, tag, img, step=None, dataformats="CHW"):
        self.calls.append(("image", tag, np.asarray(img).shape, step))

    def add_figure(self, tag, figure, global_step=None, close=True):
        from nnbasics.viz.figures import figure_to_array

        self.calls.append(("image", tag, figure_to_array(figure).shape, global_step))

    def add_text(self, tag, text, step=None):
        self.calls.append(("text", tag, text, step))

    def add_custom_scalars(self, layout):
        self.calls.append(("layout", None, layout, None))

    def flush(self):
        pass

    def scalars(self, prefix=""):
        return {(c[1], c[3]): c[2] for c in self.calls if c[0] == "scalar" and c[1].startswith(prefix)}

    def tags(self, kind):
        return {c[1] for c in self.calls if c[0] == kind}


class ExplodingWriter:
    def __getattr__(self, name):
        raise AssertionError(f"monitor=off must not touch the writer (called {name})")


def mlp(width=8, depth=2, act=nn.ReLU, in_features=2, out=3):
    layers, fan = [], in_features
    for _ in range(depth):
        layers += [nn.Linear(fan, width), act()]
        fan = width
    layers.append(nn.Linear(fan, out))
    return nn.Sequential(*layers)


def cfg(level="basic", **kw):
    return {"level": level, "every": kw.pop("every", 100), "sample": kw.pop("sample", None),
            "bins": kw.pop("bins", 16), "figures": kw.pop("figures", False), **kw}


# --- finding layers ------------------------------------------------------------------------------


def test_find_layers_names_layers_in_forward_order_and_reads_init_std():
    model = mlp(depth=2, act=nn.Tanh)
    model[0].init_std = 0.5
    weights, acts = find_layers(model)
    # one naming everywhere: the module path, as in named_modules(), the state_dict and the TEXT tab
    assert [w.name for w in weights] == ["0", "2", "4"] == [w.path for w in weights]
    assert [(a.name, a.kind, a.after) for a in acts] == [("1", "tanh", "0"), ("3", "tanh", "2")]
    assert weights[0].init_std == 0.5 and math.isnan(weights[1].init_std)
    assert acts[0].saturation_counted and not acts[0].dead_counted


def test_find_layers_uses_the_init_audit_of_the_project_mlp(compose, toy_overrides):
    from nnbasics.nn.models import build_model

    model = build_model(compose(toy_overrides + ["model.depth=2", "model.width=16"]), (2,), 3)
    weights, acts = find_layers(model)
    assert [a.kind for a in acts] == ["relu", "relu"]
    # the names of the init audit and model summary in the TEXT tab
    from nnbasics.nn.models import init_audit

    assert [w.name for w in weights] == [r["layer"] for r in init_audit(model)] == ["net.0", "net.2", "net.4"]
    assert [a.name for a in acts] == ["net.1", "net.3"]
    # He normal: sqrt(2 / fan_in) for hidden layers; the output layer is linear: sqrt(1 / fan_in)
    assert weights[0].init_std == pytest.approx(math.sqrt(2 / 2))
    assert weights[1].init_std == pytest.approx(math.sqrt(2 / 16))
    assert weights[2].init_std == pytest.approx(math.sqrt(1 / 16))


def test_find_layers_prefers_project_activation_class_and_skips_what_it_wraps(monkeypatch):
    import nnbasics.nn.activations as activations

    class Activation(nn.Module):  # the contract: activation Modules subclass activations.Activation
        def __init__(self, name, inner):
            super().__init__()
            self.name, self.inner = name, inner

        def forward(self, x):
            return self.inner(x)

    monkeypatch.setattr(activations, "Activation", Activation, raising=False)
    model = nn.Sequential(nn.Linear(2, 4), Activation("leaky_relu", nn.LeakyReLU()), nn.Linear(4, 4),
                          nn.ReLU(), nn.Linear(4, 1))
    _, acts = find_layers(model)
    # only Activation instances count once the model has any; the LeakyReLU inside is not counted twice
    assert [(a.name, a.kind, a.path) for a in acts] == [("1", "leaky_relu", "1")]
    assert acts[0].dead_counted


# --- histograms ------------------------------------------------------------------------------------


def test_histograms_have_fixed_bins_and_match_numpy():
    w = RecordingWriter()
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0))
    write_histograms(w, {"h": x, "const": torch.full((7,), 3.0), "mixed": torch.tensor([1.0, float("nan"), 2.0, float("inf")])},
                     step=5, bins=20)
    h = {c[1]: c[2] for c in w.calls if c[0] == "histogram"}
    ref, edges = np.histogram(x.numpy(), bins=20, range=(float(x.min()), float(x.max())))
    assert len(h["h"]["bucket_counts"]) == 20 and len(h["h"]["bucket_limits"]) == 20
    # histc and numpy may disagree on a value that lies on a bin edge (float rounding)
    assert np.abs(np.array(h["h"]["bucket_counts"]) - ref).sum() <= 2
    assert sum(h["h"]["bucket_counts"]) == 10_000 == h["h"]["num"]
    assert h["h"]["bucket_limits"] == pytest.approx(edges[1:].tolist(), rel=1e-5)
    assert h["h"]["sum"] == pytest.approx(float(x.sum()), abs=1e-2)
    assert h["h"]["sum_squares"] == pytest.approx(float((x * x).sum()), rel=1e-5)
    assert sum(h["const"]["bucket_counts"]) == 7 and h["const"]["min"] == h["const"]["max"] == 3.0
    assert h["mixed"]["num"] == 2 and sum(h["mixed"]["bucket_counts"]) == 2
    assert w.scalars("nonfinite/") == {("nonfinite/mixed", 5): 2.0}


# --- dead units and saturation -----------------------------------------------------------------------


def _fixed_model(act, biases):
    """Linear(2, 4) with zero weights and the given biases, then the activation, then a head:
    unit i's pre-activation is biases[i] for every input."""
    model = nn.Sequential(nn.Linear(2, 4), act(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor(biases))
    return model


def test_dead_relu_fraction_counts_units_never_active_over_the_sample():
    model = _fixed_model(nn.ReLU, [-1.0, -2.0, 0.0, 3.0])  # 0 is not active: 3 of 4 dead
    x = torch.randn(100, 2)
    w = RecordingWriter()
    Monitor(cfg(), model, w, train_split=Split(x, torch.zeros(100, dtype=torch.long))).on_epoch_end(1, 7)
    assert w.scalars("watch/dead_relu/") == {("watch/dead_relu/1", 7): 0.75}
    # a unit active on a single example is not dead
    with torch.no_grad():
        model[0].weight[0] = torch.tensor([1.0, 0.0])
        model[0].bias[0] = -float(x[:, 0].max()) + 1e-3
    w = RecordingWriter()
    Monitor(cfg(), model, w, train_split=Split(x, torch.zeros(100, dtype=torch.long))).on_epoch_end(2, 9)
    assert w.scalars("watch/dead_relu/") == {("watch/dead_relu/1", 9): 0.5}


@pytest.mark.parametrize("act, biases", [(nn.Tanh, [10.0, -10.0, 0.0, 0.5]), (nn.Sigmoid, [10.0, -10.0, 0.0, 3.0])])
def test_saturation_fraction_counts_outputs_near_the_asymptotes(act, biases):
    # tanh(0.5) = 0.46, sigmoid(3) = 0.95: not saturated; +-10: within 0.01 of the asymptote
    model = _fixed_model(act, biases)
    w = RecordingWriter()
    Monitor(cfg(), model, w, train_split=Split(torch.randn(50, 2), torch.zeros(50, dtype=torch.long))).on_epoch_end(1, 3)
    assert w.scalars("watch/saturation/") == {("watch/saturation/1", 3): 0.5}
    assert not w.scalars("watch/dead_relu/")


def test_sample_limits_the_pass_and_leaves_global_rng_alone():
    model = mlp()
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append(len(i[0])))
    split = Split(torch.randn(1000, 2), torch.zeros(1000, dtype=torch.long))
    state = torch.get_rng_state()
    Monitor(cfg(sample=64), model, RecordingWriter(), train_split=split).on_epoch_end(1, 1)
    assert sum(seen) == 64
    assert torch.equal(state, torch.get_rng_state())


# --- per-step statistics -------------------------------------------------------------------------------


def _sgd_step(model, opt, mon, step, x, y):
    out = model(x)
    loss = nn.functional.cross_entropy(out, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grads = [m.weight.grad.clone() for m in model if isinstance(m, nn.Linear)]
    biases = [m.bias.grad.clone() for m in model if isinstance(m, nn.Linear)]
    weights = [m.weight.detach().clone() for m in model if isinstance(m, nn.Linear)]
    mon.before_step(step)
    opt.step()
    mon.after_step(step)
    return grads, biases, weights


def test_gradient_norm_update_ratio_and_weight_std_match_hand_computation():
    torch.manual_seed(0)
    model = mlp()
    model[0].init_std = 0.7
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    w = RecordingWriter()
    mon = Monitor(cfg(), model, w, train_split=None)
    x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
    grads, biases, weights = _sgd_step(model, opt, mon, 0, x, y)
    s = w.scalars()
    total = 0.0
    for k, (g, b, w0) in zip((0, 2, 4), zip(grads, biases, weights)):
        norm = math.sqrt(float(g.pow(2).sum() + b.pow(2).sum()))
        total += norm**2
        assert s[(f"watch/grad_norm/{k}", 0)] == pytest.approx(norm, rel=1e-5)
        # plain SGD: the update is lr * grad, so the ratio is lr * ||g|| / ||W||
        assert s[(f"watch/update_ratio/{k}", 0)] == pytest.approx(lr * float(g.norm()) / float(w0.norm()), rel=1e-4)
        assert s[(f"watch/weight_std/{k}", 0)] == pytest.approx(float((w0 - lr * g).std()), rel=1e-5)
    assert s[("watch/grad_norm/total", 0)] == pytest.approx(math.sqrt(total), rel=1e-5)
    assert s[("watch/weight_std_init/0", 0)] == pytest.approx(0.7)
    assert ("watch/weight_std_init/2", 0) not in s  # nan (unknown) is not logged
    assert w.tags("histogram") == {"weight/0", "weight/2", "weight/4"}  # basic: weights only


def test_snapshots_only_every_n_steps_and_at_the_first_step_of_each_epoch():
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    w = RecordingWriter()
    mon = Monitor(cfg(every=4), model, w, train_split=None)
    x, y = torch.randn(16, 2), torch.randint(0, 3, (16,))
    for step in range(11):
        n = len(w.calls)
        _sgd_step(model, opt, mon, step, x, y)
        if step not in (0, 4, 6, 8):
            assert len(w.calls) == n, f"step {step} is no snapshot and must write nothing"
        if step == 5:
            mon.on_epoch_end(1, 6)  # the next update (6) is the first of an epoch
    assert sorted({c[3] for c in w.calls if c[1] == "watch/grad_norm/total"}) == [0, 4, 6, 8]


def test_full_hooks_exist_only_for_the_snapshot_forward_and_capture_that_batch():
    torch.manual_seed(0)
    model = mlp(width=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    w = RecordingWriter()
    mon = Monitor(cfg("full", every=3), model, w, train_split=None)
    hooked = lambda: sum(len(m._forward_hooks) for m in model)  # noqa: E731
    for step in range(7):
        armed_before_forward = hooked()
        x, y = torch.randn(4 + step, 2), torch.randint(0, 3, (4 + step,))
        _sgd_step(model, opt, mon, step, x, y)
        assert armed_before_forward == (2 if step in (0, 3, 6) else 0), step
        assert hooked() == (2 if step in (2, 5) else 0), step  # armed after the update before a snapshot
    hist = {(c[1], c[3]): c[2] for c in w.calls if c[0] == "histogram"}
    assert {t for t, _ in hist} == {f"{k}/{i}" for k in ("pre_activation", "activation") for i in (1, 3)} | \
        {f"{k}/{i}" for k in ("weight", "grad") for i in (0, 2, 4)}
    # the histogram of step 3 is of step 3's batch (4 + 3 examples x 5 units)
    assert hist[("activation/1", 3)]["num"] == 7 * 5
    assert hist[("activation/1", 3)]["min"] >= 0.0  # after the ReLU
    assert hist[("pre_activation/1", 3)]["min"] < 0.0


def test_level_off_does_nothing():
    model = mlp()
    mon = Monitor({"level": "off", "every": 1}, model, ExplodingWriter(),
                  train_split=Split(torch.randn(10, 2), torch.zeros(10, dtype=torch.long)), task="multiclass")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    mon.on_train_start(0)
    _sgd_step(model, opt, mon, 0, torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    mon.on_epoch_end(1, 1)
    mon.on_train_end(1)
    assert sum(len(m._forward_hooks) for m in model) == 0


# --- through the training loop --------------------------------------------------------------------


def test_monitor_is_passive_full_and_off_train_bit_for_bit_alike(compose, toy_overrides, tmp_path):
    from nnbasics.engine.train import train

    common = toy_overrides + ["model.depth=2", "monitor.every=2", "monitor.figures=false"]
    off = train(compose(common + ["monitor=off"]), run_dir=tmp_path / "off")
    full = train(compose(common + ["monitor=full", "monitor.every=2", "monitor.figures=false"]), run_dir=tmp_path / "full")
    for key in ("train/loss", "val/loss", "test/loss"):
        assert off[key] == full[key], key
    assert not (tmp_path / "full" / "figures").exists()


def test_figures_of_a_2d_run_are_pngs_and_images(compose, toy_overrides, tmp_path):
    from nnbasics.engine.train import train

    train(compose(toy_overrides + ["monitor=basic", "epochs=1"]), run_dir=tmp_path / "spiral")
    figures = tmp_path / "spiral" / "figures"
    assert sorted(p.name for p in figures.iterdir()) == ["activations_end.png", "activations_start.png",
                                                         "decision_boundary.png"]
    for p in figures.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < p.stat().st_size < 200_000


def test_a_1d_regression_gets_a_fit_figure_and_other_inputs_none(tmp_path):
    x = torch.linspace(-3, 3, 64).unsqueeze(1)
    w = RecordingWriter()
    mon = Monitor(cfg(figures=True), mlp(in_features=1, out=1), w, train_split=Split(x, torch.sin(x)),
                  task="regression", run_dir=tmp_path / "curve")
    mon.on_train_end(10)
    assert (tmp_path / "curve" / "figures" / "fit.png").exists()
    assert {c[1] for c in w.calls if c[0] == "image"} == {"figures/activations", "figures/fit"}
    w = RecordingWriter()
    Monitor(cfg(figures=True), mlp(in_features=5), w, train_split=Split(torch.randn(20, 5), torch.zeros(20, dtype=torch.long)),
            task="multiclass", run_dir=tmp_path / "five").on_train_end(3)
    assert {c[1] for c in w.calls if c[0] == "image"} == {"figures/activations"}


def test_decision_boundary_shows_the_classes_the_model_predicts():
    """A fixed classifier (class = x1 > 0) must paint the two half planes in two colours."""
    from nnbasics.viz.figures import figure_to_array
    from nnbasics.viz.plots import decision_boundary

    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        model.bias.zero_()
    x = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    img = figure_to_array(decision_boundary(model, x, torch.tensor([0, 1]), "multiclass"))
    h, w, _ = img.shape
    row = img[h // 2].astype(int)
    left, right = row[int(w * 0.25)], row[int(w * 0.7)]
    assert np.abs(left - right).sum() > 60, (left, right)
    with pytest.raises(ValueError, match="2-D"):
        decision_boundary(model, torch.randn(4, 3), torch.zeros(4), "multiclass")


@pytest.mark.parametrize("override, key", [("monitor.sample=0", "monitor.sample"), ("monitor.bins=1", "monitor.bins"),
                                           ("monitor.figures=maybe", "monitor.figures")])
def test_bad_monitor_values_are_config_errors(compose, toy_overrides, override, key):
    from nnbasics.engine.validate import validate

    with pytest.raises(ConfigError, match=key):
        validate(compose(toy_overrides + ["monitor=basic", override]))


def test_every_monitor_option_composes(compose, toy_overrides):
    for level in monitor_mod.LEVELS:
        c = compose(toy_overrides + [f"monitor={level}"])
        assert c.monitor.level == level and c.monitor.every >= 1


@pytest.mark.slow
def test_dead_relu_fraction_rises_with_the_learning_rate_on_mnist(compose, tmp_path, monkeypatch):
    """The classic: too high a learning rate kills ReLUs. Adam at 1e-3 against 3e-2, one epoch on
    10,000 MNIST images (measured: net.1 0.4% dead against 92%)."""
    from conftest import SHARED_DATA
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nnbasics.engine.train import train

    if not (SHARED_DATA / "MNIST").is_dir():
        pytest.skip(f"no MNIST under {SHARED_DATA}")
    monkeypatch.setenv("NNBASICS_DATA", str(SHARED_DATA))
    dead = {}
    for lr in (1e-3, 3e-2):
        run = tmp_path / str(lr)
        train(compose(["optimizer=adam", f"optimizer.lr={lr}", "epochs=1", "progress=false", "eval_test=false",
                       "checkpoint=false", "data.train_size=10000", "data.download=false", "monitor=basic",
                       "monitor.figures=false"]), run_dir=run)
        acc = EventAccumulator(str(run / "tb"))
        acc.Reload()
        dead[lr] = acc.Scalars("watch/dead_relu/net.1")[-1].value
    assert dead[3e-2] > 0.3 and dead[3e-2] > 10 * max(dead[1e-3], 0.005), dead


# --- the statistics over a population's stacked members ---------------------------------------------


def test_statistics_of_stacked_members_equal_each_members_own():
    """The stat functions take K x ... tensors (a population's stacked weights and activations):
    member k's value equals what the one-model path (its tensor with a member axis of 1) gives,
    and the one-model values equal the formulas."""
    g = torch.Generator().manual_seed(0)
    K = 3
    w, b = torch.randn(K, 5, 4, generator=g), torch.randn(K, 5, generator=g)
    after = w + 0.01 * torch.randn(K, 5, 4, generator=g)
    pre = torch.randn(K, 6, 5, generator=g) - torch.tensor([0.0, 3.0, 6.0]).view(K, 1, 1)
    conv = torch.randn(K, 6, 2, 3, 3, generator=g)
    stacked = {"grad_norm": monitor_mod.grad_norm([w, b]), "update_ratio": monitor_mod.update_ratio_(w.clone(), after),
               "weight_std": monitor_mod.weight_std(w), "active": monitor_mod.units_active(pre),
               "conv_active": monitor_mod.units_active(conv),
               "saturated": monitor_mod.saturated_count(torch.tanh(3 * pre), "tanh")}
    for k in range(K):
        one = {"grad_norm": monitor_mod.grad_norm([w[k][None], b[k][None]]),
               "update_ratio": monitor_mod.update_ratio_(w[k][None].clone(), after[k][None]),
               "weight_std": monitor_mod.weight_std(w[k][None]), "active": monitor_mod.units_active(pre[k][None]),
               "conv_active": monitor_mod.units_active(conv[k][None]),
               "saturated": monitor_mod.saturated_count(torch.tanh(3 * pre[k][None]), "tanh")}
        for name, v in one.items():
            assert torch.equal(stacked[name][k], v[0]), (name, k)
        assert float(one["grad_norm"]) == pytest.approx(math.sqrt(float(w[k].pow(2).sum() + b[k].pow(2).sum())), rel=1e-6)
        assert float(one["update_ratio"]) == pytest.approx(float((after[k] - w[k]).norm() / w[k].norm()), rel=1e-5)
        assert float(one["weight_std"]) == pytest.approx(float(w[k].std()), rel=1e-6)
        assert one["active"][0].tolist() == (pre[k] > 0).any(dim=0).tolist()
        assert one["conv_active"][0].tolist() == (conv[k] > 0).transpose(0, 1).reshape(2, -1).any(dim=1).tolist()
        out = torch.tanh(3 * pre[k])
        assert int(one["saturated"]) == int(((out <= -0.99) | (out >= 0.99)).sum())
    assert stacked["active"].float().mean(dim=1).tolist() != [stacked["active"][0].float().mean().item()] * K


def test_a_monitor_of_members_refuses_what_it_does_not_batch():
    members = monitor_mod.Members([mlp(), mlp()], [], [], lambda x: x)
    with pytest.raises(ValueError, match="monitor.level=full"):
        Monitor.of_members(cfg("full"), members, [RecordingWriter(), RecordingWriter()])
    with pytest.raises(ValueError, match="monitor.figures"):
        Monitor.of_members(cfg(figures=True), members, [RecordingWriter(), RecordingWriter()])
    assert not Monitor.of_members(cfg("off"), members, [ExplodingWriter(), ExplodingWriter()]).enabled
