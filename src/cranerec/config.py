"""Typed configuration: dataclasses built from plain dicts (YAML, ``--set key=value``), validated on
load. Unknown keys and badly typed values fail with a message that lists what is valid."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names it and what is allowed."""


def _type_name(tp: Any) -> str:
    if get_origin(tp) is typing.Literal:  # the values themselves: 'sum' | 'mean'
        return " | ".join(repr(v) for v in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (with safe int->float widening)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:  # `float | None`: the float's own message says what is wrong
            raise errors[0]
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):  # NaN/inf would pass every `x > 0` check and fail late
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ``ConfigError``.
    A ``Settings`` class checks itself when built; for any other class ``validate()`` is called
    after construction when it defines one."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping of settings, got {data!r}")
    data = dict(data or {})
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys{' under ' + where if where else ''}: {', '.join(sorted(fields))}"
        )
    required = [
        name for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]  # fmt: skip
    absent = [name for name in required if name not in data]
    if absent:
        raise ConfigError(
            f"{where or cls.__name__}: missing key(s) {', '.join(absent)} (required); "
            f"given: {', '.join(sorted(data)) or 'none'}"
        )
    kwargs = {
        name: _coerce(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    for name, value in kwargs.items():
        _check_sign(name, value, f"{where}.{name}" if where else name)
    try:
        obj = cls(**kwargs)  # a Settings subclass checks itself here
        validate = getattr(obj, "validate", None)
        if callable(validate) and not isinstance(obj, Settings):
            validate()
    except ConfigError as e:
        raise ConfigError(f"{where + ': ' if where else ''}{e}") from None
    return obj


class Settings:
    """Base of the config dataclasses (declare them ``@dataclass(frozen=True)`` and change them
    with ``dataclasses.replace``). A settings object is checked when it is built, by
    ``from_dict`` or directly: a ``Literal`` field holds one of its values, a weight, rate or
    size is not negative (``NON_NEGATIVE``, ``POSITIVE``), then the class's own ``validate()``
    (cross-field rules) runs. An invalid object never exists."""

    #: Settings that change speed or memory only, not results (beyond float rounding): left out
    #: of a run's id and free to change on resume (e.g. a block size). A model's config names its.
    RUNTIME: typing.ClassVar[frozenset[str]] = frozenset()
    #: Settings added after result stores existed, each with the value every run had before it
    #: existed: left out of a run's id while at that value, so the ids of runs stored before them
    #: stay valid (a run that changes one gets a new id), even if the default changes later.
    #: A RUNTIME setting added later belongs here too (RUNTIME alone keeps it in the id).
    ADDED: typing.ClassVar[dict[str, typing.Any]] = {}

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value, tp = getattr(self, f.name), hints[f.name]
            if get_origin(tp) is typing.Literal and value not in get_args(tp):
                raise ConfigError(f"{f.name} {value!r} is not one of {list(get_args(tp))}")
            _check_sign(f.name, value, f.name)
        validate = getattr(self, "validate", None)
        if callable(validate):
            validate()


#: Settings that are weights, rates, counts or sizes by name: a negative value is always a
#: mistake (a negative loss weight turns a penalty into a reward), so every config refuses one.
NON_NEGATIVE = re.compile(
    r"(weight|weight_decay|dropout|keep|ratio|_budget_s|_k|_dim|_layers|_size|_rounds|_width"
    r"|_heads|_every|_epochs)$"
)
#: ... and these divide something: zero is a mistake too.
POSITIVE = re.compile(r"(temperature|_dim)$")


def _check_sign(name: str, value: Any, where: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if POSITIVE.search(name) and value <= 0:
        raise ConfigError(f"{where} must be > 0, got {value}")
    if NON_NEGATIVE.search(name) and value < 0:
        raise ConfigError(f"{where} must be >= 0, got {value}")


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain-dict (YAML/JSON-safe) copy of a config dataclass."""
    return dataclasses.asdict(obj)


def describe_fields(cls: type) -> list[tuple[str, str, Any]]:
    """(name, type, default) for each field of a config dataclass (for ``cranerec models``)."""
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append((f.name, _type_name(hints[f.name]), default))
    return out


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["train.lr=1e-3", "model.n_layers=3"]`` into a nested dict; values are parsed as
    YAML scalars/lists (``1e-3`` -> float, ``[10, 20]`` -> list, ``true`` -> bool)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        # YAML 1.1 reads "1e-3" as a string; accept it as a number.
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value) if any(c in value for c in ".eE") else int(value)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: str) -> dict[str, Any]:
    """Read a YAML config file; a clear error if it is missing or not a mapping."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give the YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data
