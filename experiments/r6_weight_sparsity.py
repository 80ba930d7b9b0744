"""R6: L1 makes weights sparse, L2 makes them small and spread (seed material).

784-256-256-10 ReLU MLP (He init) on MNIST (55,000 training images, inputs standardized), SGD
with momentum 0.9, LR 0.05, batch 128, 5 epochs, cosine decay to 0; same seeds (same initial
weights and batches) for every arm. Four arms, penalties on the Linear weights only:

- none;
- L1: loss += lambda_1 * sum |W|;
- L2: loss += lambda/2 * sum ||W||^2, lambda = 2.5e-3;
- elastic net: half of each (lambda/2 and lambda_1/2).

Comparable strength, fixed beforehand: lambda_1 = lambda * E|w0| for a first-layer weight at
initialization (E|w0| = sigma0 * sqrt(2/pi), sigma0 = sqrt(2/784), He), so both penalties pull
a typical initial first-layer weight towards 0 equally hard (lambda_1 ~ 1.0e-4). The accuracy
each costs is reported beside it rather than equalized.

After training, every weight matrix (the biases are not penalized and not counted) is compared
with its own initial spread sigma0 (the std of that layer's weights as drawn at initialization,
same seed): the fraction of near-zero weights |w| < 1e-3 sigma0, < 1e-2 sigma0 (the verdict's)
and < 1e-1 sigma0, the count of exact zeros (plain SGD on the L1 subgradient lambda_1 sign(w)
makes weights jitter around 0 instead of landing on it, so exact zeros are rare: the near-zero
fraction is the measure), the std and the L2 norm of all weights, and their kurtosis (3 for a
Gaussian; a sparse, peaked distribution is far above 3).

Budgets: smoke = spiral, 2 x 32, 10 epochs; default = as above; full = default with 30 epochs.
"""

from __future__ import annotations

import math

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import INCONCLUSIVE, checks_verdict, every, finite, fmt, higher, lower, md_table, mean, mean_std
from nnbasics.viz.figures import new_figure

ID = "R6"
TITLE = "L1 vs L2 vs elastic net: weight sparsity and size"
CLAIM = ("L1 makes weights sparse, L2 makes them small and spread (the seed material: L1 drives many weights to "
         "near zero, L2 shrinks all of them and prefers many small, diffuse ones; no published numbers)")
REFERENCE = ("seed material: the L1 penalty drives many weights to (near) zero, a sparse network that uses a few "
             "inputs; L2 shrinks all weights and prefers many small, diffuse ones. No published numbers")

L2_LAMBDA = 2.5e-3
SIGMA0_FIRST = math.sqrt(2 / 784)  # He init std of the first layer on MNIST
L1_LAMBDA = L2_LAMBDA * SIGMA0_FIRST * math.sqrt(2 / math.pi)  # ~1.0e-4: the same pull on a typical initial weight
ARMS = {
    "none": ["regularization=none"],
    "L1": ["regularization=l1", f"regularization.l1={L1_LAMBDA:.4g}"],
    "L2": ["regularization=l2", f"regularization.weight_decay={L2_LAMBDA:g}"],
    "elastic net": ["regularization=elastic_net", f"regularization.weight_decay={L2_LAMBDA / 2:g}",
                    f"regularization.l1={L1_LAMBDA / 2:.4g}"],
}
PROTOCOL = ("the seed material gives no setup; ours at its largest: 784-256-256-10 ReLU MLP (He init) on MNIST (55,000 "
            "standardized training images), SGD momentum 0.9, LR 0.05, batch 128, 30 epochs with cosine decay, arms "
            "none / L1 1.0e-4 / L2 2.5e-3 / elastic net (half of each), 3 seeds")
AT_PROTOCOL = ("full",)
SCALE_DOWN = "default trains 5 epochs instead of 30 (everything else the same)"
NEAR = (1e-3, 1e-2, 1e-1)   # near-zero thresholds, in units of the layer's initial std
VERDICT_NEAR = 1e-2         # the threshold the verdict reads
# Held if L1's near-zero fraction is above L2's and above the unregularized net's, and L2's weights have
# a smaller std and a smaller L2 norm than the unregularized net's: each difference separated by >= 2
# standard errors over seeds (the suite's rule; no hand-set factor). Not held if any of them is separated
# the other way; otherwise (some difference inside the seed spread) inconclusive.


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``<arm>/<statistic>``: per-seed lists (``near 0.01``, ``std``, ``norm``, ``test_cost``)."""
    key = f"near {VERDICT_NEAR:g}"
    n = lambda arm, k: numbers.get(f"{arm}/{k}", [])  # noqa: E731
    if not all(n(a, key) for a in ("none", "L1", "L2")):
        return None, INCONCLUSIVE + "an arm has no completed run"
    checks = {
        f"near-zero (|w| < {VERDICT_NEAR:g} sigma0) fraction: L1 {100 * mean(n('L1', key)):.2f} % above L2 "
        f"{100 * mean(n('L2', key)):.2f} % and none {100 * mean(n('none', key)):.2f} %":
            every([higher(n("L1", key), n("L2", key)), higher(n("L1", key), n("none", key))]),
        f"weight std L2 {mean(n('L2', 'std')):.4f} below none {mean(n('none', 'std')):.4f}": lower(n("L2", "std"), n("none", "std")),
        f"weight norm L2 {mean(n('L2', 'norm')):.2f} below none {mean(n('none', 'norm')):.2f}": lower(n("L2", "norm"), n("none", "norm")),
    }  # three ways: separated the claimed way (ok), the other way (FAILED), or inside the seed spread
    held, text = checks_verdict(checks, "(per seed; separated = >= 2 standard errors)")
    return held, text + "; test acc cost vs none: " + ", ".join(
        f"{a} {100 * mean(n(a, 'test_cost')):+.2f}" for a in ARMS if a != "none") + " points"


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from the run's numbers (``<arm>/near 0.01``, ``<arm>/std``,
    ``<arm>/norm``, ``<arm>/test_cost`` per seed): what the arms measured, and what the fixed
    (untuned) penalty strengths and the schedule leave open."""
    key = f"near {VERDICT_NEAR:g}"

    def n(arm: str, k: str) -> list:
        return list(numbers.get(f"{arm}/{k}") or [])

    def pct(arm: str) -> str:
        return fmt(*mean_std(n(arm, key)), percent=True, digits=4)

    setup = {"smoke": "toy spiral data, 2 x 32 units, 10 epochs",
             "full": "784-256-256-10 on 55,000 MNIST images, 30 epochs: the protocol"}.get(
        budget, "784-256-256-10 on 55,000 MNIST images, 5 epochs where the protocol trains 30")
    elastic = f" and {pct('elastic net')} for elastic net" if finite(n("elastic net", key)) else ""
    text = (f"The seed material publishes no numbers, so nothing here is compared with a figure. At budget={budget} "
            f"({setup}) L1 left {pct('L1')} of the weights below {VERDICT_NEAR:g} sigma0, against {pct('L2')} for L2, "
            f"{pct('none')} without a penalty{elastic}; L2's weight std is {fmt(*mean_std(n('L2', 'std')), digits=4)} "
            f"against {fmt(*mean_std(n('none', 'std')), digits=4)} without a penalty, its L2 norm "
            f"{fmt(*mean_std(n('L2', 'norm')))} against {fmt(*mean_std(n('none', 'norm')))}.")
    costs = [(a, n(a, "test_cost")) for a in ARMS if a != "none" and finite(n(a, "test_cost"))]
    if costs:
        text += " Test accuracy cost against no penalty (points; + = lower accuracy): " + ", ".join(
            f"{a} {100 * mean(c):+.2f}" for a, c in costs) + "."
    return text + (f" A different verdict would come from the penalty strengths, fixed beforehand and not tuned "
                   f"(lambda = {L2_LAMBDA:g}, lambda_1 = {L1_LAMBDA:.3g}, matched on a typical initial first-layer weight "
                   "only), from the schedule's length, or from how sparsity is counted: SGD on L1's subgradient (no "
                   "proximal step) makes weights jitter around 0 rather than land on it, so the measure is the near-zero "
                   "fraction, not exact zeros.")


def _weights(model) -> list:
    from nnbasics.optim.regularization import weight_layers

    return [m.weight.detach().float().reshape(-1) for m in weight_layers(model)]


def _stats(final: list, initial: list) -> dict:
    import torch

    sig = [float(w0.std()) for w0 in initial]
    rel = torch.cat([w / s for w, s in zip(final, sig)])
    raw = torch.cat(final)
    out = {f"near {t:g}": float((rel.abs() < t).float().mean()) for t in NEAR}
    z = (rel - rel.mean()) / rel.std()
    out.update({"exact zeros": float((raw == 0).float().mean()), "std": float(raw.std()),
                "norm": float(raw.norm()), "norm / init": float(raw.norm() / torch.cat(initial).norm()),
                "kurtosis": float((z ** 4).mean())})
    return out


def run(ctx: Context) -> Outcome:
    import torch
    from omegaconf import OmegaConf

    from nnbasics.nn.models import build_model

    base = ctx.pick(
        smoke=["data=spiral", "model.width=32", "epochs=10", "batch_size=50"],
        default=["data=mnist", "model.width=256", "epochs=5", "batch_size=128"],
        full=["data=mnist", "model.width=256", "epochs=30", "batch_size=128"],
    ) + ["model.depth=2", "activation=relu", "init=he_normal", "optimizer=momentum", "optimizer.lr=0.05",
         "optimizer.momentum=0.9", "scheduler=cosine", "eval_every=1000", "checkpoint=true"]

    stats, accs, first_layer = {}, {}, {}
    trained = ctx.train_arms({arm: base + over for arm, over in ARMS.items()})  # one population where the engine can
    for arm, runs in trained.items():
        stats[arm], accs[arm] = [], {"val": [], "test": []}
        for r in runs:
            if r.get("status") != "completed":
                continue
            model, bundle = ctx.model_of(r)
            cfg = OmegaConf.load(f"{r['run_dir']}/config.yaml")
            torch.manual_seed(int(cfg.seed))  # the same draw train() made: this run's initial weights
            init_model = build_model(cfg, tuple(bundle.train.x.shape[1:]), bundle.out_features)
            final, initial = _weights(model), _weights(init_model)
            stats[arm].append(_stats(final, initial))
            accs[arm]["val"].append(r["val/acc"])
            accs[arm]["test"].append(r["test/acc"])
            first_layer.setdefault(arm, []).append((final[0] / initial[0].std()).numpy())  # every seed

    def agg(arm: str, key: str) -> tuple[float, float]:
        return mean_std([s[key] for s in stats[arm]])

    none_test = mean_std(accs["none"]["test"])[0]
    rows, numbers, per_seed = [], {}, {}
    for arm in ARMS:
        for k in (f"near {VERDICT_NEAR:g}", "std", "norm"):
            per_seed[f"{arm}/{k}"] = [st[k] for st in stats[arm]]
        per_seed[f"{arm}/test_acc"] = accs[arm]["test"]
        per_seed[f"{arm}/test_cost"] = [none_test - t for t in accs[arm]["test"]]
        test = mean_std(accs[arm]["test"])
        numbers[arm] = {k: agg(arm, k)[0] for k in (stats[arm][0] if stats[arm] else {})}
        numbers[arm].update({"val_acc": mean_std(accs[arm]["val"])[0], "test_acc": test[0],
                             "test_cost": none_test - test[0]})
        rows.append([arm, *(fmt(*agg(arm, f"near {t:g}"), percent=True, digits=4) for t in NEAR),
                     fmt(*agg(arm, "exact zeros"), percent=True, digits=4), fmt(*agg(arm, "std"), digits=4),
                     fmt(*agg(arm, "norm"), digits=3), fmt(*agg(arm, "norm / init"), digits=3),
                     fmt(*agg(arm, "kurtosis"), digits=3), fmt(*mean_std(accs[arm]["val"]), percent=True),
                     fmt(*test, percent=True), f"{100 * (none_test - test[0]):+.2f}"])

    import numpy as np

    fig = new_figure(15, 4.2)
    ax1, ax2, ax3 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    n_seeds = max((len(ws) for ws in first_layer.values()), default=0)
    for i, (arm, ws) in enumerate(first_layer.items()):
        for k, w in enumerate(ws):  # every seed, one colour per arm
            lab = f"{arm} ({len(ws)} seeds)" if k == 0 else None
            ax1.hist(np.clip(w, -5, 5), bins=201, range=(-5, 5), histtype="step", lw=1, color=f"C{i}", alpha=0.7,
                     label=lab)
            ax2.hist(np.clip(np.log10(np.abs(w) + 1e-30), -8, 1), bins=120, range=(-8, 1), histtype="step", lw=1,
                     color=f"C{i}", alpha=0.7, label=lab)  # below 1e-8 sigma0 (exact zeros included): leftmost bin
    ax1.set_yscale("log")
    ax1.set_xlabel(f"first-layer weight / its initial std (each of {n_seeds} seeds)")
    ax1.set_ylabel("count (log)")
    ax1.set_title("R6: first-layer weight histograms")
    ax1.legend(fontsize=8)
    for t in NEAR:
        ax2.axvline(math.log10(t), color="gray", lw=0.8, ls=":")
    ax2.set_xlabel("log10 (|w| / initial std) (first layer, every seed; clipped to [-8, 1])")
    ax2.set_ylabel("count")
    ax2.set_title("magnitudes: near-zero thresholds dotted")
    ax2.legend(fontsize=8)
    xs = np.arange(len(NEAR))
    width = 0.8 / len(ARMS)
    for i, arm in enumerate(ARMS):
        pos = xs + (i - (len(ARMS) - 1) / 2) * width
        ax3.bar(pos, [100 * numbers[arm].get(f"near {t:g}", float("nan")) for t in NEAR], width, label=arm,
                color=f"C{i}")
        for j, t in enumerate(NEAR):  # every seed
            vals = [100 * st[f"near {t:g}"] for st in stats[arm]]
            ax3.plot([pos[j]] * len(vals), vals, "k.", ms=3, label="each seed" if i == 0 and j == 0 else None)
    ax3.set_xticks(xs, [f"< {t:g} σ0" for t in NEAR])
    ax3.set_yscale("log")
    ax3.set_ylabel("weights with |w| below (%, all layers; bar = seed mean)")
    ax3.set_title("fraction of near-zero weights")
    ax3.legend(fontsize=8)
    fig.tight_layout()
    figures = [ctx.save_figure(fig, "weight_histograms")]

    table = md_table(["arm", *(f"|w| < {t:g} sigma0" for t in NEAR), "exact zeros", "weight std", "weight L2 norm",
                      "norm / initial norm", "kurtosis of w / sigma0", "val acc", "test acc",
                      "test cost vs none (points)"], rows)
    table += (f"\n\nlambda (L2) = {L2_LAMBDA:g}, lambda_1 (L1) = {L1_LAMBDA:.3g} (equal pull on a typical initial "
              "first-layer weight); elastic net uses half of each. sigma0 = each layer's initial weight std; all weight "
              "matrices pooled, biases excluded. Reference: no published numbers (seed material).")

    key = f"near {VERDICT_NEAR:g}"
    l1, l2 = numbers["L1"].get(key, float("nan")), numbers["L2"].get(key, float("nan"))
    held, text = verdict(per_seed)
    summary = (f"near-zero (<{VERDICT_NEAR:g} sigma0): L1 {100 * l1:.1f} % vs L2 {100 * l2:.1f} %; "
               f"std L2 {numbers['L2'].get('std', float('nan')):.4f} vs none {numbers['none'].get('std', float('nan')):.4f}")
    return Outcome(table, held, text, figures, per_seed, summary=summary)
