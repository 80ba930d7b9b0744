"""I1: zero or constant initialization never breaks symmetry.

An MLP whose hidden weights all start equal computes the same function in every unit of a
layer, receives the same gradient in every unit, and so stays a network of one unit per layer
however long it trains. We train with zeros / ones / a constant (where the library has them)
and He as the control, then measure after training how far the units of each hidden layer are
from identical (max |w_i - w_1| over units, relative to the weights' scale) and the accuracy.
"""

from __future__ import annotations

import torch

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import fmt, md_table, mean_std
from nnbasics.viz.figures import new_figure

ID = "I1"
TITLE = "Zero and constant initialization never break symmetry"
CLAIM = "zero or constant init never breaks symmetry: the units of a layer stay identical and accuracy stays near chance"
REFERENCE = "seed material: every unit in a layer stays identical; accuracy near chance (10 % on MNIST)"

ARMS = {  # name -> init overrides
    "zeros": ["init=zeros"],
    "ones": ["init=ones"],
    "constant 0.05": ["init=constant", "init.value=0.05"],
    "He (control)": ["init=he_normal"],
}
IDENTICAL = 1e-5   # relative spread of the hidden units' incoming weights below this = identical
NEAR_CHANCE = 0.25  # val accuracy below this = near chance (10 classes: 0.10)
CONTROL_MIN = 0.5   # the He control must learn (val acc above this)


def unit_spread(model: torch.nn.Module) -> float:
    """max over hidden layers of max_i |W_i - W_0| / (max |W| + 1e-12): 0 when every unit of a
    layer has the same incoming weights."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][:-1]
    spread = 0.0
    for lin in linears:
        w = torch.cat([lin.weight, lin.bias[:, None]], dim=1).detach().double()
        spread = max(spread, float((w - w[:1]).abs().max() / (w.abs().max() + 1e-12)))
    return spread


def run(ctx: Context) -> Outcome:
    base = ctx.pick(
        smoke=["data=spiral", "data.classes=10", "model.width=16", "epochs=3", "batch_size=64"],
        default=["data=mnist", "model.width=100", "epochs=3", "batch_size=128"],
    ) + ["model.depth=2", "activation=relu", "optimizer=sgd", "optimizer.lr=0.1", "scheduler=constant",
         "checkpoint=true"]
    rows, numbers, curves = [], {}, {}
    for arm, over in ARMS.items():
        runs = ctx.train_seeds(base + over, name=arm)
        spreads = [unit_spread(ctx.model_of(r)[0]) for r in runs]
        val = [r["val/acc"] for r in runs]
        numbers[arm] = {"val_acc": mean_std(val)[0], "unit_spread": max(spreads)}
        rows.append([arm, f"{max(spreads):.2e}", fmt(*mean_std(val), percent=True),
                     fmt(*mean_std([r["train/loss"] for r in runs]))])
        curves[arm] = runs[0]["curve"]
    fig = new_figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    for arm, curve in curves.items():
        ax.plot([c[0] for c in curve], [c[2] for c in curve], label=arm)
    ax.set_xlabel("update")
    ax.set_ylabel("mini-batch loss (seed 0)")
    ax.legend()
    ax.set_title("I1: symmetric inits do not learn")
    figures = [ctx.save_figure(fig, "loss_by_init")]
    table = md_table(["init", "max unit spread after training", "val acc", "train loss"], rows)
    table += "\n\nUnit spread: max over hidden layers of max_i |w_i - w_1| / max |w| (incoming weights and bias); 0 = all units identical."
    flat = {f"{a}/{k}": v for a, d in numbers.items() for k, v in d.items()}
    symmetric = [a for a in numbers if a != "He (control)"]
    checks = {}
    for a in symmetric:
        checks[f"{a}: spread {numbers[a]['unit_spread']:.1e} < {IDENTICAL:g}"] = numbers[a]["unit_spread"] < IDENTICAL
        checks[f"{a}: val acc {numbers[a]['val_acc']:.3f} < {NEAR_CHANCE}"] = numbers[a]["val_acc"] < NEAR_CHANCE
    checks[f"He control: spread {numbers['He (control)']['unit_spread']:.2f} >= {IDENTICAL:g} and val acc "
           f"{numbers['He (control)']['val_acc']:.3f} > {CONTROL_MIN}"] = (
        numbers["He (control)"]["unit_spread"] >= IDENTICAL and numbers["He (control)"]["val_acc"] > CONTROL_MIN)
    held = all(checks.values())
    text = "; ".join(f"{k} ({'ok' if v else 'FAILED'})" for k, v in checks.items())
    summary = ", ".join(f"{a} acc {numbers[a]['val_acc']:.2f}" for a in numbers)
    return Outcome(table, held, text, figures, flat, summary=summary)
