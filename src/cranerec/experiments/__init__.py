"""Experiments and reports: specs (``spec``), the result store (``store``), the resumable runner
(``runner``), Optuna searches (``search``), what both share (``workers``), statistics
(``stats``), the Markdown report (``report``) and the built-in suites (``suites/*.yaml``).
docs/experiments.md describes them; nothing heavy is imported here."""
