"""Every option of every config group composes, passes validation, and trains a few steps.

Parametrized over the YAML files in conf/, so a new option is covered the moment it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnbasics.conf import CONF_DIR

from conftest import SHARED_DATA, TOY
from nnbasics.nn import losses
from nnbasics.engine.train import train
from nnbasics.engine.validate import validate

CONF = CONF_DIR
GROUPS = ["data", "model", "activation", "init", "loss", "optimizer", "scheduler", "regularization", "preprocess", "monitor"]
IMAGE_SETS = {"mnist", "fashion_mnist", "cifar10"}
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]

# A toy data set whose target suits each task, so every loss gets data it accepts.
DATA_FOR_TASK = {
    "multiclass": ["data=spiral"],
    "binary": ["data=moons", "data.target=parity"],
    "multilabel": ["data=blobs", "data.classes=10", "data.target=attributes"],
    "regression": ["data=curve"],
}


REGRESSION_SETS = ("curve", "synthetic_linear")  # regression targets: trained with loss=mse


def overrides_for(group: str, option: str) -> list[str]:
    base = [o for o in TOY if not o.startswith("data=")] + ["steps=3", "batch_size=32", "checkpoint=false"]
    if group == "data":
        return base + [f"data={option}"] + (["loss=mse"] if option in REGRESSION_SETS else [])
    if group == "loss":
        tasks = losses.LOSS_TASKS.get(option, {"multiclass"})
        task = "multiclass" if "multiclass" in tasks else sorted(tasks)[0]
        return base + DATA_FOR_TASK[task] + [f"loss={option}"]
    if group == "model" and option == "cnn":
        return base + ["data=spiral"] + [f"model={option}"]
    if group == "model" and option == "examples_cnn":  # image-only, and without width/depth keys
        return [o for o in base if not o.startswith("model.")] + ["data=mnist", "data.download=false",
                                                                  f"model={option}"]
    return base + ["data=spiral", f"{group}={option}"]


def test_every_group_has_options():
    for group in GROUPS:
        assert list((CONF / group).glob("*.yaml")), group


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_validates_and_trains(compose, tmp_path, group, option):
    if group == "data" and option in REGRESSION_SETS and not (CONF / "loss" / "mse.yaml").exists():
        pytest.skip("regression needs loss=mse")
    ov = overrides_for(group, option)
    cfg = compose(ov)
    assert cfg[group] is not None
    if group == "data" and option in IMAGE_SETS:
        cfg.data.download = False
        validate(cfg)  # composing and validating needs no data files
        if option == "cifar10" or not (SHARED_DATA / ("MNIST" if option == "mnist" else "FashionMNIST") / "raw").is_dir():
            return
        cfg.data.root = str(SHARED_DATA)
        cfg.data.train_size = 256
    if group == "model" and option == "cnn":
        pytest.skip("the CNN needs image input; covered in tests/test_models.py")
    if group == "model" and option == "examples_cnn":
        validate(cfg)  # composing and validating needs no data files
        if not (SHARED_DATA / "MNIST" / "raw").is_dir():
            return
        cfg.data.root, cfg.data.train_size = str(SHARED_DATA), 256
    m = train(cfg, run_dir=tmp_path / "run")
    assert m["status"] == "completed" and m["steps"] == 3


# --- the config layer: each group checks its own keys -----------------------------------------

import ast  # noqa: E402

from omegaconf import OmegaConf  # noqa: E402

from conftest import CONF_DIR  # noqa: E402
from nnbasics import config  # noqa: E402
from nnbasics.engine.validate import GROUP_VALIDATORS  # noqa: E402
from nnbasics.errors import ConfigError  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src" / "nnbasics"
SPIRAL = ["data=spiral", "monitor=basic"]

# (overrides, the refused key, the key the message suggests): a typo in each group and at top level
TYPOS = [
    (["+data.n_sample=500"], "data.n_sample", "data.n_samples"),
    (["data=mnist", "data.download=false", "+data.val_sise=100"], "data.val_sise", "data.val_size"),
    (["+model.widht=64"], "model.widht", "model.width"),
    (["model=cnn", "data=mnist", "data.download=false", "+model.kernel=3"], "model.kernel", "model.kernel_size"),
    (["+model.dropout.input=0.1"], "model.dropout.input", "model.dropout.input_p"),
    (["activation=leaky_relu", "+activation.negative_slop=0.1"], "activation.negative_slop", "activation.negative_slope"),
    (["+init.gian=2"], "init.gian", "init.gain"),
    (["loss=hinge", "+loss.margn=2"], "loss.margn", "loss.margin"),
    (["+optimizer.weight_decy=0.1"], "optimizer.weight_decy", "optimizer.weight_decay"),
    (["+scheduler.warmup_step=10"], "scheduler.warmup_step", "scheduler.warmup_steps"),
    (["+regularization.dropout=0.5"], "regularization.dropout", "regularization.dropout_p"),
    (["preprocess=standardize", "+preprocess.modes=channel"], "preprocess.modes", "preprocess.mode"),
    (["+monitor.evry=10"], "monitor.evry", "monitor.every"),
    (["+optimiser.name=sgd"], "optimiser", "optimizer"),
    (["+epoch=3"], "epoch", "epochs"),
]


@pytest.mark.parametrize("overrides,key,suggested", TYPOS, ids=[" ".join(o) for o, _, _ in TYPOS])
def test_a_typo_key_is_refused_with_the_closest_valid_key(compose, overrides, key, suggested):
    with pytest.raises(ConfigError) as e:
        validate(compose(SPIRAL + overrides))
    assert e.value.key == key
    assert f"did you mean `{suggested}`?" in str(e.value)


BOOLEANS = [
    (["eval_test=no"], "eval_test"),
    (["progress=maybe"], "progress"),
    (["search=yes"], "search"),
    (["eval_test=null"], "eval_test"),  # present and null: not a boolean either
    (["data=mnist", "data.download=nope"], "data.download"),
    (["regularization.decoupled=maybe"], "regularization.decoupled"),
    (["monitor.figures=sometimes"], "monitor.figures"),
    (["optimizer=adam", "optimizer.amsgrad=yes"], "optimizer.amsgrad"),
    (["optimizer=rmsprop", "optimizer.centered=off"], "optimizer.centered"),
    (["optimizer=momentum", "+optimizer.nesterov=on"], "optimizer.nesterov"),
    (["activation=prelu", "activation.per_unit=yes"], "activation.per_unit"),
]


@pytest.mark.parametrize("overrides,key", BOOLEANS, ids=[" ".join(o) for o, _ in BOOLEANS])
def test_a_boolean_key_takes_a_real_boolean_only(compose, overrides, key):
    with pytest.raises(ConfigError, match="must be true or false") as e:
        validate(compose(SPIRAL + overrides))
    assert e.value.key == key and key in str(e.value)


@pytest.mark.parametrize("value", ["1", "off", "yes", "null"])
def test_checkpoint_takes_its_policies_or_a_boolean_and_nothing_else(compose, value):
    """checkpoint is a choice (last | best | both | none), true (= last) or false (= none)."""
    with pytest.raises(ConfigError, match="choose last") as e:
        validate(compose(SPIRAL + [f"checkpoint={value}"]))
    assert e.value.key == "checkpoint"
    for ok in ("last", "best", "both", "none", "true", "false"):
        validate(compose(SPIRAL + [f"checkpoint={ok}"]))


def test_true_and_false_pass_and_an_absent_top_level_boolean_takes_the_engine_default(compose):
    validate(compose(SPIRAL + ["eval_test=false", "progress=true", "search=false", "checkpoint=false"]))
    validate(compose(SPIRAL + ["~eval_test", "~progress", "~search", "~checkpoint"]))


@pytest.mark.parametrize("make", [lambda d: d, OmegaConf.create], ids=["dict", "DictConfig"])
def test_select_has_one_rule_for_missing_and_null(make):
    cfg = make({"a": {"b": None, "c": 0}, "n": None})
    assert config.select(cfg, "a.x", default=7) == 7       # missing key: the default
    assert config.select(cfg, "x.y.z", default=7) == 7     # missing node on the path: the default
    assert config.select(cfg, "n.b", default=7) == 7       # a null node on the path: the default
    assert config.select(cfg, "a.b", default=7) is None    # present and null: None
    assert config.select(cfg, "a.c", default=7) == 0       # a falsy value is a value
    assert config.select(cfg, "a.x") is None               # the default default


def test_select_treats_a_dictconfig_missing_value_as_missing():
    assert config.select(OmegaConf.create({"a": "???"}), "a", default=3) == 3


def test_check_keys_allows_hydra_instantiate_keys():
    config.check_keys({"_target_": "x.Y", "_partial_": True, "name": "a"}, "g", {"name"})
    with pytest.raises(ConfigError, match="did you mean `g.name`"):
        config.check_keys({"nme": "a"}, "g", {"name"})


def test_every_group_has_one_validator_in_the_table():
    assert list(GROUP_VALIDATORS) == GROUPS


def test_a_config_composed_with_its_hydra_node_validates():
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=["data=spiral"], return_hydra_config=True)
    assert "hydra" in cfg
    validate(cfg)


@pytest.mark.parametrize("group,override", [
    ("data", "data.noise=-1"), ("model", "model.width=0"), ("activation", "activation.name=swish"),
    ("init", "init.gain=-1"), ("loss", "loss.name=focal"), ("optimizer", "optimizer.lr=0"),
    ("scheduler", "scheduler.warmup_steps=-1"), ("regularization", "regularization.l1=-1"),
    ("preprocess", "preprocess.name=fourier"), ("monitor", "monitor.every=0"),
])
def test_each_group_validator_checks_its_own_group_alone(compose, group, override):
    """A building block's validate_config refuses a bad value of its group by itself (validate.py
    adds only top-level keys and the rules that join groups)."""
    with pytest.raises(ConfigError) as e:
        GROUP_VALIDATORS[group](compose(SPIRAL + [override]))
    assert e.value.key.startswith(group + ".")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("package", ["nn", "optim", "data"])
def test_building_blocks_do_not_import_the_engine(package):
    for path in sorted((SRC / package).rglob("*.py")):
        bad = sorted(n for n in _imports(path) if n == "nnbasics.engine" or n.startswith("nnbasics.engine."))
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_the_config_layer_imports_nothing_of_the_project_but_its_errors():
    project = {n for n in _imports(SRC / "config.py") if n.split(".")[0] == "nnbasics"}
    assert project <= {"nnbasics.errors", "nnbasics.errors.ConfigError"}, project
