"""Preprocessing: statistics come from the training split alone, whitening whitens, PCA is
PCA, and the fitted state survives a weights_only round trip."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch

from conftest import TOY
from nnbasics.data import preprocessing
from nnbasics.errors import ConfigError
from nnbasics.data.preprocessing import PREPROCESSORS, build_preprocessor
from nnbasics.engine.train import train
from nnbasics.engine.validate import validate

CONF = CONF_DIR / "preprocess"
OPTIONS = sorted(p.stem for p in CONF.glob("*.yaml"))


def correlated(n: int, d: int, seed: int, shift: float = 0.0, dtype=torch.float64) -> torch.Tensor:
    """n samples of a d-dimensional Gaussian with a random full covariance and mean ``shift``."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(123), dtype=torch.float64)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift + torch.arange(d)).to(dtype)


def covariance(z: torch.Tensor) -> torch.Tensor:
    zc = z - z.mean(0)
    return zc.T @ zc / z.shape[0]


# ---------------------------------------------------------------------------------------------
# Fitted on the training split only
# ---------------------------------------------------------------------------------------------


def test_statistics_come_from_the_training_split_alone():
    train_x, val_x = correlated(300, 4, 0), correlated(100, 4, 1, shift=5.0)
    pre = build_preprocessor({"name": "standardize", "mode": "feature", "eps": 0.0}).fit(train_x)
    torch.testing.assert_close(pre.mean, train_x.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pre.std, train_x.std(0, correction=0), rtol=1e-12, atol=1e-12)
    both = torch.cat([train_x, val_x])
    assert not torch.allclose(pre.mean, both.mean(0), atol=0.5)
    # validation is transformed with the training statistics, not its own
    torch.testing.assert_close(pre.transform(val_x), (val_x - train_x.mean(0)) / train_x.std(0, correction=0))
    assert pre.transform(val_x).mean(0).abs().min() > 0.5


@pytest.mark.parametrize("option", ["mean", "standardize", "pca", "whiten", "zca"])
def test_training_run_fits_on_the_training_split_and_applies_it_unchanged(option, compose, tmp_path, monkeypatch):
    """Spy on the preprocessor train() builds: fit sees exactly the training split, once; the
    validation and test splits are only transformed; preprocess.pt holds the training statistics."""
    from nnbasics.engine import setup as setup_mod
    from nnbasics.data.datasets import load_data

    calls = {"fit": [], "transform": []}

    def spy_builder(cfg):
        pre = build_preprocessor(cfg)
        fit, transform = pre.fit, pre.transform
        pre.fit = lambda x: (calls["fit"].append(x.clone()), fit(x))[1]
        pre.transform = lambda x: (calls["transform"].append(x.clone()), transform(x))[1]
        return pre

    monkeypatch.setattr(setup_mod, "build_preprocessor", spy_builder)  # the one set-up path builds it
    overrides = ["preprocess.k=2"] if option == "pca" else []
    cfg = compose(TOY + [f"preprocess={option}", "steps=2", "checkpoint=false"] + overrides)
    train(cfg, run_dir=tmp_path / "run")
    bundle = load_data(cfg.data)
    test_x = bundle.load_test().x
    assert len(calls["fit"]) == 1 and torch.equal(calls["fit"][0], bundle.train.x)
    seen = calls["transform"]
    assert any(torch.equal(x, bundle.val.x) for x in seen) and any(torch.equal(x, test_x) for x in seen)

    state = torch.load(tmp_path / "run" / "preprocess.pt", weights_only=True)
    torch.testing.assert_close(state["mean"].reshape(-1), bundle.train.x.mean(0), rtol=1e-5, atol=1e-6)
    everything = torch.cat([bundle.train.x, bundle.val.x, test_x])
    assert not torch.allclose(state["mean"].reshape(-1), everything.mean(0), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# What each transform does
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 1e-5, 1e-1])
def test_whitened_training_data_has_identity_covariance_up_to_eps(eps):
    x = correlated(400, 6, 0)
    pre = build_preprocessor({"name": "whiten", "k": None, "eps": eps}).fit(x)
    z = pre.transform(x)
    lam = pre.eigenvalues
    torch.testing.assert_close(covariance(z), torch.diag(lam / (lam + eps)), rtol=1e-9, atol=1e-9)
    # so the identity, within eps / lambda_min
    assert float((covariance(z) - torch.eye(6)).abs().max()) <= eps / float(lam.min()) + 1e-9
    if eps > 0.01:
        assert float((covariance(z) - torch.eye(6)).abs().max()) > 1e-3   # eps visibly damps


def test_zca_whitens_stays_in_input_space_and_keeps_image_shape():
    x = correlated(500, 12, 0).reshape(500, 3, 2, 2)
    pre = build_preprocessor({"name": "zca", "eps": 0.0}).fit(x)
    z = pre.transform(x)
    assert z.shape == x.shape
    torch.testing.assert_close(covariance(z.reshape(500, -1)), torch.eye(12, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(pre.matrix, pre.matrix.T)                 # W = U diag U^T is symmetric
    # ZCA is the whitening closest to the input: it correlates more with x than PCA whitening does
    flat = x.reshape(500, -1)
    xs = (flat - flat.mean(0)) / flat.std(0, correction=0)
    pca_w = build_preprocessor({"name": "whiten", "eps": 0.0}).fit(x).transform(x)
    assert (z.reshape(500, -1) * xs).sum() > (pca_w * xs).sum()


def test_pca_keeps_the_top_k_directions():
    x = correlated(400, 5, 0)
    pre = build_preprocessor({"name": "pca", "k": 3}).fit(x)
    z = pre.transform(x)
    assert z.shape == (400, 3)
    # the components are orthonormal and the variances along them are the top-3 eigenvalues,
    # which are the squared singular values of the centred data over N
    torch.testing.assert_close(pre.components.T @ pre.components, torch.eye(3, dtype=torch.float64))
    s = torch.linalg.svdvals(x - x.mean(0))
    torch.testing.assert_close(pre.eigenvalues, (s ** 2 / 400)[:3], rtol=1e-10, atol=0)
    torch.testing.assert_close(covariance(z), torch.diag(pre.eigenvalues), rtol=1e-9, atol=1e-9)
    # with k = D the projection is a rotation: reconstructing gives x back
    full = build_preprocessor({"name": "pca", "k": 5}).fit(x)
    torch.testing.assert_close(full.transform(x) @ full.components.T + full.mean, x)


@pytest.mark.parametrize("name", ["pca", "whiten", "zca"])
def test_fit_size_fits_on_a_fixed_random_subset(name):
    from nnbasics.data.preprocessing import fit_subset

    x = correlated(400, 5, 3)
    extra = {"k": 3} if name != "zca" else {}
    sub = build_preprocessor({"name": name, "fit_size": 100, **extra}).fit(x)
    rows = fit_subset(x, 100)
    assert rows.shape == (100, 5) and len({tuple(r.tolist()) for r in rows}) == 100  # without replacement
    assert torch.equal(rows, fit_subset(x, 100))  # the same subset every time
    on_rows = build_preprocessor({"name": name, **extra}).fit(rows)
    for key, value in on_rows.state_dict().items():
        torch.testing.assert_close(sub.state_dict()[key], value, rtol=0, atol=0)
    assert not torch.allclose(sub.mean, x.mean(0).to(sub.mean.dtype))  # not the whole split's mean
    whole = build_preprocessor({"name": name, "fit_size": 400, **extra}).fit(x)
    torch.testing.assert_close(whole.mean, build_preprocessor({"name": name, **extra}).fit(x).mean, rtol=0, atol=0)


@pytest.mark.slow
def test_pca_on_10000_mnist_images_keeps_the_variance_of_the_full_fit():
    """The claim in fit_subset's docstring, on the real training split."""
    from conftest import SHARED_DATA
    from nnbasics.data.datasets import idx_present, load_data

    if not idx_present("mnist", SHARED_DATA):
        pytest.skip(f"no MNIST under {SHARED_DATA}")
    x = load_data({"name": "mnist", "root": str(SHARED_DATA), "download": False, "val_size": 5000}).train.x
    full = build_preprocessor({"name": "pca", "k": 100}).fit(x)
    sub = build_preprocessor({"name": "pca", "k": 100, "fit_size": 10000}).fit(x)
    u, v = full.components.double(), sub.components.double()
    assert (u.T @ v).pow(2).sum() / 100 > 0.98  # subspace overlap (1 = the same subspace)
    xc = x.reshape(len(x), -1).double() - full.mean.double()
    kept_full, kept_sub = ((xc @ w).pow(2).sum() / xc.pow(2).sum() for w in (u, v))
    assert kept_full - 0.002 < kept_sub <= kept_full


def test_pca_flattens_images():
    x = correlated(200, 12, 0, dtype=torch.float32).reshape(200, 3, 2, 2)
    z = build_preprocessor({"name": "pca", "k": 4}).fit(x).transform(x)
    assert z.shape == (200, 4) and z.dtype == torch.float32


@pytest.mark.parametrize("mode,dims", [("feature", (0,)), ("channel", (0, 2, 3)), ("global", (0, 1, 2, 3))])
def test_image_mean_and_standardize_modes(mode, dims):
    x = correlated(100, 12, 0, dtype=torch.float32).reshape(100, 3, 2, 2) * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)
    mean = build_preprocessor({"name": "mean", "mode": mode}).fit(x)
    torch.testing.assert_close(mean.mean, x.mean(dims, keepdim=True).squeeze(0))
    std = build_preprocessor({"name": "standardize", "mode": mode, "eps": 0.0}).fit(x)
    z = std.transform(x)
    assert z.shape == x.shape and z.dtype == x.dtype
    torch.testing.assert_close(z.mean(dims), torch.zeros_like(z.mean(dims)), rtol=0, atol=1e-5)
    torch.testing.assert_close(z.std(dims, correction=0), torch.ones_like(z.mean(dims)), rtol=1e-5, atol=1e-5)
    n_stats = {"feature": 12, "channel": 3, "global": 1}[mode]
    assert mean.mean.numel() == n_stats


def test_standardize_eps_keeps_constant_features_finite():
    x = torch.cat([torch.randn(50, 2), torch.full((50, 1), 3.0)], 1)
    z = build_preprocessor({"name": "standardize", "mode": "feature", "eps": 1e-8}).fit(x).transform(x)
    assert torch.isfinite(z).all() and float(z[:, 2].abs().max()) == 0.0


@pytest.mark.parametrize("name", sorted(PREPROCESSORS))
def test_state_dict_round_trip_with_weights_only_load(name):
    x = correlated(200, 4, 0, dtype=torch.float32)
    cfg = {"name": name, "k": 2, "eps": 1e-3, "mode": "feature"}
    cfg = {k: v for k, v in cfg.items() if k == "name" or k in preprocessing.PREPROCESS_KEYS[name]}
    pre = build_preprocessor(cfg).fit(x)
    state = pre.state_dict()
    assert all(torch.is_tensor(v) or isinstance(v, (int, float)) for v in state.values()), state
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    again = build_preprocessor(cfg).load_state_dict(torch.load(buf, weights_only=True))
    val = correlated(50, 4, 9, shift=1.0, dtype=torch.float32)
    assert torch.equal(again.transform(val), pre.transform(val))


@pytest.mark.parametrize("name", [n for n in sorted(PREPROCESSORS) if n != "none"])
def test_transform_before_fit_is_an_error(name):
    cfg = {"name": name, "k": 1} if name == "pca" else {"name": name}
    with pytest.raises(RuntimeError, match="fit"):
        build_preprocessor(cfg).transform(torch.zeros(3, 2))


def test_pca_k_larger_than_the_input_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        build_preprocessor({"name": "pca", "k": 5}).fit(torch.randn(10, 3))
    assert err.value.key == "preprocess.k"


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def test_default_is_no_preprocessing(compose):
    assert compose().preprocess.name == "none"


@pytest.mark.parametrize("option", OPTIONS)
def test_every_preprocess_option_composes_validates_and_trains(option, compose, tmp_path):
    cfg = compose(TOY + [f"preprocess={option}", "steps=2", "checkpoint=false"])
    validate(cfg)
    m = train(cfg, run_dir=tmp_path / "run")
    assert m["status"] == "completed" and m["steps"] == 2
    state = torch.load(tmp_path / "run" / "preprocess.pt", weights_only=True)
    assert set(PREPROCESSORS[option].stats) <= set(state)


BAD = [
    (["preprocess=pca", "preprocess.k=0"], "preprocess.k"),
    (["preprocess=pca", "preprocess.k=null"], "preprocess.k"),
    (["preprocess=whiten", "preprocess.k=1.5"], "preprocess.k"),
    (["preprocess=whiten", "preprocess.eps=0"], "preprocess.eps"),
    (["preprocess=zca", "preprocess.eps=-1"], "preprocess.eps"),
    (["preprocess=mean", "preprocess.mode=pixel"], "preprocess.mode"),
    (["preprocess=zca", "+preprocess.k=3"], "preprocess.k"),
    (["preprocess=pca", "preprocess.k=2", "preprocess.fit_size=1"], "preprocess.fit_size"),
    (["preprocess=zca", "preprocess.fit_size=2.5"], "preprocess.fit_size"),
    (["preprocess=standardize", "+preprocess.fit_size=100"], "preprocess.fit_size"),
    (["preprocess=none", "preprocess.name=sphere"], "preprocess.name"),
]


@pytest.mark.parametrize("overrides,key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_preprocess_config_names_the_key(overrides, key, compose):
    with pytest.raises(ConfigError) as err:
        validate(compose(TOY + overrides))
    assert err.value.key == key


def test_flattening_preprocess_with_a_cnn_is_a_config_error(compose):
    cfg = compose(["data=mnist", "data.download=false", "model=cnn", "preprocess=pca", "preprocess.k=50"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == "preprocess.name" and "zca" in err.value.allowed
    validate(compose(["data=mnist", "data.download=false", "model=cnn", "preprocess=zca"]))  # keeps the shape
