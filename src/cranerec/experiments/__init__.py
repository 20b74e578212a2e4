"""Experiments and reports: plots of runs (multi-seed runners and sweeps build on these)."""

from cranerec.experiments.plots import plot_training_curve

__all__ = ["plot_training_curve"]
