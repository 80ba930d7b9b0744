"""Models: the default MLP is unchanged (784-512-512-10, ReLU, He normal), depth 0 is the linear
model, norms / dropout variants / maxout / input noise are placed where the docstring says,
the cs231n parameter counts (26 and 41), the summary and init audit, the CNN, config checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch
from torch import nn

from nnbasics.nn import activations as A
from nnbasics.nn import dropout as L_dropout, linear as L_linear, noise as L_noise, norms as L_norms
from nnbasics.errors import ConfigError
from nnbasics.nn.models import CNN, MLP, build_model, count_parameters, dropout_settings, format_init_audit, init_audit, summary

TOY = ["data=spiral", "monitor=off"]
CONF = CONF_DIR


def kinds(model):
    return [type(m).__name__ for m in model.net]


def test_default_model_is_the_784_512_512_10_relu_he_mlp(compose):
    cfg = compose(["data.download=false"])
    assert (cfg.model.name, cfg.model.width, cfg.model.depth, cfg.model.norm, cfg.model.dropout.p) == ("mlp", 512, 2, "none", 0.0)
    assert (cfg.activation.name, cfg.init.name, cfg.regularization.name) == ("relu", "he_normal", "none")
    torch.manual_seed(0)
    model = build_model(cfg, (1, 28, 28), 10)
    assert kinds(model) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [tuple(m.weight.shape) for m in model.net if isinstance(m, nn.Linear)] == [(512, 784), (512, 512), (10, 512)]
    assert count_parameters(model) == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    stds = [m.init_std for m in model.net if isinstance(m, nn.Linear)]
    assert stds == pytest.approx([math.sqrt(2 / 784), math.sqrt(2 / 512), math.sqrt(1 / 512)])
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in model.net if isinstance(m, nn.Linear))
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("sizes,count", [([3, 4, 2], 26), ([3, 4, 4, 1], 41)])
def test_cs231n_parameter_counts(sizes, count):
    model = MLP(sizes[0], sizes[-1], width=4, depth=len(sizes) - 2)
    assert count_parameters(model) == count
    text = summary(model, (sizes[0],))
    assert f"total parameters: {count}" in text
    # one row per layer with its weight shape and count: 4x3 + 4 = 16 for the first layer
    assert any("4x3 + 4" in line and line.rstrip().endswith("16") for line in text.splitlines())


def test_summary_lists_output_shapes_and_leaves_the_mode_alone():
    model = CNN((1, 28, 28), 10, width=4, depth=2, hidden=8).train()
    text = summary(model, (1, 28, 28))
    assert "4x28x28" in text and "8x7x7" in text and "total parameters" in text
    assert model.training
    assert f"{count_parameters(model):,}" in text


def test_depth_zero_and_model_linear_are_the_linear_model(compose):
    for ov in (["model.depth=0"], ["model=linear"]):
        model = build_model(compose(TOY + ov), (2,), 3)
        assert kinds(model) == ["Linear"] and count_parameters(model) == 2 * 3 + 3


@pytest.mark.parametrize("norm,cls", [("batch", L_norms.BatchNorm), ("layer", L_norms.LayerNorm), ("group", L_norms.GroupNorm)])
def test_norm_sits_between_linear_and_activation(compose, norm, cls):
    model = build_model(compose(TOY + [f"model.norm={norm}", "model.width=16", "model.groups=4"]), (2,), 3)
    assert kinds(model) == ["Linear", cls.__name__, "ReLU", "Linear", cls.__name__, "ReLU", "Linear"]
    assert count_parameters(model) == (2 * 16 + 16) + 32 + (16 * 16 + 16) + 32 + (16 * 3 + 3)
    assert model(torch.randn(5, 2)).shape == (5, 3)


@pytest.mark.parametrize("variant,cls", [("inverted", L_dropout.Dropout), ("vanilla", L_dropout.VanillaDropout)])
def test_dropout_follows_each_hidden_activation_and_the_input(compose, variant, cls):
    cfg = compose(TOY + ["model.width=16", f"model.dropout.variant={variant}", "model.dropout.p=0.5",
                         "model.dropout.input_p=0.2"])
    model = build_model(cfg, (2,), 3)
    assert kinds(model) == [cls.__name__, "Linear", "ReLU", cls.__name__, "Linear", "ReLU", cls.__name__, "Linear"]
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.2, 0.5, 0.5]
    x = torch.randn(64, 2)
    model.eval()
    assert torch.equal(model(x), model(x))  # deterministic at test time
    model.train()
    assert not torch.equal(model(x), model(x))


def test_dropconnect_replaces_the_layers_after_hidden_units(compose):
    cfg = compose(TOY + ["model.width=16", "model.dropout.variant=dropconnect", "model.dropout.p=0.5"])
    model = build_model(cfg, (2,), 3)
    assert kinds(model) == ["Linear", "ReLU", "DropConnect", "ReLU", "DropConnect"]
    assert all(m.p == 0.5 for m in model.net if isinstance(m, L_dropout.DropConnect))


def test_regularization_dropout_overrides_model_dropout_and_input_noise_is_a_layer(compose):
    cfg = compose(TOY + ["regularization=dropout", "model.width=16", "model.dropout.p=0.1"])
    assert dropout_settings(cfg) == {"variant": "inverted", "p": 0.5, "input_p": 0.2}
    model = build_model(cfg, (2,), 3)
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.2, 0.5, 0.5]
    cfg = compose(TOY + ["regularization=l2", "model.dropout.p=0.1"])
    assert dropout_settings(cfg)["p"] == 0.1  # null in the regularization node: model.dropout.p holds
    cfg = compose(TOY + ["regularization=input_noise", "regularization.input_noise=0.3"])
    model = build_model(cfg, (2,), 3)
    assert isinstance(model.net[0], L_noise.InputNoise) and model.net[0].std == 0.3
    x = torch.randn(4, 2)
    assert torch.equal(model.eval()(x), model.eval()(x))


def test_maxout_hidden_layers_have_width_times_pieces_linear_units(compose):
    cfg = compose(TOY + ["activation=maxout", "activation.pieces=3", "model.width=8"])
    model = build_model(cfg, (2,), 3)
    lin = [m for m in model.net if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in lin] == [(24, 2), (24, 8), (3, 8)]
    assert model(torch.randn(5, 2)).shape == (5, 3)


def test_prelu_per_unit_and_activation_options_reach_the_model(compose):
    model = build_model(compose(TOY + ["activation=prelu", "activation.per_unit=true", "model.width=8"]), (2,), 3)
    slopes = [m for m in model.net if isinstance(m, A.PReLU)]
    assert len(slopes) == 2 and all(m.weight.shape == (8,) for m in slopes)
    model = build_model(compose(TOY + ["activation=leaky_relu", "activation.negative_slope=0.2"]), (2,), 3)
    first = model.net[0]
    assert first.init_std == pytest.approx(math.sqrt(2 / 1.04) / math.sqrt(2))  # the slope is in the gain


def test_every_activation_is_found_by_the_monitor(compose):
    from omegaconf import OmegaConf

    from nnbasics.engine.monitor import find_layers

    cfg = compose(TOY + ["model.width=8", "model.norm=batch", "model.dropout.p=0.2"])
    for name in A.ACTIVATIONS:
        cfg.activation = OmegaConf.load(CONF / "activation" / f"{name}.yaml")
        model = build_model(cfg, (2,), 3)
        weights, acts = find_layers(model)
        assert [a.kind for a in acts] == [name, name] and len(weights) == 3
        assert all(math.isfinite(w.init_std) for w in weights)


def test_init_audit_reports_theoretical_and_measured_std(compose):
    torch.manual_seed(0)
    model = build_model(compose(TOY + ["init=xavier_normal", "model.width=400"]), (300,), 200)
    rows = init_audit(model)
    assert [r["layer"] for r in rows] == ["net.0", "net.2", "net.4"]
    assert all(r["initializer"] == "xavier_normal" for r in rows)
    assert rows[1]["theoretical_std"] == pytest.approx(math.sqrt(2 / 800))
    for r in rows:
        assert r["measured_std"] == pytest.approx(r["theoretical_std"], rel=0.03)
    text = format_init_audit(rows)
    assert "xavier_normal" in text and "400x300" in text


def test_init_audit_of_a_foreign_layer_is_nan_not_an_error():
    rows = init_audit(nn.Sequential(nn.Linear(3, 2)))
    assert rows[0]["initializer"] == "unknown" and math.isnan(rows[0]["theoretical_std"])


# --- the CNN -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_cnn_shapes_and_parameter_count(shape):
    c = shape[0]
    model = CNN(shape, 10, width=4, depth=2, kernel_size=3, hidden=16, init={"name": "he_normal"})
    assert model(torch.randn(2, *shape)).shape == (2, 10)
    side = shape[1] // 4
    expected = (c * 9 * 4 + 4) + (4 * 9 * 8 + 8) + (8 * side * side * 16 + 16) + (16 * 10 + 10)
    assert count_parameters(model) == expected
    convs = [m for m in model.modules() if isinstance(m, L_linear.Conv2d)]
    assert convs[0].init_std == pytest.approx(math.sqrt(2 / (c * 9)))


def test_cnn_options_norm_pool_maxout_dropout():
    model = CNN((1, 28, 28), 10, width=4, depth=3, pool="avg", hidden=0, norm="batch",
                activation={"name": "maxout", "pieces": 2}, dropout={"variant": "vanilla", "p": 0.3, "input_p": 0.1})
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    names = [type(m).__name__ for m in model.net]
    assert names[0] == "VanillaDropout" and names.count("AvgPool2d") == 3 and names.count("BatchNorm") == 3
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [8, 16, 32]  # width * 2^i * pieces
    with pytest.raises(ValueError, match="image"):
        CNN((2,), 3)


def test_cnn_learns_a_batch_of_random_images():
    torch.manual_seed(0)
    model = CNN((1, 12, 12), 3, width=4, depth=1, hidden=16, init={"name": "he_normal"})
    x, y = torch.randn(32, 1, 12, 12), torch.randint(0, 3, (32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else float(loss.detach())
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1 * first  # memorizes 32 images


def test_build_model_builds_the_cnn_from_its_config(compose):
    cfg = compose(["data.download=false", "model=cnn", "model.width=4", "model.hidden=8", "model.norm=group",
                   "model.groups=2"])
    model = build_model(cfg, (1, 28, 28), 10)
    assert isinstance(model, CNN) and model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# --- the pytorch/examples MNIST CNN (model=examples_cnn) and instance norm -------------------------


class ExamplesNet(nn.Module):
    """pytorch/examples mnist/main.py ``Net``, as the source writes it (the reference)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = torch.flatten(self.dropout1(nn.functional.max_pool2d(x, 2)), 1)
        return self.fc2(self.dropout2(torch.relu(self.fc1(x))))


def test_examples_cnn_is_the_pytorch_examples_net_with_1_199_882_parameters():
    from nnbasics.nn.models import ExamplesCNN

    torch.manual_seed(0)
    ours, ref = ExamplesCNN((1, 28, 28), 10), ExamplesNet()
    assert count_parameters(ours) == count_parameters(ref) == 1_199_882
    assert kinds(ours) == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Dropout", "Flatten", "Linear", "ReLU",
                           "Dropout", "Linear"]
    assert [m.p for m in ours.net if isinstance(m, L_dropout.Dropout)] == [0.25, 0.5]
    # the same weights give the same outputs (evaluation mode: dropout off)
    with torch.no_grad():
        for a, b in zip([m for m in ours.net if isinstance(m, (nn.Conv2d, nn.Linear))],
                        [ref.conv1, ref.conv2, ref.fc1, ref.fc2]):
            a.weight.copy_(b.weight), a.bias.copy_(b.bias)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x), rtol=1e-5, atol=1e-6)
    # PyTorch's default init (the source's): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std 1/sqrt(3 fan_in)
    fc1 = [m for m in ours.net if isinstance(m, nn.Linear)][0]
    assert fc1.initializer == "torch_default" and fc1.init_std == pytest.approx(1 / math.sqrt(3 * 9216))
    assert float(fc1.weight.detach().abs().max()) <= 1 / math.sqrt(9216)


@pytest.mark.parametrize("shape,fc_in", [((1, 28, 28), 9216), ((3, 32, 32), 12544), ((1, 7, 9), 64 * 1 * 2)])
def test_examples_cnn_computes_its_fc_input_for_other_image_sizes(shape, fc_in):
    from nnbasics.nn.models import ExamplesCNN

    model = ExamplesCNN(shape, 7)
    assert [m for m in model.net if isinstance(m, nn.Linear)][0].in_features == fc_in
    assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_examples_cnn_refuses_images_too_small_and_non_images():
    from nnbasics.nn.models import ExamplesCNN

    with pytest.raises(ValueError, match="6x6"):
        ExamplesCNN((1, 5, 28), 10)
    with pytest.raises(ValueError, match="image"):
        ExamplesCNN((784,), 10)


def test_build_model_builds_the_examples_cnn_with_its_configurable_parts(compose):
    from nnbasics.nn.models import ExamplesCNN

    cfg = compose(["data=mnist", "data.download=false", "model=examples_cnn", "init=torch_default"])
    assert (cfg.model.conv_dropout, cfg.model.dropout.p, cfg.model.norm) == (0.25, 0.5, "none")
    model = build_model(cfg, (1, 28, 28), 10)
    assert isinstance(model, ExamplesCNN) and count_parameters(model) == 1_199_882
    # activation, init, dropout rates and norm from the config
    cfg = compose(["data=mnist", "data.download=false", "model=examples_cnn", "activation=tanh", "init=he_normal",
                   "model.conv_dropout=0.1", "model.dropout.p=0.3", "model.norm=instance"])
    model = build_model(cfg, (1, 28, 28), 10)
    assert kinds(model).count("Tanh") == 3 and kinds(model).count("InstanceNorm") == 2
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.1, 0.3]
    conv = [m for m in model.net if isinstance(m, nn.Conv2d)][0]
    assert conv.initializer == "he_normal" and conv.init_std == pytest.approx(5 / 3 * math.sqrt(1 / 9))


def test_cnn_with_instance_norm_matches_torch_instance_norm(compose):
    cfg = compose(["data=mnist", "data.download=false", "model=cnn", "model.width=4", "model.hidden=8",
                   "model.norm=instance"])
    from nnbasics.engine.validate import validate

    validate(cfg)
    model = build_model(cfg, (1, 28, 28), 10)
    norms = [m for m in model.net if isinstance(m, L_norms.InstanceNorm)]
    assert [m.weight.numel() for m in norms] == [4, 8]
    x = torch.randn(3, 4, 6, 6)
    torch.testing.assert_close(norms[0](x), nn.InstanceNorm2d(4, affine=True)(x), rtol=1e-5, atol=1e-5)


def test_instance_norm_on_an_mlp_is_refused_with_a_reason():
    from nnbasics.nn.models import validate_config

    with pytest.raises(ConfigError, match="no spatial dimensions") as e:
        validate_config({"model": {"name": "mlp", "width": 8, "depth": 2, "norm": "instance", "groups": 8}})
    assert e.value.key == "model.norm"
    with pytest.raises(ValueError, match="spatial"):
        MLP(4, 2, 8, 2, norm="instance")


# --- config checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides,key", [
    (["model.norm=instance"], "model.norm"),
    (["model.norm=group", "model.width=10", "model.groups=4"], "model.groups"),
    (["model.dropout.variant=gaussian"], "model.dropout.variant"),
    (["model.dropout.p=1.0"], "model.dropout.p"),
    (["model=cnn"], "model.name"),  # a CNN on 2-D points
    (["data=mnist", "data.download=false", "model=cnn", "model.kernel_size=4"], "model.kernel_size"),
    (["data=mnist", "data.download=false", "model=cnn", "model.depth=5"], "model.depth"),
    (["data=mnist", "data.download=false", "model=cnn", "model.pool=sum"], "model.pool"),
    (["model=examples_cnn"], "model.name"),  # the examples CNN on 2-D points
    (["data=mnist", "data.download=false", "model=examples_cnn", "model.conv_dropout=1.0"], "model.conv_dropout"),
    (["data=mnist", "data.download=false", "model=examples_cnn", "+model.width=64"], "model.width"),
    (["data=mnist", "data.download=false", "model=examples_cnn", "model.norm=group", "model.groups=5"],
     "model.groups"),
    (["data=mnist", "data.download=false", "model=examples_cnn", "model.norm=cosine"], "model.norm"),
])
def test_bad_model_options_are_refused_with_the_key(compose, overrides, key):
    from nnbasics.engine.validate import validate

    with pytest.raises(ConfigError) as e:
        validate(compose(TOY + overrides))
    assert e.value.key == key


def test_group_norm_check_counts_maxout_units(compose):
    from nnbasics.nn.models import validate_config

    # 6 units x 2 pieces = 12 pre-activations: 4 groups divide them
    assert validate_config(compose(TOY + ["model.norm=group", "model.width=6", "model.groups=4", "activation=maxout"])) == []
