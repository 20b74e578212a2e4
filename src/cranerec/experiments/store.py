"""The result store of experiments: run directories plus an SQLite index.

``STORE/index.sqlite3`` (stdlib ``sqlite3``, WAL journal) holds one row per run (its id, resolved
config, status ``pending`` / ``running`` / ``done`` / ``failed``, error text, attempts, owner,
timestamps and a results summary), the specs registered in the store with the runs that belong
to each (a run shared by two specs, e.g. the full model of ``main`` and ``ablation``, is trained
once), and a cache of data fingerprints. ``STORE/runs/<run id>/`` is a ``cranerec train`` run
directory (config.yaml, metrics.jsonl, checkpoint.pt, results.json, per_user.npz, ...).

Several processes may use one store: every state change is a short transaction, and a run is
claimed with ``BEGIN IMMEDIATE`` (one writer at a time), so no run is claimed twice. A run whose
owner died (same host: its process is gone; another host: no heartbeat for ``STALE_AFTER_S``) is
interrupted and is claimed again, to resume from its checkpoint; after ``MAX_ATTEMPTS`` claims it
is recorded failed. A store lives on a local disk (SQLite over a network file system is not
safe); several machines share work through a search's Optuna storage instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cranerec.config import ConfigError

INDEX = "index.sqlite3"
RUNS = "runs"
STATUSES = ("pending", "running", "done", "failed")
MAX_ATTEMPTS = 3
STALE_AFTER_S = 2 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    seed INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    heartbeat REAL,
    results TEXT
);
CREATE TABLE IF NOT EXISTS members (
    spec TEXT NOT NULL,
    position INTEGER NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    setting TEXT NOT NULL,
    seed INTEGER NOT NULL,
    PRIMARY KEY (spec, position)
);
CREATE INDEX IF NOT EXISTS members_run ON members(run_id);
CREATE TABLE IF NOT EXISTS specs (
    name TEXT PRIMARY KEY,
    source TEXT,
    text TEXT NOT NULL,
    smoke INTEGER NOT NULL DEFAULT 0,
    registered REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    key TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    info TEXT NOT NULL
);
"""


def owner_id() -> str:
    """``host:pid`` of this process (who holds a running run)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(owner: str | None, heartbeat: float | None, now: float | None = None) -> bool:
    """Whether the process holding a run still works on it."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return _pid_alive(int(pid))
    return heartbeat is not None and (now or time.time()) - heartbeat < STALE_AFTER_S


@dataclass
class RunRow:
    """One row of the index, with the spec membership it was looked up through."""

    run_id: str
    model: str
    dataset: str
    seed: int
    fingerprint: str
    config: dict[str, Any]
    status: str
    error: str | None
    attempts: int
    owner: str | None
    started: float | None
    finished: float | None
    heartbeat: float | None
    results: dict[str, Any] | None
    setting: str = ""
    spec: str = ""
    position: int = 0

    @property
    def state(self) -> str:
        """``status``, with ``running`` split into ``running`` and ``interrupted``."""
        if self.status == "running" and not owner_alive(self.owner, self.heartbeat):
            return "interrupted"
        return self.status


def count_states(rows: list[RunRow]) -> dict[str, int]:
    """Distinct runs per state: done, running, interrupted, failed, pending (two settings that
    resolve to the same run count once)."""
    out = dict.fromkeys(("done", "running", "interrupted", "failed", "pending"), 0)
    for row in {r.run_id: r for r in rows}.values():
        out[row.state] += 1
    return out


def _check_index(path: Path) -> None:
    """``path`` is a store's index: an SQLite file (empty, or with this module's ``runs`` table);
    another program's database is refused, never altered (the check only reads)."""
    what = "give --store a new folder, or the folder of an experiment store"
    if not path.is_file():
        raise ConfigError(f"{path}: is not a file (an experiment store's index); {what}")
    try:
        con = sqlite3.connect(path, timeout=120.0)  # reads only
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
            columns = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{path}: not an experiment store's index ({e}); {what}") from None
    if tables and not {"run_id", "status", "config"} <= columns:
        raise ConfigError(
            f"{path}: an SQLite database of another program (tables {sorted(tables)[:5]}), not "
            f"an experiment store's index; {what}"
        )


class Store:
    """Run directories and the SQLite index under ``root`` (created on first use)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / INDEX
        if self.path.exists():
            _check_index(self.path)  # before anything is written beside or into it
        elif self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--store {self.root}: is a file; give a folder for the store")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / RUNS).mkdir(exist_ok=True)
        with self._connect() as con:
            con.executescript(SCHEMA)

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=120.0, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")  # WAL: no disk flush per commit
            con.execute("PRAGMA busy_timeout=120000")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: other writers wait, readers go on)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def run_dir(self, run_id: str) -> Path:
        return self.root / RUNS / run_id

    # ------------------------------------------------------------------ registration

    def register_spec(self, name: str, source: str, text: str, smoke: bool = False) -> None:
        """Record (or update) a spec's text; its membership list is replaced by ``add_runs``."""
        with self.transaction() as con:
            con.execute(
                "INSERT INTO specs(name, source, text, smoke, registered) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET source=excluded.source, text=excluded.text, "
                "smoke=excluded.smoke",
                (name, source, text, int(smoke), time.time()),
            )

    def add_runs(self, spec: str, runs: list[dict[str, Any]]) -> None:
        """Make ``runs`` the members of ``spec``; new run ids start ``pending``. Each item has
        run_id, model, dataset, setting, seed, fingerprint, config (dict), position."""
        now = time.time()
        with self.transaction() as con:
            con.execute("DELETE FROM members WHERE spec = ?", (spec,))
            for r in runs:
                con.execute(
                    "INSERT OR IGNORE INTO runs(run_id, model, dataset, seed, fingerprint, config, "
                    "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (r["run_id"], r["model"], r["dataset"], r["seed"], r["fingerprint"],
                     json.dumps(r["config"], sort_keys=True), now),
                )  # fmt: skip
                con.execute(
                    "INSERT INTO members(spec, position, run_id, dataset, model, setting, seed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (spec, r["position"], r["run_id"], r["dataset"], r["model"], r["setting"], r["seed"]),
                )  # fmt: skip

    def specs(self) -> list[dict[str, Any]]:
        """The specs registered, in registration order."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT name, source, text, smoke FROM specs ORDER BY registered"
            ).fetchall()
        return [{"name": n, "source": s, "text": t, "smoke": bool(k)} for n, s, t, k in rows]

    # ------------------------------------------------------------------ claiming and results

    def claim(
        self, spec: str, owner: str | None = None, only: Collection[str] | None = None
    ) -> RunRow | None:
        """Atomically take the first runnable run of ``spec`` (pending, or interrupted: its
        owner died), among the ids ``only`` when given, and mark it running for ``owner``.
        Interrupted runs claimed ``MAX_ATTEMPTS`` times already are recorded failed instead."""
        owner = owner or owner_id()
        now = time.time()
        with self.transaction() as con:
            rows = con.execute(
                "SELECT r.run_id, r.status, r.owner, r.heartbeat, r.attempts FROM members m "
                "JOIN runs r ON r.run_id = m.run_id WHERE m.spec = ? AND r.status IN "
                "('pending', 'running') ORDER BY m.position",
                (spec,),
            ).fetchall()
            for run_id, status, old_owner, heartbeat, attempts in rows:
                if only is not None and run_id not in only:
                    continue
                if status == "running" and owner_alive(old_owner, heartbeat, now):
                    continue
                if status == "running" and attempts >= MAX_ATTEMPTS:
                    con.execute(
                        "UPDATE runs SET status='failed', finished=?, error=? WHERE run_id=?",
                        (now, f"its process died {attempts} times while running it (killed, or "
                         "out of memory?); `--retry-failed` tries again", run_id),
                    )  # fmt: skip
                    continue
                con.execute(
                    "UPDATE runs SET status='running', owner=?, started=?, heartbeat=?, "
                    "attempts=attempts+1, error=NULL WHERE run_id=?",
                    (owner, now, now, run_id),
                )
                break
            else:
                return None
        return self.get(run_id)

    def heartbeat(self, run_id: str, owner: str | None = None) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET heartbeat=? WHERE run_id=? AND owner=?",
                (time.time(), run_id, owner or owner_id()),
            )

    def finish(self, run_id: str, results: dict[str, Any]) -> None:
        """Record a run done with its results summary."""
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET status='done', finished=?, results=?, error=NULL WHERE run_id=?",
                (time.time(), json.dumps(results, sort_keys=True), run_id),
            )

    def fail(self, run_id: str, error: str) -> None:
        """Record a run failed with its error text."""
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET status='failed', finished=?, error=? WHERE run_id=?",
                (time.time(), error, run_id),
            )

    def release(self, run_id: str) -> None:
        """Give a claimed run back (the worker was stopped, not the run broken): pending, and
        the claim does not count as an attempt."""
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET status='pending', owner=NULL, attempts=MAX(attempts-1, 0) "
                "WHERE run_id=? AND status='running'",
                (run_id,),
            )

    def retry_failed(self, spec: str, only: Collection[str] | None = None) -> int:
        """Set the failed runs of ``spec`` (those of ``only`` when given) back to pending;
        returns how many."""
        with self.transaction() as con:
            ids = [
                t[0] for t in con.execute(
                    "SELECT r.run_id FROM runs r JOIN members m ON m.run_id = r.run_id "
                    "WHERE m.spec = ? AND r.status = 'failed'", (spec,),
                ) if only is None or t[0] in only
            ]  # fmt: skip
            con.executemany(
                "UPDATE runs SET status='pending', error=NULL, attempts=0, owner=NULL "
                "WHERE run_id = ?",
                [(run_id,) for run_id in ids],
            )
            return len(ids)

    # ------------------------------------------------------------------ reading

    _COLUMNS = (
        "r.run_id, r.model, r.dataset, r.seed, r.fingerprint, r.config, r.status, r.error, "
        "r.attempts, r.owner, r.started, r.finished, r.heartbeat, r.results"
    )

    @staticmethod
    def _row(t: tuple, extra: tuple = ()) -> RunRow:
        row = RunRow(*t[:5], json.loads(t[5]), *t[6:13], json.loads(t[13]) if t[13] else None)
        if extra:
            row.setting, row.spec, row.position, row.model, row.dataset, row.seed = extra
        return row

    def get(self, run_id: str) -> RunRow:
        with self._connect() as con:
            t = con.execute(
                f"SELECT {self._COLUMNS} FROM runs r WHERE run_id=?", (run_id,)
            ).fetchone()
        if t is None:
            raise KeyError(run_id)
        return self._row(t)

    def lookup(self, run_ids: list[str]) -> dict[str, RunRow]:
        """{run id: row} of the ids the index holds (others are left out)."""
        wanted = sorted(set(run_ids))
        out: dict[str, RunRow] = {}
        with self._connect() as con:
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for t in con.execute(
                    f"SELECT {self._COLUMNS} FROM runs r WHERE run_id IN ({marks})", chunk
                ):
                    out[t[0]] = self._row(t)
        return out

    @staticmethod
    def unregistered_row(run: dict[str, Any]) -> RunRow:
        """The pending row a resolved run (``runner.resolve``) will get when registered."""
        return RunRow(
            run["run_id"], run["model"], run["dataset"], run["seed"], run["fingerprint"],
            run["config"], "pending", None, 0, None, None, None, None, None,
        )  # fmt: skip

    def runs(self, spec: str) -> list[RunRow]:
        """The runs of ``spec`` in its order, each with the labels the spec gives it."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT {self._COLUMNS}, m.setting, m.spec, m.position, m.model, m.dataset, m.seed "
                "FROM members m JOIN runs r ON r.run_id = m.run_id WHERE m.spec=? ORDER BY m.position",
                (spec,),
            ).fetchall()
        return [self._row(t[:14], t[14:]) for t in rows]

    def counts(self, spec: str) -> dict[str, int]:
        """Distinct runs of ``spec`` per state (``count_states``)."""
        return count_states(self.runs(spec))

    # ------------------------------------------------------------------ data fingerprints

    def cached_fingerprint(self, key: str, signature: str) -> tuple[str, dict[str, Any]] | None:
        with self._connect() as con:
            t = con.execute(
                "SELECT signature, fingerprint, info FROM datasets WHERE key=?", (key,)
            ).fetchone()
        if t is None or t[0] != signature:
            return None
        return t[1], json.loads(t[2])

    def cache_fingerprint(
        self, key: str, signature: str, fingerprint: str, info: dict[str, Any]
    ) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO datasets(key, signature, fingerprint, info) VALUES (?, ?, ?, ?)",
                (key, signature, fingerprint, json.dumps(info, sort_keys=True)),
            )
