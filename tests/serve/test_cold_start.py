"""Cold-start items: content models represent an item from its features alone (the
``items_from_features`` hook), the service serves it at once, other models say they cannot."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cranerec.models import MODELS
from cranerec.models.crane import CRANE, CRANEConfig
from cranerec.serve import Recommender, ServeError


def _features(data, rows):
    return {m: data.features[m][rows] for m in data.modalities}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_a_content_path_or_says_it_has_none(name, tiny_data):
    """The contract a new model's cold-start hook must meet (docs/architecture.md)."""
    torch.manual_seed(0)
    cls = MODELS[name]
    model = cls(tiny_data, cls.Config()).eval()
    before = [t.clone() for t in model.export_embeddings()]
    feats = {m: torch.from_numpy(x) for m, x in _features(tiny_data, [0, 5, 9]).items()}
    if not cls.has_content_path():
        with pytest.raises(NotImplementedError, match="no content path"):
            model.items_from_features(feats, tiny_data)
        return
    vectors = model.items_from_features(feats, tiny_data)
    assert vectors.shape == (3, before[1].shape[1])  # the width of the exported items
    assert torch.isfinite(vectors).all() and vectors.abs().sum() > 0
    after = model.export_embeddings()
    for b, a in zip(before, after, strict=True):  # existing scores do not move
        torch.testing.assert_close(a, b)


def test_crane_configurations_without_features_in_their_scores_say_so(tiny_data):
    model = CRANE(tiny_data, CRANEConfig(item_graph=False)).eval()
    with pytest.raises(NotImplementedError, match="item_graph=false"):
        model.items_from_features(
            {m: torch.from_numpy(x) for m, x in _features(tiny_data, [0]).items()}, tiny_data
        )


def test_crane_new_items_are_served_at_once_and_old_answers_stay(make_run, tiny_data):
    rec = Recommender.load(make_run("crane"), dataset=tiny_data)
    users = tiny_data.user_ids.tolist()
    before = rec.recommend(users, k=10)
    rows = list(range(0, 120, 12))  # copies of 10 trained items, under new ids
    new_ids = [f"new-{r}" for r in rows]
    rec.add_items(_features(tiny_data, rows), new_ids)
    assert rec.n_items == 130 and rec.info()["n_cold_start_items"] == 10
    got = rec.recommend(users[:5], k=3, items=new_ids)
    assert all(len(r) == 3 and set(r.item_ids) <= set(new_ids) for r in got)
    # every old item keeps its score for every user
    old = rec.recommend(users, k=10, items=[str(i) for i in tiny_data.item_ids])
    for a, b in zip(before, old, strict=True):
        assert list(a.item_ids) == list(b.item_ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    # a copy of a trained item lands among that item's nearest items
    near = [
        str(tiny_data.item_ids[r]) in rec.similar_items(f"new-{r}", k=10).item_ids for r in rows
    ]
    assert np.mean(near) >= 0.7, near
    # the new items compete with the old ones for an unrestricted list
    assert any(set(r.item_ids) & set(new_ids) for r in rec.recommend(users, k=20))


def test_identical_new_items_get_identical_vectors(make_run, tiny_data):
    rec = Recommender.load(make_run("crane"), dataset=tiny_data)
    rec.add_items(_features(tiny_data, [4, 4, 7]), ["a", "b", "c"])
    np.testing.assert_allclose(rec.item_emb[-3], rec.item_emb[-2], rtol=1e-6)
    assert not np.allclose(rec.item_emb[-3], rec.item_emb[-1])


def test_vbpr_new_items_use_the_learned_projection(make_run, tiny_data):
    run = make_run("vbpr")
    rec = Recommender.load(run, dataset=tiny_data)
    feats = _features(tiny_data, [3, 8])
    rec.add_items(feats, ["x", "y"])
    state = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    f = np.concatenate([feats[m] for m in tiny_data.modalities], axis=1)
    visual = f @ state["project.weight"].numpy().T + state["project.bias"].numpy()
    expected = np.concatenate([np.zeros_like(visual), visual], axis=1)  # [0 ; E f + b]
    np.testing.assert_allclose(rec.item_emb[-2:], expected, rtol=1e-5, atol=1e-6)


def test_freedom_new_items_join_the_frozen_item_graph(make_run, tiny_data):
    run = make_run("freedom")
    rec = Recommender.load(run, dataset=tiny_data)
    rows = [2, 30]
    feats = _features(tiny_data, rows)
    rec.add_items(feats, ["p", "q"])
    # by hand: per modality the top-k cosine among trained items + the item itself (last),
    # each weighted w_m / k; h^(1) = S item_emb (the item's own h^(0) is 0)
    model, _ = rec._trained_model()
    k = model.config.knn_k
    weights = {"image": 0.1, "text": 0.9}
    item_emb = model.item_emb.detach().numpy()
    for j in range(len(rows)):
        h = np.zeros(item_emb.shape[1])
        for m in tiny_data.modalities:
            x = np.vstack([tiny_data.features[m], feats[m][j : j + 1]])
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
            sim = x @ x[-1]  # the new item itself is the last row
            top = np.argsort(-sim, kind="stable")[:k]
            h += weights[m] / k * item_emb[top[top < 120]].sum(axis=0)
        np.testing.assert_allclose(rec.item_emb[120 + j], h, rtol=1e-4, atol=1e-6)


def test_models_without_a_content_path_and_bad_features_are_refused(make_run, tiny_data):
    with pytest.raises(ServeError, match="'lightgcn' has no content path"):
        Recommender.load(make_run("lightgcn"), dataset=tiny_data).add_items(
            _features(tiny_data, [0]), ["n"]
        )
    rec = Recommender.load(make_run("crane"), dataset=tiny_data)
    good = _features(tiny_data, [0])
    cases = [
        ({"image": good["image"]}, ["n"], r"missing \['text'\]"),
        ({**good, "audio": good["image"]}, ["n"], r"unknown \['audio'\]"),
        ({**good, "text": good["text"][:, :5]}, ["n"], "shape"),
        ({**good, "text": np.full_like(good["text"], np.nan)}, ["n"], "non-finite"),
        (good, ["0"], "already in the catalogue"),
        (_features(tiny_data, [0, 1]), ["n", "n"], "duplicate"),
        (good, ["n", "m"], "shape"),
    ]
    for feats, ids, message in cases:
        with pytest.raises(ServeError, match=message):
            rec.add_items(feats, ids)
    assert rec.n_items == 120  # nothing was added by a refused call


def test_cold_start_needs_the_models_own_training_data(make_run):
    # config.yaml names the default synthetic data, not the tiny set the run was trained on
    with pytest.raises(ServeError, match="not the data"):
        Recommender.load(make_run("crane")).add_items({}, ["n"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d, o: (d / "model.pt").unlink(), "has no model.pt"),
        (lambda d, o: _truncate(d / "model.pt"), "model.pt: unreadable"),
        (lambda d, o: torch.save({"weights": torch.zeros(3)}, d / "model.pt"), "no state_dict"),
        (lambda d, o: torch.save({"x": Recommender}, d / "model.pt"), "model.pt: unreadable"),
        (lambda d, o: shutil.copy(o / "model.pt", d / "model.pt"), "holds model 'vbpr'"),
    ],
)
def test_damaged_model_files_are_named(make_run, tiny_data, tmp_path, damage, message):
    run = tmp_path / "run"
    shutil.copytree(make_run("crane"), run)
    damage(run, make_run("vbpr"))
    rec = Recommender.load(run, dataset=tiny_data)  # model.pt is read only when needed
    with pytest.raises(ServeError, match=message):
        rec.add_items(_features(tiny_data, [0]), ["n"])


def test_weights_of_another_run_are_refused(make_run, tiny_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(make_run("crane"), run)
    shutil.copy(make_run("crane", seed=2) / "model.pt", run / "model.pt")
    with pytest.raises(ServeError, match="does not reproduce"):
        Recommender.load(run, dataset=tiny_data).add_items(_features(tiny_data, [0]), ["n"])


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
