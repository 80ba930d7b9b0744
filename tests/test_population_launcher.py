"""The Hydra launcher plugin `hydra/launcher=population`: it is discovered and composes, and a
multirun through it leaves run directories of the same shape and with the same numbers as the
same multirun through Hydra's basic launcher (so summaries and dashboards see no difference);
jobs that cannot be grouped still run, one by one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CONF_DIR

SWEEP = ["data=spiral", "data.n_samples=600", "epochs=2", "progress=false", "monitor=off", "model.width=8",
         "model.depth=1", "checkpoint=false"]


def compose_hydra(overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def multirun(tmp_path: Path, name: str, args: list[str], monkeypatch) -> Path:
    """Run `nnbasics-train -m <args>` in this process (no interpreter start-up); return the sweep dir."""
    from hydra.core.global_hydra import GlobalHydra

    from nnbasics.cli.train import train_main

    sweep = tmp_path / name
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nnbasics-train", "-m", *args, f"hydra.sweep.dir={sweep}"])
    GlobalHydra.instance().clear()
    train_main()
    GlobalHydra.instance().clear()
    return sweep


def tree(root: Path) -> set[str]:
    """Relative paths under a sweep, with the event files' host/pid/time part blanked out."""
    out = set()
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        out.add(rel.split("events.out.tfevents")[0] + "events" if "events.out.tfevents" in rel else rel)
    return out


def events(tb: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[str]]]:
    """(scalars by tag, every tag by kind: scalars, tensors (text, hparams), ...) of a tb/ folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb))
    acc.Reload()
    tags = {kind: sorted(v) for kind, v in acc.Tags().items() if isinstance(v, list)}
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}, tags


def test_the_plugin_is_discovered_and_its_config_composes():
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    assert "PopulationLauncher" in [p.__name__ for p in Plugins.instance().discover(Launcher)]
    launcher = compose_hydra(["hydra/launcher=population"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.nnbasics_population_launcher.population_launcher.PopulationLauncher"
    assert launcher.min_size == 2 and launcher.max_size is None and launcher.monitored_jobs == "sequential"
    import hydra_plugins

    assert not hasattr(hydra_plugins, "__file__") or hydra_plugins.__file__ is None  # a namespace package


def test_population_sweep_looks_like_the_basic_launchers_sweep(tmp_path, monkeypatch):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    composes = []
    real = ConfigLoaderImpl.load_configuration
    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration",
                        lambda self, *a, **k: (composes.append(1), real(self, *a, **k))[1])
    args = SWEEP + ["optimizer.lr=0.01,0.05", "seed=0,1"]
    basic = multirun(tmp_path, "basic", args, monkeypatch)
    n_basic = len(composes)
    pop = multirun(tmp_path, "pop", args + ["hydra/launcher=population"], monkeypatch)
    # the sweeper's check and the basic launcher each compose every job; the population
    # launcher takes the check's config instead of composing the job again
    assert n_basic - (len(composes) - n_basic) == 4
    assert tree(pop) == tree(basic)  # .hydra/, config.yaml, metrics.json, history.json, tb/, train.log, summary
    for job in sorted(p.name for p in basic.iterdir() if p.is_dir()):
        b, p = basic / job, pop / job
        assert yaml.safe_load((p / ".hydra" / "overrides.yaml").read_text()) == \
            yaml.safe_load((b / ".hydra" / "overrides.yaml").read_text())
        assert (p / "config.yaml").read_text() == (b / "config.yaml").read_text()
        mb, mp = json.loads((b / "metrics.json").read_text()), json.loads((p / "metrics.json").read_text())
        assert set(mb) <= set(mp) and mp["population_size"] == 4
        for k in ("train/loss", "val/loss", "val/acc", "test/acc"):
            assert mp[k] == pytest.approx(mb[k], rel=1e-4, abs=1e-5), (job, k)
        hb, hp = json.loads((b / "history.json").read_text()), json.loads((p / "history.json").read_text())
        assert [r["val/loss"] for r in hp["epochs"]] == pytest.approx([r["val/loss"] for r in hb["epochs"]], rel=1e-4)
        (sb, tags_b), (sp, tags_p) = events(b / "tb"), events(p / "tb")
        assert tags_p == tags_b  # per-epoch scalars, hparams metric columns, text (model summary, init audit)
        for tag in sb:
            assert [s for s, _ in sp[tag]] == [s for s, _ in sb[tag]], tag
            assert [v for _, v in sp[tag]] == pytest.approx([v for _, v in sb[tag]], rel=1e-4, abs=1e-5), tag
        assert "trained as member" in (p / "train.log").read_text()
    assert (pop / "summary.csv").read_text().count("\n") == (basic / "summary.csv").read_text().count("\n")


def test_jobs_that_cannot_be_grouped_run_one_by_one(tmp_path, monkeypatch):
    """Two widths (two groups of one) and a monitored job: nothing to batch, every job still runs."""
    sweep = multirun(tmp_path, "mixed", SWEEP + ["model.width=4,8", "hydra/launcher=population"], monkeypatch)
    for job in ("0", "1"):
        m = json.loads((sweep / job / "metrics.json").read_text())
        assert m["status"] == "completed" and "population_size" not in m


def test_monitored_jobs_are_grouped_and_monitored_as_their_single_runs(tmp_path, monkeypatch):
    """monitor=basic (figures off) jobs train as one population, each job's tb/ with the monitor's
    tags and values of the basic launcher's job; monitor.level=full is not batched: its jobs run
    one by one, with their monitor."""
    args = [a for a in SWEEP if a != "monitor=off"] + ["monitor=basic", "monitor.every=5", "monitor.figures=false",
                                                       "monitor.level=basic,full", "seed=0,1"]
    basic = multirun(tmp_path, "basic", args, monkeypatch)
    pop = multirun(tmp_path, "pop", args + ["hydra/launcher=population"], monkeypatch)
    assert tree(pop) == tree(basic)
    for job in sorted(p.name for p in basic.iterdir() if p.is_dir()):
        b, p = basic / job, pop / job
        level = yaml.safe_load((p / "config.yaml").read_text())["monitor"]["level"]
        metrics = json.loads((p / "metrics.json").read_text())
        assert metrics.get("population_size") == (2 if level == "basic" else None), (job, level)
        (sb, tags_b), (sp, tags_p) = events(b / "tb"), events(p / "tb")
        assert tags_p == tags_b
        watched = [t for t in sb if t.startswith("watch/")]
        assert "watch/dead_relu/net.1" in watched and "watch/grad_norm/total" in watched
        for tag in watched:
            assert [s for s, _ in sp[tag]] == [s for s, _ in sb[tag]], tag
            assert [v for _, v in sp[tag]] == pytest.approx([v for _, v in sb[tag]], rel=1e-4, abs=1e-5), tag
