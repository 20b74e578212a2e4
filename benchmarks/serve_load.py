"""Load benchmark of the HTTP service: throughput and latency of single-user k=20 requests,
alone or next to large requests.

    python benchmarks/serve_load.py RUN_DIR [--requests 5000] [--clients 8] [--warmup 300]
    python benchmarks/serve_load.py RUN_DIR --rate 500 --duration 10 [--large-clients 1]

Starts ``cranerec serve RUN_DIR`` on a free loopback port in a subprocess, waits for
``/health`` and sends a warm-up. Small requests are POST /v1/recommend for one random user,
k=20, seen items excluded, from ``--clients`` client processes, each on its own keep-alive
connection.

Without ``--rate`` (closed loop): ``--requests`` small requests as fast as the clients get
answers; prints throughput and p50/p90/p99 latency.

With ``--rate R`` (open loop): the clients send R small requests a second in all, on a fixed
schedule, for ``--duration`` seconds, twice (``--rounds N``: 2N windows, alternating, the
latencies of each phase pooled, so that a stall of a shared machine falls on both phases alike):
alone, then while ``--large-clients`` processes
send the largest requests the service accepts (``--large-users`` users x ``--large-k``, by
default 10 x 1000 = its 10,000-result limit), ``--large-rate`` a second each (0: back to back). A small request's latency counts
from its scheduled send time, so time spent queued behind a stalled server is included (no
coordinated omission). Prints both phases' p50/p90/p99, the rate achieved and the large
requests' latency.

The clients run on the same machine as the server, so on a small machine they take part of its
CPU: the figures are a lower bound for a server with the machine to itself.
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


def _paced_client(
    args: tuple[int, list[str], float, float, float],
) -> tuple[list[float], int, float]:
    """One open-loop client: a request every ``interval`` s from ``start_at`` until ``stop_at``
    (latency from each request's scheduled time). Returns (latencies in s, errors, time of the
    last answer)."""
    port, users, interval, start_at, stop_at = args
    rng = np.random.default_rng(os.getpid())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json"}
    latencies, errors = [], 0
    due = start_at
    while due < stop_at:
        time.sleep(max(0.0, due - time.time()))
        body = json.dumps({"user_ids": [users[rng.integers(len(users))]], "k": 20})
        conn.request("POST", "/v1/recommend", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.time() - due)
        if response.status != 200 or len(json.loads(payload)["results"][0]["items"]) != 20:
            errors += 1
        due += interval
    return latencies, errors, time.time()


def _large_client(
    args: tuple[int, list[str], int, int, float, float, float],
) -> tuple[list[float], int]:
    """Large requests (``n_users`` x ``k``), one every ``interval`` s (0: back to back), from
    ``start_at`` until ``stop_at``."""
    port, users, n_users, k, interval, start_at, stop_at = args
    rng = np.random.default_rng(os.getpid())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"content-type": "application/json"}
    latencies, errors = [], 0
    due = start_at
    while due < stop_at:
        time.sleep(max(0.0, due - time.time()))
        due = max(due + interval, time.time()) if interval else time.time()
        chosen = rng.choice(len(users), size=n_users, replace=False)
        body = json.dumps({"user_ids": [users[u] for u in chosen], "k": k})
        t0 = time.perf_counter()
        conn.request("POST", "/v1/recommend", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - t0)
        errors += response.status != 200
    return latencies, errors


def _run_paced(
    port: int, users: list[str], rate: float, duration: float, clients: int, large: tuple
) -> dict:
    """Small requests at ``rate`` a second for ``duration`` s; ``large`` = (processes, users,
    k, requests a second each, 0 = back to back) sending large requests meanwhile (0
    processes: none)."""
    n_large, large_users, large_k, large_rate = large
    interval = clients / rate
    start_at = time.time() + 1.5  # every client starts together
    stop_at = start_at + duration
    small_args = [
        (port, users, interval, start_at + c * interval / clients, stop_at) for c in range(clients)
    ]
    large_interval = 1.0 / large_rate if large_rate else 0.0
    large_args = [
        (port, users, large_users, large_k, large_interval, start_at + 0.25, stop_at)
    ] * n_large
    with mp.get_context("spawn").Pool(clients + n_large) as pool:
        small = pool.map_async(_paced_client, small_args)
        big = pool.map_async(_large_client, large_args)
        small_out, big_out = small.get(), big.get()
    latencies = np.concatenate([np.asarray(o[0]) for o in small_out]) * 1000.0  # ms
    big_lat = np.concatenate([np.asarray(o[0]) for o in big_out] or [np.empty(0)]) * 1000.0
    return {
        "requests": int(len(latencies)),
        "errors": int(sum(o[1] for o in small_out) + sum(o[1] for o in big_out)),
        # scheduled requests are all sent, late if the server falls behind: the rate achieved
        # is what was answered over the time it took
        "throughput": len(latencies) / (max(o[2] for o in small_out) - start_at),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p90_ms": float(np.percentile(latencies, 90)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "max_ms": float(latencies.max()),
        "large": int(len(big_lat)),
        "large_p50_ms": float(np.percentile(big_lat, 50)) if len(big_lat) else 0.0,
        "large_max_ms": float(big_lat.max()) if len(big_lat) else 0.0,
        "latencies": latencies,
        "large_latencies": big_lat,
    }


def _pooled(runs: list[dict]) -> dict:
    """One phase's figures over several windows (its latencies pooled)."""
    lat = np.concatenate([r["latencies"] for r in runs])
    big = np.concatenate([r["large_latencies"] for r in runs])
    return {
        "requests": int(len(lat)),
        "errors": sum(r["errors"] for r in runs),
        "throughput": float(np.mean([r["throughput"] for r in runs])),
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "large": int(len(big)),
        "large_p50_ms": float(np.percentile(big, 50)) if len(big) else 0.0,
        "large_max_ms": float(big.max()) if len(big) else 0.0,
        "windows_p99": [r["p99_ms"] for r in runs],
    }


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
    p.add_argument("--rate", type=float, default=0.0, help="open loop: small requests/s in all")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per open-loop phase")
    p.add_argument("--large-clients", type=int, default=1, help="open loop: large senders")
    p.add_argument("--large-users", type=int, default=10)
    p.add_argument("--large-k", type=int, default=1000)
    p.add_argument(
        "--large-rate",
        type=float,
        default=2.0,
        help="large requests/s per sender (0: back to back)",
    )
    p.add_argument("--target-p99-ms", type=float, default=50.0)
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="open loop: alternate the two phases this many times (windows of --duration s)",
    )
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
        if args.rate > 0:
            large = (args.large_clients, args.large_users, args.large_k, args.large_rate)
            # alternating windows, so that a stall of a shared machine falls on both phases
            runs = {"alone": [], "with large": []}
            for _ in range(args.rounds):
                for name, load in (("alone", (0, 0, 0, 0)), ("with large", large)):
                    runs[name].append(_run_paced(
                        port, users, args.rate, args.duration, args.clients, load
                    ))  # fmt: skip
            phases = {name: _pooled(r) for name, r in runs.items()}
        else:
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
    n_clients = args.clients + (args.large_clients if args.rate > 0 else 0)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}; server and {n_clients} "
        "client processes share it"
    )
    if args.rate > 0:
        errors = 0
        for name, r in phases.items():
            errors += r["errors"]
            large = (
                f"; {r['large']} large requests ({args.large_users} users x k={args.large_k}) "
                f"from {args.large_clients} client(s) meanwhile, each {r['large_p50_ms']:.0f} ms "
                f"(p50), at most {r['large_max_ms']:.0f} ms"
                if name != "alone"
                else ""
            )
            verdict = "meets" if r["p99_ms"] < args.target_p99_ms else "MISSES"
            print(
                f"{name}: single-user k=20 requests asked at {args.rate:.0f}/s for "
                f"{args.duration:.0f} s, {r['throughput']:.0f}/s answered: latency p50 "
                f"{r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
                f"({verdict} p99 < {args.target_p99_ms:.0f} ms), max {r['max_ms']:.0f} ms"
                f"{large}; errors {r['errors']}"
                + (
                    f"; p99 per window: {', '.join(f'{x:.0f}' for x in r['windows_p99'])} ms"
                    if args.rounds > 1
                    else ""
                )
            )
        return 1 if errors else 0
    print(
        f"{result['requests']:,} single-user k=20 requests from {args.clients} concurrent clients "
        f"(after {args.warmup} warm-up) in {result['seconds']:.2f} s: "
        f"{result['throughput']:.0f} requests/s; latency p50 {result['p50_ms']:.1f} ms, "
        f"p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; errors {result['errors']}"
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
