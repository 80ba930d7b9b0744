"""nnbasics: the fundamentals of neural networks as explicit, tested PyTorch code.

After training (imported on first use, so ``import nnbasics`` stays light):

    run = nnbasics.load_run("outputs/runs/<date>/<time>_<id>")   # model, preprocessing, metrics
    run.predict(x).classes                                       # see nnbasics.engine.load
    nnbasics.load_sweep("outputs/multirun/<date>/<time>_<id>")   # one record per run
"""

__version__ = "0.1.0"

_LAZY = {"load_run": "nnbasics.engine.load", "load_sweep": "nnbasics.engine.load"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnbasics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
