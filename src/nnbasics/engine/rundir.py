"""The one run-directory writer: every way of training (a single run, a population member, the
suite, a search) leaves the same self-describing folder through ``RunDir``:

    config.yaml        the resolved config
    metrics.json       final metrics and status (completed | diverged | failed)
    history.json       per-epoch metrics and the per-step loss curve (with wall time)
    tb/                TensorBoard events (scalars train/loss, train/acc, train/lr, val/loss, val/acc; hparams)
    checkpoint.pt      the last checkpoint (model, optimizer, RNG states, data order position)
    preprocess.pt      the fitted preprocessing statistics
    git.txt            the git revision of the code

    .lock              while a run is live: its exclusive lock (``fcntl.flock``), holding its pid

Rules: every file is written atomically (a reader never sees half a file); a directory that holds
a finished run (metrics.json with status completed or diverged) is never written into again, and
nothing is created in it; one process at a time runs in a directory (the lock, taken by ``open``
and released by ``finish``, ``fail`` or ``close``); a checkpoint is only ever resumed with the
config that made it, with as many torch threads, and only when its checksum matches its contents.
A write that fails (no space left on device, ...) raises ``WriteError`` naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import math
import os
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from nnbasics.config import select
from nnbasics.errors import ConfigError, NNBasicsError

# Ordered as TensorBoard's HPARAMS tab shows them (it ticks the first five columns).
FINAL_KEYS = ("val/acc", "val/loss", "test/acc", "train/loss", "train/acc", "test/loss")
SCALAR_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "lr")
# TensorBoard's SCALARS tab groups tags by their first component, sorts the groups by name and
# opens the first two: the learning curves are ``train/...`` (the learning rate too: ``train/lr``)
# and ``val/...``, and every other group sorts after ``val``: the final evaluation (the HPARAMS
# metric columns) under ``whole/<split>/<metric>``, the monitor's diagnostics under ``watch/``.
TB_TAGS = {"lr": "train/lr"}
FINAL_GROUP = "whole"  # the final evaluation over each whole split; sorts after train and val
# The HPARAMS columns every run has, named by their config key (a group shows its option's name);
# the keys of the run's own overrides come beside them, and its override string as ``overrides``.
HPARAM_KEYS = ("data", "model", "model.width", "model.depth", "activation", "init", "loss", "optimizer",
               "optimizer.lr", "batch_size", "epochs", "scheduler", "regularization", "seed")
# Overrides that do not change what a run computes: not HPARAMS columns (still in ``overrides``).
NOT_HPARAMS = frozenset({"progress", "resume", "threads", "print_config", "profile"})
# Keys that may change between a run and its resume (they do not change the numbers).
RESUME_MAY_DIFFER = {"resume", "progress", "eval_test", "threads"}
FINISHED = ("completed", "diverged")
CHECKPOINT_KEYS = {"model", "optimizer", "generator", "torch_rng", "epoch", "step", "history", "curve", "elapsed_s"}


def git_revision() -> str:
    """The commit of the code that ran, with '-dirty' when the tree had changes."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


class RunRefused(ConfigError):
    """This run cannot use that directory: it holds a finished run, another process is running in
    it, it cannot be created or written, or its checkpoint cannot be resumed. Nothing was written
    into it (so a caller never records a failure there)."""


class WriteError(NNBasicsError, OSError):
    """A file of the run directory could not be written (no space left on device, ...)."""

    def __init__(self, path: Path, error: OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            what = (f"no space left on device while writing {path}: free space on that disk (or start the run "
                    f"on another one with hydra.run.dir=...)")
        else:
            what = f"cannot write {path}: {error.strerror or error}; check that folder and its disk"
        super().__init__(what)
        self.path, self.errno = path, error.errno


def _write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (a temporary name, then a rename); on failure the
    temporary file is removed and a ``WriteError`` names the file."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise WriteError(path, e) from None


def write_text(path: Path, text: str) -> None:
    """Write text atomically (``WriteError`` naming the file when it cannot be written)."""
    _write_bytes(Path(path), text.encode())


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: a reader never sees a half-written file."""
    _write_bytes(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=float).encode())


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` atomically. Serialized in memory first, so a full disk is an ``OSError`` of
    the file write (ENOSPC, named) rather than torch's "basic_ios::clear: iostream error"."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    _write_bytes(Path(path), buf.getbuffer())


def state_digest(state: Any) -> str:
    """A SHA-256 over a checkpoint's contents (every tensor's dtype, shape and bytes, every other
    value's repr, keys in sorted order): one flipped bit in a weight changes it."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, Mapping):
            h.update(b"{")
            for k in sorted(x, key=str):
                h.update(repr(k).encode())
                feed(x[k])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        else:
            h.update(repr(x).encode())

    feed({k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


# --- the run directory's lock --------------------------------------------------------------------

LOCK_NAME = ".lock"
_HELD: dict[Path, int] = {}  # run directory (resolved) -> the fd of the lock this process holds


def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid else "pid unknown"


def lock_holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock ("pid N"), or None when no other process does (nothing created)."""
    lock = Path(run_dir) / LOCK_NAME
    if Path(run_dir).resolve() in _HELD:
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _holder(lock)
    finally:
        os.close(fd)  # also drops a lock taken just to look
    return None


def acquire_lock(run_dir: Path, key: str = "run dir") -> int | None:
    """Take ``run_dir``'s exclusive lock and write this pid into it: the fd, or None when this
    process already holds it. Raises RunRefused naming the holder when another process does."""
    run_dir = Path(run_dir)
    resolved = run_dir.resolve()
    if resolved in _HELD:
        return None
    lock = run_dir / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunRefused(key, str(run_dir), f"cannot create its lock file ({e.strerror}); "
                             f"choose a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunRefused(key, str(run_dir), f"another process ({_holder(lock)}) is running in it right now; "
                             f"wait until it ends, or start this run in a fresh directory") from None
        try:  # the holder before us may have removed the file between our open and our lock
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # the pid is for the message only
    _HELD[resolved] = fd
    return fd


def release_lock(resolved: Path, fd: int) -> None:
    """Release a lock that ``acquire_lock`` gave (remove the file first, then unlock)."""
    if _HELD.get(resolved) != fd:
        return
    del _HELD[resolved]
    try:
        os.unlink(resolved / LOCK_NAME)
    except OSError:
        pass
    os.close(fd)


def _parse_overrides(overrides) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def run_overrides(run_dir: str | os.PathLike) -> tuple[list[str] | None, set[str], set[str]]:
    """What Hydra says about the run in ``run_dir``: (its overrides, or None when unknown; the keys
    its sweep varies; the swept keys with a float among their values). From the running Hydra job
    when ``run_dir`` is its folder (``hydra.overrides.task``), else from ``<run_dir>/.hydra/
    overrides.yaml``; the swept keys from the sweep's ``multirun.yaml`` (the command line's
    ``key=a,b``, ``range(...)``, ...) and ``hydra.sweeper.params``."""
    run_dir = Path(run_dir)
    overrides, sweep_dir, params = None, None, {}
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized():
            hc = HydraConfig.get()
            out = hc.runtime.get("output_dir")
            if out and Path(out).resolve() == run_dir.resolve():
                overrides = list(hc.overrides.task)
                if hc.mode == RunMode.MULTIRUN:
                    sweep_dir = Path(hc.sweep.dir)
                    params = dict(hc.sweeper.get("params") or {})
    except ImportError:
        return None, set(), set()
    if overrides is None:
        saved = run_dir / ".hydra" / "overrides.yaml"
        try:
            overrides = [str(o) for o in OmegaConf.load(saved)] if saved.exists() else None
        except Exception:  # noqa: BLE001 - an unreadable file: the overrides are unknown
            overrides = None
        sweep_dir = run_dir.parent
    swept, floats = set(), set()
    try:
        sweep = [f"{k}={v}" for k, v in params.items()]
        if sweep_dir is not None and (sweep_dir / "multirun.yaml").exists():
            sweep += [str(o) for o in OmegaConf.select(OmegaConf.load(sweep_dir / "multirun.yaml"),
                                                        "hydra.overrides.task", default=[])]
        for o in _parse_overrides(sweep):
            if o.is_sweep_override():
                swept.add(o.key_or_group)
                if any(isinstance(v, float) for v in o.sweep_iterator()):
                    floats.add(o.key_or_group)
    except Exception:  # noqa: BLE001 - a sweep we cannot read: no key is marked as swept
        swept, floats = set(), set()
    return overrides, swept, floats


def _shown(value: Any, as_float: bool = False) -> Any:
    """An HPARAMS value: floats stay numbers (interval filters, numeric axes); ints, bools and
    everything else become text, since TensorBoard prints every number with five significant
    digits (a batch size of 128 as "128.00")."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return float(value) if as_float else str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return json.dumps(value, default=str).replace('"', "")


def override_keys(overrides: list[str] | None) -> dict[str, str]:
    """The config keys that ``overrides`` set (key -> the value as written), less ``hydra.*``,
    deletions and ``NOT_HPARAMS``."""
    try:
        parsed = _parse_overrides(overrides or [])
    except Exception:  # noqa: BLE001 - not Hydra's syntax: no columns from it
        return {}
    return {o.key_or_group: (o.input_line or "").split("=", 1)[-1] for o in parsed
            if not o.is_delete() and not o.key_or_group.startswith("hydra.") and o.key_or_group not in NOT_HPARAMS}


def hparams_of(cfg: Mapping, overrides: list[str] | None = None, swept: set[str] = frozenset(),
               floats: set[str] = frozenset()) -> dict[str, Any]:
    """The run's HPARAMS row, column name -> value: the keys of its ``overrides`` (the swept ones
    first), then ``HPARAM_KEYS``, then ``overrides`` (the override string, swept ones first, when known). A column is
    a config key (``optimizer.lr``; a group's key shows its option's name, ``optimizer`` ->
    ``adam``), its value the resolved config's. See ``_shown`` for the types."""
    chosen = override_keys(overrides)  # key -> the override's value, for keys the config does not hold
    keys = [k for k in chosen if k in swept] + [k for k in chosen if k not in swept]
    out: dict[str, Any] = {}
    for key in keys + [k for k in HPARAM_KEYS if k not in keys]:
        value = select(cfg, key)
        if isinstance(value, Mapping):
            value = value.get("name", value)
        if value is None:
            value = chosen.get(key)
        if value is not None:
            out[key] = _shown(value, as_float=key in floats)
    if overrides is not None:
        first = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept]  # what tells the jobs apart
        out["overrides"] = " ".join(first + [o for o in overrides if o not in first]) if overrides else "(none)"
    return out


def _dictconfig(cfg: Mapping) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))


def write_hparams(writer, hparams: dict, metrics: dict, step: int = 0, swept: set[str] | None = None) -> None:
    """Write hparams into the run's own event file (not a sub-run), so a multirun's runs line up
    in one HPARAMS table; the metric columns are the final evaluation's scalars, logged under
    their own tags ``whole/<split>/<metric>`` (not under the running ``train/loss`` curve, where the
    final full-split value would draw a false drop at the last step).

    TensorBoard shows the experiment summary of one run for the whole logdir, sorts its columns
    by ``differs`` (true first), then by name, and ticks the first five: the ``swept`` keys (a
    sweep's varied keys; a single run's overrides) and ``overrides`` are marked ``differs``, so a
    sweep opens on the keys it varies. Without ``swept``: every key but ``HPARAM_KEYS``."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
    metrics = {f"{FINAL_GROUP}/{k}": v for k, v in metrics.items()}
    exp, ssi, sei = hparams_summary(hparams, metrics)
    if swept is None:
        swept = set(hparams) - set(HPARAM_KEYS)
    swept = set(swept) | {"overrides"}
    value = exp.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in swept
    value.metadata.plugin_data.content = data.SerializeToString()
    writer.file_writer.add_summary(exp)
    writer.file_writer.add_summary(ssi)
    writer.file_writer.add_summary(sei)
    for k, v in metrics.items():
        writer.add_scalar(k, v, step)  # at the last step: a step going back would truncate curves


def checkpoint_state(*, model: Mapping, optimizer: Mapping, generator: torch.Tensor, torch_rng: torch.Tensor,
                     cuda_rng: torch.Tensor | None, epoch: int, step: int, history: list, curve: list,
                     elapsed_s: float, start_loss: float = math.nan) -> dict[str, Any]:
    """The checkpoint layout (``checkpoint.pt``): everything a resume needs to continue bit for bit."""
    return {"model": model, "optimizer": optimizer, "generator": generator, "torch_rng": torch_rng,
            "cuda_rng": cuda_rng, "epoch": epoch, "step": step, "history": json.dumps(history),
            "curve": json.dumps(curve), "elapsed_s": elapsed_s, "start_loss": start_loss}


class RunDir:
    """A run's folder and everything written into it. ``key`` names the folder in messages (the
    command line's ``hydra.run.dir``, ``resume``; "run dir" for a library call)."""

    def __init__(self, path: str | os.PathLike, key: str = "run dir"):
        self.path = Path(path)
        self.key = key
        self._writer = None
        self._digest: str | None = None
        self._release = None  # set while this RunDir holds the directory's lock

    # --- before the run ------------------------------------------------------------------------

    def open(self, cfg: Mapping) -> dict | None:
        """Create the folder and take its lock, or find the checkpoint to resume from (returned,
        else None). Refuses (``RunRefused``, nothing created or written) a folder that holds a
        finished run, one another process is running in, one that cannot be created or written,
        and a checkpoint that is damaged or was made with another config or thread count."""
        if select(cfg, "resume"):
            self.key = "resume"
        self._refuse_finished()  # before anything is created
        self._make()
        fd = acquire_lock(self.path, self.key)
        if fd is not None:
            self._release = weakref.finalize(self, release_lock, self.path.resolve(), fd)
        try:
            self._refuse_finished()  # again, under the lock: its last holder may have finished it
            self._digest = config_digest(cfg)
            return self._checkpoint(cfg)
        except BaseException:
            self.release()
            raise

    def check(self, cfg: Mapping) -> None:
        """``open``'s refusals without creating or locking anything (a pre-flight check)."""
        if select(cfg, "resume"):
            self.key = "resume"
        self._refuse_finished()
        p = self.path
        if p.exists() and not p.is_dir():
            raise RunRefused(self.key, str(p), "that is a file, not a folder; choose a folder")
        if p.is_dir():
            holder = lock_holder(p)
            if holder is not None:
                raise RunRefused(self.key, str(p), f"another process ({holder}) is running in it right now; "
                                 f"wait until it ends, or start this run in a fresh directory")
            self._checkpoint(cfg)
        else:
            self._creatable()

    def _refuse_finished(self) -> None:
        metrics = self.path / "metrics.json"
        if not metrics.exists():
            return
        try:
            status = json.loads(metrics.read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            raise RunRefused(self.key, str(self.path), f"its {metrics.name} is damaged (not a JSON record); if "
                             f"the run there did not finish, delete {metrics} and resume it, else start a new "
                             f"run in a fresh directory") from None
        if status in FINISHED:
            fresh = self.key if self.key.startswith("hydra.") else "hydra.run.dir"
            raise RunRefused(self.key, str(self.path), f"it already holds a {status} run; start a new run "
                             f"(a fresh {fresh}) instead of overwriting it")

    def _creatable(self) -> None:
        """Refuse a folder that cannot be made: walk up to the first existing ancestor."""
        parent = self.path.absolute()
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise RunRefused(self.key, str(self.path), f"{parent} is a file, so no folder can be made under it; "
                             f"choose another folder")
        if not os.access(parent, os.W_OK | os.X_OK) or _read_only(parent):
            raise RunRefused(self.key, str(self.path), f"{parent} is not writable; choose a folder you can write to")
        try:  # some file systems refuse what os.access allows (/proc, /sys): try, and leave nothing
            os.rmdir(tempfile.mkdtemp(prefix=".nnbasics-check-", dir=parent))
        except OSError as e:
            raise RunRefused(self.key, str(self.path), f"no folder can be made under {parent} ({e.strerror}); "
                             f"choose a folder you can write to") from None

    def _make(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise RunRefused(self.key, str(p), "that is a file, not a folder; choose a folder")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunRefused(self.key, str(p), f"it cannot be created ({e.strerror}); choose a folder you can "
                             f"write to") from None
        if not os.access(p, os.W_OK | os.X_OK) or _read_only(p):
            raise RunRefused(self.key, str(p), "it is not writable; choose a folder you can write to")

    def _checkpoint(self, cfg: Mapping) -> dict | None:
        ckpt = self.path / "checkpoint.pt"
        if not ckpt.exists():
            return None
        damaged = (f"{ckpt} is damaged and cannot be resumed; start a new run in a fresh directory "
                   f"(or delete the checkpoint to train this run from the start)")
        saved = self.path / "config.yaml"
        if saved.exists():
            try:
                before = OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
            except Exception:  # noqa: BLE001 - any unreadable config.yaml
                raise RunRefused(self.key, str(self.path), f"its config.yaml is damaged, so its checkpoint cannot "
                                 f"be matched to this config; start a new run in a fresh directory") from None
            now = OmegaConf.to_container(_dictconfig(cfg), resolve=True)
            if isinstance(before, dict):
                diff = sorted(k for k in set(before) | set(now)
                              if k not in RESUME_MAY_DIFFER and before.get(k) != now.get(k))
                if diff:
                    raise RunRefused(self.key, str(self.path), f"the checkpoint there was made with a different "
                                     f"config (differs in: {', '.join(diff)}); resume with the same config or "
                                     f"start a new run")
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - truncated, empty, random bytes, a folder: all one answer
            raise RunRefused(self.key, str(self.path), f"{damaged} ({type(e).__name__})") from None
        if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
            raise RunRefused(self.key, str(self.path), f"{damaged} (entries missing)")
        if "checksum" in state and state["checksum"] != state_digest(state):
            raise RunRefused(self.key, str(self.path), f"{ckpt} fails its checksum: its contents changed after "
                             f"it was written (a damaged disk or copy); it cannot be resumed. Start a new run in "
                             f"a fresh directory (or delete the checkpoint to train this run from the start)")
        if state.get("config_digest") not in (None, config_digest(cfg)):
            raise RunRefused(self.key, str(self.path), "the checkpoint there was made with a different config; "
                             "resume with the same config or start a new run")
        threads = int(cfg.get("threads") or 0) or torch.get_num_threads()
        if state.get("threads") not in (None, threads):
            raise RunRefused("threads", cfg.get("threads"), f"the checkpoint in {self.path} was made with "
                              f"{state['threads']} torch threads and this run would use {threads}; a resume "
                              f"continues bit for bit only with as many: resume with threads={state['threads']}")
        return state

    def release(self) -> None:
        """Release the directory's lock (when this RunDir took it)."""
        if self._release is not None:
            self._release()
            self._release = None

    def start(self, cfg: Mapping, preprocess_state: Mapping, texts: Mapping[str, str] | None = None,
              purge_step: int | None = None) -> None:
        """Write what describes the run (config, code revision, preprocessing) and open TensorBoard;
        ``texts`` (tag -> text: model summary, init audit) go to its TEXT tab."""
        self._digest = config_digest(cfg)
        _write_hydra_files(self.path, cfg)
        _write_bytes(self.path / "config.yaml", OmegaConf.to_yaml(_dictconfig(cfg), resolve=True).encode())
        _write_bytes(self.path / "git.txt", (git_revision() + "\n").encode())
        save_atomic(dict(preprocess_state), self.path / "preprocess.pt")
        for tag, text in (texts or {}).items():
            self.writer(purge_step).add_text(tag, "<pre>" + text + "</pre>", 0)

    def writer(self, purge_step: int | None = None):
        """The run's TensorBoard writer (``tb/``), opened on first use."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path / "tb"), purge_step=purge_step)
        return self._writer

    # --- during the run ------------------------------------------------------------------------

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One epoch's scalars at its last step (tags: ``TB_TAGS``)."""
        for k in SCALAR_KEYS:
            if k in row:
                self.writer().add_scalar(TB_TAGS.get(k, k), row[k], row["step"])

    def log_batch_loss(self, step: int, value: float) -> None:
        """The training loss of one mini-batch, every few updates (``train/batch_loss``): a curve
        with points inside an epoch, beside the epoch's mean ``train/loss``."""
        self.writer().add_scalar("train/batch_loss", value, step)

    def save_best(self, state: Mapping[str, Any]) -> None:
        """``best.pt``: the model of the best epoch so far (``checkpoint: best | both``), with its
        epoch, step, metric and value, and a checksum."""
        state = dict(state)
        state["checksum"] = state_digest(state)
        save_atomic(state, self.path / "best.pt")

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """The checkpoint, with what a resume checks: the thread count, the config's digest and
        a checksum over everything in it."""
        state = {**state, "threads": torch.get_num_threads(), "config_digest": self._digest}
        state["checksum"] = state_digest(state)
        save_atomic(state, self.path / "checkpoint.pt")

    # --- after the run -------------------------------------------------------------------------

    def finish(self, cfg: Mapping, final: Mapping[str, Any], history: list, curve: list) -> None:
        """The final hparams, history.json and, last, metrics.json (a run is finished once it is
        there); then the lock is released."""
        try:
            overrides, swept, floats = run_overrides(self.path)
            write_hparams(self.writer(), hparams_of(cfg, overrides, swept, floats),
                          {k: final[k] for k in FINAL_KEYS if k in final}, final.get("steps", 0),
                          swept=swept or set(override_keys(overrides)))
            self._close_writer()
            write_json(self.path / "history.json", {"epochs": history, "curve": curve,
                                                    "curve_columns": ["step", "time_s", "train/loss"]})
            write_json(self.path / "metrics.json", dict(final))
        finally:
            self.release()

    def fail(self, record: Mapping[str, Any]) -> None:
        """Record a run that could not finish (``status: failed``), as far as the disk allows."""
        try:
            self._close_writer()
            write_json(self.path / "metrics.json", {"status": "failed", **record})
        except (OSError, RuntimeError):  # e.g. the disk that is full: the error itself says so
            pass
        finally:
            self.release()

    def _close_writer(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def close(self) -> None:
        """Close TensorBoard's writer and release the lock."""
        try:
            self._close_writer()
        finally:
            self.release()


def _write_hydra_files(run_dir: Path, cfg: Mapping) -> None:
    """Inside a Hydra job whose folder this is, with ``hydra.output_subdir: null`` (conf/train.yaml:
    Hydra writes nothing before the checks), the ``.hydra/`` files Hydra would have written:
    config.yaml, hydra.yaml, overrides.yaml. Written here, when the run starts, for every launcher
    (``nnbasics-train`` writes them already, right after taking the lock; then nothing is done)."""
    if (run_dir / ".hydra").exists():
        return
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.instance().cfg
    hc = hydra_cfg.hydra
    if hc.get("output_subdir") is not None or not hc.runtime.get("output_dir"):
        return
    if Path(hc.runtime.output_dir).resolve() != run_dir.resolve():
        return
    out = run_dir / ".hydra"
    out.mkdir(exist_ok=True)
    _write_bytes(out / "config.yaml", OmegaConf.to_yaml(_dictconfig(cfg)).encode())
    _write_bytes(out / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg).encode())
    _write_bytes(out / "overrides.yaml", OmegaConf.to_yaml(hc.overrides.task).encode())


def config_digest(cfg: Mapping) -> str:
    """A digest of the resolved config, less the keys a resume may change (kept in checkpoints)."""
    body = OmegaConf.to_container(_dictconfig(cfg), resolve=True)
    body = {k: v for k, v in body.items() if k not in RESUME_MAY_DIFFER and k != "hydra"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _read_only(path: Path) -> bool:
    """Whether ``path`` is on a read-only file system (os.access says writable to root there)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


__all__ = ["RunDir", "RunRefused", "WriteError", "checkpoint_state", "git_revision", "write_json", "write_text", "save_atomic",
           "hparams_of", "override_keys", "run_overrides", "write_hparams", "state_digest", "config_digest", "acquire_lock", "release_lock",
           "lock_holder", "FINAL_KEYS"]
