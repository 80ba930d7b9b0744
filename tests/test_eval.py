"""After training: load_run reproduces a run's own numbers, predicts raw inputs with the run's
scaling and preprocessing (tensors and image files), nnbasics-eval prints metrics and predictions
(and one error line for a bad path), load_sweep gives one record per run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TOY, compose_cfg
from nnbasics.cli import eval as eval_cli
from nnbasics.data import datasets
from nnbasics.data.preprocessing import build_preprocessor
from nnbasics.engine.load import Prediction, RunError, _prediction, load_run, load_sweep
from nnbasics.engine.train import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished spiral run with fitted standardization: (run dir, its metrics)."""
    d = tmp_path_factory.mktemp("run") / "run"
    metrics = train(compose_cfg(TOY + ["device=cpu", "preprocess=standardize"]), run_dir=d)
    return d, metrics


def test_load_run_reproduces_the_runs_own_metrics_exactly(trained):
    d, metrics = trained
    run = load_run(d)
    assert not run.model.training and run.task == "multiclass" and run.status == "completed"
    assert run.metrics["val/acc"] == metrics["val/acc"] and len(run.history) == metrics["epochs"]
    for split in ("val", "test"):
        r = run.evaluate(split)
        assert r["acc"] == metrics[f"{split}/acc"] and r["loss"] == pytest.approx(metrics[f"{split}/loss"], rel=1e-6)


def test_predict_matches_the_model_on_preprocessed_inputs(trained):
    d, _ = trained
    run = load_run(d)
    bundle = run.data()
    # the statistics are the fitted ones of the training split, not an unfitted identity
    fitted = build_preprocessor(run.cfg.preprocess).fit(bundle.train.x)
    assert torch.equal(run.preprocessor.mean, fitted.mean) and torch.equal(run.preprocessor.std, fitted.std)
    assert run.preprocessor.mean.abs().max() > 0 and (run.preprocessor.std - 1).abs().max() > 1e-3
    raw = bundle.val.x                                    # toy inputs: floats as generated
    p = run.predict(raw)
    with torch.no_grad():
        logits = run.model(fitted.transform(raw))
    assert torch.allclose(p.outputs, logits) and torch.equal(p.labels, logits.argmax(1))
    with torch.no_grad():
        assert not torch.allclose(run.model(raw), logits)  # preprocessing changes the answer
    assert torch.allclose(p.probabilities.sum(1), torch.ones(len(raw)))
    assert p.classes == [run.classes[i] for i in p.labels.tolist()] and len(p) == len(raw)
    values, idx = p.top(2)
    assert idx.shape == (len(raw), 2) and torch.equal(idx[:, 0], p.labels) and bool((values[:, 0] >= values[:, 1]).all())
    # one input (no batch dimension) gives the same answer as its row
    assert torch.allclose(run.predict(raw[3]).outputs[0], p.outputs[3])


def test_a_checkpoint_file_or_another_name_in_the_run_dir_loads_the_same_weights(trained, tmp_path):
    d, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    shutil.copy(copy / "checkpoint.pt", copy / "best.pt")
    x = torch.randn(7, 2)
    rng = torch.get_rng_state()
    ref = load_run(d).predict(x).outputs
    assert torch.equal(torch.get_rng_state(), rng)  # loading leaves the caller's random state alone
    assert torch.equal(load_run(copy / "checkpoint.pt").predict(x).outputs, ref)
    assert torch.equal(load_run(copy, checkpoint="best.pt").predict(x).outputs, ref)
    assert load_run(copy, checkpoint="best.pt").checkpoint == copy / "best.pt"


def test_probabilities_per_task():
    out = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.0, 1.0]])
    p = _prediction(out, "multilabel", ())
    assert torch.allclose(p.probabilities, out.sigmoid()) and p.labels.tolist() == [[1, 0, 1], [0, 0, 1]]
    b = _prediction(out[:, :1], "binary", ())
    assert torch.allclose(b.probabilities, out[:, 0].sigmoid()) and b.labels.tolist() == [1, 0]
    r = _prediction(out[:, :1], "regression", ())
    assert torch.equal(r.probabilities, out[:, :1])
    with pytest.raises(ValueError, match="multiclass"):
        r.top(1)
    m = _prediction(out, "multiclass", ("a", "b", "c"))
    assert isinstance(m, Prediction) and m.classes == ["a", "c"]
    assert torch.allclose(m.probabilities, torch.softmax(out, 1))


# --- the command -------------------------------------------------------------------------------


def test_cli_prints_val_test_metrics_and_predictions_for_a_tensor_file(trained, tmp_path, capsys):
    d, metrics = trained
    x = torch.randn(3, 2)
    torch.save({"x": x, "y": torch.tensor([0, 1, 2])}, tmp_path / "batch.pt")
    assert eval_cli.main([f"ckpt_path={d}", f"inputs={tmp_path / 'batch.pt'}", "top=2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    val = next(line for line in lines if line.startswith("val:"))
    test = next(line for line in lines if line.startswith("test:"))
    assert f"acc {metrics['val/acc']:.4f}" in val and f"acc {metrics['test/acc']:.4f}" in test
    rows = [line for line in lines if line.startswith("  ") and "top-2" in line]
    expected = load_run(d).predict(x)
    assert len(rows) == 3 and all(f" {c} (" in row for c, row in zip(expected.classes, rows))
    assert "acc on the file's y" in out


def test_cli_bad_path_is_one_line_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nnbasics.cli.eval", f"ckpt_path={tmp_path / 'nowhere'}"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error:") and "does not exist" in r.stderr


def test_cli_refuses_unknown_keys_and_bad_values(trained, capsys):
    d, _ = trained
    assert eval_cli.main([f"ckpt_path={d}", "splt=val"]) == 2
    assert "did you mean split" in capsys.readouterr().err
    assert eval_cli.main([f"ckpt_path={d}", "split=dev"]) == 2
    assert eval_cli.main(["split=val"]) == 2
    assert "ckpt_path is required" in capsys.readouterr().err


def test_incomplete_runs_say_what_is_missing(trained, tmp_path, capsys):
    d, _ = trained
    # no checkpoint: nothing to load the weights from
    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(d, no_ckpt)
    (no_ckpt / "checkpoint.pt").unlink()
    with pytest.raises(RunError, match="checkpoint.pt"):
        load_run(no_ckpt)
    assert eval_cli.main([f"ckpt_path={no_ckpt}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint=false" in err
    # not a run at all
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="config.yaml"):
        load_run(tmp_path / "empty")
    # still running or killed (no metrics.json yet): loads its last checkpoint, and says so
    running = tmp_path / "running"
    shutil.copytree(d, running)
    (running / "metrics.json").unlink()
    assert load_run(running).status == "missing"
    assert eval_cli.main([f"ckpt_path={running}", "split=val"]) == 0
    assert "no metrics.json" in capsys.readouterr().out


def test_import_nnbasics_stays_light_and_exports_load_run():
    code = ("import sys, nnbasics; assert 'torch' not in sys.modules; "
            "assert callable(nnbasics.load_run) and callable(nnbasics.load_sweep); print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# --- image files ---------------------------------------------------------------------------------


def _write_idx(raw: Path, prefix: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + h.to_bytes(4, "big") + w.to_bytes(4, "big")
        + images.to(torch.uint8).numpy().tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.to(torch.uint8).numpy().tobytes())


def test_predict_image_files_like_the_data_sets_own_loader(tmp_path):
    from PIL import Image

    root = tmp_path / "data"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 60), ("t10k", 8)):
        _write_idx(raw, prefix, torch.randint(0, 256, (n, 28, 28), generator=g), torch.randint(0, 10, (n,), generator=g))
    cfg = compose_cfg(["data=mnist", f"data.root={root}", "data.download=false", "data.val_size=10", "epochs=1",
                       "progress=false", "monitor=off", "model.width=8", "model.depth=1", "device=cpu",
                       "preprocess=standardize"])
    train(cfg, run_dir=tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.raw_shape == (1, 28, 28) and run.classes == tuple(str(i) for i in range(10))

    # three test images as PNG files: predicted exactly as the loader's own (scaled) test tensors
    test_raw, _ = datasets.load_raw(run.cfg.data, train=False)
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i in range(3):
        Image.fromarray(test_raw[i, 0].numpy(), mode="L").save(pngs / f"img{i}.png")
    p = run.predict_files(pngs)
    with torch.no_grad():
        ref = run.model(run.preprocessor.transform(run.data().load_test().x[:3]))
    assert p.inputs == [str(pngs / f"img{i}.png") for i in range(3)]
    assert torch.allclose(p.outputs, ref, atol=1e-6) and torch.allclose(p.probabilities.sum(1), torch.ones(3))
    assert torch.allclose(run.predict(test_raw[:3]).outputs, ref, atol=1e-6)  # uint8 tensors: the same path

    # an RGB image of another size: converted to grayscale and resized to 28 x 28
    Image.new("RGB", (56, 40), (90, 90, 90)).save(tmp_path / "grey.png")
    grey = run.predict_files(tmp_path / "grey.png")
    assert torch.allclose(grey.outputs, run.predict(torch.full((1, 28, 28), 90, dtype=torch.uint8)).outputs, atol=1e-6)

    # the command reads the folder too
    assert eval_cli.main([f"ckpt_path={tmp_path / 'run'}", "split=none", f"inputs={pngs}"]) == 0


# --- sweeps ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 2-job sweep directory as a multirun leaves it: <job>/ run dirs with .hydra/overrides.yaml."""
    root = tmp_path_factory.mktemp("sweep")
    for job, seed in enumerate((0, 1)):
        d = root / str(job)
        overrides = ["data=spiral", "epochs=1", f"seed={seed}"]
        train(compose_cfg(TOY + overrides + ["device=cpu"]), run_dir=d)
        (d / ".hydra").mkdir()
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return root


def test_load_sweep_gives_one_record_per_run_with_its_overrides(sweep):
    records = load_sweep(sweep)
    assert [r["job"] for r in records] == ["0", "1"] and [r["status"] for r in records] == ["completed"] * 2
    assert [r["overrides"]["seed"] for r in records] == ["0", "1"] and records[0]["overrides"]["epochs"] == "1"
    for r in records:
        assert r["val/acc"] == json.loads((Path(r["run_dir"]) / "metrics.json").read_text())["val/acc"]
        assert "test/acc" in r
    assert load_run(records[1]["run_dir"]).cfg.seed == 1  # the records' run dirs load
    with pytest.raises(RunError, match="not a run directory"):
        load_run(sweep)
    with pytest.raises(RunError, match="not a directory"):
        load_sweep(sweep / "nowhere")


def test_load_sweep_as_frame_needs_pandas_and_says_so(sweep, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match="pip install pandas"):
        load_sweep(sweep, as_frame=True)


def test_load_sweep_as_frame(sweep):
    pd = pytest.importorskip("pandas")
    frame = load_sweep(sweep, as_frame=True)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2 and list(frame["seed"]) == [0, 1]
    assert list(frame["epochs"]) == [1, 1] and "overrides" not in frame.columns
    assert list(frame["val/acc"]) == [r["val/acc"] for r in load_sweep(sweep)]
