"""The report's figures and banners, drawn from hand-made runs (no training): the efficiency
plot keeps synthetic shapes and real data apart and says when it is all synthetic, the
embedding map says what its markers are, and a search-only smoke spec carries the SYNTHETIC
banner."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from cranerec.data.loaders import load_dataset
from cranerec.experiments import report
from cranerec.experiments.spec import ReportSection, load_spec
from cranerec.experiments.store import Store
from cranerec.train.config import resolve_config

from .specs import TINY_DATA, tiny_spec


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the report draws, instead of their PNGs."""
    drawn = []
    monkeypatch.setattr(report.figures, "_save", lambda fig, path: drawn.append(fig) or path)
    return drawn


def _spec(**kw):
    return SimpleNamespace(
        name="eff", source="eff.yaml", smoke=False, reference=SimpleNamespace(model="crane"),
        models=[SimpleNamespace(label="crane"), SimpleNamespace(label="freedom")], **kw,
    )  # fmt: skip


def _run(model, dataset, users, items, seconds, rss, synthetic):
    data = {"n_users": users, "n_items": items, "n_interactions": 10 * users,
            "synthetic": synthetic}  # fmt: skip
    results = {"data": data, "epoch_seconds_mean": 5 * seconds, "epoch_seconds_median": seconds,
               "peak_rss_mb": rss}  # fmt: skip
    return SimpleNamespace(model=model, dataset=dataset, seed=1, results=results)


def _ctx(runs):
    ctx = SimpleNamespace(spec=_spec(), done=runs, rel=lambda r: f"runs/{r.model}-{r.dataset}")
    ctx.epoch_seconds = lambda r: report.Context.epoch_seconds(ctx, r)
    return ctx


def test_seconds_per_epoch_is_the_median_even_for_runs_that_predate_it(tmp_path):
    """A run paused for 40 minutes in one epoch keeps its typical epoch time in the tables."""
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e + 1, "epoch_seconds": t}) + "\n"
                for e, t in enumerate([1.1, 2400.0, 1.0, 1.2, 0.9]))
    )  # fmt: skip
    ctx = SimpleNamespace(run_path=lambda r: tmp_path)
    ctx.epochs = lambda r: report.Context.epochs(ctx, r)
    old = SimpleNamespace(results={"epoch_seconds_mean": 480.8})  # no median recorded
    assert report.Context.epoch_seconds(ctx, old) == pytest.approx(1.1)
    new = SimpleNamespace(results={"epoch_seconds_mean": 480.8, "epoch_seconds_median": 1.1})
    assert report.Context.epoch_seconds(ctx, new) == 1.1
    (tmp_path / "metrics.jsonl").unlink()
    assert report.Context.epoch_seconds(ctx, old) == 480.8  # nothing better to go on


def test_efficiency_plot_never_joins_synthetic_shapes_to_real_data(figures, tmp_path):
    runs = [
        _run("crane", "baby_1_4", 4861, 1763, 2.0, 900.0, True),
        _run("crane", "baby_1_2", 9723, 3525, 7.0, 1500.0, True),
        _run("crane", "tiktok_25", 2330, 5000, 1.5, 800.0, False),
        _run("crane", "tiktok_50", 4660, 6000, 3.0, 1100.0, False),
        _run("freedom", "baby_1_4", 4861, 1763, 0.5, 700.0, True),
        _run("freedom", "tiktok_25", 2330, 5000, 0.4, 650.0, False),
    ]
    _, table = report.figure_efficiency(_ctx(runs), ReportSection(kind="efficiency"), tmp_path)
    (fig,) = figures
    ax_t, ax_m = fig.axes[:2]
    for ax in (ax_t, ax_m):
        lines = {ln.get_label(): set(ln.get_xdata()) for ln in ax.get_lines()}
        assert lines["crane (synthetic)"] == {4861 + 1763, 9723 + 3525}
        assert lines["crane (real data)"] == {2330 + 5000, 4660 + 6000}
        assert "freedom (real data)" in lines and "freedom (synthetic)" in lines
    times = {ln.get_label(): list(ln.get_ydata()) for ln in ax_t.get_lines()}
    assert times["crane (synthetic)"] == [2.0, 7.0]  # the runs' median epochs, not their means
    assert {"quadratic", "linear (through crane's smallest)"} <= {
        ln.get_label() for ln in ax_t.get_lines()
    }
    assert ax_m.get_ylim()[1] > 1500.0  # the highest point inside the frame, not on it
    assert "SYNTHETIC" not in fig.get_suptitle()  # mixed: the markers tell them apart
    assert "Sources: spec `eff` (eff.yaml)" in table and "`runs/crane-tiktok_50`" in table


def test_efficiency_plot_on_synthetic_data_only_says_so(figures, tmp_path):
    runs = [_run("crane", "a", 60, 40, 0.01, 420.0, True), _run("crane", "b", 120, 80, 0.02, 440.0, True)]  # fmt: skip
    report.figure_efficiency(_ctx(runs), ReportSection(kind="efficiency", title="Fig. 7"), tmp_path)
    (fig,) = figures
    assert fig.get_suptitle() == "Fig. 7 (SYNTHETIC data)"
    assert fig.axes[1].get_ylim()[1] > 440.0


def test_embedding_map_says_which_marker_is_a_user_under_any_title(figures, tmp_path):
    config = resolve_config({"data": dict(TINY_DATA), "model": "bpr"}).to_dict()
    data = load_dataset(resolve_config(config).data)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "embeddings.npz", user_emb=rng.normal(size=(data.n_users, 8)),
             item_emb=rng.normal(size=(data.n_items, 8)))  # fmt: skip
    run = SimpleNamespace(config=config, fingerprint=data.fingerprint, seed=1)
    group = report.Group("synthetic", "bpr", "bpr", "", [run])
    ctx = SimpleNamespace(run_path=lambda r: tmp_path)
    ctx.epochs = lambda r: report.Context.epochs(ctx, r)
    section = ReportSection(kind="embedding_map", title="Users and their items (Fig. 6)", n_users=4)
    report.figure_embedding_map(ctx, section, "synthetic", [group], tmp_path / "map.png")
    (fig,) = figures
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["a user", "its training items (the user's colour)"]
    assert [h.get_marker() for h in legend.legend_handles] == ["*", "o"]
    assert "SYNTHETIC" in fig.get_suptitle()


def test_search_only_smoke_spec_carries_the_synthetic_banner(tmp_path):
    spec = load_spec("search", smoke=True)
    text = report.spec_report(spec, Store(tmp_path / "store"), tmp_path)
    assert "These results are on SYNTHETIC data" in text
    assert "paper grid" not in text  # the smoke version searches a 2 x 2 grid


def test_embedding_map_users_bring_as_many_items_as_the_data_has():
    from cranerec.experiments.report import map_users

    # TikTok-like: most users have 1-3 items, a few have 3-4 or hundreds, none 5-40
    degree = np.array([1] * 50 + [2] * 50 + [3] * 20 + [4] * 3 + [300] * 5)
    users = map_users(degree, 8)
    assert len(users) == 8 and set(degree[users]) <= {3, 4}
    assert list(users) == sorted(users)
    rich = np.array([1] * 50 + [7] * 10 + [300] * 5)
    assert set(rich[map_users(rich, 8)]) == {7}


def test_banner_says_when_only_some_runs_are_synthetic(tmp_path):
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    spec = parse_spec(tiny_spec(models=["bpr"], reference={}))
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)
    text = report.spec_report(spec, store, tmp_path)
    assert "These results are on SYNTHETIC data" in text
    row = store.runs(spec.name)[0]  # as if this run had been on real data
    store.finish(row.run_id, {**row.results, "synthetic_data": False})
    text = report.spec_report(spec, store, tmp_path)
    assert "These results are on SYNTHETIC data" not in text
    assert "Some of these runs are on SYNTHETIC data" in text


def test_results_tables_give_each_runs_best_epoch(tmp_path):
    """A reader sees which epoch each number comes from (e.g. a run that kept its first epoch)."""
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    spec = parse_spec(tiny_spec(models=["bpr"], seeds=[1, 2], reference={}))
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)
    row = store.runs(spec.name)[1]
    store.finish(row.run_id, {**row.results, "best_epoch": 7})
    text = report.spec_report(spec, store, tmp_path)
    header = next(line for line in text.splitlines() if line.startswith("|  | seeds"))
    assert header.rstrip(" |").endswith("best epoch")
    bpr = next(line for line in text.splitlines() if line.startswith("| bpr |"))
    best = [r.results["best_epoch"] for r in store.runs(spec.name)]
    assert bpr.rstrip(" |").endswith(", ".join(map(str, best)))


def test_seconds_per_epoch_name_their_device_when_a_table_mixes_devices(tmp_path):
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    raw = tiny_spec(models=["bpr", "lightgcn"], seeds=[1], reference={})
    raw["report"] = [{"kind": "table", "rows": "model", "metrics": ["recall@20"], "timing": True}]
    spec = parse_spec(raw)
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)

    def seconds_cells():
        text = report.spec_report(spec, store, tmp_path)
        rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| bpr |")]
        rows += [line.split(" | ") for line in text.splitlines() if line.startswith("| lightgcn |")]
        return [r[-2] for r in rows]

    assert all("(" not in c for c in seconds_cells())  # one device: plain seconds
    row = next(r for r in store.runs(spec.name) if r.model == "lightgcn")
    store.finish(row.run_id, {**row.results, "device": "cuda"})
    bpr, lightgcn = seconds_cells()
    assert bpr.endswith("(cpu)") and lightgcn.endswith("(cuda)")
    # an index entry without the device (older runs, adopted ones): read from results.json
    results = store.run_dir(row.run_id) / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "device": "cuda:1"}))
    store.finish(row.run_id, {**row.results, "device": None})
    assert seconds_cells()[1].endswith("(cuda:1)")


def test_a_row_whose_seeds_ran_on_two_devices_gives_seconds_per_device(tmp_path):
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    raw = tiny_spec(models=["bpr"], seeds=[1, 2], reference={})
    raw["report"] = [{"kind": "table", "rows": "model", "metrics": ["recall@20"], "timing": True}]
    spec = parse_spec(raw)
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)
    one, two = store.runs(spec.name)
    store.finish(one.run_id, {**one.results, "device": "cuda", "epoch_seconds_median": 0.5})
    store.finish(two.run_id, {**two.results, "device": "cpu", "epoch_seconds_median": 9.0})
    text = report.spec_report(spec, store, tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| bpr |"))
    assert "| 9 (cpu), 0.5 (cuda) |" in row


def test_a_validation_table_tests_on_the_validation_split_only(tmp_path):
    """A table meant for choosing (split: valid) must not show test-split p-values: its paired
    tests read the per-user validation values, so they stand even with every test file gone."""
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    raw = tiny_spec()
    raw["report"] = [
        {"kind": "table", "rows": "model", "metrics": ["recall@20"], "split": split}
        for split in ("valid", "test")
    ]
    spec = parse_spec(raw)
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)
    for row in store.runs(spec.name):
        (store.run_dir(row.run_id) / "per_user.npz").unlink()  # the test split's values
    text = report.spec_report(spec, store, tmp_path)
    valid_row, test_row = [line for line in text.splitlines() if line.startswith("| bpr |")]
    assert "p users (R@20, Holm)" in text and "per-user valid R@20" in text
    assert valid_row.count(" | ") > test_row.count(" | ")  # p columns only where they could be


def test_validation_curves_leave_out_a_model_that_trains_no_epochs_and_wrap_the_title(
    figures, tmp_path
):
    """Popularity writes no metrics.jsonl; a curves section with it beside a trained model
    draws the trained one instead of failing the whole report."""
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    raw = tiny_spec(models=["pop", "bpr"], seeds=[1], reference={})
    title = "Validation Recall@20 per epoch on a dataset with a long name (mean over seeds)"
    raw["report"] = [{"kind": "curves", "metrics": ["recall@20"], "title": title}]
    spec = parse_spec(raw)
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)
    report.spec_report(spec, store, tmp_path)
    (fig,) = figures
    labels = [
        ln.get_label() for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")
    ]
    assert len(labels) == 1 and labels[0].startswith("bpr ")
    # a long title is wrapped, not cut at the figure's edge
    assert all(len(line) <= 70 for line in fig.axes[0].get_title().splitlines())


def test_validation_curves_show_a_seed_that_trained_longer_and_each_seeds_best(figures, tmp_path):
    """The mean over seeds stops at the shortest seed; a seed that trained on stays visible to
    its last epoch, and the legend gives the seeds' own best (not the cut mean's)."""
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    raw = tiny_spec(models=["bpr"], seeds=[1, 2], reference={})
    raw["report"] = [{"kind": "curves", "metrics": ["recall@20"]}]
    spec = parse_spec(raw)
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)
    longer = store.run_dir(store.runs(spec.name)[1].run_id) / "metrics.jsonl"
    with longer.open("a") as f:  # seed 2 went on to a better third epoch
        f.write(json.dumps({"epoch": 3, "valid": {"recall@20": 0.9}}) + "\n")
    report.spec_report(spec, store, tmp_path)
    (fig,) = figures
    lines = fig.axes[0].get_lines()
    assert max(max(ln.get_xdata()) for ln in lines) == 3
    (label,) = [ln.get_label() for ln in lines if not ln.get_label().startswith("_")]
    assert label.endswith(", 3)") and "mean over seeds" in label


def test_a_report_out_that_is_a_folder_is_refused_by_name(tmp_path):
    from cranerec.config import ConfigError

    Store(tmp_path / "store")
    (tmp_path / "here").mkdir()
    with pytest.raises(ConfigError, match=r"--out .*here: is a folder; give the report's file"):
        report.write_report(tmp_path / "store", out=tmp_path / "here")
    assert list((tmp_path / "here").iterdir()) == []


def test_a_stored_spec_this_code_cannot_read_blocks_no_other_report(tmp_path):
    # Review: one stored spec that a newer check refuses broke the report of every spec
    store = Store(tmp_path / "store")
    store.register_spec("old", "", "name: old\nmodels: [bpr]\nno_such_key: 1\n")
    with pytest.warns(UserWarning, match="spec 'old' cannot be read again"):
        specs = report.load_store_specs(store)
    assert [s.name for s in specs] == []


def test_bar_chart_shows_each_seeds_value_beside_the_mean(figures, tmp_path):
    """Three seeds of a row whose mean hides their spread: the bars carry one dot per seed at
    that seed's own figure, so a reader sees whether the seeds agree."""
    from cranerec.experiments.runner import run_experiment
    from cranerec.experiments.spec import parse_spec

    raw = tiny_spec(models=["bpr"], seeds=[1, 2, 3], reference={})
    raw["report"] = [{"kind": "bars", "metrics": ["recall@20"], "split": "valid"}]
    spec = parse_spec(raw)
    store = Store(tmp_path / "store")
    run_experiment(spec, store, progress=False)
    report.spec_report(spec, store, tmp_path)
    (fig,) = figures
    from matplotlib.collections import PathCollection

    (dots,) = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    want = sorted(r.results["valid"]["recall@20"] for r in store.runs(spec.name))
    assert sorted(dots.get_offsets()[:, 1].tolist()) == pytest.approx(want)
    (bar,) = fig.axes[0].patches
    assert bar.get_height() == pytest.approx(np.mean(want))


def test_search_figure_draws_every_trials_curve_and_where_runs_start_to_be_judged(
    figures, tmp_path
):
    """A reader of a search sees each trial's validation curve, which one was chosen, and the
    epoch from which `train.min_epochs` lets a run be judged (were trials compared converged?)."""
    from cranerec.experiments.search import load_trials, run_search
    from cranerec.experiments.spec import parse_spec

    space = {"train.lr": {"values": [0.001, 0.01]}}
    section = {"model": "bpr", "dataset": "synthetic", "space": space, "pruner": "none"}
    raw = tiny_spec(models=[], reference={}, search=section)
    raw["base"]["train"].update(epochs=3, patience=3, min_epochs=1)
    raw["report"] = [{"kind": "search"}]
    spec = parse_spec(raw)
    store = Store(tmp_path / "store")
    run_search(spec, store, threads=1)
    text = report.spec_report(spec, store, tmp_path)
    assert "-0-search-curves.png)" in text
    (fig,) = figures
    ax = fig.axes[0]
    trials = load_trials(spec, store)
    curves = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    assert len(curves) == len(trials) == 2
    for t in trials:  # each line is that trial's reported curve, epoch by epoch
        assert any(list(ln.get_ydata()) == [t.intermediate_values[e] for e in (1, 2, 3)]
                   for ln in curves)  # fmt: skip
    (chosen,) = [ln for ln in curves if ln.get_linewidth() == 2]
    assert chosen.get_label().startswith("chosen: trial")
    (judged,) = [ln for ln in ax.get_lines() if "min_epochs" in ln.get_label()]
    assert list(judged.get_xdata()) == [1.5, 1.5]
