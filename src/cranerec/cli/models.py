"""``cranerec models``: the registered models, their settings and presets."""

from __future__ import annotations

import argparse

from cranerec.cli.output import _out


def _cmd_models(args: argparse.Namespace) -> int:
    import inspect

    from cranerec.config import describe_fields
    from cranerec.data.loaders import DataConfig
    from cranerec.eval.evaluator import EvalConfig
    from cranerec.models import MODELS, get_model_class
    from cranerec.train.config import TrainConfig

    sections = (("train", TrainConfig), ("data", DataConfig), ("eval", EvalConfig))
    names = [args.name] if args.name else sorted(MODELS)
    for name in names:
        cls = get_model_class(name)
        doc = inspect.getdoc(cls) or ""
        _out(f"{name}  ({cls.__name__}; batches: {cls.batch_kind})")
        lines = doc.splitlines() if args.name else doc.splitlines()[:1]
        for line in lines:
            _out(f"    {line}".rstrip())
        for field, tp, default in describe_fields(cls.Config):
            _out(f"    model.{field}: {tp} = {default!r}")
        defaults = {
            f"{section}.{field}": default
            for section, config_cls in (("model", cls.Config), *sections)
            for field, _, default in describe_fields(config_cls)
        }
        for preset, changes in sorted(cls.presets.items()):
            changed = {k: v for k, v in _flatten(changes).items() if defaults.get(k) != v}
            shown = ", ".join(f"{k}={v!r}" for k, v in changed.items()) or "the defaults"
            _out(f"    preset {preset} changes: {shown}")
        _out("")
    _out("settings of every run (cranerec train --set KEY=VALUE):")
    for section, config_cls in sections:
        for field, tp, default in describe_fields(config_cls):
            _out(f"    {section}.{field}: {tp} = {default!r}")
    if not args.name:
        _out("a model's whole description: cranerec models NAME")
    return 0


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def add_parsers(sub) -> None:
    """``models``."""
    m = sub.add_parser(
        "models", help="registered models, their settings and presets; every run's settings"
    )
    m.add_argument("name", nargs="?", help="one model: its whole description")
    m.set_defaults(func=_cmd_models)
