"""Layers: Linear/Conv2d own their initialization; inverted and vanilla dropout (identity in
evaluation, drop rate, exact scaling, equal expectations); DropConnect drops weights; input
noise; the normalization layers against their torch twins."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nnbasics.nn import dropout as L_dropout, linear as L_linear, noise as L_noise, norms as L_norms


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


# --- Linear / Conv2d own their initialization ---------------------------------------------------


def test_linear_is_an_nn_linear_initialized_by_the_injected_initializer():
    torch.manual_seed(0)
    lin = L_linear.Linear(400, 300, init={"name": "he_normal", "bias": 0.01}, nonlinearity="relu")
    assert isinstance(lin, nn.Linear)
    assert lin.init_std == pytest.approx(math.sqrt(2 / 400)) and lin.initializer == "he_normal"
    assert float(lin.weight.detach().std()) == pytest.approx(lin.init_std, rel=0.02)
    assert torch.equal(lin.bias.detach(), torch.full((300,), 0.01))
    # reset_parameters re-applies the same initializer (a fresh draw)
    before = lin.weight.detach().clone()
    lin.reset_parameters()
    assert not torch.equal(before, lin.weight) and float(lin.weight.detach().std()) == pytest.approx(lin.init_std, rel=0.02)


def test_linear_init_gain_follows_the_nonlinearity_it_feeds():
    lin = L_linear.Linear(100, 50, init={"name": "he_normal"}, nonlinearity="tanh")
    assert lin.init_std == pytest.approx(5 / 3 / 10)
    out = L_linear.Linear(100, 50, init={"name": "he_normal"}, nonlinearity="linear")
    assert out.init_std == pytest.approx(1 / 10)


def test_linear_default_is_torch_in_lockstep_and_a_callable_is_accepted():
    torch.manual_seed(7)
    ours = L_linear.Linear(30, 20)
    torch.manual_seed(7)
    ref = nn.Linear(30, 20)
    assert torch.equal(ours.weight, ref.weight) and torch.equal(ours.bias, ref.bias)
    assert ours.initializer == "torch_default" and ours.init_std == pytest.approx(1 / math.sqrt(90))

    def halves(w):
        w.fill_(0.5)

    custom = L_linear.Linear(3, 2, init=halves)
    assert torch.equal(custom.weight.detach(), torch.full((2, 3), 0.5)) and torch.equal(custom.bias.detach(), torch.zeros(2))
    assert math.isnan(custom.init_std) and custom.initializer == "halves"


def test_conv2d_owns_its_initialization_with_receptive_field_fans():
    torch.manual_seed(0)
    conv = L_linear.Conv2d(16, 64, 3, padding=1, init={"name": "he_normal"})
    assert isinstance(conv, nn.Conv2d)
    assert conv.init_std == pytest.approx(math.sqrt(2 / (16 * 9)))
    assert float(conv.weight.detach().std()) == pytest.approx(conv.init_std, rel=0.03)
    assert conv(torch.randn(2, 16, 8, 8)).shape == (2, 64, 8, 8)


# --- dropout -----------------------------------------------------------------------------------

X = torch.rand(400, 250, generator=_g(1)) + 0.5  # strictly positive: a zero output means dropped


@pytest.mark.parametrize("cls", [L_dropout.Dropout, L_dropout.VanillaDropout])
def test_dropout_drop_rate_is_p(cls):
    p = 0.3
    torch.manual_seed(0)
    y = cls(p).train()(X)
    rate = float((y == 0).double().mean())
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / X.numel())  # 5 standard errors of a Bernoulli mean


def test_inverted_dropout_scales_kept_units_exactly_and_is_identity_in_eval():
    p = 0.4
    torch.manual_seed(0)
    d = L_dropout.Dropout(p)
    y = d.train()(X)
    kept = y != 0
    assert torch.equal(y[kept], X[kept] / (1 - p))
    assert d.eval()(X) is X  # evaluation: the identity, untouched


def test_vanilla_dropout_does_not_scale_in_training_and_scales_by_keep_rate_in_eval():
    p = 0.4
    torch.manual_seed(0)
    d = L_dropout.VanillaDropout(p)
    y = d.train()(X)
    kept = y != 0
    assert torch.equal(y[kept], X[kept])
    assert torch.equal(d.eval()(X), X * (1 - p))


@pytest.mark.parametrize("cls", [L_dropout.Dropout, L_dropout.VanillaDropout])
def test_p_zero_is_the_identity_in_training(cls):
    assert cls(0.0).train()(X) is X


def test_vanilla_and_inverted_dropout_have_the_expected_activation_of_their_inference():
    """For both, E[training output] equals the evaluation output: the network sees the same
    activations on average in training and at test time."""
    p = 0.5
    x = torch.full((200_000,), 2.0)
    torch.manual_seed(0)
    for cls in (L_dropout.Dropout, L_dropout.VanillaDropout):
        d = cls(p)
        train_mean = float(d.train()(x).mean())
        eval_out = float(d.eval()(x)[0])
        se = 2.0 / (1 - p if cls is L_dropout.Dropout else 1) * math.sqrt(p * (1 - p) / len(x))
        assert abs(train_mean - eval_out) < 5 * se
    # and the two differ only by the constant factor 1 - p
    assert float(L_dropout.VanillaDropout(p).eval()(x)[0]) == (1 - p) * float(L_dropout.Dropout(p).eval()(x)[0])


def test_dropout_masks_are_independent_per_unit_and_per_call():
    torch.manual_seed(0)
    d = L_dropout.Dropout(0.5).train()
    a, b = d(X) == 0, d(X) == 0
    assert not torch.equal(a, b)
    agree = float((a == b).double().mean())
    assert abs(agree - 0.5) < 0.01  # independent masks agree half the time


def test_dropout_functional_with_a_generator_is_reproducible_and_rejects_bad_p():
    a = L_dropout.dropout(X, 0.3, True, generator=_g(5))
    b = L_dropout.dropout(X, 0.3, True, generator=_g(5))
    assert torch.equal(a, b)
    assert torch.equal(L_dropout.dropout(X, 1.0, True), torch.zeros_like(X))
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError):
            L_dropout.Dropout(p)


def test_dropout_gradient_flows_only_through_kept_units_with_the_same_scale():
    p = 0.25
    x = X.clone().requires_grad_(True)
    torch.manual_seed(0)
    y = L_dropout.Dropout(p).train()(x)
    y.sum().backward()
    kept = (y != 0)
    assert torch.equal(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - p)))
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))


# --- DropConnect ---------------------------------------------------------------------------------


def test_dropconnect_drops_weights_not_activations():
    p = 0.3
    torch.manual_seed(0)
    layer = L_dropout.DropConnect(200, 300, p=p, init={"name": "he_normal"}, bias=False).train()
    eye = torch.eye(200)  # input e_j reads column j of the (masked) weights
    y = layer(eye)  # one mask per call: y = W_masked^T restricted to the identity
    w_eff = y.t()  # 300 x 200, the effective weight matrix of this mini-batch
    kept = w_eff != 0
    rate = 1 - float(kept.double().mean())
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / w_eff.numel())
    torch.testing.assert_close(w_eff[kept], (layer.weight / (1 - p))[kept])
    # an input unit is never dropped as a whole: every input still reaches some output
    assert bool(kept.any(dim=0).all())
    # evaluation: the plain linear layer
    x = torch.randn(5, 200)
    torch.testing.assert_close(layer.eval()(x), x @ layer.weight.t())


def test_dropconnect_is_unbiased_on_average():
    torch.manual_seed(0)
    layer = L_dropout.DropConnect(20, 10, p=0.5, init={"name": "he_normal"}).train()
    x = torch.randn(4, 20)
    mean = torch.stack([layer(x) for _ in range(4000)]).mean(0)
    torch.testing.assert_close(mean, layer.eval()(x), atol=0.1, rtol=0)


def test_maxout_linear_layer_has_k_times_the_units_before_the_max():
    layer = L_linear.MaxoutLinear(6, 4, pieces=3, init={"name": "he_normal"})
    assert layer.linear.weight.shape == (12, 6)
    x = torch.randn(5, 6)
    y = layer(x)
    assert y.shape == (5, 4)
    torch.testing.assert_close(y, layer.linear(x).reshape(5, 4, 3).amax(dim=2))


# --- input noise -----------------------------------------------------------------------------------


def test_input_noise_adds_gaussian_noise_in_training_only():
    torch.manual_seed(0)
    layer = L_noise.InputNoise(0.3)
    y = layer.train()(X)
    d = y - X
    assert abs(float(d.mean())) < 5 * 0.3 / math.sqrt(X.numel())
    assert float(d.std()) == pytest.approx(0.3, rel=0.02)
    assert layer.eval()(X) is X and L_noise.InputNoise(0.0).train()(X) is X


# --- normalization against torch ----------------------------------------------------------------


def _compare(ours: nn.Module, ref: nn.Module, x: torch.Tensor, steps: int = 3):
    """Forward, input and parameter gradients (and running statistics) agree, in training for
    a few batches, then in evaluation."""
    for i in range(steps):
        xi = (x + i).requires_grad_(True)
        xr = (x + i).detach().requires_grad_(True)
        y1, y2 = ours.train()(xi), ref.train()(xr)
        torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
        g = torch.randn(y1.shape, generator=_g(i))
        (y1 * g).sum().backward()
        (y2 * g).sum().backward()
        torch.testing.assert_close(xi.grad, xr.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-5)
    for name in ("running_mean", "running_var"):
        if hasattr(ref, name) and getattr(ref, name) is not None:
            torch.testing.assert_close(getattr(ours, name), getattr(ref, name))
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x), rtol=1e-5, atol=1e-5)


def test_batch_norm_matches_torch_for_vectors_and_images():
    torch.manual_seed(0)
    _compare(L_norms.BatchNorm(6), nn.BatchNorm1d(6), torch.randn(16, 6) * 3 + 1)
    _compare(L_norms.BatchNorm(4), nn.BatchNorm2d(4), torch.randn(8, 4, 5, 5) * 2 - 1)


def test_norm_eps_is_the_eps_of_every_norm_layer_and_matches_torch():
    """model.norm_eps (DLFS's BatchNormalization uses 1e-6) against torch's layers built with the
    same eps, on inputs whose variance is near eps, where the eps decides the output scale."""
    torch.manual_seed(0)
    x = torch.randn(32, 6) * 1e-3  # variance 1e-6: eps 1e-5 shrinks x_hat to ~0.3, eps 1e-6 to ~0.7
    # one step: _compare's later steps add 1 to x, and float32 cannot hold a 1e-3 spread around 1 exactly
    _compare(L_norms.make_norm("batch", 6, eps=1e-6), nn.BatchNorm1d(6, eps=1e-6), x, steps=1)
    _compare(L_norms.make_norm("layer", 6, eps=1e-6), nn.LayerNorm(6, eps=1e-6), x, steps=1)
    _compare(L_norms.make_norm("group", 6, groups=3, eps=1e-6), nn.GroupNorm(3, 6, eps=1e-6), x, steps=1)
    scale = {eps: float(L_norms.make_norm("batch", 6, eps=eps).train()(x).std()) for eps in (1e-5, 1e-6)}
    assert scale[1e-5] < 0.45 < 0.6 < scale[1e-6]
    from nnbasics.nn.models import build_model
    cfg = {"model": {"name": "mlp", "width": 4, "depth": 2, "norm": "batch", "norm_eps": 1e-6},
           "activation": {"name": "relu"}, "init": {"name": "he_normal"}, "regularization": {"name": "none"}}
    eps = [m.eps for m in build_model(cfg, (5,), 3).modules() if isinstance(m, L_norms.BatchNorm)]
    assert eps == [1e-6, 1e-6]


def test_batch_norm_backward_is_the_closed_form_gradient():
    """The hand-written backward against autograd's numerical check (float64), for vectors and
    images; a second derivative raises instead of being silently wrong."""
    from nnbasics.nn.norms import _BatchNormTraining

    g = _g(7)
    for shape in [(12, 5), (6, 3, 4, 4)]:
        x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1).requires_grad_(True)
        w = (torch.rand(shape[1], generator=g, dtype=torch.float64) + 0.5).requires_grad_(True)
        b = torch.randn(shape[1], generator=g, dtype=torch.float64).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x, w, b: _BatchNormTraining.apply(x, w, b, 1e-5)[0], (x, w, b))
    y = _BatchNormTraining.apply(x, w, b, 1e-5)[0]
    (gx,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward|differentiable"):
        gx.sum().backward()


def test_layer_norm_matches_torch():
    torch.manual_seed(0)
    ours, ref = L_norms.LayerNorm(10), nn.LayerNorm(10)
    _compare(ours, ref, torch.randn(16, 10) * 4 + 2)


def test_group_norm_matches_torch_for_vectors_and_images():
    torch.manual_seed(0)
    _compare(L_norms.GroupNorm(4, 12), nn.GroupNorm(4, 12), torch.randn(8, 12) * 3)
    _compare(L_norms.GroupNorm(2, 6), nn.GroupNorm(2, 6), torch.randn(4, 6, 3, 3) + 5)


def test_instance_norm_matches_torch_for_images_and_sequences():
    """Against nn.InstanceNorm2d / 1d(affine=True) (no running statistics: the same in evaluation),
    with gamma and beta moved off 1 and 0 so the affine part is compared too."""
    torch.manual_seed(0)
    for ours, ref, x in ((L_norms.InstanceNorm(4), nn.InstanceNorm2d(4, affine=True), torch.randn(6, 4, 5, 7) * 3 + 2),
                         (L_norms.InstanceNorm(3), nn.InstanceNorm1d(3, affine=True), torch.randn(5, 3, 9) - 4)):
        with torch.no_grad():
            w, b = torch.rand_like(ours.weight) + 0.5, torch.randn_like(ours.bias)
            ours.weight.copy_(w), ref.weight.copy_(w), ours.bias.copy_(b), ref.bias.copy_(b)
        _compare(ours, ref, x)
    # each channel of each sample has mean beta and std gamma (up to eps)
    y = L_norms.InstanceNorm(4)(torch.randn(3, 4, 6, 6) * 5 + 1)
    torch.testing.assert_close(y.mean((2, 3)), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var((2, 3), unbiased=False), torch.ones(3, 4), atol=1e-3, rtol=0)


def test_instance_norm_refuses_input_without_spatial_dimensions():
    with pytest.raises(ValueError, match="spatial"):
        L_norms.InstanceNorm(8)(torch.randn(4, 8))


def test_batch_norm_normalizes_each_unit_and_survives_a_batch_of_one():
    bn = L_norms.BatchNorm(3).train()
    y = bn(torch.randn(64, 3) * 10 + 5)
    torch.testing.assert_close(y.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    one = bn(torch.randn(1, 3))
    assert torch.isfinite(one).all() and torch.isfinite(bn.running_var).all()


def test_make_norm_and_make_dropout():
    assert L_norms.make_norm("none", 8) is None and L_dropout.make_dropout("inverted", 0.0) is None
    assert isinstance(L_norms.make_norm("batch", 8), L_norms.BatchNorm)
    assert isinstance(L_norms.make_norm("layer", 8), L_norms.LayerNorm)
    assert L_norms.make_norm("group", 8, groups=4).groups == 4
    assert isinstance(L_dropout.make_dropout("vanilla", 0.2), L_dropout.VanillaDropout)
    assert isinstance(L_norms.make_norm("instance", 8), L_norms.InstanceNorm)
    assert L_norms.NORMS == ("none", "batch", "layer", "group", "instance")
    with pytest.raises(ValueError):
        L_norms.make_norm("weight", 8)
    with pytest.raises(ValueError):
        L_norms.GroupNorm(3, 8)


@pytest.mark.parametrize("groups", [6, 3, 2, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_stacked_linear_equals_each_members_linear(groups, bias):
    """The stacked layer of K members against F.linear of each member on its group's input,
    values and gradients."""
    from nnbasics.nn.linear import stacked_linear

    torch.manual_seed(0)
    K, B, n_in, n_out = 6, 5, 7, 4
    W = torch.randn(K, n_out, n_in, requires_grad=True)
    b = torch.randn(K, n_out, requires_grad=True) if bias else None
    h = torch.randn(groups, B, n_in, requires_grad=True)
    y = stacked_linear(h, W, b)
    assert y.shape == (K, B, n_out)
    ref = torch.stack([torch.nn.functional.linear(h[k // (K // groups)], W[k], None if b is None else b[k])
                       for k in range(K)])
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [h, W] + ([b] if bias else []), g)
    ref_grads = torch.autograd.grad(ref, [h, W] + ([b] if bias else []), g)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r)
