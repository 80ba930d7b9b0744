"""M1: a layer is one matrix product; batching and GPUs make it fast.

The same MLP forward pass (784 -> width -> width -> 10, ReLU; nnbasics.nn.models via the configs)
computed four ways (nnbasics.nn.neurons): a Python loop over neurons and inputs, a loop over neurons
with one dot product each, one matrix-vector product per layer and sample, and one matrix-matrix
product per layer for the whole batch (and the same on CUDA when present). Time per sample and
achieved GFLOP/s over widths and batch sizes; the loops are timed on a few samples of the batch
and scaled (they are linear in the batch by construction; marked "scaled" in the table).

Then the seed material's arithmetic: with a per-sample gradient cost c, an epoch over n samples
costs n c whatever the batch, so full-batch gradient descent buys 1 update per epoch and
mini-batch SGD n / B. Once with the seed's round cost (1 ms per sample) and once with the
per-sample cost of a training step we measure at each batch size (which is not constant: that
is the point of batching).

Inputs are random MNIST-shaped tensors (timing does not depend on pixel values). Timings use one
CPU thread unless the run sets `threads=N`.
"""

from __future__ import annotations

import math
import os
import time

import torch

from nnbasics.nn import neurons
from nnbasics.suite.context import Outcome
from nnbasics.suite.stats import INCONCLUSIVE
from nnbasics.nn.models import build_model

ID = "M1"
TITLE = "The network is matrix multiplication"
CLAIM = ("a layer is one matrix product; batching and GPUs make it fast (the seed material's ordering: per-neuron "
         "loops < per-sample vectors < batched matmul < GPU; no published numbers)")
REFERENCE = "seed material (GPU and matrix-multiplication chapter): per-neuron loops < vectors < batched matmul < GPU"

# Verdict, at the largest width and batch size measured: the claim is the ordering. Timings are best-of-N
# wall times on one machine, not seed samples, so a step of the ordering counts when the slower form
# takes at least TIMING_MARGIN x the faster one's time (a noise floor for single wall-clock timings on a
# shared machine, not a size the claim names). Without a CUDA device the GPU step is undecided and the
# verdict inconclusive when the CPU steps hold.
TIMING_MARGIN = 2.0
MAX_DISAGREEMENT = 1e-4  # all forms give the same outputs (float32 rounding)
ORDER = ("neuron_loop", "per_sample", "batched", "batched_cuda")


PROTOCOL = ("the seed material gives no setup; ours at its largest: the 784-width-width-10 ReLU forward pass four ways "
            "(neuron loop, one dot per neuron, per-sample matrix-vector, batched matmul) plus batched matmul on CUDA, "
            "widths 64 to 4,096, batches 1 to 16,384, best of 5 timings, on a machine with a CUDA GPU")
AT_PROTOCOL = ("full",)
SCALE_DOWN = ("default times widths 64 to 1,024 and batches 1 to 4,096 (best of 3) on one CPU thread; without a CUDA "
              "device the GPU step is not measured")


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from this run's numbers: the measured time per sample of each
    form at the largest width and batch, their ratios to batched matmul, and the machine measured on."""
    def num(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"

    t = numbers.get("us_per_sample") or {}
    at = next((k.split("/")[2:] for k in numbers if k.startswith("us_per_sample/batched/")), None)
    where = f"width {at[0][1:]}, batch {at[1][1:]}" if at and len(at) == 2 else "the largest width and batch"
    cuda = "batched_cuda" in t
    machine = [f"{numbers['cpu_cores']} CPU cores" if numbers.get("cpu_cores") else "",
               f"{numbers['threads']} thread{'s' if numbers['threads'] != 1 else ''}" if numbers.get("threads") else "",
               "a CUDA device" if cuda else "no CUDA device"]
    label = {"neuron_loop": "the Python neuron loop", "neuron_dot": "one dot product per neuron",
             "per_sample": "per-sample matrix-vector products"}
    text = ("Timings are one machine's single wall-clock times (best of a few for the matrix forms, one for the "
            "loops; the slow forms timed on part of the batch and scaled): "
            f"at budget={budget} ({', '.join(m for m in machine if m)}), at {where}")
    if t.get("batched"):
        b = t["batched"]
        text += (f", batched matmul took {num(b)} us per sample on the CPU; "
                 + ", ".join(f"{label[m]} {num(t[m])} us ({num(t[m] / b)}x that)" for m in label if m in t))
        if cuda:
            text += f"; batched matmul on CUDA {num(t['batched_cuda'])} us ({t['batched_cuda'] / b:.3g}x the CPU's)"
    else:
        text += ", batched matmul on the CPU was not timed"
    text += (". The ratios depend on the CPU, its BLAS and the thread count, and a shared machine's load moves single "
             f"wall-clock timings, which is why a step of the ordering counts only at >= {TIMING_MARGIN:g}x. ")
    text += ("The last step of the claimed ordering (batched matmul < GPU) was measured on this run's GPU."
             if cuda else "Without a GPU the last step of the claimed ordering (batched matmul < GPU) is not measured.")
    return text


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``us_per_sample``: {method: microseconds per sample at the largest width and batch},
    ``max_disagreement``."""
    t = numbers["us_per_sample"]
    steps = [(a, b) for a, b in zip(ORDER, ORDER[1:]) if a in t and b in t]
    ok = {f"{a} {t[a]:.3g} us >= {TIMING_MARGIN:g} x {b} {t[b]:.3g} us": t[a] >= TIMING_MARGIN * t[b] for a, b in steps}
    same = numbers["max_disagreement"] <= MAX_DISAGREEMENT
    text = ("; ".join(f"{k} ({'ok' if v else 'FAILED'})" for k, v in ok.items())
            + f"; largest disagreement between the forms {numbers['max_disagreement']:.2g} (<= {MAX_DISAGREEMENT:g})")
    if not (same and all(ok.values())):
        return False, text
    if "batched_cuda" not in t:
        return None, INCONCLUSIVE + "no CUDA device, the GPU step is not measured; " + text
    return True, text

N_TRAIN = 55_000  # MNIST training split after carving 5,000 for validation
SEED_COST_S = 1e-3  # the seed material's round per-sample cost


def _time(fn, repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up), synchronizing CUDA."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def _train_step_cost(model, batch: int, device: torch.device, repeats: int) -> float:
    """Seconds per sample of one SGD step (forward, cross-entropy, backward, update) at ``batch``."""
    model = model.to(device).train()
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return _time(step, repeats, device) / batch


def _figure(rows, widths, batches, methods):
    from nnbasics.viz.figures import new_figure

    fig = new_figure(11, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
    wmax = max(widths)
    for m in methods:
        pts = sorted((r["batch"], r["s_per_sample"]) for r in rows if r["method"] == m and r["width"] == wmax)
        if pts:
            ax1.loglog(*zip(*pts), marker="o", label=m)
        bmax = max(b for b in batches)
        pts = sorted((r["width"], r["gflops"]) for r in rows if r["method"] == m and r["batch"] == bmax)
        if pts:
            ax2.loglog(*zip(*pts), marker="o", label=m)
    ax1.set(xlabel="batch size", ylabel="seconds per sample", title=f"forward pass, width {wmax}")
    ax2.set(xlabel="hidden width", ylabel="GFLOP/s achieved", title=f"forward pass, batch {max(batches)}")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.3, hspace=0.45)
    return fig


def run(ctx) -> Outcome:
    # One CPU thread unless the run names a count: on a shared machine extra threads mostly
    # measure the neighbours' load, and the comparison is between methods, not core counts.
    threads = torch.get_num_threads()
    torch.set_num_threads(int(ctx.threads or 1))
    try:
        return _run(ctx)
    finally:
        torch.set_num_threads(threads)


def _run(ctx) -> Outcome:
    widths = ctx.pick(smoke=[16, 32], default=[64, 256, 1024], full=[64, 256, 1024, 4096])
    batches = ctx.pick(smoke=[1, 8], default=[1, 16, 256, 4096], full=[1, 16, 256, 4096, 16384])
    repeats = ctx.pick(smoke=1, default=3, full=5)
    # samples the loops are timed on (then scaled to the batch): keep the slow ones short
    loop_samples = {"neuron_loop": ctx.pick(smoke=1, default=2, full=4),
                    "neuron_dot": ctx.pick(smoke=2, default=8, full=32),
                    "per_sample": ctx.pick(smoke=16, default=256, full=1024)}
    cuda = torch.cuda.is_available()
    methods = list(neurons.FORWARDS) + (["batched_cuda"] if cuda else [])
    torch.manual_seed(ctx.seeds[0])

    rows, disagreement = [], 0.0
    for width in widths:
        cfg = ctx.compose([f"model.width={width}", "model.depth=2", "activation=relu"])
        model = build_model(cfg, (1, 28, 28), 10).eval()
        flops_per_sample = neurons.count_flops(model)
        plan = neurons.forward_plan(model)  # walked once, outside the timings
        for batch in batches:
            x = torch.randn(batch, 1, 28, 28)
            with torch.no_grad():
                ref = model(x)
            for method in methods:
                if method == "batched_cuda":
                    gpu, xg = model.to("cuda"), x.to("cuda")
                    gplan = neurons.forward_plan(gpu)
                    secs = _time(lambda: neurons.forward_batched(gpu, xg, gplan), repeats, torch.device("cuda"))
                    model.to("cpu")
                    plan = neurons.forward_plan(model)
                    measured = batch
                else:
                    fn = neurons.FORWARDS[method]
                    measured = min(batch, loop_samples.get(method, batch))
                    xs = x[:measured]
                    out = fn(model, xs, plan)
                    disagreement = max(disagreement, float((out - ref[:measured]).abs().max()))
                    reps = repeats if method in ("batched", "per_sample") else 1
                    secs = _time(lambda: fn(model, xs, plan), reps, torch.device("cpu")) * batch / measured
                rows.append({"method": method, "width": width, "batch": batch, "s_batch": secs,
                             "s_per_sample": secs / batch, "flops": flops_per_sample * batch,
                             "gflops": flops_per_sample * batch / secs / 1e9, "scaled": measured < batch})
            ctx.log(f"width {width} batch {batch}: " + ", ".join(
                f"{r['method']} {r['s_per_sample'] * 1e6:.1f} us/sample" for r in rows[-len(methods):]))

    # verdict at the largest width and batch
    wmax, bmax = max(widths), max(batches)
    at = {r["method"]: r["s_per_sample"] for r in rows if r["width"] == wmax and r["batch"] == bmax}
    vs_sample = at["per_sample"] / at["batched"]
    vs_neuron = at["neuron_loop"] / at["batched"]
    vs_dot = at["neuron_dot"] / at["batched"]

    # the epoch arithmetic: the seed's round cost, and the step cost measured at each batch size
    cfg = ctx.compose([f"model.width={wmax}", "model.depth=2", "activation=relu"])
    step_batches = sorted({1, 128, min(bmax, 4096)})
    measured_cost = {b: _train_step_cost(build_model(cfg, (1, 28, 28), 10), b, torch.device("cpu"), repeats)
                     for b in step_batches}
    arith_rows = []
    for label, cost_of in (("seed: 1 ms/sample", lambda b: SEED_COST_S),
                           (f"measured, width {wmax}", lambda b: measured_cost[min(measured_cost, key=lambda k: abs(k - b))])):
        for b in (N_TRAIN, 128, 1):
            c = neurons.epoch_cost(N_TRAIN, cost_of(b), b, epochs=100)
            arith_rows.append((label, "GD (full batch)" if b == N_TRAIN else f"SGD batch {b}", cost_of(b), c))

    # table
    lines = ["| width | batch | method | time per batch | us per sample | GFLOP/s | FLOPs per batch |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['width']} | {r['batch']} | {r['method']}{' (scaled)' if r['scaled'] else ''} | "
                     f"{r['s_batch']:.3g} s | {r['s_per_sample'] * 1e6:.3g} | {r['gflops']:.3g} | {r['flops']:.3g} |")
    lines += ["", f"Training-step cost per sample, width {wmax} (CPU): " + ", ".join(
        f"batch {b}: {c * 1e6:.1f} us" for b, c in measured_cost.items()),
        "(the full-batch GD row uses the cost measured at the largest batch timed)", "",
        "| per-sample cost | schedule | updates / epoch | time / epoch | time / 100 epochs | GD time for as many updates |",
        "|---|---|---:|---:|---:|---:|"]
    for label, sched, cost, c in arith_rows:
        lines.append(f"| {label} ({cost * 1e6:.3g} us) | {sched} | {c['updates_per_epoch']} | {_dur(c['epoch_s'])} | "
                     f"{_dur(c['total_s'])} | {_dur(c['gd_s_for_same_updates'])} |")
    table = "\n".join(lines)

    fig = ctx.save_figure(_figure(rows, widths, batches, methods), "m1_time_per_sample")
    gpu_text = (f"CUDA batched: {at['batched_cuda'] * 1e6:.3g} us/sample ({at['per_sample'] / at['batched_cuda']:.0f}x per-sample CPU)"
                if "batched_cuda" in at else "no CUDA device here, GPU column not measured")
    sgd = arith_rows[1][3]
    n_threads = torch.get_num_threads()
    text = (f"At width {wmax}, batch {bmax} on this CPU ({n_threads} thread{'s' if n_threads != 1 else ''}): batched matmul {at['batched'] * 1e6:.3g} us/sample, "
            f"{vs_sample:.0f}x faster than per-sample matrix-vector products, "
            f"{vs_dot:.0f}x faster than one dot product per neuron and {vs_neuron:.0f}x faster than the Python "
            f"neuron loop; largest disagreement between the four "
            f"forms {disagreement:.2g}. {gpu_text}. Seed arithmetic at 1 ms/sample: "
            f"an epoch of {N_TRAIN:,} samples costs {_dur(sgd['epoch_s'])} for GD and SGD alike; 100 epochs "
            f"({_dur(sgd['total_s'])}) buy 100 GD updates or {sgd['total_updates']:,} SGD updates (batch 128); GD needs "
            f"{_dur(sgd['gd_s_for_same_updates'])} for as many.")
    numbers = {"speedup_vs_per_sample": vs_sample, "speedup_vs_neuron_dot": vs_dot, "speedup_vs_neuron_loop": vs_neuron,
               "max_disagreement": disagreement, "cuda": cuda, "threads": torch.get_num_threads(),
               "cpu_cores": os.cpu_count(),
               **{f"us_per_sample/{m}/w{wmax}/b{bmax}": s * 1e6 for m, s in at.items()},
               **{f"train_step_us_per_sample/b{b}": c * 1e6 for b, c in measured_cost.items()}}
    numbers["us_per_sample"] = {m: s * 1e6 for m, s in at.items()}
    held, reason = verdict(numbers)
    return Outcome(table, held, reason + ". " + text, [fig], numbers)


def _dur(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1e3:.3g} ms"
