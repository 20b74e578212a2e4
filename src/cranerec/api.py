"""The Python API: ``cranerec.fit`` trains a model, ``cranerec.load`` reads a trained run back,
and both give a ``TrainedModel`` that recommends (``recommend``, ``similar_items``) and saves.

A thin layer over the command line's own parts, in the style of implicit and Cornac:

- ``fit`` resolves its settings with ``train.run.build_config`` (the ``--set`` path of ``cranerec
  train``) and trains with ``train.run.train_run``: the same run directory, the same files and
  the same results as ``cranerec train --out DIR`` for the same configuration, resumable.
- ``TrainedModel.recommend`` and ``similar_items`` ask the serving ``cranerec.serve.Recommender``
  loaded from that run directory, so seen-item exclusion, raw ids and errors are the service's.

Settings are keyword arguments ``section__key=value``: ``train__epochs=5`` is ``--set
train.epochs=5``, ``model__reg_weight=1e-3`` is ``--set model.reg_weight=1e-3`` (deeper keys
the same way: ``data__synthetic_widths__image=8``). The mapping to implicit's and Cornac's names
is in ``docs/api.md``.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cranerec.config import ConfigError, describe_fields
from cranerec.data.dataset import Dataset
from cranerec.data.loaders import DataConfig, load_dataset
from cranerec.eval.evaluator import EvalConfig
from cranerec.models import MODELS, get_model_class
from cranerec.serve.recommender import RankedItems, RawId, Recommender, ServeError
from cranerec.train.config import TrainConfig
from cranerec.train.run import build_config, train_run
from cranerec.train.rundir import LOCK_FILE, RESULTS_FILE, read_results

__all__ = ["TrainedModel", "fit", "load"]

log = logging.getLogger(__name__)

#: The config sections a ``section__key`` setting may name.
_SECTIONS = ("model", "data", "train", "eval")
#: Scores of the empty slots that pad a batch's shorter rows (their item id is "").
PAD_SCORE = -np.inf
#: What ``yaml.safe_dump`` ends a lone scalar with.
_YAML_END = "...\n"

Ids = tuple[np.ndarray, np.ndarray]


def fit(
    data: str | os.PathLike[str] | Dataset,
    model: str = "lightgcn",
    *,
    preset: str | None = None,
    seed: int = 999,
    out: str | os.PathLike[str] | None = None,
    **settings: Any,
) -> TrainedModel:
    """Train ``model`` on ``data`` and return the trained model with its metrics.

    ``data``: a path ``cranerec train --data`` takes (a dataset folder or a raw log, format
    detected), ``"synthetic"`` for the built-in generated data, or a ``cranerec.data.Dataset``
    already loaded. ``model``: a registered model name (``cranerec models`` lists them);
    ``preset``: one of its presets; ``seed``: the training seed.

    ``settings``: keyword arguments ``section__key=value``, one per ``--set section.key=value``
    of ``cranerec train``, e.g. ``train__epochs=5, model__reg_weight=1e-3``; sections are
    ``model``, ``data``, ``train`` and ``eval``. They resolve as the command line's do:
    defaults < preset < settings. An unknown key or a bad value raises ``ConfigError`` naming
    it and the valid keys. With a ``Dataset`` object, ``data__*`` settings are refused (the data
    is already loaded, they would change nothing).

    ``out``: the run directory, written as ``cranerec train --out`` writes it (``config.yaml``,
    ``metrics.jsonl``, checkpoints, ``embeddings.npz``, ``seen.npz``, ``results.json``, ...).
    Calling ``fit`` again with the same arguments resumes an interrupted run and reports a
    finished one without retraining; a directory holding another configuration is refused.
    With ``out=None`` the run goes to a temporary directory that the returned ``TrainedModel``
    owns and deletes when it is garbage-collected: ``save(path)`` copies the run to keep it.

    A ``Dataset`` object is recorded in ``config.yaml`` as an in-memory dataset (no path), so
    ``cranerec evaluate`` cannot reload it; ``cranerec.load(run, dataset=...)`` takes it back
    for the cold-start features of the serving ``Recommender``. Results are checked against
    its fingerprint either way.
    """
    dataset: Dataset | None = None
    if isinstance(data, Dataset):
        dataset, data_path = data, f"<in-memory dataset {data.name!r}>"
    elif isinstance(data, str | os.PathLike):
        data_path = os.fspath(data)
    else:
        raise ConfigError(
            f"data must be a path, 'synthetic' or a cranerec.data.Dataset, got {type(data).__name__}"
        )
    overrides = _overrides(settings, model, in_memory=dataset is not None)
    config = build_config(
        model=_model_name(model), preset=preset, overrides=overrides, data=data_path, seed=seed
    )
    owned = None
    if out is None:
        owned = tempfile.mkdtemp(prefix=f"cranerec-{config.model_name}-")
        run_dir = Path(owned)
    else:
        run_dir = Path(out)
    try:
        if dataset is None:
            loaded = load_dataset(config.data)
            if loaded.synthetic:
                log.info("training on the built-in SYNTHETIC data, not real data")
        else:
            loaded = dataset
        results = train_run(config, run_dir, loaded)
    except BaseException:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
        raise
    return TrainedModel(run_dir, results, dataset=dataset, _owned_dir=owned)


def load(path: str | os.PathLike[str], *, dataset: Dataset | None = None) -> TrainedModel:
    """A finished run directory (from ``fit``, ``TrainedModel.save`` or ``cranerec train``)
    as a ``TrainedModel``. Every file serving needs is read and checked now (no unpickling):
    a missing, truncated or foreign file is a ``cranerec.serve.ServeError`` naming it.
    ``dataset``: the training data, for a run trained on a ``Dataset`` object (the serving
    ``Recommender`` needs it for cold-start items only)."""
    run_dir = Path(path)
    recommender = Recommender.load(run_dir, dataset=dataset)
    results_path = run_dir / RESULTS_FILE
    if not results_path.exists():
        raise ServeError(f"{run_dir} has no {RESULTS_FILE}: the run has not finished")
    trained = TrainedModel(run_dir, read_results(results_path), dataset=dataset)
    trained._recommender = recommender
    return trained


class TrainedModel:
    """A trained run: its metrics (``results``), its directory (``run_dir``), and queries
    answered by the serving ``cranerec.serve.Recommender`` of that directory.

    Made by ``cranerec.fit`` and ``cranerec.load``, not constructed directly. Ids are raw ids
    (the dataset's own), returned as strings: the serving layer compares ids as strings, so
    user ``7`` and ``"7"`` are the same user.
    """

    def __init__(
        self,
        run_dir: Path,
        results: dict[str, Any],
        *,
        dataset: Dataset | None = None,
        _owned_dir: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        #: ``results.json``: ``valid`` / ``test`` metrics, ``best_epoch``, ``model``, ...
        self.results = results
        self._dataset = dataset
        self._recommender: Recommender | None = None
        self._owned = _owned_dir is not None
        if _owned_dir is not None:  # the temporary run directory of fit(out=None)
            self._cleanup = weakref.finalize(self, shutil.rmtree, _owned_dir, ignore_errors=True)

    def __repr__(self) -> str:
        synthetic = ", SYNTHETIC data" if self.results.get("synthetic_data") else ""
        test = self.results.get("test") or {}
        metric = next((f", test {m} {test[m]:.4f}" for m in ("recall@20",) if m in test), "")
        return (
            f"TrainedModel({self.results.get('model')!r} on {self.results.get('dataset')!r}"
            f"{synthetic}{metric}, run_dir={str(self.run_dir)!r})"
        )

    @property
    def recommender(self) -> Recommender:
        """The serving ``cranerec.serve.Recommender`` of the run (loaded on first use): for
        ``recommend_for_items`` (new users), ``add_items`` (cold-start items) and ``info``."""
        if self._recommender is None:
            self._recommender = Recommender.load(self.run_dir, dataset=self._dataset)
        return self._recommender

    def recommend(
        self,
        user_ids: RawId | Iterable[RawId],
        k: int = 10,
        user_items: Iterable[RawId] | Sequence[Iterable[RawId]] | None = None,
        filter_already_liked_items: bool = True,
        *,
        items: Iterable[RawId] | None = None,
    ) -> Ids:
        """The top-``k`` items for each user, best first, as ``(item_ids, scores)``.

        One user id gives two 1-D arrays (at most ``k`` raw item ids as strings, and their
        float32 scores); a list of user ids gives two 2-D arrays ``[n_users, min(k, n_items)]``,
        row i for user i. A row with fewer items left (a user who has nearly every item) is
        padded at its end with item id ``""`` and score ``-inf``.

        ``filter_already_liked_items``: leave out every item the run saw for the user (train,
        valid and test splits; the service's ``exclude_seen``). ``user_items``: raw item ids to
        leave out as well, e.g. what a user did since training: a list for one user id, one
        list per user for a list. ``items``: rank only these raw item ids. Unknown ids raise
        ``cranerec.serve.UnknownIdError`` naming them (a ``ValueError``)."""
        ranked = self.recommender.recommend(
            user_ids, k, exclude_seen=filter_already_liked_items, items=items,
            user_items=user_items,
        )  # fmt: skip
        return self._arrays(ranked, k)

    def similar_items(self, item_ids: RawId | Iterable[RawId], k: int = 10) -> Ids:
        """The ``k`` items most similar to each item (cosine of the model's item vectors, the
        item itself left out), as ``(item_ids, scores)`` shaped as ``recommend``'s."""
        return self._arrays(self.recommender.similar_items(item_ids, k), k)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Copy the run directory to ``path`` (created; an existing empty directory is used)
        and return it; ``cranerec.load(path)`` reads it back. Refuses a ``path`` that exists
        and is not an empty directory, rather than overwrite it."""
        dest = Path(path)
        if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
            raise FileExistsError(f"{dest} exists and is not an empty directory; choose another")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        try:  # copied beside dest, then renamed: an interrupted save leaves no half-run at dest
            shutil.copytree(self.run_dir, tmp, dirs_exist_ok=True, ignore=_not_copied)
            tmp.replace(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def _arrays(self, ranked: RankedItems | list[RankedItems], k: int) -> Ids:
        if isinstance(ranked, RankedItems):
            return ranked.item_ids, ranked.scores
        width = min(k, self.recommender.n_items)
        ids = np.full((len(ranked), width), "", dtype=self.recommender.item_ids.dtype)
        scores = np.full((len(ranked), width), PAD_SCORE, dtype=np.float32)
        for row, r in enumerate(ranked):
            ids[row, : len(r)] = r.item_ids
            scores[row, : len(r)] = r.scores
        return ids, scores


def _not_copied(folder: str, names: list[str]) -> list[str]:
    """The run's lock file and writes cut short by a kill stay behind when saving."""
    return [n for n in names if n == LOCK_FILE or (n.startswith(".") and n.endswith(".tmp"))]


def _model_name(model: object) -> str:
    if not isinstance(model, str):
        raise ConfigError(
            f"model must be a registered model name ({', '.join(sorted(MODELS))}), got {model!r}"
        )
    return model


def _overrides(settings: dict[str, Any], model: object, in_memory: bool) -> list[str]:
    """``section__key=value`` keyword arguments as ``--set section.key=value`` strings."""
    out = []
    for name, value in settings.items():
        parts = name.split("__")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(_no_section(name, model))
        key = ".".join(parts)
        if key in ("model.name", "data.path"):
            given = (
                "model as fit's model argument"
                if key == "model.name"
                else "data as fit's first argument"
            )
            raise ConfigError(f"{name}: give the {given}")
        if in_memory and parts[0] == "data":
            raise ConfigError(
                f"{name}: the data is a Dataset object already loaded, which data settings "
                "cannot change; load it with those settings (cranerec.data.load_dataset), or "
                "pass its path to fit"
            )
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, np.generic):
            value = value.item()
        try:  # YAML, as --set parses its values: the value comes back as given
            text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"))
        except yaml.YAMLError:
            raise ConfigError(
                f"{name}: {value!r} is not a plain value (a number, string, bool, list or "
                "mapping of them)"
            ) from None
        out.append(f"{key}={text.removesuffix(_YAML_END).strip()}")
    return out


def _no_section(name: str, model: object) -> str:
    """The message for a setting without its section, with the settings it may have meant."""
    fields = {
        "data": DataConfig,
        "train": TrainConfig,
        "eval": EvalConfig,
    }
    if isinstance(model, str) and model in MODELS:
        fields["model"] = get_model_class(model).Config
    known = [f"{s}__{f}" for s, cls in fields.items() for f, _, _ in describe_fields(cls)]
    bare = name.strip("_")
    exact = [k for k in known if k.endswith(f"__{bare}")]
    close = exact or difflib.get_close_matches(name, known, n=2, cutoff=0.8)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (
        f"setting {name!r} names no section: settings are keyword arguments section__key=value "
        f"(sections {', '.join(_SECTIONS)}), e.g. train__epochs=5{hint}"
    )
