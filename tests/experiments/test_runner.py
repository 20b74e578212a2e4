"""The runner: every run of a spec trained once into the store; a crashed run recorded failed
while the others go on; a second call skips done runs and resumes interrupted ones from their
checkpoints; local workers share the cores."""

import io
import json
import os
import socket
import sys

import pytest

from cranerec.config import ConfigError
from cranerec.experiments.runner import register, run_experiment, status_text
from cranerec.experiments.spec import Selection, parse_spec
from cranerec.experiments.store import Store
from cranerec.experiments.workers import RunLines, plan_workers
from cranerec.train.config import resolve_config
from cranerec.train.run import train_run

from .specs import tiny_spec


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("asked", [1, 2, 3, 5, 32])
def test_workers_times_threads_never_exceeds_the_cores(cores, asked):
    workers, threads = plan_workers(asked, cores)
    assert 1 <= workers <= asked and threads >= 1
    assert workers * threads <= cores
    assert workers == min(asked, cores)
    assert plan_workers(asked, cores, max_threads=1)[1] == 1


def test_a_crashed_run_is_recorded_failed_and_the_others_go_on(tmp_path):
    # fusion=audio resolves (the name is checked when the model is built) but the data has none
    spec = parse_spec(tiny_spec(
        models=[{"name": "crane", "overrides": {"model": {"knn_k": 5}}}], seeds=[1], reference={},
        settings=[{"name": "ok"}, {"name": "broken", "overrides": {"model": {"fusion": "audio"}}}],
    ))  # fmt: skip
    store = Store(tmp_path)
    counts = run_experiment(spec, store, progress=False)
    assert counts["done"] == 1 and counts["failed"] == 1
    broken = next(r for r in store.runs(spec.name) if r.setting == "broken")
    assert "audio" in broken.error and "ValueError" in broken.error
    text = status_text(spec, store)
    assert "failed 1" in text and "broken" in text and "audio" in text
    # a second call leaves both alone; --retry-failed tries the failed one again
    assert run_experiment(spec, store, progress=False)["failed"] == 1
    assert store.get(broken.run_id).attempts == 1
    run_experiment(spec, store, retry_failed=True, progress=False)
    assert store.get(broken.run_id).attempts == 1 and store.get(broken.run_id).status == "failed"


def test_second_call_skips_done_runs(tmp_path):
    spec = parse_spec(tiny_spec())
    store = Store(tmp_path)
    assert run_experiment(spec, store, progress=False)["done"] == 4
    stamps = {
        r.run_id: (store.run_dir(r.run_id) / "results.json").stat().st_mtime_ns
        for r in store.runs(spec.name)
    }
    assert run_experiment(spec, store, progress=False)["done"] == 4
    again = {
        r.run_id: (store.run_dir(r.run_id) / "results.json").stat().st_mtime_ns
        for r in store.runs(spec.name)
    }
    assert again == stamps
    row = store.runs(spec.name)[0]
    summary = json.loads((store.run_dir(row.run_id) / "results.json").read_text())
    assert row.results["test"] == summary["test"] and row.results["data"]["n_users"] == 120
    assert row.results["peak_rss_mb"] > 0


class _StopError(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    raw = tiny_spec(
        models=["lightgcn"],
        seeds=[1],
        reference={},
        base={"train": {"epochs": 4, "patience": 4, "threads": 1, "batch_size": 256}},
    )
    spec = parse_spec(raw)
    clean = Store(tmp_path / "clean")
    run_experiment(spec, clean, progress=False)
    expected = clean.runs(spec.name)[0].results

    store = Store(tmp_path / "cut")
    (row,) = register(spec, store)
    dead = f"{socket.gethostname()}:999999999"
    assert store.claim(spec.name, owner=dead).run_id == row["run_id"]  # a worker took it ...

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise _StopError  # ... and died after its second epoch's checkpoint

    with pytest.raises(_StopError):
        train_run(
            resolve_config(row["config"]), store.run_dir(row["run_id"]), callbacks=[stop_after_two]
        )
    assert store.counts(spec.name)["interrupted"] == 1
    epochs_seen = []
    import cranerec.train.trainer as trainer

    original = trainer.Trainer.load_checkpoint

    def spy(self, path):
        original(self, path)
        epochs_seen.append(self.state.epoch)

    trainer.Trainer.load_checkpoint = spy
    try:
        assert run_experiment(spec, store, progress=False)["done"] == 1
    finally:
        trainer.Trainer.load_checkpoint = original
    assert epochs_seen == [2]  # resumed after epoch 2, not retrained
    done = store.get(row["run_id"])
    assert done.attempts == 2 and done.results["test"] == expected["test"]
    lines = (store.run_dir(row["run_id"]) / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]


def test_two_local_workers_run_every_run_once(tmp_path):
    spec = parse_spec(tiny_spec(models=["bpr", "pop"], reference={}))
    store = Store(tmp_path)
    counts = run_experiment(spec, store, workers=2, progress=False)
    assert counts["done"] == 4
    rows = store.runs(spec.name)
    assert all(r.attempts == 1 for r in rows)
    assert all(r.results["torch_threads"] == 1 for r in rows)  # train.threads=1 caps the share


def test_isolated_runs_measure_their_own_peak_memory(tmp_path):
    spec = parse_spec(tiny_spec(models=["bpr"], seeds=[1], reference={}, isolate=True))
    store = Store(tmp_path)
    assert run_experiment(spec, store, progress=False)["done"] == 1
    row = store.runs(spec.name)[0]
    assert row.results["peak_rss_mb"] > 50 and row.results["pid"] != os.getpid()


def test_adopted_run_directories_are_not_trained_again(tmp_path):
    from cranerec.experiments.runner import adopt

    spec = parse_spec(tiny_spec(models=["lightgcn"], reference={}))
    store = Store(tmp_path / "store")
    rows = register(spec, store)
    # seed 1 trained outside the store, as `cranerec train --out` would; seed 2 half-trained
    outside = tmp_path / "outside"
    finished = train_run(resolve_config(rows[0]["config"]), outside / "seed-1")

    def stop(record):
        raise _StopError

    with pytest.raises(_StopError):
        train_run(resolve_config(rows[1]["config"]), outside / "seed-2", callbacks=[stop])
    other = resolve_config({**rows[0]["config"], "seed": 7})
    train_run(other, outside / "seed-7")

    lines = adopt(spec, store, [outside / "seed-1", outside / "seed-2", outside / "seed-7"])
    assert "adopted" in lines[0] and "(done)" in lines[0]
    assert "adopted" in lines[1] and "to resume" in lines[1]
    assert "matches no run" in lines[2]
    assert store.get(rows[0]["run_id"]).status == "done"
    assert store.get(rows[0]["run_id"]).results["test"] == finished["test"]

    stamp = (store.run_dir(rows[0]["run_id"]) / "results.json").stat().st_mtime_ns
    assert run_experiment(spec, store, progress=False)["done"] == 2
    assert (store.run_dir(rows[0]["run_id"]) / "results.json").stat().st_mtime_ns == stamp
    metrics = (store.run_dir(rows[1]["run_id"]) / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in metrics] == [1, 2]  # resumed after epoch 1
    again = adopt(spec, store, [outside / "seed-1"])
    assert "already done" in again[0]


def test_status_is_read_only_so_a_running_spec_keeps_its_runs(tmp_path):
    # a second file under the same name: --status shows its runs without replacing the run list
    # that workers of the first file claim from (before, it did, and they trained its runs)
    store = Store(tmp_path)
    first = parse_spec(tiny_spec(), source="a.yaml")
    register(first, store)
    listed = [r.run_id for r in store.runs("tiny")]
    second = parse_spec(tiny_spec(models=["bpr"], seeds=[3], reference={}), source="b.yaml")
    text = status_text(second, store)
    assert "tiny: 1 runs" in text and "bpr / default on synthetic, seed 3" in text
    assert "lightgcn" not in text
    assert [r.run_id for r in store.runs("tiny")] == listed and len(listed) == 4
    assert "b.yaml" not in {s["source"] for s in store.specs()}


def test_status_reports_runs_done_by_another_spec_and_registers_nothing_new(tmp_path):
    store = Store(tmp_path)
    spec = parse_spec(tiny_spec(models=["bpr"], seeds=[1], reference={}))
    assert run_experiment(spec, store, progress=False)["done"] == 1
    other = parse_spec(tiny_spec(name="other", models=["bpr"], seeds=[1, 2], reference={}))
    text = status_text(other, store)
    assert "1/2 done" in text and "seed 2" in text and "seed 1" not in text
    assert (
        store.runs("other") == [] and len(store.lookup([r.run_id for r in store.runs("tiny")])) == 1
    )


def test_registering_a_name_from_another_file_warns_naming_both(tmp_path, caplog):
    store = Store(tmp_path)
    register(parse_spec(tiny_spec(), source="a.yaml"), store)
    with caplog.at_level("WARNING"):
        register(parse_spec(tiny_spec(), source="a.yaml"), store)  # the same file again: quiet
    assert not caplog.records
    with caplog.at_level("WARNING"):
        register(parse_spec(tiny_spec(seeds=[1]), source="b.yaml"), store)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "a.yaml" in message and "b.yaml" in message and "name:" in message
    assert len(store.runs("tiny")) == 2  # the last registration's run list is the one kept


def test_status_labels_each_setting_of_a_shared_run_and_counts_it_once(tmp_path):
    store = Store(tmp_path)
    spec = parse_spec(tiny_spec(models=["bpr"], seeds=[1], reference={}, settings=[
        {"name": "first"}, {"name": "second", "overrides": {"train": {"progress": True}}},
    ]))  # fmt: skip
    register(spec, store)  # progress is no part of a run's id: both settings are one run
    text = status_text(spec, store)
    assert "tiny: 1 runs" in text and "pending 1" in text
    assert "bpr / first on" in text and "bpr / second on" in text


def test_a_selection_trains_only_its_runs_under_their_whole_spec_ids(tmp_path):
    # e.g. `cranerec experiment sports_text --models mmgcn --seeds 1`: one run of a big suite,
    # with the id it has in the whole spec, so the suite's report and later calls find it done
    store = Store(tmp_path)
    spec = parse_spec(tiny_spec())
    whole = {(r["model"], r["seed"]): r["run_id"] for r in register(spec, store)}
    counts = run_experiment(spec, store, progress=False, selection=Selection(("bpr",), None, (2,)))
    assert counts == {"done": 1, "running": 0, "interrupted": 0, "failed": 0, "pending": 0}
    states = {(r.model, r.seed): (r.run_id, r.status) for r in store.runs("tiny")}
    assert states[("bpr", 2)] == (whole[("bpr", 2)], "done")
    assert [s for k, (_, s) in states.items() if k != ("bpr", 2)] == ["pending"] * 3
    text = status_text(spec, store, selection=Selection(models=("lightgcn",)))
    assert "tiny: 2 runs" in text and "pending 2" in text and "bpr" not in text
    assert run_experiment(spec, store, progress=False)["done"] == 4  # the rest, bpr 2 not again


def test_a_selection_naming_what_the_spec_lacks_is_one_error_listing_what_it_has(tmp_path):
    spec = parse_spec(tiny_spec())
    with pytest.raises(ConfigError, match=r"--models lgcn: .*\(bpr, lightgcn\)"):
        run_experiment(spec, Store(tmp_path), progress=False, selection=Selection(("lgcn",)))
    with pytest.raises(ConfigError, match=r"--seeds 3: .*\(1, 2\)"):
        status_text(spec, Store(tmp_path), selection=Selection(seeds=(3,)))
    assert Store(tmp_path).specs() == []  # refused before the spec was registered


class _BrokenStderr(io.StringIO):
    """A stderr whose reader has gone (a closed pipe): every write fails."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_progress_line_that_cannot_be_written_does_not_fail_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _BrokenStderr())
    spec = parse_spec(tiny_spec(models=["bpr"], seeds=[1], reference={}))
    store = Store(tmp_path)
    assert run_experiment(spec, store, progress=True)["done"] == 1  # lines mode: not a tty
    assert store.runs(spec.name)[0].results["valid"]


def test_epoch_lines_say_no_best_before_min_epochs(capsys):
    lines = RunLines("s: bpr on d, seed 1", "recall@20", min_epochs=2)
    for epoch in (1, 2, 3):
        lines.epoch({"epoch": epoch, "valid": {"recall@20": 0.1}, "best_epoch": epoch})
    said = capsys.readouterr().err.splitlines()
    assert [x.split("0.1000 ")[1].split(")")[0] for x in said] == [
        "(no best before epoch 3", "(no best before epoch 3", "(best epoch 3",
    ]  # fmt: skip


def test_a_stopped_run_says_it_was_given_back_then_resumes(tmp_path, monkeypatch, capsys):
    """Ctrl-C (or SIGTERM) in a log file: the run says it was given back, and the next call
    says it resumed it from its checkpoint."""
    import cranerec.train.run as run_module

    original = run_module.train_run

    def interrupted(config, run_dir, dataset=None, callbacks=()):
        def stop(record):
            if record["epoch"] == 1:
                raise KeyboardInterrupt

        return original(config, run_dir, dataset, callbacks=[*callbacks, stop])

    spec = parse_spec(tiny_spec(models=["bpr"], seeds=[1], reference={}))
    store = Store(tmp_path)
    monkeypatch.setattr(run_module, "train_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(spec, store, progress=True)
    assert "seed 1: stopped: given back to the store" in capsys.readouterr().err
    assert store.counts(spec.name)["pending"] == 1
    monkeypatch.setattr(run_module, "train_run", original)
    assert run_experiment(spec, store, progress=True)["done"] == 1
    err = capsys.readouterr().err
    assert "seed 1: resumed (run " in err and "seed 1: done: best epoch" in err
