"""The published setups (conf/experiment/<source>_<name>.yaml) and their golden numbers.

Fast (default run): every overlay composes and validates; `nnbasics-train --help` lists them; the
deterministic DLFS optimizer race on f(x, y) = x^2 / 20 + y^2 through the library's optimizers.
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
import torch

from conftest import REPO, SHARED_DATA

EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
# Overlays that use a library piece another change is building (they compose once it lands).
NEEDS = {
    "dlfs_optimizer_compare_mnist_adam": "needs optimizer.eps_mode=dlfs (Adam's eps placement in DLFS)",
    "pytorch_examples_mnist": "needs model=examples_cnn and optimizer=adadelta",
}
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

    text = (REPO / "conf" / "experiment" / f"{name}.yaml").read_text()
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
# DLFS ch06/optimizer_compare_naive.py: deterministic, no data
# ----------------------------------------------------------------------------------------------

# f(x, y) = x^2 / 20 + y^2 from (-7, 2), 30 updates; the end points recomputed from the script.
NAIVE = {"sgd": ({"lr": 0.95}, (-0.3504, 0.0848)),
         "momentum": ({"lr": 0.1, "momentum": 0.9}, (0.8964, 0.0881)),
         "adagrad": ({"lr": 1.5, "eps": 1e-7}, (-0.1202, 0.0000)),
         "adam": ({"lr": 0.3, "eps": 1e-7}, (0.1360, 0.3182))}


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_dlfs_optimizer_compare_naive_end_points(compose, name):
    """`python ch06/optimizer_compare_naive.py` -> the 30th point of each path. DLFS's Adam puts eps
    1e-7 outside the bias-corrected root (lr_t form); with these gradients the difference to the
    standard placement is below the 4 printed decimals, so the standard Adam is checked here."""
    from omegaconf import OmegaConf
    from nnbasics.optim.optimizers import build_optimizer

    overrides, expected = NAIVE[name]
    cfg = OmegaConf.to_container(compose([f"optimizer={name}"]).optimizer, resolve=True)
    cfg.update(overrides)
    xy = torch.tensor([-7.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = build_optimizer([xy], cfg)
    for _ in range(30):
        opt.zero_grad()
        (xy[0] ** 2 / 20 + xy[1] ** 2).backward()
        opt.step()
    assert xy.detach().tolist() == pytest.approx(expected, abs=1e-4)


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
