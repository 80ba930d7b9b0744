"""Activations: forward values and gradients against torch, gradcheck of the hand-written
backward passes, numerical stability at the extremes, PReLU and Maxout learn, the registry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from nnbasics.nn import activations as A
from nnbasics.errors import ConfigError

CONF = CONF_DIR / "activation"

# name -> (our function, torch twin); inputs avoid the kink at 0 by construction (randn)
TWINS = {
    "sigmoid": (A.sigmoid, torch.sigmoid),
    "tanh": (A.tanh, torch.tanh),
    "relu": (A.relu, F.relu),
    "leaky_relu": (lambda x: A.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
    "elu": (lambda x: A.elu(x, 0.7), lambda x: F.elu(x, 0.7)),
    "selu": (A.selu, F.selu),
    "identity": (A.identity, lambda x: x),
    "maxout": (lambda x: A.maxout(x, 3), lambda x: F.max_pool1d(x.unsqueeze(1), 3, 3).squeeze(1)),
}


def _x(dtype=torch.float32, shape=(8, 12)):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype) * 3).requires_grad_(True)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_forward_and_gradient_match_torch(name):
    ours, ref = TWINS[name]
    x1, x2 = _x(), _x()
    y1, y2 = ours(x1), ref(x2)
    torch.testing.assert_close(y1, y2)
    g = torch.randn(y1.shape, generator=torch.Generator().manual_seed(1))
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_prelu_matches_torch_including_the_slope_gradient():
    for n, shape in [(1, (8, 12)), (12, (8, 12)), (4, (2, 4, 3, 3))]:
        ours, ref = A.PReLU(n, 0.3), nn.PReLU(n, 0.3)
        x1, x2 = _x(shape=shape), _x(shape=shape)
        y1, y2 = ours(x1), ref(x2)
        torch.testing.assert_close(y1, y2)
        y1.square().sum().backward()
        y2.square().sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad)


@pytest.mark.parametrize("fn", [A.sigmoid, A.tanh, A.relu, lambda x: A.elu(x, 1.3), A.selu],
                         ids=["sigmoid", "tanh", "relu", "elu", "selu"])
def test_hand_written_backward_passes_gradcheck(fn):
    x = _x(torch.float64, (5, 7))
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-5)  # the backward is differentiable too


@pytest.mark.parametrize("fn", [lambda x: A.leaky_relu(x, 0.1), lambda x: A.maxout(x, 2),
                                lambda x: A.prelu(x, torch.tensor([0.2], dtype=torch.float64))],
                         ids=["leaky_relu", "maxout", "prelu"])
def test_piecewise_linear_gradients_gradcheck(fn):
    x = _x(torch.float64, (5, 8))  # no entry within eps of a kink (|x| > 1e-3 with this seed)
    assert float(x.detach().abs().min()) > 1e-3
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


def test_sigmoid_and_tanh_are_finite_and_saturate_at_the_extremes():
    x = torch.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    s = A.sigmoid(x)
    torch.testing.assert_close(s, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    s.sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad[2]) == pytest.approx(0.25)  # sigma' <= 1/4
    assert float(x.grad[0]) == 0.0 and float(x.grad[-1]) == 0.0  # saturated: no gradient
    x.grad = None
    t = A.tanh(x)
    torch.testing.assert_close(t, torch.tensor([-1.0, -1.0, 0.0, 1.0, 1.0]))
    t.sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad[2]) == 1.0


def test_relu_gradient_at_zero_is_zero_like_torch():
    x = torch.zeros(3, requires_grad=True)
    A.relu(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros(3))


def test_selu_keeps_unit_normal_inputs_normalized():
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = A.selu(z)
    assert abs(float(y.mean())) < 0.01 and float(y.var()) == pytest.approx(1.0, abs=0.01)


def test_maxout_groups_consecutive_units_and_rejects_a_bad_width():
    x = torch.tensor([[1.0, 5.0, -2.0, -3.0, 0.0, 4.0]])
    assert torch.equal(A.maxout(x, 2), torch.tensor([[5.0, -2.0, 4.0]]))
    assert torch.equal(A.maxout(x, 3), torch.tensor([[5.0, 4.0]]))
    img = torch.randn(2, 6, 4, 4)
    assert A.Maxout(3)(img).shape == (2, 2, 4, 4)
    with pytest.raises(ValueError, match="multiple of 4"):
        A.maxout(x, 4)


def test_prelu_learns_its_slope():
    """Regress y = prelu_0.1(x) with a PReLU that starts at slope 0.25: the slope goes to 0.1."""
    torch.manual_seed(0)
    x = torch.randn(512, 1)
    y = torch.where(x > 0, x, 0.1 * x)
    act = A.PReLU(1, 0.25)
    opt = torch.optim.SGD(act.parameters(), lr=0.5)
    for _ in range(100):
        opt.zero_grad()
        F.mse_loss(act(x), y).backward()
        opt.step()
    assert float(act.weight.detach()) == pytest.approx(0.1, abs=1e-3)


def test_maxout_learns_the_absolute_value():
    """|x| = max(x, -x): one maxout unit of two linear pieces fits it exactly; a single linear
    unit cannot (its best fit leaves a large error)."""
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 256).unsqueeze(1)
    y = x.abs()
    lin = nn.Linear(1, 2)
    model = nn.Sequential(lin, A.Maxout(2))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    assert float(loss) < 1e-4
    assert sorted(lin.weight.detach().reshape(-1).tolist()) == pytest.approx([-1.0, 1.0], abs=0.02)
    baseline = F.mse_loss(torch.full_like(y, float(y.mean())), y)  # best constant / linear fit by symmetry
    assert float(baseline) > 0.1


# --- Modules, registry, config -----------------------------------------------------------------


def test_registry_modules_subclass_activation_and_carry_their_name():
    for name, cls in A.ACTIVATIONS.items():
        m = A.get_activation(name)
        assert isinstance(m, A.Activation) and isinstance(m, cls) and m.name == name
    assert set(A.FUNCTIONS) == set(A.ACTIVATIONS)


def test_every_activation_has_a_config_file_and_builds_from_it():
    options = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert set(options) == set(A.ACTIVATIONS)
    for option in options:
        cfg = OmegaConf.load(CONF / f"{option}.yaml")
        m = A.get_activation(cfg, num_features=4)
        x = torch.randn(3, 4)
        assert m(x).shape == (3, 4 // A.pieces_of(cfg))


def test_get_activation_reads_its_options():
    assert A.get_activation({"name": "leaky_relu", "negative_slope": 0.2}).negative_slope == 0.2
    assert A.get_activation({"name": "elu", "alpha": 0.5}).alpha == 0.5
    assert A.get_activation({"name": "maxout", "pieces": 4}).pieces == 4
    assert A.get_activation({"name": "prelu", "per_unit": True}, num_features=6).weight.shape == (6,)
    assert A.get_activation({"name": "prelu", "per_unit": False}, num_features=6).weight.shape == (1,)
    relu = A.ReLU()
    assert A.get_activation(relu) is relu and isinstance(A.get_activation(A.Tanh), A.Tanh)
    gelu = A.get_activation(F.gelu)
    assert isinstance(gelu, A.Activation) and gelu.name == "gelu"
    x = torch.randn(4)
    assert torch.equal(gelu(x), F.gelu(x))


def test_unknown_activation_lists_the_valid_names():
    with pytest.raises(ConfigError, match="leaky_relu") as e:
        A.get_activation("swish")
    assert e.value.key == "activation.name"


def test_gain_name_carries_the_negative_slope():
    assert A.gain_name("relu") == ("relu", None)
    assert A.gain_name({"name": "leaky_relu", "negative_slope": 0.2}) == ("leaky_relu", 0.2)
    assert A.gain_name({"name": "prelu", "negative_slope": 0.25}) == ("leaky_relu", 0.25)
    assert A.gain_name(A.LeakyReLU(0.3)) == ("leaky_relu", 0.3)
    from nnbasics.nn.init import calculate_gain

    for name in A.ACTIVATIONS:  # every activation has a gain
        assert math.isfinite(calculate_gain(*A.gain_name(name)))


@pytest.mark.parametrize("overrides,key", [
    (["activation=maxout", "activation.pieces=1"], "activation.pieces"),
    (["activation=leaky_relu", "activation.negative_slope=-0.1"], "activation.negative_slope"),
    (["activation=elu", "activation.alpha=0"], "activation.alpha"),
    (["activation.name=swish"], "activation.name"),
])
def test_bad_activation_options_are_refused_with_the_key(compose, overrides, key):
    from nnbasics.engine.validate import validate

    with pytest.raises(ConfigError) as e:
        validate(compose(["data=spiral", "monitor=off"] + overrides))
    assert e.value.key == key
