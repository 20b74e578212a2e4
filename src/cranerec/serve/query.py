"""The edge of a query: raw ids in, checked and compared as strings (``7`` and ``"7"`` are the
same user), and a ranked list of raw item ids and scores out (``RankedItems``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cranerec.serve.errors import RequestError

RawId = str | int


@dataclass(frozen=True)
class RankedItems:
    """One ranked list, best first: raw ``item_ids`` (str) and their ``scores`` (float32).
    ``query`` is what the list is for: the user id (``recommend``), the item id
    (``similar_items``), or None (a new user, ``recommend_for_items``)."""

    query: str | None
    item_ids: np.ndarray  # [n] str
    scores: np.ndarray  # [n] float32

    def __len__(self) -> int:
        return len(self.item_ids)

    def items(self) -> list[dict[str, Any]]:
        """``[{"item_id": ..., "score": ...}, ...]`` (the HTTP service's shape)."""
        return [
            {"item_id": i, "score": s}
            for i, s in zip(self.item_ids.tolist(), self.scores.tolist(), strict=True)
        ]


def as_ids(ids: RawId | Iterable[RawId], kind: str) -> tuple[bool, list[str]]:
    """``(single, ids as strings)`` for one raw id or a list of them."""

    def one(x: object) -> str:
        if isinstance(x, bool) or not isinstance(x, str | int | np.integer | np.str_):
            raise RequestError(f"{kind} ids must be strings or integers, got {type(x).__name__}")
        return str(x)

    if isinstance(ids, str | int | np.integer | np.str_) and not isinstance(ids, bool):
        return True, [one(ids)]
    if isinstance(ids, Mapping) or not isinstance(ids, Iterable):
        raise RequestError(f"expected a {kind} id or a list of them, got {type(ids).__name__}")
    return False, [one(x) for x in ids]


def per_user_items(
    user_items: Iterable[RawId] | Sequence[Iterable[RawId]] | None, single: bool, n_users: int
) -> list[list[str]] | None:
    """``user_items`` as one list of item ids per user (None: none given)."""
    if user_items is None:
        return None
    if single:
        return [as_ids(user_items, "item")[1]]
    if isinstance(user_items, str | Mapping) or not isinstance(user_items, Iterable):
        raise RequestError("user_items: one list of item ids per user id")
    rows = list(user_items)
    if len(rows) != n_users or any(
        isinstance(r, str | int | np.integer | np.str_ | Mapping) for r in rows
    ):
        raise RequestError(
            f"user_items: one list of item ids per user id ({n_users} user ids, "
            f"{len(rows)} entries)"
        )
    return [as_ids(r, "item")[1] for r in rows]


def check_k(k: object) -> int:
    """``k`` as an int (``RequestError`` unless it is an integer >= 1)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise RequestError(f"k must be an integer >= 1, got {k!r}")
    return int(k)
