"""Cold-start items in the service: adding them (checks, a feature folder, concurrency) and
letting them surface in all-items rankings (``cold_slots``)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cranerec.features.provenance import write_features
from cranerec.serve import ItemExistsError, Recommender, RequestError, ServeError


def _features(data, rows):
    return {m: data.features[m][rows] for m in data.modalities}


@pytest.fixture
def vbpr(make_run, tiny_data):
    return Recommender.load(make_run("vbpr"), dataset=tiny_data)


def _write_folder(folder, data, rows, ids, sidecar=None):
    for m in data.modalities:
        write_features(folder, m, data.features[m][rows], np.array(ids), sidecar or {})
    return folder


# ---------------------------------------------------------------- add_items: what is refused


@pytest.mark.parametrize(
    ("features", "ids", "error", "message"),
    [
        ("good", ["n", "n"], RequestError, "duplicate"),
        ("good", ["0"], ItemExistsError, r"already in the catalogue: '0'"),
        ({"image": "x"}, ["n"], RequestError, r"missing \['text'\]"),
        ("ragged", ["n"], RequestError, "not a numeric"),
        ("huge", ["n"], RequestError, "beyond float32"),
        ("large", ["n"], RequestError, "overflow|no usable vector"),
        ("zeros", ["n"], RequestError, None),  # refused or served: never a non-finite vector
    ],
)
def test_refusals_say_what_to_change_and_add_nothing(
    vbpr, tiny_data, features, ids, error, message
):
    good = _features(tiny_data, [0] * len(ids))
    if features == "good":
        features = good
    elif features == "ragged":
        features = {**good, "text": [[0.1] * 32, [0.1] * 31][: len(ids)] + [[0.1]]}
    elif features == "huge":
        features = {**good, "text": np.full((1, 32), 1e39)}  # finite in float64, not float32
    elif features == "large":  # float32, but the vector's scores would overflow
        features = {m: np.full_like(x, 3e38) for m, x in good.items()}
    elif features == "zeros":
        features = {m: np.zeros_like(x) for m, x in good.items()}
    if message is None:
        try:
            vbpr.add_items(features, ids)
        except RequestError:
            assert vbpr.n_items == 120
        else:
            assert np.isfinite(vbpr.item_emb).all() and vbpr.n_items == 121
        return
    with pytest.raises(error, match=message):
        vbpr.add_items(features, ids)
    assert vbpr.n_items == 120 and vbpr.info()["n_cold_start_items"] == 0


def test_ids_added_before_are_refused_too(vbpr, tiny_data):
    vbpr.add_items(_features(tiny_data, [3]), ["new"])
    with pytest.raises(ItemExistsError) as e:
        vbpr.add_items(_features(tiny_data, [4, 5]), ["other", "new"])
    assert e.value.ids == ["new"] and vbpr.n_items == 121


def test_models_without_content_say_so_as_a_request_error(make_run, tiny_data):
    rec = Recommender.load(make_run("lightgcn"), dataset=tiny_data)
    with pytest.raises(RequestError, match="'lightgcn' has no content path"):
        rec.add_items(_features(tiny_data, [0]), ["n"])
    with pytest.raises(ServeError, match="no content path"):
        rec.check_cold_start()


def test_many_items_are_computed_in_chunks_with_the_same_vectors(vbpr, tiny_data, monkeypatch):
    import cranerec.serve.cold_start as module

    rows = list(range(0, 120, 3))
    vbpr.add_items(_features(tiny_data, rows), [f"a{r}" for r in rows])
    monkeypatch.setattr(module, "_ADD_CHUNK", 7)
    vbpr.add_items(_features(tiny_data, rows), [f"b{r}" for r in rows])
    np.testing.assert_allclose(vbpr.item_emb[-40:], vbpr.item_emb[-80:-40], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- concurrency


def test_adding_items_does_not_hold_up_queries(vbpr, tiny_data, monkeypatch):
    # The model's content path runs outside the write lock: a slow one (a kNN over a large
    # catalogue) must not stop queries; only the append holds them back.
    vbpr.check_cold_start()  # builds the model
    model, _ = vbpr._trained_model()
    entered, release = threading.Event(), threading.Event()
    real = model.items_from_features

    def slow(*args, **kwargs):
        entered.set()
        release.wait(timeout=10)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "items_from_features", slow)
    with ThreadPoolExecutor(1) as pool:
        adding = pool.submit(vbpr.add_items, _features(tiny_data, [1]), ["slow"])
        assert entered.wait(timeout=10)
        t0 = time.perf_counter()
        answered = vbpr.recommend("3", k=5)  # would wait for the add under one lock
        waited = time.perf_counter() - t0
        still_adding = not adding.done()
        release.set()
        adding.result(timeout=10)
    assert len(answered) == 5 and still_adding and waited < 5
    assert vbpr.n_items == 121


def test_two_adds_of_one_id_cannot_both_succeed(vbpr, tiny_data, monkeypatch):
    vbpr.check_cold_start()
    model, _ = vbpr._trained_model()
    real = model.items_from_features

    def slow(*args, **kwargs):  # every add passes the first id check before one is done
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "items_from_features", slow)
    start = threading.Barrier(4, timeout=10)

    def add(j):
        start.wait()
        try:
            vbpr.add_items(_features(tiny_data, [j]), ["same"])
            return "added"
        except ItemExistsError:
            return "refused"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(add, range(4)))
    assert outcomes == ["added", "refused", "refused", "refused"]
    assert vbpr.n_items == 121 and list(vbpr.item_ids).count("same") == 1


# ---------------------------------------------------------------- a folder of new items


def test_a_feature_folder_is_added_like_add_items(vbpr, make_run, tiny_data, tmp_path):
    rows = [5, 17, 42]
    ids = ["f1", "f2", "f3"]
    folder = _write_folder(tmp_path / "new", tiny_data, rows, ids)
    assert vbpr.add_items_from_dir(folder) == ids
    by_hand = Recommender.load(make_run("vbpr"), dataset=tiny_data)
    by_hand.add_items(_features(tiny_data, rows), ids)
    np.testing.assert_array_equal(vbpr.item_emb, by_hand.item_emb)
    assert vbpr.info()["n_cold_start_items"] == 3
    assert set(vbpr.recommend("3", k=3, items=ids).item_ids) == set(ids)


def _folder_case(name, folder, data):
    """Damage a good folder of two new items as ``name`` says."""
    if name == "no folder":
        return folder / "absent"
    if name == "no ids":
        (folder / "item_ids.txt").unlink()
    elif name == "missing modality":
        (folder / "text_feat.npy").unlink()
    elif name == "rows":
        np.save(folder / "text_feat.npy", data.features["text"][:3])
    elif name == "width":
        np.save(folder / "image_feat.npy", data.features["image"][:2, :10])
    elif name == "nan":
        x = data.features["text"][:2].copy()
        x[1, 3] = np.nan
        np.save(folder / "text_feat.npy", x)
    elif name == "duplicate ids":
        (folder / "item_ids.txt").write_text("a\na\n")
    elif name == "in the catalogue":
        (folder / "item_ids.txt").write_text("a\n7\n")
    elif name == "pickle":
        np.save(folder / "text_feat.npy", np.array([{"x": 1}, {"y": 2}], dtype=object))
    elif name == "another encoder":
        for m in data.modalities:  # the training data's sidecar names another model
            sidecar = {"model": {"sha256": "1" * 64}, "normalisation": "none"}
            (folder.parent / "train" / f"{m}_feat.json").write_text(json.dumps(sidecar))
    return folder


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no folder", "is not a directory"),
        ("no ids", "has no item_ids.txt"),
        ("missing modality", r"lacks text_feat\.npy"),
        ("rows", r"text_feat\.npy: 3 rows, but .*item_ids\.txt lists 2 ids"),
        ("width", r"image_feat\.npy: width 10, but the run's 'image' features have width 64"),
        ("nan", r"text_feat\.npy: NaN/inf values in 1 row"),
        ("duplicate ids", r"item_ids\.txt: duplicate ids: 'a'"),
        ("in the catalogue", r"item_ids\.txt: 1 id\(s\) already served .*'7'"),
        ("pickle", r"text_feat\.npy: not a readable \.npy"),
        ("another encoder", r"another encoder \(model sha256\)"),
    ],
)
def test_a_bad_feature_folder_is_refused_naming_the_file(
    make_run, tiny_data, tmp_path, case, message
):
    rec = Recommender.load(make_run("vbpr"), dataset=tiny_data)
    sidecar = {"model": {"sha256": "0" * 64}, "normalisation": "none"}
    folder = _write_folder(tmp_path / "new", tiny_data, [0, 1], ["a", "b"], sidecar)
    (tmp_path / "train").mkdir()
    # where the training features' sidecars are
    data = dataclasses.replace(rec.config.data, path=str(tmp_path / "train"))
    rec.config = dataclasses.replace(rec.config, data=data)
    with pytest.raises(ServeError, match=message):
        rec.add_items_from_dir(_folder_case(case, folder, tiny_data))
    assert rec.n_items == 120


def test_extra_modalities_in_a_folder_are_ignored(vbpr, tiny_data, tmp_path):
    folder = _write_folder(tmp_path / "new", tiny_data, [0, 1], ["a", "b"])
    np.save(folder / "audio_feat.npy", np.ones((2, 5), np.float32))
    assert vbpr.add_items_from_dir(folder) == ["a", "b"]


# ---------------------------------------------------------------- cold items in rankings


def _brute_force(rec, user, exclude=(), candidates=None):
    """Every item by (score desc, index asc), from numpy, ``exclude`` left out."""
    scores = rec.item_emb.astype(np.float64) @ rec.user_emb[rec._user_index[user]]
    order = np.lexsort((np.arange(len(scores)), -scores))
    keep = [i for i in order if i not in set(exclude)]
    if candidates is not None:
        keep = [i for i in keep if i in set(candidates)]
    return [str(rec.item_ids[i]) for i in keep], scores


@pytest.fixture
def freedom(make_run, tiny_data):
    rec = Recommender.load(make_run("freedom"), dataset=tiny_data)
    rows = list(range(0, 120, 4))  # 30 cold items
    rec.add_items(_features(tiny_data, rows), [f"c{r}" for r in rows])
    return rec


def test_cold_items_are_ranked_with_the_others_by_default(freedom, tiny_data):
    # cold items live in an index of their own; the merge must equal one ranking of all items
    cold = [f"c{r}" for r in range(0, 120, 4)]
    for user in ["0", "3", "77"]:
        expected, _ = _brute_force(freedom, user)
        got = freedom.recommend(user, k=150, exclude_seen=False)
        assert list(got.item_ids) == expected
        # exclusions and candidate lists that mix trained and cold items
        held = ["5", cold[0], cold[3]]
        only = ["1", "9", cold[1], cold[2], cold[5]]
        want, _ = _brute_force(freedom, user, [freedom._item_index[i] for i in held],
                               [freedom._item_index[i] for i in only])  # fmt: skip
        got = freedom.recommend(user, k=4, exclude_seen=False, items=only, user_items=held)
        assert list(got.item_ids) == want[:4]
    new_user = freedom.recommend_for_items([cold[0], "2"], k=150)
    assert cold[0] not in new_user.item_ids and set(cold[1:]) <= set(new_user.item_ids)


def _reserved_case(rec, users, k, slots, min_z):
    default = rec.recommend(users, k=k)
    got = rec.recommend(users, k=k, cold_slots=slots, cold_min_z=min_z)
    cold_only = rec.recommend(users, k=k, items=[str(i) for i in rec.item_ids[120:]])
    return default, got, cold_only


def test_cold_slots_reserve_places_for_the_best_cold_items(freedom):
    users = [str(u) for u in range(200)]
    default, got, cold_only = _reserved_case(freedom, users, 10, 3, None)
    n_default = sum(np.char.startswith(r.item_ids.astype(str), "c").sum() for r in default)
    assert n_default < 3 * len(users)  # the option has something to do
    for d, g, c in zip(default, got, cold_only, strict=True):
        is_cold = np.char.startswith(g.item_ids.astype(str), "c")
        assert len(g) == 10 and is_cold.sum() >= 3
        # the cold items are the user's best cold items; the others the default list's best
        n_cold = int(is_cold.sum())
        assert set(g.item_ids[is_cold]) == set(c.item_ids[:n_cold])
        warm_default = [i for i in d.item_ids if not i.startswith("c")]
        assert list(g.item_ids[~is_cold]) == warm_default[: 10 - n_cold]
        assert (np.diff(g.scores) <= 0).all()  # still ordered by score


def test_cold_slots_take_only_cold_items_over_the_bar(freedom):
    users = [str(u) for u in range(200)]
    default, got, _ = _reserved_case(freedom, users, 10, 2, 1.0)
    warm = freedom.item_emb[:120].astype(np.float64)
    mean, cov = warm.mean(axis=0), np.cov(warm.T, bias=True)
    reserved_any, barred_any = False, False
    for u, d, g in zip(users, default, got, strict=True):
        q = freedom.user_emb[freedom._user_index[u]].astype(np.float64)
        bar = q @ mean + 1.0 * np.sqrt(q @ cov @ q)
        reserved = [(i, s) for i, s in zip(g.item_ids, g.scores, strict=True)
                    if i.startswith("c") and i not in set(d.item_ids)]  # fmt: skip
        assert all(s >= bar - 1e-5 for _, s in reserved)
        reserved_any |= bool(reserved)
        n_cold = sum(i.startswith("c") for i in g.item_ids)
        barred_any |= n_cold < 2
    assert reserved_any and barred_any  # the bar admits some and refuses others


def test_cold_slots_change_nothing_without_cold_items_or_when_enough_made_it(make_run, freedom):
    plain = Recommender.load(make_run("lightgcn"))
    users = [str(u) for u in range(50)]
    for a, b in zip(plain.recommend(users, k=10), plain.recommend(users, k=10, cold_slots=5),
                    strict=True):  # fmt: skip
        assert list(a.item_ids) == list(b.item_ids)
    only_cold = [str(i) for i in freedom.item_ids[120:]]
    a = freedom.recommend("3", k=5, items=only_cold)
    b = freedom.recommend("3", k=5, items=only_cold, cold_slots=5, cold_min_z=None)
    assert list(a.item_ids) == list(b.item_ids)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cold_slots": -1}, "cold_slots must be"),
        ({"cold_slots": 1.5}, "cold_slots must be"),
        ({"cold_slots": True}, "cold_slots must be"),
        ({"cold_min_z": float("nan")}, "cold_min_z must be"),
        ({"cold_min_z": "1"}, "cold_min_z must be"),
    ],
)
def test_bad_cold_options_are_request_errors(freedom, options, message):
    with pytest.raises(RequestError, match=message):
        freedom.recommend("3", k=5, **options)
    with pytest.raises(RequestError, match=message):
        freedom.recommend_for_items(["3"], k=5, **options)


def test_a_new_user_gets_reserved_cold_slots_too(freedom):
    got = freedom.recommend_for_items(["1", "2"], k=10, cold_slots=4, cold_min_z=None)
    assert sum(i.startswith("c") for i in got.item_ids) >= 4
