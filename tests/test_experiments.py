"""The experiment suite: the machinery (nnbasics.suite: stats, context, runner, report; the command
nnbasics.cli.experiment) and a smoke run of every experiment found in experiments/ (toy data, seconds
each; never real data, never the network), which must leave the library as it found it."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

import pytest

from nnbasics.cli.experiment import main, parse_args
from nnbasics.suite import stats as S
from nnbasics.suite.context import Context, ExperimentError
from nnbasics.conf import CONF_DIR
from nnbasics.suite.report import write_report
from nnbasics.suite.runner import command_line, discover, load_module, run_experiment

EXPERIMENTS = discover()


# --- helpers --------------------------------------------------------------------------------------


def test_mean_std_and_fmt():
    m, s = S.mean_std([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and s == pytest.approx(1.0)  # sample std (n - 1)
    assert S.mean_std([5.0]) == (5.0, 0.0)
    assert S.mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2)))  # diverged runs left out
    assert all(math.isnan(v) for v in S.mean_std([]))
    assert S.fmt(0.91234, 0.00456) == "0.912 ± 0.005"
    assert S.fmt(0.91234, 0.00456, percent=True) == "91.2 ± 0.5 %"
    assert S.fmt(float("nan"), 0.1) == "n/a"
    assert "1/3 diverged" in S.fmt_values([0.5, 0.6, float("inf")])


def test_the_verdict_rule_separated_beyond_and_chance():
    # two standard errors of the difference: 1.0 +- 0.1 vs 2.0 +- 0.1 (3 seeds) is separated, 2 +- 1 vs 3 +- 1 is not
    assert S.separated([0.9, 1.0, 1.1], [1.9, 2.0, 2.1]) and not S.separated([1, 2, 3], [2, 3, 4])
    se = math.sqrt(2 * (1 / math.sqrt(3)) ** 2)  # std 1 per arm, n = 3
    assert S.separated([0, 1, 2], [v + 2 * se + 1e-9 for v in (0, 1, 2)])
    assert not S.separated([0, 1, 2], [v + 2 * se - 1e-6 for v in (0, 1, 2)])
    assert not S.separated([1.0, 1.0], [1.0, 1.0]) and not S.separated([], [1.0]) and S.separated([1.0], [2.0])
    assert S.less([1, 1.1, 0.9], [2, 2.1, 1.9]) and not S.greater([1, 1.1, 0.9], [2, 2.1, 1.9])
    assert S.separated([1.0, 1.0, float("nan")], [2.0, 2.0])  # a diverged run's NaN is left out
    # paired: the same seeds compared seed by seed
    assert S.greater([1.01, 2.01, 3.01], [1.0, 2.0, 3.0], paired=True)
    assert not S.greater([1.01, 2.01, 3.01], [1.0, 2.0, 3.0])  # unpaired, the seed spread hides it
    assert S.beyond([0.96, 0.97, 0.95], 0.9, above=True) and not S.beyond([0.96, 0.97, 0.95], 0.96, above=True)
    assert S.beyond([0.1, 0.12], 0.5, above=False) and not S.beyond([], 0.5, above=False)
    assert S.chance_loss(10) == pytest.approx(2.302585) and S.chance_loss(3) == pytest.approx(1.098612)
    assert S.stuck_loss(3) == pytest.approx(0.95 * math.log(3)) and S.chance_acc(4) == 0.25
    with pytest.raises(ValueError):
        S.chance_loss(1)
    assert S.checks_verdict({"a": True, "b": False}) == (False, "a (ok); b (FAILED)")
    # three ways: a difference inside the seed spread neither holds nor refutes a claim
    assert S.lower([1, 1.1, 0.9], [2, 2.1, 1.9]) is True and S.lower([2, 2.1, 1.9], [1, 1.1, 0.9]) is False
    assert S.lower([1, 2, 3], [2, 3, 4]) is None and S.higher([2, 3, 4], [1, 2, 3]) is None
    assert S.higher([2, 2.1, 1.9], [1, 1.1, 0.9]) is True and S.lower([], [1.0]) is None
    assert S.checks_verdict({"a": True, "b": None}) == (None, S.INCONCLUSIVE + "a (ok); b (inside the seed spread)")
    assert S.checks_verdict({"a": None, "b": False})[0] is False  # a refuted part decides
    assert S.checks_verdict({"a": True, "b": True}, "(note)") == (True, "a (ok); b (ok) (note)")
    # an equivalence (two one-sided tests) under the same rule: d = a - b and 2 standard errors of it inside
    # (-margin, margin) holds, wholly outside refutes, over a bound is undecided
    assert S.within([0.95, 0.96, 0.97], [0.951, 0.961, 0.971], 0.01, paired=True) is True  # d = -0.001 every seed
    assert S.within([0.90, 0.91, 0.92], [0.95, 0.96, 0.97], 0.01, paired=True) is False  # d = -0.05
    assert S.within([0.94, 0.95, 0.96], [0.95, 0.95, 0.95], 0.01, paired=True) is None  # d = 0 +- 0.0115
    assert S.within([0.94, 0.95, 0.96], [0.95, 0.95, 0.95], 0.02, paired=True) is True  # a wider margin holds it
    d = [0.009, 0.009, 0.009]  # close to the margin, no spread: inside
    assert S.within(d, [0.0] * 3, 0.01, paired=True) is True and S.within([], [1.0], 0.1) is None
    # unpaired: the standard error of the difference of the means, as separated uses
    se = math.sqrt(2 * (1 / math.sqrt(3)) ** 2)
    assert S.within([0, 1, 2], [0, 1, 2], 2 * se + 1e-9) is True and S.within([0, 1, 2], [0, 1, 2], 2 * se - 1e-9) is None
    # one-sided (non-inferiority): only "a at most margin below b" counts; far above is fine
    assert S.within([0.99] * 3, [0.90] * 3, 0.02, one_sided=True) is True
    assert S.within([0.85] * 3, [0.90] * 3, 0.02, one_sided=True) is False
    assert S.within([0.86, 0.90, 0.94], [0.91, 0.91, 0.91], 0.02, paired=True, one_sided=True) is None


def test_first_at_curve_at_and_table():
    hist = [{"epoch": 1, "train/acc": 0.5}, {"epoch": 2, "train/acc": 0.8}, {"epoch": 3, "train/acc": 0.9}]
    assert S.first_at(hist, "train/acc", above=0.75) == 2
    assert S.first_at(hist, "train/acc", above=0.95) == math.inf
    curve = [[10, 0.1, 2.0], [20, 0.2, 1.0], [30, 0.3, 0.5]]
    assert S.curve_at(curve, 25, window=2) == pytest.approx(1.5)
    assert math.isnan(S.curve_at(curve, 5))
    table = S.md_table(["a", "b"], [[1, 0.123456], ["x|y", "z"]])
    assert table.splitlines()[1] == "|---|---|" and "0.1235" in table and "x\\|y" in table


def test_context_pick_and_budget():
    ctx = Context("T1", "smoke", [0], Path("/tmp/unused"))
    assert ctx.pick(smoke=1, default=2, full=3) == 1 and ctx.threads == 1
    assert Context("T1", "default", [0], Path("/tmp/unused")).pick(smoke=1, default=2, full=3) == 2
    assert Context("T1", "full", [0], Path("/tmp/unused")).pick(smoke=1, default=2) == 2  # full falls back
    with pytest.raises(ExperimentError, match="budget"):
        Context("T1", "huge", [0], Path("/tmp/unused"))


def test_parse_args():
    ids, opts = parse_args(["I3", "O1", "budget=smoke", "seeds=2", "device=cpu"])
    assert ids == ["I3", "O1"] and opts["budget"] == "smoke" and opts["seeds"] == [0, 1] and opts["device"] == "cpu"
    assert parse_args(["all", "seeds=4,7"])[1]["seeds"] == [4, 7]
    for bad in (["budget=huge"], ["seeds=0"], ["seeds=x"], ["colour=red"]):
        with pytest.raises(ExperimentError):
            parse_args(["I3", *bad])
    assert command_line(["I3"], "default", [0, 1, 2], "auto") == "nnbasics-experiment I3 budget=default seeds=3 device=auto"


def test_compose_adds_quiet_defaults_and_respects_overrides(tmp_path):
    ctx = Context("T1", "smoke", [0], tmp_path, device="cpu")
    cfg = ctx.compose(["data=spiral", "monitor=basic"])
    assert cfg.progress is False and cfg.checkpoint is False and cfg.device == "cpu" and cfg.threads == 1
    assert cfg.monitor.level == "basic" and cfg.data.name == "spiral"


def test_train_writes_run_dirs_and_same_seed_same_numbers(tmp_path):
    ctx = Context("T1", "smoke", [0], tmp_path, device="cpu")
    over = ["data=spiral", "model.width=8", "model.depth=1", "epochs=2"]
    a = ctx.train(over, seed=3, name="arm a")
    b = ctx.train(over, seed=3, name="arm b")
    assert Path(a["run_dir"]) == tmp_path / "runs" / "arm_a" / "seed3"
    assert (Path(a["run_dir"]) / "metrics.json").exists() and a["history"] and a["curve"]
    assert a["val/acc"] == b["val/acc"] and a["curve"][-1][2] == b["curve"][-1][2]
    assert ctx.runs == 2 and ctx.train_time_s > 0
    # the same name and seed again: a folder of its own, the earlier run untouched
    before = (Path(a["run_dir"]) / "metrics.json").read_bytes()
    again = ctx.train(over, seed=3, name="arm a")
    assert Path(again["run_dir"]) == tmp_path / "runs" / "arm_a" / "seed3-2"
    assert (Path(a["run_dir"]) / "metrics.json").read_bytes() == before
    assert Path(ctx.train(over, seed=3, name="arm a")["run_dir"]).name == "seed3-3"


def test_seeds_and_lr_grids_train_as_populations_with_the_single_runs_numbers(tmp_path):
    """Context.train_seeds and tune_lr train compatible runs as one population (the one engine
    over K members): each member gets its own run directory and the numbers of its single run
    (within the population-equality tolerance of tests/test_population.py); population=False
    trains them one by one."""
    over = ["data=spiral", "model.width=8", "model.depth=1", "epochs=3", "optimizer=adam"]
    grouped = Context("T1", "smoke", [0, 1, 2], tmp_path / "pop", device="cpu")
    one_by_one = Context("T1", "smoke", [0, 1, 2], tmp_path / "seq", device="cpu", population=False)
    a, b = grouped.train_seeds(over, name="arm"), one_by_one.train_seeds(over, name="arm")
    assert [r["population_size"] for r in a] == [3, 3, 3] and all("population_size" not in r for r in b)
    for x, y in zip(a, b):
        assert Path(x["run_dir"]).name == Path(y["run_dir"]).name and (Path(x["run_dir"]) / "metrics.json").exists()
        for k in ("train/loss", "val/loss", "val/acc", "test/acc"):
            assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-5), k
        assert len(x["history"]) == len(y["history"]) == 3 and x["curve"]
    best_a, table_a = grouped.tune_lr(over, [1e-3, 1e-2, 1e-1])
    best_b, table_b = one_by_one.tune_lr(over, [1e-3, 1e-2, 1e-1])
    assert best_a == best_b and all(table_a[lr].runs[0]["population_size"] == 3 for lr in table_a)
    assert grouped.runs == one_by_one.runs == 6
    # arms that differ in per-member keys only (here the initializer) train as one population across arms
    arms = {"he": over + ["init=he_normal"], "xavier": over + ["init=xavier_uniform"]}
    c, d = grouped.train_arms(arms), one_by_one.train_arms(arms)
    assert list(c) == ["he", "xavier"] and all(r["population_size"] == 6 for runs in c.values() for r in runs)
    for arm in arms:
        assert [Path(r["run_dir"]).parts[-2:] for r in c[arm]] == [(arm, f"seed{s}") for s in (0, 1, 2)]
        for x, y in zip(c[arm], d[arm]):
            assert x["val/loss"] == pytest.approx(y["val/loss"], rel=1e-4, abs=1e-5)


def test_a_timed_experiment_trains_its_runs_one_by_one(tmp_path, monkeypatch):
    """An experiment whose claim is about the time of its runs declares ``TIMED = True``; the runner then
    gives it a one-by-one context on the population path too (a member has no time of its own). Every
    experiment whose verdict reads run times declares it."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    body = textwrap.dedent('''
        from nnbasics.suite.context import Outcome
        def verdict(numbers):
            return None, "nothing to decide"
        def run(ctx):
            runs = ctx.train_seeds(["data=spiral", "model.width=8", "model.depth=1", "epochs=2"], name="arm")
            n = {"grouped": sum("population_size" in r for r in runs)}
            return Outcome("| a |\\n|---|\\n| 1 |", None, "nothing to decide", [], n)
    ''')
    for name, timed in (("t1_timed.py", True), ("t2_grouped.py", False)):
        head = f"ID = {name[:2].upper()!r}\nTITLE = CLAIM = REFERENCE = 'x'\nPROTOCOL = 'the source setup, stated'\n"
        (folder / name).write_text(head + "SCALE_DOWN = 'tiny'\n" + ("TIMED = True\n" if timed else "") + body)
    timed_rec = run_experiment(folder / "t1_timed.py", "smoke", [0, 1], tmp_path / "out", "cpu", 1, False)
    grouped_rec = run_experiment(folder / "t2_grouped.py", "smoke", [0, 1], tmp_path / "out", "cpu", 1, False)
    assert timed_rec["status"] == grouped_rec["status"] == "ok", timed_rec.get("traceback")
    assert timed_rec["numbers"]["grouped"] == 0 and grouped_rec["numbers"]["grouped"] == 2
    for exp_id, path in EXPERIMENTS.items():
        module = load_module(path)
        if re.search(r"time_s|per_update", inspect.getsource(module.verdict)):
            assert getattr(module, "TIMED", False), f"{exp_id}'s verdict reads run times: declare TIMED = True"


def test_u1_parameter_counts_are_the_models():
    """U1 pairs nets by ``mlp_params``: it must count what the library builds from U1's own overrides."""
    from conftest import compose_cfg
    from nnbasics.nn.models import build_model, count_parameters

    u1 = load_module(EXPERIMENTS["U1"])
    for width, depth in ((1, 1), (8, 1), (u1.deep_width(25), 3), (5, 3)):
        cfg = compose_cfg(u1.overrides("sin", width, depth, 10))
        assert count_parameters(build_model(cfg, (1,), 1)) == u1.mlp_params(width, depth), (width, depth)


def test_context_classes_of_the_data():
    ctx = Context("T1", "smoke", [0], Path("/tmp/unused"))
    assert ctx.classes(["data=spiral"]) == 3 and ctx.classes(["data=spiral", "data.classes=10"]) == 10
    assert ctx.classes(["data=mnist"]) == 10 and ctx.classes(["data=xor"]) == 2


def test_diverged_run_is_returned_not_raised(tmp_path):
    ctx = Context("T1", "smoke", [0], tmp_path, device="cpu")
    r = ctx.train(["data=spiral", "model.width=8", "model.depth=2", "epochs=3", "optimizer=sgd", "optimizer.lr=1e12"],
                  seed=0, name="boom")
    assert r["status"] == "diverged" and math.isnan(r["val/acc"])


_FAKE = textwrap.dedent('''
    ID = "{id}"
    TITLE = "a fake experiment"
    CLAIM = "fakes run"
    REFERENCE = "none"
    PROTOCOL = "the fake source's setup"
    AT_PROTOCOL = {at}
    SCALE_DOWN = "default trains on a tenth of the data"
    DIFFERS = "a fake differs because x was measured at {x}"
    from nnbasics.suite.context import Outcome
    from nnbasics.viz.figures import new_figure
    def verdict(numbers):
        return {{1: True, 0: False}}.get(numbers["x"]), f"x = {{numbers['x']}} (held if 1)"
    def run(ctx):
        if {fail}:
            raise ValueError("broken on purpose")
        fig = new_figure(2, 2)
        fig.add_subplot(1, 1, 1).plot([0, 1], [0, 1])
        path = ctx.save_figure(fig, "line")
        numbers = {{"x": {x}}}
        held, text = verdict(numbers)
        return Outcome("| a |\\n|---|\\n| 1 |", {claimed}, text, [path], numbers)
''')


def _fake(id: str, fail: bool = False, x: int = 1, claimed: str = "held", at: tuple = ("default", "full")) -> str:
    return _FAKE.format(id=id, fail=fail, x=x, claimed=claimed, at=at)


def test_runner_report_and_errored_experiment(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "z1_ok.py").write_text(_fake("Z1", False, 1, "held"))
    (folder / "z2_broken.py").write_text(_fake("Z2", True, 1, "held"))
    (folder / "z3_no.py").write_text(_fake("Z3", False, 0, "held"))
    (folder / "z4_open.py").write_text(_fake("Z4", False, 5, "held"))
    (folder / "z5_liar.py").write_text(_fake("Z5", False, 0, "True"))  # not verdict(numbers)
    (folder / "z6_none.py").write_text(_fake("Z6", False, 1, "held").replace("def verdict", "def _v"))
    monkeypatch.setenv("NNBASICS_EXPERIMENTS", str(folder))
    assert list(discover()) == ["Z1", "Z2", "Z3", "Z4", "Z5", "Z6"]
    out, rep = tmp_path / "out", tmp_path / "report"

    # budget=smoke: runs only, no verdicts anywhere
    code = main(["all", "budget=smoke", "seeds=1", f"out={out}", f"report={rep}"])
    assert code == 1  # experiments errored; the others still ran
    (ok_dir,) = [d for d in (out / "smoke" / "Z1").iterdir()]
    assert re.fullmatch(r"\d{8}-\d{6}_[0-9a-f]{6}", ok_dir.name)
    ok = json.loads((ok_dir / "result.json").read_text())
    assert ok["status"] == "ok" and ok["verdict"] is None and ok["verdict_text"].startswith("smoke: runs only")
    assert ok["result_dir"] == str(ok_dir)
    md = (ok_dir / "result.md").read_text()
    assert "**Verdict: smoke: runs only.**" in md and "![line](line.png)" in md
    assert "nnbasics-experiment Z1 budget=smoke seeds=1" in md
    bad = json.loads(next((out / "smoke" / "Z2").glob("*/result.json")).read_text())
    assert bad["status"] == "error" and "broken" in bad["error"]
    assert "ValueError" in next((out / "smoke" / "Z2").glob("*/result.md")).read_text()
    liar = json.loads(next((out / "smoke" / "Z5").glob("*/result.json")).read_text())
    assert liar["status"] == "error" and "function of the numbers" in liar["error"]
    missing = json.loads(next((out / "smoke" / "Z6").glob("*/result.json")).read_text())
    assert missing["status"] == "error" and "verdict" in missing["error"]
    report = (rep / "REPORT.md").read_text()
    assert "| [Z1](#z1) | fakes run | smoke: runs only |" in report and "ERRORED" in report
    assert "HELD" not in report and "DID NOT HOLD" not in report and "3 ran (smoke: runs only" in report
    assert (rep / "figures" / "Z1_line.png").exists() and "figures/Z1_line.png" in report
    assert list((ok_dir / "tb").iterdir())  # the figure went to TensorBoard too

    # budget=default: the verdicts, counted as HELD / DID NOT HOLD / INCONCLUSIVE
    assert main(["Z1", "Z3", "Z4", "budget=default", "seeds=1", f"out={out}", f"report={rep}"]) == 0
    report = (rep / "REPORT.md").read_text()
    assert "| [Z1](#z1) | fakes run | HELD |" in report and "| [Z3](#z3) | fakes run | DID NOT HOLD |" in report
    assert "| [Z4](#z4) | fakes run | INCONCLUSIVE |" in report
    assert "1 HELD, 1 DID NOT HOLD, 1 INCONCLUSIVE, 0 ERRORED" in report
    assert "| Z2 | fakes run | not run |" in report
    assert main(["Z9", f"out={out}"]) == 2 and "no experiment" in capsys.readouterr().err


def test_below_its_protocol_a_claim_that_did_not_hold_is_inconclusive(tmp_path, monkeypatch):
    """The budget rule: DID NOT HOLD only at the protocol; below it, INCONCLUSIVE naming the protocol and
    the scale-down; every non-HELD section says why ours may differ; the reproduce line is complete and
    the report states one clean revision (or flags several)."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "z1_below.py").write_text(_fake("Z1", x=0, at=("full",)))
    (folder / "z2_at.py").write_text(_fake("Z2", x=0, at=("default", "full")))
    (folder / "z3_held.py").write_text(_fake("Z3", x=1, at=("full",)))
    monkeypatch.setenv("NNBASICS_EXPERIMENTS", str(folder))
    monkeypatch.setenv("NNBASICS_DATA", "/some/data")
    out, rep = tmp_path / "out", tmp_path / "report"
    below, at, held = (run_experiment(folder / f, budget="default", seeds=[0], out=out, threads=1, verbose=False)
                       for f in ("z1_below.py", "z2_at.py", "z3_held.py"))
    assert below["verdict"] is None and below["measured_verdict"] is False and not below["at_protocol"]
    assert below["verdict_text"].startswith(S.INCONCLUSIVE + "budget default is below the protocol (the fake source's setup")
    assert "a tenth of the data" in below["verdict_text"] and "x = 0" in below["verdict_text"]
    assert at["verdict"] is False and at["at_protocol"] and at["differs"] == "a fake differs because x was measured at 0"
    assert held["verdict"] is True and "differs" not in held  # a HELD explains nothing
    assert below["command"] == "nnbasics-experiment Z1 budget=default seeds=1 device=auto threads=1 data=/some/data"
    md = (Path(below["result_dir"]) / "result.md").read_text()
    assert "**Protocol.** the fake source's setup (budget `default` is below it: default trains on a tenth" in md
    assert "**Why ours may differ.** a fake differs because x was measured at 0" in md
    assert "Why ours may differ" not in (Path(held["result_dir"]) / "result.md").read_text()
    report = write_report(out, "default", rep).read_text()
    assert "- data: /some/data" in report and "CPU cores" in report and ("every result ran at" in report)
    assert "1 HELD, 1 DID NOT HOLD, 1 INCONCLUSIVE" in report
    assert "- every experiment again: `nnbasics-experiment all budget=default seeds=1 device=auto threads=1 data=/some/data`" in report
    # a report with experiments not yet run names the ones it has, not `all`
    partial = write_report(out, "default", rep, claims={"Z9": "a claim not yet run"}).read_text()
    assert "- these experiments again: `nnbasics-experiment Z1 Z2 Z3 budget=default seeds=1" in partial
    # results of several revisions are flagged
    rec_file = Path(held["result_dir"]) / "result.json"
    rec = json.loads(rec_file.read_text())
    rec_file.write_text(json.dumps({**rec, "git": "abc123-dirty"}))
    assert "results from several revisions" in write_report(out, "default", rep).read_text()
    assert command_line(["I3"], "default", [0, 1], "cpu", population=False).endswith("population=false")


def test_rerun_keeps_every_result_and_the_report_reads_the_latest(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    folder.mkdir()
    path = folder / "z1_ok.py"
    path.write_text(_fake("Z1", False, 1, "held"))
    out, rep = tmp_path / "out", tmp_path / "report"
    first = run_experiment(path, budget="default", seeds=[0], out=out, verbose=False)
    path.write_text(_fake("Z1", False, 0, "held"))  # the code changed: it no longer holds
    second = run_experiment(path, budget="default", seeds=[0], out=out, verbose=False)
    assert first["result_dir"] != second["result_dir"]
    assert json.loads((Path(first["result_dir"]) / "result.json").read_text())["verdict"] is True  # still there
    assert (Path(first["result_dir"]) / "line.png").exists()
    # an unfinished run (no result.json yet) is passed over
    (out / "default" / "Z1" / "99999999-999999_ffffff").mkdir()
    from nnbasics.suite.report import latest_results, write_report

    rec, where = latest_results(out, "default")["Z1"]
    assert where == Path(second["result_dir"]) and rec["verdict"] is False
    report = write_report(out, "default", rep).read_text()
    assert "DID NOT HOLD" in report and f"result folder: `{second['result_dir']}`" in report


def test_every_experiment_module_follows_the_contract():
    assert EXPERIMENTS, "no experiments found"
    for exp_id, path in EXPERIMENTS.items():
        module = load_module(path)
        assert callable(getattr(module, "differs", None)) and not getattr(module, "DIFFERS", None), exp_id
        assert module.TITLE and module.CLAIM and module.REFERENCE and callable(module.run) and callable(module.verdict)
        # its protocol: what budget=full runs, which budgets are it, what the others change, why ours may differ
        assert isinstance(module.PROTOCOL, str) and len(module.PROTOCOL) > 20, exp_id
        at = tuple(getattr(module, "AT_PROTOCOL", ("full",)))
        assert set(at) <= {"default", "full"} and ("default" not in at or "full" in at), (exp_id, at)  # () : none can
        assert isinstance(module.SCALE_DOWN, str) and (module.SCALE_DOWN or "default" in at), exp_id
        assert callable(getattr(module, "differs", None)) or len(getattr(module, "DIFFERS", "")) > 40, exp_id
        overlays = re.findall(r"experiment=([a-z0-9_{},]+)", module.PROTOCOL)
        for name in overlays:  # every overlay it names exists (brace lists expanded)
            m = re.fullmatch(r"([a-z0-9_]*)\{([a-z0-9_,]+)\}([a-z0-9_]*)", name)
            for full in ([m.group(1) + x + m.group(3) for x in m.group(2).split(",")] if m else name.split(",")):
                assert (CONF_DIR / "experiment" / f"{full}.yaml").exists(), (exp_id, full)


_ALL_IMPORTED: list = []


def _library_state() -> dict:
    """Every public attribute of every ``nnbasics`` module (by identity) and the contents of the
    public dicts, lists and sets among them (the registries: OPTIMIZERS, LOSSES, LOSS_TASKS,
    ACTIVATIONS, INITIALIZERS, DATASETS, PREPROCESSORS, SCHEDULES, REGULARIZERS, MODELS, ...)."""
    import nnbasics

    if not _ALL_IMPORTED:  # all of them, once: a module first imported mid-run is checked too
        for info in pkgutil.walk_packages(nnbasics.__path__, "nnbasics."):
            importlib.import_module(info.name)
        _ALL_IMPORTED.append(True)
    state = {}
    for name, module in sorted(sys.modules.items()):
        if not (name == "nnbasics" or name.startswith("nnbasics.")) or module is None:
            continue
        for attr, value in vars(module).items():
            if attr.startswith("_"):
                continue
            state[f"{name}.{attr}"] = id(value)
            if isinstance(value, dict):
                state[f"{name}.{attr}[...]"] = {k: (id(v), tuple(sorted(map(id, v))) if isinstance(v, (set, frozenset))
                                                    else None) for k, v in value.items()}
            elif isinstance(value, (list, set)):
                state[f"{name}.{attr}[...]"] = sorted(map(id, value))
    return state


def test_library_state_sees_an_assignment_and_a_registry_entry():
    from nnbasics.engine import batch_size
    from nnbasics.nn import losses

    before = _library_state()
    original = batch_size.is_out_of_memory
    losses.LOSSES["l1_probe"] = losses.mse
    batch_size.is_out_of_memory = lambda err: True
    try:
        after = _library_state()
    finally:
        losses.LOSSES.pop("l1_probe")
        batch_size.is_out_of_memory = original
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert "nnbasics.nn.losses.LOSSES[...]" in changed and "nnbasics.engine.batch_size.is_out_of_memory" in changed
    assert _library_state() == before


@pytest.mark.parametrize("exp_id", list(EXPERIMENTS))
def test_experiment_smoke(exp_id, tmp_path, monkeypatch):
    """Every experiment runs end to end at the smoke budget, leaves its result and a figure, and
    leaves the library as it found it (no attribute assigned, no registry entry added or removed:
    an experiment passes what it needs to ``train``)."""
    before = _library_state()
    during: set[str] = set()
    train = Context.train

    def checked_train(self, *args, **kwargs):  # a patch undone afterwards is still a patch while runs train
        now = _library_state()
        during.update(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Context, "train", checked_train)
    record = run_experiment(EXPERIMENTS[exp_id], budget="smoke", seeds=[0, 1], out=tmp_path, device="cpu",
                            verbose=False)
    after = _library_state()
    changed = sorted(during | {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)})
    assert not changed, f"{exp_id} changed the library: {changed}"
    assert record["status"] == "ok", record.get("traceback")
    out = Path(record["result_dir"])
    assert out.parent == tmp_path / "smoke" / exp_id
    md = (out / "result.md").read_text()
    assert "**Verdict: smoke: runs only.**" in md
    assert record["verdict"] is None and record["verdict_text"].startswith("smoke: runs only")
    # the experiment's verdict is a function of the numbers it wrote: it runs on them, smoke-sized or not
    held, reason = load_module(EXPERIMENTS[exp_id]).verdict(record["numbers"])
    assert held in (True, False, None) and isinstance(reason, str) and reason
    assert json.loads((out / "result.json").read_text())["id"] == exp_id
    assert record["figures"] and all(Path(f).exists() and Path(f).suffix == ".png" for f in record["figures"])
