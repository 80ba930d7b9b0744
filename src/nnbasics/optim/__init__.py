"""Optimization: optimizers (update rules), learning-rate schedules, regularization."""
