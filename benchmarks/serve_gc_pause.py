"""How long a full garbage collection stalls the HTTP service, before and after ``gc.freeze()``
(what ``cranerec serve`` does once the run is loaded).

    python benchmarks/serve_gc_pause.py RUN_DIR

Loads the run and builds the app as ``cranerec serve`` does, then times ``gc.collect()`` (the
median of 5) with everything loaded visible to the collector, and after ``gc.freeze()``. A large
answer allocates ~10,000 dicts, which sets off collections; a full one stops every request for
its whole length, so its length bounds the p99 of small requests from below.
"""

from __future__ import annotations

import argparse
import gc
import logging
import platform
import time


def _full_collection_ms() -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - start)
    return sorted(times)[2] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    from cranerec.serve.app import create_app
    from cranerec.serve.recommender import Recommender

    rec = Recommender.load(args.run_dir)
    create_app(rec)
    print(f"model {rec.config.model_name}: {rec.n_users:,} users, {rec.n_items:,} items; "
          f"{len(gc.get_objects()):,} objects tracked; {platform.machine()}, Python "
          f"{platform.python_version()}")  # fmt: skip
    before = _full_collection_ms()
    gc.freeze()
    after = _full_collection_ms()
    ratio = f"{before / after:.0f}x" if after >= 0.01 else "after: below 0.01 ms"
    print(f"full collection: {before:.1f} ms visible, {after:.2f} ms after gc.freeze() ({ratio})")


if __name__ == "__main__":
    main()
