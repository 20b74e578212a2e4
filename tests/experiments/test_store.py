"""The index: atomic claims across processes, interrupted runs taken again (and given up on after
MAX_ATTEMPTS), failures kept with their error. Imports only the store (no torch) so that the
claiming processes start fast."""

import multiprocessing as mp
import socket

from cranerec.experiments.store import MAX_ATTEMPTS, Store


def _runs(n):
    return [
        {"run_id": f"r{i:02d}", "model": "m", "dataset": "d", "setting": "s", "seed": i,
         "fingerprint": "fp", "config": {"i": i}, "position": i}
        for i in range(n)
    ]  # fmt: skip


def _claim_all(root, out):
    store = Store(root)
    taken = []
    while (row := store.claim("spec")) is not None:
        taken.append(row.run_id)
        store.finish(row.run_id, {"by": row.owner})
    out.put(taken)


def test_two_processes_never_claim_the_same_run(tmp_path):
    store = Store(tmp_path)
    store.add_runs("spec", _runs(20))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(str(tmp_path), out)) for _ in range(2)]
    for p in procs:
        p.start()
    taken = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert sorted(taken[0] + taken[1]) == [f"r{i:02d}" for i in range(20)]  # each exactly once
    assert store.counts("spec")["done"] == 20
    assert all(r.attempts == 1 for r in store.runs("spec"))


def test_claims_follow_the_spec_order_and_a_second_registration_keeps_status(tmp_path):
    store = Store(tmp_path)
    store.add_runs("spec", _runs(3))
    first = store.claim("spec")
    assert first.run_id == "r00" and first.status == "running"
    store.finish("r00", {"test": {"recall@20": 0.1}})
    store.add_runs("spec", _runs(3))  # the spec is registered again, e.g. by a second call
    assert store.get("r00").status == "done"
    assert store.claim("spec").run_id == "r01"


def test_a_run_shared_by_two_specs_is_one_run(tmp_path):
    store = Store(tmp_path)
    store.add_runs("a", _runs(2))
    store.add_runs("b", _runs(1))
    store.finish(store.claim("b").run_id, {})
    assert store.counts("a") == {
        "done": 1,
        "running": 0,
        "interrupted": 0,
        "failed": 0,
        "pending": 1,
    }


def test_an_interrupted_run_is_taken_again_then_given_up(tmp_path):
    store = Store(tmp_path)
    store.add_runs("spec", _runs(1))
    dead = f"{socket.gethostname()}:999999999"  # no such process
    assert store.claim("spec", owner=dead).attempts == 1
    assert store.runs("spec")[0].state == "interrupted"
    for attempt in range(2, MAX_ATTEMPTS + 1):
        row = store.claim("spec", owner=dead)
        assert row.run_id == "r00" and row.attempts == attempt
    assert store.claim("spec") is None  # given up: recorded failed with a reason
    row = store.get("r00")
    assert row.status == "failed" and "died" in row.error
    assert store.retry_failed("spec") == 1 and store.get("r00").status == "pending"


def test_a_live_owner_keeps_its_run_and_release_gives_it_back(tmp_path):
    store = Store(tmp_path)
    store.add_runs("spec", _runs(1))
    assert store.claim("spec") is not None
    assert store.claim("spec") is None  # this process is alive: its run is not taken twice
    store.release("r00")
    row = store.get("r00")
    assert row.status == "pending" and row.attempts == 0


def test_failure_keeps_the_error(tmp_path):
    store = Store(tmp_path)
    store.add_runs("spec", _runs(2))
    store.fail(store.claim("spec").run_id, "ValueError: boom")
    assert store.get("r00").error == "ValueError: boom"
    assert store.claim("spec").run_id == "r01"  # the others go on


def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path):
    import sqlite3

    import pytest

    from cranerec.config import ConfigError

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    con = sqlite3.connect(foreign / "index.sqlite3")
    con.execute("create table runs (x int)")
    con.commit()
    con.close()
    before = (foreign / "index.sqlite3").read_bytes()
    with pytest.raises(ConfigError, match="an SQLite database of another program"):
        Store(foreign)
    assert (foreign / "index.sqlite3").read_bytes() == before
    assert sorted(p.name for p in foreign.iterdir()) == ["index.sqlite3"]  # no runs/ beside it
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "index.sqlite3").write_bytes(b"not sqlite at all" * 64)
    with pytest.raises(ConfigError, match=r"junk/index\.sqlite3: not an experiment store's index"):
        Store(junk)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file; give a folder"):
        Store(tmp_path / "afile")
    Store(tmp_path / "ours").add_runs("spec", _runs(2))
    assert len(Store(tmp_path / "ours").runs("spec")) == 2  # a store of ours opens again
