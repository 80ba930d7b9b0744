"""O6: start the batch at 512 and halve on out-of-memory (``batch_size=auto``).

``batch_size=auto`` (nnbasics.engine.batch_size.find_batch_size, called by train.py) probes one forward
and backward pass at 512 samples, halves on out-of-memory, logs every attempt and the size used,
and records it as ``batch_size`` in metrics.json. This experiment gives it a model that really
does not fit at 512 on the device and checks that the run halves until a step fits and then
trains to a sane accuracy, the same run as a fixed batch of the size found.

The device is made small for real, never simulated. The training runs in a child process (the
same Python, ``python experiments/o6_oom_halving.py <spec.json>``) that imports everything, loads
the data once (handed to every run: a device that already holds its data) and makes one tiny
warm-up run (one-time allocations: lazy imports, thread pools, BLAS buffers). Every later run is
a ``fork()`` of that process image, so measurements and capped runs start from the same state.

- CPU: two uncapped forks measure what a real training run (fixed batch, two updates, final
  evaluation) adds to the process's virtual size at batch T and 2T (VmPeak of the fork minus its
  VmSize at the fork). Each capped run is then a fork whose address space is limited with
  ``resource.setrlimit(RLIMIT_AS)`` to the process size + the midpoint of the two needs: a step
  of T fits, one of 2T = 512 does not, and the failure is torch's own allocator error
  ("DefaultCPUAllocator: can't allocate memory ... Error code 12"). RLIMIT_AS counts virtual
  memory (importing torch alone maps ~3 GB), hence measured, never a constant. glibc is told to
  serve large blocks by mmap (MALLOC_MMAP_THRESHOLD_) from one arena (MALLOC_ARENA_MAX=1), so the
  virtual size follows the tensors that are alive rather than heap fragmentation. The child runs
  torch on one thread (a fork of a process whose OpenMP pool is running can hang).
- CUDA: no fork; the same measurement with ``torch.cuda.max_memory_reserved`` and the cap as
  ``torch.cuda.set_per_process_memory_fraction`` (not yet run on a GPU).

Under the cap, per seed: one run with ``batch_size=auto`` and one with the batch fixed at the size
it found (same seed: the probe leaves no trace, so the two should agree bit for bit); then one
run with the batch fixed at 512, which must fail with out-of-memory (the model really does not
fit at 512). Model: a 16-layer MLP with batch norm (memory per sample grows with width x depth,
while an evaluation pass in chunks of 1024 (train.evaluate) holds a few width-wide tensors of one
chunk, so the training step and not the evaluation is what the cap bites; with evaluation chunks
of 4096 and batch norm's lean closed-form backward, the evaluation's peak hid the step's and the
needs at 256 and 512 differed by only 3 MB), SGD lr 0.2, cosine decay, T = 256 (one halving).
Default: MNIST, 5,000 training and 2,000 validation images, width 512, 2 epochs. Smoke: spiral,
width 256, 2 epochs, first seed only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from nnbasics.suite.context import Context, Outcome, classes_of
from nnbasics.suite.stats import INCONCLUSIVE, chance_acc, checks_verdict, fmt, md_table, mean_std, past
from nnbasics.viz.figures import new_figure

ID = "O6"
TITLE = "batch_size=auto: start at 512, halve on out-of-memory"
CLAIM = "start the batch at 512 and halve on out-of-memory until a training step fits; the run logs the size used"
REFERENCE = ("seed material (\"start at 512, halve on OOM\"); Accelerate's `find_executable_batch_size` is the "
             "nearest library pattern (start high, halve on an OOM exception, retry). No published numbers: the "
             "reference is the behaviour")

PROTOCOL = ("no published setup (the seed material's rule; Accelerate's `find_executable_batch_size` is the nearest "
            "pattern): the suite's behaviour test, a 16 x 512 MLP with batch norm (SGD 0.2, cosine, 2 epochs) on MNIST "
            "under a measured memory cap that fits a training step at batch 256 and not at 512; batch_size=auto must "
            "halve once, log the size, train, and equal a fixed batch of that size. The training-set size is not part "
            "of the protocol (default: 5,000 images, full: all 55,000)")
AT_PROTOCOL = ("default", "full")  # the behaviour under test is the same at both
SCALE_DOWN = ""

START = 512          # the size train.py's batch_size=auto starts from (find_batch_size(start=512))
EQUAL_TOL = 0.005    # auto and fixed-at-the-found-size runs agree when their val accuracies differ by at most this
FIT_AT = 256         # T: the cap is set between the measured needs of a run at T and at 2T = START (one halving)
MIN_GAP_MB = 4.0     # the measured need at 2T must exceed the need at T by this much, or the cap cannot separate them
MALLOC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
CHILD_TIMEOUT_S = 1800

ATTEMPT_OOM = re.compile(r"batch_size=auto: (\d+) ran out of memory")
ATTEMPT_OK = re.compile(r"batch_size=auto: using (\d+)")
MB = 2 ** 20


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """Per seed (``seeds``: {seed: {attempts, ooms, status, used, val_acc, fixed_status, fixed_val_acc}}),
    the behaviour the claim names; the trained runs must learn: mean val acc above chance 1/C by
    >= 2 standard errors (scale-aware, no hand-set accuracy)."""
    if numbers.get("unsupported"):
        return None, INCONCLUSIVE + numbers["unsupported"]
    checks: dict[str, bool | None] = {}
    for s, r in numbers["seeds"].items():
        att, used = r["attempts"], r["used"]
        halving = bool(att) and att[0] == START and all(b == a // 2 for a, b in zip(att, att[1:])) and att[-1] == used
        completed = r["status"] == "completed"
        checks[f"seed {s}: starts at {START} and halves ({' -> '.join(map(str, att)) or 'no attempts logged'})"] = halving
        checks[f"seed {s}: every failed attempt was a real out-of-memory ({r['ooms']}/{max(0, len(att) - 1)})"] = (
            r["ooms"] == len(att) - 1 and len(att) > 1)
        checks[f"seed {s}: ends below {START} and completes ({r['status']}, batch {used})"] = (
            completed and used is not None and used < START)
        fixed = r.get("fixed_val_acc")
        checks[f"seed {s}: fixed batch {used} gives the same val acc within {EQUAL_TOL} ({fixed})"] = (
            r.get("fixed_status") == "completed" and fixed is not None and abs(fixed - r["val_acc"]) <= EQUAL_TOL)
    accs = [r["val_acc"] if r["status"] == "completed" else float("nan") for r in numbers["seeds"].values()]
    chance = chance_acc(numbers["classes"])
    # three ways: a seed that did not complete fails (a fixed condition); above chance by 2 SE -> ok; below it by
    # 2 SE -> failed; chance inside the seed spread -> undecided
    checks[f"the runs learn: val acc {fmt(*mean_std(accs))} above chance {chance:.3f} by >= 2 standard errors"] = (
        past(accs, chance, above=True) if all(a == a for a in accs) else False)
    checks[f"fixed batch {START} under the same cap runs out of memory ({numbers['fixed512_status']})"] = (
        numbers["fixed512_status"] == "out of memory")
    return checks_verdict(checks)

def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from the run's numbers (the measured needs and headroom, the
    attempts per seed, the fixed-512 run's status; the cap kind and process size when recorded)."""
    if numbers.get("unsupported"):
        return f"At budget={budget} the capped runs could not be made: {numbers['unsupported']}"
    need_lo, need_hi = numbers.get(f"need_mb_at_{FIT_AT}"), numbers.get(f"need_mb_at_{2 * FIT_AT}")
    headroom, process, kind = numbers.get("headroom_mb"), numbers.get("process_mb"), numbers.get("cap_kind")
    text = ("The cap is " + (f"{kind}," if kind else "an address-space limit (RLIMIT_AS) on CPU, "
                             "torch.cuda.set_per_process_memory_fraction on CUDA,")
            + " set at the midpoint between two needs measured in this process")
    if need_lo is not None and need_hi is not None:
        text += (f": at budget={budget} a run needed {need_lo:.1f} MB at batch {FIT_AT} and {need_hi:.1f} MB at "
                 f"{2 * FIT_AT}" + (f" over a {process:.0f} MB process" if process is not None else "")
                 + (f", headroom {headroom:.1f} MB" if headroom is not None else "") + ".")
    else:
        text += f" (at budget={budget} the needs were not recorded)."
    text += (" Allocator behaviour (glibc arenas, thread pools, a different torch build) can move a need by a few MB "
             f"and make {FIT_AT} fail or {2 * FIT_AT} fit")
    seeds = numbers.get("seeds") or {}
    if seeds:
        text += ": here batch_size=auto tried " + "; ".join(
            f"seed {s}: {' -> '.join(map(str, r.get('attempts') or [])) or 'nothing logged'} "
            f"({r.get('status')}, batch {r.get('used')})" for s, r in seeds.items())
        gaps = [abs(r["fixed_val_acc"] - r["val_acc"]) for r in seeds.values()
                if r.get("fixed_val_acc") is not None and r.get("val_acc") is not None]
        if gaps:
            text += (", and a fixed batch of the size found gave " + ("exactly the same val acc" if max(gaps) == 0
                     else f"val acc within {max(gaps):.4f} of it"))
    text += f"; a fixed batch {START} under the same cap ended: {numbers.get('fixed512_status', 'not recorded')}."
    if kind and kind.startswith("RLIMIT"):
        text += " The CUDA path (torch.cuda.set_per_process_memory_fraction) was not exercised by this run."
    return text


def run(ctx: Context) -> Outcome:
    seeds = ctx.seeds[:1] if ctx.smoke else list(ctx.seeds)
    base = ctx.pick(
        smoke=["data=spiral", "model.width=256", "epochs=2"],
        default=["data=mnist", "data.train_size=5000", "data.val_size=2000", "model.width=512", "epochs=2"],
        full=["data=mnist", "model.width=512", "epochs=2"],
    ) + ["model=mlp", "model.depth=16", "model.norm=batch", "activation=relu", "init=he_normal", "optimizer=sgd",
         "optimizer.lr=0.2", "scheduler=cosine", "regularization=none", "batch_size=auto", "eval_every=1"]
    cfg = ctx.compose(base)
    child_dir = ctx.out_dir / "child"
    child_dir.mkdir(parents=True, exist_ok=True)
    from omegaconf import OmegaConf

    (child_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    spec = {"config": str(child_dir / "config.yaml"), "runs_dir": str(ctx.out_dir / "runs"), "fit_at": FIT_AT,
            "seeds": seeds, "start": START, "result": str(child_dir / "result.json")}
    (child_dir / "spec.json").write_text(json.dumps(spec, indent=2))

    t0 = time.perf_counter()
    log_path = child_dir / "child.log"
    with open(log_path, "w") as logf:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(child_dir / "spec.json")],
                              stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, **MALLOC_ENV},
                              timeout=CHILD_TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or not Path(spec["result"]).exists():
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"the capped child process failed (exit {proc.returncode}); its log ends:\n{tail}")
    res = json.loads(Path(spec["result"]).read_text())
    ctx.runs += len(res["runs"]) + len(res["measure"]) + 1
    ctx.train_time_s += elapsed
    ctx.log(f"child: {elapsed:.1f} s; cap {res['cap_bytes'] / MB:.0f} MB ({res['cap_kind']}), "
            f"headroom {res['headroom_bytes'] / MB:.1f} MB over {res['base_bytes'] / MB:.0f} MB")

    if res.get("unsupported"):
        numbers = {"unsupported": res["unsupported"]}
        return Outcome(f"Not run: {res['unsupported']}", *verdict(numbers), [], numbers)

    need = {int(b): v / MB for b, v in res["measure"].items()}
    rows, numbers = [], {"classes": classes_of(cfg.data), "seeds": {}}
    for s in seeds:
        auto, fixed = res["runs"][f"auto/{s}"], res["runs"].get(f"fixed/{s}")
        attempts = attempts_of(auto["log"])
        used = auto.get("batch_size")
        acc = auto.get("val/acc", float("nan"))
        same = fixed is not None and fixed["status"] == "completed" and abs(fixed["val/acc"] - acc) <= EQUAL_TOL
        exact = fixed is not None and fixed.get("val/acc") == acc and fixed.get("train/loss") == auto.get("train/loss")
        ooms = [e for e in auto.get("errors", []) if e["is_oom"]]
        rows.append([s, " -> ".join(f"{a} {'fits' if a == used else 'OOM'}" for a in attempts), used, auto["status"],
                     fmt(acc, percent=True), fmt(auto.get("test/acc", float("nan")), percent=True),
                     fmt(fixed.get("val/acc", float("nan")), percent=True) if fixed else "n/a",
                     "bit for bit" if exact else ("within tol" if same else "differs")])
        numbers["seeds"][str(s)] = {"attempts": attempts, "ooms": len(ooms), "status": auto["status"], "used": used,
                                    "val_acc": acc, "fixed_status": fixed["status"] if fixed else None,
                                    "fixed_val_acc": fixed.get("val/acc") if fixed else None}
    big = res["runs"].get("fixed512")
    numbers["fixed512_status"] = big["status"] if big else "not run"
    held, text = verdict(numbers)

    accs = [res["runs"][f"auto/{s}"].get("val/acc", float("nan")) for s in seeds]
    first_err = next((e["message"] for s in seeds for e in res["runs"][f"auto/{s}"].get("errors", [])), "")
    table = (md_table(["seed", "attempts (batch_size=auto)", "size used", "status", "val acc", "test acc",
                       "val acc, fixed batch at that size", "auto vs fixed"], rows)
             + "\n\n" + md_table(["memory", "value"], [
                 ["cap kind", res["cap_kind"]],
                 ["process size when the cap was set", f"{res['base_bytes'] / MB:.0f} MB"],
                 *[[f"measured need of a run at batch {b}", f"{v:.1f} MB"] for b, v in sorted(need.items())],
                 ["headroom under the cap (midpoint)", f"{res['headroom_bytes'] / MB:.1f} MB"],
                 [f"fixed batch {START} under the cap", (big or {}).get("status", "not run")],
             ])
             + (f"\n\nThe real error of a failed attempt: `{first_err[:300]}`" if first_err else "")
             + f"\n\nval acc over seeds (auto): {fmt(*mean_std(accs), percent=True)}. Reference: none published; "
               "the claim is the behaviour (start at 512, halve on OOM, log the size, complete).")
    fig = figure(res, need, seeds)
    figures = [ctx.save_figure(fig, "memory_and_attempts")]
    numbers.update({f"need_mb_at_{b}": v for b, v in need.items()})
    numbers["headroom_mb"] = res["headroom_bytes"] / MB
    numbers.update(process_mb=res["base_bytes"] / MB, cap_kind=res["cap_kind"])
    used_sizes = sorted({res["runs"][f"auto/{s}"].get("batch_size") for s in seeds}, key=lambda v: v or 0)
    summary = (f"attempts {' -> '.join(map(str, attempts_of(res['runs'][f'auto/{seeds[0]}']['log'])))}; used "
               f"{'/'.join(map(str, used_sizes))}; val acc {fmt(*mean_std(accs), percent=True)}; fixed {START}: "
               f"{(big or {}).get('status', 'not run')}")
    return Outcome(table, held, text, figures, numbers, summary=summary)


def attempts_of(lines: list[str]) -> list[int]:
    """The batch sizes find_batch_size tried, in order, from its log lines."""
    out = []
    for line in lines:
        m = ATTEMPT_OOM.search(line) or ATTEMPT_OK.search(line)
        if m:
            out.append(int(m.group(1)))
    return out


def figure(res: dict, need: dict, seeds: list[int]):
    fig = new_figure(11, 4)
    ax = fig.add_subplot(1, 2, 1)
    (b1, n1), (b2, n2) = sorted(need.items())
    slope = (n2 - n1) / (b2 - b1)
    xs = [8, 16, 32, 64, 128, 256, 512]
    ax.plot(xs, [n1 + slope * (x - b1) for x in xs], ":", color="gray", label="need, extrapolated linearly")
    ax.plot([b1, b2], [n1, n2], "o", color="black", label="need, measured (fixed-batch run)")
    ax.axhline(res["headroom_bytes"] / MB, color="tab:red", label="cap (headroom over the process)")
    auto = res["runs"][f"auto/{seeds[0]}"]
    used = auto.get("batch_size")
    for a in attempts_of(auto["log"]):
        ax.plot([a], [n1 + slope * (a - b1)], "x" if a != used else "s", ms=10,
                color="tab:red" if a != used else "tab:green")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size (x: attempt ran out of memory, square: used)")
    ax.set_ylabel("memory over the process at the cap (MB)")
    ax.legend(fontsize=8)
    ax.set_title("O6: the cap and the attempts (seed %d)" % seeds[0])
    ax2 = fig.add_subplot(1, 2, 2)
    for key, style in ((f"auto/{seeds[0]}", "-"), (f"fixed/{seeds[0]}", "--")):
        r = res["runs"].get(key)
        if r and r.get("curve"):
            ax2.plot([c[0] for c in r["curve"]], [c[2] for c in r["curve"]], style,
                     label=f"{key.split('/')[0]} (batch {r.get('batch_size')})")
    ax2.set_xlabel("update")
    ax2.set_ylabel("mini-batch loss")
    ax2.legend()
    ax2.set_title("training under the cap: auto vs fixed")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# The child process: measure, cap, train (python experiments/o6_oom_halving.py <spec.json>)
# ----------------------------------------------------------------------------------------------


def _status() -> dict[str, int]:
    """VmSize, VmPeak, VmRSS and VmHWM of this process in bytes (Linux /proc)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmSize", "VmPeak", "VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _in_fork(fn, limit: int | None = None) -> dict:
    """``fn()`` in a forked copy of this process, its address space capped at ``limit`` bytes
    (RLIMIT_AS) when given. Returns fn's dict plus ``vm_need_bytes``: the copy's peak virtual
    size over its size at the fork (Linux starts a forked process's VmPeak at its VmSize). Every
    call starts from the same process image, so a measurement and a capped run see the same state."""
    import resource
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="o6-", suffix=".json")
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the copy: never returns
        code = 0
        try:
            start = _status()["VmSize"]
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
            out = fn()
            out["vm_need_bytes"] = _status()["VmPeak"] - start
            Path(path).write_text(json.dumps(out, default=str))
        except BaseException:  # noqa: BLE001 - report, then leave without running the parent's code
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    try:
        text = Path(path).read_text()
    finally:
        os.unlink(path)
    if status != 0 or not text:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
        return {"status": f"crashed ({how})"}
    return json.loads(text)


def _child(spec_path: str) -> None:
    import logging

    import torch

    spec = json.loads(Path(spec_path).read_text())
    result: dict = {"cap_kind": "none", "base_bytes": 0, "headroom_bytes": 0, "cap_bytes": 0, "measure": {}, "runs": {}}

    def write() -> None:
        Path(spec["result"]).write_text(json.dumps(result, indent=1, default=str))

    from omegaconf import OmegaConf
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (imported before the cap, as train() needs it)

    from nnbasics.data.datasets import load_data
    from nnbasics.engine.batch_size import is_out_of_memory as real_is_oom
    from nnbasics.engine.train import resolve_device, train

    cfg = OmegaConf.load(spec["config"])
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    if not cuda:
        if not sys.platform.startswith("linux"):
            result["unsupported"] = f"RLIMIT_AS is not enforced on {sys.platform}; run O6 on Linux or on a CUDA device"
            return write()
        # one thread: a forked copy of a process whose OpenMP pool has started can hang in it
        torch.set_num_threads(1)
        OmegaConf.update(cfg, "threads", 1)
    runs_dir, fit_at = Path(spec["runs_dir"]), int(spec["fit_at"])

    # the data once, before any cap; every run gets the same tensors (test split included)
    bundle = load_data(cfg.data, device=device)
    test = bundle.load_test()
    bundle.load_test = lambda: test  # our own bundle: its test split read once, before the cap

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("nnbasics")
    logger.setLevel(logging.INFO)
    logger.addHandler(Capture())
    # find_batch_size logs each failed size with the error it caught ("<size> ran out of memory,
    # halving (<type>: <message>)"): the errors the library judged out-of-memory, read from its log
    halving = re.compile(r"batch_size=auto: \d+ ran out of memory, halving \((\w+): (.*)\)$")

    def errors_of(log_lines: list[str]) -> list[dict]:
        return [{"type": m.group(1), "message": m.group(2), "is_oom": True}
                for m in map(halving.search, log_lines) if m]

    def one(name: str, **over) -> dict:
        c = cfg.copy()
        for k, v in over.items():
            OmegaConf.update(c, k, v)
        lines.clear()
        run_dir = runs_dir / name.replace("/", "_")
        t = time.perf_counter()
        try:
            out = {k: v for k, v in train(c, run_dir=run_dir, data=bundle).items() if k != "history"}
            out["curve"] = json.loads((run_dir / "history.json").read_text()).get("curve", [])
        except Exception as e:  # noqa: BLE001 - nnbasics.engine.train.OutOfMemory (a MemoryError) or any other failure
            cause = e.__cause__ or e
            oom = isinstance(e, MemoryError) or real_is_oom(e)
            out = {"status": "out of memory" if oom else f"error ({type(e).__name__})", "error": str(e)[:500],
                   "cause": f"{type(cause).__name__}: {cause}"[:500]}
        out.update(log=list(lines), errors=errors_of(lines), wall_s=time.perf_counter() - t)
        print(f"{name}: {out['status']} batch {out.get('batch_size')} val/acc {out.get('val/acc')} "
              f"({out['wall_s']:.1f} s)", flush=True)
        return out

    if cuda:  # no fork after CUDA is up: runs in this process, measured by the caching allocator
        def measured(name, **over):
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            start = torch.cuda.memory_reserved(device)
            out = one(name, **over)
            torch.cuda.synchronize(device)
            out["vm_need_bytes"] = torch.cuda.max_memory_reserved(device) - start
            return out

        def capped(name, **over):
            torch.cuda.empty_cache()
            return one(name, **over)
    else:
        def measured(name, **over):
            return _in_fork(lambda: one(name, **over))

        def capped(name, **over):
            return _in_fork(lambda: one(name, **over), limit=result["cap_bytes"])

    # one-time allocations (lazy imports inside train, BLAS buffers) before anything is measured
    one("warmup", batch_size=8, steps=1, eval_test=False)
    for b in (fit_at, 2 * fit_at):
        r = measured(f"measure_{b}", batch_size=b, steps=2, eval_test=False)
        if r["status"] != "completed":
            raise RuntimeError(f"the uncapped measurement run at batch {b} did not complete: {r}")
        result["measure"][b] = r["vm_need_bytes"]
    lo, hi = result["measure"][fit_at], result["measure"][2 * fit_at]
    if hi - lo < MIN_GAP_MB * MB:
        raise RuntimeError(f"a run at batch {2 * fit_at} needs only {(hi - lo) / MB:.1f} MB more than at {fit_at} "
                           f"(< {MIN_GAP_MB} MB): the model's training step is too small to separate them")
    result["headroom_bytes"] = (lo + hi) // 2
    if cuda:
        torch.cuda.empty_cache()
        result["base_bytes"] = torch.cuda.memory_reserved(device)
        result["cap_bytes"] = result["base_bytes"] + result["headroom_bytes"]
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, result["cap_bytes"] / total), device)
        result["cap_kind"] = "torch.cuda.set_per_process_memory_fraction"
    else:
        result["base_bytes"] = _status()["VmSize"]
        result["cap_bytes"] = result["base_bytes"] + result["headroom_bytes"]
        result["cap_kind"] = "RLIMIT_AS (address space)"
    print(f"cap {result['cap_bytes'] / MB:.1f} MB = {result['base_bytes'] / MB:.1f} + "
          f"{result['headroom_bytes'] / MB:.1f} MB ({result['cap_kind']}); need {lo / MB:.1f} MB at {fit_at}, "
          f"{hi / MB:.1f} MB at {2 * fit_at}", flush=True)
    write()

    for s in spec["seeds"]:
        auto = capped(f"auto/{s}", seed=s, batch_size="auto")
        result["runs"][f"auto/{s}"] = auto
        if auto["status"] == "completed":
            result["runs"][f"fixed/{s}"] = capped(f"fixed/{s}", seed=s, batch_size=int(auto["batch_size"]))
        write()
    result["runs"]["fixed512"] = capped("fixed512", seed=spec["seeds"][0], batch_size=int(spec["start"]))
    write()


if __name__ == "__main__":
    _child(sys.argv[1])
