"""Experiments and reports: specs (``spec``), the result store (``store``), the resumable runner
(``runner``), Optuna searches (``search``), statistics (``stats``), the Markdown report
(``report``), plots of runs (``plots``) and the built-in suites (``suites/*.yaml``).
docs/experiments.md describes them; nothing heavy is imported here."""

from cranerec.experiments.plots import plot_training_curve

__all__ = ["plot_training_curve"]
