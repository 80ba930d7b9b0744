"""R1: weight decay narrows the train/test gap when data is scarce
(deep-learning-from-scratch ch06/overfit_weight_decay.py).

6 x 100 ReLU MLP (He init) on 300 MNIST training images, SGD 0.01, batch 100, 200 epochs,
L2 penalty lambda/2 * sum ||W||^2 on weights only, lambda 0 vs 0.1; same seeds, same batches.
"""

from __future__ import annotations

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.curves import accuracy_curves
from nnbasics.suite.stats import gap_narrows, md_table, train_test_gaps

ID = "R1"
TITLE = "Weight decay on 300 MNIST images"
CLAIM = ("weight decay narrows the train/test gap when data is scarce: on 300 MNIST images the source's lambda 0.1 "
         "run ends at train 0.93 / test 0.72 (gap 0.21), where without decay training accuracy reaches about 1.0 "
         "with test about 0.75")
REFERENCE = ("deep-learning-from-scratch `ch06/overfit_weight_decay.py` (6 x 100 ReLU, 300 images, SGD 0.01, batch 100, "
             "200 epochs): lambda 0.1 ends at train 0.93 / test 0.72; without decay train reaches 1.0 with a wider gap")

# Held if the train-test gap (train acc - test acc, per seed) is smaller with the regularizer, the
# difference separated by >= 2 standard errors (the suite's rule; no hand-set margin).
ARMS = {"lambda 0": ["regularization=none"], "lambda 0.1": ["regularization=l2", "regularization.weight_decay=0.1"]}
REF = {"lambda 0": ("~1.00", "~0.75"), "lambda 0.1": ("0.93", "0.72")}


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``<arm>/gap`` and ``<arm>/test_acc``: per-seed lists."""
    return gap_narrows(numbers, "lambda 0", "lambda 0.1")


def run(ctx: Context) -> Outcome:
    base = ctx.pick(
        smoke=["data=spiral", "data.train_size=60", "model.width=32", "epochs=30", "batch_size=20"],
        default=["data=mnist", "data.train_size=300", "model.width=100", "epochs=200", "batch_size=100"],
        full=["data=mnist", "data.train_size=300", "model.width=100", "epochs=200", "batch_size=100"],
    ) + ["model.depth=6", "activation=relu", "init=he_normal", "optimizer=sgd", "optimizer.lr=0.01",
         "scheduler=constant", f"eval_every={ctx.pick(smoke=5, default=10)}"]
    results = {arm: ctx.train_seeds(base + over, name=arm) for arm, over in ARMS.items()}
    rows, numbers, per_seed = train_test_gaps(results, REF)
    fig = accuracy_curves(results, "R1")
    figures = [ctx.save_figure(fig, "accuracy_curves")]
    table = md_table(["arm", "train acc", "test acc", "gap", "reference train", "reference test"], rows)
    g0, g1 = numbers["lambda 0"]["gap"], numbers["lambda 0.1"]["gap"]
    held, text = verdict(per_seed)
    summary = f"gap {g0:.3f} -> {g1:.3f}; train/test with decay {numbers['lambda 0.1']['train_acc']:.2f}/{numbers['lambda 0.1']['test_acc']:.2f}"
    return Outcome(table, held, text, figures, per_seed, summary=summary)
