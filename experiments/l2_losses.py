"""L2: cross-entropy vs multiclass hinge (Weston-Watkins SVM) vs mean squared error on one-hot
targets, for classification with the same MLP (seed material; cs231n notes, Linear classification
and Neural Networks 2: softmax and SVM perform comparably; L2 regression losses are harder to
optimize and less stable for classes).

MLP 784-256-256-10 ReLU (He init) on 10,000 MNIST training images, Adam, batch 100, 5 epochs.
The loss changes the gradient scale, so each loss gets its own learning rate, chosen on the
validation split with the first seed from a small grid; then every seed is run at that rate and
the test split is read once per run, at its end.
"""

from __future__ import annotations

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import fmt, md_table, mean_std
from nnbasics.viz.figures import new_figure

ID = "L2"
TITLE = "Cross-entropy vs hinge vs MSE for classification"
CLAIM = "cross-entropy and multiclass hinge reach about the same accuracy; MSE on one-hot targets is no better"
REFERENCE = ("seed material; cs231n notes: softmax and SVM classifiers \"usually comparable\"; the L2 loss is "
             "\"much harder to optimize\" and to be preferred only when classes cannot be used. No published numbers "
             "for this MLP")

LOSSES = {"cross-entropy": "cross_entropy", "multiclass hinge": "hinge", "MSE (one-hot)": "mse"}
CE_HINGE_TOL = 0.015   # held if |test acc CE - hinge| <= 1.5 points ...
MSE_MARGIN = 0.005     # ... and MSE is not better than the best of the two by more than 0.5 points


def run(ctx: Context) -> Outcome:
    grid = ctx.pick(smoke=[0.003, 0.01], default=[0.0003, 0.001, 0.003])
    base = ctx.pick(
        smoke=["data=spiral", "data.train_size=200", "model.width=32", "epochs=6", "batch_size=50"],
        default=["data=mnist", "data.train_size=10000", "model.width=256", "epochs=5", "batch_size=100"],
    ) + ["model.depth=2", "activation=relu", "init=he_normal", "optimizer=adam", "scheduler=constant",
         "regularization=none"]
    first, rest = ctx.seeds[0], ctx.seeds[1:]
    chosen, sweep, results = {}, {}, {}
    for label, loss in LOSSES.items():
        lr, tried = ctx.tune_lr(base + [f"loss={loss}"], grid, seed=first, name=label)
        sweep[label] = {v: t.runs[0]["val/acc"] for v, t in tried.items()}
        chosen[label] = lr
        results[label] = tried[lr].runs + ctx.train_seeds(base + [f"loss={loss}", f"optimizer.lr={lr}"],
                                                       name=f"{label} lr {lr}", seeds=rest)
    rows, numbers = [], {}
    fig = new_figure(10, 4)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for label, runs in results.items():
        te, va = [r["test/acc"] for r in runs], [r["val/acc"] for r in runs]
        numbers[label] = {"test_acc": mean_std(te), "val_acc": mean_std(va), "lr": chosen[label]}
        rows.append([label, f"{chosen[label]:g}", ", ".join(f"{lr:g}: {v:.3f}" for lr, v in sweep[label].items()),
                     fmt(*mean_std(va), percent=True), fmt(*mean_std(te), percent=True)])
        ax1.plot(grid, [sweep[label][lr] for lr in grid], "o-", label=label)
        h = [r for r in runs[0]["history"] if "val/acc" in r]
        ax2.plot([r["epoch"] for r in h], [r["val/acc"] for r in h], "o-", ms=3, label=label)
    ax1.set_xscale("log")
    ax1.set_xlabel("Adam learning rate")
    ax1.set_ylabel(f"val accuracy (seed {first})")
    ax1.set_title("L2: learning-rate choice per loss")
    ax1.legend()
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val accuracy (chosen lr, first seed)")
    ax2.set_title("L2: validation accuracy")
    ax2.legend()
    fig.tight_layout()
    figures = [ctx.save_figure(fig, "losses")]
    table = md_table(["loss", "chosen lr (val)", "val acc per lr (first seed)", "val acc", "test acc"], rows)
    table += "\n\nReference: no published numbers for this setting; cs231n: softmax and SVM usually comparable."
    need = list(LOSSES)
    if any(k not in numbers for k in need):
        return Outcome(table, None, "inconclusive: missing losses " + ", ".join(k for k in need if k not in numbers),
                       figures, {})
    ce, hi, mse = (numbers[k]["test_acc"][0] for k in need)
    held = abs(ce - hi) <= CE_HINGE_TOL and mse <= max(ce, hi) + MSE_MARGIN
    text = (f"test acc: cross-entropy {ce:.4f}, hinge {hi:.4f} (|diff| {abs(ce - hi):.4f}, held if <= {CE_HINGE_TOL}), "
            f"MSE {mse:.4f} (held if <= best of the two + {MSE_MARGIN})")
    flat = {f"{k}/{m}": (v[0] if isinstance(v, tuple) else v) for k, d in numbers.items() for m, v in d.items()}
    return Outcome(table, held, text, figures, flat, summary=f"test acc CE {ce:.3f}, hinge {hi:.3f}, MSE {mse:.3f}")
