"""Regularization: L2 / L1 / elastic-net penalties touch weights only (biases, norm parameters and
PReLU slopes untouched), decoupled weight decay through the optimizer, max-norm after a step,
and the config node (every option has every key; bad values are refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch
from omegaconf import OmegaConf
from torch import nn

from nnbasics.nn import linear as L_linear, norms as L_norms
from nnbasics.optim import regularization as R
from nnbasics.nn.activations import PReLU, ReLU
from nnbasics.errors import ConfigError

CONF = CONF_DIR / "regularization"


def net():
    torch.manual_seed(0)
    return nn.Sequential(L_linear.Linear(4, 6, init={"name": "he_normal", "bias": 0.1}), L_norms.BatchNorm(6), PReLU(6),
                         L_linear.Linear(6, 3, init={"name": "he_normal", "bias": 0.1}))


def cfg(**kw):
    base = OmegaConf.to_container(OmegaConf.load(CONF / "none.yaml"))
    base.update(kw)
    return base


def not_weights(model):
    weights = {id(p) for p in R.weight_parameters(model)}
    return [p for p in model.parameters() if id(p) not in weights]


def test_weights_are_exactly_the_linear_and_conv_weights():
    model = nn.Sequential(net(), L_linear.Conv2d(2, 3, 3))
    ws = R.weight_parameters(model)
    assert len(ws) == 3 and all(p.dim() >= 2 for p in ws)
    # biases (3), batch-norm gamma and beta, the PReLU slopes are not weights
    assert len(not_weights(model)) == 3 + 2 + 1


def test_l2_penalty_value_and_it_leaves_biases_and_norm_parameters_untouched():
    model = net()
    wd = 0.3
    p = R.penalty(model, cfg(weight_decay=wd))
    expected = 0.5 * wd * sum(float((m.weight.detach() ** 2).sum()) for m in model if isinstance(m, nn.Linear))
    assert float(p.detach()) == pytest.approx(expected)
    p.backward()
    for m in model:
        if isinstance(m, nn.Linear):
            torch.testing.assert_close(m.weight.grad, wd * m.weight.detach())
    assert all(q.grad is None for q in not_weights(model))
    # one SGD step on the penalty alone: weights shrink by (1 - lr wd), the rest does not move
    before = [q.detach().clone() for q in model.parameters()]
    lr = 0.5
    with torch.no_grad():
        for q in model.parameters():
            if q.grad is not None:
                q -= lr * q.grad
    for q, b in zip(model.parameters(), before):
        if any(q is m.weight for m in model if isinstance(m, nn.Linear)):
            torch.testing.assert_close(q.detach(), b * (1 - lr * wd))
        else:
            assert torch.equal(q.detach(), b)


def test_l1_penalty_and_its_sign_gradient():
    model = net()
    p = R.penalty(model, cfg(l1=0.01))
    expected = 0.01 * sum(float(m.weight.detach().abs().sum()) for m in model if isinstance(m, nn.Linear))
    assert float(p.detach()) == pytest.approx(expected)
    p.backward()
    for m in model:
        if isinstance(m, nn.Linear):
            torch.testing.assert_close(m.weight.grad, 0.01 * m.weight.detach().sign())
    assert all(q.grad is None for q in not_weights(model))


def test_elastic_net_is_the_sum_of_both():
    model = net()
    both = R.penalty(model, cfg(weight_decay=0.2, l1=0.05))
    with torch.no_grad():
        assert float(both) == pytest.approx(float(R.penalty(model, cfg(weight_decay=0.2))) +
                                            float(R.penalty(model, cfg(l1=0.05))))


@pytest.mark.parametrize("option", ["none", "maxnorm", "dropout", "maxnorm_dropout", "input_noise", "l2_decoupled"])
def test_options_without_a_loss_term_add_nothing(option):
    assert R.penalty(net(), OmegaConf.load(CONF / f"{option}.yaml")) is None


def test_param_groups_split_weights_from_the_rest_and_cover_every_parameter_once():
    model = net()
    groups = R.param_groups(model, cfg(weight_decay=0.1))
    assert [len(g["params"]) for g in groups] == [2, 5]
    assert "weight_decay" not in groups[0]  # coupled: the penalty does the work (or the optimizer's own decay)
    assert groups[1]["weight_decay"] == 0.0  # never any decay on biases, norm parameters, PReLU slopes
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_decoupled_weight_decay_goes_to_the_optimizer_on_weights_only():
    model = net()
    c = cfg(weight_decay=0.1, decoupled=True)
    assert R.penalty(model, c) is None
    groups = R.param_groups(model, c)
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    opt = torch.optim.AdamW(groups, lr=0.01, weight_decay=0.5)  # the groups' values win
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only the decay moves anything
    opt.step()
    weights = {id(p) for p in R.weight_parameters(model)}
    for p, b in zip(model.parameters(), before):
        expected = b * (1 - 0.01 * 0.1) if id(p) in weights else b
        torch.testing.assert_close(p.detach(), expected)


def test_the_optimizers_own_weight_decay_never_reaches_biases():
    model = net()
    opt = torch.optim.SGD(R.param_groups(model, cfg()), lr=0.1, weight_decay=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    weights = {id(p) for p in R.weight_parameters(model)}
    for p, b in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), b * (1 - 0.1 * 0.5) if id(p) in weights else b)


def test_max_norm_holds_after_a_large_step_and_leaves_small_units_alone():
    torch.manual_seed(0)
    model = nn.Sequential(L_linear.Linear(10, 8, init={"name": "normal", "std": 0.05}), ReLU(), L_linear.Linear(8, 2))
    c = 0.5
    small = model[0].weight.detach().norm(dim=1) < c
    assert small.all()  # every unit starts inside the ball
    # a huge step on some units only
    loss = model(torch.randn(32, 10)).pow(2).sum() * 100
    loss.backward()
    with torch.no_grad():
        model[0].weight[:4] -= model[0].weight.grad[:4]
        model[2].weight -= model[2].weight.grad
    untouched = model[0].weight.detach()[4:].clone()
    assert model[0].weight.detach().norm(dim=1)[:4].max() > c  # the step broke the constraint
    R.after_step_(model, cfg(max_norm=c))
    for m in (model[0], model[2]):
        assert float(m.weight.detach().norm(dim=1).max()) <= c * (1 + 1e-6)
    torch.testing.assert_close(model[0].weight.detach().norm(dim=1)[:4], torch.full((4,), c))  # projected onto the sphere
    assert torch.equal(model[0].weight.detach()[4:], untouched)  # units inside the ball are unchanged


def test_max_norm_on_conv_kernels_and_off_when_null():
    conv = L_linear.Conv2d(3, 4, 3, init={"name": "normal", "std": 1.0})
    R.after_step_(conv, cfg(max_norm=1.0))
    assert float(conv.weight.detach().reshape(4, -1).norm(dim=1).max()) <= 1 + 1e-6
    before = conv.weight.detach().clone()
    conv.weight.data *= 10
    R.after_step_(conv, cfg())
    assert torch.equal(conv.weight.detach(), before * 10)


# --- the config node -------------------------------------------------------------------------------


def test_every_option_has_every_key_and_is_registered():
    nodes = {p.stem: OmegaConf.load(p) for p in CONF.glob("*.yaml")}
    assert set(nodes) == set(R.REGULARIZERS)
    keys = {frozenset(n.keys()) for n in nodes.values()}
    assert len(keys) == 1, "options must share their keys so they compose by overriding"
    assert set(next(iter(keys))) == {"name", "weight_decay", "l1", "decoupled", "max_norm", "input_noise",
                                     "dropout_p", "input_dropout_p"}
    for name, node in nodes.items():
        assert node.name == name
        wanted = R.REGULARIZERS[name]
        assert all(node[k] not in (None, 0, 0.0) for k in wanted), name  # the option does what its name says


@pytest.mark.parametrize("overrides,key", [
    (["regularization=maxnorm", "regularization.max_norm=0"], "regularization.max_norm"),
    (["regularization=l1", "regularization.l1=-1e-4"], "regularization.l1"),
    (["regularization=dropout", "regularization.dropout_p=1.0"], "regularization.dropout_p"),
    (["regularization=dropout", "regularization.input_dropout_p=-0.2"], "regularization.input_dropout_p"),
    (["regularization=input_noise", "regularization.input_noise=-1"], "regularization.input_noise"),
    (["regularization=l2", "regularization.decoupled=maybe"], "regularization.decoupled"),
])
def test_bad_regularization_options_are_refused_with_the_key(compose, overrides, key):
    from nnbasics.engine.validate import validate

    with pytest.raises(ConfigError) as e:
        validate(compose(["data=spiral", "monitor=off"] + overrides))
    assert e.value.key == key


def test_a_regularizer_set_to_zero_is_warned_about(compose):
    notes = R.validate_config(compose(["data=spiral", "regularization=l2", "regularization.weight_decay=0"]))
    assert any("regularizes nothing" in n for n in notes)
    assert R.validate_config(compose(["data=spiral", "regularization=l2"])) == []
