"""Preprocessing fitted on the training split only, applied unchanged to validation and test.

    pre = build_preprocessor(cfg.preprocess).fit(train.x)     # statistics of the training split
    train_x, val_x = pre.transform(train.x), pre.transform(val.x)
    torch.save(pre.state_dict(), "preprocess.pt")             # tensors and numbers only

Inputs are N x D (features) or N x C x H x W (images). With ``mu``, ``sigma^2`` the training
mean and (population) variance, and ``X`` the N x D centred training matrix (images flattened):

    none          x
    mean          x - mu                        mode: feature | channel | global
    standardize   (x - mu) / sqrt(sigma^2 + eps) mode: feature | channel | global
    pca           (x - mu) U_k                  N x k: the top-k eigenvectors of C = X^T X / N
    whiten        (x - mu) U_k diag(1 / sqrt(lambda_k + eps))     N x k (k = D when null)
    zca           (x - mu) U diag(1 / sqrt(lambda + eps)) U^T     same shape as x

``mode``: ``feature`` keeps one statistic per input feature (per pixel and channel),
``channel`` one per channel of an image (over samples and pixels; for N x D input a feature
is its own channel), ``global`` one value for all. PCA and whitening flatten images; ZCA
rotates back into input space, so its output keeps the image shape. Whitened training data has
covariance diag(lambda / (lambda + eps)): the identity up to eps. ``fit_size`` (pca, whiten,
zca) fits the mean and covariance on that many training examples drawn at random (null: all).
Source: cs231n "Neural Networks Part 2: data preprocessing"; Bell and Sejnowski (1997) for ZCA.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from nnbasics.config import check_keys, check_name, check_number, select
from nnbasics.errors import ConfigError

MODES = ("feature", "channel", "global")


class Preprocessor:
    """Base: ``fit(x_train) -> self``, ``transform(x)``, ``state_dict()``, ``load_state_dict()``."""

    name = "none"
    stats: tuple[str, ...] = ()       # names of the fitted tensors
    numbers: tuple[str, ...] = ()     # names of the hyperparameters saved with them

    def fit(self, x: Tensor) -> "Preprocessor":
        return self

    def transform(self, x: Tensor) -> Tensor:
        return x

    def fit_transform(self, x: Tensor) -> Tensor:
        return self.fit(x).transform(x)

    @property
    def fitted(self) -> bool:
        return all(getattr(self, s, None) is not None for s in self.stats)

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"preprocess={self.name}: call fit(x_train) before transform(x)")

    def state_dict(self) -> dict:
        """The fitted statistics (tensors) and hyperparameters (numbers): loadable with
        ``torch.load(path, weights_only=True)``."""
        self._check_fitted()
        out: dict = {s: getattr(self, s) for s in self.stats}
        out.update({n: getattr(self, n) for n in self.numbers if getattr(self, n) is not None})
        return out

    def load_state_dict(self, state: Mapping) -> "Preprocessor":
        missing = [s for s in self.stats if s not in state]
        if missing:
            raise KeyError(f"preprocess={self.name}: state_dict lacks {', '.join(missing)}")
        for s in self.stats:
            setattr(self, s, state[s])
        for n in self.numbers:
            if n in state:
                setattr(self, n, state[n])
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in ("mode", *self.numbers) if hasattr(self, n))
        return f"{type(self).__name__}({args})"


class Identity(Preprocessor):
    """No preprocessing: x."""

    name = "none"


def _reduce_dims(x: Tensor, mode: str) -> tuple[int, ...]:
    if mode == "feature":
        return (0,)
    if mode == "channel":
        return (0, *range(2, x.dim()))
    if mode == "global":
        return tuple(range(x.dim()))
    raise ConfigError("preprocess.mode", mode, f"choose one of: {', '.join(MODES)}")


class MeanSubtraction(Preprocessor):
    """x - mu, mu the training mean per feature, per channel or over everything (``mode``)."""

    name = "mean"
    stats = ("mean",)

    def __init__(self, mode: str = "feature"):
        _reduce_dims(torch.zeros(1, 1), mode)
        self.mode = mode
        self.mean: Tensor | None = None

    def fit(self, x: Tensor) -> "MeanSubtraction":
        dims = _reduce_dims(x, self.mode)
        self.mean = x.mean(dims, keepdim=True, dtype=torch.float64).squeeze(0).to(x.dtype)
        return self

    def transform(self, x: Tensor) -> Tensor:
        self._check_fitted()
        return x - self.mean


class Standardize(MeanSubtraction):
    """(x - mu) / sqrt(sigma^2 + eps), sigma^2 the population variance of the training split,
    per feature, per channel or over everything (``mode``)."""

    name = "standardize"
    stats = ("mean", "std")
    numbers = ("eps",)

    def __init__(self, mode: str = "feature", eps: float = 1e-8):
        super().__init__(mode)
        self.eps = float(eps)
        self.std: Tensor | None = None

    def fit(self, x: Tensor) -> "Standardize":
        dims = _reduce_dims(x, self.mode)
        x64 = x.double()
        self.mean = x64.mean(dims, keepdim=True).squeeze(0).to(x.dtype)
        var = x64.var(dims, keepdim=True, correction=0).squeeze(0)
        self.std = (var + self.eps).sqrt().to(x.dtype)
        return self

    def transform(self, x: Tensor) -> Tensor:
        self._check_fitted()
        return (x - self.mean) / self.std


def fit_subset(x: Tensor, fit_size: int | None) -> Tensor:
    """The rows statistics are fitted on: all of ``x``, or ``fit_size`` of them drawn at random
    without replacement (a fixed seed, so every run of a sweep gets the same preprocessing). On
    MNIST the top 100 axes from 10,000 images keep 91.4 % of the training variance against 91.5 %
    from all 55,000 (subspace overlap 0.987), for a fifth of the 2 x D^2 x N flops of X^T X
    (0.3 s instead of 0.85 s on a 2-core CPU; tests/test_preprocessing.py)."""
    if fit_size is None or fit_size >= len(x):
        return x
    rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:fit_size]
    return x.index_select(0, rows.to(x.device))


def eigen(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean (D), eigenvalues (D, descending) and eigenvectors (D x D, columns) of the
    covariance X^T X / N of the centred N x D matrix ``x``. The mean and the eigen-decomposition
    are float64; the product X^T X runs in the input's precision when that is float32 (images):
    BLAS's blocked sums keep its relative error near 1e-6, and it is 2 x D^2 x N flops, which in
    float64 took most of a second per 10,000 MNIST images on a 2-core CPU. Each eigenvector's
    largest-magnitude entry is made positive, so the result does not depend on the solver."""
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(0, dtype=torch.float64)
    work = torch.float64 if flat.dtype == torch.float64 else torch.float32
    xc = flat.to(work) - mean.to(work)
    cov = (xc.T @ xc).double() / flat.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    signs = torch.sign(evecs.gather(0, evecs.abs().argmax(0, keepdim=True)))
    return mean, evals, evecs * signs


def _fit_size(fit_size) -> int | None:
    if fit_size is not None and (isinstance(fit_size, bool) or int(fit_size) != fit_size or fit_size < 2):
        raise ConfigError("preprocess.fit_size", fit_size, "must be an integer >= 2, or null (the whole training split)")
    return None if fit_size is None else int(fit_size)


class PCA(Preprocessor):
    """(x - mu) U_k: the coordinates of the centred (flattened) input along the top-k principal
    axes, the eigenvectors of the training covariance with the largest eigenvalues. Output N x k."""

    name = "pca"
    stats = ("mean", "components", "eigenvalues")
    numbers = ("k",)
    whiten = False

    def __init__(self, k: int | None = None, eps: float = 0.0, fit_size: int | None = None):
        if k is not None and (isinstance(k, bool) or int(k) != k or k < 1):
            raise ConfigError("preprocess.k", k, "must be an integer >= 1")
        self.k = None if k is None else int(k)
        self.eps = float(eps)
        self.fit_size = _fit_size(fit_size)
        self.mean = self.components = self.eigenvalues = None

    def fit(self, x: Tensor) -> "PCA":
        d = x[0].numel()
        if self.k is not None and self.k > d:
            raise ConfigError("preprocess.k", self.k, f"must be at most the {d} input features")
        mean, evals, evecs = eigen(fit_subset(x, self.fit_size))
        k = self.k or d
        self.mean, self.eigenvalues, self.components = (mean.to(x.dtype), evals[:k].to(x.dtype),
                                                        evecs[:, :k].contiguous().to(x.dtype))
        return self

    def transform(self, x: Tensor) -> Tensor:
        self._check_fitted()
        z = (x.reshape(x.shape[0], -1).to(self.mean.dtype) - self.mean) @ self.components
        if self.whiten:
            z = z / (self.eigenvalues + self.eps).sqrt()
        return z.to(x.dtype)

    def explained_variance_ratio(self, total: float | None = None) -> Tensor:
        """The fraction of the training variance each kept component explains (with k = D, sums to 1)."""
        self._check_fitted()
        return self.eigenvalues / (total if total is not None else self.eigenvalues.sum())


class Whiten(PCA):
    """PCA whitening: (x - mu) U_k / sqrt(lambda_k + eps). Output N x k (k = D when null),
    with covariance diag(lambda / (lambda + eps)) on the training split: the identity up to eps."""

    name = "whiten"
    numbers = ("k", "eps")
    whiten = True

    def __init__(self, k: int | None = None, eps: float = 1e-5, fit_size: int | None = None):
        super().__init__(k, eps, fit_size)


class ZCA(Preprocessor):
    """ZCA whitening: (x - mu) W, W = U diag(1 / sqrt(lambda + eps)) U^T, reshaped back to the
    input's shape. Whitens like PCA whitening but stays closest to the input (Bell and Sejnowski
    1997), so whitened images still look like images and a CNN can take them."""

    name = "zca"
    stats = ("mean", "matrix")
    numbers = ("eps",)

    def __init__(self, eps: float = 1e-5, fit_size: int | None = None):
        self.eps = float(eps)
        self.fit_size = _fit_size(fit_size)
        self.mean = self.matrix = None

    def fit(self, x: Tensor) -> "ZCA":
        mean, evals, evecs = eigen(fit_subset(x, self.fit_size))
        self.mean = mean.to(x.dtype)
        self.matrix = ((evecs / (evals + self.eps).sqrt()) @ evecs.T).to(x.dtype)
        return self

    def transform(self, x: Tensor) -> Tensor:
        self._check_fitted()
        z = (x.reshape(x.shape[0], -1).to(self.mean.dtype) - self.mean) @ self.matrix
        return z.reshape(x.shape).to(x.dtype)


PREPROCESSORS: dict[str, type[Preprocessor]] = {
    "none": Identity, "mean": MeanSubtraction, "standardize": Standardize,
    "pca": PCA, "whiten": Whiten, "zca": ZCA,
}

# Each option's own config keys (besides name).
PREPROCESS_KEYS: dict[str, tuple[str, ...]] = {
    "none": (), "mean": ("mode",), "standardize": ("mode", "eps"), "pca": ("k", "fit_size"),
    "whiten": ("k", "eps", "fit_size"), "zca": ("eps", "fit_size"),
}
FLATTENING = ("pca", "whiten")


def build_preprocessor(cfg: Mapping) -> Preprocessor:
    """The (unfitted) preprocessor ``cfg.name`` with the keys it takes from ``cfg``."""
    name = cfg["name"]
    if name not in PREPROCESSORS:
        raise ConfigError("preprocess.name", name, f"choose one of: {', '.join(sorted(PREPROCESSORS))}")
    kwargs = {k: cfg[k] for k in PREPROCESS_KEYS[name] if k in cfg and cfg[k] is not None}
    return PREPROCESSORS[name](**kwargs)


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``preprocess`` group (a flattening preprocessor in front of a CNN
    joins two groups: that rule lives in engine/validate.py)."""
    name = check_name(cfg, "preprocess.name", PREPROCESSORS)
    check_keys(select(cfg, "preprocess"), "preprocess", ("name", *PREPROCESS_KEYS[name]))
    if "mode" in PREPROCESS_KEYS[name] and select(cfg, "preprocess.mode") is not None:
        check_name(cfg, "preprocess.mode", MODES)
    if "eps" in PREPROCESS_KEYS[name]:
        check_number(cfg, "preprocess.eps", low=0, low_open=True, optional=True)
    if name == "pca":
        check_number(cfg, "preprocess.k", low=1, integer=True)
    if name == "whiten":
        check_number(cfg, "preprocess.k", low=1, integer=True, optional=True)
    if "fit_size" in PREPROCESS_KEYS[name]:
        check_number(cfg, "preprocess.fit_size", low=2, integer=True, optional=True)
    return []
