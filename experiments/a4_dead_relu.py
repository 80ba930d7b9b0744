"""A4: ReLU units die when the learning rate is too high (cs231n notes, Neural Networks 1:
"as much as 40% of your network can be dead" with a learning rate set too high).

MLP 784-256-256-10 ReLU (He init, zero biases) on 10,000 MNIST training images, plain SGD,
batch 100, 3 epochs, learning rate over a log grid; same seeds (same initial weights and
batches) at every rate. After training, each hidden unit's pre-activation is computed on every
training image; a unit is dead when it is never positive there (its ReLU outputs 0 for the whole
training set, so it gets no gradient and stays dead). The same count on the initial weights
(before any update) is the baseline.
"""

from __future__ import annotations

import math

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import INCONCLUSIVE, every, fmt, higher, md_table, mean, mean_std, three_way
from nnbasics.viz.figures import new_figure

ID = "A4"
TITLE = "Dead ReLUs against the learning rate"
CLAIM = ("ReLUs die at high learning rates: with a too-high rate \"as much as 40% of your network can be dead\" "
         "(cs231n), i.e. more units never fire after training at a high rate than at a low one")
REFERENCE = "cs231n notes (Neural Networks 1, ReLU cons): \"as much as 40% of your network can be dead\" at a too-high LR"

PROTOCOL = ("no published setup (cs231n's \"as much as 40%\" names no network or rate): the suite's own, 784-256-256-10 "
            "ReLU MLP (He init, zero biases) on 10,000 MNIST training images, plain SGD, batch 100, 3 epochs at lr 0.01, "
            "0.03, 0.1, 0.3, 1 and 3; a unit is dead when it is never positive on the training set")
AT_PROTOCOL = ("default", "full")  # budget=full runs default's setup
SCALE_DOWN = ""


def differs(numbers: dict, budget: str) -> str:
    """Why ours may differ: the dead fractions per rate and the rates that diverged, read from the run."""
    dead = {float(k): v for k, v in numbers.get("dead", {}).items()}
    trained = [f"{lr:g}: {fmt(*mean_std(v), percent=True)}" for lr, v in sorted(dead.items()) if v]
    diverged = [f"{lr:g}" for lr, v in sorted(dead.items()) if not v]
    init = numbers.get("dead_init", [])
    return (f"cs231n's \"as much as 40%\" names no network, rate or training length, so the protocol is the suite's own "
            f"(run as such at budget={budget}). Dead hidden units after training, by learning rate: " + "; ".join(trained)
            + (f" (at initialization {fmt(*mean_std(init), percent=True)})" if init else "")
            + (f"; every seed diverged at lr {', '.join(diverged)}" if diverged else "") + ". "
            "Plain SGD from He init for 3 epochs leaves the largest rate that still trains just below the first that "
            "diverges on this half-decade grid; a finer grid in between, longer training or momentum may kill many "
            "more units before a run blows up.")


# No hand-set fractions: held if some larger (non-diverged) rate leaves more hidden units dead than the
# smallest rate AND than at initialization, each difference separated by >= 2 standard errors (the
# suite's rule). The source's 40 % is "as much as", a reference, not a threshold.


def verdict(numbers: dict) -> tuple[bool | None, str]:
    """``dead``: {lr: [dead fraction per completed seed]}, ``dead_init``: [per seed]."""
    dead = {float(k): v for k, v in numbers["dead"].items()}
    lrs = sorted(dead)
    ok = [lr for lr in lrs[1:] if dead[lr]]
    if not dead[lrs[0]] or not ok:
        return None, INCONCLUSIVE + "the smallest rate or every larger one diverged in every seed"
    low, init = dead[lrs[0]], numbers["dead_init"]
    high_lr = max(ok, key=lambda lr: mean(dead[lr]))
    high = dead[high_lr]
    # three ways: above both, separated -> held; below either, separated -> not; else inside the seed spread
    held = every([higher(high, low), higher(high, init)])
    return three_way(held, (f"dead fraction at the smallest lr {lrs[0]:g}: {mean(low):.3f}, at init {mean(init):.3f}; most dead "
                  f"at a larger non-diverged lr ({high_lr:g}): {mean(high):.3f} (held if above both, separated by "
                  ">= 2 standard errors; not if below either, separated; else inside the seed spread)"))


def _dead_fraction(model, x, batch: int = 2000) -> tuple[float, list[float]]:
    """Fraction of hidden units whose pre-activation is never > 0 on ``x`` (all hidden layers
    together, and per layer)."""
    import torch

    hidden = [m for m in model.net if isinstance(m, torch.nn.Linear)][:-1]
    alive = [torch.zeros(m.out_features, dtype=torch.bool) for m in hidden]
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, k=k: seen.__setitem__(k, o)) for k, m in enumerate(hidden)]
    with torch.no_grad():
        for s in range(0, len(x), batch):
            model(x[s:s + batch])
            for k in range(len(hidden)):
                alive[k] |= (seen[k] > 0).any(dim=0)
    for h in hooks:
        h.remove()
    per_layer = [1.0 - float(a.float().mean()) for a in alive]
    total = sum(int((~a).sum()) for a in alive) / sum(len(a) for a in alive)
    return total, per_layer


def run(ctx: Context) -> Outcome:
    import torch

    from nnbasics.nn.models import build_model

    lrs = ctx.pick(smoke=[0.01, 1.0], default=[0.01, 0.03, 0.1, 0.3, 1.0, 3.0])
    base = ctx.pick(
        smoke=["data=spiral", "data.train_size=200", "model.width=32", "epochs=5", "batch_size=20"],
        default=["data=mnist", "data.train_size=10000", "model.width=256", "epochs=3", "batch_size=100"],
    ) + ["model.depth=2", "activation=relu", "init=he_normal", "init.bias=0.0", "optimizer=sgd", "scheduler=constant",
         "regularization=none", "checkpoint=true", "eval_every=1000"]
    dead, per_layer, accs, diverged, init_dead = {}, {}, {}, {}, []
    trained = ctx.train_arms({f"lr {lr}": base + [f"optimizer.lr={lr}"] for lr in lrs})  # one population where the engine can
    for lr in lrs:
        runs = trained[f"lr {lr}"]
        dead[lr], per_layer[lr], accs[lr], diverged[lr] = [], [], [], 0
        for r in runs:
            if r.get("status") != "completed":
                diverged[lr] += 1
                continue
            model, bundle = ctx.model_of(r)
            total, layers = _dead_fraction(model, bundle.train.x)
            dead[lr].append(total)
            per_layer[lr].append(layers)
            accs[lr].append(r["test/acc"])
            if lr == lrs[0]:  # the initial weights of this seed (same for every rate): the baseline
                from omegaconf import OmegaConf

                cfg = OmegaConf.load(f"{r['run_dir']}/config.yaml")
                torch.manual_seed(int(cfg.seed))
                init_model = build_model(cfg, tuple(bundle.train.x.shape[1:]), bundle.out_features).eval()
                init_dead.append(_dead_fraction(init_model, bundle.train.x)[0])

    rows, numbers = [], {}
    n = len(ctx.seeds)
    for lr in lrs:
        m, s = mean_std(dead[lr])
        layer_means = [mean_std([pl[k] for pl in per_layer[lr]])[0] for k in range(len(per_layer[lr][0]))] \
            if per_layer[lr] else []
        rows.append([f"{lr:g}", "n/a" if not math.isfinite(m) else f"{100 * m:.1f} ± {100 * s:.1f} %",
                     ", ".join(f"{100 * v:.1f} %" for v in layer_means) or "-",
                     "n/a" if not accs[lr] else f"{100 * mean_std(accs[lr])[0]:.1f} %",
                     f"{diverged[lr]}/{n}"])
    fig = new_figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    ok = [lr for lr in lrs if dead[lr]]
    ax.errorbar(ok, [100 * mean_std(dead[lr])[0] for lr in ok], yerr=[100 * mean_std(dead[lr])[1] for lr in ok],
                marker="o", capsize=3, label="after training (mean ± std)")
    for k in range(len(ctx.seeds)):  # every completed seed, small markers
        pts = [(lr, dead[lr][k]) for lr in ok if k < len(dead[lr])]
        ax.plot([a for a, _ in pts], [100 * b for _, b in pts], ".", color="C0", ms=5, alpha=0.6,
                label="each seed" if k == 0 else None)
    if init_dead:
        ax.axhline(100 * mean_std(init_dead)[0], color="gray", ls=":", label="at initialization")
    ax.axhline(40, color="red", ls="--", lw=0.8, label="cs231n: 'as much as 40%'")
    for lr in lrs:
        if diverged[lr]:
            ax.annotate(f"{diverged[lr]}/{n} diverged", (lr, 2), fontsize=7, rotation=90)
    ax.set_xscale("log")
    ax.set_xlabel("SGD learning rate")
    ax.set_ylabel("dead hidden units (%; never active on the training set)")
    ax.set_title("A4: dead ReLUs against the learning rate")
    ax.legend()
    figures = [ctx.save_figure(fig, "dead_relus")]

    table = md_table(["lr", "dead units (all hidden)", "dead per layer", "test acc", "diverged"], rows)
    init_m = mean_std(init_dead)[0]
    table += (f"\n\nAt initialization: {100 * init_m:.1f} % dead. Reference: \"as much as 40%\" at a too-high "
              "learning rate (cs231n, no setting given).")
    low = mean_std(dead[lrs[0]])[0]
    high_lr = max(ok[1:], key=lambda lr: mean_std(dead[lr])[0]) if len(ok) > 1 else None
    high = mean_std(dead[high_lr])[0] if high_lr is not None else float("nan")
    numbers.update({"dead": {f"{lr:g}": dead[lr] for lr in lrs}, "dead_init": init_dead})
    held, text = verdict(numbers)
    return Outcome(table, held, text, figures, numbers,
                   summary=f"dead {100 * low:.1f} % at lr {lrs[0]:g} -> {100 * high:.1f} % at lr {high_lr}")
