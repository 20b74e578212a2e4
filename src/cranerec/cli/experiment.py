"""``cranerec experiment`` and ``cranerec report``: run a spec into a result store, report it."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from cranerec.cli.output import _out, counting_number


def _selection(args: argparse.Namespace):
    """``--models/--settings/--seeds/--datasets`` as a ``Selection`` (None when none is given)."""
    from cranerec.experiments.spec import Selection

    picked = {k: getattr(args, k) for k in ("models", "settings", "seeds", "datasets")}
    if all(v is None for v in picked.values()):
        return None
    return Selection(**{k: None if v is None else tuple(v) for k, v in picked.items()})


def _cmd_experiment(args: argparse.Namespace) -> int:
    from cranerec.experiments.runner import run_experiment, status_text
    from cranerec.experiments.spec import load_spec
    from cranerec.experiments.store import INDEX, Store

    spec = load_spec(args.spec, smoke=args.smoke)
    selection = _selection(args)
    root = Path(args.store or ("runs/experiments-smoke" if args.smoke else "runs/experiments"))
    if args.status and not args.adopt and not (root / INDEX).exists():  # create nothing
        with tempfile.TemporaryDirectory() as empty:
            _out(f"no store at {root} yet: every run is pending")
            _out(status_text(spec, Store(empty), args.storage, selection=selection))
        return 0
    store = Store(root)
    if args.adopt:
        from cranerec.experiments.runner import adopt

        for line in adopt(spec, store, args.adopt):
            _out(line)
    if args.status:
        _out(status_text(spec, store, args.storage, selection=selection))
        return 0
    counts = run_experiment(
        spec, store, workers=args.workers, retry_failed=args.retry_failed, storage=args.storage,
        device=args.device, threads=args.threads, selection=selection,
    )  # fmt: skip
    if spec.models:
        which = " (selected)" if selection else ""
        _out(f"{spec.name}: runs{which} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if spec.search is not None and selection is None:
        from cranerec.experiments.search import trial_counts

        trials = trial_counts(spec, store, args.storage)
        _out(f"{spec.name}: search trials " + ", ".join(f"{k} {v}" for k, v in trials.items()))
    _out(f"store: {store.root}  (report: cranerec report {store.root})")
    return 1 if counts["failed"] else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from cranerec.experiments.report import write_report

    _out(f"wrote {write_report(args.results, args.out, args.storage, only=args.specs)}")
    return 0


def _suite_names() -> list[str]:
    """The built-in suites (read without importing the experiment code: torch stays unloaded)."""
    import importlib.util

    found = importlib.util.find_spec("cranerec.experiments")  # located, not imported
    folder = Path(list(found.submodule_search_locations)[0]) / "suites"
    return sorted(p.stem for p in folder.glob("*.yaml"))


def add_parsers(sub) -> None:
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
    x.add_argument(
        "--workers",
        type=counting_number(1),
        default=1,
        help="local worker processes (cores shared)",
    )
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
        "where their config and data match a run of the spec, so it is not trained again; the "
        "spec's other runs are then trained as usual (add --status to adopt and train nothing)",
    )  # fmt: skip
    x.add_argument("--storage", help="Optuna storage URL of the search (e.g. postgresql://...)")
    pick = x.add_argument_group(
        "selecting runs",
        "train (or, with --status, show) only some of the spec's runs, e.g. `sports_text --models "
        "mmgcn --seeds 1`; they keep the ids they have in the whole spec, so its report finds "
        "them; the search is left out",
    )
    pick.add_argument("--models", nargs="+", metavar="MODEL", help="model labels or names")
    pick.add_argument("--settings", nargs="+", metavar="SETTING", help="setting names")
    pick.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds")
    pick.add_argument("--datasets", nargs="+", metavar="DATASET", help="dataset names")
    x.set_defaults(func=_cmd_experiment)

    rp = sub.add_parser("report", help="write the Markdown report (and PNGs) of a result store")
    rp.add_argument("results", help="a result store directory (cranerec experiment --store)")
    rp.add_argument("--out", help="Markdown file (default RESULTS/report.md); PNGs beside it")
    rp.add_argument(
        "--specs", nargs="+", metavar="SPEC",
        help="report only these of the store's specs (default: every spec in it)",
    )  # fmt: skip
    rp.add_argument("--storage", help="Optuna storage URL, when the search used another")
    rp.set_defaults(func=_cmd_report)
