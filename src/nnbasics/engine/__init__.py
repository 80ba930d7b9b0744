"""The training engine: validation, set-up, the loop, run directories, populations, monitor."""
