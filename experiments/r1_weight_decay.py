"""R1: weight decay narrows the train/test gap when data is scarce
(deep-learning-from-scratch ch06/overfit_weight_decay.py).

6 x 100 ReLU MLP (He init) on 300 MNIST training images, SGD 0.01, batch 100, 200 epochs,
L2 penalty lambda/2 * sum ||W||^2 on weights only, lambda 0 vs 0.1; same seeds, same batches.
"""

from __future__ import annotations

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.curves import accuracy_curves
from nnbasics.suite.stats import fmt, md_table, mean_std

ID = "R1"
TITLE = "Weight decay on 300 MNIST images"
CLAIM = "weight decay narrows the train/test gap when data is scarce"
REFERENCE = ("deep-learning-from-scratch `ch06/overfit_weight_decay.py` (6 x 100 ReLU, 300 images, SGD 0.01, batch 100, "
             "200 epochs): lambda 0.1 ends at train 0.93 / test 0.72; without decay train reaches 1.0 with a wider gap")

GAP_REDUCTION = 0.03  # held if the mean gap (train acc - test acc) shrinks by at least this much
ARMS = {"lambda 0": ["regularization=none"], "lambda 0.1": ["regularization=l2", "regularization.weight_decay=0.1"]}
REF = {"lambda 0": ("~1.00", "~0.75"), "lambda 0.1": ("0.93", "0.72")}


def run(ctx: Context) -> Outcome:
    base = ctx.pick(
        smoke=["data=spiral", "data.train_size=60", "model.width=32", "epochs=30", "batch_size=20"],
        default=["data=mnist", "data.train_size=300", "model.width=100", "epochs=200", "batch_size=100"],
        full=["data=mnist", "data.train_size=300", "model.width=100", "epochs=200", "batch_size=100"],
    ) + ["model.depth=6", "activation=relu", "init=he_normal", "optimizer=sgd", "optimizer.lr=0.01",
         "scheduler=constant", f"eval_every={ctx.pick(smoke=5, default=10)}"]
    results = {arm: ctx.train_seeds(base + over, name=arm) for arm, over in ARMS.items()}
    rows, numbers = [], {}
    for arm, runs in results.items():
        tr, te = [r["train/acc"] for r in runs], [r["test/acc"] for r in runs]
        gap = [a - b for a, b in zip(tr, te)]
        numbers[arm] = {"train_acc": mean_std(tr)[0], "test_acc": mean_std(te)[0], "gap": mean_std(gap)[0]}
        rows.append([arm, fmt(*mean_std(tr)), fmt(*mean_std(te)), fmt(*mean_std(gap)), *REF[arm]])
    fig = accuracy_curves(results, "R1")
    figures = [ctx.save_figure(fig, "accuracy_curves")]
    table = md_table(["arm", "train acc", "test acc", "gap", "reference train", "reference test"], rows)
    g0, g1 = numbers["lambda 0"]["gap"], numbers["lambda 0.1"]["gap"]
    held = g0 - g1 >= GAP_REDUCTION
    text = (f"train-test gap: lambda 0 {g0:.3f}, lambda 0.1 {g1:.3f}; reduction {g0 - g1:.3f} "
            f"(held if >= {GAP_REDUCTION}); test acc {numbers['lambda 0']['test_acc']:.3f} -> "
            f"{numbers['lambda 0.1']['test_acc']:.3f}")
    flat = {f"{a}/{k}": v for a, d in numbers.items() for k, v in d.items()}
    summary = f"gap {g0:.3f} -> {g1:.3f}; train/test with decay {numbers['lambda 0.1']['train_acc']:.2f}/{numbers['lambda 0.1']['test_acc']:.2f}"
    return Outcome(table, held, text, figures, flat, summary=summary)
