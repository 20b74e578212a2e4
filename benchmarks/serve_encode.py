"""Encoding a large answer of the HTTP service: the service's encoder (orjson) against the json
module on the same answer, side by side in one run.

    python benchmarks/serve_encode.py RUN_DIR [--users 10] [--k 1000] [--repeats 10]

Loads the run, computes one answer of ``--users`` users x ``--k`` items (the service's largest
by default: 10,000 results) and times ``app._answer`` (what the service sends) and
``json.dumps`` of the same rows; prints min and median of ``--repeats`` and checks that both
encode the same JSON values.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time


def _time(fn, repeats: int) -> tuple[float, float, bytes]:
    times, out = [], b""
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3, statistics.median(times) * 1e3, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    from cranerec.serve.app import _answer
    from cranerec.serve.recommender import Recommender

    rec = Recommender.load(args.run_dir)
    results = rec.recommend(list(rec.user_ids[: args.users]), k=args.k, exclude_seen=True)

    def with_json() -> bytes:
        rows = [{"user_id": r.query, "items": r.items()} for r in results]
        return json.dumps({"results": rows}, separators=(",", ":")).encode()

    fast = _time(lambda: _answer(results, "user_id").body, args.repeats)
    slow = _time(with_json, args.repeats)
    assert json.loads(fast[2]) == json.loads(slow[2])
    print(f"{args.users} users x k={args.k}, {len(fast[2]):,} bytes; {platform.machine()}, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"service encoder (orjson): min {fast[0]:.1f} ms, median {fast[1]:.1f} ms")
    print(f"json module: min {slow[0]:.1f} ms, median {slow[1]:.1f} ms "
          f"(ratio of medians {slow[1] / fast[1]:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
