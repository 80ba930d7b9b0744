"""The public training entry point, kept where users call it: ``nnbasics.train.train(cfg, run_dir)``.

The engine lives in ``nnbasics.engine``; this module only re-exports its front door.
"""

from nnbasics.engine.train import evaluate, train

__all__ = ["train", "evaluate"]
