"""Per-layer MLP widths (``model.widths``) and per-layer dropout (``model.dropout.p`` as a list):
the published shapes count their parameters exactly (LeNet-300-100, Srivastava et al. 2014
Table 9), each hidden layer gets its own width and dropout rate (masks and scaling measured),
norms / maxout / dropconnect / every activation and init build with unequal widths, bad values
give one error naming the key, the overrides work through the command line, and a population of
such MLPs equals its solo runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import compose_cfg
from nnbasics.conf import CONF_DIR
from nnbasics.engine.population import Population, group_key, train_population, unsupported_reason
from nnbasics.engine.train import train
from nnbasics.engine.validate import validate
from nnbasics.errors import ConfigError
from nnbasics.nn import dropout as L_dropout
from nnbasics.nn.activations import pieces_of
from nnbasics.nn.models import MLP, build_model, count_parameters, dropout_settings, hidden_widths

MNIST = ["data=mnist", "data.download=false", "monitor=off"]
TOY = ["data=spiral", "epochs=2", "progress=false", "monitor=off"]  # the default depth (2)


def linear_shapes(model):
    return [tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)]


# --- shapes and parameter counts -------------------------------------------------------------------


def test_default_widths_is_null_and_the_model_is_width_times_depth():
    cfg = compose_cfg(MNIST)
    assert cfg.model.widths is None and hidden_widths(cfg.model) == [512, 512]
    torch.manual_seed(0)
    a = build_model(cfg, (1, 28, 28), 10)
    torch.manual_seed(0)
    b = MLP(784, 10, 512, 2, activation=cfg.activation, init=cfg.init)
    assert linear_shapes(a) == [(512, 784), (512, 512), (10, 512)]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # the same draws as before


def test_lenet_300_100_has_266_610_parameters():
    cfg = compose_cfg(MNIST + ["model.widths=[300,100]"])
    assert validate(cfg) == []
    model = build_model(cfg, (1, 28, 28), 10)
    assert linear_shapes(model) == [(300, 784), (100, 300), (10, 100)]
    assert count_parameters(model) == 266_610
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_srivastava_table_9_net_counts_exactly():
    cfg = compose_cfg(MNIST + ["model.widths=[1024,1024,2048]", "model.depth=3"])
    validate(cfg)
    model = build_model(cfg, (1, 28, 28), 10)
    assert linear_shapes(model) == [(1024, 784), (1024, 1024), (2048, 1024), (10, 2048)]
    expected = 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 2048 + 2048 + 2048 * 10 + 10
    assert count_parameters(model) == expected == 3_973_130


def test_srivastava_overlay_with_table_9_widths_composes_and_validates():
    cfg = compose_cfg(["experiment=srivastava_dropout_maxnorm", "data.download=false", "monitor=off",
                       "model.widths=[1024,1024,2048]"])
    validate(cfg)
    assert hidden_widths(cfg.model) == [1024, 1024, 2048]
    model = build_model(cfg, (1, 28, 28), 10)
    # regularization.dropout_p = 0.5 (one rate for every layer), input 0.2
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.2, 0.5, 0.5, 0.5]


def test_d2l_overlay_with_the_0x_dropout_pair():
    cfg = compose_cfg(["experiment=d2l_dropout", "data.download=false", "monitor=off", "model.dropout.p=[0.2,0.5]"])
    validate(cfg)
    model = build_model(cfg, (1, 28, 28), 10)
    assert linear_shapes(model) == [(256, 784), (256, 256), (10, 256)]
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.2, 0.5]


def test_maxout_widths_are_units_per_layer():
    cfg = compose_cfg(TOY + ["model.widths=[6,4]", "activation=maxout", "activation.pieces=3"])
    validate(cfg)
    model = build_model(cfg, (2,), 3)
    assert linear_shapes(model) == [(18, 2), (12, 6), (3, 4)]
    assert model(torch.randn(5, 2)).shape == (5, 3)


@pytest.mark.parametrize("norm", ["batch", "layer", "group"])
def test_norms_follow_each_layers_width(norm):
    cfg = compose_cfg(TOY + ["model.widths=[12,8]", f"model.norm={norm}", "model.groups=4"])
    validate(cfg)
    model = build_model(cfg, (2,), 3)
    norms = [m for m in model.net if type(m).__name__ not in ("Linear", "ReLU")]
    assert len(norms) == 2
    sizes = [sum(p.numel() for p in m.parameters()) for m in norms]
    assert sizes == [2 * 12, 2 * 8]  # gamma and beta per unit
    assert model(torch.randn(4, 2)).shape == (4, 3)


def test_group_norm_must_divide_every_width():
    with pytest.raises(ConfigError, match="must divide") as e:
        validate(compose_cfg(TOY + ["model.widths=[12,6]", "model.norm=group", "model.groups=4"]))
    assert e.value.key == "model.groups"


@pytest.mark.filterwarnings("ignore::UserWarning")  # selu without LeCun, constant inits: allowed
def test_every_activation_and_init_builds_with_unequal_widths():
    activations = sorted(p.stem for p in (CONF_DIR / "activation").glob("*.yaml"))
    inits = sorted(p.stem for p in (CONF_DIR / "init").glob("*.yaml"))
    assert len(activations) > 3 and len(inits) > 3
    for overrides in [[f"activation={a}"] for a in activations] + [[f"init={i}"] for i in inits]:
        cfg = compose_cfg(TOY + ["model.widths=[6,4,2]", "model.depth=3"] + overrides)
        validate(cfg)
        model = build_model(cfg, (2,), 3)
        pieces = pieces_of(cfg.activation)
        assert [s[0] for s in linear_shapes(model)] == [6 * pieces, 4 * pieces, 2 * pieces, 3], overrides
        assert torch.isfinite(model(torch.randn(5, 2))).all(), overrides


def test_dropconnect_drops_the_weights_after_each_layer_at_its_own_rate():
    cfg = compose_cfg(TOY + ["model.widths=[8,4]", "model.dropout.variant=dropconnect", "model.dropout.p=[0.3,0.6]"])
    validate(cfg)
    model = build_model(cfg, (2,), 3)
    dc = [m for m in model.net if isinstance(m, L_dropout.DropConnect)]
    assert [(m.in_features, m.out_features, m.p) for m in dc] == [(8, 4, 0.3), (4, 3, 0.6)]


# --- per-layer dropout -----------------------------------------------------------------------------


def test_per_layer_dropout_masks_and_scaling_are_as_configured():
    """p=[0, 0.5]: the first hidden layer's output is untouched in training mode, the second's has
    about half its units zeroed and the rest scaled by 2; in evaluation both pass unchanged."""
    cfg = compose_cfg(TOY + ["model.widths=[64,256]", "model.dropout.p=[0.0,0.5]"])
    validate(cfg)
    model = build_model(cfg, (2,), 3)
    drops = [m for m in model.net if isinstance(m, L_dropout.Dropout)]
    assert [m.p for m in drops] == [0.5]  # a p = 0 layer is left out
    acts = [i for i, m in enumerate(model.net) if type(m).__name__ == "ReLU"]
    assert model.net[acts[0] + 1].__class__.__name__ == "Linear"  # no dropout after hidden layer 1
    assert model.net[acts[1] + 1] is drops[0]  # dropout after hidden layer 2
    torch.manual_seed(0)
    x = torch.ones(512, 256)
    y = drops[0].train()(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert (y == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.equal(drops[0].eval()(x), x)

    # the whole model in training mode: what the second Linear reads is hidden layer 1's activation
    # itself; what the output Linear reads is hidden layer 2's, zeroed or doubled
    seen = {}
    lins = [m for m in model.net if isinstance(m, nn.Linear)]
    hooks = [m.register_forward_pre_hook(lambda m, inp, i=i: seen.__setitem__(i, inp[0])) for i, m in enumerate(lins)]
    acts_out = {}
    hooks += [model.net[i].register_forward_hook(lambda m, inp, out, i=i: acts_out.__setitem__(i, out)) for i in acts]
    model.train()
    model(torch.randn(64, 2))
    for h in hooks:
        h.remove()
    assert torch.equal(seen[1], acts_out[acts[0]])
    h2, read = acts_out[acts[1]], seen[2]
    kept = read != 0
    assert torch.equal(read[kept], 2 * h2[kept])
    active = h2 != 0
    assert (read[active] == 0).float().mean().item() == pytest.approx(0.5, abs=0.1)


def test_per_layer_dropout_with_vanilla_scales_at_test_time():
    cfg = compose_cfg(TOY + ["model.widths=[8,8]", "model.dropout.variant=vanilla", "model.dropout.p=[0.2,0.5]"])
    model = build_model(cfg, (2,), 3)
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.2, 0.5]
    assert all(isinstance(m, L_dropout.VanillaDropout) for m in model.net if isinstance(m, L_dropout.Dropout))


def test_regularization_dropout_p_overrides_the_per_layer_rates_with_one_rate():
    cfg = compose_cfg(TOY + ["model.widths=[8,8]", "model.dropout.p=[0.2,0.4]", "regularization=dropout",
                             "regularization.dropout_p=0.3"])
    validate(cfg)
    assert dropout_settings(cfg)["p"] == 0.3
    model = build_model(cfg, (2,), 3)
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.2, 0.3, 0.3]  # input 0.2, hidden 0.3
    cfg = compose_cfg(TOY + ["model.widths=[8,8]", "model.dropout.p=[0.2,0.4]", "regularization=l2"])
    assert dropout_settings(cfg)["p"] == [0.2, 0.4]  # null in the regularization node: model.dropout.p holds


def test_per_layer_dropout_with_width_times_depth():
    cfg = compose_cfg(TOY + ["model.width=8", "model.depth=3", "model.dropout.p=[0.1,0,0.3]"])
    validate(cfg)
    model = build_model(cfg, (2,), 3)
    assert [m.p for m in model.net if isinstance(m, L_dropout.Dropout)] == [0.1, 0.3]


# --- config checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides,key,words", [
    (["model.widths=[300,-1]"], "model.widths", "every width must be a positive integer"),
    (["model.widths=[300,0]"], "model.widths", "every width must be a positive integer"),
    (["model.widths=[300,1.5]"], "model.widths", "every width must be a positive integer"),
    (["model.widths=[true,3]"], "model.widths", "every width must be a positive integer"),
    (["model.widths=300"], "model.widths", "list of hidden-layer widths"),
    (["model.widths=[1024,1024,2048]"], "model.widths", "model.depth=3"),  # default depth 2: mismatch refused
    (["model.dropout.p=[0.5]"], "model.dropout.p", "1 rates for 2 hidden layers"),
    (["model.widths=[8,8,8]", "model.depth=3", "model.dropout.p=[0.5,0.5]"], "model.dropout.p", "for 3 hidden"),
    (["model.dropout.p=[0.2,1.0]"], "model.dropout.p", r"in \[0, 1\)"),
    (["model.dropout.p=[0.2,-0.1]"], "model.dropout.p", r"in \[0, 1\)"),
    (["model.dropout.p=[0.2,abc]"], "model.dropout.p", r"in \[0, 1\)"),
    (["model=linear", "model.dropout.p=[0.5]"], "model.dropout.p", "for model=mlp"),
    (["model=linear", "+model.widths=[3]"], "model.widths", "unknown key"),
])
def test_bad_widths_and_rates_are_refused_in_one_line(overrides, key, words):
    with pytest.raises(ConfigError, match=words) as e:
        validate(compose_cfg(TOY + overrides))
    assert e.value.key == key
    assert "\n" not in str(e.value)


def test_size_bound_and_group_norm_rule_read_the_per_layer_widths():
    """engine/validate.py's rules that count an MLP's units use model.widths when it is set."""
    with pytest.raises(ConfigError, match="parameters") as e:
        validate(compose_cfg(TOY + ["model.widths=[100000000,100000000]"]))
    assert e.value.key == "model.widths"
    # 3 groups divide 30 and 60 (model.width=512 is unused: no refusal from it)
    assert validate(compose_cfg(TOY + ["model.widths=[30,60]", "model.norm=group", "model.groups=3"])) == []


def test_cnn_takes_one_dropout_rate():
    with pytest.raises(ConfigError, match="for model=mlp") as e:
        validate(compose_cfg(MNIST + ["model=cnn", "model.width=4", "model.hidden=8", "model.dropout.p=[0.5]"]))
    assert e.value.key == "model.dropout.p"


def test_mlp_module_refuses_widths_that_disagree_with_depth():
    assert [m.out_features for m in MLP(4, 2, widths=[3, 5]).modules() if isinstance(m, nn.Linear)] == [3, 5, 2]
    with pytest.raises(ValueError, match="depth=3"):
        MLP(4, 2, 8, 3, widths=[3, 5])
    with pytest.raises(ValueError, match="2 values for 3 hidden layers"):
        MLP(4, 2, 8, 3, dropout={"p": [0.1, 0.2]})


# --- the command line ------------------------------------------------------------------------------


def test_list_overrides_work_through_nnbasics_train_and_multirun(tmp_path):
    """``'model.widths=[8,4]'`` and ``'model.dropout.p=[0,0.5]'`` reach the model from the command
    line, in a single run and in a -m sweep (where a list value is quoted, or it would be swept)."""
    common = ["data=spiral", "epochs=1", "progress=false", "monitor=off", "checkpoint=false", "data.n_samples=600"]
    run = [sys.executable, "-m", "nnbasics.cli.train", *common, "model.widths=[8,4]", "model.dropout.p=[0,0.5]",
           f"hydra.run.dir={tmp_path}/run"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "widths:\n  - 8\n  - 4" in config or "widths: [8, 4]" in config, config
    sweep = [sys.executable, "-m", "nnbasics.cli.train", "-m", *common, "seed=0,1", "'model.widths=[8,4]'",
             f"hydra.sweep.dir={tmp_path}/sweep"]
    out = subprocess.run(" ".join(sweep), shell=True, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    configs = sorted((tmp_path / "sweep").glob("*/config.yaml"))
    assert len(configs) == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert all("- 8\n  - 4" in c.read_text() or "[8, 4]" in c.read_text() for c in configs)
    bad = subprocess.run([sys.executable, "-m", "nnbasics.cli.train", *common, "model.widths=[300,-1]",
                          f"hydra.run.dir={tmp_path}/bad"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "model.widths=[300, -1]" in bad.stderr + bad.stdout and "positive integer" in bad.stderr + bad.stdout


# --- population = solo -----------------------------------------------------------------------------


POP = TOY + ["checkpoint=false", "epochs=2", "data.n_samples=600", "model.widths=[16,8,12]", "model.depth=3"]


def test_a_population_with_widths_and_per_layer_dropout_equals_its_solo_runs():
    variants = [["seed=0", "model.dropout.p=[0.0,0.5,0.2]"],
                ["seed=1", "model.dropout.p=[0.3,0.0,0.1]", "optimizer.lr=0.01"],
                ["seed=0", "model.dropout.p=0.2", "model.dropout.input_p=0.1"],
                ["seed=2"]]
    cfgs = [compose_cfg(POP + v) for v in variants]
    assert all(unsupported_reason(c) is None for c in cfgs)
    assert len({group_key(c) for c in cfgs}) == 1
    members = train_population(cfgs)
    tol = dict(rel=1e-4, abs=1e-5)
    for cfg, member in zip(cfgs, members):
        solo = train(cfg)
        for k in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"):
            assert member[k] == pytest.approx(solo[k], **tol), k
        assert [h["train/loss"] for h in member["history"]] == pytest.approx([h["train/loss"] for h in solo["history"]], **tol)
    assert len({round(m["train/loss"], 6) for m in members}) == len(members)


def test_populations_of_different_widths_are_not_mixed():
    a, b = (compose_cfg(POP[:-2] + [f"model.widths={w}", "model.depth=2"]) for w in ("[16,8]", "[8,16]"))
    assert group_key(a) != group_key(b)
    with pytest.raises(Exception, match="per-member|shapes"):
        Population([a, b])
