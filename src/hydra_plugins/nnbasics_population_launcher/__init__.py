"""Hydra launcher plugin ``hydra/launcher=population``: a multirun's compatible jobs trained as
populations of stacked models in one process (``nnbasics.engine.population``), every job still with
its own run directory; jobs that cannot be grouped run one by one, as the basic launcher runs
them."""

__version__ = "0.1.0"
