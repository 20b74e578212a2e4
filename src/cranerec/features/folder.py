"""A practitioner's whole path in one call (``cranerec data build``): an interaction log and an
item table in, an MMRec folder out (``<name>.inter``, ``user_ids.txt``, ``item_ids.txt``, the
feature files with their provenance, ``build.json``) that ``cranerec train`` loads.

The folder is built beside ``out`` under a temporary name, loaded back as a check, and renamed
into place: a failure at any step leaves nothing half-written, and an ``out`` that already holds
files is refused, never overwritten.
"""

from __future__ import annotations

import os
import secrets
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from cranerec.data.build import LogConfig, read_log, split_log
from cranerec.data.errors import DataError
from cranerec.features.pipeline import (
    FeatureReport,
    build_image_features,
    build_text_features,
    check_settings,
)
from cranerec.features.text import check_model_dir, check_text_model_dir
from cranerec.utils.io import atomic_write, write_json_atomic, write_text_atomic
from cranerec.utils.progress import Mode


@dataclass(frozen=True)
class ContentConfig:
    """Which item content becomes features (none: an interactions-only folder)."""

    items: str | None = None
    id_col: str = "item"
    text_cols: tuple[str, ...] = ()
    image_col: str | None = None
    image_root: str | None = None
    text_model: str | None = None
    image_model: str | None = None
    on_missing: str = "error"
    batch_size: int = 32
    device: str = "cpu"

    def __post_init__(self) -> None:
        wants = bool(self.text_cols) or self.image_col is not None
        if wants and not self.items:
            raise DataError("--text-cols / --image-col read the item table: give --items")
        if self.items and not wants:
            raise DataError("--items given without --text-cols or --image-col: nothing to embed")
        if self.image_col is not None and not self.image_model:
            raise DataError("--image-col needs --image-model (a local vision model directory)")
        if wants:  # refused before the log is read, not after the split
            check_settings(self.on_missing, self.batch_size, self.device)
            if self.text_model is not None:
                check_text_model_dir(Path(self.text_model), "--text-model")
            if self.image_model is not None:
                check_model_dir(Path(self.image_model), "config.json", "transformers vision",
                                "--image-model")  # fmt: skip


@dataclass(frozen=True)
class BuildResult:
    inter: Path
    lines: list[str]


def build_folder(
    log_path: str | Path, out: str | Path, log_config: LogConfig,
    content: ContentConfig | None = None, name: str | None = None, progress: bool | Mode = True,
) -> BuildResult:  # fmt: skip
    """Build the MMRec folder ``out`` from ``log_path`` (and the item table of ``content``)."""
    content = content or ContentConfig()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file; give a new folder's path")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"--out {out}: already exists and is not empty; choose a new folder")
    name = name or out.name
    if not name or "/" in name:
        raise DataError(f"--name {name!r}: give a plain file name for the .inter file")
    df = read_log(log_path, log_config)
    data, rows, report = split_log(df, log_config, str(log_path))
    out.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not mkdtemp (0700): the folder gets the permissions the umask gives any new folder
    tmp = out.parent / f".{out.name}.building-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        atomic_write(tmp / f"{name}.inter", lambda f: rows.to_csv(f, sep="\t", index=False))
        write_text_atomic(tmp / "user_ids.txt", "".join(f"{u}\n" for u in data.user_ids.tolist()))
        write_text_atomic(tmp / "item_ids.txt", "".join(f"{i}\n" for i in data.item_ids.tolist()))
        features: list[FeatureReport] = []
        common = dict(
            item_ids=data.item_ids, batch_size=content.batch_size, device=content.device,
            on_missing=content.on_missing, progress=progress,
        )  # fmt: skip
        if content.text_cols:
            features.append(build_text_features(
                content.items, content.id_col, list(content.text_cols), tmp,
                model=content.text_model, model_flag="--text-model", **common,
            ))  # fmt: skip
        if content.image_col is not None:
            features.append(build_image_features(
                content.items, content.id_col, content.image_col, tmp,
                model=content.image_model, image_root=content.image_root,
                model_flag="--image-model", **common,
            ))  # fmt: skip
        write_json_atomic(tmp / "build.json", {
            "log": str(log_path), "settings": asdict(log_config), "content": asdict(content),
            "report": report.to_dict(), "features": [f.path.name for f in features],
        })  # fmt: skip
        from cranerec.data.loaders import DataConfig, load_mmrec

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the check only; `cranerec train` warns again
            load_mmrec(DataConfig(path=str(tmp)))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lines = report.lines()
    for f in features:
        lines += [line.replace(str(tmp), str(out)) for line in f.lines()]
    lines.append(f"wrote {out / (name + '.inter')} (train it: cranerec train --data {out})")
    return BuildResult(inter=out / f"{name}.inter", lines=lines)
