"""The errors serving raises, and how their messages name ids.

``ServeError``: a run directory that cannot be served, or a request that cannot be answered.
``RequestError`` (a ``ServeError``): the request's fault, with a message that names what to
change and no server path, so that the HTTP service can show it to clients. ``UnknownIdError``
and ``ItemExistsError`` are request errors that carry the ids at fault.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Ids named in an error message (the error's ``ids`` holds them all).
SHOWN_IDS = 20


class ServeError(ValueError):
    """A run directory that cannot be served, or a request that cannot be answered; the message
    names the file or the ids at fault."""


class RequestError(ServeError):
    """A query that cannot be answered as asked; the message names what to change and no
    server path (the HTTP service shows it to clients)."""


class UnknownIdError(RequestError):
    """Ids that the run does not know; ``kind`` is ``user`` or ``item``, ``ids`` lists them."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        self.kind = kind
        self.ids = ids
        super().__init__(f"unknown {kind} id{'s' if len(ids) > 1 else ''}: {shown(ids)}")


class ItemExistsError(RequestError):
    """New item ids that are already served (trained, or added before); ``ids`` lists them."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        super().__init__(
            f"item id{'s' if len(ids) > 1 else ''} already in the catalogue: {shown(ids)}"
        )


def shown(ids: Sequence[str]) -> str:
    """The first ``SHOWN_IDS`` ids, quoted, and how many more."""
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(repr(i) for i in ids[:SHOWN_IDS]) + more
