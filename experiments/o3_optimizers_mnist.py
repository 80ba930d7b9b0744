"""O3: on MNIST, Momentum / AdaGrad / Adam learn faster than plain SGD
(deep-learning-from-scratch ch06/optimizer_compare_mnist.py).

784-100x4-10 ReLU, He init, batch 128, 2000 updates; SGD 0.01, Momentum 0.01 (0.9), AdaGrad
0.01, Adam 0.001 as in the reference (no per-arm tuning: the reference fixes them). Same seed ->
same initial weights and the same batches for every optimizer.
"""

from __future__ import annotations

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import curve_at, fmt, md_table, mean_std, smooth
from nnbasics.viz.figures import new_figure

ID = "O3"
TITLE = "SGD vs Momentum vs AdaGrad vs Adam on MNIST"
CLAIM = "on MNIST, Momentum, AdaGrad and Adam learn faster than plain SGD"
REFERENCE = ("deep-learning-from-scratch `ch06/optimizer_compare_mnist.py` (784-100x4-10 ReLU, He init, batch 128): "
             "loss at 1000 it. SGD 0.18, Momentum 0.04, AdaGrad 0.02, Adam 0.03 (one run)")

# arm -> (overrides, published loss at 1000 updates)
ARMS = {
    "SGD": (["optimizer=sgd", "optimizer.lr=0.01"], 0.18),
    "Momentum": (["optimizer=momentum", "optimizer.lr=0.01", "optimizer.momentum=0.9"], 0.04),
    "AdaGrad": (["optimizer=adagrad", "optimizer.lr=0.01"], 0.02),
    "Adam": (["optimizer=adam", "optimizer.lr=0.001"], 0.03),
}
RATIO = 0.5  # held if every other optimizer's loss at update 1000 is below RATIO x SGD's


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
        results[arm] = ctx.train_seeds(base + over, name=arm)

    rows, numbers = [], {}
    fig = new_figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for arm, runs in results.items():
        curve = runs[0]["curve"]
        spacing = curve[1][0] - curve[0][0] if len(curve) > 1 else 1
        window = max(1, round(100 / spacing))  # the logged points of the last ~100 updates
        at_read = [curve_at(r["curve"], read_at, window) for r in runs]
        at_end = [curve_at(r["curve"], steps, window) for r in runs]
        val = [r["val/acc"] for r in runs]
        numbers[arm] = {"loss_at_read": mean_std(at_read)[0], "loss_at_end": mean_std(at_end)[0], "val_acc": mean_std(val)[0]}
        rows.append([arm, fmt(*mean_std(at_read)), f"{ARMS[arm][1]:.2f}", fmt(*mean_std(at_end)),
                     fmt(*mean_std(val), percent=True)])
        ax.plot([c[0] for c in curve], smooth([c[2] for c in curve], 5), label=arm)
    ax.set_xlabel("update")
    ax.set_ylabel("mini-batch loss (seed 0, smoothed)")
    ax.set_yscale("log")
    ax.axvline(read_at, color="gray", lw=0.8, ls=":")
    ax.legend()
    ax.set_title("O3: optimizers on the same batches")
    figures = [ctx.save_figure(fig, "loss_by_optimizer")]
    table = md_table(["optimizer", f"loss at {read_at} (ours)", "reference at 1000", f"loss at {steps}",
                      "val acc"], rows)
    flat = {f"{a}/{k}": v for a, d in numbers.items() for k, v in d.items()}
    sgd = numbers["SGD"]["loss_at_read"]
    ratios = {a: numbers[a]["loss_at_read"] / sgd for a in numbers if a != "SGD"}
    held = all(r < RATIO for r in ratios.values())
    text = (f"loss at update {read_at}: SGD {sgd:.3f}; " + ", ".join(
        f"{a} {numbers[a]['loss_at_read']:.3f} ({r:.2f} x SGD)" for a, r in ratios.items())
        + f"; held if every ratio < {RATIO}")
    summary = f"loss@{read_at}: " + ", ".join(f"{a} {numbers[a]['loss_at_read']:.3f}" for a in numbers)
    return Outcome(table, held, text, figures, flat, summary=summary)
