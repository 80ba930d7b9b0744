"""U1: one hidden layer can approximate any continuous function; depth helps in practice.

Targets: the ``curve`` toy set (x uniform in [-pi, pi], no noise) with y = sin x, a step at 0,
and |x|. Models: the configured MLP (``model=mlp activation=tanh init=xavier_uniform``) with one
hidden layer of growing width, against a three-hidden-layer MLP whose width is chosen so its
parameter count is as close as possible to the shallow one's (both counts are reported; at the
smallest widths no deep net is that small and the comparison is marked). Each is fitted by
full-batch Adam on the MSE with cosine decay for a fixed number of steps, through the engine
(``ctx.train_arms``: the seeds of a fit train as one population where the engine can; the fitted
model is reloaded from its checkpoint to draw its curve), over seeds; the error reported is the
test-split MSE (the run's ``test/loss``).

What the seed material says: one hidden layer suffices in theory (Cybenko 1989: sigmoidal units
are dense in C([a, b])), but the width it needs can be large and depth tends to buy more per
parameter in practice.
"""

from __future__ import annotations

import math
import statistics

import torch

from nnbasics.suite.context import Outcome
from nnbasics.suite.stats import every, greater, less, lower, mark, mean, three_way
from nnbasics.data.datasets import load_data

ID = "U1"
TITLE = "Universal approximation"
CLAIM = ("one hidden layer can approximate any continuous function (Cybenko 1989: a sigmoidal hidden layer of enough "
         "units is a universal approximator), so its error falls as it widens; depth helps in practice (the seed "
         "material: a deeper net of as many parameters fits better)")
REFERENCE = "Cybenko 1989 (one sigmoidal hidden layer is a universal approximator); seed material"

FUNCTIONS = ("sin", "step", "abs")
CONTINUOUS = ("sin", "abs")  # the theorem is about continuous targets; the step is shown, not judged
DEEP_DEPTH = 3
# Verdict (differences per seed, separated by >= 2 standard errors: the suite's rule; no hand-set ratio):
# one hidden layer, continuous targets: test MSE at the largest width below that at the smallest, and no
# separated rise from one width to the next;
MIN_DEPTH_WIN_FRACTION = 2 / 3  # "helps in practice": the deep net's error is below the shallow one's,
                                # separated, in at least this share of the parameter-matched pairs
# Not held if a continuous target's error at the largest width is above that at the smallest (separated),
# rises between widths (separated), or the deep net cannot reach the share even with every pair inside
# the seed spread counted for it; otherwise, where a difference inside the seed spread decides, inconclusive.
PROTOCOL = ("Cybenko 1989 is a theorem and the seed material gives no setup; ours at its largest: y = sin x, a step "
            "and |x| on [-pi, pi] (the curve toy set, no noise), one tanh hidden layer of width 1 to 512 against a "
            "3-hidden-layer net of about as many parameters, 10,000 full-batch Adam steps on the MSE, 3 seeds")
AT_PROTOCOL = ("full",)
SCALE_DOWN = "default fits widths 1 to 128 (not 512) for 1,000 full-batch Adam steps (not 10,000)"


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from this run's numbers: the one-layer test MSE at the smallest and
    largest width of each continuous target, any separated rise between widths, and the deep net's
    wins over the parameter-matched pairs."""
    mse = numbers.get("mse") or {}
    steps = numbers.get("steps")
    text = ("No published numbers: the theorem says a wide enough hidden layer exists, not that a fixed number of "
            f"Adam steps finds it. At budget={budget} ("
            + (f"{int(steps):,} full-batch Adam steps" if steps else "a fixed number of full-batch Adam steps")
            + ") one hidden layer's test MSE (mean over seeds) went")
    falls, rises = [], []
    for f in CONTINUOUS:
        if f not in mse:
            continue
        ws = sorted(mse[f], key=int)
        sh = [mse[f][w]["shallow"] for w in ws]
        lo, hi = mean(sh[0]), mean(sh[-1])
        falls.append(f"from {lo:.2e} at width {ws[0]} to {hi:.2e} at width {ws[-1]} for {f}"
                     + (f" ({hi / lo:.2g} times the width-{ws[0]} error)" if lo else ""))
        rises += [f"{f} {a} -> {b}" for a, b, x, y in zip(ws, ws[1:], sh, sh[1:]) if greater(y, x)]
    text += (" " + "; ".join(falls) if falls else " unmeasured") + "; "
    text += (f"it rose, separated, from one width to the next at {', '.join(rises)}. A rise with width is a "
             "fitting result, not a counterexample to the theorem: a fixed budget of steps may leave a wider net "
             "further from its best fit" if rises else "with no separated rise from one width to the next")
    matched = [tuple(p) for p in numbers.get("matched") or []]
    pairs = [(f, str(w)) for f, w in matched if f in mse and str(w) in mse[f]]
    wins = [p for p in pairs if less(mse[p[0]][p[1]]["deep"], mse[p[0]][p[1]]["shallow"])]
    losses = [p for p in pairs if greater(mse[p[0]][p[1]]["deep"], mse[p[0]][p[1]]["shallow"])]
    text += (f". At equal parameter count the {DEEP_DEPTH}-hidden-layer net was lower, separated, in {len(wins)} of "
             f"{len(pairs)} matched pairs and higher, separated, in {len(losses)} (the claim needs "
             f"{MIN_DEPTH_WIN_FRACTION:.0%} wins); the seed material gives no count to compare with.")
    if budget != "full":
        text += (" The full budget fits widths up to 512 for 10,000 steps (this budget: widths "
                 + (f"up to {max((max(map(int, mse[f])) for f in mse), default=0)}" if mse else "fewer")
                 + "), which gives the wider nets more time to approach what the theorem allows.")
    return text


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``mse``: {function: {width: {"shallow" | "deep": [test MSE per seed]}}} (widths as strings),
    ``matched``: [[function, width], ...] (pairs with parameter counts within 25 %)."""
    mse = numbers["mse"]
    ua = {}
    for f in CONTINUOUS:
        ws = sorted(mse[f], key=int)
        sh = [mse[f][w]["shallow"] for w in ws]
        # three ways: largest width below the smallest, separated (ok), above it so (FAILED), else undecided;
        # a rise between neighbouring widths, separated, refutes (one inside the seed spread is no rise)
        ua[f] = every([lower(sh[-1], sh[0]), not any(greater(b, a) for a, b in zip(sh, sh[1:]))])
    matched = [tuple(p) for p in numbers["matched"]]
    # per pair three ways: the deep net lower, separated (a win), higher so (a loss), else undecided; the
    # share holds when the wins alone reach it, fails when wins and undecided pairs together cannot
    per_pair = {(f, w): lower(mse[f][str(w)]["deep"], mse[f][str(w)]["shallow"]) for f, w in matched}
    wins = [p for p, r in per_pair.items() if r is True]
    open_ = [p for p, r in per_pair.items() if r is None]
    frac = len(wins) / len(matched) if matched else float("nan")
    if not matched:
        depth = None
    elif frac >= MIN_DEPTH_WIN_FRACTION:
        depth = True
    else:
        depth = None if (len(wins) + len(open_)) / len(matched) >= MIN_DEPTH_WIN_FRACTION else False
    held = every([*ua.values(), depth])

    return three_way(held, (
        "one hidden layer's test MSE falls with width (largest below smallest, no rise between widths, separated): "
        + ", ".join(f"{f} {mark(r)}" for f, r in ua.items())
        + f"; at equal parameter count the {DEEP_DEPTH}-hidden-layer net is lower, separated, in {len(wins)} of "
          f"{len(matched)} pairs ({frac:.0%}), {len(open_)} pair{'s' if len(open_) != 1 else ''} inside the seed "
          f"spread (needs {MIN_DEPTH_WIN_FRACTION:.0%}: {mark(depth) if matched else 'no parameter-matched pair'})"))


def mlp_params(width: int, depth: int) -> int:
    """The parameter count of a 1-in 1-out MLP of ``depth`` hidden layers of ``width`` units (weights and
    biases): 2u + (depth - 1)(u^2 + u) + u + 1."""
    return 2 * width + (depth - 1) * (width * width + width) + width + 1


def deep_width(shallow_params: int, depth: int = DEEP_DEPTH) -> int:
    """The width u of a depth-``depth`` 1-in 1-out MLP whose parameter count (``mlp_params``) is closest
    to ``shallow_params``."""
    return min(range(1, 4 * int(math.sqrt(shallow_params)) + 2),
               key=lambda u: (abs(mlp_params(u, depth) - shallow_params), u))


def overrides(function: str, width: int, depth: int, steps: int, lr: float = 0.01) -> list[str]:
    """One fit: the configured MLP (tanh, Glorot uniform) at this width and depth on one noiseless curve,
    ``steps`` full-batch Adam updates on the MSE with cosine decay, through the engine (``checkpoint=true``:
    the fitted model is reloaded to draw its curve). No divergence rule: a fit only stops on a NaN loss."""
    return ["data=curve", f"data.function={function}", "data.noise=0.0", "model=mlp", "activation=tanh",
            "init=xavier_uniform", f"model.width={int(width)}", f"model.depth={int(depth)}", "loss=mse",
            "optimizer=adam", f"optimizer.lr={lr}", "scheduler=cosine", f"steps={int(steps)}", "batch_size=full",
            "regularization=none", "preprocess=none", "checkpoint=true", f"eval_every={int(steps)}",
            "divergence_factor=null"]


def _ms(v):
    v = list(v)
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def run(ctx) -> Outcome:
    widths = ctx.pick(smoke=[2, 8], default=[1, 2, 4, 8, 16, 32, 64, 128], full=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    steps = ctx.pick(smoke=60, default=1000, full=10000)
    fits: dict[tuple[str, int, str], list[float]] = {}
    params: dict[tuple[int, str], int] = {}
    curves = {}  # (function, width) -> [(x, shallow prediction, deep prediction, train split) per seed]
    for function in FUNCTIONS:
        _fit_function(ctx, function, widths, steps, fits, params, curves)
    return _outcome(ctx, widths, steps, fits, params, curves)


def _fit_function(ctx, function, widths, steps, fits, params, curves):
    """Every width's shallow and deep fits of one curve in one call (the seeds of each train as one
    population where the engine can), then each fitted model reloaded for its test MSE's curve."""
    shapes = {(w, "shallow"): (w, 1) for w in widths} | {(w, "deep"): (deep_width(3 * w + 1), DEEP_DEPTH) for w in widths}
    arms = {key: overrides(function, u, depth, steps) for key, (u, depth) in shapes.items()}
    params.update({key: mlp_params(u, depth) for key, (u, depth) in shapes.items()})
    names = {key: f"{function} {key[1]} (width {key[0]})" for key in arms}
    trained = ctx.train_arms({names[key]: over for key, over in arms.items()})
    grid = torch.linspace(-math.pi, math.pi, 400).unsqueeze(1)
    bundle = load_data(ctx.compose(arms[(widths[0], "shallow")]).data, device="cpu")  # one curve: the runs share it
    for w in widths:
        for r1, r3 in zip(trained[names[(w, "shallow")]], trained[names[(w, "deep")]]):
            preds = []
            for arch, r in (("shallow", r1), ("deep", r3)):
                fits.setdefault((function, w, arch), []).append(float(r["test/loss"]))
                if r.get("status") != "completed":  # a fit that stopped on a NaN loss has no model to draw
                    preds.append(torch.full((len(grid), 1), math.nan))
                    continue
                with torch.no_grad():
                    preds.append(ctx.model_of(r, bundle)[0](grid))
            curves.setdefault((function, w), []).append((grid, preds[0], preds[1], bundle.train))
        ctx.log(f"{function} width {w}: shallow {_ms(fits[(function, w, 'shallow')])[0]:.2e}, "
                f"deep (3 x {deep_width(3 * w + 1)}) {_ms(fits[(function, w, 'deep')])[0]:.2e}")


def _outcome(ctx, widths, steps, fits, params, curves) -> Outcome:
    ratio = {f: _ms(fits[(f, widths[-1], "shallow")])[0] / max(_ms(fits[(f, widths[0], "shallow")])[0], 1e-12)
             for f in FUNCTIONS}
    matched = [(f, w) for f in FUNCTIONS for w in widths
               if abs(params[(w, "deep")] - params[(w, "shallow")]) <= 0.25 * params[(w, "shallow")]]
    numbers = {"mse": {f: {str(w): {a: fits[(f, w, a)] for a in ("shallow", "deep")} for w in widths} for f in FUNCTIONS},
               "matched": [[f, w] for f, w in matched]}
    held, reason = verdict(numbers)

    lines = ["| function | width (1 layer) | params | test MSE, 1 hidden layer | deep net | params | test MSE, 3 hidden layers |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for f in FUNCTIONS:
        for w in widths:
            s, d = _ms(fits[(f, w, "shallow")]), _ms(fits[(f, w, "deep")])
            mark = "" if (f, w) in matched else " (unmatched)"
            lines.append(f"| {f} | {w} | {params[(w, 'shallow')]} | {s[0]:.2e} ± {s[1]:.1e} | 3 x {deep_width(3 * w + 1)}{mark} | "
                         f"{params[(w, 'deep')]} | {d[0]:.2e} ± {d[1]:.1e} |")
    table = "\n".join(lines)

    figs = [ctx.save_figure(_fits_figure(curves, widths), "u1_fits"),
            ctx.save_figure(_error_figure(fits, params, widths), "u1_error_vs_width")]
    text = (f"{reason}. Measured ({steps} full-batch Adam steps, tanh, seeds {list(ctx.seeds)}): one hidden layer's "
            f"test MSE at width {widths[-1]} is " + ", ".join(f"{f} {ratio[f]:.2g}x" for f in FUNCTIONS) +
            f" its width-{widths[0]} error. The step target is shown, not judged (the theorem covers continuous "
            "functions; an earlier rule judged it too and was narrowed after a first default-budget run).")
    numbers.update({"error_ratio/" + f: ratio[f] for f in FUNCTIONS}, steps=steps)
    return Outcome(table, held, text, figs, numbers)


def _fits_figure(curves, widths):
    from nnbasics.viz.figures import new_figure

    shown = sorted({widths[0], widths[len(widths) // 3], widths[(2 * len(widths)) // 3], widths[-1]})
    fig = new_figure(3.0 * len(shown), 2.4 * len(FUNCTIONS))
    axes = fig.subplots(len(FUNCTIONS), len(shown), squeeze=False)
    for i, f in enumerate(FUNCTIONS):
        for j, w in enumerate(shown):
            ax = axes[i, j]
            per_seed = curves[(f, w)]
            train = per_seed[0][3]
            ax.plot(train.x[:, 0].numpy(), train.y[:, 0].numpy(), ".", ms=1.5, color="0.6", label="data")
            for k, (grid, shallow, deep, _) in enumerate(per_seed):  # every seed
                ax.plot(grid[:, 0].numpy(), shallow[:, 0].numpy(), "-", lw=1.0, color="C0", alpha=0.75,
                        label="1 hidden layer" if k == 0 else None)
                ax.plot(grid[:, 0].numpy(), deep[:, 0].numpy(), "--", lw=1.0, color="C1", alpha=0.75,
                        label=f"{DEEP_DEPTH} hidden, same params" if k == 0 else None)
            ax.set_title(f"{f}, width {w} ({len(per_seed)} seeds)", fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.3, hspace=0.45)
    return fig


def _error_figure(fits, params, widths):
    from nnbasics.viz.figures import new_figure

    fig = new_figure(4.0 * len(FUNCTIONS), 3.4)
    axes = fig.subplots(1, len(FUNCTIONS), squeeze=False)[0]
    for ax, f in zip(axes, FUNCTIONS):
        for arch, style in (("shallow", "o-"), ("deep", "s--")):
            p = [params[(w, arch)] for w in widths]
            m = [_ms(fits[(f, w, arch)]) for w in widths]
            color = "C0" if arch == "shallow" else "C1"
            ax.errorbar(p, [a for a, _ in m], yerr=[b for _, b in m], fmt=style, ms=3, capsize=2, color=color,
                        label=("1 hidden layer" if arch == "shallow" else f"{DEEP_DEPTH} hidden layers") + " (mean ± std)")
            for x, w in zip(p, widths):  # every seed
                ys = fits[(f, w, arch)]
                ax.plot([x] * len(ys), ys, ".", color=color, alpha=0.5, ms=4,
                        label="each seed" if arch == "shallow" and w == widths[0] else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel="parameters", ylabel="test MSE", title=f)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9, wspace=0.3, hspace=0.45)
    return fig
