"""The dashboards end to end: real short runs (one with monitor=full, a two-job "multirun"),
`nnbasics-board` serving them on a free 127.0.0.1 port, and TensorBoard's own HTTP data
endpoints asked whether the scalars, histograms, images and hparams (with metric values) are
there. The server is always stopped. A second check reads the event files directly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import nnbasics.cli.train  # noqa: F401  (registers the nnbasics_uid resolver conf/train.yaml uses)
from nnbasics.cli import board
from nnbasics.conf import CONF_DIR as PACKAGE_CONF
from nnbasics.engine.train import train

CONF_DIR = str(PACKAGE_CONF)
SINGLE = ["data=spiral", "epochs=2", "progress=false", "monitor=full", "monitor.every=2", "model.width=16",
          "checkpoint=false"]
MULTI = ["data=spiral", "epochs=1", "progress=false", "monitor=off", "model.width=8", "model.depth=1",
         "checkpoint=false"]
MULTI_LRS = (0.01, 0.05)
RUNS = ("single/tb", "multi/0/tb", "multi/1/tb")
# layers named by module path everywhere (net.0 Linear, net.1 ReLU, ...: the TEXT tab's summary)
MONITOR_SCALARS = ("watch/grad_norm/net.0", "watch/grad_norm/total", "watch/update_ratio/net.0",
                   "watch/weight_std/net.0", "watch/weight_std_init/net.0", "watch/dead_relu/net.1",
                   "watch/dead_relu/net.3")
MONITOR_HISTOGRAMS = ("weight/net.0", "weight/net.4", "grad/net.0", "pre_activation/net.1", "activation/net.3")
HPARAM_METRICS = ("whole/val/acc", "whole/val/loss", "whole/test/acc", "whole/train/loss")
SWEEP = ["scheduler=constant", "optimizer.lr=0.01,0.05", "seed=0,1"]  # the multirun's command line (multirun.yaml)


def compose(overrides):
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """outputs/ with one monitored run and a two-job sweep over the learning rate, laid out like
    Hydra's (multi/0, multi/1); returns (root, {run name: metrics})."""
    root = tmp_path_factory.mktemp("outputs")
    metrics = {"single/tb": train(compose(SINGLE), run_dir=root / "single")}
    (root / "multi").mkdir()
    (root / "multi" / "multirun.yaml").write_text(f"hydra:\n  overrides:\n    task: {json.dumps(SWEEP)}\n")
    for i, lr in enumerate(MULTI_LRS):
        overrides = ["scheduler=constant", f"optimizer.lr={lr}", f"seed={i}"]
        (root / "multi" / str(i) / ".hydra").mkdir(parents=True)  # what Hydra (or RunDir.start) writes
        (root / "multi" / str(i) / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
        metrics[f"multi/{i}/tb"] = train(compose(MULTI + overrides), run_dir=root / "multi" / str(i))
    return root, metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: dict | None = None, timeout: float = 5):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return json.loads(raw) if "json" in r.headers.get("Content-Type", "") else raw


def poll(check, timeout: float = 20.0):
    """check() until it returns something truthy without raising; the last error when it never does."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001  (connection refused, 404 before the first load, ...)
            last = e
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s; last error: {last!r}")


SESSION_REQUEST = {"experimentName": "", "startIndex": 0, "sliceSize": 100,
                   "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]}


def session_names(url: str) -> set[str]:
    return {g["name"] for g in get(url + "/data/plugin/hparams/session_groups", SESSION_REQUEST).get("sessionGroups", [])}


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    """`python -m nnbasics.cli.board` (what `nnbasics-board` runs) on a free port; always stopped."""
    root, _ = runs
    log = tmp_path_factory.mktemp("board") / "board.log"
    proc = None
    try:
        for _ in range(3):  # a port found free can be taken before the server binds it: try again
            port = free_port()
            with open(log, "w") as out:
                proc = subprocess.Popen([sys.executable, "-m", "nnbasics.cli.board", "--logdir", str(root), "--port", str(port),
                                         "--reload-interval", "1"], stdout=out, stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"

            def up():
                if proc.poll() is not None:
                    raise RuntimeError(f"board exited with {proc.returncode}")
                return get(url + "/data/plugins_listing")

            try:
                poll(up, timeout=30)
                break
            except AssertionError:
                if proc.poll() is None:
                    raise
        else:
            raise AssertionError(f"nnbasics-board did not start:\n{log.read_text()}")
        # the first load of the logdir happens in the background: wait until every run is in
        poll(lambda: set(RUNS) <= session_names(url))
        yield url
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_tensorboard_serves_scalars_histograms_images_and_hparams(server, runs):
    _, metrics = runs
    plugins = get(server + "/data/plugins_listing")
    for plugin in ("scalars", "histograms", "images", "hparams", "custom_scalars", "text"):
        assert plugin in plugins and plugins[plugin]["enabled"], plugin

    scalars = get(server + "/data/plugin/scalars/tags")
    assert set(RUNS) <= set(scalars)
    for tag in ("train/loss", "train/acc", "train/lr", "val/loss", "val/acc") + MONITOR_SCALARS:
        assert tag in scalars["single/tb"], tag
    assert "watch/grad_norm/net.0" not in scalars["multi/0/tb"]  # monitor=off writes no diagnostics
    # SCALARS groups tags by their first component, sorted, and opens the first two: train and val
    groups = sorted({tag.split("/")[0] for run in RUNS for tag in scalars[run]})
    assert groups[:2] == ["train", "val"], groups
    q = urllib.parse.urlencode({"run": "single/tb", "tag": "val/acc"})
    val_acc = get(server + f"/data/plugin/scalars/scalars?{q}")
    assert len({step for _, step, _ in val_acc}) >= 2, f"the val/acc curve lost its epochs: {val_acc}"
    q = urllib.parse.urlencode({"run": "single/tb", "tag": "watch/dead_relu/net.1"})
    assert all(0.0 <= v <= 1.0 for _, _, v in get(server + f"/data/plugin/scalars/scalars?{q}"))

    hists = get(server + "/data/plugin/histograms/tags")
    for tag in MONITOR_HISTOGRAMS:
        assert tag in hists["single/tb"], tag
    q = urllib.parse.urlencode({"run": "single/tb", "tag": "activation/net.1"})
    series = get(server + f"/data/plugin/histograms/histograms?{q}")
    assert len(series) >= 2 and all(len(buckets) > 0 for _, _, buckets in series)

    images = get(server + "/data/plugin/images/tags")
    assert {"figures/activations", "figures/decision_boundary"} <= set(images["single/tb"])
    q = urllib.parse.urlencode({"run": "single/tb", "tag": "figures/activations", "sample": 0})
    shots = get(server + f"/data/plugin/images/images?{q}")
    assert len(shots) == 2  # the start and the end of training
    png = get(server + "/data/plugin/images/" + shots[-1]["query"].join(["individualImage?", ""]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    groups = {g["name"]: g for g in get(server + "/data/plugin/hparams/session_groups", SESSION_REQUEST)["sessionGroups"]}
    assert set(groups) == set(RUNS)
    multi = [groups[f"multi/{i}/tb"]["hparams"] for i in range(2)]
    assert {h["optimizer.lr"] for h in multi} == set(MULTI_LRS)  # floats stay numbers
    assert [h["seed"] for h in multi] == ["0", "1"] and multi[0]["batch_size"] == "128"  # ints as ints
    assert [h["scheduler"] for h in multi] == ["constant", "constant"]  # an overridden key that is no core column
    assert multi[1]["overrides"] == "optimizer.lr=0.05 seed=1 scheduler=constant"  # swept first

    # TensorBoard shows one run's experiment; it sorts the columns by differs, then name, and ticks
    # the first five: a sweep opens on its swept keys and the override string
    experiment = get(server + "/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = experiment["hparamInfos"]
    assert {"activation", "init", "optimizer", "optimizer.lr", "batch_size", "model.width", "model.depth",
            "regularization", "seed"} <= {h["name"] for h in infos}
    assert set(HPARAM_METRICS) <= {m["name"]["tag"] for m in experiment["metricInfos"]}
    differs = [h["name"] for h in infos if h.get("differs")]
    if "scheduler" in {h["name"] for h in infos}:  # a job of the sweep: its swept keys first
        assert differs == ["optimizer.lr", "overrides", "seed"] and [h["name"] for h in infos[:3]] == differs
    else:  # the single run: its own overrides first
        assert {"monitor", "overrides"} <= set(differs)
    for run, group in groups.items():
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        for tag in HPARAM_METRICS:
            assert values[tag] == pytest.approx(metrics[run][tag.split("/", 1)[1]], rel=1e-6), (run, tag)


def test_event_files_hold_the_diagnostics(runs):
    """The same facts without a server (EventAccumulator reads the event file)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, _ = runs
    acc = EventAccumulator(str(root / "single" / "tb"), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert set(MONITOR_SCALARS) <= set(tags["scalars"])
    assert set(MONITOR_HISTOGRAMS) <= set(tags["histograms"])
    assert {"figures/activations", "figures/decision_boundary"} <= set(tags["images"])
    # spiral: 600 examples / batch 128 = 5 updates per epoch; every=2 -> snapshots 0, 2, 4, 5 (first of
    # epoch 2), 6, 8
    assert [e.step for e in acc.Scalars("watch/grad_norm/net.0")] == [0, 2, 4, 5, 6, 8]
    assert [e.step for e in acc.Scalars("watch/dead_relu/net.1")] == [0, 5, 10]  # start, each epoch end
    # He normal, output layer (linear gain) of width 16: sqrt(1 / 16)
    assert all(e.value == pytest.approx(0.25) for e in acc.Scalars("watch/weight_std_init/net.4"))
    # the TEXT tab names the layers as the scalars do
    texts = acc.Tags()["tensors"]
    assert {"model/summary/text_summary", "model/init_audit/text_summary", "monitor/layers/text_summary"} <= set(texts)
    audit = acc.Tensors("model/init_audit/text_summary")[0].tensor_proto.string_val[0].decode()
    assert all(name in audit for name in ("net.0", "net.2", "net.4"))


def test_scalar_steps_never_go_back(runs):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    root, _ = runs
    (events,) = (root / "single" / "tb").glob("events.out.tfevents.*")
    last: dict[str, int] = {}
    for event in EventFileLoader(str(events)).Load():
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "scalars":
                assert event.step >= last.get(value.tag, -1), f"{value.tag}: step {event.step} after {last[value.tag]}"
                last[value.tag] = event.step


def test_board_arguments_default_to_outputs_on_localhost():
    args = board.build_parser().parse_args([])
    assert (args.logdir, args.host, args.port) == ("outputs", "127.0.0.1", 6006)
    argv = board.tensorboard_argv(board.build_parser().parse_args(["--logdir", "x", "--port", "7000"]))
    assert argv[argv.index("--logdir") + 1] == "x" and argv[argv.index("--port") + 1] == "7000"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


def test_board_refuses_a_missing_logdir(tmp_path, capsys):
    assert board.main(["--logdir", str(tmp_path / "nope")]) == 2
    assert "no folder" in capsys.readouterr().err
