"""cranerec: multimodal graph recommendation (CRANE and the baselines it is measured against).

The Python API (``docs/api.md``): ``cranerec.fit(data, model, **settings)`` trains and returns a
``TrainedModel`` (``recommend``, ``similar_items``, ``save``); ``cranerec.load(path)`` reads one
back. They are imported on first use, so ``import cranerec`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cranerec._version import __version__

if TYPE_CHECKING:
    from cranerec.api import TrainedModel, fit, load

_API = ("TrainedModel", "fit", "load")

__all__ = ["TrainedModel", "__version__", "fit", "load"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from cranerec import api

        return getattr(api, name)
    raise AttributeError(f"module 'cranerec' has no attribute {name!r}")
