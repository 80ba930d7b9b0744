"""CUDA: the same runs on a GPU as on the CPU (skipped where there is no CUDA device; run them with
``pytest -m cuda``, or ``bash benchmarks/gpu.sh``, which also runs the GPU benchmarks).

What differs on a GPU: the device of every tensor (data, model, optimizer state, RNG), cuBLAS's
rounding, and the population's per-device grouping rule (always stacked on a GPU). What must not:
a run's numbers within float tolerance of the CPU's, a population member's within tolerance of its
single run on the same device, and a run directory that loads back on the CPU."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARED_DATA, TOY, compose_cfg

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]

BASE = TOY + ["checkpoint=true", "epochs=3", "model.width=32", "model.depth=2", "data.n_samples=600"]


def test_a_run_on_the_gpu_matches_the_cpu_and_loads_back_on_the_cpu(tmp_path):
    from nnbasics.engine.load import load_run
    from nnbasics.engine.train import train

    cpu = train(compose_cfg(BASE + ["device=cpu", "optimizer=adam"]), run_dir=tmp_path / "cpu")
    gpu = train(compose_cfg(BASE + ["device=cuda", "optimizer=adam"]), run_dir=tmp_path / "gpu")
    for k in ("train/loss", "val/loss", "val/acc", "test/acc"):
        assert gpu[k] == pytest.approx(cpu[k], rel=1e-3, abs=1e-3), k  # cuBLAS rounds differently
    run = load_run(tmp_path / "gpu", device="cpu")
    assert next(run.model.parameters()).device.type == "cpu"
    x = torch.randn(4, 2)
    assert run.model(x).shape == (4, 3)


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_population_members_on_the_gpu_equal_their_single_gpu_runs(optimizer):
    from nnbasics.engine.population import group_configs, train_population, worth_grouping
    from nnbasics.engine.train import train

    variants = [["seed=0", "optimizer.lr=0.01"], ["seed=1", "optimizer.lr=0.05", "activation=tanh"],
                ["seed=0", "model.dropout.p=0.2", "init=xavier_uniform"]]
    cfgs = [compose_cfg(BASE + ["device=cuda", "checkpoint=false", f"optimizer={optimizer}"] + v) for v in variants]
    assert all(worth_grouping(c, cpu_max_macs=1.0) for c in cfgs)  # the CPU's size rule does not apply on a GPU
    assert group_configs(cfgs, cpu_max_macs=1.0)[0] == [[0, 1, 2]]
    for cfg, member in zip(cfgs, train_population(cfgs)):
        solo = train(cfg)
        for k in ("train/loss", "val/loss", "val/acc", "test/acc"):
            assert member[k] == pytest.approx(solo[k], rel=1e-4, abs=1e-5), k


def test_a_cnn_trains_on_the_gpu(tmp_path):
    from nnbasics.engine.train import train

    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"no MNIST copy under {SHARED_DATA} (set NNBASICS_SHARED_DATA)")
    cfg = compose_cfg(["data=mnist", f"data.root={SHARED_DATA}", "data.train_size=1000", "model=cnn", "model.width=4",
                       "model.hidden=16", "device=cuda", "steps=20", "progress=false", "monitor=off", "checkpoint=false",
                       "eval_every=1000"])
    result = train(cfg, run_dir=tmp_path / "cnn")
    assert result["status"] == "completed" and result["steps"] == 20 and result["val/acc"] > 0.1
