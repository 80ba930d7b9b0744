"""Golden numbers from the sources themselves, deterministic and fast (the default test run).

- deep-learning-from-scratch ch06/optimizer_compare_naive.py: the end points of the 2-D optimizer
  race (the script's own numbers, 4 decimals), through the configured optimizers, with DLFS's Adam
  eps placement (``optimizer.eps_mode=dlfs``); and our paths against DLFS's update formulas
  (common/optimizer.py) written out, step by step.
- Parameter counts of the published models, built from their overlays: DLFS 784-100x4-10
  (109,810), Keras examples/mnist_mlp.py (669,706, its model.summary()), pytorch/examples
  mnist/main.py (1,199,882).
- cs231n assignment 2 (FullyConnectedNets.ipynb, the cells that check cs231n/optim.py): the
  published ``expected_next_w`` and state arrays of ``sgd_momentum``, ``rmsprop`` and ``adam``
  (N, D = 4, 5, np.linspace inputs) through ``optim/kernels.py`` in float64, to the assignment's
  own rel_error below 1e-7.

A golden that misses stays visible (xfail with the measured number), never a wider tolerance.
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from nnbasics.optim import kernels
from nnbasics.optim.optimizers import build_optimizer

# ----------------------------------------------------------------------------------------------
# DLFS ch06/optimizer_compare_naive.py: f(x, y) = x^2 / 20 + y^2 from (-7, 2), 30 updates
# ----------------------------------------------------------------------------------------------

# (our optimizer config changes, DLFS's end point); DLFS's AdaGrad and Adam use eps 1e-7 and its
# Adam puts eps on the uncorrected sqrt(v) (eps_mode=dlfs)
NAIVE = {"sgd": ({"lr": 0.95}, (-0.3504, 0.0848)),
         "momentum": ({"lr": 0.1, "momentum": 0.9}, (0.8964, 0.0881)),
         "adagrad": ({"lr": 1.5, "eps": 1e-7}, (-0.1202, 0.0000)),
         "adam": ({"lr": 0.3, "betas": [0.9, 0.999], "eps": 1e-7, "eps_mode": "dlfs"}, (0.1360, 0.3182))}


def _grad(xy: torch.Tensor) -> torch.Tensor:
    return torch.stack([xy[0] / 10, 2 * xy[1]])


def _race(compose, name: str) -> list[torch.Tensor]:
    """The 31 points (start + 30 updates) of optimizer ``name`` as `nnbasics-train optimizer=name`
    configures it, with the race's hyperparameters."""
    overrides, _ = NAIVE[name]
    cfg = OmegaConf.to_container(compose([f"optimizer={name}"]).optimizer, resolve=True)
    cfg.update(overrides)
    xy = torch.tensor([-7.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = build_optimizer([xy], cfg)
    path = [xy.detach().clone()]
    for _ in range(30):
        opt.zero_grad()
        (xy[0] ** 2 / 20 + xy[1] ** 2).backward()
        opt.step()
        path.append(xy.detach().clone())
    return path


def _dlfs_path(name: str) -> list[torch.Tensor]:
    """DLFS common/optimizer.py's update rules, as the book writes them (float64)."""
    params = torch.tensor([-7.0, 2.0], dtype=torch.float64)
    state = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    path = [params.clone()]
    for it in range(1, 31):
        g = _grad(params)
        if name == "sgd":          # params -= lr * grads
            params = params - 0.95 * g
        elif name == "momentum":   # v = momentum * v - lr * grads; params += v
            v = 0.9 * state[0] - 0.1 * g
            state, params = (v, state[1]), params + v
        elif name == "adagrad":    # h += grads^2; params -= lr * grads / (sqrt(h) + 1e-7)
            h = state[0] + g * g
            state, params = (h, state[1]), params - 1.5 * g / (h.sqrt() + 1e-7)
        else:                      # lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); m += (1-b1)(g-m); v += (1-b2)(g^2-v)
            lr_t = 0.3 * (1 - 0.999 ** it) ** 0.5 / (1 - 0.9 ** it)
            m = state[0] + (1 - 0.9) * (g - state[0])
            v = state[1] + (1 - 0.999) * (g ** 2 - state[1])
            state, params = (m, v), params - lr_t * m / (v.sqrt() + 1e-7)
        path.append(params.clone())
    return path


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_dlfs_optimizer_compare_naive_end_points(compose, name):
    """`python ch06/optimizer_compare_naive.py` -> the 30th point of each path, to the 4 decimals
    the script's numbers are quoted with (../shared/PROTOCOLS.md)."""
    end = _race(compose, name)[-1]
    assert end.tolist() == pytest.approx(NAIVE[name][1], abs=5e-5)


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_dlfs_race_paths_follow_dlfs_update_formulas(compose, name):
    """Every point of the 30-step path equals DLFS's own update rule to rounding: SGD; Momentum
    as v = mu v - lr g, x += v (torch's v = mu v + g, x -= lr v with a constant lr: the same
    numbers); AdaGrad (eps outside the root, as torch); Adam with lr_t and eps on the uncorrected
    sqrt(v) (eps_mode=dlfs)."""
    ours, theirs = _race(compose, name), _dlfs_path(name)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13, msg=lambda m: f"update {t}: {m}")


def test_dlfs_adam_placement_matters_below_the_printed_decimals_here():
    """On this race torch's eps placement lands within 1e-5 of DLFS's end point (both round to the
    published (0.1360, 0.3182)), but the paths are not equal: the eps option is what makes them so."""
    def run(mode):
        xy = torch.tensor([-7.0, 2.0], dtype=torch.float64)
        state: dict = {}
        for t in range(1, 31):
            kernels.adam_(xy, _grad(xy), state, lr=0.3, eps=1e-7, step=t, eps_mode=mode)
        return xy

    dlfs, standard = run("dlfs"), run("torch")
    assert 0 < float((dlfs - standard).abs().max()) < 1e-4


# ----------------------------------------------------------------------------------------------
# Parameter counts of the published models, built from their overlays
# ----------------------------------------------------------------------------------------------

COUNTS = {
    # DLFS MultiLayerNet(784, [100] * 4, 10): 784*100+100 + 3 * (100*100+100) + 100*10+10
    "dlfs_optimizer_compare_mnist_sgd": 109_810,
    # Keras examples/mnist_mlp.py model.summary(): "Total params: 669,706"
    "keras_mnist_mlp": 669_706,
    # pytorch/examples mnist/main.py Net: 320 + 18,496 + 1,179,776 + 1,290
    "pytorch_examples_mnist": 1_199_882,
}


@pytest.mark.parametrize("experiment", sorted(COUNTS))
def test_published_models_have_their_parameter_counts(compose, experiment):
    from nnbasics.nn.models import build_model, count_parameters

    cfg = compose([f"experiment={experiment}", "data.download=false"])
    assert count_parameters(build_model(cfg, (1, 28, 28), 10)) == COUNTS[experiment]


# ----------------------------------------------------------------------------------------------
# cs231n assignment 2: the optimizer checks of FullyConnectedNets.ipynb
# ----------------------------------------------------------------------------------------------

N, D = 4, 5


def _linspace(a: float, b: float) -> torch.Tensor:
    """np.linspace(a, b, num=N*D).reshape(N, D), float64."""
    return torch.linspace(a, b, N * D, dtype=torch.float64).reshape(N, D)


def rel_error(x: torch.Tensor, y) -> float:
    """The assignment's: max(|x - y| / max(1e-8, |x| + |y|))."""
    y = torch.tensor(y, dtype=torch.float64)
    return float(((x - y).abs() / torch.clamp(x.abs() + y.abs(), min=1e-8)).max())


# the published arrays (the notebook's expected_* values, 8 decimals)
SGD_MOMENTUM_NEXT_W = [[0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
                       [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
                       [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
                       [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]]
SGD_MOMENTUM_VELOCITY = [[0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
                         [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
                         [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
                         [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]]
RMSPROP_NEXT_W = [[-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
                  [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
                  [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
                  [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]]
RMSPROP_CACHE = [[0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
                 [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
                 [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
                 [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]]
ADAM_NEXT_W = [[-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
               [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
               [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
               [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]]
ADAM_V = [[0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
          [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
          [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
          [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]]
ADAM_M = [[0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
          [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
          [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
          [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]]


def test_cs231n_sgd_momentum():
    """config = {learning_rate: 1e-3, velocity: linspace(0.6, 0.9)}, momentum 0.9 (the default):
    v = mu v - lr dw; w += v. Our buffer is torch's b = -v / lr (v = mu v - lr dw <=> b = mu b + dw)."""
    w, dw, v = _linspace(-0.4, 0.6), _linspace(-0.6, 0.4), _linspace(0.6, 0.9)
    state = {"momentum_buffer": -v / 1e-3}
    kernels.sgd_(w, dw, state, lr=1e-3, momentum=0.9)
    assert rel_error(w, SGD_MOMENTUM_NEXT_W) < 1e-7
    assert rel_error(-1e-3 * state["momentum_buffer"], SGD_MOMENTUM_VELOCITY) < 1e-7


def test_cs231n_rmsprop():
    """config = {learning_rate: 1e-2, cache: linspace(0.6, 0.9)}, decay_rate 0.99, epsilon 1e-8."""
    w, dw, cache = _linspace(-0.4, 0.6), _linspace(-0.6, 0.4), _linspace(0.6, 0.9)
    state = {"square_avg": cache}
    kernels.rmsprop_(w, dw, state, lr=1e-2, alpha=0.99, eps=1e-8)
    assert rel_error(w, RMSPROP_NEXT_W) < 1e-7
    assert rel_error(state["square_avg"], RMSPROP_CACHE) < 1e-7


def _cs231n_adam() -> tuple[torch.Tensor, dict]:
    """config = {learning_rate: 1e-2, m: linspace(0.6, 0.9), v: linspace(0.7, 0.5), t: 5}, beta1 0.9,
    beta2 0.999, epsilon 1e-8; the assignment's adam counts t = 6 for this update and bias-corrects
    (torch's eps placement, eps_mode=torch)."""
    w, dw = _linspace(-0.4, 0.6), _linspace(-0.6, 0.4)
    state = {"exp_avg": _linspace(0.6, 0.9), "exp_avg_sq": _linspace(0.7, 0.5)}
    kernels.adam_(w, dw, state, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, step=6)
    return w, state


def test_cs231n_adam():
    """Every published digit: next_w rounded to the notebook's 8 decimals is its array exactly; m
    and v to rel_error below 1e-7."""
    w, state = _cs231n_adam()
    assert torch.equal(torch.round(w * 1e8), torch.round(torch.tensor(ADAM_NEXT_W, dtype=torch.float64) * 1e8))
    assert rel_error(state["exp_avg_sq"], ADAM_V) < 1e-7
    assert rel_error(state["exp_avg"], ADAM_M) < 1e-7


@pytest.mark.xfail(strict=True, reason="measured rel_error 1.14e-7 (the notebook says 'around e-7 or less'): "
                   "the published 0.01971428 is 0.0197142755... rounded to 8 decimals, 4.5e-9 off, which "
                   "alone is 1.14e-7 relative; every other digit matches (test_cs231n_adam)")
def test_cs231n_adam_next_w_rel_error_below_1e_7():
    w, _ = _cs231n_adam()
    assert rel_error(w, ADAM_NEXT_W) < 1e-7
