"""V1: look at the data and at the mistakes.

A one-hidden-layer MLP (784-100-10 ReLU, Adam, 3 epochs) trained on MNIST through the normal
training path (``ctx.train``, one run per seed), then, for the first seed's model: a grid of
training samples per class, the most confidently misclassified test images, the first layer's
weights as 28 x 28 images, and the test confusion matrix (nnbasics.viz.images), saved as PNG and
logged to TensorBoard. At the smoke budget the same on tiny synthetic 12 x 12 images (ten noisy,
shifted templates) with a short loop of its own.

This row is not a yes/no claim: the verdict is left open (None); the table reports accuracy,
the most frequent confusions and how confident the worst mistakes are.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from nnbasics.viz import images as vis
from nnbasics.suite.context import Outcome
from nnbasics.nn.models import build_model
from nnbasics.suite.stats import fmt

ID = "V1"
TITLE = "Looking at the data and the mistakes"
CLAIM = "look at the data and the mistakes: sample grids, most confident errors, first-layer weights, confusion matrix"
REFERENCE = "seed material (showing arrays as images); cs231n notes (first-layer weights as templates)"

OVERRIDES = ["model=mlp", "model.width=100", "model.depth=1", "activation=relu", "optimizer=adam",
             "preprocess=none", "regularization=none", "batch_size=128"]
CONFIDENT = 0.99  # a mistake made with at least this probability counts as "confidently wrong"


PROTOCOL = ("the seed material gives no setup (a practice, not a measurement); ours at its largest: 784-100-10 ReLU "
            "MLP on MNIST (55,000 standardized training images), Adam, batch 128, 20 epochs, 3 seeds, then the sample "
            "grid, the most confident mistakes, the first-layer weights and the confusion matrix of the first seed")
AT_PROTOCOL = ("full",)
SCALE_DOWN = "default trains 3 epochs instead of 20 (everything else the same)"


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from this run's numbers: the accuracy reached, the first seed's
    mistakes and confident mistakes, and how long the net was trained."""
    acc, sd = numbers.get("test_acc_mean"), numbers.get("test_acc_std")
    epochs = numbers.get("epochs")
    top = numbers.get("top_confusions") or []
    text = (f"Not a yes/no claim: the verdict is always open, at every budget. At budget={budget} the MLP"
            + (f" reached test accuracy {fmt(acc, sd, digits=4)} over the seeds and" if acc is not None else "")
            + f" made {numbers.get('mistakes', 0)} test mistakes (first seed), {numbers.get('confident_mistakes', 0)} "
              f"of them at p >= {CONFIDENT}"
            + (", most often " + ", ".join(f"{t} -> {p} ({c})" for t, p, c in top[:3]) if top else "")
            + ". The figures, not a threshold, are the result")
    if budget != "full":
        text += ((f"; this budget trains {epochs} epochs, not the protocol's 20" if epochs
                  else "; this budget trains fewer epochs than the protocol's 20")
                 + ", so the mistakes shown need not be those of a fully trained net")
    return text + "."


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """Not a yes/no claim (a practice: look at the data and the mistakes): always None, whatever the
    numbers; the reason names what was looked at."""
    return None, (f"not a yes/no claim: a practice to follow, shown by the figures ({numbers.get('mistakes', 0)} test "
                  f"mistakes, {numbers.get('confident_mistakes', 0)} of them at p >= {CONFIDENT})")


def synthetic_images(n: int, side: int = 12, classes: int = 10, seed: int = 0):
    """Ten classes of ``side`` x ``side`` images: a fixed random smooth template per class,
    shifted by up to one pixel and with Gaussian noise added. Returns (x N x 1 x side x side, y)."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(classes, 1, side + 4, side + 4, generator=g)
    templates = (F.avg_pool2d(raw, 5, stride=1) > 0.1).float()  # classes x 1 x side x side
    y = torch.arange(n) % classes
    x = templates[y]
    dx, dy = torch.randint(-1, 2, (2, n), generator=g)
    x = torch.stack([torch.roll(x[i], (int(dy[i]), int(dx[i])), dims=(1, 2)) for i in range(n)])
    x = x + 0.35 * torch.randn(x.shape, generator=g)
    perm = torch.randperm(n, generator=g)
    return x[perm], y[perm]


def _smoke_model(ctx, seed: int):
    x, y = synthetic_images(1200, seed=0)
    xtr, ytr, xte, yte = x[:1000], y[:1000], x[1000:], y[1000:]
    cfg = ctx.compose(["model.width=16", "model.depth=1", "activation=relu"])
    torch.manual_seed(seed)
    model = build_model(cfg, (1, 12, 12), 10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(60):
        i = torch.randint(0, len(ytr), (64,), generator=g)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xtr[i]), ytr[i]).backward()
        opt.step()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return model, (xtr, ytr, xte, yte), (1, 12, 12), tuple(str(c) for c in range(10)), acc


def _mnist_model(ctx, seed: int, epochs: int, keep: bool):
    over = ["data=mnist", f"epochs={epochs}"] + OVERRIDES + (["checkpoint=true"] if keep else [])
    result = ctx.train(over, seed=seed, name="mlp_784_100_10")
    if not keep:
        return None, None, None, None, float(result["test/acc"])
    model, bundle = ctx.model_of(result)  # the checkpoint, loaded with weights_only=True
    test = bundle.load_test()  # evaluation after training: the test split's one reading for this figure
    return model, (bundle.train.x, bundle.train.y, test.x, test.y), bundle.in_shape, bundle.classes, float(result["test/acc"])


def run(ctx) -> Outcome:
    threads = torch.get_num_threads()
    if ctx.threads:
        torch.set_num_threads(int(ctx.threads))
    try:
        accs, first = [], None
        for k, seed in enumerate(ctx.seeds):
            if ctx.smoke:
                out = _smoke_model(ctx, seed)
            else:
                out = _mnist_model(ctx, seed, ctx.pick(default=3, full=20), keep=(k == 0))
            accs.append(out[-1])
            if k == 0:
                first = out
        model, (xtr, ytr, xte, yte), in_shape, classes, _ = first
        model = model.eval()
        with torch.no_grad():
            logits = torch.cat([model(xte[i:i + 4096]) for i in range(0, len(xte), 4096)])
    finally:
        torch.set_num_threads(threads)

    C = len(classes)
    pred = logits.argmax(1)
    cm = vis.confusion_matrix(pred, yte, C)
    idx, wrong_pred, conf = vis.confident_mistakes(logits, yte, k=len(yte))
    figures = [
        ctx.save_figure(vis.class_samples(xtr, ytr, classes, per_class=ctx.pick(smoke=6, default=10), title="training samples per class"), "v1_samples"),
        ctx.save_figure(vis.mistakes_grid(xte, yte, logits, classes, k=ctx.pick(smoke=8, default=24), cols=8,
                                          title="most confident test mistakes: true->predicted (p)"), "v1_mistakes"),
        ctx.save_figure(vis.first_layer_weights(model, in_shape, units=ctx.pick(smoke=16, default=64), cols=8,
                                                title="first-layer weights (red +, blue -)"), "v1_first_layer"),
        ctx.save_figure(vis.confusion_figure(cm, classes, title="test confusion matrix"), "v1_confusion"),
    ]

    off = cm.clone()
    off.fill_diagonal_(0)
    top = torch.argsort(off.flatten(), descending=True)[:5]
    pairs = [(int(t) // C, int(t) % C, int(off.flatten()[t])) for t in top if int(off.flatten()[t]) > 0]
    n_err = int(len(idx))
    confident = int((conf >= CONFIDENT).sum())
    acc_cm = float(cm.diag().sum()) / float(cm.sum())
    mean_acc = statistics.fmean(accs)
    sd_acc = statistics.stdev(accs) if len(accs) > 1 else 0.0

    lines = ["| what | value |", "|---|---|",
             f"| test accuracy over seeds {list(ctx.seeds)} | {mean_acc:.4f} ± {sd_acc:.4f} |",
             f"| test accuracy from the confusion matrix (seed {ctx.seeds[0]}) | {acc_cm:.4f} |",
             f"| test mistakes (seed {ctx.seeds[0]}) | {n_err} of {len(yte)} |",
             f"| mistakes made with p >= {CONFIDENT} | {confident} |",
             f"| most confident mistake | {classes[int(yte[idx[0]])]} -> {classes[int(wrong_pred[0])]} at p = {float(conf[0]):.4f} |"
             if n_err else "| most confident mistake | none |",
             "| most frequent confusions (true -> predicted: count) | " +
             ", ".join(f"{classes[t]} -> {classes[p]}: {c}" for t, p, c in pairs) + " |",
             "", "Per-class test recall: " + ", ".join(
                 f"{classes[c]} {float(cm[c, c]) / max(1, int(cm[c].sum())):.3f}" for c in range(C))]
    text = (f"Not a yes/no claim. The MLP reaches {mean_acc:.4f} ± {sd_acc:.4f} test accuracy; of its {n_err} test "
            f"mistakes (seed {ctx.seeds[0]}), {confident} are made with probability >= {CONFIDENT}, and the most "
            f"frequent confusions are " + ", ".join(f"{classes[t]}->{classes[p]} ({c})" for t, p, c in pairs[:3]) +
            ". See the grids: the confident mistakes and the first-layer templates are what to look at.")
    numbers = {"test_acc_mean": mean_acc, "test_acc_std": sd_acc, "test_acc_confusion": acc_cm, "mistakes": n_err,
               "epochs": None if ctx.smoke else ctx.pick(default=3, full=20),
               "confident_mistakes": confident, "top_confusions": [[classes[t], classes[p], c] for t, p, c in pairs]}
    held, _ = verdict(numbers)
    return Outcome("\n".join(lines), held, text, figures, numbers)
