"""The published setups (conf/experiment/<source>_<name>.yaml) and their golden numbers.

Fast (default run): every overlay composes and validates; `nnbasics-train --help` lists them. The
deterministic goldens (the DLFS optimizer race on f(x, y) = x^2 / 20 + y^2, parameter counts, the
cs231n optimizer checks) are in tests/test_goldens.py.
Slow (``-m slow``, real data where needed, skipped when ../shared/data is absent): the overlays that
run on a 2-core CPU in minutes, each as "exact command -> expected number", the tolerance from the
measured seed spread (docs/reproductions.md). A golden that misses is an xfail with the measured
number and the reason, never a wider tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR

from conftest import REPO, SHARED_DATA

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
# Overlays that use a library piece another change is building (they compose once it lands): none now
# (optimizer.eps_mode=dlfs, optimizer=adadelta and model=examples_cnn are in the library).
NEEDS: dict[str, str] = {}
TRAIN = [str(Path(sys.executable).with_name("nnbasics-train"))]


def _params():
    for name in EXPERIMENTS:
        marks = [pytest.mark.xfail(strict=False, reason=NEEDS[name])] if name in NEEDS else []
        yield pytest.param(name, marks=marks, id=name)


def test_the_required_protocols_are_there():
    required = {"dlfs_optimizer_compare_mnist_sgd", "dlfs_weight_init_compare_he", "dlfs_batch_norm_test",
                "dlfs_overfit_weight_decay", "dlfs_overfit_dropout", "dlfs_hyperparameter_optimization",
                "cs231n_spiral_linear", "cs231n_spiral_2layer", "cs231n_fc_overfit_small",
                "cs231n_fc_update_rules_sgd", "cs231n_fc_batchnorm", "cs231n_fc_dropout", "keras_mnist_mlp",
                "pytorch_examples_mnist", "srivastava_dropout_maxnorm", "d2l_weight_decay", "d2l_dropout"}
    assert required <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", list(_params()))
def test_overlay_composes_validates_and_states_its_source(compose, name):
    """Each overlay is a complete protocol: it composes, passes the validator (no invented keys),
    sets the schedule explicitly (no silent cosine default), and names its published number."""
    from nnbasics.engine.validate import validate

    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert "Published" in text and f"experiment={name}" in text
    assert "override /scheduler:" in text and "override /optimizer:" in text and "override /init:" in text
    cfg = compose([f"experiment={name}"])
    validate(cfg)
    assert cfg.scheduler.name != "cosine" and cfg.sampling in ("shuffle", "replacement")


def test_dlfs_protocols_share_the_sources_conventions(compose):
    for name in [n for n in EXPERIMENTS if n.startswith("dlfs_") and n not in NEEDS]:
        cfg = compose([f"experiment={name}"])
        assert cfg.data.scale == "unit" and cfg.sampling == "replacement", name
        assert cfg.loss.name == "cross_entropy" and cfg.init.bias == 0.0, name
        if cfg.init.name == "he_normal":  # N(0, 2 / n_in) on every layer, the output layer too
            assert cfg.init.gain == pytest.approx(2 ** 0.5), name


def test_train_help_lists_the_experiments():
    out = subprocess.run(TRAIN + ["--help"], capture_output=True, text=True, timeout=120, cwd=REPO).stdout
    line = next(line for line in out.splitlines() if line.startswith("experiment:"))
    assert all(name in line for name in EXPERIMENTS)


# ----------------------------------------------------------------------------------------------
# Golden runs: exact command -> expected number (slow)
# ----------------------------------------------------------------------------------------------

QUIET = ["threads=1", "progress=false", "checkpoint=false", "monitor=off"]
needs_data = pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="../shared/data is absent")


def run_protocol(tmp_path: Path, *args: str) -> dict:
    """`nnbasics-train <args>` in a subprocess; its metrics.json."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "NNBASICS_DATA": str(SHARED_DATA)}
    proc = subprocess.run(TRAIN + list(args) + QUIET + [f"hydra.run.dir={run_dir}"], capture_output=True,
                          text=True, timeout=900, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cs231n_spiral_linear_rerun_range(tmp_path, seed):
    """`nnbasics-train experiment=cs231n_spiral_linear seed=S data.split_seed=S` -> train/acc in the
    notes' re-run range 0.51-0.53 (measured, seeds 0-4: 0.518 +- 0.006)."""
    m = run_protocol(tmp_path, "experiment=cs231n_spiral_linear", f"seed={seed}", f"data.split_seed={seed}")
    assert 0.505 <= m["train/acc"] <= 0.535


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured 0.518 +- 0.006 (seeds 0-4, each its own spiral); the notes' "
                   "0.49 is one unseeded draw of the data, and the notes' own re-runs give 0.51-0.53")
def test_cs231n_spiral_linear_published(tmp_path):
    """`nnbasics-train experiment=cs231n_spiral_linear` -> "training accuracy: 0.49" (+- 3 std = 0.02)."""
    m = run_protocol(tmp_path, "experiment=cs231n_spiral_linear")
    assert m["train/acc"] == pytest.approx(0.49, abs=0.02)


@pytest.mark.slow
def test_cs231n_spiral_2layer(tmp_path):
    """`nnbasics-train experiment=cs231n_spiral_2layer` -> "training accuracy: 0.98" (measured seeds
    0-2, each its own spiral: 0.99, 0.983, see docs/reproductions.md; tolerance 0.015)."""
    m = run_protocol(tmp_path, "experiment=cs231n_spiral_2layer")
    assert m["train/acc"] == pytest.approx(0.98, abs=0.015)


@needs_data
@pytest.mark.slow
def test_dlfs_overfit_weight_decay(tmp_path):
    """`nnbasics-train experiment=dlfs_overfit_weight_decay seed=0,1,2` -> mean train/acc 0.927 and
    test/acc 0.721 at the end ("epoch:200"). Measured (seeds 0-2): train 0.901 +- 0.053, test 0.710
    +- 0.030; one published run vs a 3-seed mean: tolerance 2.3 std (train 0.12, test 0.07)."""
    runs = [run_protocol(tmp_path / str(s), "experiment=dlfs_overfit_weight_decay", f"seed={s}") for s in range(3)]
    assert sum(m["train/acc"] for m in runs) / 3 == pytest.approx(0.927, abs=0.12)
    assert sum(m["test/acc"] for m in runs) / 3 == pytest.approx(0.721, abs=0.07)


BATCH_NORM = [  # (norm, init.std, published final training accuracy, tolerance from the measured spread)
    ("batch", 0.0136, 1.000, 0.01),   # measured 0.998, 0.998, 0.997
    ("none", 0.0136, 0.116, 0.005),   # measured 0.116 x 3 (the most frequent class of the 1,000 images)
    ("batch", 1.0, 0.419, 0.05),      # measured 0.417, 0.415, 0.444: 0.425 +- 0.016 (eps 1e-6)
    # the smallest std, where the BN eps decides (pre-BN variance ~1e-6): measured with DLFS's eps 1e-6
    # 0.611, 0.528, 0.417 (0.519 +- 0.097, seeds 0-2); with torch's 1e-5 it was 0.213, 0.116, 0.116
    ("batch", 1e-4, 0.523, 0.2),
]


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("norm, std, published, tol", BATCH_NORM)
def test_dlfs_batch_norm_test(tmp_path, norm, std, published, tol):
    """`nnbasics-train experiment=dlfs_batch_norm_test model.norm=N init.std=S seed=0` -> train/acc."""
    m = run_protocol(tmp_path, "experiment=dlfs_batch_norm_test", f"model.norm={norm}", f"init.std={std}", "seed=0")
    assert m["train/acc"] == pytest.approx(published, abs=tol)


@needs_data
@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: diverges (loss ~1e14 at the first updates, NaN at step 4 in float32, seeds "
                   "0 and 2); DLFS's float64 numpy trains on to 0.097")
def test_dlfs_batch_norm_test_std1_without_bn(tmp_path):
    """`nnbasics-train experiment=dlfs_batch_norm_test model.norm=none init.std=1.0` -> train/acc 0.097."""
    m = run_protocol(tmp_path, "experiment=dlfs_batch_norm_test", "model.norm=none", "init.std=1.0")
    assert m["train/acc"] == pytest.approx(0.097, abs=0.05)


@needs_data
@pytest.mark.slow
def test_dlfs_overfit_dropout(tmp_path):
    """`nnbasics-train experiment=dlfs_overfit_dropout seed=0,1,2` -> mean train/acc 0.67, test/acc 0.548
    (still under-trained, so the seed spread is wide). Measured (seeds 0-2): train 0.632 +- 0.088,
    test 0.521 +- 0.084; one published run vs a 3-seed mean: tolerance 2.3 std (train 0.20, test 0.19)."""
    runs = [run_protocol(tmp_path / str(s), "experiment=dlfs_overfit_dropout", f"seed={s}") for s in range(3)]
    assert sum(m["train/acc"] for m in runs) / 3 == pytest.approx(0.67, abs=0.20)
    assert sum(m["test/acc"] for m in runs) / 3 == pytest.approx(0.548, abs=0.19)


@pytest.mark.slow
def test_d2l_weight_decay_lambda_3_cures_the_overfit(tmp_path):
    """`nnbasics-train -m experiment=d2l_weight_decay regularization.weight_decay=0,6` (lambda 0 vs 3) ->
    lambda 0 "overfits badly" (train mse ~0, val mse far above), lambda 3 lowers the validation loss.
    Measured (seeds 0-2): lambda 0 val/loss 0.061 +- 0.004 with train/loss < 1e-4; lambda 3 val/loss 0.022 +- 0.003."""
    free = run_protocol(tmp_path / "0", "experiment=d2l_weight_decay", "regularization.weight_decay=0")
    decay = run_protocol(tmp_path / "3", "experiment=d2l_weight_decay", "regularization.weight_decay=6")
    assert free["train/loss"] < 0.1 * free["val/loss"]
    assert decay["val/loss"] < 0.5 * free["val/loss"]


def test_the_curve_can_hold_every_updates_mini_batch_loss_after_it(compose, toy_overrides, tmp_path):
    """`curve_every=1 curve_after_update=true` (the DLFS race overlays): a curve point [step, time_s,
    loss] after every update, its loss that of update `step`'s mini-batch after that update (DLFS's
    `network.loss(x_batch, t_batch)` after `optimizer.update`). Full-batch gradient descent checks
    it: the loss after update i is the loss before update i + 1 (the same batch, the same weights)."""
    from nnbasics.engine.train import train
    from nnbasics.engine.validate import validate
    from nnbasics.errors import ConfigError

    common = toy_overrides + ["batch_size=full", "steps=20", "checkpoint=none", "curve_every=1"]
    curves = {}
    for after in (False, True):
        train(compose(common + [f"curve_after_update={str(after).lower()}"]), tmp_path / str(after))
        curves[after] = json.loads((tmp_path / str(after) / "history.json").read_text())["curve"]
    assert [s for s, _, _ in curves[False]] == [s for s, _, _ in curves[True]] == list(range(1, 21))
    for i in range(19):
        assert curves[True][i][2] == pytest.approx(curves[False][i + 1][2], rel=1e-5)
    assert curves[True][-1][2] < curves[False][-1][2]  # the last update lowered its batch's loss
    with pytest.raises(ConfigError, match="curve_every"):
        validate(compose(toy_overrides + ["curve_every=0"]))


# The DLFS ch06 races (optimizer_compare_mnist.py, weight_init_compare.py): the script prints the loss
# of the current mini-batch after its update at iterations 0, 100, ..., 1900 (one run). The overlays
# record it every iteration (curve_every 1, curve_after_update true): iteration i = curve[i] (step i + 1).
DLFS_RACE = {  # arm -> the published loss at iteration 1900
    "dlfs_optimizer_compare_mnist_sgd": 0.150, "dlfs_optimizer_compare_mnist_momentum": 0.050,
    "dlfs_optimizer_compare_mnist_adagrad": 0.016, "dlfs_optimizer_compare_mnist_adam": 0.032,
    "dlfs_weight_init_compare_std001": 2.305, "dlfs_weight_init_compare_xavier": 0.377,
    "dlfs_weight_init_compare_he": 0.286,
}
RACE_SEEDS = (0, 1, 2)
_race_runs: dict[tuple[str, int], list[float]] = {}


def race_losses(tmp_path_factory, arm: str, seed: int) -> list[float]:
    """`nnbasics-train experiment=<arm> seed=<seed>` -> its per-iteration mini-batch losses (run once a session)."""
    if (arm, seed) not in _race_runs:
        where = tmp_path_factory.mktemp(f"{arm}_{seed}")
        run_protocol(where, f"experiment={arm}", f"seed={seed}")
        history = json.loads((where / "run" / "history.json").read_text())
        assert [s for s, _, _ in history["curve"]] == list(range(1, 2001))
        _race_runs[arm, seed] = [loss for _, _, loss in history["curve"]]
    return _race_runs[arm, seed]


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5


def _window(losses: list[float]) -> float:
    """The mean mini-batch loss over iterations 1800-1999 (200 batches: far less noisy than one)."""
    return sum(losses[1800:2000]) / 200


RACE_MISSES: dict[str, str] = {}  # arm -> the measured numbers, for a golden that misses (xfail strict)


def _race_params():
    for arm, published in DLFS_RACE.items():
        marks = [pytest.mark.xfail(strict=True, reason=RACE_MISSES[arm])] if arm in RACE_MISSES else []
        yield pytest.param(arm, published, marks=marks, id=arm.removeprefix("dlfs_"))


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("arm, published", list(_race_params()))
def test_dlfs_race_loss_at_iteration_1900(tmp_path_factory, arm, published):
    """`nnbasics-train experiment=<arm> seed=S` (S = 0, 1, 2) -> history.json curve[1900][2], the loss of
    iteration 1900's mini-batch after its update, "<arm>:<loss>" in the script's printout. Rule, fixed
    from our seed spread before comparing: the published value lies within mean +- 3 std (sample std)
    of our 3 seeds' iteration-1900 losses (one mini-batch is noisy: this range is wide; the race
    order below is the tighter check). Measured numbers: docs/reproductions.md."""
    mean, std = _mean_std([race_losses(tmp_path_factory, arm, s)[1900] for s in RACE_SEEDS])
    assert mean - 3 * std <= published <= mean + 3 * std


@needs_data
@pytest.mark.slow
def test_dlfs_optimizer_race_order(tmp_path_factory):
    """`nnbasics-train experiment=dlfs_optimizer_compare_mnist_<sgd|momentum|adam|adagrad> seed=S` ->
    the source's order at iteration 1900 (SGD 0.150 > Momentum 0.050 > Adam 0.032 > AdaGrad 0.016),
    on every seed's mean loss over iterations 1800-1999 (the mean of 200 mini-batches, not one)."""
    order = ["sgd", "momentum", "adam", "adagrad"]
    for s in RACE_SEEDS:
        w = [_window(race_losses(tmp_path_factory, f"dlfs_optimizer_compare_mnist_{o}", s)) for o in order]
        assert w == sorted(w, reverse=True), (s, dict(zip(order, w)))


@needs_data
@pytest.mark.slow
def test_dlfs_weight_init_race_order(tmp_path_factory):
    """`nnbasics-train experiment=dlfs_weight_init_compare_<std001|xavier|he> seed=S` -> the source's
    picture at iteration 1900 (2.305 / 0.377 / 0.286), on every seed's mean loss over iterations
    1800-1999: std 0.01 stuck at chance (within 0.01 of ln 10 = 2.303: no learning at all), "Xavier"
    and He far below (under 1.0), He below "Xavier"."""
    import math

    for s in RACE_SEEDS:
        std001, xavier, he = (_window(race_losses(tmp_path_factory, f"dlfs_weight_init_compare_{a}", s))
                              for a in ("std001", "xavier", "he"))
        assert abs(std001 - math.log(10)) < 0.01, (s, std001)
        assert he < xavier < 1.0, (s, xavier, he)


@needs_data
@pytest.mark.slow
def test_keras_mnist_mlp_test_accuracy(tmp_path_factory):
    """`nnbasics-train experiment=keras_mnist_mlp seed=S` (S = 0, 1, 2; ~2-3 min each on a 2-core CPU) ->
    test/acc; Keras's example prints "Test accuracy: 0.9840" (one run). Rule, fixed from our seed spread
    before comparing: 0.9840 lies within mean +- 3 std (sample std) of our 3 seeds. Measured
    2026-12-07: 0.9819, 0.9827, 0.9839 (0.9828 +- 0.0010), docs/reproductions.md."""
    accs = [run_protocol(tmp_path_factory.mktemp(f"keras_{s}"), "experiment=keras_mnist_mlp", f"seed={s}")["test/acc"]
            for s in (0, 1, 2)]
    mean, std = _mean_std(accs)
    assert mean - 3 * std <= 0.9840 <= mean + 3 * std, accs
