"""``cranerec data describe|convert|build``: inspect, convert and build dataset folders."""

from __future__ import annotations

import argparse
import json

from cranerec.cli.output import SYNTHETIC_BANNER, _out
from cranerec.utils.progress import Mode, progress_mode


def _load_for_data_command(path: str, fmt: str, overrides: list[str]):
    """Load a dataset for ``data describe/convert``; ``--set`` takes data settings (raw column
    names, k-core, split seed) without the ``data.`` prefix."""
    from cranerec.config import from_dict, parse_overrides
    from cranerec.data.loaders import DataConfig, load_dataset

    settings = {"path": path, "format": fmt, **parse_overrides(overrides)}
    return load_dataset(from_dict(DataConfig, settings, "data"))


def _add_data_set(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _cmd_describe(args: argparse.Namespace) -> int:
    summary = _load_for_data_command(args.path, args.format, args.set).summary()
    if args.json:
        _out(json.dumps(summary, indent=2))
        return 0
    if summary["synthetic"]:
        _out(SYNTHETIC_BANNER)
    _out(f"dataset      {summary['name']}  (fingerprint {summary['fingerprint']})")
    _out(f"users        {summary['users']:,}")
    _out(f"items        {summary['items']:,}")
    _out(f"interactions {summary['interactions']:,}")
    _out(f"sparsity     {100 * summary['sparsity']:.4f}%")
    _out(f"mean interactions per user {summary['mean_interactions_per_user']:.2f}")
    _out(
        f"{'split':<6} {'interactions':>12} {'users':>8} {'items':>8} {'cold users':>10} {'cold items':>10}"
    )
    for name, s in summary["splits"].items():
        _out(
            f"{name:<6} {s['interactions']:>12,} {s['users']:>8,} {s['items']:>8,} "
            f"{s['cold_users']:>10,} {s['cold_items']:>10,}"
        )
    mods = ", ".join(f"{k} ({v}-d)" for k, v in summary["modalities"].items()) or "none"
    _out(f"modalities   {mods}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from cranerec.data.loaders import mmrec_feature_settings, save_matrices, save_mmrec

    if args.name is not None and args.to != "mmrec":
        raise ValueError("--name names the .inter file of --to mmrec; a matrices folder has none")
    dataset = _load_for_data_command(args.src, args.format, args.set)
    if dataset.synthetic:
        _out(SYNTHETIC_BANNER)
    if args.to == "mmrec":
        target = save_mmrec(dataset, args.dst, args.name)
    else:
        target = save_matrices(dataset, args.dst)
    _out(
        f"wrote {dataset.name} ({dataset.n_users} users, {dataset.n_items} items) as {args.to}: {target}"
    )
    if args.to == "mmrec" and dataset.modalities:
        _out(
            "MMRec reads only the feature files its dataset config names (a missing one is "
            "skipped without a word); put these lines in it:"
        )
        for line in mmrec_feature_settings(dataset):
            _out(f"  {line}")
    return 0


def set_threads(threads: int | None) -> None:
    """``--threads N``: the torch threads a feature build may use (default: torch's own)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def show_progress(args: argparse.Namespace) -> Mode:
    """A progress bar on a terminal, a line now and then in a log file, nothing with --quiet."""
    return progress_mode(not args.quiet)


def add_common(p: argparse.ArgumentParser) -> None:
    """The options ``features`` and ``data build`` share."""
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument(
        "--threads", type=int,
        help="torch threads (default: every core); lower it on a busy machine",
    )  # fmt: skip
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (a bar on a terminal, lines in a log file)",
    )


def _cmd_build(args: argparse.Namespace) -> int:
    from cranerec.data.build import LogConfig
    from cranerec.features import ContentConfig, build_folder

    set_threads(args.threads)

    if args.ratios is not None and args.split not in ("random", "temporal"):
        raise ValueError(f"--ratios: --split {args.split} takes no ratios; leave --ratios out")
    if args.split_seed is not None and args.split != "random":
        raise ValueError(f"--split-seed: --split {args.split} is not random; leave it out")
    cols = tuple(c.strip() for c in (args.text_cols or "").split(",") if c.strip())
    log_config = LogConfig(
        user_col=args.user_col, item_col=args.item_col, time_col=args.time_col,
        rating_col=args.rating_col, min_rating=args.min_rating, split=args.split,
        split_seed="9" if args.split_seed is None else args.split_seed,
        split_ratios=tuple(args.ratios or (0.8, 0.1, 0.1)),
        user_min=args.user_min,
        item_min=args.item_min,
    )  # fmt: skip
    content = ContentConfig(
        items=args.items, id_col=args.id_col or args.item_col, text_cols=cols,
        image_col=args.image_col, image_root=args.image_root, text_model=args.text_model,
        image_model=args.image_model, on_missing=args.on_missing, batch_size=args.batch_size,
        device=args.device,
    )  # fmt: skip
    result = build_folder(
        args.interactions,
        args.out,
        log_config,
        content,
        name=args.name,
        progress=show_progress(args),
    )
    for line in result.lines:
        _out(line)
    return 0


def add_parsers(sub) -> None:
    """``data`` and its subcommands."""
    d = sub.add_parser("data", help="inspect and convert datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    desc = dsub.add_parser("describe", help="users, items, splits, sparsity, modalities")
    desc.add_argument("path")
    desc.add_argument("--format", default="auto")
    desc.add_argument("--json", action="store_true")
    _add_data_set(desc, "data settings, e.g. user_col=uid item_col=asin user_min=5")
    desc.set_defaults(func=_cmd_describe)
    conv = dsub.add_parser("convert", help="convert between pickled-matrix and MMRec formats")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--to", required=True, choices=["mmrec", "matrices"])
    conv.add_argument("--format", default="auto", help="format of SRC (default: detect)")
    conv.add_argument("--name", help="name of the .inter file (default: the dataset's name)")
    _add_data_set(conv, "data settings for SRC, e.g. user_col=uid split_seed=paper2")
    conv.set_defaults(func=_cmd_convert)
    _add_build_parser(dsub)


def _add_build_parser(dsub) -> None:
    b = dsub.add_parser(
        "build",
        help="interaction log (+ item table) -> an MMRec folder with features, ready to train",
        description="Reads the log, binarises and deduplicates it, applies a k-core only when "
        "asked, splits per user, embeds the items' text / images, and writes an MMRec folder "
        "(with user_ids.txt / item_ids.txt: raw ids, and build.json: what each step dropped).",
    )
    b.add_argument("interactions", help="the interaction log: .csv, .tsv or .parquet")
    b.add_argument("--out", required=True, help="a new (or empty) folder")
    b.add_argument("--name", help="name of the .inter file (default: the folder's name)")
    b.add_argument("--user-col", default="user")
    b.add_argument("--item-col", default="item")
    b.add_argument("--time-col", help="timestamp column (numbers or dates); temporal/last splits")
    b.add_argument("--rating-col")
    b.add_argument("--min-rating", type=float, help="keep rows rated at least this")
    b.add_argument(
        "--split", default="random", choices=["random", "temporal", "last", "full"],
        help="random per user (default; --split-seed), temporal per user (MMRec's 8:1:1 in "
        "time order), last (leave-last-out), full (everything in training, to serve)",
    )  # fmt: skip
    b.add_argument("--split-seed", help="integer or paper1..paper5 (random split; default 9)")
    b.add_argument(
        "--ratios", type=float, nargs=3, metavar="R",
        help="train, valid, test proportions, rescaled to sum to 1 as MMRec's split_ratio "
        "(8 1 1 = 0.8 0.1 0.1)",
    )  # fmt: skip
    b.add_argument("--user-min", type=int, default=1, help="k-core: min interactions per user")
    b.add_argument("--item-min", type=int, default=0, help="k-core: min interactions per item")
    b.add_argument("--items", help="item table (.csv/.tsv/.parquet) for --text-cols/--image-col")
    b.add_argument("--id-col", help="item id column of the item table (default: --item-col)")
    b.add_argument("--text-cols", help="comma-separated text columns to embed")
    b.add_argument(
        "--text-model", help="local sentence-transformers model (default all-MiniLM-L6-v2)"
    )
    b.add_argument("--image-col", help="image path column to embed")
    b.add_argument("--image-root", help="folder image paths are relative to (default: the table's)")
    b.add_argument("--image-model", help="local transformers vision model directory")
    b.add_argument(
        "--on-missing", default="error", choices=["error", "zero"],
        help="an item without content (or without a row in the item table): stop with its id "
        "(default) or give it a row of zeros",
    )  # fmt: skip
    add_common(b)
    b.set_defaults(func=_cmd_build)
