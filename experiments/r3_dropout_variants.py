"""R3: vanilla dropout (scale at test time) and inverted dropout (scale at training time) give
the same expected activations; inverted dropout leaves the inference code untouched (cs231n notes).

Same MLP, same seeds (so the same initial weights, batches and dropout masks), hidden dropout
p = 0.5, variant vanilla vs inverted. Three measurements:

1. test accuracy of each variant (equal within noise?);
2. expectation check on each trained model: the mean over many dropout masks of the first
   dropout layer's training-mode output, divided by its evaluation-mode output (1 when training
   and inference agree in expectation);
3. inference code: each trained model's evaluation-mode outputs compared with the same model with
   its dropout layers replaced by the identity (equal for inverted; vanilla needs its x (1 - p)).
"""

from __future__ import annotations

import copy

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import checks_verdict, finite, fmt, md_table, mean, mean_std, within
from nnbasics.viz.figures import new_figure

ID = "R3"
TITLE = "Vanilla vs inverted dropout"
CLAIM = ("vanilla dropout (scale at test) and inverted dropout (scale at train) have the same expected activations; "
         "inverted leaves inference untouched (cs231n: it \"scales at train time, leaving the forward pass at test "
         "time untouched\"; no numbers published: equal test accuracy within noise)")
REFERENCE = ("cs231n notes (Neural Networks 2, Dropout): inverted dropout \"scales at train time, leaving the forward "
             "pass at test time untouched\"; both are unbiased. No published numbers: the expectation is equal test "
             "accuracy within noise")

P = 0.5
TEST_TOL = 0.01          # "equal within noise", an equivalence margin set from the claim before any run: the paired
                         # test-acc difference inside +-1 point by 2 standard errors on both sides (stats.within: the
                         # suite's rule for an equivalence; outside by 2 standard errors fails, a band over a bound is
                         # undecided)
RATIO_TOL = 0.02         # mean-over-MASKS-masks / eval activation ratio within 1 +- this, both variants (Monte Carlo)
IDENTICAL_TOL = 1e-6     # inverted: eval outputs == outputs with dropout layers removed (max abs diff)
MASKS = 200
PROTOCOL = ("the cs231n notes give no setup or numbers; ours: 784-256-256-10 ReLU MLP (He init) on 10,000 standardized "
            "MNIST training images, Adam 0.001, batch 100, 5 epochs, hidden dropout p = 0.5 vanilla vs inverted, same "
            "seeds (same weights, batches and masks), 3 seeds, then the expectation and inference checks")
AT_PROTOCOL = ("default", "full")
SCALE_DOWN = ""


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``<variant>/test_acc`` and ``<variant>/ratio``: per seed; ``<variant>/max_diff_no_dropout``."""
    inv, van = numbers["inverted/test_acc"], numbers["vanilla/test_acc"]
    d = mean(inv) - mean(van)
    r_inv, r_van = mean(numbers["inverted/ratio"]), mean(numbers["vanilla/ratio"])
    checks = {
        f"test acc inverted - vanilla {d:+.4f} (paired, per seed): within +-{TEST_TOL} by 2 standard errors":
            within(inv, van, TEST_TOL, paired=True),
        f"expectation ratios inverted {r_inv:.4f}, vanilla {r_van:.4f} within 1 +- {RATIO_TOL}":
            abs(r_inv - 1) <= RATIO_TOL and abs(r_van - 1) <= RATIO_TOL,
        f"inverted eval output vs dropout removed: max diff {numbers['inverted/max_diff_no_dropout']:.1e} "
        f"(<= {IDENTICAL_TOL}; vanilla {numbers['vanilla/max_diff_no_dropout']:.1e}, its inference must scale)":
            numbers["inverted/max_diff_no_dropout"] <= IDENTICAL_TOL,
    }
    return checks_verdict(checks)


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from the run's numbers (``<variant>/test_acc`` and ``<variant>/ratio``
    per seed, ``<variant>/max_diff_no_dropout``): the three measurements against their margins, and
    why the two variants' test accuracies can drift apart although both are unbiased."""
    inv, van = list(numbers.get("inverted/test_acc") or []), list(numbers.get("vanilla/test_acc") or [])
    paired = finite(a - b for a, b in zip(inv, van))
    n = len(paired)
    setup = ("toy spiral data: 200 points, 2 x 64 units, 15 epochs" if budget == "smoke" else
             "a 784-256-256-10 ReLU MLP on 10,000 standardized MNIST images, Adam 0.001, 5 epochs")
    text = (f"No published numbers: the claim is an identity in expectation and a code property. At budget={budget} "
            f"({setup}, hidden dropout p = {P:g}, {n} paired seed{'s' if n != 1 else ''}) inverted dropout reached test "
            f"{fmt(*mean_std(inv), percent=True)} and vanilla {fmt(*mean_std(van), percent=True)}; the paired difference "
            f"(inverted - vanilla) is {fmt(*mean_std(paired), digits=4)} against the equivalence margin of "
            f"{TEST_TOL:g}.")
    r_inv, r_van = mean(numbers.get("inverted/ratio") or []), mean(numbers.get("vanilla/ratio") or [])
    text += (f" The mask-averaged / evaluation-mode activation ratio ({MASKS} masks) is {fmt(r_inv, digits=4)} for "
             f"inverted and {fmt(r_van, digits=4)} for vanilla (1 +- {RATIO_TOL:g} needed).")
    d_inv, d_van = numbers.get("inverted/max_diff_no_dropout"), numbers.get("vanilla/max_diff_no_dropout")
    if d_inv is not None and d_van is not None:
        text += (f" With its dropout layers removed, the inverted model's evaluation output moves by at most "
                 f"{d_inv:.1e} (vanilla's by {d_van:.1e}: its inference must scale by 1 - p).")
    return text + (" The activation ratio is a Monte Carlo estimate and the inference comparison is exact, but the two "
                   "variants train different networks from the same initial weights: inverted dropout multiplies the "
                   f"kept units by 1 / (1 - p) = {1 / (1 - P):g} during training and vanilla does not, so the next layer "
                   "sees differently scaled inputs and the two Adam runs take different paths. Their test accuracies "
                   "differ by that training noise, which a short schedule and a few seeds can leave with a 2-standard-"
                   "error band wider than the margin (undecided) without either variant being biased.")


def run(ctx: Context) -> Outcome:
    import torch

    from nnbasics.nn.dropout import Dropout

    base = ctx.pick(
        smoke=["data=spiral", "data.train_size=200", "model.width=64", "model.depth=2", "epochs=15", "batch_size=50",
               "optimizer.lr=0.01"],
        default=["data=mnist", "data.train_size=10000", "model.width=256", "model.depth=2", "epochs=5",
                 "batch_size=100", "optimizer.lr=0.001"],
    ) + ["activation=relu", "init=he_normal", "optimizer=adam", "scheduler=constant", "checkpoint=true",
         "regularization=dropout", f"regularization.dropout_p={P}", "regularization.input_dropout_p=0.0",
         f"eval_every={ctx.pick(smoke=5, default=1)}"]
    variants = ["inverted", "vanilla"]
    results = ctx.train_arms({v: base + [f"model.dropout.variant={v}"] for v in variants})

    numbers, rows, per_seed = {}, [], {}
    for v, runs in results.items():
        ratios, diffs = [], []
        for r in runs:
            model, bundle = ctx.model_of(r)
            x = bundle.val.x[:1000]
            drops = [m for m in model.modules() if isinstance(m, Dropout)]
            # 2. expectation: capture the first dropout layer's input, then average its training-mode output
            seen = {}
            hook = drops[0].register_forward_hook(lambda m, i, o: seen.setdefault("in", i[0].detach()))
            with torch.no_grad():
                out_eval = model(x)
            hook.remove()
            h = seen["in"]
            with torch.no_grad():
                eval_act = drops[0](h)  # model is in eval mode
                drops[0].train()
                torch.manual_seed(1234)
                mean_train = sum(drops[0](h) for _ in range(MASKS)) / MASKS
                drops[0].eval()
            ratios.append(float(mean_train.sum() / eval_act.sum()))
            # 3. inference code: the same weights with the dropout layers removed
            bare = copy.deepcopy(model)
            for name, m in list(bare.net.named_children()):
                if isinstance(m, Dropout):
                    setattr(bare.net, name, torch.nn.Identity())
            with torch.no_grad():
                diffs.append(float((bare(x) - out_eval).abs().max()))
        te = [r["test/acc"] for r in runs]
        per_seed.update({f"{v}/test_acc": te, f"{v}/ratio": ratios, f"{v}/max_diff_no_dropout": max(diffs)})
        numbers[v] = {"test_acc": mean_std(te), "ratio": mean_std(ratios), "max_diff_no_dropout": max(diffs),
                      "test_values": te}
        rows.append([v, fmt(*mean_std(te), percent=True), fmt(*mean_std(ratios), digits=4),
                     f"{max(diffs):.2e}", "scale x (1-p) at test" if v == "vanilla" else "scale / (1-p) at train"])
    paired = [a - b for a, b in zip(numbers["inverted"]["test_values"], numbers["vanilla"]["test_values"])]
    d_mean, d_std = mean_std(paired)

    fig = new_figure(10, 4)
    ax = fig.add_subplot(1, 2, 1)
    for i, (v, runs) in enumerate(results.items()):
        for k, run_ in enumerate(runs):  # every seed, one colour per variant
            hv = [r for r in run_["history"] if "val/acc" in r]
            ax.plot([r["epoch"] for r in hv], [r["val/acc"] for r in hv], "o-", ms=3, lw=1, color=f"C{i}", alpha=0.8,
                    label=f"{v} ({len(runs)} seeds)" if k == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val accuracy")
    ax.set_title(f"R3: dropout p={P}, val accuracy")
    ax.legend()
    ax = fig.add_subplot(1, 2, 2)
    for i, v in enumerate(variants):
        vals = numbers[v]["test_values"]
        ax.scatter([i] * len(vals), vals, label=v)
        m, s = numbers[v]["test_acc"]
        ax.errorbar([i + 0.15], [m], yerr=[s], fmt="k_", capsize=4)
    ax.set_xticks([0, 1], variants)
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylabel("test accuracy (each seed)")
    ax.set_title("R3: test accuracy per seed")
    fig.tight_layout()
    figures = [ctx.save_figure(fig, "dropout_variants")]

    table = md_table(["variant", "test acc", "E_mask[train act] / eval act", "max |eval - no-dropout| output",
                      "where the 1-p goes"], rows)
    table += (f"\n\nPaired test-acc difference (inverted - vanilla, same seeds): {fmt(d_mean, d_std, digits=4)}. "
              "Reference: no numbers; both variants unbiased, inverted dropout's inference pass is the plain network.")
    r_inv, r_van = numbers["inverted"]["ratio"][0], numbers["vanilla"]["ratio"][0]
    untouched = numbers["inverted"]["max_diff_no_dropout"] <= IDENTICAL_TOL
    held, text = verdict(per_seed)
    per_seed["paired_diff"] = d_mean
    summary = (f"test inv {numbers['inverted']['test_acc'][0]:.3f} / van {numbers['vanilla']['test_acc'][0]:.3f}; "
               f"ratio {r_inv:.3f}/{r_van:.3f}; inverted inference untouched: {untouched}")
    return Outcome(table, held, text, figures, per_seed, summary=summary)
