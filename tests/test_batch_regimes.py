"""Gradient descent, SGD and mini-batch: `batch_size: full` takes the full-data gradient, `1`
takes one-sample steps, `sampling: replacement` draws with replacement, and `steps` is a
budget in updates. The training loop is checked against a reference loop written here."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TOY
from nnbasics.data.datasets import load_data, minibatches
from nnbasics.nn.losses import build_loss
from nnbasics.nn.models import build_model
from nnbasics.engine.train import train

LR = 0.05
BASE = TOY + ["optimizer=sgd", f"optimizer.lr={LR}", "scheduler=constant", "regularization=none", "preprocess=none"]


def initial_model(cfg, bundle):
    """The model train() starts from: same seed, same builder."""
    torch.manual_seed(cfg.seed)
    return build_model(cfg, tuple(bundle.train.x.shape[1:]), bundle.out_features)


def trained_params(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


def full_gradient_step(cfg, bundle, lr: float) -> dict[str, torch.Tensor]:
    """theta - lr * grad of the mean loss over the whole (unshuffled) training split."""
    model = initial_model(cfg, bundle)
    build_loss(cfg.loss)(model(bundle.train.x), bundle.train.y).backward()
    with torch.no_grad():
        return {k: p - lr * p.grad for k, p in model.named_parameters()}


# ---------------------------------------------------------------------------------------------
# The batches themselves
# ---------------------------------------------------------------------------------------------


def test_full_batch_is_every_sample_once_and_batch_1_is_single_samples():
    g = torch.Generator().manual_seed(0)
    full = list(minibatches(600, 600, g))
    assert len(full) == 1 and torch.equal(full[0].sort().values, torch.arange(600))
    singles = list(minibatches(600, 1, g))
    assert len(singles) == 600 and all(len(b) == 1 for b in singles)
    assert torch.equal(torch.cat(singles).sort().values, torch.arange(600))


def test_replacement_draws_uniformly_with_repeats():
    g = torch.Generator().manual_seed(0)
    batches = list(minibatches(600, 50, g, replacement=True))
    assert len(batches) == 12 and all(len(b) == 50 for b in batches)
    idx = torch.cat(batches)
    assert 0 <= int(idx.min()) and int(idx.max()) < 600
    # 600 draws from 600 with replacement: about 600 (1 - 1/e) = 379 distinct, never all 600
    assert 330 < len(idx.unique()) < 430


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------


def test_full_batch_takes_exactly_the_full_data_gradient(compose, tmp_path):
    cfg = compose(BASE + ["batch_size=full", "steps=1"])
    m = train(cfg, run_dir=tmp_path / "run")
    bundle = load_data(cfg.data)
    assert m["batch_size"] == len(bundle.train) == 600 and m["steps"] == 1
    got, want = trained_params(tmp_path / "run"), full_gradient_step(cfg, bundle, LR)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-7)
    # ... and not the gradient of a part of the data: half the split gives a visibly different step
    half = initial_model(cfg, bundle)
    build_loss(cfg.loss)(half(bundle.train.x[:300]), bundle.train.y[:300]).backward()
    moved = {k: LR * p.grad for k, p in half.named_parameters()}
    start = {k: p.detach() for k, p in initial_model(cfg, bundle).named_parameters()}
    assert max(float((want[k] - (start[k] - moved[k])).abs().max()) for k in want) > 1e-4


@pytest.mark.parametrize("batch_size,sampling,steps", [
    ("1", "shuffle", 5), ("7", "shuffle", 4), ("full", "shuffle", 3), ("1", "replacement", 5), ("64", "replacement", 3),
])
def test_each_update_is_one_sgd_step_on_one_batch(batch_size, sampling, steps, compose, tmp_path):
    """Reference loop: the same index batches (data.minibatches with the run's seeded generator),
    one SGD step on the mean loss of each. batch_size=1 is one sample per update."""
    cfg = compose(BASE + [f"batch_size={batch_size}", f"sampling={sampling}", f"steps={steps}"])
    m = train(cfg, run_dir=tmp_path / "run")
    bundle = load_data(cfg.data)
    n = len(bundle.train)
    b = n if batch_size == "full" else int(batch_size)
    model, loss_fn = initial_model(cfg, bundle), build_loss(cfg.loss)
    generator = torch.Generator().manual_seed(cfg.seed)
    sizes, done = [], 0
    while done < steps:
        for idx in minibatches(n, b, generator, sampling == "replacement"):
            if done == steps:
                break
            model.zero_grad()
            loss_fn(model(bundle.train.x[idx]), bundle.train.y[idx]).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= LR * p.grad
            sizes.append(len(idx))
            done += 1
    assert sizes == [b] * steps
    assert m["steps"] == steps and m["batch_size"] == b
    got = trained_params(tmp_path / "run")
    for k, p in model.named_parameters():
        torch.testing.assert_close(got[k], p.detach(), rtol=1e-6, atol=1e-7)


def test_steps_budget_counts_updates_across_epochs(compose, tmp_path):
    """600 samples at batch 256: 3 updates per epoch (the last one 88 samples). steps=7 stops
    inside the third epoch; epochs=2 gives 6 updates."""
    m = train(compose(BASE + ["batch_size=256", "steps=7", "checkpoint=false"]), run_dir=tmp_path / "steps")
    assert m["steps"] == 7 and m["epochs"] == 3
    assert [row["step"] for row in m["history"]] == [3, 6, 7]
    m = train(compose(BASE + ["batch_size=256", "epochs=2", "checkpoint=false"]), run_dir=tmp_path / "epochs")
    assert m["steps"] == 6 == 2 * math.ceil(600 / 256)


def test_updates_per_epoch_of_the_three_regimes(compose, tmp_path):
    """Per epoch over 200 samples: full batch makes 1 update, batch 50 makes 4, batch 1 makes 200
    (the regimes compared per update; history.json's curve has the wall time of each)."""
    ups = {}
    for bs in ("full", "50", "1"):
        m = train(compose(BASE + [f"batch_size={bs}", "epochs=1", "data.train_size=200", "checkpoint=false"]),
                  run_dir=tmp_path / bs)
        ups[bs] = m["steps"]
    assert ups == {"full": 1, "50": 4, "1": 200}
