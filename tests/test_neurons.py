"""The neuron-by-neuron forward pass, the per-sample and batched forms, FLOPs, epoch arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch
from torch import nn

from nnbasics.nn import neurons
from nnbasics.nn.models import build_model

FORMS = sorted(neurons.FORWARDS)


ACTIVATION_OPTIONS = sorted(p.stem for p in (CONF_DIR / "activation").glob("*.yaml"))


@pytest.mark.parametrize("activation", ACTIVATION_OPTIONS)
@pytest.mark.parametrize("depth,extra", [(2, []), (1, ["model.norm=batch"])])
def test_every_form_equals_the_configured_mlp(compose, activation, depth, extra):
    cfg = compose([f"activation={activation}", f"model.depth={depth}", "model.width=12", *extra])
    torch.manual_seed(0)
    model = build_model(cfg, (1, 28, 28), 10).double()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    if extra:  # give batch norm running statistics that are not the identity
        model.train()(torch.randn(16, 1, 28, 28, dtype=torch.float64))
    ref = model.eval()(x).detach()
    assert ref.shape == (3, 10)
    for name in FORMS:
        out = neurons.FORWARDS[name](model, x)
        assert out.shape == ref.shape, name
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12, msg=name)


def test_linear_model_and_float32_within_rounding(compose):
    linear = build_model(compose(["model.depth=0"]), (1, 28, 28), 10).double()
    x64 = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(neurons.forward_neurons(linear, x64), linear(x64).detach(), rtol=1e-12, atol=1e-12)
    cfg = compose(["model.depth=2", "model.width=32"])
    torch.manual_seed(1)
    model = build_model(cfg, (1, 28, 28), 10).eval()
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(neurons.forward_neurons(model, x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("extra", [["model.dropout.p=0.5", "model.dropout.variant=vanilla", "model.dropout.input_p=0.2"],
                                   ["model.dropout.p=0.5", "model.dropout.variant=dropconnect"],
                                   ["regularization=input_noise"]])
def test_dropout_and_noise_layers_compute_the_eval_forward_and_keep_the_mode(compose, extra):
    model = build_model(compose(["model.depth=2", "model.width=12", *extra]), (1, 28, 28), 10).double()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    ref = model.eval()(x).detach()
    model.train()
    for name in FORMS:
        torch.testing.assert_close(neurons.FORWARDS[name](model, x), ref, rtol=1e-12, atol=1e-12, msg=name)
    assert model.training


def test_neuron_loop_fuses_elementwise_activations_into_units(compose):
    cfg = compose(["model.depth=2", "model.width=8", "activation=tanh"])
    model = build_model(cfg, (1, 28, 28), 10)
    dense = [s for s in neurons.forward_plan(model) if s.kind == "dense"]
    assert [tuple(s.weight.shape) for s in dense] == [(8, 784), (8, 8), (10, 8)]
    assert [s.activation is not None for s in dense] == [True, True, False]  # no activation on the output
    normed = build_model(compose(["model.depth=1", "model.width=8", "model.norm=batch"]), (1, 28, 28), 10)
    kinds = [s.kind for s in neurons.forward_plan(normed)]
    assert "unitwise" in kinds and kinds.index("unitwise") > kinds.index("dense")  # Linear -> norm -> activation


def test_generic_model_with_other_modules_and_a_per_unit_activation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Dropout(0.5), nn.LeakyReLU(0.1), nn.Linear(4, 3),
                          nn.PReLU(3, init=0.3), nn.Linear(3, 2, bias=False)).double()
    with torch.no_grad():
        model[4].weight.copy_(torch.tensor([0.1, 0.5, -0.2]))
    model.train()  # the passes compute the eval forward and leave the mode as it was
    x = torch.randn(4, 5, dtype=torch.float64)
    ref = model.eval()(x)
    model.train()
    for name in FORMS:
        torch.testing.assert_close(neurons.FORWARDS[name](model, x), ref, rtol=1e-12, atol=1e-12, msg=name)
    assert model.training
    plan = neurons.forward_plan(model)
    assert [s.kind for s in plan] == ["dense", "module", "unitwise", "dense", "module", "dense"]
    assert plan[4].module is model[4]  # a per-unit PReLU is applied to the whole layer


def test_one_neuron_is_a_weighted_sum_plus_bias_through_f():
    assert neurons.neuron([1.0, 2.0], 0.5, [3.0, 4.0], lambda z: z) == 11.5
    assert neurons.neuron([1.0, -2.0], 0.5, [3.0, 4.0], lambda z: max(z, 0.0)) == 0.0


def test_flop_count_is_two_per_weight_per_sample(compose):
    cfg = compose(["model.depth=1", "model.width=100"])
    model = build_model(cfg, (1, 28, 28), 10)
    assert neurons.count_flops(model) == 2 * (784 * 100 + 100 * 10)
    assert neurons.count_flops(model, batch_size=32) == 32 * 2 * (784 * 100 + 100 * 10)


def test_epoch_arithmetic_gd_vs_minibatch():
    gd = neurons.epoch_cost(60_000, 1e-3, batch_size=60_000, epochs=100)
    sgd = neurons.epoch_cost(60_000, 1e-3, batch_size=100, epochs=100)
    assert gd["epoch_s"] == pytest.approx(60.0) and sgd["epoch_s"] == pytest.approx(60.0)
    assert gd["total_s"] == pytest.approx(6000.0) and gd["total_updates"] == 100
    assert sgd["updates_per_epoch"] == 600 and sgd["total_updates"] == 60_000
    assert sgd["update_s"] == pytest.approx(0.1)
    assert sgd["gd_s_for_same_updates"] == pytest.approx(60_000 * 60.0)  # 41.7 days of GD
    ragged = neurons.epoch_cost(1000, 1e-3, batch_size=300, epochs=1, per_update_s=0.5)
    assert ragged["updates_per_epoch"] == 4 and ragged["epoch_s"] == pytest.approx(1.0 + 4 * 0.5)
    with pytest.raises(ValueError):
        neurons.epoch_cost(0, 1e-3, 10)
