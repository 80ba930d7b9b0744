"""Building blocks a learner reads: initializers, activations, layers, losses, models."""
