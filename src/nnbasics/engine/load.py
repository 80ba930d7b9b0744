"""After training: a run directory loaded back as a model that predicts, and a sweep as records.

    run = load_run("outputs/runs/<date>/<time>_<id>")      # or .../checkpoint.pt
    run.evaluate("val")                  # {"loss": ..., "acc": ...}: the run's own val/acc, exactly
    p = run.predict(x)                   # x raw: uint8 images (N x C x H x W) or floats as loaded
    p.classes, p.probabilities           # class names, softmax / sigmoid of the outputs
    run.predict_files(["seven.png"])     # image files: decoded, resized, scaled like the data set
    records = load_sweep("outputs/multirun/<date>/<time>_<id>")   # one dict per job

``load_run`` rebuilds what ``train`` built, from what the run directory holds (``engine.rundir``):
the model from ``config.yaml`` (``nn.models.build_model``) with the weights of ``checkpoint.pt``,
the fitted preprocessor from ``preprocess.pt`` (``Preprocessor.load_state_dict``). Everything is
read with ``torch.load(..., weights_only=True)``: tensors and plain values, never code.

The input convention of ``predict``: the data set's *raw* inputs. For an image set, uint8 pixels
(0-255) are scaled exactly as the data set's loader scales them (``datasets.normalize`` with the
run's ``data.scale``); a floating-point tensor is taken as already scaled (what ``load_data``
returns, e.g. ``bundle.val.x``). Toy sets are floats as generated. The run's fitted preprocessing
(``preprocess=standardize``, ``pca``, ...) is then applied, as during training.

Probabilities: softmax over the classes (multiclass), sigmoid of each output (binary,
multilabel), the outputs themselves (regression).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from nnbasics.errors import NNBasicsError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class RunError(NNBasicsError, FileNotFoundError):
    """A path is not a loadable run (or sweep): the message says what is missing."""


# ----------------------------------------------------------------------------------------------
# Predictions
# ----------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    """The model's answer for N inputs.

    ``outputs``: the raw model outputs (logits; N x out). ``probabilities``: softmax (multiclass),
    sigmoid (binary: N, multilabel: N x K), the outputs (regression). ``labels``: the predicted
    class index (multiclass, N), 0/1 (binary N, multilabel N x K), the outputs (regression).
    ``classes``: the predicted class names, one per input (multiclass; else the labels as text).
    ``inputs``: the names of the inputs (file paths) when they came from files."""

    task: str
    outputs: Tensor
    probabilities: Tensor
    labels: Tensor
    classes: list[str]
    class_names: tuple[str, ...] = ()
    inputs: list[str] | None = None

    def __len__(self) -> int:
        return self.outputs.shape[0]

    def top(self, k: int = 1) -> tuple[Tensor, Tensor]:
        """(probabilities, class indices) of the ``k`` most probable classes, N x k (multiclass)."""
        if self.task != "multiclass":
            raise ValueError(f"top-k needs a multiclass task, not {self.task}")
        return self.probabilities.topk(min(k, self.probabilities.shape[1]), dim=1)


def _prediction(outputs: Tensor, task: str, class_names: Sequence[str], inputs=None) -> Prediction:
    outputs = outputs.detach()
    if task == "multiclass":
        probs = outputs.softmax(dim=1)
        labels = outputs.argmax(dim=1)
        names = list(class_names) if len(class_names) == outputs.shape[1] else [str(i) for i in range(outputs.shape[1])]
        classes = [names[i] for i in labels.tolist()]
    elif task in ("binary", "multilabel"):
        out = outputs.reshape(-1) if task == "binary" else outputs
        probs = out.sigmoid()
        labels = (out > 0).long()
        classes = [str(v) for v in labels.tolist()]
    else:  # regression
        probs = labels = outputs
        classes = [" ".join(f"{v:.6g}" for v in row) for row in outputs.reshape(len(outputs), -1).tolist()]
    return Prediction(task, outputs, probs, labels, classes, tuple(class_names), inputs)


# ----------------------------------------------------------------------------------------------
# A loaded run
# ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """A trained run, loaded: ``model`` (eval mode, on ``device``), the fitted ``preprocessor``,
    the resolved ``cfg``, ``metrics`` (metrics.json; {} when the run has none yet), ``history``
    (history.json's per-epoch rows), ``task``, ``classes``, and ``checkpoint_info`` (epoch, step)."""

    path: Path
    cfg: Any
    model: torch.nn.Module
    preprocessor: Any
    metrics: dict
    history: list
    task: str
    classes: tuple[str, ...]
    raw_shape: tuple[int, ...]  # one raw input (before scaling and preprocessing)
    device: torch.device
    checkpoint: Path
    checkpoint_info: dict = field(default_factory=dict)
    _bundle: Any = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return self.metrics.get("status", "missing") if self.metrics else "missing"

    @property
    def data_name(self) -> str:
        return str(self.cfg.data.name)

    # --- inputs --------------------------------------------------------------------------------

    def scale(self, x: Tensor) -> Tensor:
        """Raw inputs on the data set's scale: uint8 pixels through the data set's own conversion
        (``datasets.normalize`` with the run's ``data.scale``); floats unchanged."""
        from nnbasics.data import datasets

        x = torch.as_tensor(x)
        if x.dim() == len(self.raw_shape):  # one input
            x = x.unsqueeze(0)
        if len(self.raw_shape) == 3 and x.dim() == 3 and self.raw_shape[0] == 1:  # N x H x W grayscale
            x = x.unsqueeze(1)
        if tuple(x.shape[1:]) != self.raw_shape:
            raise ValueError(f"inputs of shape {tuple(x.shape)} do not fit this run: {self.data_name} inputs are "
                             f"N x {' x '.join(map(str, self.raw_shape))}")
        if x.dtype == torch.uint8:
            if self.data_name not in datasets.IMAGE_SIZES:
                raise ValueError(f"uint8 inputs are image pixels, but {self.data_name} is not an image data set")
            scale = self.cfg.data.get("scale")
            kw = {"scale": str(scale)} if scale is not None else {}
            return datasets.normalize(x, self.data_name, self.device, **kw)
        if not x.is_floating_point():
            raise ValueError(f"inputs must be uint8 pixels or floats, not {x.dtype}")
        return x.to(self.device, torch.get_default_dtype())

    def inputs(self, x: Tensor) -> Tensor:
        """Raw inputs as the model sees them: scaled (``scale``), then the run's preprocessing."""
        return self.preprocessor.transform(self.scale(x))

    # --- predictions ---------------------------------------------------------------------------

    @torch.inference_mode()
    def predict(self, x: Tensor, *, chunk: int = 1024, names: list[str] | None = None) -> Prediction:
        """Predict raw inputs ``x`` (see the module docstring for the convention): N x C x H x W
        (or N x H x W grayscale, or one input) uint8 pixels or scaled floats, or N x features."""
        x = self.inputs(x)
        self.model.eval()
        out = torch.cat([self.model(x[i:i + chunk]) for i in range(0, len(x), chunk)]) if len(x) else \
            self.model(x)
        return _prediction(out.float().cpu(), self.task, self.classes, names)

    def read_images(self, paths: str | os.PathLike | Iterable[str | os.PathLike]) -> tuple[Tensor, list[str]]:
        """Image files (a file, a folder searched recursively, or a list of them) as one uint8
        N x C x H x W tensor in the data set's shape: grayscale for 1 channel, RGB for 3, resized
        (bilinear) to the data set's size when it differs."""
        from PIL import Image
        import numpy as np

        files = image_files(paths)
        if len(self.raw_shape) != 3:
            raise ValueError(f"image files need a run on image data; {self.data_name} is not")
        channels, h, w = self.raw_shape
        mode = {1: "L", 3: "RGB"}.get(channels)
        if mode is None:
            raise ValueError(f"cannot read images as {channels} channels")
        arrays = []
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert(mode)
                    if im.size != (w, h):
                        im = im.resize((w, h), Image.BILINEAR)
                    a = np.asarray(im, dtype=np.uint8)
            except OSError as e:
                raise ValueError(f"{f}: not a readable image ({e})") from None
            arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(arrays)).contiguous(), [str(f) for f in files]

    def predict_files(self, paths) -> Prediction:
        """Predict image files (a file, a folder, or a list): see ``read_images``."""
        x, names = self.read_images(paths)
        return self.predict(x, names=names)

    # --- evaluation ----------------------------------------------------------------------------

    def data(self, root: str | os.PathLike | None = None):
        """The run's data set (``load_data(cfg.data)``, on the run's device), loaded once;
        ``root`` replaces ``data.root`` (e.g. the data is elsewhere on this machine)."""
        if self._bundle is None or root is not None:
            from omegaconf import OmegaConf

            from nnbasics.data.datasets import load_data

            data_cfg = OmegaConf.to_container(self.cfg.data, resolve=True)
            if root is not None:
                data_cfg["root"] = str(root)
            self._bundle = load_data(data_cfg, self.device)
        return self._bundle

    def evaluate(self, split: str = "val", *, root: str | os.PathLike | None = None) -> dict[str, float]:
        """Mean loss and accuracy on ``split`` (train | val | test) of the data the run's config
        names, with the run's preprocessing: ``engine.train.evaluate``, as at the end of training
        (so val gives the run's recorded val/acc). The test split is read here, after training."""
        from nnbasics.data.datasets import Split
        from nnbasics.engine.train import evaluate
        from nnbasics.nn.losses import build_loss

        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, not {split!r}")
        bundle = self.data(root)
        raw = bundle.load_test() if split == "test" else getattr(bundle, split)
        data = Split(self.preprocessor.transform(raw.x), raw.y)
        return evaluate(self.model, data, build_loss(self.cfg.loss), self.task)


def _data_spec(data_cfg) -> tuple[tuple[int, ...], str, int, tuple[str, ...]]:
    """(raw input shape, task, outputs, class names) of the run's data set, without reading an
    image set's files (a run predicts without its training data on the machine)."""
    from nnbasics.data import datasets

    name = str(data_cfg.name)
    if name in datasets.IMAGE_SIZES and name in datasets.NORMALIZATION:
        size, channels = datasets.IMAGE_SIZES[name], len(datasets.NORMALIZATION[name][0])
        task, out = datasets.task_of(str(data_cfg.get("target", "label")), 10)
        classes = datasets.CIFAR10_CLASSES if name == "cifar10" else tuple(str(i) for i in range(10))
        return (channels, size, size), task, out, classes
    from omegaconf import OmegaConf

    bundle = datasets.load_data(OmegaConf.to_container(data_cfg, resolve=True), "cpu")  # toy sets: generated
    return tuple(bundle.in_shape), bundle.task, bundle.out_features, tuple(bundle.classes)


def _find_run(path: str | os.PathLike, checkpoint: str | os.PathLike) -> tuple[Path, Path]:
    """(run directory, checkpoint file) of ``path`` (a run directory, or a checkpoint file in one)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise RunError(f"{path} does not exist (give a run directory, e.g. outputs/runs/<date>/<time>_<id>, "
                       f"or its checkpoint.pt)")
    if path.is_file():
        run_dir, ckpt = path.parent, path
    else:
        run_dir = path
        ckpt = Path(checkpoint).expanduser()
        if not ckpt.is_absolute() and not ckpt.exists():
            ckpt = run_dir / ckpt
    if not (run_dir / "config.yaml").exists():
        if run_dir.is_dir():
            from nnbasics.engine.sweep import find_job_dirs

            jobs = [d for d in find_job_dirs(run_dir) if d != run_dir]
            if jobs:
                raise RunError(f"{run_dir} is not a run directory but holds {len(jobs)} runs (a sweep?): give one "
                               f"of its run directories (e.g. {jobs[0]}), or read them all with load_sweep")
        raise RunError(f"{run_dir} is not a run directory: it has no config.yaml (the resolved config "
                       f"every run writes when it starts)")
    if not ckpt.exists():
        raise RunError(f"{run_dir} has no {ckpt.name}: the run was trained with checkpoint=false or stopped "
                       f"before its first epoch ended; nothing to load the weights from")
    if not (run_dir / "preprocess.pt").exists():
        raise RunError(f"{run_dir} has no preprocess.pt (the fitted preprocessing statistics); cannot "
                       f"prepare inputs the way the run did")
    return run_dir, ckpt


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:
        raise RunError(f"{path} is unreadable ({e})") from None


def load_run(path: str | os.PathLike, *, checkpoint: str | os.PathLike = "checkpoint.pt",
             device: str | torch.device = "cpu") -> Run:
    """Load a trained run: ``path`` is a run directory (its ``checkpoint``: ``checkpoint.pt``, or
    another file name in it such as ``best.pt``, or a path) or a checkpoint file inside one. The
    model is put in eval mode on ``device``. Raises ``RunError`` naming what is missing."""
    from omegaconf import OmegaConf

    from nnbasics.data.preprocessing import build_preprocessor
    from nnbasics.nn.models import build_model

    run_dir, ckpt = _find_run(path, checkpoint)
    device = torch.device(device)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    try:
        state = torch.load(ckpt, map_location=device, weights_only=True)
        pre_state = torch.load(run_dir / "preprocess.pt", map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: say which
        raise RunError(f"cannot read {ckpt.name} / preprocess.pt in {run_dir}: {e}") from None
    weights = state.get("model") if isinstance(state, Mapping) and "model" in state else state
    if not isinstance(weights, Mapping):
        raise RunError(f"{ckpt} holds no model weights (expected a checkpoint dict with a 'model' state_dict)")

    preprocessor = build_preprocessor(cfg.preprocess).load_state_dict(pre_state)
    raw_shape, task, out_features, classes = _data_spec(cfg.data)
    in_shape = tuple(preprocessor.transform(torch.zeros(1, *raw_shape, device=device)).shape[1:])
    with torch.random.fork_rng(devices=[]):  # the init (overwritten below) leaves the caller's RNG alone
        torch.manual_seed(int(cfg.get("seed", 0)))
        model = build_model(cfg, in_shape, out_features)
    model = model.to(device)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise RunError(f"{ckpt} does not fit the model its config.yaml describes: {str(e).splitlines()[0]}") from None
    model.eval()
    history = _read_json(run_dir / "history.json").get("epochs", [])
    info = {k: state[k] for k in ("epoch", "step") if isinstance(state, Mapping) and k in state}
    return Run(run_dir, cfg, model, preprocessor, _read_json(run_dir / "metrics.json"), history, task, classes,
               tuple(raw_shape), device, ckpt, info)


def image_files(paths) -> list[Path]:
    """The image files of ``paths``: a file, a folder (searched recursively, sorted), or a list."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise RunError(f"{p} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise RunError(f"{p} does not exist")
    return files


# ----------------------------------------------------------------------------------------------
# A sweep as records
# ----------------------------------------------------------------------------------------------


def _value(text: str):
    """An override as written on the command line, as a number when it is one."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def load_sweep(path: str | os.PathLike, *, as_frame: bool = False):
    """One record per run of a sweep directory (Hydra multirun; also any folder of run
    directories): ``run_dir``, ``job`` (its path in the sweep), ``status`` (completed | diverged |
    failed | missing), ``overrides`` (key -> value as written on the command line) and the final
    metrics of metrics.json (``val/acc``, ``test/acc``, ``seed``, ...). The runs are read by the
    same reader as ``nnbasics-summary``.

    ``as_frame=True``: a ``pandas.DataFrame``, one row per run, one column per override (numbers
    as numbers) and per metric."""
    from nnbasics.engine.sweep import find_job_dirs, read_job

    root = Path(path).expanduser()
    if not root.is_dir():
        raise RunError(f"{root} is not a directory (give a sweep directory, e.g. outputs/multirun/<date>/<time>_<id>)")
    records = []
    for d in find_job_dirs(root):
        job = read_job(d)
        records.append({"run_dir": str(d), "job": str(d.relative_to(root)) if d != root else ".",
                        "status": job.status, "overrides": dict(job.overrides), **job.metrics})
    if not records:
        raise RunError(f"no runs under {root} (a run has .hydra/overrides.yaml or metrics.json)")
    if not as_frame:
        return records
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("load_sweep(..., as_frame=True) needs pandas: pip install pandas "
                          "(or pip install 'nnbasics[pandas]')") from None
    rows = []
    for r in records:
        row = {k: v for k, v in r.items() if k != "overrides"}
        for k, v in r["overrides"].items():
            row.setdefault(k, _value(v))
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["load_run", "load_sweep", "Run", "Prediction", "RunError", "image_files"]
