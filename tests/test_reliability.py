"""Reliability: every bad value is refused before work with one clear message, divergence is
recorded, a killed run resumes to the same numbers, identical runs are bit-identical, and a
finished run is never overwritten."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from conftest import TOY
from nnbasics.nn import activations
from nnbasics.errors import ConfigError, DivergenceError
from nnbasics.engine.train import train

BIN = Path(sys.executable).parent

# (overrides, the key the message must name). Each is refused before any work starts.
BAD_INPUTS = [
    (["model.depth=-1"], "model.depth"),
    (["model.width=0"], "model.width"),
    (["model.width=-5"], "model.width"),
    (["model.width=2.5"], "model.width"),
    (["optimizer.lr=0"], "optimizer.lr"),
    (["optimizer.lr=-1"], "optimizer.lr"),
    (["optimizer.lr=nan"], "optimizer.lr"),
    (["batch_size=0"], "batch_size"),
    (["batch_size=-3"], "batch_size"),
    (["batch_size=big"], "batch_size"),
    (["epochs=0"], "epochs"),
    (["steps=0"], "steps"),
    (["seed=-1"], "seed"),
    (["device=tpu"], "device"),
    (["data.name=imagenet"], "data.name"),
    (["activation.name=swish"], "activation.name"),
    (["init.name=magic"], "init.name"),
    (["optimizer.name=lbfgs"], "optimizer.name"),
    (["loss.name=focal"], "loss.name"),
    (["model.dropout.p=1.0"], "model.dropout.p"),
    (["model.dropout.p=-0.1"], "model.dropout.p"),
    (["model.dropout.input_p=1.5"], "model.dropout.input_p"),
    (["regularization=l2", "regularization.weight_decay=-1"], "regularization.weight_decay"),
    (["sampling=bootstrap"], "sampling"),
    (["data.val_size=-1"], "data.val_size"),
    (["data.n_samples=2"], "data.n_samples"),
    (["data.noise=-0.1"], "data.noise"),
    (["data.train_size=0"], "data.train_size"),
    (["data.val_size=500", "data.test_size=500"], "data.val_size"),
    (["init.mode=fan_avg"], "init.mode"),
    (["optimizer.impl=jax"], "optimizer.impl"),
    (["scheduler.name=triangle"], "scheduler.name"),
    (["scheduler.warmup_steps=-1"], "scheduler.warmup_steps"),
    (["monitor.level=loud"], "monitor.level"),
    (["monitor.every=0"], "monitor.every"),
    (["data.target=colour"], "data.target"),
    (["preprocess.name=fourier"], "preprocess.name"),
    (["optimizer=adam", "optimizer.eps=0"], "optimizer.eps"),
    (["eval_every=0"], "eval_every"),
    (["threads=0"], "threads"),
    # incompatible combinations
    (["data=curve"], "loss.name"),  # cross-entropy on a regression target
    (["data=mnist", "data.target=parity", "data.download=false"], "loss.name"),  # softmax CE on a binary target
    (["data=mnist", "data.target=attributes", "data.download=false"], "loss.name"),  # single-label loss, multi-label data
]


@pytest.mark.parametrize("overrides,key", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_is_refused_before_any_work(compose, tmp_path, overrides, key):
    cfg = compose(TOY + overrides)
    run = tmp_path / "run"
    with pytest.raises(ConfigError) as e:
        train(cfg, run_dir=run)
    assert e.value.key == key
    msg = str(e.value)
    assert key in msg and "allowed" in msg or "choose" in msg or "must" in msg or "needs" in msg
    assert not run.exists() or not any(run.iterdir())  # nothing that looks like a run


def test_at_least_thirty_bad_inputs_are_covered():
    assert len(BAD_INPUTS) >= 30


def test_cuda_on_a_machine_without_it_is_a_config_error(compose, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        train(compose(TOY + ["device=cuda"]), run_dir=tmp_path / "r")


@pytest.mark.skipif("selu" not in activations.ACTIVATIONS, reason="selu not registered")
def test_selu_without_lecun_init_is_only_a_warning(compose, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = train(compose(TOY + ["activation=selu", "init=he_normal", "epochs=1"]), run_dir=tmp_path / "r")
    assert m["status"] == "completed"
    assert any("LeCun" in str(w.message) for w in caught)


# --- divergence ---------------------------------------------------------------------------------


def test_nan_loss_stops_the_run_and_records_it(compose, tmp_path):
    cfg = compose(TOY + ["optimizer=sgd", "optimizer.lr=1e12", "epochs=5", "data.noise=0.0"])
    run = tmp_path / "run"
    with pytest.raises(DivergenceError) as e:
        train(cfg, run_dir=run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    assert metrics["diverged_at_step"] == e.value.step >= 1
    assert "test/acc" not in metrics


def test_diverged_job_does_not_sink_a_multirun(tmp_path):
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([str(BIN / "nnbasics-train"), "-m"] + TOY + ["optimizer=sgd", "optimizer.lr=1e12,0.05", "epochs=2",
                         f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert statuses == ["completed", "diverged"]


# --- determinism and resume ------------------------------------------------------------------


def comparable(run: Path) -> tuple[dict, list]:
    m = json.loads((run / "metrics.json").read_text())
    m.pop("wall_time_s")
    h = json.loads((run / "history.json").read_text())
    rows = [{k: v for k, v in r.items() if k != "time_s"} for r in h["epochs"]]
    return m, rows


def test_same_config_and_seed_are_bit_identical(compose, tmp_path):
    cfg = compose(TOY + ["epochs=3", "model.dropout.p=0.2"])
    train(cfg, run_dir=tmp_path / "a")
    train(cfg, run_dir=tmp_path / "b")
    assert comparable(tmp_path / "a") == comparable(tmp_path / "b")
    wa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_different_seeds_differ(compose, tmp_path):
    train(compose(TOY + ["seed=0"]), run_dir=tmp_path / "a")
    train(compose(TOY + ["seed=1"]), run_dir=tmp_path / "b")
    assert comparable(tmp_path / "a") != comparable(tmp_path / "b")


def test_checkpoint_loads_with_weights_only(compose, tmp_path):
    train(compose(TOY), run_dir=tmp_path / "r")
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "generator", "torch_rng", "epoch", "step"} <= set(state)


def test_killed_run_resumes_to_identical_final_metrics(tmp_path):
    """SIGKILL a run mid-way (after its 3rd checkpoint), resume it, compare with an uninterrupted run."""
    args = ["data=spiral", "model.width=64", "model.depth=2", "epochs=12", "progress=false", "monitor=off",
            "batch_size=8", "model.dropout.p=0.1"]
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run([str(BIN / "nnbasics-train")] + args + [f"hydra.run.dir={full}"], cwd=tmp_path, env=env,
                   check=True, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([str(BIN / "nnbasics-train")] + args + [f"hydra.run.dir={killed}"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    epoch = 0
    while time.time() < deadline and proc.poll() is None:
        ck = killed / "checkpoint.pt"
        if ck.exists():
            try:
                epoch = torch.load(ck, weights_only=True)["epoch"]
            except Exception:  # noqa: BLE001 - mid-rename; try again
                epoch = 0
            if epoch >= 3:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()
    out = subprocess.run([str(BIN / "nnbasics-train")] + args + [f"resume={killed}", f"hydra.run.dir={tmp_path}/resumer"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resuming" in out.stdout
    assert comparable(killed) == comparable(full)
    assert not (tmp_path / "resumer").exists()  # the resuming invocation left no empty run dir behind


def test_resume_with_a_different_config_is_refused(compose, tmp_path):
    train(compose(TOY + ["epochs=1", "eval_test=false"]), run_dir=tmp_path / "r")
    (tmp_path / "r" / "metrics.json").unlink()  # as if killed before the end
    with pytest.raises(ConfigError, match="different config"):
        train(compose(TOY + ["epochs=1", "optimizer.lr=0.5", f"resume={tmp_path / 'r'}"]))


def test_finished_run_is_never_overwritten(compose, tmp_path):
    train(compose(TOY), run_dir=tmp_path / "r")
    before = (tmp_path / "r" / "metrics.json").read_bytes()
    with pytest.raises(ConfigError, match="already holds a completed run"):
        train(compose(TOY + ["seed=5"]), run_dir=tmp_path / "r")
    assert (tmp_path / "r" / "metrics.json").read_bytes() == before


def test_out_of_memory_is_one_clear_message_and_recorded(compose, tmp_path, monkeypatch):
    """A (simulated) allocation failure mid-training: a message naming batch_size, status failed."""
    from nnbasics.engine import train as train_mod
    from nnbasics.errors import NNBasicsError

    real = train_mod.correct
    calls = {"n": 0}

    def exploding(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 123456789 bytes")
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "correct", exploding)
    with pytest.raises(NNBasicsError, match="out of memory .* batch_size=32"):
        train(compose(TOY + ["batch_size=32"]), run_dir=tmp_path / "r")
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["status"] == "failed"
