"""How every cranerec process prints a warning: one ``warning: MESSAGE`` line, each said once."""

from __future__ import annotations

import warnings


def _one_line(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def one_line_warnings() -> None:
    """Print this process's warnings as ``warning: MESSAGE`` lines, not Python's two-line form
    with the source file and line: the CLI's process and each worker process it spawns (a
    spawned process starts with Python's defaults)."""
    warnings.formatwarning = _one_line
