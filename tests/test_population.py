"""Population training (nnbasics.engine.population): every member of a population equals its config
trained alone by train() (same seed: same init, data order and dropout masks, so equal within
float tolerance), per-member metrics, per-member optimizer state, grouping, and refusals."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TOY, compose_cfg
from nnbasics.engine.population import (BatchedOptimizer, Population, Unsupported, group_configs, group_key,
                                 train_population, unsupported_reason)
from nnbasics.engine.train import train

BASE = TOY + ["checkpoint=false", "epochs=2", "model.width=16", "model.depth=2", "data.n_samples=600"]


def cfgs_of(variants: list[list[str]], extra: list[str] = ()):
    return [compose_cfg(BASE + list(extra) + v) for v in variants]


def assert_same_run(solo: dict, member: dict, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Final metrics and the whole per-epoch history agree within float tolerance."""
    for k in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"):
        assert member[k] == pytest.approx(solo[k], rel=rtol, abs=atol), k
    assert member["status"] == solo["status"] and member["steps"] == solo["steps"]
    assert len(member["history"]) == len(solo["history"])
    for a, b in zip(solo["history"], member["history"]):
        for k in ("train/loss", "train/acc", "val/loss", "val/acc", "lr"):
            assert b[k] == pytest.approx(a[k], rel=rtol, abs=atol), (a["epoch"], k)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "nesterov", "adamw"])
def test_every_member_equals_its_solo_run(optimizer):
    variants = [[f"seed={s}", f"optimizer.lr={lr}"] for s in (0, 1) for lr in (0.01, 0.05)]
    cfgs = cfgs_of(variants, [f"optimizer={optimizer}"])
    members = train_population(cfgs)
    for cfg, member in zip(cfgs, members):
        assert_same_run(train(cfg), member)
    # per-member metrics: different lrs and seeds give different runs
    assert len({round(m["train/loss"], 6) for m in members}) == len(members)


def test_members_differ_in_dropout_init_decay_schedule_and_still_equal_solo():
    """Dropout masks come from each member's own RNG stream (the one its solo run draws from),
    so even dropout, input dropout, L2 (penalty via the library) and max-norm runs agree."""
    variants = [
        ["seed=0", "model.dropout.p=0.3", "regularization=l2", "regularization.weight_decay=1e-3"],
        ["seed=1", "init=xavier_uniform", "scheduler=constant", "model.dropout.input_p=0.1"],
        ["seed=2", "regularization=maxnorm", "optimizer.weight_decay=1e-4"],
        ["seed=0", "optimizer.betas=[0.8,0.99]", "optimizer.eps=1e-6"],
        ["seed=3", "regularization=input_noise"],
    ]
    cfgs = cfgs_of(variants)
    assert len({group_key(c) for c in cfgs}) == 1
    members = train_population(cfgs)  # trained in seed order inside, returned in the given order
    assert [m["population_member"] for m in members] == list(range(len(cfgs)))
    for cfg, member in zip(cfgs, members):
        assert_same_run(train(cfg), member)


def test_members_with_different_activations_equal_their_solo_runs():
    """Unmonitored members may differ in their activation (each group of members applies its own,
    then the outputs go back in member order); members of one stream interleave activations here."""
    variants = [["seed=0", "activation=sigmoid"], ["seed=0", "activation=tanh"], ["seed=1", "activation=relu"],
                ["seed=0", "activation=leaky_relu"], ["seed=1", "activation=sigmoid"],
                ["seed=1", "activation=elu", "model.dropout.p=0.2"], ["seed=0", "activation=selu"]]
    cfgs = cfgs_of(variants)
    assert len({group_key(c) for c in cfgs}) == 1 and group_configs(cfgs) == ([list(range(len(cfgs)))], [])
    members = train_population(cfgs)
    for cfg, member in zip(cfgs, members):
        assert_same_run(train(cfg), member)
    # monitored members keep their activation in the group key; maxout and prelu train alone, by name
    monitored = cfgs_of([["activation=relu"], ["activation=tanh"], ["seed=1", "activation=tanh"]], MONITORED)
    assert group_configs(monitored) == ([[1, 2]], [0])
    assert "maxout" in unsupported_reason(compose_cfg(BASE + ["activation=maxout"]))
    assert "prelu" in unsupported_reason(compose_cfg(BASE + ["activation=prelu"]))
    with pytest.raises(Unsupported, match="per-member"):  # even when grouped by hand
        Population(monitored[:2])


def test_a_diverging_member_is_recorded_and_does_not_touch_the_others():
    cfgs = cfgs_of([["optimizer=sgd", "optimizer.lr=0.05"], ["optimizer=sgd", "optimizer.lr=1e30"]])
    ok, bad = train_population(cfgs)
    assert bad["status"] == "diverged" and bad["diverged_at_step"] >= 1 and "val/acc" not in bad
    assert_same_run(train(cfgs[0]), ok)


def test_batched_optimizer_matches_torch_in_lockstep_with_per_member_hyperparameters():
    torch.manual_seed(0)
    K = 3
    cases = [("sgd", torch.optim.SGD, [dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2, nesterov=False),
                                       dict(lr=0.05, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
                                       dict(lr=0.2, momentum=0.5, dampening=0.0, weight_decay=1e-3, nesterov=False)]),
             ("adam", torch.optim.Adam, [dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
                                         dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
                                         dict(lr=1e-2, betas=(0.9, 0.9), eps=1e-8, weight_decay=0.0)]),
             ("adamw", torch.optim.AdamW, [dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)] * 3)]
    for family, cls, hps in cases:
        stacked = torch.randn(K, 4, 5, requires_grad=True)
        solo = [stacked[k].detach().clone().requires_grad_(True) for k in range(K)]
        opts = [cls([p], **hp) for p, hp in zip(solo, hps)]
        rows = [{"lr": hp["lr"], "weight_decay": hp["weight_decay"], **(
            {"momentum": hp["momentum"], "dampening": hp["dampening"], "nesterov": hp["nesterov"]} if family == "sgd"
            else {"beta1": hp["betas"][0], "beta2": hp["betas"][1], "eps": hp["eps"]})} for hp in hps]
        batched = BatchedOptimizer([stacked], [rows], family)
        for step in range(20):
            g = torch.randn(K, 4, 5)
            stacked.grad = g.clone()
            factor = 1.0 / (1 + step)  # a changing schedule
            batched.step(factor)
            for k, (p, opt) in enumerate(zip(solo, opts)):
                p.grad = g[k].clone()
                opt.param_groups[0]["lr"] = hps[k]["lr"] * factor
                opt.step()
        for k in range(K):
            torch.testing.assert_close(stacked[k].detach(), solo[k].detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra", [[], ["model.dropout.input_p=0.2", "model.dropout.p=0.3"]])
def test_members_sharing_an_input_get_what_they_get_from_their_own_copies(extra):
    """BatchedMLP.forward with G x B inputs (G groups of consecutive members, one input each)
    equals the K x B form with each member's input copied, in evaluation and training (same
    dropout masks from the same RNG states); G must divide K."""
    pop = Population(cfgs_of([[f"seed={s}"] + extra for s in range(4)]))
    net, K = pop.net, pop.K
    xa, xb = pop.train_split.x[:9], pop.train_split.x[9:18]
    for train_mode in (False, True):
        for grouped, copies in ((xa.unsqueeze(0), torch.stack([xa] * K)),
                                (torch.stack([xa, xb]), torch.stack([xa, xa, xb, xb]))):
            net.rng = list(pop.rng_after_init)
            out_grouped = net(grouped, train=train_mode)
            net.rng = list(pop.rng_after_init)
            torch.testing.assert_close(out_grouped, net(copies, train=train_mode), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dividing"):
        net(torch.stack([xa, xa, xa]))


def test_grouping_puts_per_member_differences_together_and_the_rest_apart():
    cfgs = cfgs_of([["seed=0"], ["seed=1", "optimizer.lr=0.1"], ["model.width=8"], ["model.width=8", "seed=3"],
                    ["optimizer=sgd"], ["monitor=basic"], ["model.norm=batch"], ["model.width=4"]])
    pops, alone = group_configs(cfgs)
    assert sorted(map(sorted, pops)) == [[0, 1], [2, 3]]
    assert alone == [4, 5, 6, 7]  # another optimizer (alone in its group), monitor on, norm, alone
    assert group_configs(cfgs, max_size=1)[0] == []
    assert "monitor" in unsupported_reason(cfgs[5]) and "norm" in unsupported_reason(cfgs[6])
    assert "optimizer" in unsupported_reason(compose_cfg(BASE + ["optimizer=rmsprop"]))


def test_on_a_cpu_members_too_large_to_gain_train_alone():
    """member_macs = batch x the weights of the linear layers; above CPU_MAX_MACS a config on the CPU
    trains alone (its stacked step gains nothing: benchmarks/population_width.py); on a GPU it groups."""
    from nnbasics.engine.population import CPU_MAX_MACS, member_macs, worth_grouping

    wide = compose_cfg(["data=mnist", "model.width=512", "model.depth=2", "batch_size=100", "device=cpu", "monitor=off"])
    assert member_macs(wide) == 100 * (784 * 512 + 512 * 512 + 512 * 10) > CPU_MAX_MACS
    narrow = compose_cfg(["data=mnist", "model.widths=[300,100]", "model.depth=2", "batch_size=100", "device=cpu"])
    assert member_macs(narrow) == 100 * (784 * 300 + 300 * 100 + 100 * 10) < CPU_MAX_MACS
    full = compose_cfg(["data=mnist", "model.width=100", "model.depth=1", "batch_size=full", "data.train_size=5000"])
    assert member_macs(full) == 5000 * (784 * 100 + 100 * 10)
    toy = compose_cfg(["data=curve", "model.width=128", "model.depth=1", "batch_size=full"])  # 1,000 samples at most
    assert member_macs(toy) == 1000 * (2 * 128 + 128 * 10) < CPU_MAX_MACS
    assert not worth_grouping(wide) and worth_grouping(narrow) and worth_grouping(wide, cpu_max_macs=None)
    cuda = compose_cfg(["data=mnist", "model.width=512", "model.depth=2", "batch_size=100", "device=cuda"])
    assert worth_grouping(cuda)  # a GPU: always (the rule is the CPU's)
    pair = [wide, compose_cfg(["data=mnist", "model.width=512", "model.depth=2", "batch_size=100", "device=cpu", "seed=1",
                               "monitor=off"])]
    assert group_configs(pair, cpu_max_macs=CPU_MAX_MACS) == ([], [0, 1])  # the suite's choice (Context.train_many)
    assert group_configs(pair) == ([[0, 1]], [])  # the launcher's: the user asked for a population


@pytest.mark.parametrize("override, words", [(["activation=prelu"], "parameters"),
                                             (["model.dropout.variant=dropconnect", "model.dropout.p=0.2"], "linear"),
                                             (["activation=maxout", "activation.pieces=2"], "maxout")])
def test_models_the_batched_mlp_cannot_reproduce_are_refused(override, words):
    with pytest.raises(Unsupported, match=words):
        Population(cfgs_of([["seed=0"] + override, ["seed=1"] + override]))


def test_configs_that_differ_in_shared_keys_are_refused():
    with pytest.raises(Unsupported, match="per-member"):
        Population(cfgs_of([["model.width=8"], ["model.width=16"]]))


def test_member_run_dirs_hold_what_train_writes(tmp_path):
    cfgs = cfgs_of([["seed=0"], ["seed=1"]], ["checkpoint=true"])
    train(cfgs[0], run_dir=tmp_path / "solo")
    out = train_population(cfgs, [tmp_path / "m0", tmp_path / "m1"])
    for d in ("m0", "m1"):
        assert {p.name for p in (tmp_path / d).iterdir()} == {p.name for p in (tmp_path / "solo").iterdir()}
        assert any((tmp_path / d / "tb").iterdir())
    solo_m = json.loads((tmp_path / "solo" / "metrics.json").read_text())
    m0 = json.loads((tmp_path / "m0" / "metrics.json").read_text())
    assert set(solo_m) <= set(m0) and m0["population_size"] == 2 and out[1]["seed"] == 1
    ck_solo = torch.load(tmp_path / "solo" / "checkpoint.pt", weights_only=True)
    ck = torch.load(tmp_path / "m0" / "checkpoint.pt", weights_only=True)
    assert set(ck) == set(ck_solo) and ck["step"] == ck_solo["step"]
    for k, v in ck_solo["model"].items():
        torch.testing.assert_close(ck["model"][k], v, rtol=1e-4, atol=1e-5)
    # the optimizer state is the library optimizer's own format (Adam: step, exp_avg, exp_avg_sq)
    assert ck["optimizer"]["param_groups"][0].keys() == ck_solo["optimizer"]["param_groups"][0].keys()
    s_solo, s_pop = ck_solo["optimizer"]["state"], ck["optimizer"]["state"]
    assert s_solo.keys() == s_pop.keys()
    for i in s_solo:
        for k in s_solo[i]:
            torch.testing.assert_close(torch.as_tensor(s_pop[i][k]).float(), torch.as_tensor(s_solo[i][k]).float(),
                                       rtol=1e-3, atol=1e-6)


# --- the monitor ---------------------------------------------------------------------------------------

MONITORED = ["monitor=basic", "monitor.every=5", "monitor.figures=false"]


def tb_events(tb):
    """(scalars by tag as [(step, value)], every tag by kind, histograms by tag) of a tb/ folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    tags = {kind: sorted(v) for kind, v in acc.Tags().items() if isinstance(v, list)}
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    return scalars, tags, {t: acc.Histograms(t) for t in acc.Tags()["histograms"]}


@pytest.mark.parametrize("activation, variants, stat", [
    # sigmoid: a wide init saturates (watch/saturation/...)
    ("sigmoid", [["seed=0", "init=normal", "init.std=1.0"], ["seed=1", "init=normal", "init.std=4.0"],
                 ["seed=2", "optimizer.lr=0.05"]], "saturation"),
    # relu: a wide init and a large step kill units (watch/dead_relu/...)
    ("relu", [["seed=0"], ["seed=1", "optimizer.lr=0.3"], ["seed=0", "init=normal", "init.std=3.0"]], "dead_relu"),
])
def test_monitored_members_write_what_their_single_runs_write(tmp_path, activation, variants, stat):
    """monitor=basic: each member's tb/ holds the single run's monitor tags (watch/ scalars per layer,
    weight histograms, layer table), at the same steps, with the same values within the tolerance
    of the members' losses."""
    cfgs = cfgs_of(variants, MONITORED + [f"activation={activation}"])
    assert unsupported_reason(cfgs[0]) is None and len(group_configs(cfgs)[0]) == 1
    train_population(cfgs, [tmp_path / f"m{i}" for i in range(len(cfgs))])
    seen = []
    for i, cfg in enumerate(cfgs):
        train(cfg, run_dir=tmp_path / f"solo{i}")
        (sp, tags_p, hp), (ss, tags_s, hs) = tb_events(tmp_path / f"m{i}" / "tb"), tb_events(tmp_path / f"solo{i}" / "tb")
        assert tags_p == tags_s  # scalars, weight histograms, texts (model summary, init audit, monitor/layers)
        watched = [t for t in ss if t.startswith("watch/")]
        assert {t.split("/")[1] for t in watched} == {"grad_norm", "update_ratio", "weight_std", "weight_std_init", stat}
        for tag in watched:
            assert [s for s, _ in sp[tag]] == [s for s, _ in ss[tag]], tag
            assert [v for _, v in sp[tag]] == pytest.approx([v for _, v in ss[tag]], rel=1e-4, abs=1e-5), tag
        for tag in hs:
            assert [h.step for h in hp[tag]] == [h.step for h in hs[tag]], tag
            assert [h.histogram_value.sum for h in hp[tag]] == \
                pytest.approx([h.histogram_value.sum for h in hs[tag]], rel=1e-4, abs=1e-4), tag
        seen.append({t: [v for _, v in sp[t]] for t in watched})
    # the statistic is exercised (not a row of zeros), and each member has its own values
    assert max(v for s in seen for t, vs in s.items() if t.startswith(f"watch/{stat}/") for v in vs) > 0.05
    assert len({tuple(s["watch/grad_norm/total"]) for s in seen}) == len(seen)


def test_what_the_population_monitor_does_not_batch_is_refused_by_name():
    assert unsupported_reason(compose_cfg(BASE + MONITORED)) is None
    assert "monitor.figures" in unsupported_reason(compose_cfg(BASE + ["monitor=basic"]))
    assert "monitor.level=full" in unsupported_reason(compose_cfg(BASE + ["monitor=full", "monitor.figures=false"]))
    cfgs = cfgs_of([["seed=0"], ["seed=1"], ["seed=2", "monitor.figures=true"]], MONITORED)
    assert group_configs(cfgs) == ([[0, 1]], [2])


def test_the_monitor_costs_an_unmonitored_population_nothing():
    pop = Population(cfgs_of([["seed=0"], ["seed=1"]]))
    assert pop.monitor is None
    assert all(not m._forward_hooks for model in pop.models for m in model.modules())


def test_members_record_the_curve_their_single_runs_record(tmp_path):
    """curve_every / curve_after_update (the DLFS races: every iteration's mini-batch loss after its
    update) give each member the curve of its single run."""
    cfgs = cfgs_of([["seed=0"], ["seed=1", "optimizer.lr=0.05"], ["seed=0", "model.dropout.p=0.3"]],
                   ["curve_every=1", "curve_after_update=true", "epochs=1"])
    members = Population(cfgs).run()
    for i, (cfg, member) in enumerate(zip(cfgs, members)):
        train(cfg, run_dir=tmp_path / f"solo{i}")
        solo = json.loads((tmp_path / f"solo{i}" / "history.json").read_text())["curve"]
        assert [s for s, _, _ in member.curve] == [s for s, _, _ in solo] == list(range(1, len(solo) + 1))
        for (_, _, a), (_, _, b) in zip(solo, member.curve):
            assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
