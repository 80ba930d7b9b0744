"""I5: batch normalization makes training insensitive to the initial weight scale
(deep-learning-from-scratch ch06/batch_norm_test.py).

5 x 100 ReLU MLP, 1000 MNIST training images, SGD 0.01, batch 100, 20 epochs; every weight
drawn from N(0, std^2) with std over logspace(0, -4, 16) (init=normal init.std=...), with and
without batch norm after each hidden Linear (model.norm=batch); same seeds, same batches. A
configuration "trains" when its final training accuracy (evaluation mode) reaches TRAINED.
"""

from __future__ import annotations

import math

import numpy as np

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import beyond, chance_acc, finite, fmt, md_table, mean_std, three_way
from nnbasics.viz.figures import new_figure

ID = "I5"
TITLE = "Batch norm vs the initial weight scale"
CLAIM = ("batch norm makes training insensitive to the init scale: in the source (final training accuracy over init "
         "std logspace(0, -4, 16)) without BN only std near 0.16-0.3 trains (0.82-0.98, elsewhere 0.10-0.12), with "
         "BN almost every std does (0.42 at std 1 and 0.52 at 1e-4, 0.95-1.00 in between)")
REFERENCE = ("deep-learning-from-scratch `ch06/batch_norm_test.py` (5 x 100 ReLU, 1000 images, SGD 0.01, batch 100, "
             "20 epochs, std over logspace(0, -4, 16)): without BN only std near 0.16-0.3 trains; with BN almost all do")

PROTOCOL = ("experiment=dlfs_batch_norm_test with model.norm=none|batch and init.std over np.logspace(0, -4, 16): "
            "784-(100 x 5)-10 ReLU (Affine -> BatchNorm (eps 1e-6, DLFS's) -> ReLU), W = std x randn on every layer, the first 1,000 MNIST "
            "training images as pixels / 255, SGD 0.01, batch 100 drawn with replacement, 191 updates, final training "
            "accuracy (evaluation mode)")
AT_PROTOCOL = ("default", "full")  # the protocol fits in minutes on a 2-core CPU: default runs it
SCALE_DOWN = ""  # default is the protocol (until 2026-12-07 it was a scale-down with the library's data conventions)
# the source's final training accuracy (its notebook, one run), without BN / with BN, at the stds it prints
SOURCE = {1.0: (0.097, 0.419), 0.293: (0.979, 0.630), 0.158: (0.823, 0.763), 0.0464: (0.116, 0.950),
          0.0136: (0.116, 1.000), 0.00215: (0.116, 0.999), 1e-4: (0.116, 0.523)}


def source_at(std: float) -> tuple[float, float] | None:
    """The source's (without BN, with BN) accuracy at ``std`` (matched to 3 significant digits), if it prints one."""
    return next((v for k, v in SOURCE.items() if f"{k:.3g}" == f"{std:.3g}"), None)


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ: the stds that decide the count, beside the source's one run."""
    stds, acc = numbers.get("stds", []), numbers.get("acc", {})
    bound = trained_bound(numbers.get("classes", 10))
    side = []
    for i, std in enumerate(stds):
        ref = source_at(std)
        if ref is None or "with BN" not in acc:
            continue
        m, sd = mean_std(acc["with BN"][i])
        side.append(f"{fmt(m, sd)} at std {std:.3g} (source {ref[1]:.3f})")
    edge = [f"{stds[i]:.3g} ({fmt(*mean_std(vals))})" for i, vals in enumerate(acc.get("with BN", []))
            if finite(vals) and not beyond(vals, bound, above=True) and not beyond(vals, bound, above=False)]
    seeds = len(numbers.get("seeds", [])) or len(next(iter(acc.get("with BN", [])), []))
    return (f"At budget={budget} the run is the protocol (the DLFS overlay per std and arm), {seeds} seeds against the "
            f"source's one unseeded run. Our BN arm, mean +- std over seeds: "
            + "; ".join(side) + ". "
            + (f"The verdict turns on the std{'s' if len(edge) > 1 else ''} whose accuracy lies inside the seed spread "
               f"of the {bound:.2f} bound: {', '.join(edge)}; more seeds would decide {'them' if len(edge) > 1 else 'it'}. "
               if edge else "")
            + _one_draw(numbers))


def _one_draw(numbers: dict) -> str:
    """The seed spread at the ends of the BN curve, and the no-BN stds whose every seed overflowed."""
    stds, acc = numbers.get("stds", []), numbers.get("acc", {})
    text = ""
    if stds and acc.get("with BN"):
        ends = [f"{mean_std(acc['with BN'][i])[1]:.3f} at std {stds[i]:.3g}" for i in (0, len(stds) - 1)]
        text += (f"The source's accuracies are one run each; here the BN curve's seed standard deviation is "
                 f"{' and '.join(ends)}, so one run places those points no closer than that.")
    diverged = [f"{stds[i]:.3g}" for i, vals in enumerate(acc.get("without BN", [])) if vals and not finite(vals)]
    if diverged:
        text += (f" Without BN every seed overflowed to NaN in float32 at std {', '.join(diverged)}, where DLFS's "
                 "float64 numpy trains on through the huge losses and reports about chance (0.097 at std 1).")
    return text


TRAINED = 0.5         # scale-aware "trains": mean final training accuracy above chance + TRAINED x (1 - chance),
                      # halfway from chance 1/C to 1 (0.55 for 10 classes, 0.67 for 3), by >= 2 standard errors
BN_SHARE = 0.75       # "almost all": held if BN trains at >= this share of the stds ...
MARGIN_SHARE = 0.25   # ... and at least this share more stds than without BN ("only a narrow band")


def trained_bound(classes: int) -> float:
    return chance_acc(classes) + TRAINED * (1 - chance_acc(classes))


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``acc``: {"without BN" | "with BN": [[final train acc per seed] per std]} (diverged = nan), ``classes``."""
    bound = trained_bound(numbers["classes"])
    n = len(numbers["stds"])
    # per std three ways: trains (above the bound by >= 2 SE), does not (below it so, or every seed
    # diverged), or undecided (inside the seed spread); the claim holds when it holds for the least
    # count the undecided stds allow, fails when it fails for the most, else the seeds cannot decide
    sure, maybe = {}, {}
    for arm, per_std in numbers["acc"].items():
        sure[arm] = sum(1 for vals in per_std if beyond(vals, bound, above=True))
        maybe[arm] = sum(1 for vals in per_std
                         if not beyond(vals, bound, above=True) and not beyond(vals, bound, above=False) and finite(vals))

    def holds(bn: int, plain: int) -> bool:
        return bn >= BN_SHARE * n and bn - plain >= MARGIN_SHARE * n

    nb, nn_ = sure["with BN"], sure["without BN"]
    held = True if holds(nb, nn_ + maybe["without BN"]) else (
        None if holds(nb + maybe["with BN"], nn_) else False)
    undecided = "".join(f"; {maybe[arm]} std{'s' if maybe[arm] != 1 else ''} {arm} inside the seed spread of the bound"
                        for arm in ("with BN", "without BN") if maybe[arm])
    return three_way(held, (
        f"stds that train: with BN {nb}/{n} (held if >= {BN_SHARE:.0%} of them), without BN {nn_}/{n} (BN must train "
        f"at least {MARGIN_SHARE:.0%} of the stds more){undecided}; a std trains when its mean final train acc is "
        f"above {bound:.3f} (halfway from chance 1/{numbers['classes']} to 1) by >= 2 standard errors, and does not "
        "when below it so or when every seed diverged"))


def run(ctx: Context) -> Outcome:
    stds = ctx.pick(smoke=list(np.logspace(0, -4, 3)), default=list(np.logspace(0, -4, 16)))
    base = ctx.pick(
        smoke=["data=spiral", "data.train_size=200", "model.width=32", "epochs=6", "batch_size=50",
               "optimizer.lr=0.1"],
        default=["data=mnist", "data.train_size=1000", "model.width=100", "epochs=20", "batch_size=100",
                 "optimizer.lr=0.01"],
    ) + ["model.depth=5", "activation=relu", "init=normal", "optimizer=sgd", "scheduler=constant",
         "regularization=none", "eval_every=1000"]
    trained = trained_bound(ctx.classes(base))
    arms = {"without BN": ["model.norm=none"], "with BN": ["model.norm=batch"]}
    acc = {arm: [] for arm in arms}  # per std: list over seeds
    # default and full: the source's protocol, its overlay exactly, with each arm's norm and std; every arm and
    # std in one call, so the runs without BN (which differ in init.std only) train as one population
    runs_of = ctx.train_arms({f"{arm} std {std:.3g}": ctx.pick(smoke=base + over + [f"init.std={std:.6g}"],
                                                              default=["experiment=dlfs_batch_norm_test", over[0],
                                                                       f"init.std={std:.6g}"])
                              for std in stds for arm, over in arms.items()})
    for std in stds:
        for arm in arms:
            runs = runs_of[f"{arm} std {std:.3g}"]
            acc[arm].append([r["train/acc"] if r.get("status") == "completed" else math.nan for r in runs])

    counts, rows = {}, []
    for arm in arms:
        counts[arm] = sum(1 for vals in acc[arm] if beyond(vals, trained, above=True))
    for i, std in enumerate(stds):
        cells = []
        for arm in arms:
            m, s = mean_std(acc[arm][i])
            bad = sum(1 for v in acc[arm][i] if not math.isfinite(v))
            cells.append(("n/a" if not math.isfinite(m) else f"{m:.3f} ± {s:.3f}") + (f" ({bad} diverged)" if bad else ""))
        ref = source_at(std)
        rows.append([f"{std:.3g}", *cells, f"{ref[0]:.3f} / {ref[1]:.3f}" if ref else "-"])

    fig = new_figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for arm in arms:
        ms = [mean_std(v) for v in acc[arm]]
        ax.errorbar(stds, [m if math.isfinite(m) else 0.0 for m, _ in ms], yerr=[s if math.isfinite(s) else 0 for _, s in ms],
                    marker="o", capsize=3, color=f"C{list(arms).index(arm)}", label=f"{arm} (mean ± std)")
        for k in range(len(ctx.seeds)):  # every seed, small markers (diverged = 0)
            v = [vals[k] if k < len(vals) and math.isfinite(vals[k]) else 0.0 for vals in acc[arm]]
            ax.plot(stds, v, ".", ms=4, alpha=0.6, color=f"C{list(arms).index(arm)}",
                    label=f"{arm}, each seed" if k == 0 else None)
    ax.axhline(trained, color="gray", ls=":", lw=0.8, label=f"'trains' threshold {trained:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("init std of every weight")
    ax.set_ylabel(f"final training accuracy ({len(ctx.seeds)} seeds; diverged = 0)")
    ax.set_title("I5: batch norm vs init scale")
    ax.legend(fontsize=7)
    figures = [ctx.save_figure(fig, "train_acc_vs_init_std")]

    n = len(stds)
    table = md_table(["init std", "train acc without BN", "train acc with BN", "source (without / with BN)"], rows)
    table += (f"\n\nStds that train (final train acc >= {trained:.2f}): without BN {counts['without BN']}/{n}, "
              f"with BN {counts['with BN']}/{n}. Reference: without BN about 2-3 of 16 (std 0.16-0.3), with BN almost all.")
    nb, nn_ = counts["with BN"], counts["without BN"]
    numbers = {"trained_with_bn": nb, "trained_without_bn": nn_, "n_stds": n, "seeds": list(ctx.seeds),
               "classes": ctx.classes(base), "stds": [float(x) for x in stds], "acc": acc}
    held, text = verdict(numbers)
    return Outcome(table, held, text, figures, numbers, summary=f"stds that train: BN {nb}/{n}, plain {nn_}/{n}")
