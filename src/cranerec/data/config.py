"""The ``data`` section of a run's config: ``DataConfig`` says where a dataset lies, which of the
formats in ``FORMATS`` it is in, which modalities to read and how a raw log or the synthetic data
is shaped; its ``validate`` refuses impossible settings before anything is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from cranerec.config import ConfigError, Settings
from cranerec.data.split import resolve_split_seed

Format = Literal["auto", "mmrec", "matrices", "raw", "synthetic"]
FORMATS: tuple[str, ...] = get_args(Format)


@dataclass(frozen=True)
class DataConfig(Settings):
    """Where the data is and how to read it.

    ``path`` is a directory (or a raw CSV/Parquet file), or ``synthetic`` for the built-in
    generated dataset. ``modalities``: names to load (``None`` = every ``<name>_feat.npy`` found,
    ``[]`` = none). ``feature_files`` maps a modality name to a file name when it does not follow
    ``<name>_feat.npy``. ``features_dir`` reads the feature files from another folder than the
    interactions (e.g. features computed by ``cranerec features`` for a read-only dataset). The raw-format settings (k-core, split) are ignored for fixed splits.

    ``synthetic_users`` / ``synthetic_items`` / ``synthetic_interactions`` (mean per user) and
    ``synthetic_widths`` (``image`` / ``text`` feature widths) shape the synthetic data (cost
    measurements use Amazon-Baby's shape). ``subsample_users`` < 1 keeps that fraction of the
    users (drawn with ``subsample_seed``, all their interactions in every split) and the items
    they interacted with, for measurements against dataset size; applied after any format.
    """

    path: str = "synthetic"
    format: Format = "auto"
    modalities: list[str] | None = None
    feature_files: dict[str, str] = field(default_factory=dict)
    features_dir: str | None = None
    inter_file: str | None = None
    user_col: str = "user"
    item_col: str = "item"
    rating_col: str | None = None
    min_rating: float | None = None
    item_ids_file: str = "item_ids.txt"
    user_min: int = 4
    item_min: int = 0
    split_seed: str = "9"
    split_ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    synthetic_seed: int = 0
    synthetic_users: int = 1500
    synthetic_items: int = 800
    synthetic_interactions: float = 18.0
    synthetic_widths: dict[str, int] = field(default_factory=dict)
    subsample_users: float = 1.0
    subsample_seed: int = 0

    def validate(self) -> None:
        if not 0 < self.subsample_users <= 1:
            raise ConfigError(f"subsample_users must be in (0, 1], got {self.subsample_users}")
        if self.synthetic_users < 10 or self.synthetic_items < 20:
            raise ConfigError("synthetic_users must be >= 10 and synthetic_items >= 20")
        if not 5 <= self.synthetic_interactions <= self.synthetic_items // 2:
            raise ConfigError(
                "synthetic_interactions (mean per user) must be between 5 and synthetic_items / 2"
            )
        bad = sorted(set(self.synthetic_widths) - {"image", "text"})
        if bad or any(not isinstance(w, int) or w < 1 for w in self.synthetic_widths.values()):
            raise ConfigError(
                f"synthetic_widths maps image/text to positive widths, got {self.synthetic_widths}"
            )

        if (
            len(self.split_ratios) != 3
            or any(r < 0 for r in self.split_ratios)
            or sum(self.split_ratios) <= 0
        ):
            raise ConfigError(
                f"split_ratios must be three non-negative numbers, got {self.split_ratios}"
            )
        if self.user_min < 1 or self.item_min < 0:
            raise ConfigError("user_min must be >= 1 and item_min >= 0")
        try:
            resolve_split_seed(self.split_seed)
        except ValueError as e:
            raise ConfigError(str(e)) from None
