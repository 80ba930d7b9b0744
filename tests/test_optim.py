"""Hand-written optimizers against their torch.optim twins, on Rosenbrock, and through the config.

The lockstep tests run each optimizer and its twin side by side on the same random float64
problem for 100 steps (with the learning rate changed every step, as the schedule does, and
per-group weight decay, as regularization hands it) and require equal parameters to 1e-10
relative at every step."""

from __future__ import annotations

import copy
import functools
import io
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import TOY, compose_cfg
from nnbasics.optim import optimizers as optim
from nnbasics.errors import ConfigError
from nnbasics.engine.train import train
from nnbasics.engine.validate import validate

CONF = CONF_DIR / "optimizer"

# (name, our arguments, the torch twin and its arguments)
CASES = [
    ("sgd", dict(lr=0.05), torch.optim.SGD, dict(lr=0.05)),
    ("sgd", dict(lr=0.05, weight_decay=0.01), torch.optim.SGD, dict(lr=0.05, weight_decay=0.01)),
    ("momentum", dict(lr=0.02, momentum=0.9), torch.optim.SGD, dict(lr=0.02, momentum=0.9)),
    ("momentum", dict(lr=0.02, momentum=0.5, dampening=0.3, weight_decay=0.01), torch.optim.SGD,
     dict(lr=0.02, momentum=0.5, dampening=0.3, weight_decay=0.01)),
    ("nesterov", dict(lr=0.02, momentum=0.9), torch.optim.SGD, dict(lr=0.02, momentum=0.9, nesterov=True)),
    ("nesterov", dict(lr=0.02, momentum=0.7, weight_decay=0.01), torch.optim.SGD,
     dict(lr=0.02, momentum=0.7, nesterov=True, weight_decay=0.01)),
    ("adagrad", dict(lr=0.05), torch.optim.Adagrad, dict(lr=0.05)),
    ("adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-6, weight_decay=0.01),
     torch.optim.Adagrad, dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-6, weight_decay=0.01)),
    ("rmsprop", dict(lr=0.005), torch.optim.RMSprop, dict(lr=0.005)),
    ("rmsprop", dict(lr=0.005, momentum=0.9, weight_decay=0.01), torch.optim.RMSprop,
     dict(lr=0.005, momentum=0.9, weight_decay=0.01)),
    ("rmsprop", dict(lr=0.005, centered=True, alpha=0.9), torch.optim.RMSprop,
     dict(lr=0.005, centered=True, alpha=0.9)),
    ("rmsprop", dict(lr=0.005, centered=True, momentum=0.5, eps=1e-6), torch.optim.RMSprop,
     dict(lr=0.005, centered=True, momentum=0.5, eps=1e-6)),
    ("adam", dict(lr=0.01), torch.optim.Adam, dict(lr=0.01)),
    ("adam", dict(lr=0.01, weight_decay=0.05, betas=(0.8, 0.99)), torch.optim.Adam,
     dict(lr=0.01, weight_decay=0.05, betas=(0.8, 0.99))),
    ("adam", dict(lr=0.01, amsgrad=True, eps=1e-6), torch.optim.Adam, dict(lr=0.01, amsgrad=True, eps=1e-6)),
    ("adamw", dict(lr=0.01), torch.optim.AdamW, dict(lr=0.01)),
    ("adamw", dict(lr=0.01, weight_decay=0.1, amsgrad=True), torch.optim.AdamW,
     dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("adadelta", dict(lr=1.0), torch.optim.Adadelta, dict(lr=1.0)),
    ("adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.01), torch.optim.Adadelta,
     dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.01)),
]


def case_id(name, kwargs, grouped=False) -> str:
    args = "-".join(f"{k}={v}" for k, v in kwargs.items() if k != "lr") or "default"
    return f"{name}-{args}" + ("-grouped" if grouped else "")


def make_problem(seed: int = 0):
    """A small tanh MLP on a random regression problem, in float64."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 5, generator=g, dtype=torch.float64), torch.randn(64, 3, generator=g, dtype=torch.float64)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    return model, x, y, g


def groups_of(model, grouped: bool):
    """Plain parameters, or weights-only and bias groups with their own weight decay (as
    regularization.param_groups hands them to the optimizer)."""
    if not grouped:
        return model.parameters()
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, nn.Linear)]
    return [{"params": weights, "weight_decay": 0.03}, {"params": biases, "weight_decay": 0.0}]


def lr_factor(t: int) -> float:
    """The learning rate changes every step, as a schedule makes it."""
    return 0.5 + 0.5 * abs(((t % 40) - 20) / 20)


def lockstep(ours, theirs, model_a, model_b, x, y, g, steps: int, check_every: int = 1):
    for t in range(steps):
        idx = torch.randint(0, len(x), (16,), generator=g)
        for opt in (ours, theirs):
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * lr_factor(t)
        for model, opt in ((model_a, ours), (model_b, theirs)):
            opt.zero_grad(set_to_none=True)
            nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
            opt.step()
        params = list(zip(model_a.parameters(), model_b.parameters()))
        if (t % check_every == 0 and not all(torch.allclose(pa, pb, rtol=1e-10, atol=0) for pa, pb in params)) \
                or t == steps - 1:
            for pa, pb in params:
                torch.testing.assert_close(pa, pb, rtol=1e-10, atol=0, msg=lambda m: f"step {t + 1}: {m}")


# every case with plain parameters; the first case of each optimizer also with weights-only and
# bias groups that carry their own weight decay
LOCKSTEP = [(*case, False) for case in CASES] + [
    (*case, True) for i, case in enumerate(CASES) if case[0] not in [c[0] for c in CASES[:i]]]


@pytest.mark.parametrize("name,kwargs,twin,twin_kwargs,grouped", LOCKSTEP,
                         ids=[case_id(n, kw, g) for n, kw, _, _, g in LOCKSTEP])
def test_lockstep_with_torch_twin(name, kwargs, twin, twin_kwargs, grouped):
    model_a, x, y, g = make_problem()
    model_b = copy.deepcopy(model_a)
    start = [p.detach().clone() for p in model_a.parameters()]
    ours = optim.OPTIMIZERS[name](groups_of(model_a, grouped), **kwargs)
    theirs = twin(groups_of(model_b, grouped), **twin_kwargs)
    lockstep(ours, theirs, model_a, model_b, x, y, g, steps=100)
    # the parameters moved: the comparison is not between two copies of the initialization
    moved = sum(float((p.detach() - s).norm()) for p, s in zip(model_a.parameters(), start))
    assert moved > 0.05
    # and the optimizer states agree (same names as torch for every tensor state)
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        sa, sb = ours.state[pa], theirs.state[pb]
        tensors = [k for k, v in sa.items() if torch.is_tensor(v)]
        assert tensors or name == "sgd", "no state compared"
        for key in tensors:
            torch.testing.assert_close(sa[key], sb[key], rtol=1e-10, atol=1e-300)
        if "step" in sa:
            assert int(sa["step"]) == int(sb["step"]) == 100


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
@pytest.mark.parametrize("impl", ["nnbasics", "torch"])
def test_build_optimizer_picks_implementation_with_same_hyperparameters(name, impl):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    cfg.impl = impl
    model, *_ = make_problem()
    opt = optim.build_optimizer(groups_of(model, True), cfg, batch_size=128)
    if impl == "nnbasics":
        assert type(opt) is optim.OPTIMIZERS[name]
    else:
        assert type(opt) is optim.TORCH_TWINS[name][0]
        assert opt.defaults.get("nesterov", False) == (name == "nesterov")
    # every configured hyperparameter arrives unchanged (except lr_scaling, none here); eps_mode=torch is
    # torch.optim.Adam's only placement (not one of its arguments), and ours stores only eps_mode=dlfs
    for key in optim.hyperparameters(name):
        if key not in cfg:
            continue
        if key in optim.TWIN_ONLY:
            assert cfg[key] == optim.TWIN_ONLY[key] and key not in opt.defaults
            continue
        want = tuple(cfg[key]) if key == "betas" else cfg[key]
        assert opt.defaults[key] == want, key
    # per-group weight decay overrides the configured default
    assert [gr["weight_decay"] for gr in opt.param_groups] == [0.03, 0.0]


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_state_dict_round_trip_resumes_exactly(name):
    """Save after 40 steps (weights_only load, as a resumed run does), continue for 40: the same
    parameters as 80 uninterrupted steps."""
    kwargs = dict(CASES[[c[0] for c in CASES].index(name)][1])
    model_a, x, y, g = make_problem(1)
    model_b = copy.deepcopy(model_a)
    opt_a = optim.OPTIMIZERS[name](model_a.parameters(), **kwargs)
    opt_b = optim.OPTIMIZERS[name](model_b.parameters(), **kwargs)
    lockstep(opt_a, opt_b, model_a, model_b, x, y, g, steps=40, check_every=40)
    buf = io.BytesIO()
    torch.save(opt_b.state_dict(), buf)
    buf.seek(0)
    opt_b = optim.OPTIMIZERS[name](model_b.parameters(), **kwargs)
    opt_b.load_state_dict(torch.load(buf, weights_only=True))
    lockstep(opt_a, opt_b, model_a, model_b, x, y, g, steps=40, check_every=40)


@pytest.mark.parametrize("direction", ["torch-to-nnbasics", "nnbasics-to-torch"])
@pytest.mark.parametrize("case", list({c[0]: c for c in CASES if c[0] != "sgd"}.values()),  # the last case of each
                         ids=lambda c: case_id(c[0], c[1]))
def test_state_dict_moves_between_implementations(case, direction):
    """The state (same keys, same formats as torch.optim) carries over: 30 steps with one
    implementation, then its state_dict loaded into the other, which continues in lockstep."""
    name, kwargs, twin, twin_kwargs = case
    model_a, x, y, g = make_problem(2)
    model_b = copy.deepcopy(model_a)
    make_ours = lambda m: optim.OPTIMIZERS[name](m.parameters(), **kwargs)  # noqa: E731
    make_theirs = lambda m: twin(m.parameters(), **twin_kwargs)  # noqa: E731
    first, second = (make_theirs, make_ours) if direction == "torch-to-nnbasics" else (make_ours, make_theirs)
    opt_a, opt_b = make_ours(model_a), first(model_b)
    lockstep(opt_a, opt_b, model_a, model_b, x, y, g, steps=30, check_every=30)
    moved = second(model_b)
    moved.load_state_dict(opt_b.state_dict())
    lockstep(opt_a, moved, model_a, model_b, x, y, g, steps=30, check_every=30)


BAD_ARGS = [
    ("sgd", dict(lr=-1)), ("sgd", dict(lr=0.1, weight_decay=-1)),
    ("momentum", dict(lr=-1)), ("momentum", dict(lr=0.1, momentum=-0.1)),
    ("momentum", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    ("nesterov", dict(lr=0.1, momentum=0.0)),
    ("adagrad", dict(lr=-1)), ("adagrad", dict(lr=0.1, lr_decay=-1)), ("adagrad", dict(lr=0.1, eps=-1)),
    ("adagrad", dict(lr=0.1, initial_accumulator_value=-1)),
    ("rmsprop", dict(lr=-1)), ("rmsprop", dict(lr=0.1, alpha=-0.5)), ("rmsprop", dict(lr=0.1, eps=-1)),
    ("rmsprop", dict(lr=0.1, momentum=-1)),
    ("adam", dict(lr=-1)), ("adam", dict(betas=(1.0, 0.999))), ("adam", dict(betas=(0.9, 1.0))),
    ("adam", dict(betas=(-0.1, 0.999))), ("adam", dict(eps=-1)), ("adam", dict(weight_decay=-1)),
    ("adamw", dict(lr=-1)), ("adamw", dict(betas=(0.9, 1.5))),
    ("adadelta", dict(lr=-1)), ("adadelta", dict(rho=1.5)), ("adadelta", dict(rho=-0.1)),
    ("adadelta", dict(eps=-1)), ("adadelta", dict(weight_decay=-1)),
]


@pytest.mark.parametrize("name,kwargs", BAD_ARGS, ids=[f"{n}-{kw}" for n, kw in BAD_ARGS])
def test_invalid_arguments_raise_like_torch(name, kwargs):
    twin, fixed = optim.TORCH_TWINS[name]
    twin_kwargs = {**fixed, **kwargs}
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError) as theirs:
        twin(p, **twin_kwargs)
    with pytest.raises(ValueError) as ours:
        optim.OPTIMIZERS[name](p, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_invalid_learning_rate_message():
    with pytest.raises(ValueError, match=r"^Invalid learning rate: -1$"):
        optim.SGD([nn.Parameter(torch.zeros(1))], lr=-1)


def rosenbrock_grad(p: torch.Tensor) -> torch.Tensor:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)."""
    x, y = p.tolist()
    return torch.tensor([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)], dtype=torch.float64)


def rosenbrock(p: torch.Tensor) -> float:
    x, y = p.tolist()
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


# Budgets found by hand from (-1.5, 2), where f = 12.5: plain GD needs the most updates to crawl
# along the curved valley; momentum and the adaptive methods get there in fewer.
ROSENBROCK = {
    "sgd": (dict(lr=1.8e-3), 3000),
    "momentum": (dict(lr=5e-4, momentum=0.9), 1500),
    "nesterov": (dict(lr=5e-4, momentum=0.9), 1500),
    "adagrad": (dict(lr=1.5), 3000),
    "rmsprop": (dict(lr=1e-3, centered=True, momentum=0.8), 1500),
    "adam": (dict(lr=0.05), 1000),
    "adamw": (dict(lr=0.05, weight_decay=0.0), 1000),
    # Adadelta at its default lr 1 oscillates across the valley (its step is the RMS of past steps, which
    # never decays on a deterministic gradient): f stays near 0.4; lr 0.05 gets in (f 0.0023 at 6000).
    "adadelta": (dict(lr=0.05, rho=0.9, eps=1e-6), 6000),
}


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_converges_on_rosenbrock(name):
    kwargs, steps = ROSENBROCK[name]
    p = nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
    opt = optim.OPTIMIZERS[name]([p], **kwargs)
    for _ in range(steps):
        p.grad = rosenbrock_grad(p.detach())
        opt.step()
    assert rosenbrock(p.detach()) < 1e-2  # from 12.5
    assert float((p.detach() - 1).abs().max()) < 0.15


def test_adamw_decay_is_decoupled_and_adam_decay_is_not():
    """With a zero loss gradient, AdamW still shrinks a weight by exactly (1 - lr wd) per step
    (100 -> 85.74 in 3 steps); Adam's L2 decay goes through m / sqrt(v), a step of about lr
    whatever the weight (100 -> 99.7)."""
    for cls, expect, tol in ((optim.AdamW, 100 * (1 - 0.1 * 0.5) ** 3, 1e-12), (optim.Adam, 100 - 3 * 0.1, 1e-3)):
        p = nn.Parameter(torch.tensor([100.0], dtype=torch.float64))
        opt = cls([p], lr=0.1, weight_decay=0.5)
        for _ in range(3):
            p.grad = torch.zeros_like(p)
            opt.step()
        assert p.item() == pytest.approx(expect, rel=tol), cls.__name__


def test_momentum_is_the_textbook_velocity_update_at_constant_lr():
    """v <- mu v - lr g; theta <- theta + v  (cs231n), on a fixed quadratic."""
    a = torch.tensor([1.0, 10.0], dtype=torch.float64)
    p = nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    opt = optim.Momentum([p], lr=0.01, momentum=0.9)
    theta, v = p.detach().clone(), torch.zeros(2, dtype=torch.float64)
    for _ in range(50):
        p.grad = a * p.detach()
        opt.step()
        v = 0.9 * v - 0.01 * (a * theta)
        theta = theta + v
    torch.testing.assert_close(p.detach(), theta, rtol=1e-12, atol=1e-14)


def test_closure_is_evaluated_with_grad_and_its_loss_returned():
    p = nn.Parameter(torch.tensor([3.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    assert p.item() == pytest.approx(3.0 - 0.25 * 6.0)


def test_hand_written_optimizers_never_import_torch_dynamo():
    """torch.optim.Optimizer's add_param_group / zero_grad / state_dict / load_state_dict import
    torch._dynamo on first call (~1.7 s); ours use them undecorated. Checked in a fresh process,
    since any earlier test may have imported it; a torch LR scheduler still accepts them."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from nnbasics.optim import optimizers as optim\n"
        "m = torch.nn.Linear(3, 2)\n"
        "for name, cls in optim.OPTIMIZERS.items():\n"
        "    opt = cls(m.parameters(), lr=0.1)\n"
        "    m(torch.randn(4, 3)).sum().backward(); opt.step(); opt.zero_grad()\n"
        "    opt.load_state_dict(opt.state_dict())\n"
        "    opt.add_param_group({'params': [torch.nn.Parameter(torch.zeros(1))]})\n"
        "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)\n"
        "m(torch.randn(4, 3)).sum().backward(); opt.step(); sched.step()\n"
        "assert opt.param_groups[0]['lr'] == 0.05, opt.param_groups[0]['lr']\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------------------------------------
# The kernels: one update rule each, a hyperparameter a float or one value per member
# ---------------------------------------------------------------------------------------------

# (case, kernel, per-member hyperparameters for K = 3 members, fixed arguments); a hyperparameter
# with equal values stays a float in the batched call, as BatchedOptimizer passes it
KERNEL_CASES = [
    ("sgd", "sgd_", dict(lr=[0.1, 0.05, 0.2], weight_decay=[1e-2, 0.0, 1e-3]), {}),
    ("momentum", "sgd_", dict(lr=[0.1, 0.05, 0.2], momentum=[0.9, 0.0, 0.5], dampening=[0.1, 0.0, 0.0],
                              weight_decay=[1e-2, 0.0, 1e-3]), {}),
    ("nesterov", "sgd_", dict(lr=[0.1, 0.05, 0.2], momentum=[0.9, 0.7, 0.5], weight_decay=[1e-3] * 3),
     dict(nesterov=True)),
    ("adagrad", "adagrad_", dict(lr=[0.05, 0.1, 0.01], lr_decay=[0.0, 0.01, 0.1], eps=[1e-10, 1e-6, 1e-8],
                                 weight_decay=[0.0, 1e-2, 0.0], initial_accumulator_value=[0.0, 0.1, 0.5]),
     dict(step=True)),
    ("rmsprop", "rmsprop_", dict(lr=[5e-3, 1e-2, 1e-3], alpha=[0.99, 0.9, 0.5], eps=[1e-8] * 3,
                                 weight_decay=[0.0, 1e-2, 0.0], momentum=[0.0, 0.9, 0.5]), {}),
    ("rmsprop-centered", "rmsprop_", dict(lr=[5e-3, 1e-2, 1e-3], alpha=[0.99, 0.9, 0.5], eps=[1e-8, 1e-6, 1e-8],
                                          momentum=[0.5, 0.0, 0.9]), dict(centered=True)),
    ("adam", "adam_", dict(lr=[1e-3, 3e-3, 1e-2], beta1=[0.9, 0.8, 0.9], beta2=[0.999, 0.99, 0.9],
                           eps=[1e-8, 1e-6, 1e-8], weight_decay=[0.0, 1e-2, 0.0]), dict(step=True)),
    ("adam-amsgrad", "adam_", dict(lr=[1e-3, 3e-3, 1e-2], beta1=[0.9] * 3, beta2=[0.999, 0.99, 0.9]),
     dict(step=True, amsgrad=True)),
    ("adamw", "adam_", dict(lr=[1e-3, 3e-3, 1e-2], beta1=[0.9, 0.8, 0.9], beta2=[0.999] * 3,
                            weight_decay=[1e-2, 0.1, 0.0]), dict(step=True, decoupled=True)),
    ("adam-dlfs", "adam_", dict(lr=[1e-3, 3e-3, 1e-2], beta1=[0.9, 0.8, 0.9], beta2=[0.999, 0.99, 0.9],
                                eps=[1e-7, 1e-6, 1e-8]), dict(step=True, eps_mode="dlfs")),
    ("adadelta", "adadelta_", dict(lr=[1.0, 0.5, 0.1], rho=[0.9, 0.95, 0.5], eps=[1e-6, 1e-4, 1e-6],
                                   weight_decay=[0.0, 1e-2, 0.0]), {}),
]


@pytest.mark.parametrize("case, kernel, hps, fixed", KERNEL_CASES, ids=[c[0] for c in KERNEL_CASES])
def test_kernel_with_per_member_tensors_equals_one_float_call_per_member(case, kernel, hps, fixed):
    """A kernel on K stacked members with K x 1 x 1 hyperparameters (and floats for the equal
    ones) updates each member as K separate calls with Python floats do."""
    from nnbasics.optim import kernels

    fn, K = getattr(kernels, kernel), 3
    fixed = dict(fixed)
    stepped = fixed.pop("step", False)
    g = torch.Generator().manual_seed(0)
    stacked = torch.randn(K, 4, 5, generator=g, dtype=torch.float64)
    solo = [stacked[k].clone() for k in range(K)]
    per_member = {key: (vals[0] if all(v == vals[0] for v in vals)
                        else torch.tensor(vals, dtype=torch.float64).view(K, 1, 1)) for key, vals in hps.items()}
    assert any(isinstance(v, torch.Tensor) for v in per_member.values())
    state, states = {}, [{} for _ in range(K)]
    with torch.no_grad():
        for t in range(1, 16):
            grad = torch.randn(K, 4, 5, generator=g, dtype=torch.float64)
            step = {"step": t} if stepped else {}
            fn(stacked, grad, state, **per_member, **fixed, **step)
            for k in range(K):
                fn(solo[k], grad[k].clone(), states[k], **{key: float(v[k]) for key, v in hps.items()}, **fixed, **step)
            for k in range(K):
                torch.testing.assert_close(stacked[k], solo[k], rtol=1e-6, atol=1e-6)
    for key, value in state.items():  # the same state, in torch.optim's names
        for k in range(K):
            if key in states[k]:
                torch.testing.assert_close(value[k], states[k][key], rtol=1e-6, atol=1e-6)


KERNEL_OF = {"sgd": "sgd_", "momentum": "sgd_", "nesterov": "sgd_", "adagrad": "adagrad_", "rmsprop": "rmsprop_",
             "adam": "adam_", "adamw": "adam_", "adadelta": "adadelta_"}


class _KernelCalled(Exception):
    pass


def _raising(*args, **kwargs):
    raise _KernelCalled


@pytest.mark.parametrize("name", sorted(KERNEL_OF))
def test_optimizer_classes_update_through_their_kernel(name, monkeypatch):
    from nnbasics.optim import kernels

    p = nn.Parameter(torch.randn(3, 2))
    opt = optim.OPTIMIZERS[name]([p], lr=0.1)
    p.grad = torch.randn(3, 2)
    monkeypatch.setattr(kernels, KERNEL_OF[name], _raising)
    with pytest.raises(_KernelCalled):
        opt.step()


@pytest.mark.parametrize("family", ["sgd", "adam", "adamw"])
def test_batched_optimizer_updates_through_the_kernels_only(family, monkeypatch):
    """BatchedOptimizer packs per-member hyperparameters and calls the kernels: it holds no
    update arithmetic of its own (no in-place tensor operation outside a kernel call)."""
    import inspect
    import re

    from nnbasics.optim import batched, kernels

    hp = {"lr": 0.1, "weight_decay": 0.0, **({"momentum": 0.9, "dampening": 0.0, "nesterov": False}
                                             if family == "sgd" else {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8})}
    p = torch.randn(2, 3, 4, requires_grad=True)
    opt = batched.BatchedOptimizer([p], [[hp, dict(hp, lr=0.2)]], family)
    p.grad = torch.randn(2, 3, 4)
    monkeypatch.setattr(kernels, "sgd_" if family == "sgd" else "adam_", _raising)
    with pytest.raises(_KernelCalled):
        opt.step(1.0)
    calls = re.findall(r"([\w.]+)\.(\w+_)\(", inspect.getsource(batched))
    assert calls and all(obj == "kernels" for obj, _ in calls), calls


# ---------------------------------------------------------------------------------------------
# Batch size and learning rate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scaling,factor", [("none", 1.0), ("linear", 4.0), ("sqrt", 2.0)])
@pytest.mark.parametrize("impl", ["nnbasics", "torch"])
def test_lr_scaling_relative_to_base_batch_size(scaling, factor, impl):
    cfg = {"name": "momentum", "impl": impl, "lr": 0.01, "momentum": 0.9, "lr_scaling": scaling, "base_batch_size": 128}
    model, *_ = make_problem()
    groups = [{"params": [model[0].weight]}, {"params": [model[0].bias], "lr": 0.1}]
    opt = optim.build_optimizer(groups, cfg, batch_size=512)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * factor)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.1 * factor)  # a group's own lr is scaled too
    assert optim.build_optimizer(model.parameters(), cfg, batch_size=128).param_groups[0]["lr"] == pytest.approx(0.01)


def test_lr_scaling_reaches_the_training_loop(compose, tmp_path):
    """batch_size=full on spiral (600 training samples) with linear scaling from base 100: the
    logged LR is 6x the configured one."""
    cfg = compose(TOY + ["optimizer=sgd", "optimizer.lr=0.05", "optimizer.lr_scaling=linear",
                         "optimizer.base_batch_size=100", "scheduler=constant", "batch_size=full", "steps=2",
                         "checkpoint=false"])
    m = train(cfg, run_dir=tmp_path / "run")
    assert m["batch_size"] == 600
    assert m["history"][-1]["lr"] == pytest.approx(0.05 * 6)


# ---------------------------------------------------------------------------------------------
# Config: every option composes, validates, and trains identically with either implementation
# ---------------------------------------------------------------------------------------------


def test_default_optimizer_is_adam_with_lr_1e_3(compose):
    cfg = compose()
    assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == 0.001 and cfg.optimizer.impl == "nnbasics"


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_optimizer_option_trains_the_same_with_either_impl(name, compose, tmp_path):
    metrics = {}
    for impl in ("nnbasics", "torch"):
        cfg = compose(TOY + [f"optimizer={name}", f"optimizer.impl={impl}", "steps=4", "batch_size=64",
                             "checkpoint=false"])
        for key in ("lr", "weight_decay", "lr_scaling", "base_batch_size"):
            assert key in cfg.optimizer, key
        metrics[impl] = train(cfg, run_dir=tmp_path / impl)
        assert metrics[impl]["status"] == "completed" and metrics[impl]["steps"] == 4
    for key in ("train/loss", "val/loss"):
        assert metrics["nnbasics"][key] == pytest.approx(metrics["torch"][key], rel=1e-5, abs=1e-7), key


@functools.lru_cache(maxsize=None)
def _toy_cfg(name: str):
    return compose_cfg(TOY + [f"optimizer={name}"])


def toy_cfg(name: str, **changes):
    """The composed toy config with optimizer=name and keys of the optimizer node changed
    (or added, as `+optimizer.key=value` would)."""
    cfg = copy.deepcopy(_toy_cfg(name))
    for key, value in changes.items():
        OmegaConf.update(cfg, f"optimizer.{key}", value, force_add=True)
    return cfg


BAD_CONFIGS = [
    ("momentum", dict(momentum=-0.1), "optimizer.momentum"),
    ("adam", dict(betas=[0.9, 1.0]), "optimizer.betas"),
    ("adam", dict(betas=[0.9]), "optimizer.betas"),
    ("adamw", dict(betas=[-0.1, 0.9]), "optimizer.betas"),
    ("adam", dict(eps=0), "optimizer.eps"),
    ("sgd", dict(lr_scaling="cubic"), "optimizer.lr_scaling"),
    ("sgd", dict(base_batch_size=0), "optimizer.base_batch_size"),
    ("momentum", dict(dampening=1.5), "optimizer.dampening"),
    ("rmsprop", dict(alpha=1.0), "optimizer.alpha"),
    ("rmsprop", dict(centered="maybe"), "optimizer.centered"),
    ("adagrad", dict(lr_decay=-1), "optimizer.lr_decay"),
    ("nesterov", dict(momentum=0), "optimizer.momentum"),
    ("sgd", dict(momentum=0.9), "optimizer.momentum"),  # sgd takes no momentum: that is optimizer=momentum
    ("adam", dict(impl="jax"), "optimizer.impl"),
    ("momentum", dict(nesterov=True, dampening=0.5), "optimizer.nesterov"),
    ("adam", dict(lr=0), "optimizer.lr"),
    ("adam", dict(eps_mode="keras"), "optimizer.eps_mode"),
    ("adam", dict(eps_mode="dlfs", impl="torch"), "optimizer.eps_mode"),  # torch.optim.Adam has no such placement
    ("adamw", dict(eps_mode="dlfs"), "optimizer.eps_mode"),  # adamw takes no eps_mode
    ("sgd", dict(eps_mode="dlfs"), "optimizer.eps_mode"),
    ("adadelta", dict(rho=1.0), "optimizer.rho"),
    ("adadelta", dict(rho=-0.5), "optimizer.rho"),
    ("adadelta", dict(eps=0), "optimizer.eps"),
    ("adadelta", dict(momentum=0.9), "optimizer.momentum"),
]


@pytest.mark.parametrize("name,changes,key", BAD_CONFIGS, ids=[f"{n}-{c}" for n, c, _ in BAD_CONFIGS])
def test_bad_optimizer_config_names_the_key(name, changes, key):
    with pytest.raises(ConfigError) as err:
        validate(toy_cfg(name, **changes))
    assert err.value.key == key


def test_override_syntax_reaches_validation(compose):
    """The same checks through Hydra overrides, as a user types them."""
    with pytest.raises(ConfigError) as err:
        validate(compose(TOY + ["optimizer=adam", "optimizer.betas=[0.9,1.0]"]))
    assert err.value.key == "optimizer.betas"


def test_optimizer_config_warnings():
    assert any("momentum" in n for n in optim.validate_config(toy_cfg("momentum", momentum=1.0)))
    assert optim.validate_config(toy_cfg("sgd")) == []


def test_build_optimizer_rejects_keys_the_optimizer_does_not_take():
    cfg = OmegaConf.create({"name": "sgd", "lr": 0.1, "momentum": 0.9})
    with pytest.raises(ConfigError, match="optimizer.momentum"):
        optim.build_optimizer([nn.Parameter(torch.zeros(1))], cfg, 128)


# ---------------------------------------------------------------------------------------------
# Adam's eps placement (optimizer.eps_mode) and Adadelta's defaults
# ---------------------------------------------------------------------------------------------


def test_adam_eps_mode_dlfs_is_the_dlfs_formula_and_differs_from_torch():
    """eps_mode=dlfs: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t m / (sqrt(v) + eps), written out
    in float64 (deep-learning-from-scratch common/optimizer.py Adam) for 50 steps; with a large eps the
    two placements visibly differ (the same m and v, a different denominator)."""
    g = torch.Generator().manual_seed(3)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-3
    p = nn.Parameter(torch.randn(4, 5, generator=g, dtype=torch.float64))
    q = nn.Parameter(p.detach().clone())
    ours, standard = optim.Adam([p], lr=lr, eps=eps, eps_mode="dlfs"), optim.Adam([q], lr=lr, eps=eps)
    w, m, v = p.detach().clone(), torch.zeros(4, 5, dtype=torch.float64), torch.zeros(4, 5, dtype=torch.float64)
    for t in range(1, 51):
        grad = torch.randn(4, 5, generator=g, dtype=torch.float64)
        p.grad, q.grad = grad.clone(), grad.clone()
        ours.step()
        standard.step()
        lr_t = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
        m += (1 - b1) * (grad - m)
        v += (1 - b2) * (grad ** 2 - v)
        w -= lr_t * m / (v.sqrt() + eps)
        torch.testing.assert_close(p.detach(), w, rtol=1e-12, atol=1e-14)
    assert float((p.detach() - q.detach()).abs().max()) > 1e-3
    assert ours.param_groups[0]["eps_mode"] == "dlfs" and "eps_mode" not in standard.param_groups[0]


def test_adam_eps_mode_is_refused_where_it_cannot_apply():
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="eps_mode"):
        optim.Adam(p, eps_mode="keras")
    cfg = {"name": "adam", "impl": "torch", "lr": 0.1, "eps_mode": "dlfs"}
    with pytest.raises(ConfigError, match="impl=nnbasics") as err:
        optim.build_optimizer(p, cfg)
    assert err.value.key == "optimizer.eps_mode"
    assert type(optim.build_optimizer(p, dict(cfg, eps_mode="torch"))) is torch.optim.Adam


def test_batched_population_refuses_adam_with_dlfs_eps_and_keeps_torch_placement():
    """The batched update implements torch's placement only: group_hparams refuses eps_mode=dlfs
    (Unsupported: the population then runs its members alone) and takes default Adam groups."""
    from nnbasics.errors import Unsupported
    from nnbasics.optim.batched import group_hparams

    p = [nn.Parameter(torch.zeros(2))]
    assert group_hparams(optim.Adam(p, lr=0.1).param_groups[0], "adam", "adam")["eps"] == 1e-8
    with pytest.raises(Unsupported, match="eps_mode"):
        group_hparams(optim.Adam(p, lr=0.1, eps_mode="dlfs").param_groups[0], "adam", "adam")


def test_adadelta_config_has_torchs_defaults(compose):
    import inspect

    cfg = compose(TOY + ["optimizer=adadelta"]).optimizer
    twin = inspect.signature(torch.optim.Adadelta.__init__).parameters
    assert (cfg.lr, cfg.rho, cfg.eps, cfg.weight_decay) == (1.0, 0.9, 1e-6, 0.0)
    assert all(cfg[k] == twin[k].default for k in ("lr", "rho", "eps", "weight_decay"))
    assert "Zeiler" in (CONF / "adadelta.yaml").read_text()
