"""Using a trained run: ``cranerec recommend`` (batch top-k), ``serve`` (HTTP) and ``demo``."""

from __future__ import annotations

import argparse
import gc
import warnings
from pathlib import Path

from cranerec.cli.output import SYNTHETIC_BANNER, _out, counting_number


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

    _check_address(args.host, args.port)  # uvicorn's own failure is a multi-line log, exit 1
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
    app = create_app(rec, allow_new_items=not args.read_only)
    # Everything loaded so far lives as long as the service: out of the garbage collector's
    # sight, a full collection (set off by the 10,000 dicts of a large answer) no longer walks
    # torch's and the id tables' objects, which stalled every request for 100-900 ms
    # (benchmarks/serve_load.py; docs/serving.md).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=args.host, port=args.port, log_level=args.log_level,
    )  # fmt: skip
    return 0


def _check_address(host: str, port: int) -> None:
    """Refuse, in one line, an address the service could not listen on (checked by binding it
    and letting it go again before the run is loaded)."""
    import errno
    import socket

    if not host:  # "": every interface, as asyncio takes it
        return
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(
            f"--host {host}: not a name or address of this machine ({e}); use 127.0.0.1, or "
            "0.0.0.0 to listen on every interface"
        ) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        if family == socket.AF_INET6:  # as asyncio binds "::": IPv6 only
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise ValueError(
                    f"--host {host}: not an address of this machine; use 127.0.0.1, or "
                    "0.0.0.0 to listen on every interface"
                ) from None
            raise ValueError(
                f"--port {port}: cannot listen on {host}:{port} ({e.strerror or e}); choose "
                "another --port, or stop what is listening there"
            ) from None


def _port(text: str) -> int:
    """An argparse type: a TCP port number."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def add_parsers(sub) -> None:
    """``recommend``, ``demo`` and ``serve``."""
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
        type=counting_number(0),
        default=1,
        help="faiss threads per search (default 1: requests bring the concurrency; 0 = all cores)",
    )
    sv.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    sv.set_defaults(func=_cmd_serve)
