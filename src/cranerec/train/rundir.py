"""Reading a run directory's files back, checked: a truncated, empty, foreign or hand-edited
file is a one-line ``RunFileError`` that names the file and what to do, never a traceback from
``torch``, ``numpy`` or ``json`` and never a silently wrong number.

The writers are in ``train/run.py`` and ``train/trainer.py``; every reader of a run's files
(``evaluate``, resume, adopt, the report) goes through these.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: The files of a run directory (``RunDir`` names them; nothing else spells them out).
CONFIG_FILE = "config.yaml"  # the run's configuration (train/config.py's to_dict form)
METRICS_FILE = "metrics.jsonl"  # one record per trained epoch
CHECKPOINT_FILE = "checkpoint.pt"  # everything a resume needs (weights_only=True)
RESULTS_FILE = "results.json"  # written last: a run is finished when it exists
MODEL_FILE = "model.pt"  # the kept weights with the model's name and config
EMBEDDINGS_FILE = "embeddings.npz"  # user_emb, item_emb (scores are inner products), ids
SEEN_FILE = "seen.npz"  # each user's items in every split (what serving excludes)
PER_USER_FILES = {"test": "per_user.npz", "valid": "per_user_valid.npz"}
CURVE_FILE = "training_curve.png"
SUMMARY_FILE = "summary.json"  # the mean and spread of several seeds (--seeds)
LOCK_FILE = ".lock"  # held (flock) by the process training the run
ERROR_FILE = "error.txt"  # why an experiment's run failed


class RunFileError(ValueError):
    """A file of a run directory cannot be used; the message names it and what to do."""


class RunDir:
    """One run directory: where each of its files is, and its files read back checked."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    config = property(lambda self: self.path / CONFIG_FILE)
    metrics = property(lambda self: self.path / METRICS_FILE)
    checkpoint = property(lambda self: self.path / CHECKPOINT_FILE)
    results = property(lambda self: self.path / RESULTS_FILE)
    model = property(lambda self: self.path / MODEL_FILE)
    embeddings = property(lambda self: self.path / EMBEDDINGS_FILE)
    seen = property(lambda self: self.path / SEEN_FILE)
    curve = property(lambda self: self.path / CURVE_FILE)
    lock = property(lambda self: self.path / LOCK_FILE)
    error = property(lambda self: self.path / ERROR_FILE)

    def per_user(self, split: str) -> Path:
        """Per-user metrics of ``split`` (``test`` or ``valid``), for paired tests."""
        return self.path / PER_USER_FILES[split]

    @property
    def finished(self) -> bool:
        return self.results.exists()

    def read_results(self) -> dict[str, Any]:
        return read_results(self.results)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics)

    def load_checkpoint(self, map_location: Any = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.checkpoint, map_location)

    def read_embeddings(self, n_users: int | None = None, n_items: int | None = None):
        return read_embeddings(self.embeddings, n_users, n_items)


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold an object (``results.json``, ``summary.json``)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunFileError(f"{path}: unreadable {what} ({e}); {_delete_hint(path)}") from None
    if not isinstance(obj, dict):
        raise RunFileError(f"{path}: not a cranerec {what} (a JSON {type(obj).__name__})")
    return obj


def read_results(path: Path) -> dict[str, Any]:
    """``results.json``, checked: named fields have their types, metrics are finite numbers."""
    results = read_json_object(path, "results file")
    problems = []
    for key in ("model", "dataset", "data_fingerprint"):
        if key in results and not isinstance(results[key], str):
            problems.append(f"{key} is {results[key]!r}, not a string")
    if not isinstance(results.get("data_fingerprint"), str):
        problems.append("no data_fingerprint")
    for split in ("valid", "test"):
        metrics = results.get(split, {})
        if not isinstance(metrics, dict):
            problems.append(f"{split} is {metrics!r}, not a mapping of metrics")
            continue
        for name, value in metrics.items():
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value):
                problems.append(f"{split}.{name} is {value!r}, not a finite number")
    if problems:
        raise RunFileError(
            f"{path}: not a results file cranerec wrote ({'; '.join(problems[:3])}); "
            f"{_delete_hint(path)}"
        )
    return results


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """``metrics.jsonl``: one object per epoch with an integer ``epoch``. A last line cut by a
    kill is dropped (the checkpoint does not cover it); any other bad line is an error."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: unreadable ({e})") from None
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                continue  # the line a kill cut short
            rec = None
        epoch = rec.get("epoch") if isinstance(rec, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise RunFileError(
                f"{path}: line {i + 1} is not an epoch record cranerec wrote ({line[:60]!r}); "
                "restore the file or delete the run directory to train it again"
            )
        records.append(rec)
    return records


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``checkpoint.pt`` as ``Trainer`` saved it (read with ``weights_only=True``: no code runs)."""
    hint = f"delete {path} to restart the run from epoch 0"
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises EOFError, UnpicklingError, RuntimeError, ... by file
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise RunFileError(f"{path}: not a readable checkpoint ({reason}); {hint}") from None
    needed = ("model", "optimizer", "best_weights", "state", "rng", "data_fingerprint")
    missing = [k for k in needed if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise RunFileError(
            f"{path}: not a cranerec training checkpoint (missing {', '.join(missing)}); {hint}"
        )
    return ckpt


def read_embeddings(path: Path, n_users: int | None = None, n_items: int | None = None):
    """``embeddings.npz`` -> (user_emb, item_emb) float tensors, checked for shape and values."""
    hint = "train the run again (or restore the file)"
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RunFileError(f"{path.parent} has no {path.name}: the run has not finished") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise RunFileError(f"{path}: unreadable (truncated or not an .npz): {e}; {hint}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise RunFileError(f"{path}: a single array, not the .npz of a run; {hint}")
    with z:
        missing = [k for k in ("user_emb", "item_emb") if k not in z.files]
        if missing:
            raise RunFileError(f"{path}: missing {', '.join(missing)}; {hint}")
        try:
            user, item = z["user_emb"], z["item_emb"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise RunFileError(f"{path}: unreadable (truncated or damaged): {e}; {hint}") from None
    problem = None
    if user.ndim != 2 or item.ndim != 2 or user.shape[1] != item.shape[1]:
        problem = f"shapes {user.shape} and {item.shape} are not two tables of one width"
    elif not (np.issubdtype(user.dtype, np.floating) and np.issubdtype(item.dtype, np.floating)):
        problem = f"dtypes {user.dtype} and {item.dtype} are not floating point"
    elif n_users is not None and (user.shape[0], item.shape[0]) != (n_users, n_items):
        problem = (
            f"{user.shape[0]} users x {item.shape[0]} items; the data has {n_users} x {n_items}"
        )
    elif not (np.isfinite(user).all() and np.isfinite(item).all()):
        problem = "NaN or infinite values"
    else:
        # scores are dot products: finite tables can still overflow float32 when multiplied
        bound = float(np.abs(user).max(initial=0)) * float(np.abs(item).max(initial=0))
        if bound * user.shape[1] > np.finfo(np.float32).max:
            problem = "values so large that scores overflow"
    if problem:
        raise RunFileError(f"{path}: {problem}; {hint}")
    return torch.from_numpy(user.astype(np.float32)), torch.from_numpy(item.astype(np.float32))


def clean_temp_files(run_dir: Path) -> list[Path]:
    """Remove the ``.NAME.*.tmp`` files an atomic write killed mid-way leaves behind (only ever
    called by the process holding the run's lock)."""
    removed = []
    for p in Path(run_dir).glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _delete_hint(path: Path) -> str:
    return f"restore it, or delete {Path(path).parent} to train the run again"
