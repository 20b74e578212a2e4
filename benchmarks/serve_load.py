"""Load benchmark of the HTTP service: throughput and latency of single-user k=20 requests.

    python benchmarks/serve_load.py RUN_DIR [--requests 5000] [--clients 8] [--warmup 300]

Starts ``cranerec serve RUN_DIR`` on a free loopback port in a subprocess, waits for
``/health``, sends a warm-up, then ``--requests`` POST /v1/recommend requests (one random user
each, k=20, seen items excluded) from ``--clients`` concurrent client processes, each on its own
keep-alive connection; prints throughput and p50/p90/p99 latency, and stops the server. The
clients run on the same machine as the server, so on a small machine they take part of its CPU:
the figures are a lower bound for a server with the machine to itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, server: subprocess.Popen, timeout: float = 120.0) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s")


def _client(args: tuple[int, list[str], int, float]) -> tuple[list[float], int, float, float]:
    """One client: ``n`` sequential requests on one connection, starting at ``start_at``.
    Returns (latencies in s, errors, first send time, last answer time)."""
    port, users, n, start_at = args
    rng = np.random.default_rng(os.getpid())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    latencies, errors = [], 0
    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    for _ in range(n):
        body = json.dumps({"user_ids": [users[rng.integers(len(users))]], "k": 20})
        t0 = time.perf_counter()
        conn.request("POST", "/v1/recommend", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - t0)
        if response.status != 200 or len(json.loads(payload)["results"][0]["items"]) != 20:
            errors += 1
    return latencies, errors, began, time.time()


def _run_clients(port: int, users: list[str], total: int, clients: int) -> dict:
    per = [total // clients + (1 if c < total % clients else 0) for c in range(clients)]
    start_at = time.time() + 1.0  # every client starts together
    with mp.get_context("spawn").Pool(clients) as pool:
        out = pool.map(_client, [(port, users, n, start_at) for n in per])
    latencies = np.concatenate([np.asarray(o[0]) for o in out]) * 1000.0  # ms
    wall = max(o[3] for o in out) - min(o[2] for o in out)
    return {
        "requests": int(len(latencies)),
        "errors": int(sum(o[1] for o in out)),
        "seconds": wall,
        "throughput": len(latencies) / wall,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p90_ms": float(np.percentile(latencies, 90)),
        "p99_ms": float(np.percentile(latencies, 99)),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--index", default="flat", choices=["flat", "hnsw", "ivf"])
    args = p.parse_args()
    run_dir = Path(args.run_dir)
    with np.load(run_dir / "embeddings.npz", allow_pickle=False) as z:
        users = z["user_ids"].astype(str).tolist()
    port = _free_port()
    cmd = [sys.executable, "-m", "cranerec.cli", "serve", str(run_dir), "--port", str(port),
           "--index", args.index]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        _wait_healthy(port, server)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/info")
        info = json.loads(conn.getresponse().read())
        _run_clients(port, users, args.warmup, min(args.clients, max(1, args.warmup)))
        result = _run_clients(port, users, args.requests, args.clients)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    synthetic = " (SYNTHETIC data)" if info.get("synthetic_data") else ""
    print(
        f"model {info['model']} on {info['dataset']}{synthetic}: {info['n_users']:,} users, "
        f"{info['n_items']:,} items, d={info['dim']}, index {info['index']}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; server and {args.clients} client processes share it"
    )
    print(
        f"{result['requests']:,} single-user k=20 requests from {args.clients} concurrent clients "
        f"(after {args.warmup} warm-up) in {result['seconds']:.2f} s: "
        f"{result['throughput']:.0f} requests/s; latency p50 {result['p50_ms']:.1f} ms, "
        f"p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; errors {result['errors']}"
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
