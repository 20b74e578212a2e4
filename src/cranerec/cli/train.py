"""``cranerec train`` and ``cranerec evaluate``: train a run (or seeds, or resume one), score it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cranerec.cli.output import SYNTHETIC_BANNER, _format_metrics, _out, _print_results
from cranerec.data.loaders import FORMATS


def _cmd_train(args: argparse.Namespace) -> int:
    if args.epochs is not None:
        args.set.append(f"train.epochs={args.epochs}")
    if not args.distributed:
        return _train(args, None)
    from cranerec.train import distributed

    if args.seeds:
        raise ValueError("--distributed trains one run: give --seed (one torchrun per seed)")
    device = args.device or "cpu"
    ranks, args.device = distributed.init_from_env(device)
    try:
        return _train(args, ranks)
    finally:
        distributed.close()


def _train(args: argparse.Namespace, ranks) -> int:
    """``cranerec train``; ``ranks``: this process is one rank of a ``--distributed`` run (rank 0
    prints the results)."""
    show = _print_results if ranks is None or ranks.main else (lambda *a: None)
    from cranerec.config import parse_overrides
    from cranerec.models.registry import get_model_class
    from cranerec.train.config import runtime_keys, with_settings
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
        changes = parse_overrides(args.set)
        stored = read_run_config(args.resume)
        free = sorted(f"{section}.{key}" for section, key in runtime_keys(stored.model_name))
        others = sorted(
            f"{section}.{key}" for section, values in changes.items()
            for key in (values if isinstance(values, dict) else {"": None})
            if f"{section}.{key}" not in EXTENDABLE and f"{section}.{key}" not in free
        )  # fmt: skip
        if given or others:
            raise ValueError(
                f"--resume RUN_DIR continues the run as it was configured; drop "
                f"{', '.join(given + [f'--set {k}' for k in others])} (only --device, --threads, "
                f"--set {' / '.join(EXTENDABLE)} and the settings that change speed only, "
                f"{' / '.join(free)}, may change)"
            )
        train = changes.setdefault("train", {})
        longer = {k: train.pop(k) for k in list(train) if f"train.{k}" in EXTENDABLE}
        extend = bool(longer)
        config = extend_run(args.resume, **longer) if extend else stored
        if args.device:
            train["device"] = args.device
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            train["threads"] = args.threads
        config = with_settings(config, changes)
        dataset = _load_and_describe(config, ranks)
        show(train_run(config, args.resume, dataset, extend=extend, ranks=ranks), args.resume)
        return 0
    config = build_config(
        model=args.model, preset=args.preset, config_file=args.config, overrides=args.set,
        data=args.data, data_format=args.format, seed=args.seed, device=args.device,
        threads=args.threads,
    )  # fmt: skip
    if args.out is not None and not args.out.strip():
        raise ValueError("--out is empty; give the run directory (or leave --out out)")
    out = args.out or f"runs/{config.model_name}-{Path(config.data.path).name}"
    dataset = _load_and_describe(config, ranks)
    note = get_model_class(config.model_name).defaults_note
    if note and not (args.preset or args.config or dataset.synthetic):
        sys.stderr.write(f"note: {note}\n")
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
    show(train_run(config, out, dataset, ranks=ranks), out)
    return 0


def _load_and_describe(config, ranks):
    """Load the run's data and say what it is (rank 0 only): the synthetic banner and the
    ``data:`` line, on a new run and on ``--resume`` alike."""
    from cranerec.data.loaders import load_dataset
    from cranerec.models.registry import get_model_class

    dataset = load_dataset(config.data)
    if ranks is None or ranks.main:
        if dataset.synthetic:
            _out(SYNTHETIC_BANNER)
        uses = get_model_class(config.model_name).min_modalities > 0
        _out(_data_line(dataset, config.model_name, uses))
    return dataset


def _data_line(dataset, model: str, uses_features: bool) -> str:
    """What a run trains on, the modalities included: a feature file found beside the data is
    used without being asked for, so the user sees which."""
    feats = ", ".join(f"{m} [{f.shape[0]:,} x {f.shape[1]}]" for m, f in dataset.features.items())
    use = "" if not feats else " (used by" if uses_features else " (not used by"
    return (
        f"data: {dataset.name}, {dataset.n_users:,} users, {dataset.n_items:,} items, "
        f"{dataset.train.nnz:,} training interactions; item features: {feats or 'none'}"
        f"{use and f'{use} {model})'}"
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from cranerec.train.run import evaluate_run

    metrics, synthetic = evaluate_run(args.run_dir, args.split, with_flag=True)
    if synthetic:
        _out(SYNTHETIC_BANNER)
    _out(f"{args.split}: {_format_metrics(metrics)}")
    return 0


def add_parsers(sub) -> None:
    """``train`` and ``evaluate``."""
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
    t.add_argument(
        "--epochs", type=int, help="the most epochs to train: --set train.epochs=N; with --resume, "
        "a larger cap continues a run that reached its own",
    )  # fmt: skip
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    t.add_argument(
        "--distributed", action="store_true",
        help="one rank of a multi-process run: launch with `torchrun --nproc-per-node N -m "
        "cranerec.cli train --distributed ...` (gloo on CPUs, NCCL on GPUs; each rank a slice of "
        "every batch, CRANE's RCA rows sharded; rank 0 writes the run directory)",
    )  # fmt: skip
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a finished run directory")
    e.add_argument("run_dir")
    e.add_argument("--split", default="test", choices=["valid", "test"])
    e.set_defaults(func=_cmd_evaluate)
