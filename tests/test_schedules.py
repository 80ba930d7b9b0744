"""Every LR schedule against its closed form (numbers worked out by hand), against the
torch.optim.lr_scheduler that implements the same rule, and through the training loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR
import torch

from conftest import TOY
from nnbasics.optim import schedules
from nnbasics.errors import ConfigError
from nnbasics.optim.schedules import build_schedule
from nnbasics.engine.train import train
from nnbasics.engine.validate import validate

CONF = CONF_DIR / "scheduler"

# (scheduler config, total_steps, steps_per_epoch, {t: multiplier}) with the multipliers by hand
CLOSED_FORM = [
    ({"name": "constant"}, 100, 10, {0: 1.0, 57: 1.0, 99: 1.0}),
    ({"name": "step", "step_size": 2, "gamma": 0.5}, 100, 10,
     {0: 1.0, 19: 1.0, 20: 0.5, 39: 0.5, 40: 0.25, 65: 0.125}),
    ({"name": "step", "step_size": 3, "gamma": 0.1, "unit": "step"}, 100, 10, {2: 1.0, 3: 0.1, 5: 0.1, 6: 0.01}),
    ({"name": "multistep", "milestones": [2, 5], "gamma": 0.1}, 100, 10,
     {0: 1.0, 19: 1.0, 20: 0.1, 49: 0.1, 50: 0.01, 99: 0.01}),
    ({"name": "multistep", "milestones": [3, 4], "gamma": 0.5, "unit": "step"}, 100, 10, {2: 1.0, 3: 0.5, 4: 0.25}),
    ({"name": "exponential", "gamma": 0.5}, 100, 4,
     {0: 1.0, 2: math.sqrt(0.5), 4: 0.5, 10: 0.5 ** 2.5}),
    ({"name": "exponential", "gamma": 0.9, "unit": "step"}, 100, 4, {0: 1.0, 3: 0.729}),
    ({"name": "inverse_time", "k": 0.5}, 100, 4, {0: 1.0, 2: 0.8, 8: 0.5, 24: 0.25}),
    ({"name": "inverse_time", "k": 0.1, "unit": "step"}, 100, 4, {10: 0.5, 30: 0.25}),
    ({"name": "cosine", "min_factor": 0.0}, 100, 10,
     {0: 1.0, 25: (1 + math.sqrt(0.5)) / 2, 50: 0.5, 75: (1 - math.sqrt(0.5)) / 2, 100: 0.0, 150: 0.0}),
    ({"name": "cosine", "min_factor": 0.1}, 100, 10, {0: 1.0, 50: 0.55, 100: 0.1}),
    # linear warm-up min(1, (t+1)/W) times the schedule
    ({"name": "constant", "warmup_steps": 10}, 100, 10, {0: 0.1, 4: 0.5, 9: 1.0, 50: 1.0}),
    ({"name": "step", "step_size": 1, "gamma": 0.5, "warmup_steps": 20}, 100, 10,
     {0: 0.05, 9: 0.5, 10: 0.275, 19: 0.5}),
    ({"name": "cosine", "warmup_steps": 4}, 100, 10, {0: 0.25 * (1 + math.cos(0)) / 2,
                                                      1: 0.5 * (1 + math.cos(math.pi / 100)) / 2, 50: 0.5}),
]


@pytest.mark.parametrize("cfg,total,spe,expected", CLOSED_FORM,
                         ids=[f"{c['name']}-{i}" for i, (c, *_) in enumerate(CLOSED_FORM)])
def test_schedule_matches_closed_form(cfg, total, spe, expected):
    schedule = build_schedule(cfg, total, spe)
    for t, want in expected.items():
        assert schedule(t) == pytest.approx(want, rel=1e-12, abs=1e-15), f"t={t}"


def test_every_registered_schedule_has_a_closed_form_case():
    assert {c["name"] for c, *_ in CLOSED_FORM} == set(schedules.SCHEDULES)


def test_schedules_are_pure_functions_of_the_step():
    """No hidden state: any order of calls, any number of times, the same values."""
    for cfg, total, spe, _ in CLOSED_FORM:
        schedule = build_schedule(cfg, total, spe)
        forward = [schedule(t) for t in range(total)]
        backward = [schedule(t) for t in reversed(range(total))][::-1]
        assert forward == backward == [build_schedule(cfg, total, spe)(t) for t in range(total)], cfg


def torch_factors(make, epochs: int) -> list[float]:
    """The factor a torch.optim.lr_scheduler gives at each epoch (stepped once per epoch)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("cfg,make", [
    ({"name": "step", "step_size": 3, "gamma": 0.3}, lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.3)),
    ({"name": "multistep", "milestones": [2, 3, 7], "gamma": 0.5},
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 3, 7], 0.5)),
    ({"name": "exponential", "gamma": 0.8}, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.8)),
], ids=["StepLR", "MultiStepLR", "ExponentialLR"])
def test_epoch_schedules_agree_with_torch_at_every_epoch(cfg, make):
    spe, epochs = 7, 12
    ours = build_schedule(cfg, spe * epochs, spe)
    theirs = torch_factors(make, epochs)
    for e in range(epochs):
        for t in range(e * spe, (e + 1) * spe) if cfg["name"] != "exponential" else [e * spe]:
            assert ours(t) == pytest.approx(theirs[e], rel=1e-12), (e, t)


def test_cosine_and_warmup_agree_with_torch_per_step():
    total, warm = 50, 5
    cos = torch_factors(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.2), total)
    ours = build_schedule({"name": "cosine", "min_factor": 0.2}, total)
    assert [ours(t) for t in range(total)] == pytest.approx(cos, rel=1e-10)
    lin = torch_factors(lambda o: torch.optim.lr_scheduler.LinearLR(o, 1 / warm, 1.0, total_iters=warm - 1), total)
    ours = build_schedule({"name": "constant", "warmup_steps": warm}, total)
    assert [ours(t) for t in range(total)] == pytest.approx(lin, rel=1e-10)


def test_smooth_schedules_interpolate_between_epochs():
    """exponential and inverse_time with unit=epoch decay within an epoch, not in jumps."""
    for cfg in ({"name": "exponential", "gamma": 0.5}, {"name": "inverse_time", "k": 1.0}):
        f = build_schedule(cfg, 100, 10)
        values = [f(t) for t in range(30)]
        assert all(a > b for a, b in zip(values, values[1:])), cfg


def test_warmup_longer_than_the_run_warns():
    with pytest.warns(UserWarning, match="warmup_steps"):
        build_schedule({"name": "cosine", "warmup_steps": 50}, 20, 5)


# ---------------------------------------------------------------------------------------------
# Config: every option composes, validates, and the loop uses (and logs) the scheduled LR
# ---------------------------------------------------------------------------------------------

OPTIONS = sorted(p.stem for p in CONF.glob("*.yaml"))
# shrink each option to a 4-epoch run of 3 updates per epoch so it visibly acts
FIT = {"step": ["scheduler.step_size=1"], "multistep": ["scheduler.milestones=[1,3]"],
       "warmup_cosine": ["scheduler.warmup_steps=5"]}


def test_cosine_is_the_default_without_warmup(compose):
    cfg = compose()
    assert cfg.scheduler.name == "cosine" and cfg.scheduler.warmup_steps == 0


@pytest.mark.parametrize("option", OPTIONS)
def test_every_scheduler_option_trains_and_logs_the_scheduled_lr(option, compose, tmp_path):
    cfg = compose(TOY + [f"scheduler={option}", "optimizer=sgd", "optimizer.lr=0.1", "epochs=4", "batch_size=200",
                         "checkpoint=false"] + FIT.get(option, []))
    validate(cfg)
    m = train(cfg, run_dir=tmp_path / "run")
    assert m["status"] == "completed" and m["steps"] == 12
    schedule = build_schedule(cfg.scheduler, total_steps=12, steps_per_epoch=3)
    logged = [row["lr"] for row in m["history"]]
    # the LR of the last update of each epoch is the one logged
    assert logged == pytest.approx([0.1 * schedule(3 * e + 2) for e in range(4)], rel=1e-12)
    if option != "constant":
        assert len(set(logged)) > 1, "the schedule did not change the learning rate"


BAD = [
    (["scheduler=step", "scheduler.gamma=-0.5"], "scheduler.gamma"),
    (["scheduler=step", "scheduler.gamma=0"], "scheduler.gamma"),
    (["scheduler=step", "scheduler.step_size=0"], "scheduler.step_size"),
    (["scheduler=step", "scheduler.step_size=1.5"], "scheduler.step_size"),
    (["scheduler=step", "scheduler.unit=hour"], "scheduler.unit"),
    (["scheduler=multistep", "scheduler.milestones=[5,2]"], "scheduler.milestones"),
    (["scheduler=multistep", "scheduler.milestones=[0,2]"], "scheduler.milestones"),
    (["scheduler=exponential", "scheduler.gamma=0"], "scheduler.gamma"),
    (["scheduler=inverse_time", "scheduler.k=-1"], "scheduler.k"),
    (["scheduler=cosine", "scheduler.min_factor=1.5"], "scheduler.min_factor"),
    (["scheduler=cosine", "+scheduler.gamma=0.5"], "scheduler.gamma"),
    (["scheduler=cosine", "scheduler.warmup_steps=-1"], "scheduler.warmup_steps"),
    (["scheduler=cosine", "scheduler.name=linear"], "scheduler.name"),
]


@pytest.mark.parametrize("overrides,key", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_scheduler_config_names_the_key(overrides, key, compose):
    with pytest.raises(ConfigError) as err:
        validate(compose(TOY + overrides))
    assert err.value.key == key


def test_growing_gamma_warns(compose):
    notes = schedules.validate_config(compose(TOY + ["scheduler=exponential", "scheduler.gamma=1.1"]))
    assert any("grows" in n for n in notes)
