"""Recommender: a run directory loads without unpickling, answers with the model's own scores,
and names what is wrong with a run or a request."""

from __future__ import annotations

import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from cranerec.models import get_model_class
from cranerec.serve import Recommender, ServeError, UnknownIdError
from cranerec.serve.recommender import _ReadWriteLock
from cranerec.train import resolve_config
from cranerec.utils.ranking import topk_items


def _copy(run_dir, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def _seen(data, u: int) -> set[str]:
    return set(
        data.item_ids[data.train.indices[data.train.indptr[u] : data.train.indptr[u + 1]]].astype(
            str
        )
    )


def write_fake_run(path, template, user_emb, item_emb, seen_rows):
    """A run directory with hand-made vectors (config.yaml copied from a real run)."""
    path.mkdir()
    shutil.copy(template / "config.yaml", path / "config.yaml")
    n_users, n_items = len(user_emb), len(item_emb)
    np.savez(
        path / "embeddings.npz",
        user_emb=np.asarray(user_emb, np.float32),
        item_emb=np.asarray(item_emb, np.float32),
        user_ids=np.array([f"u{i}" for i in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
    )
    indptr = np.cumsum([0] + [len(r) for r in seen_rows])
    indices = np.concatenate([np.asarray(r, np.int64) for r in seen_rows])
    np.savez(path / "seen.npz", indptr=indptr, indices=indices, shape=np.array([n_users, n_items]))
    return path


# ---------------------------------------------------------------- loading


def test_loaded_scores_are_the_models_own(make_run, tiny_data):
    run = make_run("lightgcn")
    rec = Recommender.load(run)
    saved = torch.load(run / "model.pt", weights_only=True)
    model = get_model_class("lightgcn")(tiny_data, resolve_config(saved["config"]).model)
    model.load_state_dict(saved["state_dict"])
    user_emb, item_emb = model.export_embeddings()
    expected = (user_emb @ item_emb.T).numpy()  # [U, I]
    for u in (0, 7, 199):
        got = rec.recommend(tiny_data.user_ids[u], k=tiny_data.n_items, exclude_seen=False)
        idx = np.array([tiny_data.item_index[int(i)] for i in got.item_ids])
        assert sorted(idx.tolist()) == list(range(tiny_data.n_items))  # every item, once
        np.testing.assert_allclose(got.scores, expected[u, idx], rtol=1e-5, atol=1e-6)
        assert (np.diff(got.scores) <= 0).all()  # best first


def test_ids_are_compared_as_strings_and_lists_keep_their_order(make_run):
    rec = Recommender.load(make_run("lightgcn"))
    one = rec.recommend(5, k=5)
    same = rec.recommend("5", k=5)
    assert one.query == "5" and list(one.item_ids) == list(same.item_ids)
    batch = rec.recommend([3, "5", 3], k=5)
    assert [r.query for r in batch] == ["3", "5", "3"]
    assert list(batch[1].item_ids) == list(one.item_ids)
    assert rec.recommend([], k=5) == []


def test_a_batch_answers_as_each_user_alone(make_run):
    rec = Recommender.load(make_run("lightgcn"))
    users = rec.user_ids.tolist()
    batch = rec.recommend(users, k=10)
    for user, got in zip(users, batch, strict=True):
        alone = rec.recommend(user, k=10)
        assert list(alone.item_ids) == list(got.item_ids)
        np.testing.assert_array_equal(alone.scores, got.scores)  # bit for bit


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "config.yaml").unlink(), "no config.yaml"),
        (lambda d: (d / "config.yaml").write_text("model: {name: nope}\n"), "unknown model 'nope'"),
        (lambda d: (d / "config.yaml").write_text("{{{ not yaml"), "config.yaml"),
        (lambda d: (d / "embeddings.npz").unlink(), "no embeddings.npz"),
        (lambda d: _truncate(d / "embeddings.npz"), "embeddings.npz: unreadable"),
        (lambda d: (d / "embeddings.npz").write_text("hello"), "embeddings.npz"),
        (lambda d: _save_npy(d / "embeddings.npz"), "not an .npz archive"),
        (lambda d: _rewrite(d / "embeddings.npz", drop="item_ids"), "missing item_ids"),
        (lambda d: _rewrite(d / "embeddings.npz", item_ids=np.arange(3)), "item_ids has shape"),
        (lambda d: _rewrite(d / "embeddings.npz", user_emb=np.zeros((200, 3))), "different widths"),
        (
            lambda d: _rewrite(d / "embeddings.npz", item_emb=np.full((120, 16), np.nan)),
            "non-finite",
        ),
        (lambda d: _rewrite(d / "embeddings.npz", user_ids=np.zeros(200)), "duplicate ids"),
        (lambda d: _truncate(d / "seen.npz"), "seen.npz: unreadable"),
        (
            lambda d: _rewrite(d / "seen.npz", shape=np.array([3, 3])),
            "seen.npz: not the training items",
        ),
    ],
)
def test_damaged_run_directories_are_named(make_run, tmp_path, damage, message):
    run = _copy(make_run("lightgcn"), tmp_path)
    damage(run)
    with pytest.raises(ServeError, match=message.replace("(", r"\(")):
        Recommender.load(run)


def test_object_arrays_are_refused_without_unpickling(make_run, tmp_path):
    run = _copy(make_run("lightgcn"), tmp_path)
    _rewrite(run / "embeddings.npz", item_ids=np.array([object()] * 120, dtype=object))
    with pytest.raises(ServeError, match="embeddings.npz"):
        Recommender.load(run)


def _save_npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _rewrite(path, drop=None, **replace):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != drop}
    arrays.update(replace)
    np.savez(path, **arrays)


# ---------------------------------------------------------------- recommend


def test_recommend_excludes_exactly_the_training_items(make_run, tiny_data):
    rec = Recommender.load(make_run("lightgcn"))
    users = tiny_data.user_ids.tolist()
    shown_seen = False
    for u, (with_seen, without) in enumerate(
        zip(rec.recommend(users, 20, exclude_seen=False), rec.recommend(users, 20), strict=True)
    ):
        seen = _history(tiny_data, u)  # seen.npz records every split (train_run)
        assert not seen & set(without.item_ids) and len(without) == 20
        shown_seen |= bool(seen & set(with_seen.item_ids))
        # the unseen items of the full ranking, in order
        full = rec.recommend(users[u], tiny_data.n_items, exclude_seen=False)
        expected = [i for i in full.item_ids if i not in seen][:20]
        assert list(without.item_ids) == expected
    assert shown_seen  # without the exclusion, training items do rank


def test_items_restricts_the_candidates(make_run, tiny_data):
    rec = Recommender.load(make_run("lightgcn"))
    allowed = [str(i) for i in tiny_data.item_ids[::7]]
    for u in (0, 1, 2):
        got = rec.recommend(u, k=5, items=allowed)
        full = rec.recommend(u, k=tiny_data.n_items)
        assert list(got.item_ids) == [i for i in full.item_ids if i in set(allowed)][:5]
    few = rec.recommend(0, k=50, items=allowed[:3], exclude_seen=False)
    assert sorted(few.item_ids) == sorted(allowed[:3])  # fewer than k remain: all of them


def test_ties_are_ordered_by_the_lower_item_index(make_run, tmp_path):
    # items 1, 3 and 4 are identical: equal scores, listed by index; user 1 has seen item 1
    items = [[1, 0], [2, 0], [0, 1], [2, 0], [2, 0], [0, 0]]
    run = write_fake_run(
        tmp_path / "fake", make_run("lightgcn"), [[1, 0], [1, 0]], items, [[], [1]]
    )
    rec = Recommender.load(run)
    assert list(rec.recommend("u0", k=4).item_ids) == ["i1", "i3", "i4", "i0"]
    assert list(rec.recommend("u1", k=4).item_ids) == ["i3", "i4", "i0", "i2"]
    scores = (
        torch.tensor([[1, 0]], dtype=torch.float32) @ torch.tensor(items, dtype=torch.float32).T
    )
    _, idx = topk_items(scores, 4)
    assert [f"i{i}" for i in idx[0].tolist()] == list(
        rec.recommend("u0", 4, exclude_seen=False).item_ids
    )


def test_unknown_ids_are_named(make_run):
    rec = Recommender.load(make_run("lightgcn"))
    with pytest.raises(UnknownIdError, match="'nope', 'gone'") as err:
        rec.recommend(["0", "nope", "1", "gone", "nope"])
    assert err.value.ids == ["nope", "gone"] and err.value.kind == "user"
    with pytest.raises(UnknownIdError, match="unknown item id: 'x'"):
        rec.recommend("0", items=["1", "x"])
    with pytest.raises(UnknownIdError, match="unknown item id"):
        rec.similar_items(["x"])
    with pytest.raises(ServeError, match="k must be"):
        rec.recommend("0", k=0)
    with pytest.raises(ServeError, match="strings or integers"):
        rec.recommend([1.5])


def test_a_run_without_seen_file_reads_its_training_data(make_run, tiny_data, tmp_path):
    run = make_run("lightgcn")
    old = _copy(run, tmp_path)
    (old / "seen.npz").unlink()
    every = ("train", "valid", "test")
    expected = Recommender.load(run, dataset=tiny_data, seen_splits=every)
    got = Recommender.load(old, dataset=tiny_data).recommend([0, 1, 2], k=10)
    expected = expected.recommend([0, 1, 2], k=10)
    assert [list(r.item_ids) for r in got] == [list(r.item_ids) for r in expected]


def test_a_run_without_seen_items_is_refused_at_load(make_run, tmp_path, caplog):
    # Regression: a run without seen.npz (and without its training data) loaded, and then
    # every request with exclude_seen (the default) failed, over HTTP as a 400 naming server
    # paths. Now the load fails, naming the file and what to do.
    old = _copy(make_run("lightgcn"), tmp_path)
    (old / "seen.npz").unlink()
    # the data config.yaml names (the default synthetic set) is not what the run was trained on
    with pytest.raises(ServeError, match=r"no seen\.npz.*not the data.*require_seen=False"):
        Recommender.load(old)
    # opting out serves without exclusion, said at load and by every request that asks for it
    with caplog.at_level("WARNING"):
        rec = Recommender.load(old, require_seen=False)
    assert "seen.npz" in caplog.text and "exclude_seen" in caplog.text
    assert rec.info()["seen_splits"] == []
    assert len(rec.recommend(0, exclude_seen=False)) == 20
    with pytest.raises(ServeError, match="exclude_seen=false") as e:
        rec.recommend(0)
    assert str(tmp_path) not in str(e.value)


# ---------------------------------------------------------------- what exclude_seen covers


def _history(data, u: int) -> set[str]:
    """Every item the run saw for user ``u``: train, valid and test."""
    return set().union(
        *(
            data.item_ids[m.indices[m.indptr[u] : m.indptr[u + 1]]].astype(str)
            for m in (data.train, data.valid, data.test)
        )
    )


def _shows_held_out(rec, data) -> bool:
    answers = rec.recommend(rec.user_ids.tolist(), k=20)
    assert all(not _seen(data, u) & set(r.item_ids) for u, r in enumerate(answers))
    return any(_history(data, u) & set(r.item_ids) for u, r in enumerate(answers))


def test_exclude_seen_can_cover_every_split(make_run, tiny_data, tmp_path, caplog):
    # Regression: seen.npz holds the training items only, so exclude_seen recommended the
    # users' valid and test items (what they already have), silently. Now that is said at
    # load, and seen_splits takes every split from the data (as does a run without seen.npz).
    run = _copy(make_run("lightgcn"), tmp_path / "train-only")
    train = tiny_data.train.tocsr()  # seen.npz as runs before train_run wrote every split
    _rewrite(run / "seen.npz", drop="splits", indptr=train.indptr, indices=train.indices)
    with caplog.at_level("WARNING"):
        train_only = Recommender.load(run, dataset=tiny_data)
    assert train_only.info()["seen_splits"] == ["train"]
    assert "train interactions only" in caplog.text and "seen_splits" in caplog.text
    assert _shows_held_out(train_only, tiny_data)  # what the warning is about
    every = ("train", "valid", "test")
    full = Recommender.load(run, dataset=tiny_data, seen_splits=every)
    assert full.info()["seen_splits"] == list(every)
    assert not _shows_held_out(full, tiny_data)
    old = _copy(run, tmp_path)
    (old / "seen.npz").unlink()
    assert Recommender.load(old, dataset=tiny_data).info()["seen_splits"] == list(every)
    with pytest.raises(ServeError, match="seen_splits must name"):
        Recommender.load(run, dataset=tiny_data, seen_splits=["train", "tset"])


def test_a_seen_file_with_every_split_is_used_as_is(make_run, tiny_data, tmp_path, caplog):
    # The format train_run should write (see docs/serving.md): train + valid + test, named.
    run = _copy(make_run("lightgcn"), tmp_path)
    every = (tiny_data.train + tiny_data.valid + tiny_data.test).tocsr()
    every.sum_duplicates()
    every.sort_indices()
    np.savez(
        run / "seen.npz", indptr=every.indptr, indices=every.indices,
        shape=np.array(every.shape), splits=np.array(["train", "valid", "test"]),
    )  # fmt: skip
    with caplog.at_level("WARNING"):
        rec = Recommender.load(run)
    assert not caplog.text
    assert rec.info()["seen_splits"] == ["train", "valid", "test"]
    assert not _shows_held_out(rec, tiny_data)
    _rewrite(run / "seen.npz", splits=np.array(["train", "tset"]))
    with pytest.raises(ServeError, match="seen.npz: splits"):
        Recommender.load(run)


def test_user_items_are_left_out(make_run):
    # Per-request history (as implicit's recommend takes user_items): left out on top of the
    # stored history, or alone with exclude_seen=False.
    rec = Recommender.load(make_run("lightgcn"))
    before = rec.recommend("3", k=6)
    held = list(before.item_ids[:2])
    after = rec.recommend("3", k=4, user_items=held)
    assert list(after.item_ids) == list(before.item_ids[2:])
    both = rec.recommend(["3", "5"], k=4, user_items=[held, []])
    assert list(both[0].item_ids) == list(after.item_ids)
    assert list(both[1].item_ids) == list(rec.recommend("5", k=4).item_ids)
    alone = rec.recommend("3", k=3, exclude_seen=False, user_items=held)
    assert not set(held) & set(alone.item_ids)
    with pytest.raises(UnknownIdError, match="nothing"):
        rec.recommend("3", user_items=["1", "nothing"])
    with pytest.raises(ServeError, match="one list of item ids per user"):
        rec.recommend(["3", "5"], user_items=["1", "2"])  # a flat list for two users
    with pytest.raises(ServeError, match="one list of item ids per user"):
        rec.recommend(["3", "5"], user_items=[["1"]])


# ---------------------------------------------------------------- similar items, new users


def test_similar_items_are_the_cosine_neighbours_without_the_item(make_run):
    rec = Recommender.load(make_run("lightgcn"))
    unit = rec.item_emb / np.linalg.norm(rec.item_emb, axis=1, keepdims=True)
    cos = unit @ unit.T
    for i in (0, 17, 119):
        got = rec.similar_items(str(i), k=5)
        assert str(i) not in got.item_ids
        others = np.delete(np.arange(len(cos)), i)
        best = others[np.argsort(-cos[i, others], kind="stable")][:5]
        assert [int(x) for x in got.item_ids] == best.tolist()
        np.testing.assert_allclose(got.scores, cos[i, best], rtol=1e-5)


def test_a_new_user_with_an_existing_users_items_gets_that_users_list(make_run, tiny_data):
    """Exact for pop; a near copy for graph models (documented in docs/serving.md): their user
    vector is a free parameter smoothed over the graph, the new user's the mean of its items."""
    users = tiny_data.user_ids.tolist()
    for model, exact in (("pop", True), ("lightgcn", False), ("crane", False)):
        rec = Recommender.load(make_run(model))
        own = rec.recommend(users, k=20)
        new = [
            rec.recommend_for_items(sorted(_history(tiny_data, u)), k=20) for u in range(len(users))
        ]
        overlap = np.mean(
            [len(set(a.item_ids) & set(b.item_ids)) / 20 for a, b in zip(own, new, strict=True)]
        )
        if exact:
            assert all(list(a.item_ids) == list(b.item_ids) for a, b in zip(own, new, strict=True))
            continue
        # against another user's list (minus that user's items): what chance overlap looks like
        other = np.mean(
            [
                len(set(own[(u + 1) % len(users)].item_ids) & set(new[u].item_ids)) / 20
                for u in range(len(users))
            ]
        )
        assert overlap > other + 0.15, (model, overlap, other)
        assert all(not _seen(tiny_data, u) & set(new[u].item_ids) for u in range(len(users)))


def test_new_user_vector_is_the_models_rule(make_run):
    rec = Recommender.load(make_run("lightgcn"))
    got = rec.recommend_for_items(["3", "9"], k=5, exclude_seen=False)
    user = (rec.item_emb[3] + rec.item_emb[9]) / 2
    np.testing.assert_allclose(
        got.scores, rec.item_emb[[int(i) for i in got.item_ids]] @ user, rtol=1e-5
    )
    with pytest.raises(ServeError, match="at least one item"):
        rec.recommend_for_items([])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_an_approximate_index_serves_the_same_small_catalogue(make_run, tiny_data, kind):
    run = make_run("lightgcn")
    exact = Recommender.load(run).recommend(tiny_data.user_ids.tolist(), k=10)
    approx = Recommender.load(run, index=kind, index_options={"nprobe": 64}).recommend(
        tiny_data.user_ids.tolist(), k=10
    )
    overlap = np.mean(
        [len(set(a.item_ids) & set(b.item_ids)) / 10 for a, b in zip(exact, approx, strict=True)]
    )
    assert overlap > 0.95
    assert all(not _seen(tiny_data, u) & set(r.item_ids) for u, r in enumerate(approx))


def test_queries_search_concurrently(make_run, monkeypatch):
    # Regression: one lock serialised every query, so in the HTTP threadpool a small request
    # waited for a large one's search to finish. Queries now share a read lock.
    rec = Recommender.load(make_run("lightgcn"))
    both = threading.Barrier(2, timeout=5)
    real = rec.index.search

    def search(*args, **kwargs):
        both.wait()  # breaks (BrokenBarrierError) unless the two searches overlap
        return real(*args, **kwargs)

    monkeypatch.setattr(rec.index, "search", search)
    with ThreadPoolExecutor(2) as pool:
        answers = [pool.submit(rec.recommend, [u], 5) for u in ("3", "5")]
        results = [a.result(timeout=20) for a in answers]
    assert [r[0].query for r in results] == ["3", "5"]


def test_add_items_waits_for_running_queries_and_holds_new_ones():
    # The read/write lock behind the concurrent queries: a writer (add_items) never overlaps a
    # reader (a query), and a waiting writer goes before readers that arrive after it.
    lock, events = _ReadWriteLock(), []
    reading = threading.Event()

    def reader(name, hold=0.0):
        with lock.read():
            events.append(f"{name} in")
            reading.set()
            time.sleep(hold)
            events.append(f"{name} out")

    def writer():
        with lock.write():
            events.append("writer in")
            time.sleep(0.05)
            events.append("writer out")

    first = threading.Thread(target=reader, args=("r1", 0.3))
    first.start()
    assert reading.wait(5)
    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.1)  # the writer is waiting now
    late = threading.Thread(target=reader, args=("r2",))
    late.start()
    for t in (first, w, late):
        t.join(5)
    assert events == ["r1 in", "r1 out", "writer in", "writer out", "r2 in", "r2 out"]


# ---------------------------------------------------------------- results.json


def _edit_results(run, **fields):
    text = (run / "results.json").read_text()
    results = json.loads(text)
    results.update(fields)
    (run / "results.json").write_text(json.dumps(results))  # writes NaN as NaN, as train_run


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dataset": 5}, "dataset"),
        ({"dataset": float("nan")}, "dataset"),
        ({"data_fingerprint": ["x"]}, "data_fingerprint"),
        ({"cranerec_version": float("inf")}, "cranerec_version"),
        ({"dataset": None}, "dataset"),
    ],
)
def test_results_files_are_checked_when_loading(make_run, tmp_path, fields, message):
    # Regression: a non-string field or a NaN in results.json loaded fine and made every
    # GET /v1/info a 500 (the answer could not be validated or written as JSON).
    run = _copy(make_run("lightgcn"), tmp_path)
    _edit_results(run, **fields)
    with pytest.raises(ServeError, match=rf"results\.json: .*{message}"):
        Recommender.load(run)


def test_results_values_the_service_does_not_read_may_be_nan(make_run, tmp_path):
    run = _copy(make_run("lightgcn"), tmp_path)
    _edit_results(run, epoch_seconds_mean=float("nan"), test={"recall@20": float("nan")})
    info = Recommender.load(run).info()
    assert info["dataset"] and json.dumps(info, allow_nan=False)


def test_cosines_of_a_vector_too_large_to_square_in_float32_are_right():
    # Regression: a new item's vector of norm ~1e31 (features of 1e30 through VBPR's projection)
    # had a float32 squared norm of inf, so its unit row was 0 and every cosine with it 0
    from cranerec.serve.recommender import _unit_rows

    x = np.array([[3e30, 4e30], [3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    unit = _unit_rows(x)
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    assert unit.dtype == np.float32
