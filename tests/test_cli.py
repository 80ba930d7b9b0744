"""The command line as a user meets it: `nnbasics-train` runs, multiruns, and bad values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TOY

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(args: list[str], cwd: Path, module: bool = False, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nnbasics"] if module else [str(BIN / "nnbasics-train")]
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_single_run_prints_run_dir_last(tmp_path):
    out = run_cli(TOY + ["epochs=1"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("run dir: ")
    run_dir = Path(last.removeprefix("run dir: "))
    run_dir = run_dir if run_dir.is_absolute() else tmp_path / run_dir
    assert run_dir.parent.parent == tmp_path / "outputs" / "runs"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "test/acc" in metrics
    assert (run_dir / "tb").is_dir() and (run_dir / ".hydra" / "config.yaml").exists()


def test_multirun_leaves_distinct_run_dirs(tmp_path):
    out = run_cli(["-m"] + TOY + ["epochs=1", "optimizer.lr=0.01,0.1", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert len(runs) == 4
    from omegaconf import OmegaConf

    combos = set()
    for r in runs:
        c = OmegaConf.load(r / "config.yaml")
        combos.add((c.optimizer.lr, c.seed))
    assert combos == {(0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1)}


def test_two_runs_started_together_never_share_a_directory(tmp_path):
    env = {"PATH": str(BIN) + ":/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([str(BIN / "nnbasics-train")] + TOY + ["epochs=1"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(dirs) == 2
    assert len(list((tmp_path / "outputs" / "runs").glob("*/*/metrics.json"))) == 2


def test_bad_value_fails_at_once_with_clear_message_and_no_results(tmp_path):
    out = run_cli(["model.depth=-1", "data=spiral", "progress=false"], cwd=tmp_path)
    assert out.returncode == 2
    assert "model.depth" in out.stderr and "-1" in out.stderr and ">= 0" in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.rglob("metrics.json"))
    assert not list(tmp_path.glob("outputs/runs/*/*"))  # the run directory Hydra made is removed


def test_unknown_group_option_lists_the_valid_ones(tmp_path):
    out = run_cli(["activation=swishy"] + TOY, cwd=tmp_path)
    assert out.returncode != 0
    assert "swishy" in out.stderr and "relu" in out.stderr  # Hydra lists the available options


def test_python_dash_m_is_the_same_command(tmp_path):
    out = run_cli(TOY + ["epochs=1"], cwd=tmp_path, module=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("run dir: ")


def test_data_command_reports_missing_data_clearly(tmp_path, monkeypatch):
    from nnbasics.cli import data as datacli
    from nnbasics.data import fetch as fetch_mod

    monkeypatch.setattr(fetch_mod, "torchvision_download", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    assert datacli.main(["fetch", "cifar10", "--root", str(tmp_path)]) == 1


# --- the command line as Hydra and lightning-hydra-template users type it ------------------------


def test_dash_dash_key_value_gets_a_one_line_hint_and_nothing_is_created(tmp_path):
    out = run_cli(["--epochs", "3"], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == "error: nnbasics-train takes key=value overrides, not --key value: write epochs=3\n"
    assert out.stdout == "" and "usage" not in out.stderr.lower()
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("argv, hint", [
    (["--epochs", "3"], "epochs=3"),
    (["data=spiral", "--optimizer.lr=0.1", "-m", "seed=0,1"], "optimizer.lr=0.1"),
    (["--seed"], "seed=<value>"),
    (["--epochs", "3", "--tags", "[a,b]"], "epochs=3 tags=[a,b]"),
    (["--cfg", "job", "epochs=3"], None),
    (["-c", "job", "--resolve", "--package", "data"], None),
    (["--multirun", "seed=0,1"], None),
    (["--multi", "seed=0,1"], None),  # argparse takes a unique prefix of Hydra's own options
    (["--info", "config", "epochs=1"], None),
    (["--info"], None),
    (["--config-name", "train", "-cn", "train", "--config-dir=conf"], None),
    (["-m", "hydra/launcher=joblib"], None),
])
def test_flag_hint_knows_hydras_own_options(argv, hint):
    from nnbasics.cli.train import flag_hint

    assert flag_hint(argv) == hint


def test_hydras_own_options_still_work(tmp_path):
    out = run_cli(["--cfg", "job", "data=spiral", "debug=fdr"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "steps: 5" in out.stdout and "tags:" in out.stdout
    assert run_cli(["--help"], cwd=tmp_path).returncode == 0
    assert not (tmp_path / "outputs").exists()


def test_the_resolved_config_is_logged_at_the_start_and_warnings_are_one_line(tmp_path):
    out = run_cli(TOY + ["epochs=1", "tags=[smoke]", "activation=selu"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    start = lines.index("config:")
    assert start < next(i for i, line in enumerate(lines) if line.startswith("epoch 1/"))
    body = "\n".join(lines[start + 1:])
    assert "data:\n  name: spiral" in body and "tags:\n- smoke" in body and "${" not in body
    run_dir = Path(lines[-1].removeprefix("run dir: "))
    run_dir = run_dir if run_dir.is_absolute() else tmp_path / run_dir
    assert "config:\ndata:\n  name: spiral" in (run_dir / "train.log").read_text()
    # the SELU-vs-init note: one clean line, no "UserWarning", no source path
    (note,) = [line for line in (out.stdout + out.stderr).splitlines() if "self-normalizing" in line]
    assert note.startswith("warning: activation=selu is self-normalizing only with LeCun init")
    assert "UserWarning" not in out.stdout + out.stderr and ".py:" not in out.stdout + out.stderr


def test_print_config_false_keeps_the_log_short(tmp_path):
    out = run_cli(TOY + ["epochs=1", "print_config=false"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "config:" not in out.stdout.splitlines() and "print_config:" not in out.stdout


def test_a_bad_tags_value_is_refused_in_one_line(tmp_path):
    out = run_cli(TOY + ["tags=baseline"], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: config error: tags='baseline' is not allowed; must be a list of strings")
    assert "Traceback" not in out.stderr and not list(tmp_path.glob("outputs/runs/*/*"))


def test_show_warning_is_one_log_line(caplog):
    import warnings

    from nnbasics.cli.train import show_warning

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning
        with caplog.at_level("WARNING", logger="nnbasics"):
            warnings.warn("a note\n  over two lines")
            warnings.warn("old", DeprecationWarning)
    assert [r.getMessage() for r in caplog.records] == ["warning: a note over two lines",
                                                        "warning: DeprecationWarning: old"]
