"""``cranerec demo`` (``make demo``): the flagship end to end on the built-in SYNTHETIC data.

1. train a small CRANE (the ``tiktok`` preset, at most ``DEMO_EPOCHS`` epochs) into
   ``runs/demo/crane``: a resumable run directory like any ``cranerec train --out``;
2. serve it over HTTP on a free local port, exactly as ``cranerec serve`` does, and ask
   ``POST /v1/recommend`` for one user's top 10;
3. say where the training curve is and what to run next.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

DEMO_EPOCHS = 20
DEMO_SETTINGS = [
    f"train.epochs={DEMO_EPOCHS}",
    "train.patience=5",
    "data.synthetic_users=800",  # RCA grows with (users + items)^2: small enough for ~1 min
    "data.synthetic_items=400",
]


def run_demo(out: str | Path, say=print) -> dict[str, Any]:
    """Train, serve and query; returns the HTTP answer (a dict). ``say`` prints a line."""
    from cranerec.train.run import build_config, train_run
    from cranerec.train.rundir import RunDir

    out = Path(out)
    run_dir = out / "crane"
    if run_dir.exists() and not RunDir(run_dir).finished:
        shutil.rmtree(run_dir)  # a demo interrupted before it finished: start it again
    config = build_config(model="crane", preset="tiktok", overrides=DEMO_SETTINGS)
    say(
        f"1/3 training CRANE (the paper's model; preset tiktok, at most {DEMO_EPOCHS} epochs) "
        f"on the built-in SYNTHETIC data into {run_dir}"
    )
    t0 = time.perf_counter()
    results = train_run(config, run_dir)
    test = results["test"]
    say(
        f"    done in {time.perf_counter() - t0:.0f} s: best epoch {results['best_epoch']} of "
        f"{results['epochs_run']}, test recall@20 {test['recall@20']:.4f}, "
        f"ndcg@20 {test['ndcg@20']:.4f} (SYNTHETIC data)"
    )
    say("2/3 serving it over HTTP (as `cranerec serve` does) and asking for one user's top 10")
    answer, user = _ask_the_service(run_dir)
    say(f'    POST /v1/recommend {{"user_ids": ["{user}"], "k": 10}} ->')
    for item in answer["results"][0]["items"]:
        say(f"      item {item['item_id']:>6}  score {item['score']:.4f}")
    say("3/3 next:")
    say(f"    the training curve: {RunDir(run_dir).curve}")
    say(f"    serve it yourself:  .venv/bin/cranerec serve {run_dir}   (then open /docs)")
    say("    or first `source .venv/bin/activate` and type `cranerec ...`; `cranerec --help`")
    return answer


def _ask_the_service(run_dir: Path) -> tuple[dict[str, Any], str]:
    import uvicorn

    from cranerec.serve import Recommender
    from cranerec.serve.app import create_app

    rec = Recommender.load(run_dir)
    user = str(rec.user_ids[0])
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(rec), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the demo's HTTP server did not start")
            time.sleep(0.05)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/recommend",
            data=json.dumps({"user_ids": [user], "k": 10}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read()), user
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
