"""Figures: decision boundaries, activation histograms, image grids."""
