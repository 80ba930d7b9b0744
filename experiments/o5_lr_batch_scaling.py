"""O5: the learning rate must follow the batch size (Goyal et al. 2017, the linear scaling rule).

784-128-128-10 ReLU MLP (He init) on MNIST, momentum SGD (0.9) as in Goyal et al., batch 8, 32,
128, 512, 2048 at equal epochs (so a larger batch makes proportionally fewer updates). The base
LR is tuned at the base batch 128 over {0.01, 0.03, 0.1, 0.3} by validation accuracy (mean over seeds;
an LR at which a seed diverges is never chosen: ``Context.tune_lr``).
Two arms from there: *fixed* keeps that LR at every batch; *linear* scales it as
lr = base_lr * B / 128 (``optimizer.lr_scaling=linear optimizer.base_batch_size=128``). Both
arms use the same schedule, linear warm-up over the first epoch (Goyal's gradual warm-up,
``scheduler.warmup_steps`` = one epoch of updates at each batch) then cosine decay, so the LR
rule is the only difference and at the base batch the arms are one and the same run. Same seeds,
same data order. A seed that diverges counts as accuracy 0 in the verdict (shown as diverged in
the table).

Default budget: 20,000 training images (a subset: batch 8 makes 2,500 updates per epoch on a
2-core CPU), 5,000 validation, 4 epochs. Smoke: spiral, batches 8 / 32 / 128 around base 32.
Full: all 55,000 training images, 10 epochs, batches up to 8192.
"""

from __future__ import annotations

import math

from nnbasics.data.datasets import load_data
from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import INCONCLUSIVE, fmt, fmt_values, higher, md_table, mean, mean_std, separated, three_way
from nnbasics.viz.figures import new_figure

ID = "O5"
TITLE = "Learning rate vs batch size: fixed LR vs the linear scaling rule"
CLAIM = ("the learning rate must follow the batch size: with lr = 0.1 x kn/256 and gradual warm-up Goyal et al. keep "
         "ResNet-50's ImageNet top-1 error at 23.6 % from batch 256 to 8k (23.7 % at 8k), while a fixed lr loses "
         "accuracy as the batch grows; the rule breaks beyond 8k (24.4 % at 16k)")
REFERENCE = ("Goyal et al. 2017, \"Accurate, Large Minibatch SGD\": lr = 0.1 x kn/256 with 5 epochs of gradual "
             "warm-up keeps ResNet-50's ImageNet error at 23.6 % from batch 256 to 8k (23.7 % at 8k); it breaks "
             "beyond that (24.4 % at 16k, 27 % at 32k, Fig. 1)")

PROTOCOL = ("Goyal et al. 2017: ResNet-50 on ImageNet, 90 epochs, momentum SGD 0.9, lr = 0.1 x kn/256 with 5 epochs of "
            "gradual warm-up, batches 256 to 8k (16k-64k where it breaks), a GPU-cluster protocol no budget here runs; "
            "budget=full runs the suite's analogue: 784-128-128-10 ReLU MLP on all 55,000 MNIST training images, "
            "10 epochs, batches 8 to 8192")
AT_PROTOCOL = ()
SCALE_DOWN = ("default runs the same MLP analogue on 20,000 MNIST training images (5,000 validation), 4 epochs, batches 8 "
              "to 2048 around base batch 128, base lr tuned over {0.01, 0.03, 0.1, 0.3}, one epoch of linear warm-up "
              "then cosine decay")

TOL = 0.01        # "keeps accuracy" (an equivalence margin, set from the claim before any run): the scaled arm's
                  # mean val acc is at most 1 point below the base batch's (Goyal: 23.6 % -> 23.7 % counts as kept)
LARGE = 4         # "as the batch grows": at some batch at least LARGE x the base batch ...
                  # ... the scaled arm also beats the fixed arm, separated by the suite's rule (2 standard errors)


def near_base(numbers: dict) -> dict[int, bool]:
    """{batch: the linear arm's mean val acc is within TOL of the base batch's}."""
    acc = numbers["acc"]
    base = mean(acc["fixed"][str(numbers["base_batch"])])
    return {int(b): mean(v) >= base - TOL for b, v in acc["linear"].items()}


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``acc``: {"fixed" | "linear": {batch: [val acc per seed, diverged = 0]}}, ``base_batch``."""
    acc, base_batch = numbers["acc"], numbers["base_batch"]
    near = near_base(numbers)
    large = sorted(int(b) for b in acc["linear"] if int(b) >= LARGE * base_batch)
    if not large:
        return None, INCONCLUSIVE + f"no batch of at least {LARGE} x {base_batch} was run"
    # per large batch, three ways: not within TOL of the base (a fixed margin on the means) -> no; within it and
    # above the fixed arm, separated -> ok; below it, separated -> no; else inside the seed spread (undecided)
    wins = {b: higher(acc["linear"][str(b)], acc["fixed"][str(b)]) if near[b] else False for b in large}
    held = True if any(w is True for w in wins.values()) else (None if any(w is None for w in wins.values()) else False)
    mark = {True: "ok", False: "no", None: "inside the seed spread"}
    text = (f"base batch {base_batch}: val acc {mean(acc['fixed'][str(base_batch)]) * 100:.2f} %; "
            + "; ".join(f"batch {b}: linear {mean(acc['linear'][str(b)]) * 100:.2f} % vs fixed "
                        f"{mean(acc['fixed'][str(b)]) * 100:.2f} % ({mark[wins[b]]})" for b in large)
            + f"; held if at some batch >= {LARGE} x {base_batch} the linear arm is within {TOL * 100:g} pt of the base "
              "and beats the fixed arm, separated by >= 2 standard errors (per-seed values, diverged = 0); not held if "
              "at every such batch it is not within that margin or is below the fixed arm, separated; else undecided")
    return three_way(held, text)


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ, written from the run's numbers (``acc``, ``base_batch``, ``base_lr``; the
    training-set size and epochs when the run recorded them)."""
    acc, base_batch = numbers.get("acc") or {}, numbers.get("base_batch")
    fixed, linear = acc.get("fixed") or {}, acc.get("linear") or {}
    base_lr = numbers.get("base_lr")
    if base_batch is None or not linear:
        return f"At budget={budget} the run recorded no accuracies by batch size: nothing to compare with Goyal et al."

    def shown(values: list[float]) -> str:  # as the table shows it: a diverged seed (counted as 0) left out
        if values and all(v <= 0 for v in values):
            return f"diverged in {len(values)}/{len(values)} seeds"
        return fmt_values([v if v > 0 else math.nan for v in values], percent=True)

    def lr(b: int, arm: str) -> str:
        if base_lr is None:
            return f"{arm} arm"
        return f"{arm} lr {base_lr * (b / base_batch if arm == 'linear' else 1):.4g}"

    batches = sorted(int(b) for b in linear)
    large = [b for b in batches if b >= LARGE * base_batch]
    n_train, epochs = numbers.get("train_images"), numbers.get("epochs")
    text = (f"At budget={budget} the base" + (f" lr {base_lr:g}" if base_lr is not None else "")
            + f" reached val acc {shown(fixed.get(str(base_batch), []))} at the base batch {base_batch}")
    for b in large:
        gain = mean(linear[str(b)]) - mean(fixed.get(str(b), []))
        text += (f"; at batch {b}: {lr(b, 'linear')} {shown(linear[str(b)])}, {lr(b, 'fixed')} "
                 f"{shown(fixed.get(str(b), []))} (linear - fixed {gain * 100:+.1f} points, "
                 + ("separated" if separated(linear[str(b)], fixed.get(str(b), [])) else "inside the seed spread")
                 + ")")
    near = near_base(numbers) if str(base_batch) in fixed else {}
    holds_to = base_batch
    for b in (x for x in batches if x > base_batch):
        if not near.get(b):
            break
        holds_to = b
    text += (f". The linear rule stayed within {TOL * 100:g} pt of the base up to batch {holds_to}"
             + ("" if holds_to == batches[-1] else f" and not at {min(b for b in batches if b > holds_to)}") + ".")
    top = batches[-1]
    if n_train and epochs:
        per_epoch = math.ceil(n_train / top)
        text += (f" With equal epochs on {n_train:,} images, batch {top} makes only {per_epoch * epochs:,} updates, "
                 f"{per_epoch} of them warm-up,")
    else:
        text += (f" With equal epochs batch {top} makes {top // base_batch}x fewer updates than batch {base_batch}, "
                 "its first epoch of them warm-up,")
    text += (" where Goyal's 8k batch still makes ~14,000 (90 epochs of ImageNet's 1.28M images). A BN-free MLP "
             "also tolerates a much smaller largest lr than a BN ResNet, so the rule can break at a far smaller "
             "batch here than Goyal's 8k.")
    return text


def accs(runs: list[dict]) -> list[float]:
    """Final val accuracies, a diverged run counting as 0 (for the verdict)."""
    return [r["val/acc"] if r.get("status") == "completed" and math.isfinite(r["val/acc"]) else 0.0 for r in runs]


def run(ctx: Context) -> Outcome:
    base_batch = ctx.pick(smoke=32, default=128)
    batches = ctx.pick(smoke=[8, 32, 128], default=[8, 32, 128, 512, 2048], full=[8, 32, 128, 512, 2048, 8192])
    grid = ctx.pick(smoke=[0.03, 0.1, 0.3], default=[0.01, 0.03, 0.1, 0.3])
    epochs = ctx.pick(smoke=3, default=4, full=10)
    base = ctx.pick(
        smoke=["data=spiral", "model.width=32"],
        default=["data=mnist", "data.train_size=20000", "model.width=128"],
        full=["data=mnist", "model.width=128"],
    ) + ["model.depth=2", "activation=relu", "init=he_normal", "optimizer=momentum", "optimizer.momentum=0.9",
         "scheduler=cosine", "regularization=none", f"epochs={epochs}", "eval_every=1",
         f"optimizer.base_batch_size={base_batch}"]
    n = len(load_data(ctx.compose(base).data).train.y)  # training images, for one epoch of warm-up

    def overrides(batch: int, scaling: str) -> list[str]:
        warmup = math.ceil(n / batch)  # one epoch of updates
        return base + [f"batch_size={batch}", f"optimizer.lr_scaling={scaling}", f"scheduler.warmup_steps={warmup}"]

    # 1. the base LR: tuned at the base batch on validation accuracy (mean over the seeds)
    base_lr, tried = ctx.tune_lr(overrides(base_batch, "none"), grid, seeds=ctx.seeds, name=f"tune_B{base_batch}")
    tuning = {lr: t.runs for lr, t in tried.items()}
    # 2. both arms over the batches (at the base batch they are the same run)
    results: dict[str, dict[int, list[dict]]] = {"fixed": {}, "linear": {}}
    for b in batches:
        for arm in results:
            if b == base_batch:
                results[arm][b] = tuning[base_lr]
            else:
                results[arm][b] = ctx.train_seeds(overrides(b, "none" if arm == "fixed" else "linear") + [f"optimizer.lr={base_lr:g}"],
                                                  name=f"B{b}_{arm}")

    numbers = {"base_batch": base_batch, "base_lr": base_lr, "train_images": n, "epochs": epochs,
               "acc": {arm: {str(b): accs(results[arm][b]) for b in batches} for arm in results}}
    base_acc = mean_std(accs(results["fixed"][base_batch]))[0]
    means = {arm: {b: mean_std(accs(results[arm][b]))[0] for b in batches} for arm in results}
    lr_of = {"fixed": {b: base_lr for b in batches}, "linear": {b: base_lr * b / base_batch for b in batches}}
    near = near_base(numbers)
    # where the rule breaks: the largest batch up to which (from the base upward) scaled stays near the base
    holds_to = base_batch
    for b in sorted(x for x in batches if x > base_batch):
        if not near[b]:
            break
        holds_to = b
    breaks_at = next((b for b in sorted(batches) if b > holds_to), None)
    holds_down_to = base_batch
    for b in sorted((x for x in batches if x < base_batch), reverse=True):
        if not near[b]:
            break
        holds_down_to = b

    rows = []
    for b in batches:
        row = [b, math.ceil(n / b) * epochs]
        for arm in ("fixed", "linear"):
            vals = [r["val/acc"] if r.get("status") == "completed" else float("nan") for r in results[arm][b]]
            row += [f"{lr_of[arm][b]:.4g}", fmt_values(vals, percent=True)]
        gain = means["linear"][b] - means["fixed"][b]
        row += [f"{gain * 100:+.1f}", "yes" if near[b] else "no"]
        rows.append(row)
    table = (f"Base LR {base_lr:g} (tuned at batch {base_batch} over {', '.join(f'{g:g}' for g in grid)} by val acc: "
             + ", ".join(f"{g:g} -> {fmt(*mean_std(accs(tuning[g])), percent=True)}" for g in grid) + "). "
             + f"{n} training images, {epochs} epochs at every batch.\n\n"
             + md_table(["batch", "updates", "fixed lr", "fixed val acc", "linear lr", "linear val acc",
                         "linear - fixed (points)", f"linear within {TOL * 100:g} pt of base"], rows)
             + "\n\nReference (Goyal et al. 2017, ResNet-50 on ImageNet, linear rule + 5-epoch warm-up): top-1 error "
               "23.6 % at 256, 23.7 % at 8k, 24.4 % at 16k, ~27 % at 32k; the rule holds up to 8k and breaks beyond.")

    fig = new_figure(11, 4)
    ax = fig.add_subplot(1, 2, 1)
    for arm, marker in (("fixed", "s--"), ("linear", "o-")):
        ms = [mean_std(accs(results[arm][b])) for b in batches]
        ax.errorbar(batches, [m * 100 for m, _ in ms], yerr=[s * 100 for _, s in ms], fmt=marker, capsize=3,
                    label=f"{arm} LR")
    ax.axhspan((base_acc - TOL) * 100, base_acc * 100, color="gray", alpha=0.2, label=f"base - {TOL * 100:g} pt")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size (equal epochs)")
    ax.set_ylabel("final val accuracy (%) (diverged = 0)")
    lo = min(min(means[a].values()) for a in means)
    ax.set_ylim(max(0.0, lo * 100 - 2), 100)
    ax.legend()
    ax.set_title(f"O5: base lr {base_lr:g} at batch {base_batch}")
    ax2 = fig.add_subplot(1, 2, 2)
    top = max(batches)
    for arm, style in (("fixed", "s--"), ("linear", "o-")):
        h = [r for r in results[arm][top][0]["history"] if "val/acc" in r]
        ax2.plot([r["epoch"] for r in h], [r["val/acc"] * 100 for r in h], style, ms=3,
                 label=f"{arm} (lr {lr_of[arm][top]:.3g})")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val accuracy (%) (seed 0)")
    ax2.set_title(f"batch {top}")
    ax2.legend()
    fig.tight_layout()
    figures = [ctx.save_figure(fig, "accuracy_vs_batch")]

    held, text = verdict(numbers)
    text += (f". The linear rule holds up to batch {holds_to}" + (f" and breaks at {breaks_at}" if breaks_at else
             " (the largest tried)") + f"; downwards it holds to batch {holds_down_to}.")
    numbers.update(holds_to=holds_to, holds_down_to=holds_down_to)
    summary = (f"base {base_acc * 100:.1f} % at {base_batch}; at {top}: linear {means['linear'][top] * 100:.1f} % vs "
               f"fixed {means['fixed'][top] * 100:.1f} %; rule holds to {holds_to}"
               + (f", breaks at {breaks_at}" if breaks_at else ""))
    return Outcome(table, held, text, figures, numbers, summary=summary)
