"""nnbasics: the fundamentals of neural networks as explicit, tested PyTorch code."""

__version__ = "0.1.0"
