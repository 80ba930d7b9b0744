"""O2: SGD zig-zags on an anisotropic bowl; Momentum, AdaGrad and Adam do better
(deep-learning-from-scratch ch06/optimizer_compare_naive.py).

f(x, y) = x^2 / 20 + y^2 from (-7, 2), 30 updates of the library's own optimizers
(nnbasics.optim.optimizers) with the reference's learning rates. Deterministic: no seeds, no data.
"""

from __future__ import annotations

import math

import torch

from nnbasics.suite.context import Context, Outcome
from nnbasics.suite.stats import md_table
from nnbasics.viz.figures import new_figure
from nnbasics.optim.optimizers import OPTIMIZERS

ID = "O2"
TITLE = "Optimizer trajectories on f(x, y) = x^2/20 + y^2"
CLAIM = "SGD zig-zags on an anisotropic bowl; Momentum, AdaGrad and Adam get closer to the minimum"
REFERENCE = ("deep-learning-from-scratch `ch06/optimizer_compare_naive.py`: from (-7, 2), 30 updates, SGD lr 0.95, "
             "Momentum lr 0.1 (0.9), AdaGrad lr 1.5, Adam lr 0.3; figure: SGD zig-zags across the valley, "
             "the others reach the minimum region")

START = (-7.0, 2.0)
ARMS = {  # name -> (optimizer, keyword arguments)
    "SGD": ("sgd", {"lr": 0.95}),
    "Momentum": ("momentum", {"lr": 0.1, "momentum": 0.9}),
    "AdaGrad": ("adagrad", {"lr": 1.5}),
    "Adam": ("adam", {"lr": 0.3}),
}
ZIGZAG = 0.5    # SGD zig-zags: the sign of y flips on more than this fraction of updates
BETTER = 1.0    # the others end with f below SGD's final f times this (strictly better)


def f(p: torch.Tensor) -> torch.Tensor:
    return p[0] ** 2 / 20 + p[1] ** 2


def trajectory(name: str, kwargs: dict, steps: int) -> list[tuple[float, float]]:
    p = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS[name]([p], **kwargs)
    path = [tuple(p.detach().tolist())]
    for _ in range(steps):
        opt.zero_grad()
        f(p).backward()
        opt.step()
        path.append(tuple(p.detach().tolist()))
    return path


def run(ctx: Context) -> Outcome:
    steps = 30  # cheap at every budget
    paths, rows, numbers = {}, [], {}
    for arm, (name, kwargs) in ARMS.items():
        path = trajectory(name, kwargs, steps)
        paths[arm] = path
        ys = [pt[1] for pt in path]
        flips = sum(1 for a, b in zip(ys, ys[1:]) if a * b < 0) / steps
        final = f(torch.tensor(path[-1])).item()
        dist = math.hypot(*path[-1])
        length = sum(math.dist(a, b) for a, b in zip(path, path[1:]))
        numbers[arm] = {"final_f": final, "final_distance": dist, "y_sign_flips": flips, "path_length": length}
        rows.append([arm, f"{path[-1][0]:.3f}, {path[-1][1]:.3f}", f"{final:.4f}", f"{dist:.3f}", f"{flips:.2f}",
                     f"{length:.1f}"])
        ctx.log(f"{arm}: end ({path[-1][0]:.3f}, {path[-1][1]:.3f}) f {final:.4f}")

    fig = new_figure(10, 8)
    xs = torch.linspace(-10, 10, 201)
    ys = torch.linspace(-5, 5, 101)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    Z = X ** 2 / 20 + Y ** 2
    for i, (arm, path) in enumerate(paths.items()):
        ax = fig.add_subplot(2, 2, i + 1)
        ax.contour(X.numpy(), Y.numpy(), Z.numpy(), levels=[0.25, 0.5, 1, 2, 4, 8, 16], colors="0.7", linewidths=0.8)
        ax.plot([p[0] for p in path], [p[1] for p in path], "o-", color="tab:red", ms=3, lw=1)
        ax.plot(0, 0, "+", color="k", ms=10)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-5, 5)
        ax.set_title(f"{arm} ({ARMS[arm][1]})", fontsize=9)
    fig.suptitle("O2: 30 updates on f(x, y) = x^2/20 + y^2 from (-7, 2)")
    fig.tight_layout()
    figures = [ctx.save_figure(fig, "trajectories")]

    table = md_table(["optimizer", "end point", "f at end", "distance to minimum", "fraction of updates flipping y",
                      "path length (straight line: 7.3)"], rows)
    flat = {f"{a}/{k}": v for a, d in numbers.items() for k, v in d.items()}
    sgd = numbers["SGD"]
    zig = sgd["y_sign_flips"] > ZIGZAG
    better = {a: numbers[a]["final_f"] < BETTER * sgd["final_f"] for a in numbers if a != "SGD"}
    held = zig and all(better.values())
    text = (f"SGD flips the sign of y on {sgd['y_sign_flips']:.0%} of updates (zig-zag needs > {ZIGZAG:.0%}) and ends at "
            f"f = {sgd['final_f']:.4f}; " + ", ".join(f"{a} f = {numbers[a]['final_f']:.4f}" for a in better)
            + " (each must be below SGD's)")
    summary = "final f: " + ", ".join(f"{a} {numbers[a]['final_f']:.3g}" for a in numbers)
    notes = ("The verdict reads the end point after the reference's 30 updates (decided before the first run). "
             "The zig-zag itself is measured by how often y changes sign; the path length shows how much "
             "ground each optimizer covers on the way.")
    return Outcome(table, held, text, figures, flat, summary=summary, notes=notes)
