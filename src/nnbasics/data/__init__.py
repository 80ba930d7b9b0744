"""Data sets as device-resident tensors, fetching them, and preprocessing."""
