"""O3: on MNIST, Momentum / AdaGrad / Adam learn faster than plain SGD
(deep-learning-from-scratch ch06/optimizer_compare_mnist.py).

784-100x4-10 ReLU, He init, batch 128, 2000 updates; SGD 0.01, Momentum 0.01 (0.9), AdaGrad
0.01, Adam 0.001 as in the reference (no per-arm tuning: the reference fixes them). Same seed ->
same initial weights and the same batches for every optimizer.
"""

from __future__ import annotations

import math

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import checks_verdict, curve_at, fmt, less, lower, md_table, mean, mean_std, smooth
from nnbasics.viz.figures import new_figure

ID = "O3"
TITLE = "SGD vs Momentum vs AdaGrad vs Adam on MNIST"
CLAIM = ("on MNIST, Momentum, AdaGrad and Adam learn faster than plain SGD: at 1000 updates the source's mini-batch "
         "loss is SGD 0.18 against Momentum 0.04, AdaGrad 0.02, Adam 0.03 (one run)")
REFERENCE = ("deep-learning-from-scratch `ch06/optimizer_compare_mnist.py` (784-100x4-10 ReLU, He init, batch 128): "
             "loss at 1000 it. SGD 0.18, Momentum 0.04, AdaGrad 0.02, Adam 0.03 (one run)")

PROTOCOL = ("experiment=dlfs_optimizer_compare_mnist_{sgd,momentum,adagrad,adam} (one overlay per arm): 784-100x4-10 "
            "ReLU, He N(0, 2/n_in) on every layer, all 60,000 MNIST training images as pixels / 255, batch 128 drawn "
            "with replacement (the same stream for every arm), 2000 updates; SGD 0.01, Momentum 0.01 / 0.9, AdaGrad 0.01 "
            "(eps 1e-7), Adam 0.001 (DLFS's epsilon placement)")
AT_PROTOCOL = ("default", "full")  # the protocol fits in minutes on a 2-core CPU: default runs it
SCALE_DOWN = ""  # default is the protocol (until 2026-12-07 it was a scale-down with the library's data conventions)

# arm -> (overrides, published loss at 1000 updates)
ARMS = {
    "SGD": (["optimizer=sgd", "optimizer.lr=0.01"], 0.18),
    "Momentum": (["optimizer=momentum", "optimizer.lr=0.01", "optimizer.momentum=0.9"], 0.04),
    "AdaGrad": (["optimizer=adagrad", "optimizer.lr=0.01"], 0.02),
    "Adam": (["optimizer=adam", "optimizer.lr=0.001"], 0.03),
}
OVERLAYS = {"SGD": "sgd", "Momentum": "momentum", "AdaGrad": "adagrad", "Adam": "adam"}  # budget=full: the protocol


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """Per-seed losses at the read-out update (``<arm>/loss_at_read``): held when every other
    optimizer's is below SGD's, separated by the suite's rule (2 standard errors); not held when
    one is above SGD's, separated; else inside the seed spread (inconclusive)."""
    sgd = numbers["SGD/loss_at_read"]
    checks = {f"{a} {mean(numbers[a + '/loss_at_read']):.3f} < SGD {mean(sgd):.3f}": lower(numbers[a + "/loss_at_read"], sgd)
              for a in ARMS if a != "SGD"}
    return checks_verdict(checks, f"(loss at update {numbers['read_at']}, per seed; each separated by >= 2 standard errors)")


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from the run's per-seed losses (``<arm>/loss_at_read``, ``read_at``)."""
    read_at = numbers.get("read_at", 1000)
    loss = {a: numbers.get(f"{a}/loss_at_read") or [] for a in ARMS}
    others = [a for a in ARMS if a != "SGD"]
    text = (f"At budget={budget} (the protocol: the four DLFS overlays) the loss at update {read_at} was SGD "
            f"{fmt(*mean_std(loss['SGD']))} against " + ", ".join(f"{a} {fmt(*mean_std(loss[a]))}" for a in others)
            + f" ({len(loss['SGD'])} seeds).")
    ratios = [mean(loss[a]) / ARMS[a][1] for a in ARMS if loss[a]]
    ratios = [r for r in ratios if math.isfinite(r)]
    if ratios:
        text += (f" Our losses are {min(ratios):.1f}-{max(ratios):.1f}x the source's "
                 + " / ".join(f"{ARMS[a][1]:.2f}" for a in ARMS) + ", which are the loss of one mini-batch in one "
                 f"run, while ours average the logged mini-batch losses of the ~100 updates up to update {read_at} "
                 "per seed.")
    inside = [a for a in others if loss[a] and loss["SGD"] and not less(loss[a], loss["SGD"])]
    text += (" A non-HELD comes from an arm whose loss is not below SGD's by >= 2 standard errors of the difference"
             + (f": here {', '.join(inside)}." if inside else "; here every arm's loss was."))
    return text


def smooth_points(curve: list, updates: int = 100) -> int:
    """How many logged points span about ``updates`` updates (curves are logged at different spacings:
    ~20 points an epoch, or every update), so every curve of the figure is smoothed over the same stretch."""
    spacing = curve[1][0] - curve[0][0] if len(curve) > 1 else 1
    return max(1, round(updates / max(1, spacing)))


def run(ctx: Context) -> Outcome:
    steps = ctx.pick(smoke=150, default=2000)
    read_at = ctx.pick(smoke=75, default=1000)
    base = ctx.pick(
        smoke=["data=spiral", "model.width=32", "model.depth=4", "batch_size=32"],
        default=["data=mnist", "model.width=100", "model.depth=4", "batch_size=128"],
    ) + ["activation=relu", "init=he_normal", "scheduler=constant", "regularization=none", f"steps={steps}",
         "eval_every=1000000"]
    results = {}
    for arm, (over, _) in ARMS.items():
        # default and full: the source's protocol, its overlay exactly (2000 updates; no validation split, so
        # accuracy is train's)
        results[arm] = ctx.train_seeds(ctx.pick(smoke=base + over,
                                                default=[f"experiment=dlfs_optimizer_compare_mnist_{OVERLAYS[arm]}"]),
                                       name=arm)
    acc_key = "val/acc" if all("val/acc" in r for runs in results.values() for r in runs) else "train/acc"
    acc_name = acc_key.replace("/", "_")

    rows, numbers, per_seed = [], {}, {"read_at": read_at}
    fig = new_figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for arm, runs in results.items():
        curve = runs[0]["curve"]
        spacing = curve[1][0] - curve[0][0] if len(curve) > 1 else 1
        window = max(1, round(100 / spacing))  # the logged points of the last ~100 updates
        at_read = [curve_at(r["curve"], read_at, window) for r in runs]
        at_end = [curve_at(r["curve"], steps, window) for r in runs]
        val = [r[acc_key] for r in runs]
        per_seed.update({f"{arm}/loss_at_read": at_read, f"{arm}/loss_at_end": at_end, f"{arm}/{acc_name}": val})
        numbers[arm] = {"loss_at_read": mean_std(at_read)[0], "loss_at_end": mean_std(at_end)[0], acc_name: mean_std(val)[0]}
        rows.append([arm, fmt(*mean_std(at_read)), f"{ARMS[arm][1]:.2f}", fmt(*mean_std(at_end)),
                     fmt(*mean_std(val), percent=True)])
        for k, r in enumerate(runs):  # every seed, one colour per optimizer
            ax.plot([c[0] for c in r["curve"]], smooth([c[2] for c in r["curve"]], smooth_points(r["curve"])), color=f"C{list(results).index(arm)}",
                    lw=0.8, alpha=0.7, label=arm if k == 0 else None)
    ax.set_xlabel("update")
    ax.set_ylabel(f"mini-batch loss (each of {len(ctx.seeds)} seeds, smoothed over ~100 updates)")
    ax.set_yscale("log")
    ax.axvline(read_at, color="gray", lw=0.8, ls=":")
    ax.legend()
    ax.set_title("O3: optimizers on the same batches")
    figures = [ctx.save_figure(fig, "loss_by_optimizer")]
    table = md_table(["optimizer", f"loss at {read_at} (ours)", "reference at 1000", f"loss at {steps}",
                      acc_key.replace("/", " ")], rows)
    held, text = verdict(per_seed)
    summary = f"loss@{read_at}: " + ", ".join(f"{a} {numbers[a]['loss_at_read']:.3f}" for a in numbers)
    return Outcome(table, held, text, figures, per_seed, summary=summary)
