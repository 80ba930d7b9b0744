"""O4: too high a learning rate diverges or jumps over the minimum, too low crawls; decay gets
both speed and precision.

Part 1: plain SGD (constant LR) over LRs log-spaced from 1e-4 to 10 on MNIST (784-100-100-10
ReLU, He init, batch 128, 2 epochs on 20,000 images). Part 2: from a high start (the swept LR one
grid point above the best by validation loss: chosen by rule, on the sweep's own numbers) 4 epochs with
constant, step, exponential, 1/t and cosine decay. Validation loss decides; no test reads matter.
"""

from __future__ import annotations

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import INCONCLUSIVE, checks_verdict, every, fmt, higher, lower, md_table, mean, mean_std
from nnbasics.viz.figures import new_figure

ID = "O4"
TITLE = "Learning rate: too high, too low, and decay"
CLAIM = "too high an LR diverges or jumps over the minimum, too low crawls; decay gets both speed and precision"
REFERENCE = "shapes in the seed material (cs231n 'learning rate' figure: high LR plateaus high or explodes, low LR is slow)"

PROTOCOL = ("no published setup (the seed material and cs231n's learning-rate figure give shapes only): the suite's own, "
            "784-100-100-10 ReLU MLP (He init) on 20,000 MNIST images, batch 128, plain SGD; 2 epochs at each constant "
            "LR over 1e-4 .. 10 (half-decade grid), then 4 epochs of constant, step, exponential, 1/t and cosine decay "
            "from one grid point above the best LR by validation loss")
AT_PROTOCOL = ("default", "full")  # budget=full runs default's setup
SCALE_DOWN = ""


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ: the decay comparison's spread, read from the run."""
    decay = numbers.get("decay", {})
    const = decay.get("constant", [])
    parts = []
    for name, vals in decay.items():
        if name == "constant":
            continue
        side = {True: "below it, separated", False: "above it, separated", None: "inside the seed spread"}[lower(vals, const)]
        parts.append(f"{name} {fmt(*mean_std(vals))} ({side})")
    start, best = numbers.get("start_lr"), numbers.get("best_lr")
    where = ("" if start is None else
             f" from lr {start:g}" + (" (the best constant LR itself: the grid point above it diverged)"
                                      if best is not None and start == best else f" (one grid point above the best, {best:g})"))
    return (f"There is no published setup: the protocol is the suite's own, and at budget={budget} it is run as such. "
            f"The decay part compares final val losses over {len(const)} seeds{where}: constant {fmt(*mean_std(const))} "
            f"against " + "; ".join(parts) + ". A gap counts only at two standard errors of the difference; a "
            "constant-LR run from a high start is the noisiest arm (its spread, not the decays', decides), and four "
            "epochs on 20,000 images leave a decay's slow tail little room to pay off.")


# No tuned ratios: "crawls", "jumps over" and "decay helps" are each a difference from the best
# constant LR (or from the constant schedule) separated by the suite's rule (2 standard errors).
DECAYS = {
    "constant": ["scheduler=constant"],
    "step (x0.5 every epoch)": ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"],
    "exponential (x0.5 per epoch)": ["scheduler=exponential", "scheduler.gamma=0.5"],
    "1/t (k=1 per epoch)": ["scheduler=inverse_time", "scheduler.k=1.0"],
    "cosine": ["scheduler=cosine"],
}


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``sweep``: {lr: {"val": [...], "train": [...], "diverged": k}} (per seed), ``seeds``,
    ``decay``: {schedule: [val loss per seed]} (the constant schedule included)."""
    sweep = {float(k): v for k, v in numbers["sweep"].items()}
    lrs, n = sorted(sweep), numbers["seeds"]
    ok = [lr for lr in lrs if sweep[lr]["diverged"] == 0]
    if not ok:
        return None, INCONCLUSIVE + "every learning rate of the sweep diverged"
    best = min(ok, key=lambda lr: mean(sweep[lr]["val"]))
    top, low = lrs[-1], lrs[0]
    const = numbers["decay"]["constant"]
    decays = {k: v for k, v in numbers["decay"].items() if k != "constant"}
    checks = {
        f"largest lr {top:g}: {sweep[top]['diverged']}/{n} diverged, else val loss {mean(sweep[top]['val']):.3f} above "
        f"the best lr's {mean(sweep[best]['val']):.3f}":
            True if sweep[top]["diverged"] == n else (False if top == best else higher(sweep[top]["val"], sweep[best]["val"])),
        f"smallest lr {low:g} crawls: train loss {mean(sweep[low]['train']):.3f} above the best lr's "
        f"{mean(sweep[best]['train']):.3f}": False if low == best else higher(sweep[low]["train"], sweep[best]["train"]),
        f"best lr {best:g} is inside the range": low < best < top,
        f"every decay ends below constant's val loss {mean(const):.4f}: "
        + ", ".join(f"{k} {mean(v):.4f}" for k, v in decays.items()): every(lower(v, const) for v in decays.values()),
    }
    # a difference inside the seed spread is undecided (the suite's rule), not a failure
    return checks_verdict(checks, "(per-seed values; each difference separated by >= 2 standard errors)")


def run(ctx: Context) -> Outcome:
    exps = ctx.pick(smoke=[-3, -1, 0, 1], default=[e / 2 for e in range(-8, 3)])
    base = ctx.pick(
        smoke=["data=spiral", "model.width=32", "batch_size=32"],
        default=["data=mnist", "data.train_size=20000", "model.width=100", "batch_size=128"],
    ) + ["model.depth=2", "activation=relu", "init=he_normal", "optimizer=sgd"]
    sweep = {}
    grid = ctx.train_arms({f"lr_{10.0 ** e:.0e}": base + ["scheduler=constant", f"epochs={ctx.pick(smoke=2, default=2)}",
                                                         f"optimizer.lr={10.0 ** e:.6g}"] for e in exps})
    for e in exps:
        lr = 10.0 ** e
        runs = grid[f"lr_{lr:.0e}"]
        sweep[lr] = {"val": [r["val/loss"] for r in runs], "train": [r["train/loss"] for r in runs],
                     "diverged": sum(r["status"] == "diverged" for r in runs), "runs": runs}
    lrs = sorted(sweep)
    finite = [lr for lr in lrs if sweep[lr]["diverged"] == 0]
    best = min(finite, key=lambda lr: mean_std(sweep[lr]["val"])[0])
    # the high start: one grid point (half a decade) above the sweep's best LR, if no seed diverged there
    above = [lr for lr in finite if lr > best]
    start = min(above) if above else best
    rows = [[f"{lr:.0e}", fmt(*mean_std(sweep[lr]["train"])), fmt(*mean_std(sweep[lr]["val"])),
             f"{sweep[lr]['diverged']}/{len(ctx.seeds)}"] for lr in lrs]

    arms = ctx.train_arms({f"decay_{name.split(' ')[0]}": base + over + [f"epochs={ctx.pick(smoke=4, default=4)}",
                                                                          f"optimizer.lr={start:.6g}"]
                           for name, over in DECAYS.items()})
    decay = {name: arms[f"decay_{name.split(' ')[0]}"] for name in DECAYS}
    drows = [[name, fmt(*mean_std([r["train/loss"] for r in runs])), fmt(*mean_std([r["val/loss"] for r in runs])),
              fmt(*mean_std([r["val/acc"] for r in runs]), percent=True)] for name, runs in decay.items()]

    fig = new_figure(11, 4)
    ax = fig.add_subplot(1, 2, 1)
    m = [mean_std(sweep[lr]["val"]) for lr in finite]
    ax.errorbar(finite, [a for a, _ in m], yerr=[s for _, s in m], fmt="o-", capsize=3, label="val loss")
    ax.errorbar(finite, [mean_std(sweep[lr]["train"])[0] for lr in finite], fmt="s--", label="train loss")
    for k in range(len(ctx.seeds)):  # every seed's val loss, small markers
        pts = [(lr, sweep[lr]["val"][k]) for lr in finite if k < len(sweep[lr]["val"])]
        ax.plot([a for a, _ in pts], [b for _, b in pts], ".", color="C0", ms=4, alpha=0.6,
                label=f"val loss, each of {len(ctx.seeds)} seeds" if k == 0 else None)
    for lr in lrs:
        if sweep[lr]["diverged"]:
            ax.axvline(lr, color="tab:red", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate (red: a seed diverged)")
    ax.set_ylabel("loss after the sweep's epochs")
    ax.legend()
    ax.set_title("constant LR sweep")
    ax2 = fig.add_subplot(1, 2, 2)
    for i, (name, runs) in enumerate(decay.items()):
        for k, run_ in enumerate(runs):  # every seed, one colour per schedule
            h = [r for r in run_["history"] if "val/loss" in r]
            ax2.plot([r["epoch"] for r in h], [r["val/loss"] for r in h], "o-", ms=2, lw=0.8, alpha=0.7, color=f"C{i}",
                     label=name if k == 0 else None)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"val loss (each of {len(ctx.seeds)} seeds)")
    ax2.set_yscale("log")
    ax2.legend(fontsize=8)
    ax2.set_title(f"decay from lr {start:g}")
    fig.tight_layout()
    figures = [ctx.save_figure(fig, "lr_sweep_and_decay")]

    table = (md_table(["lr", "train loss", "val loss", "diverged"], rows) + "\n\n"
             + (f"Decay from the high start lr = {start:g} (one grid point above the best constant LR by val loss, "
                f"{best:g}).\n\n" if start != best else
                f"Decay from the high start lr = {start:g}: the best constant LR by val loss itself, as the grid point "
                f"above it diverged in a seed.\n\n")
             + md_table(["schedule", "train loss", "val loss", "val acc"], drows))
    numbers = {"seeds": len(ctx.seeds), "best_lr": best, "start_lr": start,
               "sweep": {f"{lr:.6g}": {k: sweep[lr][k] for k in ("val", "train", "diverged")} for lr in lrs},
               "decay": {n.split(" ")[0]: [r["val/loss"] for r in runs] for n, runs in decay.items()}}
    held, text = verdict(numbers)
    const = mean(numbers["decay"]["constant"])
    summary = (f"best lr {best:g}; from lr {start:g}: constant val loss {const:.3f}, decays "
               + "/".join(f"{mean(v):.3f}" for k, v in numbers["decay"].items() if k != "constant"))
    return Outcome(table, held, text, figures, numbers, summary=summary)
