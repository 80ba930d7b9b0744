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
    (["model.norm=batch", "model.norm_eps=0"], "model.norm_eps"),
    (["model.norm=batch", "model.norm_eps=-1e-6"], "model.norm_eps"),
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
    """SIGKILL a run mid-way (after its 3rd checkpoint), resume it, compare with an uninterrupted run.
    40 epochs: the kill must land long before the end even on a busy machine (with 12, a CI run under
    load once read the 3rd checkpoint only as the run was writing its final metrics)."""
    args = ["data=spiral", "model.width=64", "model.depth=2", "epochs=40", "progress=false", "monitor=off",
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


# === Reliability, second round: nothing lost, nothing silent, no tracebacks ======================
# Every case below ends in one line naming the key or the file and what to do, a non-zero exit,
# and no directory created or changed. `refusal` runs the command line's own pre-flight
# (nnbasics.cli.train.preflight, what SweepCallback.on_run_start calls before Hydra creates the
# run directory) on the config exactly as `nnbasics-train <overrides>` composes it.

import errno
import fcntl
import hashlib

from nnbasics.engine.rundir import RunRefused, WriteError, acquire_lock, release_lock


def compose_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from conftest import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def refusal(capsys, overrides: list[str], run_dir) -> str:
    """The one line `nnbasics-train <overrides> hydra.run.dir=<run_dir>` prints before exiting 2."""
    from nnbasics.cli.train import preflight

    cfg = compose_with_hydra(TOY + overrides + [f"hydra.run.dir={run_dir}"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        preflight(cfg)
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def tree(path: Path) -> dict:
    """Every file under ``path`` with its bytes (folders as None): 'unchanged' means equal trees."""
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


def run_cli(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN / "nnbasics-train")] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


BIG = "1" + "0" * 30  # 10**30: a valid integer that no tensor, seed or thread count can take

# (overrides, what the one line must name). Values that overflow, allocate without bound, do not
# resolve, or are not what the key takes.
BAD_VALUES = [
    ([f"seed={BIG}"], "seed"),
    ([f"threads={BIG}"], "threads"),
    ([f"model.width={BIG}"], "model.width"),
    ([f"data.n_samples={BIG}"], "data.n_samples"),
    (["data.split_seed=abc"], "data.split_seed"),
    (["data.classes=0"], "data.classes"),
    (["data=curve", "loss=mse", "data.function=cos"], "data.function"),
    (["resume=123"], "resume"),
    (["resume=true"], "resume"),
    (["model.width=${oc.env:NNBASICS_SURELY_UNSET_VARIABLE}"], "model.width"),
    (["model.width=${nope}"], "model.width"),
    (["activation=maxout", "activation.pieces=100000000"], "activation.pieces"),
    (["data.train_size=5000"], "data.train_size"),
    (["divergence_factor=1"], "divergence_factor"),
    (["divergence_factor=-5"], "divergence_factor"),
    (["+model.widht=64"], "model.width"),
    (["+optimiser=sgd"], "optimizer"),
    (["eval_test=no"], "eval_test"),
    (["progress=maybe"], "progress"),
    (["checkpoint=yes"], "checkpoint"),
    (["resume=/surely/not/a/run"], "resume"),
]


@pytest.mark.parametrize("overrides,key", BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_bad_value_is_one_line_and_no_directory(capsys, tmp_path, overrides, key):
    run = tmp_path / "run"
    line = refusal(capsys, overrides, run)
    assert key in line, line
    assert not run.exists() and list(tmp_path.iterdir()) == []


def test_hydra_run_dir_that_cannot_be_a_run_directory_is_refused(capsys, tmp_path):
    (tmp_path / "a_file").write_text("x")
    for run_dir, says in [("''", "must be a folder"), (tmp_path / "a_file", "is a file"),
                          (tmp_path / "a_file" / "under", "is a file"), ("/proc/nnbasics-run", "no folder can be made")]:
        line = refusal(capsys, [], run_dir)
        assert "hydra.run.dir" in line and says in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_read_only_run_dir_is_refused(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount, where we may make one
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(ro)],
                          capture_output=True).returncode != 0:
            pytest.skip("root, and no read-only mount can be made here")
    else:
        ro.chmod(0o555)
    try:
        line = refusal(capsys, [], ro / "run")
        assert "hydra.run.dir" in line and "not writable" in line, line
        assert list(ro.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], capture_output=True)
        ro.chmod(0o755)


@pytest.mark.parametrize("args,key", [(["+model.widht=64"], "model.width"), (["eval_test=no"], "eval_test"),
                                      (["model.width=${nope}"], "model.width")])
def test_command_line_refusal_is_one_line_without_traceback(tmp_path, args, key):
    out = run_cli(TOY + args + [f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in out.stderr + out.stdout, out.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


# --- a finished, busy or unresumable run directory is never changed ---------------------------


def test_refused_run_leaves_a_finished_run_untouched(tmp_path):
    """Item 2: a refused run used to rewrite the finished run's .hydra/ (Hydra wrote it first)."""
    run = tmp_path / "run"
    assert run_cli(TOY + ["epochs=1", f"hydra.run.dir={run}"], cwd=tmp_path).returncode == 0
    assert (run / ".hydra" / "overrides.yaml").exists() and not (run / ".lock").exists()
    before = tree(run)
    out = run_cli(TOY + ["epochs=1", "seed=7", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert out.returncode == 2 and "already holds a completed run" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert tree(run) == before


def test_failed_resume_with_another_config_changes_nothing(compose, tmp_path):
    run = tmp_path / "r"
    train(compose(TOY + ["epochs=1", "checkpoint=true"]), run_dir=run)
    (run / "metrics.json").unlink()  # as if killed before the end
    before = tree(run)
    with pytest.raises(RunRefused, match="different config"):
        train(compose(TOY + ["epochs=1", "checkpoint=true", "optimizer.lr=0.5", f"resume={run}"]))
    assert tree(run) == before


def damage(run: Path, how: str) -> None:
    ckpt = run / "checkpoint.pt"
    if how == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif how == "random bytes":
        ckpt.write_bytes(os.urandom(4096))
    elif how == "empty":
        ckpt.write_bytes(b"")
    elif how == "a folder":
        ckpt.unlink()
        ckpt.mkdir()
    elif how == "one flipped bit":  # a weight's bit: loads fine, only the checksum tells
        state = torch.load(ckpt, weights_only=True)
        w = next(v for k, v in state["model"].items() if k.endswith("weight"))
        w.view(torch.int32).view(-1)[0] ^= 1 << 20
        torch.save(state, ckpt)
    elif how == "damaged metrics.json":
        (run / "metrics.json").write_text('{"status": "compl')


@pytest.mark.parametrize("how", ["truncated", "random bytes", "empty", "a folder", "one flipped bit",
                                 "damaged metrics.json"])
def test_damaged_run_directory_is_refused_on_resume(compose, capsys, tmp_path, how):
    run = tmp_path / "r"
    train(compose(TOY + ["epochs=1", "checkpoint=true"]), run_dir=run)
    (run / "metrics.json").unlink()
    damage(run, how)
    before = tree(run)
    line = refusal(capsys, ["epochs=1", "checkpoint=true", f"resume={run}"], tmp_path / "resumer")
    assert "resume=" in line and ("checkpoint.pt" in line or "metrics.json" in line), line
    if how == "one flipped bit":
        assert "checksum" in line
    with pytest.raises(RunRefused):  # the library refuses it too, before any write
        train(compose(TOY + ["epochs=1", "checkpoint=true", f"resume={run}"]))
    assert tree(run) == before and not (tmp_path / "resumer").exists()


def test_resume_with_another_thread_count_is_refused(compose, tmp_path):
    run = tmp_path / "r"
    train(compose(TOY + ["epochs=1", "checkpoint=true", "threads=1"]), run_dir=run)
    (run / "metrics.json").unlink()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["threads"] == 1
    before = tree(run)
    try:
        with pytest.raises(RunRefused, match="threads=1") as e:
            train(compose(TOY + ["epochs=1", "checkpoint=true", "threads=2", f"resume={run}"]))
    finally:
        torch.set_num_threads(1)
    assert e.value.key == "threads"
    assert tree(run) == before


def hold_lock_as_another_process(run: Path, pid: str = "4242") -> int:
    """Lock ``run`` through a separate open file description (flock treats it as another holder)."""
    run.mkdir(parents=True, exist_ok=True)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{pid}\n".encode())
    return fd


def test_a_run_directory_in_use_is_refused_naming_the_holder(compose, capsys, tmp_path):
    run = tmp_path / "busy"
    fd = hold_lock_as_another_process(run)
    try:
        line = refusal(capsys, [], run)
        assert "another process (pid 4242)" in line, line
        with pytest.raises(RunRefused, match="pid 4242"):
            train(compose(TOY), run_dir=run)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    finally:
        os.close(fd)
    m = train(compose(TOY), run_dir=run)  # released: the directory is free again
    assert m["status"] == "completed" and not (run / ".lock").exists()


def test_lock_is_taken_once_per_process_and_released(tmp_path):
    fd = acquire_lock(tmp_path)
    assert fd is not None and (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    assert acquire_lock(tmp_path) is None  # this process holds it already (train_main, then train)
    release_lock(tmp_path.resolve(), fd)
    assert not (tmp_path / ".lock").exists()


def test_two_processes_never_share_a_run_directory(tmp_path):
    """Item 3: the second process is refused with the holder's pid, not a 'different config'."""
    run = tmp_path / "run"
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([str(BIN / "nnbasics-train")] + TOY + ["epochs=400", "batch_size=4", f"hydra.run.dir={run}"],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (run / "config.yaml").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second started"
        out = run_cli(TOY + ["seed=3", f"hydra.run.dir={run}"], cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert f"pid {first.pid}" in out.stderr and "different config" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()
    assert "seed: 0" in (run / "config.yaml").read_text()
    assert len(list((run / "tb").glob("events.*"))) == 1


# --- silently wrong -----------------------------------------------------------------------------


def test_loss_blown_up_by_the_divergence_factor_is_diverged(compose, tmp_path):
    """Item 7: Adam at lr=1e6 'completed' with a train loss of 7.5e16 (finite, so not NaN/Inf)."""
    with pytest.raises(DivergenceError):
        train(compose(TOY + ["optimizer=adam", "optimizer.lr=1e6", "epochs=3"]), run_dir=tmp_path / "r")
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["status"] == "diverged"


def test_milestones_beyond_the_run_warn(compose):
    from nnbasics.engine.validate import validate

    with pytest.warns(UserWarning, match="scheduler.milestones.*never happens"):
        validate(compose(TOY + ["scheduler=multistep", "scheduler.milestones=[1,5]", "epochs=3"]))


def test_checkpoint_carries_a_checksum_and_a_bit_flip_is_caught(compose, tmp_path):
    from nnbasics.engine.rundir import state_digest

    train(compose(TOY + ["epochs=1", "checkpoint=true"]), run_dir=tmp_path / "r")
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert state["checksum"] == state_digest(state)
    w = next(iter(state["model"].values()))
    w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(1e9))
    assert state["checksum"] != state_digest(state)


# --- data: every file checked before training; a mistyped root leaves nothing ---------------------


def test_damaged_test_file_is_found_before_training(tmp_path):
    from test_data import cfg_for, make_fake_mnist
    from nnbasics.data import datasets as data
    from nnbasics.errors import DataError

    make_fake_mnist(tmp_path)
    f = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])  # truncated
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated.*fetch again"):
        data.load_data(cfg_for(tmp_path))


@pytest.mark.parametrize("fault", ["label of 200", "a folder in place of a file"])
def test_damaged_idx_set_is_one_data_error_naming_the_file(tmp_path, fault):
    from test_data import cfg_for, make_fake_mnist, write_idx_labels
    from nnbasics.data import datasets as data
    from nnbasics.errors import DataError

    make_fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    if fault == "label of 200":
        labels = torch.zeros(60, dtype=torch.long)
        labels[7] = 200
        write_idx_labels(raw / "train-labels-idx1-ubyte", labels)
        match = "train-labels-idx1-ubyte holds the label 200"
    else:
        (raw / "t10k-labels-idx1-ubyte").unlink()
        (raw / "t10k-labels-idx1-ubyte").mkdir()
        match = "t10k-labels-idx1-ubyte is a folder"
    with pytest.raises(DataError, match=match):
        data.load_data(cfg_for(tmp_path))


def test_train_size_above_an_image_split_is_refused(tmp_path):
    from test_data import cfg_for, make_fake_mnist
    from nnbasics.engine.setup import _load

    make_fake_mnist(tmp_path)
    with pytest.raises(ConfigError, match="data.train_size=500.*only 50 samples"):
        _load(cfg_for(tmp_path, train_size=500), torch.device("cpu"))
    with pytest.raises(ConfigError, match="data.val_size"):
        _load(cfg_for(tmp_path, val_size=5000), torch.device("cpu"))


def test_mistyped_data_root_leaves_no_folder_and_names_the_fetch_command(tmp_path, monkeypatch):
    from nnbasics.data import datasets as data
    from nnbasics.errors import DataError

    def offline(name, root):
        (root / "MNIST" / "raw").mkdir(parents=True)  # what a download makes before it fails
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error no network>")

    monkeypatch.setattr(data, "torchvision_download", offline)
    typo = tmp_path / "dtaa" / "sets"
    with pytest.raises(DataError, match="`nnbasics-data fetch mnist`"):
        data.load_data({"name": "mnist", "root": str(typo), "download": True, "val_size": 10})
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_one_clear_message_naming_the_file(compose, tmp_path, monkeypatch):
    """A checkpoint write that hits ENOSPC: 'no space left on device while writing <file>' (not
    torch's 'basic_ios::clear: iostream error'); the partial file is removed."""
    from nnbasics.engine import rundir

    real_open = open

    def full_disk_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        if "checkpoint.pt" in str(path) and "w" in mode:
            f.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return f

    monkeypatch.setattr(rundir, "open", full_disk_open, raising=False)
    run = tmp_path / "r"
    with pytest.raises(WriteError, match=r"no space left on device while writing .*checkpoint\.pt"):
        train(compose(TOY + ["checkpoint=true"]), run_dir=run)
    assert not list(run.glob(".*.partial")) and not (run / ".lock").exists()
    assert json.loads((run / "metrics.json").read_text())["status"] == "failed"
