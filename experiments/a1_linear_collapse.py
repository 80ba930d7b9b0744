"""A1: without a nonlinearity depth collapses to one linear map; XOR needs a hidden layer.

Part 1, XOR: a linear model (``model.depth=0``, logistic regression = perceptron with a smooth
loss) against a 2-4-2 tanh MLP on the XOR toy set (points in [-1, 1]^2, label = the quadrant's
sign product). Part 2, depth: on MNIST (smoke: spiral) one linear layer vs a 3-hidden-layer MLP
with the identity activation vs the same MLP with ReLU. A deep linear net is one matrix product:
we also multiply its trained weights out and check the single map gives the same outputs.
"""

from __future__ import annotations

import torch

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import fmt, md_table, mean_std
from nnbasics.viz.figures import new_figure

ID = "A1"
TITLE = "Linear models, deep linear nets and XOR"
CLAIM = "without a nonlinearity depth collapses to one linear map; XOR needs a hidden layer"
REFERENCE = "no linear model exceeds 3/4 on XOR (the best line gets three of the four quadrants)"

XOR_LINEAR_MAX = 0.78   # linear model on XOR: at most 3/4 (+ a margin for a finite noisy sample)
XOR_MLP_MIN = 0.95      # the tanh MLP must solve it
DEEP_LINEAR_TOL = 0.01  # deep linear at most 1 point above the linear model (val acc): depth adds nothing
RELU_GAIN = 0.02        # and the ReLU MLP at least 2 points above both
COLLAPSE_TOL = 1e-4     # max |deep linear net(x) - product map(x)| relative to the output scale


def _collapse_error(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Multiply the Linear layers out into one affine map and compare outputs."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        w = torch.eye(linears[0].in_features, dtype=torch.float64)
        b = torch.zeros(linears[0].in_features, dtype=torch.float64)
        for lin in linears:
            W, c = lin.weight.double(), lin.bias.double()
            w, b = W @ w, W @ b + c
        flat = x.reshape(len(x), -1).double()
        single = flat @ w.T + b
        deep = model(x).double()
    return float((deep - single).abs().max() / deep.abs().max().clamp_min(1e-12))


def run(ctx: Context) -> Outcome:
    # noise 0: the clean XOR (with the toy set's default noise 0.1 points near the axes swap
    # quadrants and even the best classifier errs on ~8 %)
    xor = ["data=xor", "data.n_samples=1400", "data.noise=0.0", "optimizer=adam", "optimizer.lr=0.05", "scheduler=constant",
           "batch_size=64", f"epochs={ctx.pick(smoke=15, default=60)}", "checkpoint=true"]
    lin = ctx.train_seeds(xor + ["model.depth=0"], name="xor_linear")
    mlp = ctx.train_seeds(xor + ["model.depth=1", "model.width=4", "activation=tanh", "init=xavier_uniform"],
                          name="xor_tanh_2-4-2")

    identity = ["activation=identity"]
    deep = ctx.pick(
        smoke=["data=spiral", "epochs=10", "model.width=32", "batch_size=32"],
        default=["data=mnist", "epochs=5", "model.width=256", "batch_size=128"],
    ) + ["optimizer=adam", f"optimizer.lr={ctx.pick(smoke=0.01, default=0.001)}", "scheduler=cosine", "checkpoint=true"]
    one = ctx.train_seeds(deep + ["model.depth=0"], name="linear")
    dlin = ctx.train_seeds(deep + ["model.depth=3", "init=xavier_uniform"] + identity, name="deep_linear")
    relu = ctx.train_seeds(deep + ["model.depth=3", "activation=relu", "init=he_normal"], name="deep_relu")

    model, bundle = ctx.model_of(dlin[0])
    collapse = _collapse_error(model, bundle.val.x[:512])

    acc = lambda runs, k="val/acc": mean_std([r[k] for r in runs])  # noqa: E731
    rows = [
        ["XOR", "linear (depth 0)", fmt(*acc(lin), percent=True), fmt(*acc(lin, "test/acc"), percent=True), "<= 75 %"],
        ["XOR", "2-4-2 tanh MLP", fmt(*acc(mlp), percent=True), fmt(*acc(mlp, "test/acc"), percent=True), "~100 %"],
        [bundle.name, "one linear layer", fmt(*acc(one), percent=True), fmt(*acc(one, "test/acc"), percent=True), "-"],
        [bundle.name, "3 hidden layers, identity", fmt(*acc(dlin), percent=True), fmt(*acc(dlin, "test/acc"), percent=True),
         "= linear"],
        [bundle.name, "3 hidden layers, ReLU", fmt(*acc(relu), percent=True), fmt(*acc(relu, "test/acc"), percent=True),
         "> linear"],
    ]
    table = md_table(["data", "model", "val acc", "test acc", "reference"], rows)
    table += f"\n\nDeep linear net vs the product of its weight matrices: max relative output difference {collapse:.2e}."

    from nnbasics.viz.plots import decision_boundary

    figures = []
    for name, runs in (("xor_linear", lin), ("xor_tanh_mlp", mlp)):
        m, b = ctx.model_of(runs[0])
        fig = decision_boundary(m, b.train.x, b.train.y, b.task, title=f"A1: {name} (seed {runs[0]['seed']})")
        figures.append(ctx.save_figure(fig, name))
    fig = new_figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    for label, runs in (("linear", one), ("deep linear", dlin), ("deep ReLU", relu)):
        h = runs[0]["history"]
        ax.plot([r["epoch"] for r in h], [r["val/acc"] for r in h], "o-", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val accuracy (seed 0)")
    ax.legend()
    ax.set_title(f"A1: depth without a nonlinearity ({bundle.name})")
    figures.append(ctx.save_figure(fig, "depth_val_acc"))

    n = {"xor_linear": acc(lin)[0], "xor_mlp": acc(mlp)[0], "linear": acc(one)[0], "deep_linear": acc(dlin)[0],
         "deep_relu": acc(relu)[0], "collapse_error": collapse}
    checks = {
        f"linear on XOR {n['xor_linear']:.3f} <= {XOR_LINEAR_MAX}": n["xor_linear"] <= XOR_LINEAR_MAX,
        f"tanh MLP on XOR {n['xor_mlp']:.3f} >= {XOR_MLP_MIN}": n["xor_mlp"] >= XOR_MLP_MIN,
        f"deep linear - linear = {n['deep_linear'] - n['linear']:.4f} <= {DEEP_LINEAR_TOL}":
            n["deep_linear"] - n["linear"] <= DEEP_LINEAR_TOL,
        f"deep ReLU - max(linear, deep linear) = {n['deep_relu'] - max(n['linear'], n['deep_linear']):.4f} >= {RELU_GAIN}":
            n["deep_relu"] - max(n["linear"], n["deep_linear"]) >= RELU_GAIN,
        f"product-map difference {collapse:.1e} <= {COLLAPSE_TOL}": collapse <= COLLAPSE_TOL,
    }
    held = all(checks.values())
    text = "; ".join(f"{k} ({'ok' if v else 'FAILED'})" for k, v in checks.items()) + " (val accuracies, mean over seeds)"
    summary = (f"XOR: linear {n['xor_linear']:.2f}, MLP {n['xor_mlp']:.2f}; {bundle.name}: linear {n['linear']:.3f}, "
               f"deep linear {n['deep_linear']:.3f}, ReLU {n['deep_relu']:.3f}")
    return Outcome(table, held, text, figures, n, summary=summary)
