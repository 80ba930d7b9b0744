"""Losses: forward and gradient against torch (MultiMarginLoss x C is the Weston-Watkins sum,
p=2 the squared hinge) or the formula, numerical stability, the task table, accuracy counting,
and the output layer of each task."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from nnbasics.nn import losses
from nnbasics.errors import ConfigError

CONF = CONF_DIR / "loss"
N, C, K = 16, 5, 3


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _scores(shape, seed=0, scale=2.0):
    return (torch.randn(shape, generator=_g(seed), dtype=torch.float64) * scale).requires_grad_(True)


LABELS = torch.randint(0, C, (N,), generator=_g(1))
BINARY = torch.randint(0, 2, (N,), generator=_g(2)).double()
MULTI = torch.randint(0, 2, (N, K), generator=_g(3)).double()
REAL = torch.randn(N, 2, generator=_g(4), dtype=torch.float64)


def _mlhinge_loop(z, t, margin=1.0):
    """Per-attribute hinge written as loops, straight from the formula."""
    total = 0.0
    for i in range(z.shape[0]):
        row = 0.0
        for k in range(z.shape[1]):
            s = 1.0 if t[i, k] > 0 else -1.0
            row = row + torch.clamp(margin - s * z[i, k], min=0)
        total = total + row / z.shape[1]
    return total / z.shape[0]


def _ww_loop(z, y, margin=1.0, power=1):
    """Weston-Watkins written as loops: sum over wrong classes j of max(0, z_j - z_y + margin)^p."""
    total = 0.0
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            if j != int(y[i]):
                total = total + torch.clamp(z[i, j] - z[i, y[i]] + margin, min=0) ** power
    return total / z.shape[0]


# name -> (our loss, reference, output shape, target)
CASES = {
    "cross_entropy": (losses.cross_entropy, F.cross_entropy, (N, C), LABELS),
    "hinge": (losses.multiclass_hinge, lambda z, y: nn.MultiMarginLoss()(z, y) * C, (N, C), LABELS),
    "hinge_loop": (losses.multiclass_hinge, _ww_loop, (N, C), LABELS),
    "squared_hinge": (losses.squared_hinge, lambda z, y: nn.MultiMarginLoss(p=2)(z, y) * C, (N, C), LABELS),
    "squared_hinge_loop": (losses.squared_hinge, lambda z, y: _ww_loop(z, y, power=2), (N, C), LABELS),
    "hinge_margin": (lambda z, y: losses.multiclass_hinge(z, y, margin=0.5),
                     lambda z, y: nn.MultiMarginLoss(margin=0.5)(z, y) * C, (N, C), LABELS),
    "bce": (losses.binary_cross_entropy,
            lambda z, t: F.binary_cross_entropy_with_logits(z.reshape(-1), t), (N, 1), BINARY),
    "multilabel_logistic": (losses.multilabel_logistic, nn.MultiLabelSoftMarginLoss(), (N, K), MULTI),
    "multilabel_logistic_bce": (losses.multilabel_logistic, F.binary_cross_entropy_with_logits, (N, K), MULTI),
    "multilabel_hinge": (losses.multilabel_hinge, _mlhinge_loop, (N, K), MULTI),
    "mse": (losses.mse, F.mse_loss, (N, 2), REAL),
    "mse_one_hot": (losses.mse, lambda z, y: F.mse_loss(z, F.one_hot(y, C).double()), (N, C), LABELS),
    "mse_column": (losses.mse, lambda z, t: F.mse_loss(z.reshape(-1), t), (N, 1), REAL[:, 0].contiguous()),
    "mae": (losses.mae, F.l1_loss, (N, 2), REAL),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_gradient_match_the_reference(case):
    ours, ref, shape, target = CASES[case]
    z1, z2 = _scores(shape), _scores(shape)
    l1, l2 = ours(z1, target), ref(z2, target)
    assert l1.dim() == 0
    torch.testing.assert_close(l1, l2.to(l1.dtype), rtol=1e-10, atol=1e-12)
    l1.backward()
    l2.backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-10, atol=1e-12)


def test_hinge_is_zero_once_every_margin_is_met_and_counts_each_violation():
    z = torch.tensor([[3.0, 1.0, 1.5], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    # row 0: margins 1 - 3 + 1 < 0, 1.5 - 3 + 1 < 0 -> 0; row 1: two wrong classes at margin 1 each -> 2
    assert float(losses.multiclass_hinge(z, y)) == pytest.approx(1.0)
    assert float(losses.squared_hinge(z, y)) == pytest.approx(1.0)
    assert float(losses.multiclass_hinge(z[:1], y[:1])) == 0.0


def test_losses_are_stable_for_huge_scores():
    z = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0])
    ce = losses.cross_entropy(z, y)
    torch.testing.assert_close(ce, F.cross_entropy(z.detach(), y))
    ce.backward()
    assert torch.isfinite(z.grad).all()
    logit = torch.tensor([[500.0], [-500.0], [500.0]], requires_grad=True)
    t = torch.tensor([1.0, 0.0, 0.0])
    bce = losses.binary_cross_entropy(logit, t)
    assert float(bce.detach()) == pytest.approx(500 / 3)
    bce.backward()
    assert torch.isfinite(logit.grad).all()


def test_cross_entropy_at_initialization_is_log_of_the_class_count():
    z = torch.zeros(4, 10)
    assert float(losses.cross_entropy(z, torch.arange(4))) == pytest.approx(2.302585, abs=1e-6)


def test_output_layers_follow_the_task():
    z = _scores((N, C)).detach()
    p = losses.probabilities(z, "multiclass")
    torch.testing.assert_close(p, torch.softmax(z, dim=1))
    torch.testing.assert_close(p.sum(1), torch.ones(N, dtype=z.dtype))
    torch.testing.assert_close(losses.probabilities(z, "multilabel"), torch.sigmoid(z))
    torch.testing.assert_close(losses.probabilities(z[:, :1], "binary"), torch.sigmoid(z[:, :1]))
    assert losses.probabilities(z, "regression") is z
    torch.testing.assert_close(losses.log_softmax(z), torch.log_softmax(z, dim=1))


def test_correct_counts_per_sample_accuracy_without_leaving_the_device():
    z = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    out = losses.correct(z, torch.tensor([0, 1, 1]), "multiclass")
    assert out.dim() == 0 and out.dtype == torch.float32 and float(out) == 2.0
    assert float(losses.correct(torch.tensor([[1.0], [-1.0], [2.0]]), torch.tensor([1.0, 1.0, 1.0]), "binary")) == 2.0
    ml = losses.correct(torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, -1.0]]),
                        torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), "multilabel")
    assert float(ml) == pytest.approx(2 / 3 + 1)
    assert torch.isnan(losses.correct(torch.zeros(2, 1), torch.zeros(2, 1), "regression"))


def test_task_table_and_every_loss_has_a_config_file():
    options = sorted(p.stem for p in CONF.glob("*.yaml"))
    assert set(options) == set(losses.LOSSES) == set(losses.LOSS_TASKS)
    assert losses.LOSS_TASKS["bce"] == {"binary"}
    assert losses.LOSS_TASKS["mse"] == {"regression", "multiclass"}
    assert all(losses.LOSS_TASKS[n] == {"multiclass"} for n in ("cross_entropy", "hinge", "squared_hinge"))
    assert all(losses.LOSS_TASKS[n] == {"multilabel"} for n in ("multilabel_hinge", "multilabel_logistic"))
    for option in options:
        fn = losses.build_loss(OmegaConf.load(CONF / f"{option}.yaml"))
        task = sorted(losses.LOSS_TASKS[option])[0]
        z = torch.randn(4, {"multiclass": 3, "binary": 1, "multilabel": 3, "regression": 1}[task])
        y = {"multiclass": torch.tensor([0, 1, 2, 0]), "binary": torch.tensor([0.0, 1.0, 1.0, 0.0]),
             "multilabel": torch.ones(4, 3), "regression": torch.randn(4, 1)}[task]
        assert fn(z, y).dim() == 0


def test_build_loss_passes_the_margin_and_refuses_unknown_names():
    fn = losses.build_loss({"name": "hinge", "margin": 2.0})
    z, y = torch.zeros(1, 3), torch.tensor([0])
    assert float(fn(z, y)) == 4.0  # two wrong classes, each at margin 2
    with pytest.raises(ConfigError, match="cross_entropy"):
        losses.build_loss({"name": "focal"})
    assert losses.build_loss(F.l1_loss) is F.l1_loss


@pytest.mark.parametrize("overrides,key", [
    (["loss=hinge", "loss.margin=0"], "loss.margin"),
    (["loss=bce"], "loss.name"),  # bce on a 3-class target
    (["loss=multilabel_hinge"], "loss.name"),
    (["data=curve", "loss=hinge"], "loss.name"),
])
def test_bad_loss_options_are_refused_with_the_key(compose, overrides, key):
    from nnbasics.engine.validate import validate

    with pytest.raises(ConfigError) as e:
        validate(compose(["data=spiral", "monitor=off"] + overrides))
    assert e.value.key == key
