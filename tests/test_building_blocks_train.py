"""The building blocks through the real entry point: every option of the init, activation,
model, loss and regularization groups composes with Hydra and trains one step via
``nnbasics.train.train``; combinations that make sense train together; constraints hold in the
trained model (max-norm), and a few combinations actually learn a toy set."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch

from conftest import SHARED_DATA
from nnbasics.nn import losses
from nnbasics.optim import regularization
from nnbasics.engine.train import train

CONF = CONF_DIR
GROUPS = ("init", "activation", "model", "loss", "regularization")
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
# one step, tiny model, nothing written that is not needed
BASE = ["epochs=1", "steps=1", "batch_size=32", "progress=false", "monitor=off", "checkpoint=false",
        "eval_test=false", "model.width=8", "model.depth=2"]
DATA_FOR_TASK = {
    "multiclass": ["data=spiral"],
    "binary": ["data=moons", "data.target=parity"],
    "multilabel": ["data=blobs", "data.classes=10", "data.target=attributes"],
    "regression": ["data=curve"],
}


def _data_for(overrides: list[str]) -> list[str]:
    loss = next((o.split("=", 1)[1] for o in overrides if o.startswith("loss=")), "cross_entropy")
    tasks = losses.LOSS_TASKS[loss]
    return DATA_FOR_TASK["multiclass" if "multiclass" in tasks else sorted(tasks)[0]]


def _run(compose, tmp_path, overrides, **kw):
    cfg = compose(BASE + _data_for(overrides) + overrides)
    m = train(cfg, run_dir=tmp_path / "run", **kw)
    assert m["status"] == "completed", m
    if cfg.steps is not None:
        assert m["steps"] == cfg.steps
    return cfg, m


IMAGE_ONLY = (("model", "cnn"), ("model", "examples_cnn"))  # covered on image data elsewhere


@pytest.mark.slow  # ~45 Hydra composes: the default run has the same check in tests/test_config.py
@pytest.mark.parametrize("group,option", [o for o in OPTIONS if o not in IMAGE_ONLY],
                         ids=[f"{g}={o}" for g, o in OPTIONS if (g, o) not in IMAGE_ONLY])
def test_every_option_trains_one_step(compose, tmp_path, group, option):
    """Every option of these groups, alone, composes and trains one step. tests/test_config.py
    runs the same check (3 steps, every group, parametrized over conf/) in the default test run,
    so this copy is marked slow; the combinations below are the default-run coverage here."""
    cfg, m = _run(compose, tmp_path, [f"{group}={option}"])
    assert cfg[group].name == option
    assert torch.isfinite(torch.tensor(m["train/loss"]))


COMBINATIONS = [
    ["activation=maxout", "init=he_uniform", "regularization=maxnorm_dropout"],
    ["activation=prelu", "activation.per_unit=true", "model.norm=batch", "model.dropout.variant=vanilla",
     "regularization=dropout"],
    ["activation=selu", "init=lecun_normal", "regularization=elastic_net"],
    ["activation=leaky_relu", "init=he_normal", "init.mode=fan_out", "model.dropout.variant=dropconnect",
     "model.dropout.p=0.5", "regularization=l1"],
    ["activation=sigmoid", "init=xavier_uniform", "model.norm=layer", "regularization=input_noise"],
    ["activation=tanh", "init=orthogonal", "model.norm=group", "model.groups=4", "regularization=l2"],
    ["activation=elu", "init=sparse", "init.k=2", "regularization=maxnorm", "regularization.weight_decay=1e-4"],
    ["activation=relu", "init=he_normal", "regularization=l2_decoupled", "optimizer=adamw"],
    ["model=linear", "loss=hinge", "init=zeros"],
    ["activation=maxout", "activation.pieces=3", "model.norm=group", "model.groups=4", "loss=squared_hinge"],
    ["activation=tanh", "loss=bce", "init=xavier_normal", "regularization=dropout"],
    ["activation=prelu", "loss=multilabel_hinge", "regularization=maxnorm_dropout"],
    ["activation=elu", "loss=multilabel_logistic", "model.norm=batch", "init=torch_default"],
    ["activation=tanh", "loss=mae", "init=calibrated", "regularization=input_noise"],
    ["activation=relu", "loss=mse", "model.dropout.input_p=0.1", "model.dropout.variant=vanilla"],
]


@pytest.mark.parametrize("overrides", COMBINATIONS, ids=[" ".join(c) for c in COMBINATIONS])
def test_combinations_compose_and_train(compose, tmp_path, overrides):
    if "optimizer=adamw" in overrides and not (CONF / "optimizer" / "adamw.yaml").exists():
        pytest.skip("optimizer=adamw not there yet")
    _run(compose, tmp_path, overrides + ["steps=3"])


def test_max_norm_holds_in_the_trained_model(compose, tmp_path):
    """dropout + max-norm with a tight c: after training, no unit's incoming weights exceed c."""
    c = 0.3
    cfg, _ = _run(compose, tmp_path, ["activation=maxout", "init=he_uniform", "regularization=maxnorm_dropout",
                                      f"regularization.max_norm={c}", "steps=10", "checkpoint=true",
                                      "optimizer.lr=0.1"])
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    weights = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    assert len(weights) == 3
    norms = torch.cat([w.norm(dim=1) for w in weights])
    assert float(norms.max()) <= c * (1 + 1e-5)
    assert float(norms.max()) > 0.9 * c  # the constraint was active (He-uniform rows start far above 0.3)


LEARN = ["steps=null", "epochs=10", "batch_size=64", "model.width=32", "optimizer.lr=0.02"]


@pytest.mark.parametrize("overrides,minimum", [
    (["activation=maxout", "init=he_uniform", "regularization=maxnorm_dropout", "regularization.dropout_p=0.1",
      "regularization.input_dropout_p=0.0"], 0.9),  # spiral, 3 classes: chance 0.33
    (["activation=prelu", "model.norm=batch", "loss=hinge"], 0.9),
    (["activation=relu", "loss=bce"], 0.85),  # moons parity: chance 0.5
    (["activation=relu", "loss=multilabel_logistic"], 0.75),  # blobs attributes: majority guess ~0.55
], ids=["maxout+maxnorm_dropout", "prelu+batchnorm+hinge", "bce", "multilabel_logistic"])
def test_a_few_combinations_learn_a_toy_set(compose, tmp_path, overrides, minimum):
    """Not a benchmark: proof that the pieces together learn (100 updates; val accuracy well
    above chance)."""
    _, m = _run(compose, tmp_path, overrides + LEARN)
    assert m["val/acc"] > minimum, m["val/acc"]


def test_regression_learns_the_curve(compose, tmp_path):
    _, m = _run(compose, tmp_path, ["loss=mse", "activation=tanh"] + LEARN)
    assert m["val/loss"] < 0.1  # sin on [-pi, pi] has variance 0.5: the fit explains > 80% of it


def test_every_regularizer_is_in_the_registry_validate_reads():
    assert set(p.stem for p in (CONF / "regularization").glob("*.yaml")) == set(regularization.REGULARIZERS)


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="../shared/data/MNIST not present")
def test_cnn_trains_on_mnist(compose, tmp_path):
    cfg = compose(BASE + ["data=mnist", "data.download=false", f"data.root={SHARED_DATA}", "data.train_size=128",
                          "data.val_size=64", "model=cnn", "model.width=4", "model.depth=2", "model.hidden=16",
                          "steps=2", "model.norm=batch", "activation=maxout", "regularization=maxnorm_dropout"])
    m = train(cfg, run_dir=tmp_path / "run")
    assert m["status"] == "completed" and m["steps"] == 2
