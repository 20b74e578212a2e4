"""Progress of long work where no bar can be drawn: when stderr is a log file or a pipe, a line
now and then (``texts: 4,096 / 18,357 (22%), 1m05s``) and one at the end. On a terminal the
commands draw a tqdm bar instead; ``--quiet`` shows neither."""

from __future__ import annotations

import sys
import time
from typing import Literal, TextIO

Mode = Literal["bar", "lines", "off"]


def progress_mode(enabled: bool, stream: TextIO | None = None) -> Mode:
    """``bar`` on a terminal, ``lines`` when ``stream`` (stderr) is not one, ``off`` when not
    ``enabled`` (``--quiet``)."""
    if not enabled:
        return "off"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


class ProgressLines:
    """Counts work done out of ``total`` and prints a line at most every ``every_s`` seconds,
    and a last one when closed (also as a context manager)."""

    def __init__(
        self, desc: str, total: int, every_s: float = 30.0, stream: TextIO | None = None
    ) -> None:
        self.desc, self.total, self.every_s = desc, total, every_s
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.start = self.said = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.said >= self.every_s and self.done < self.total:
            self._say(now)

    def close(self) -> None:
        self._say(time.monotonic())

    def _say(self, now: float) -> None:
        self.said = now
        pct = 100.0 * self.done / self.total if self.total else 100.0
        try:  # a stderr that cannot be written (a closed pipe) never fails the work
            self.stream.write(
                f"{self.desc}: {self.done:,} / {self.total:,} ({pct:.0f}%), "
                f"{_elapsed(now - self.start)}\n"
            )
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def as_mode(progress: bool | Mode) -> Mode:
    """A ``progress`` argument as a mode: ``True`` is a bar (the library's default), ``False``
    nothing."""
    if progress is True:
        return "bar"
    if progress is False:
        return "off"
    if progress not in ("bar", "lines", "off"):
        raise ValueError(f"progress must be True, False, 'bar', 'lines' or 'off', got {progress!r}")
    return progress


def counter(desc: str, total: int, progress: bool | Mode, unit: str = "it"):
    """What counts ``total`` units of work as ``progress`` says: a tqdm bar, a
    :class:`ProgressLines`, or a disabled bar; each is a context manager with ``update(n)``."""
    mode = as_mode(progress)
    if mode == "lines":
        return ProgressLines(f"{desc} ({unit})", total)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=mode != "bar")
