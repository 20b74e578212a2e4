"""Search spaces: dotted config keys, each a ``Dimension`` (a list of values, or a numeric range),
parsed by the same typed config code as every other setting (``cranerec.config.from_dict``:
unknown keys and bad values are one ``ConfigError`` naming them). The spec checks a space when it
is loaded; the search (``search.py``) asks Optuna for points of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cranerec.config import ConfigError, from_dict


def _grid(start: float, stop: float, step: float) -> list[float]:
    n = round((stop - start) / step)
    return [round(start + i * step, 10) for i in range(n + 1)]


#: Sec. 4.3.2 of the CRANE paper: learning rate, L2 lambda, temperature tau, contrastive beta.
PAPER_GRID: dict[str, list[Any]] = {
    "train.lr": [1e-3, 5e-4, 1e-4, 5e-5],
    "model.reg_weight": [1e-3, 1e-4, 1e-5],
    "model.temperature": _grid(0.1, 1.0, 0.1),
    "model.cl_weight": _grid(0.1, 0.9, 0.1),
}
SPACES = {"paper_grid": PAPER_GRID}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True)
class Dimension:
    """One dimension of a search space: ``values`` (grid / categorical) or a range ``low`` ..
    ``high`` (``log`` scale, ``step``). Integer bounds (and step) give an integer range. The
    bounds keep the type they are written with, hence ``Any`` and the checks in ``validate``."""

    values: list[Any] | None = None
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None

    def validate(self) -> None:
        if self.values is not None:
            ranged = (self.low, self.high, self.step) != (None, None, None) or self.log
            if not self.values or ranged:
                raise ConfigError("values must be a non-empty list (and alone)")
            return
        if self.low is None or self.high is None:
            raise ConfigError("a range needs low and high")
        if not (_number(self.low) and _number(self.high)) or self.low >= self.high:
            raise ConfigError("low and high must be numbers with low < high")
        if self.step is not None and (not _number(self.step) or self.step <= 0):
            raise ConfigError("step must be a number > 0")
        if self.log and self.low <= 0:
            raise ConfigError("a log range needs low > 0")

    def suggest(self, trial, name: str) -> Any:
        if self.values is not None:
            return trial.suggest_categorical(name, self.values)
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
        if ints and (self.step is None or float(self.step).is_integer()):
            return trial.suggest_int(
                name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(
            name, float(self.low), float(self.high), step=self.step, log=self.log
        )


def search_space(search) -> dict[str, Dimension]:
    """The space of a search section (``SearchSpec``: a built-in name, or a mapping of dotted
    keys to ``{values: [...]}``, a bare list, or ``{low, high, log, step}``), validated."""
    space = search.space
    if isinstance(space, str):
        if space not in SPACES:
            raise ConfigError(
                f"search.space: no built-in space {space!r}; built-in: {sorted(SPACES)}"
            )
        space = {k: {"values": v} for k, v in SPACES[space].items()}
    if not isinstance(space, dict) or not space:
        raise ConfigError(
            "search.space: expected a built-in space name or a mapping key -> dimension"
        )
    out = {}
    for key, dim in space.items():
        where = f"search.space.{key}"
        if not re.fullmatch(r"(model|train|eval|data)\.[A-Za-z0-9_]+", key):
            raise ConfigError(
                f"{where}: keys are dotted config keys such as train.lr or model.knn_k"
            )
        if isinstance(dim, list):
            dim = {"values": dim}
        if not isinstance(dim, dict):
            raise ConfigError(f"{where}: expected {{values: [...]}} or {{low, high}}, got {dim!r}")
        out[key] = from_dict(Dimension, dim, where)
    return out


def is_grid(space: dict[str, Dimension]) -> bool:
    return all(d.values is not None for d in space.values())


def grid_size(space: dict[str, Dimension]) -> int:
    n = 1
    for d in space.values():
        n *= len(d.values or [])
    return n
