"""The experiment suite: the machinery (nnbasics.suite: stats, context, runner, report; the command
nnbasics.cli.experiment) and a smoke run of every experiment found in experiments/ (toy data, seconds
each; never real data, never the network), which must leave the library as it found it."""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import sys
import textwrap
from pathlib import Path

import pytest

from nnbasics.cli.experiment import main, parse_args
from nnbasics.suite import stats as S
from nnbasics.suite.context import Context, ExperimentError
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
    from nnbasics.suite.context import Outcome
    from nnbasics.viz.figures import new_figure
    def run(ctx):
        if {fail}:
            raise ValueError("broken on purpose")
        fig = new_figure(2, 2)
        fig.add_subplot(1, 1, 1).plot([0, 1], [0, 1])
        path = ctx.save_figure(fig, "line")
        return Outcome("| a |\\n|---|\\n| 1 |", True, "1 > 0", [path], {{"x": 1.0}})
''')


def test_runner_report_and_errored_experiment(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "z1_ok.py").write_text(_FAKE.format(id="Z1", fail=False))
    (folder / "z2_broken.py").write_text(_FAKE.format(id="Z2", fail=True))
    monkeypatch.setenv("NNBASICS_EXPERIMENTS", str(folder))
    assert list(discover()) == ["Z1", "Z2"]
    out, rep = tmp_path / "out", tmp_path / "report"
    code = main(["all", "budget=smoke", "seeds=1", f"out={out}", f"report={rep}"])
    assert code == 1  # one experiment errored; the other still ran
    ok = json.loads((out / "smoke" / "Z1" / "result.json").read_text())
    bad = json.loads((out / "smoke" / "Z2" / "result.json").read_text())
    assert ok["status"] == "ok" and ok["verdict"] is True and bad["status"] == "error" and "broken" in bad["error"]
    md = (out / "smoke" / "Z1" / "result.md").read_text()
    assert "**Verdict: HELD.**" in md and "![line](line.png)" in md and "nnbasics-experiment Z1 budget=smoke seeds=1" in md
    assert "ValueError" in (out / "smoke" / "Z2" / "result.md").read_text()
    report = (rep / "REPORT.md").read_text()
    assert "| [Z1](#z1) | fakes run | HELD |" in report and "ERRORED" in report
    assert (rep / "figures" / "Z1_line.png").exists() and "figures/Z1_line.png" in report
    assert list((out / "smoke" / "Z1" / "tb").iterdir())  # the figure went to TensorBoard too
    assert main(["Z9", f"out={out}"]) == 2 and "no experiment" in capsys.readouterr().err


def test_every_experiment_module_follows_the_contract():
    assert EXPERIMENTS, "no experiments found"
    for exp_id, path in EXPERIMENTS.items():
        module = load_module(path)
        assert module.ID.upper() == exp_id and path.name.lower().startswith(exp_id.lower() + "_")
        assert module.TITLE and module.CLAIM and module.REFERENCE and callable(module.run)


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
    out = tmp_path / "smoke" / exp_id
    md = (out / "result.md").read_text()
    assert "**Verdict: " in md and record["verdict_text"]
    assert record["verdict"] in (True, False, None)
    assert json.loads((out / "result.json").read_text())["id"] == exp_id
    assert record["figures"] and all(Path(f).exists() and Path(f).suffix == ".png" for f in record["figures"])
