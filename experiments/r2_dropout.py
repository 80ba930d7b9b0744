"""R2: dropout narrows the train/test gap when data is scarce
(deep-learning-from-scratch ch06/overfit_dropout.py).

The R1 setting: 6 x 100 ReLU MLP (He init) on 300 MNIST training images, SGD 0.01, batch 100;
hidden dropout p = 0 vs p = 0.2 (inverted dropout on every hidden layer, no input dropout);
same seeds, same batches. The reference trains 301 epochs; we train 300.
"""

from __future__ import annotations

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.curves import accuracy_curves
from nnbasics.suite.stats import fmt, md_table, mean_std

ID = "R2"
TITLE = "Dropout 0.2 on 300 MNIST images"
CLAIM = "dropout narrows the train/test gap when data is scarce"
REFERENCE = ("deep-learning-from-scratch `ch06/overfit_dropout.py` (6 x 100 ReLU, 300 images, SGD 0.01, batch 100, "
             "301 epochs, dropout 0.2): the train and test curves stay closer than without dropout (R1: train 1.0 vs "
             "test ~0.75 without); training accuracy rises more slowly")

GAP_REDUCTION = 0.03  # held if the mean gap (train acc - test acc) shrinks by at least this much (same as R1)
ARMS = {
    "no dropout": ["regularization=none"],
    "dropout 0.2": ["regularization=dropout", "regularization.dropout_p=0.2", "regularization.input_dropout_p=0.0"],
}
REF = {"no dropout": ("~1.00", "~0.75"), "dropout 0.2": ("below 1.0", "close to train (figure only)")}


def run(ctx: Context) -> Outcome:
    base = ctx.pick(
        smoke=["data=spiral", "data.train_size=60", "model.width=32", "epochs=30", "batch_size=20"],
        default=["data=mnist", "data.train_size=300", "model.width=100", "epochs=300", "batch_size=100"],
    ) + ["model.depth=6", "activation=relu", "init=he_normal", "optimizer=sgd",
         "optimizer.lr=" + str(ctx.pick(smoke=0.05, default=0.01)), "scheduler=constant",
         f"eval_every={ctx.pick(smoke=5, default=10)}"]
    results = {arm: ctx.train_seeds(base + over, name=arm) for arm, over in ARMS.items()}
    rows, numbers = [], {}
    for arm, runs in results.items():
        tr, te = [r["train/acc"] for r in runs], [r["test/acc"] for r in runs]
        gap = [a - b for a, b in zip(tr, te)]
        numbers[arm] = {"train_acc": mean_std(tr)[0], "test_acc": mean_std(te)[0], "gap": mean_std(gap)[0],
                        "gap_std": mean_std(gap)[1]}
        rows.append([arm, fmt(*mean_std(tr)), fmt(*mean_std(te)), fmt(*mean_std(gap)), *REF[arm]])
    fig = accuracy_curves(results, "R2", train_label="train (running, with dropout on)", legend_size=8)
    figures = [ctx.save_figure(fig, "accuracy_curves")]
    table = md_table(["arm", "train acc (eval mode)", "test acc", "gap", "reference train", "reference test"], rows)
    g0, g1 = numbers["no dropout"]["gap"], numbers["dropout 0.2"]["gap"]
    held = g0 - g1 >= GAP_REDUCTION
    text = (f"train-test gap: no dropout {g0:.3f}, dropout 0.2 {g1:.3f}; reduction {g0 - g1:.3f} "
            f"(held if >= {GAP_REDUCTION}); test acc {numbers['no dropout']['test_acc']:.3f} -> "
            f"{numbers['dropout 0.2']['test_acc']:.3f}")
    flat = {f"{a}/{k}": v for a, d in numbers.items() for k, v in d.items()}
    summary = (f"gap {g0:.3f} -> {g1:.3f}; test {numbers['no dropout']['test_acc']:.3f} -> "
               f"{numbers['dropout 0.2']['test_acc']:.3f}")
    return Outcome(table, held, text, figures, flat, summary=summary)
