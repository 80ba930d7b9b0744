"""Initializers: statistics against the formula, lockstep and distribution equality with the
torch.nn.init twin, exact constants, sparse k-per-unit, orthogonality, the gain table, and
init_layer_ driven by every conf/init option."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch
from omegaconf import OmegaConf
from torch import nn

from nnbasics.nn import init
from nnbasics.errors import ConfigError

CONF = CONF_DIR / "init"
OUT, IN = 200, 500  # a non-square weight: fan_in != fan_out, so a swapped fan shows
N = OUT * IN  # 100k samples: the sample std is within ~0.3% of the true one (1 sigma)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) - F_b(x)|."""
    a, b = a.reshape(-1).double().sort().values, b.reshape(-1).double().sort().values
    grid = torch.cat([a, b])
    fa = torch.searchsorted(a, grid, right=True) / len(a)
    fb = torch.searchsorted(b, grid, right=True) / len(b)
    return float((fa - fb).abs().max())


# critical value of the two-sample KS test at alpha = 1e-3 for n = m = N: 1.95 * sqrt(2 / N)
KS_CRIT = 1.95 * math.sqrt(2 / N)

# name -> (kwargs of ours, theoretical mean, theoretical std, uniform bound or None, torch twin)
G = init.calculate_gain("leaky_relu", 0.2)
SPECS = {
    "uniform": (dict(a=-0.3, b=0.5), 0.1, 0.8 / math.sqrt(12), (-0.3, 0.5),
                lambda t, g: nn.init.uniform_(t, -0.3, 0.5, generator=g)),
    "normal": (dict(mean=0.2, std=0.7), 0.2, 0.7, None, lambda t, g: nn.init.normal_(t, 0.2, 0.7, generator=g)),
    "small_random": ({}, 0.0, 0.01, None, lambda t, g: nn.init.normal_(t, 0.0, 0.01, generator=g)),
    "calibrated": ({}, 0.0, 1 / math.sqrt(IN), None,
                   lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="linear", generator=g)),
    "lecun_uniform": ({}, 0.0, 1 / math.sqrt(IN), (-math.sqrt(3 / IN), math.sqrt(3 / IN)),
                      lambda t, g: nn.init.kaiming_uniform_(t, nonlinearity="linear", generator=g)),
    "lecun_normal": ({}, 0.0, 1 / math.sqrt(IN), None,
                     lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="linear", generator=g)),
    "xavier_uniform": (dict(gain=5 / 3), 0.0, 5 / 3 * math.sqrt(2 / (IN + OUT)),
                       (-5 / 3 * math.sqrt(6 / (IN + OUT)), 5 / 3 * math.sqrt(6 / (IN + OUT))),
                       lambda t, g: nn.init.xavier_uniform_(t, gain=5 / 3, generator=g)),
    "xavier_normal": (dict(gain=5 / 3), 0.0, 5 / 3 * math.sqrt(2 / (IN + OUT)), None,
                      lambda t, g: nn.init.xavier_normal_(t, gain=5 / 3, generator=g)),
    # leaky slope 0.2 enters the gain; fan_out mode uses the other dimension
    "he_uniform": (dict(gain=G, mode="fan_out"), 0.0, G / math.sqrt(OUT),
                   (-G * math.sqrt(3 / OUT), G * math.sqrt(3 / OUT)),
                   lambda t, g: nn.init.kaiming_uniform_(t, a=0.2, mode="fan_out", nonlinearity="leaky_relu", generator=g)),
    "he_normal": (dict(gain=G, mode="fan_in"), 0.0, G / math.sqrt(IN), None,
                  lambda t, g: nn.init.kaiming_normal_(t, a=0.2, mode="fan_in", nonlinearity="leaky_relu", generator=g)),
    "orthogonal": (dict(gain=1.5), 0.0, 1.5 / math.sqrt(IN), None,
                   lambda t, g: nn.init.orthogonal_(t, gain=1.5, generator=g)),
    "torch_default": ({}, 0.0, 1 / math.sqrt(3 * IN), (-1 / math.sqrt(IN), 1 / math.sqrt(IN)),
                      lambda t, g: nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=g)),
}


def test_every_registered_initializer_is_tested():
    assert set(init.INITIALIZERS) == set(SPECS) | {"zeros", "ones", "constant", "sparse"}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_statistics_match_the_formula(name):
    kwargs, mean, std, bounds, _ = SPECS[name]
    w = init.INITIALIZERS[name](torch.empty(OUT, IN), **kwargs, generator=_gen())
    assert abs(float(w.mean()) - mean) < 5 * std / math.sqrt(N)  # 5 standard errors
    assert float(w.std()) == pytest.approx(std, rel=0.02)
    if bounds is not None:
        lo, hi = bounds
        assert float(w.min()) >= lo and float(w.max()) <= hi
        # the bounds are the bounds, not just some bound: samples come within 1% of each end
        assert float(w.min()) < lo + 0.01 * (hi - lo) and float(w.max()) > hi - 0.01 * (hi - lo)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_lockstep_with_the_torch_twin(name):
    """Same seed, same numbers: ours draws exactly what torch.nn.init draws."""
    kwargs, _, _, _, twin = SPECS[name]
    ours = init.INITIALIZERS[name](torch.empty(OUT, IN), **kwargs, generator=_gen(3))
    ref = twin(torch.empty(OUT, IN), _gen(3))
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_same_distribution_as_the_torch_twin(name):
    """Different seeds: a two-sample KS test cannot tell ours from the twin (alpha = 1e-3)."""
    kwargs, _, _, _, twin = SPECS[name]
    ours = init.INITIALIZERS[name](torch.empty(OUT, IN), **kwargs, generator=_gen(1))
    ref = twin(torch.empty(OUT, IN), _gen(2))
    assert ks_statistic(ours, ref) < KS_CRIT


def test_ks_statistic_detects_a_wrong_scale():
    """The distribution test has teeth: He (gain sqrt 2) vs LeCun (gain 1) is rejected."""
    a = init.he_normal_(torch.empty(OUT, IN), generator=_gen(1))
    b = init.lecun_normal_(torch.empty(OUT, IN), generator=_gen(2))
    assert ks_statistic(a, b) > 5 * KS_CRIT


@pytest.mark.parametrize("name,value,twin", [
    ("zeros", 0.0, nn.init.zeros_), ("ones", 1.0, nn.init.ones_),
    ("constant", 0.37, lambda t: nn.init.constant_(t, 0.37)),
])
def test_constants_are_exact(name, value, twin):
    kwargs = {"value": value} if name == "constant" else {}
    w = init.INITIALIZERS[name](torch.randn(7, 5), **kwargs)
    assert torch.equal(w, torch.full((7, 5), value))
    assert torch.equal(w, twin(torch.randn(7, 5)))


@pytest.mark.parametrize("k", [1, 15, 500, 800])
def test_sparse_has_exactly_k_nonzeros_per_unit(k):
    w = init.sparse_(torch.randn(OUT, IN), k=k, generator=_gen())
    kk = min(k, IN)
    assert torch.equal((w != 0).sum(dim=1), torch.full((OUT,), kk))
    nonzero = w[w != 0]
    # default std gain / sqrt(k) with gain 1; the entries' std over the whole row follows
    assert float(nonzero.std()) == pytest.approx(1 / math.sqrt(kk), rel=0.05 if OUT * kk > 2000 else 0.15)
    expected = init.theoretical_std(w, {"name": "sparse", "k": k, "gain": 1.0})
    assert float(w.pow(2).mean().sqrt()) == pytest.approx(expected, rel=0.05 if OUT * kk > 2000 else 0.15)


def test_sparse_positions_are_spread_over_the_inputs():
    w = init.sparse_(torch.empty(2000, 50), k=5, generator=_gen())
    hits = (w != 0).sum(dim=0).double()  # each input is picked by 2000 * 5 / 50 = 200 units on average
    assert float(hits.min()) > 140 and float(hits.max()) < 260


def test_sparse_on_a_non_contiguous_view_writes_through():
    base = torch.zeros(30, 20)
    init.sparse_(base.t(), k=3, generator=_gen())  # 20 units of 30 inputs
    assert torch.equal((base.t() != 0).sum(dim=1), torch.full((20,), 3))


@pytest.mark.parametrize("shape", [(50, 120), (120, 50), (16, 3, 3, 3)])
def test_orthogonal_has_every_singular_value_equal_to_the_gain(shape):
    w = init.orthogonal_(torch.empty(shape), gain=2.0, generator=_gen())
    flat = w.reshape(shape[0], -1).double()
    s = torch.linalg.svdvals(flat)
    torch.testing.assert_close(s, torch.full_like(s, 2.0), rtol=1e-5, atol=1e-5)


def test_fans_of_linear_and_conv_weights():
    assert init.fan_in_and_fan_out(torch.empty(3, 7)) == (7, 3)
    assert init.fan_in_and_fan_out(torch.empty(16, 3, 5, 5)) == (75, 400)
    for shape in [(3, 7), (16, 3, 5, 5)]:
        assert init.fan_in_and_fan_out(torch.empty(shape)) == nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError):
        init.fan_in_and_fan_out(torch.empty(5))


@pytest.mark.parametrize("nonlinearity,param", [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                                                ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)])
def test_gain_table_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(nn.init.calculate_gain(nonlinearity, param))


def test_gain_of_prelu_is_that_of_its_slope_and_unknown_names_are_listed():
    assert init.calculate_gain("prelu", 0.25) == pytest.approx(math.sqrt(2 / (1 + 0.25**2)))
    with pytest.raises(ValueError, match="tanh"):
        init.calculate_gain("swish")


# --- init_layer_: every conf/init option --------------------------------------------------------

CONF_OPTIONS = sorted(p.stem for p in CONF.glob("*.yaml"))


def test_every_initializer_has_a_config_file_and_back():
    assert set(CONF_OPTIONS) == set(init.INITIALIZERS)


@pytest.mark.parametrize("option", CONF_OPTIONS)
def test_init_layer_follows_its_config_and_returns_the_measured_std(option):
    cfg = OmegaConf.load(CONF / f"{option}.yaml")
    assert cfg.name == option
    weight, bias = torch.empty(300, 400), torch.empty(300)
    torch.manual_seed(0)
    std = init.init_layer_(weight, bias, cfg, "relu")
    assert math.isfinite(std)
    measured = float(weight.std())
    if std == 0:
        assert torch.unique(weight).numel() == 1  # a constant: every weight the same
    else:
        assert measured == pytest.approx(std, rel=0.03)
    if cfg.bias == "torch":
        bound = 1 / math.sqrt(400)
        assert float(bias.abs().max()) <= bound and float(bias.std()) > 0.4 * bound
    else:
        assert torch.equal(bias, torch.full((300,), float(cfg.bias)))


def test_init_layer_gain_auto_follows_the_activation_and_a_number_fixes_it():
    w = torch.empty(200, 400)
    assert init.init_layer_(w, None, {"name": "he_normal"}, "relu") == pytest.approx(math.sqrt(2 / 400))
    assert init.init_layer_(w, None, {"name": "he_normal"}, "leaky_relu", 0.2) == pytest.approx(
        math.sqrt(2 / (1 + 0.04)) / 20)
    assert init.init_layer_(w, None, {"name": "he_normal", "gain": 1.0}, "relu") == pytest.approx(1 / 20)
    assert init.init_layer_(w, None, {"name": "he_normal", "mode": "fan_out"}, "tanh") == pytest.approx(5 / 3 / math.sqrt(200))
    # Glorot as published ignores the activation unless asked
    assert init.init_layer_(w, None, {"name": "xavier_uniform"}, "relu") == pytest.approx(math.sqrt(2 / 600))
    assert init.init_layer_(w, None, {"name": "xavier_uniform", "gain": "auto"}, "relu") == pytest.approx(
        math.sqrt(2) * math.sqrt(2 / 600))
    assert init.init_layer_(w, torch.empty(200), {"name": "zeros", "bias": 0.01}, "relu") == 0.0


def test_init_is_reproducible_with_a_seed():
    a = init.init_layer_(torch.empty(10, 10), None, {"name": "sparse", "k": 3}, "relu", generator=_gen(5))
    b = init.init_layer_(torch.empty(10, 10), None, {"name": "sparse", "k": 3}, "relu", generator=_gen(5))
    assert a == b


def test_unknown_initializer_names_the_valid_ones():
    with pytest.raises(ConfigError, match="he_normal"):
        init.get_initializer("magic")


@pytest.mark.parametrize("overrides,key", [
    (["init=he_normal", "init.gain=-1"], "init.gain"),
    (["init=uniform", "init.a=1", "init.b=0"], "init.b"),
    (["init=sparse", "init.k=0"], "init.k"),
    (["init=sparse", "init.k=2.5"], "init.k"),
    (["init=normal", "init.std=-0.1"], "init.std"),
    (["init=he_normal", "init.bias=big"], "init.bias"),
    (["init=he_normal", "init.mode=fan_avg"], "init.mode"),
])
def test_bad_init_options_are_refused_with_the_key(compose, overrides, key):
    from nnbasics.engine.validate import validate

    with pytest.raises(ConfigError) as e:
        validate(compose(["data=spiral", "monitor=off"] + overrides))
    assert e.value.key == key


def test_symmetric_inits_are_warned_about(compose):
    assert any("symmetry" in n for n in init.validate_config(compose(["data=spiral", "init=zeros"])))
