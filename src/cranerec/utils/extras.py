"""Optional dependencies: the core installs torch, numpy, scipy, pandas, pyyaml and tqdm; each
part that needs more names its extra (``pip install 'cranerec[EXTRA]'``) when it is used
without it, in one line, instead of an ImportError from deep inside."""

from __future__ import annotations

import importlib
from types import ModuleType

#: extra -> what it installs (pyproject.toml's optional-dependencies say the same).
EXTRAS = {
    "experiments": "optuna, matplotlib, scikit-learn: suites, searches, reports and plots",
    "serve": "fastapi, uvicorn, faiss: the HTTP service and vector search",
    "text": "sentence-transformers, transformers, pillow: features from item text and images",
    "postgres": "psycopg: a search study shared through PostgreSQL",
    "parquet": "pyarrow: Parquet tables",
}


class MissingExtraError(RuntimeError):
    """A part of cranerec was used without the optional dependency it needs."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or a ``MissingExtraError`` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{purpose} needs {module.split('.')[0]} ({e.name or module} is not installed): "
            f"pip install 'cranerec[{extra}]'"
        ) from None
