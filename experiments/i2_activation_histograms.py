"""I2: the spread of the activations layer by layer depends on the init scale
(deep-learning-from-scratch ch06/weight_init_activation_histogram.py).

1000 inputs ~ N(0, 1) of width 100 through 5 layers of 100 units, no bias, weights ~ N(0, s^2)
with s = 1, 0.01, sqrt(1/n), sqrt(2/n) (n = 100), drawn by the library's ``nnbasics.nn.init.normal_``;
sigmoid / tanh / ReLU from ``nnbasics.nn.activations``. No training: one forward pass per seed.
"""

from __future__ import annotations

import math

import torch

from nnbasics.nn.activations import get_activation
from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import md_table, mean_std
from nnbasics.viz.figures import new_figure
from nnbasics.nn.init import normal_

ID = "I2"
TITLE = "Activation histograms through 5 x 100 layers"
CLAIM = "the spread of activations per layer depends on the init scale"
REFERENCE = ("deep-learning-from-scratch `ch06/weight_init_activation_histogram.py` (5 x 100, 1000 N(0,1) inputs): "
             "sigmoid with std 1 piles up at 0 and 1 (saturation), std 0.01 collapses to 0.5, Xavier spreads; "
             "ReLU with std 0.01 is all ~0, Xavier shrinks layer by layer, He keeps the spread")

N, LAYERS, SAMPLES = 100, 5, 1000
SCALES = {"1": 1.0, "0.01": 0.01, "sqrt(1/n)": math.sqrt(1 / N), "sqrt(2/n)": math.sqrt(2 / N)}
ACTS = ("sigmoid", "tanh", "relu")
SAT = 0.4         # sigmoid, std 1: more than this fraction of layer-5 outputs within 0.1 of 0 or 1
COLLAPSE = 0.02   # sigmoid, std 0.01: layer-5 std below this
HE_KEEPS = (0.5, 2.0)  # ReLU + He: std(layer 5) / std(layer 1) inside this band
XAVIER_SHRINKS = 0.5   # ReLU + sqrt(1/n): that ratio below this
TINY = 1e-3            # ReLU + 0.01: layer-5 std below this


def forward(act: str, std: float, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, N, generator=g)
    f = get_activation(act)
    outs = []
    for _ in range(LAYERS):
        w = normal_(torch.empty(N, N), std=std, generator=g)
        x = f(x @ w.T)
        outs.append(x.detach())
    return outs


def run(ctx: Context) -> Outcome:
    stats, rows, figures = {}, [], []
    drawn = ctx.pick(smoke=("relu",), default=ACTS)  # 20 histograms a figure: the smoke run draws one
    for act in ACTS:
        fig = new_figure(12, 8) if act in drawn else None
        for i, (label, std) in enumerate(SCALES.items()):
            per_seed = [forward(act, std, s) for s in ctx.seeds]
            layer_std = [mean_std([float(o[k].std()) for o in per_seed])[0] for k in range(LAYERS)]
            sat = mean_std([float(((o[-1] < 0.1) | (o[-1] > 0.9)).float().mean()) for o in per_seed])[0]
            stats[(act, label)] = {"layer_std": layer_std, "sat5": sat}
            rows.append([act, label] + [f"{v:.3g}" for v in layer_std] + [f"{sat:.2f}" if act == "sigmoid" else "-"])
            for k in range(LAYERS if fig is not None else 0):
                ax = fig.add_subplot(len(SCALES), LAYERS, i * LAYERS + k + 1)
                v = per_seed[0][k].flatten().numpy()
                rng = (0, 1) if act == "sigmoid" else (-1, 1) if act == "tanh" else (0, max(float(v.max()), 1e-12))
                ax.hist(v, bins=30, range=rng, color="tab:blue")
                ax.set_yticks([])
                ax.tick_params(labelsize=6)
                ax.set_title(f"{label}, layer {k + 1}", fontsize=7)
        if fig is not None:
            fig.suptitle(f"I2: {act} activations per layer (rows: weight std; seed {ctx.seeds[0]})")
            fig.subplots_adjust(hspace=0.6, wspace=0.15, left=0.03, right=0.98, top=0.9, bottom=0.05)
            figures.append(ctx.save_figure(fig, f"histograms_{act}"))
    table = md_table(["activation", "weight std"] + [f"std layer {k + 1}" for k in range(LAYERS)]
                     + ["layer-5 fraction < 0.1 or > 0.9"], rows)
    ratio = lambda a, s: stats[(a, s)]["layer_std"][-1] / max(stats[(a, s)]["layer_std"][0], 1e-30)  # noqa: E731
    checks = {
        f"sigmoid std 1: {stats[('sigmoid', '1')]['sat5']:.2f} of layer 5 near 0 or 1 (> {SAT})":
            stats[("sigmoid", "1")]["sat5"] > SAT,
        f"sigmoid std 0.01: layer-5 std {stats[('sigmoid', '0.01')]['layer_std'][-1]:.2g} (< {COLLAPSE})":
            stats[("sigmoid", "0.01")]["layer_std"][-1] < COLLAPSE,
        f"ReLU He: std ratio layer 5 / layer 1 {ratio('relu', 'sqrt(2/n)'):.2f} (in {HE_KEEPS})":
            HE_KEEPS[0] <= ratio("relu", "sqrt(2/n)") <= HE_KEEPS[1],
        f"ReLU sqrt(1/n): ratio {ratio('relu', 'sqrt(1/n)'):.2f} (< {XAVIER_SHRINKS})": ratio("relu", "sqrt(1/n)") < XAVIER_SHRINKS,
        f"ReLU std 0.01: layer-5 std {stats[('relu', '0.01')]['layer_std'][-1]:.1e} (< {TINY:g})":
            stats[("relu", "0.01")]["layer_std"][-1] < TINY,
    }
    held = all(checks.values())
    text = "; ".join(f"{k} ({'ok' if v else 'FAILED'})" for k, v in checks.items()) + f" (means over {len(ctx.seeds)} seeds)"
    numbers = {f"{a}/{s}/std_layer5": d["layer_std"][-1] for (a, s), d in stats.items()}
    numbers["sigmoid/1/saturated_layer5"] = stats[("sigmoid", "1")]["sat5"]
    summary = (f"sigmoid std1 saturated {stats[('sigmoid', '1')]['sat5']:.2f}; ReLU std ratio L5/L1: He "
               f"{ratio('relu', 'sqrt(2/n)'):.2f}, 1/n {ratio('relu', 'sqrt(1/n)'):.2f}")
    return Outcome(table, held, text, figures, numbers, summary=summary)
