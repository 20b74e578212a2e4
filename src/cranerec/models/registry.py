"""The registry of models by name, filled by discovery: every module of the ``cranerec.models``
package is imported and each class decorated with ``@register`` becomes available by its
``name``. Adding a model is writing one file (``models/<name>.py``); nothing else lists models.

Models outside the package: the directories in ``$CRANEREC_MODEL_PATH`` (``os.pathsep``-
separated) are searched too, each ``*.py`` file imported as a model module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cranerec.models.base import Model

MODEL_PATH_ENV = "CRANEREC_MODEL_PATH"
#: Modules of the package that hold shared parts, not models (imported by the models that use
#: them; listed so discovery does not import them for nothing).
NOT_MODELS = {"base", "registry", "frozen_graph", "presets"}

MODELS: dict[str, type[Model]] = {}


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make a model available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no registry name")
    if cls.name in MODELS and MODELS[cls.name] is not cls:
        raise ValueError(
            f"model name {cls.name!r} is already registered by {MODELS[cls.name].__name__}"
        )
    MODELS[cls.name] = cls
    return cls


def get_model_class(name: str) -> type[Model]:
    """The model class registered as ``name``; a clear error listing the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}"
        ) from None


def discover(package_path: list[str] | None = None) -> None:
    """Import every model module of the package (and of ``$CRANEREC_MODEL_PATH``)."""
    import cranerec.models as package

    for info in pkgutil.iter_modules(package_path or package.__path__):
        if info.name not in NOT_MODELS and not info.name.startswith("_"):
            importlib.import_module(f"cranerec.models.{info.name}")
    for directory in filter(None, os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep)):
        for path in sorted(Path(directory).glob("*.py")):
            load_model_file(path)


def load_model_file(path: str | Path) -> None:
    """Import one model file from outside the package (its ``@register`` classes register)."""
    path = Path(path)
    name = f"cranerec_user_models.{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not an importable Python file ({MODEL_PATH_ENV})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
