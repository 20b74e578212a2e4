"""Cold-start items: content models represent an item from its features alone (the
``items_from_features`` hook), the service serves it at once, other models say they cannot."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from cranerec.graph import knn_graph
from cranerec.models import MODELS
from cranerec.models.crane import CRANE, CRANEConfig
from cranerec.models.frozen_graph import modality_weights
from cranerec.serve import Recommender, ServeError

#: The models with a content path; adding cold-start items to a model adds its name here.
CONTENT_MODELS = [
    "bm3", "camgr", "crane", "crane_official", "dragon", "dualgnn", "freedom", "grcn", "lattice",
    "lgmrec", "mgcn", "mmgcn", "slmrec", "vbpr",
]  # fmt: skip


def _features(data, rows):
    return {m: data.features[m][rows] for m in data.modalities}


def _tensors(data, rows):
    return {m: torch.from_numpy(x) for m, x in _features(data, rows).items()}


def _served_with_new_items(make_run, data, name, rows):
    """A trained run of ``name`` served with the items at ``rows`` added again as new ones
    (ids ``new0``, ``new1``...): (recommender, those items' features)."""
    rec = Recommender.load(make_run(name), dataset=data)
    feats = _features(data, rows)
    rec.add_items(feats, [f"new{j}" for j in range(len(rows))])
    return rec, feats


def test_the_models_with_a_content_path_and_info_says_which(make_run, tiny_data):
    assert sorted(n for n, cls in MODELS.items() if cls.has_content_path()) == CONTENT_MODELS
    assert not any(MODELS[n].has_content_path() for n in ("lightgcn", "bpr", "pop"))
    for name in ("freedom", "lightgcn"):  # GET /v1/info returns info()
        info = Recommender.load(make_run(name), dataset=tiny_data).info()
        assert info["cold_start"] is MODELS[name].has_content_path()


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
    # new items never see each other: one at a time gives the same vectors
    alone = [model.items_from_features({m: x[j : j + 1] for m, x in feats.items()}, tiny_data)
             for j in range(3)]  # fmt: skip
    torch.testing.assert_close(torch.cat(alone), vectors, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CONTENT_MODELS)
def test_new_items_are_served_at_once_and_old_scores_stay(name, make_run, tiny_data):
    rec = Recommender.load(make_run(name), dataset=tiny_data)
    users = tiny_data.user_ids.tolist()
    old_items = [str(i) for i in tiny_data.item_ids]
    before = rec.recommend(users, k=120, exclude_seen=False)  # every score of every user
    width = rec.item_emb.shape[1]
    new_ids = ["a", "b", "c", "d"]
    rec.add_items(_features(tiny_data, [4, 4, 7, 90]), new_ids)
    assert rec.n_items == 124 and rec.item_emb.shape[1] == width
    assert rec.info()["n_cold_start_items"] == 4
    np.testing.assert_allclose(rec.item_emb[-4], rec.item_emb[-3], rtol=1e-6)  # same features
    assert not np.allclose(rec.item_emb[-4], rec.item_emb[-2])
    after = rec.recommend(users, k=120, exclude_seen=False, items=old_items)
    for b, a in zip(before, after, strict=True):  # no existing score moved
        assert list(a.item_ids) == list(b.item_ids)
        np.testing.assert_array_equal(a.scores, b.scores)
    got = rec.recommend(users[:5], k=3, items=new_ids)  # recommendable at once
    assert all(len(r) == 3 and set(r.item_ids) <= set(new_ids) for r in got)
    assert len(rec.similar_items("c", k=5)) == 5
    assert len(rec.recommend_for_items(["c", "d"], k=5)) == 5


def _freedom_family_copy(model, data, rows):
    """FREEDOM, crane_official: a copy's list is its original's with the last neighbour
    replaced by the copy itself, so h_copy = h_i - sum_m (w_m / k) (x_last_m - x_copy)."""
    x, h = model.item_graph_input(), model.semantic_items()
    k = model.config.knn_k
    x_copy = x[rows] if model.name == "crane_official" else 0.0  # FREEDOM: no ID row
    weights = modality_weights(len(model.modalities), model.config.mm_image_weight)
    expected = h[rows]
    for m, w in zip(model.modalities, weights, strict=True):
        idx, _ = knn_graph(torch.from_numpy(data.features[m]), k, exclude_self=False)
        assert idx[rows, 0].tolist() == rows  # each item heads its own list
        expected = expected - w / k * (x[idx[rows, -1]] - x_copy)
    return expected


def _vbpr_copy(model, data, rows):
    """VBPR: the item's vector with a zero ID half."""
    expected = model.export_embeddings()[1][rows]
    expected[:, : model.config.embedding_dim] = 0
    return expected


def _isolated_zero_id(model, data, rows):
    """MMGCN: what the model computes for a trained item without interactions and ID 0."""
    train = data.train.tolil()
    train[:, rows] = 0
    isolated = dataclasses.replace(data, train=train.tocsr())
    twin = type(model)(isolated, model.config).eval()
    twin.load_state_dict(model.state_dict())
    twin.id_emb[[isolated.n_users + r for r in rows]] = 0
    return twin.export_embeddings()[1][rows]


#: model -> the exact relation its docstring states between a trained item passed in as new
#: (its own features) and what the trained model computes for that item.
COPY_RELATIONS = {
    "crane_official": _freedom_family_copy,
    "freedom": _freedom_family_copy,
    "grcn": _isolated_zero_id,
    "mmgcn": _isolated_zero_id,
    "vbpr": _vbpr_copy,
}


@pytest.mark.parametrize("name", sorted(COPY_RELATIONS))
def test_a_trained_item_passed_in_as_new_gets_what_the_docstring_says(name, tiny_data):
    torch.manual_seed(0)
    cls = MODELS[name]
    model = cls(tiny_data, cls.Config()).eval()  # untrained: fine-tuned features = as loaded
    rows = [0, 5, 9, 33, 77]
    with torch.no_grad():
        got = model.items_from_features(_tensors(tiny_data, rows), tiny_data)
        expected = COPY_RELATIONS[name](model, tiny_data, rows)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


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
    rows = [2, 30]
    rec, feats = _served_with_new_items(make_run, tiny_data, "freedom", rows)
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


def _top_k_cosines(x, queries, k):
    """[len(queries), len(x)]: each query's cosines to the rows of x, all but its top k zeroed
    (dense numpy, ties by the lower index)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = queries / np.linalg.norm(queries, axis=1, keepdims=True) @ xn.T
    kept = np.zeros_like(sim)
    for i, row in enumerate(sim):
        top = np.argsort(-row, kind="stable")[:k]
        kept[i, top] = row[top]
    return kept


def _joined_row(trained, new, k):
    """A new item's kept cosines over the trained rows and itself (last): [n + 1]."""
    return _top_k_cosines(np.vstack([trained, new[None]]), new[None], k)[0]


def test_lattice_new_items_join_the_item_graph(make_run, tiny_data):
    rows = [2, 30]
    rec, feats = _served_with_new_items(make_run, tiny_data, "lattice", rows)
    # by hand: per kNN part the new row over the trained items and itself, normalised by
    # 1/sqrt(its own sum x the trained row's sum); h = S[new] [I ; 0], vector h / ||h||
    model, _ = rec._trained_model()
    k, lam, n = model.config.knn_k, model.config.lambda_coeff, tiny_data.n_items
    with torch.no_grad():
        w = model.modality_weights().numpy().astype(np.float64)
        tuned = {m: model.project[m](model.feature(m)).numpy() for m in model.modalities}
        proj = {m: model.project[m](torch.from_numpy(feats[m])).numpy() for m in model.modalities}
    item_emb = model.item_emb.detach().numpy()

    def normalised_row(trained, new, weights, j):  # one item's row of N(sum_m w_m A(x^m))
        deg = sum(
            wm * _top_k_cosines(x, x, k).sum(1) for x, wm in zip(trained, weights, strict=True)
        )
        row = sum(
            wm * _joined_row(x, q[j], k) for x, q, wm in zip(trained, new, weights, strict=True)
        )
        return row / np.sqrt(row.sum() * np.append(deg, row.sum()))

    mods = model.modalities
    for j in range(len(rows)):
        s = (1 - lam) * normalised_row([tuned[m] for m in mods], [proj[m] for m in mods], w, j)
        for m, wm in zip(mods, w, strict=True):
            s = s + lam * wm * normalised_row([tiny_data.features[m]], [feats[m]], [1.0], j)
        h = s[:n] @ item_emb  # the item's own slot carries its h^(0) = 0
        np.testing.assert_allclose(rec.item_emb[n + j], h / np.linalg.norm(h), rtol=1e-4, atol=1e-6)


def test_bm3_new_items_take_h_from_the_modality_predictions(make_run, tiny_data):
    run = make_run("bm3")
    rec = Recommender.load(run, dataset=tiny_data)
    feats = _features(tiny_data, [3, 8])
    rec.add_items(feats, ["x", "y"])
    state = torch.load(run / "model.pt", weights_only=True)["state_dict"]

    def linear(x, name):
        return x @ state[f"{name}.weight"].numpy().T + state[f"{name}.bias"].numpy()

    def unit(a):
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    direction = sum(
        unit(linear(linear(feats[m], f"project.{m}"), "predictor")) for m in tiny_data.modalities
    )
    model, _ = rec._trained_model()
    length = model.encode()[1].norm(dim=1).mean().item()  # the trained items' mean ||h_i||
    expected = linear(length * unit(direction), "predictor")
    np.testing.assert_allclose(rec.item_emb[-2:], expected, rtol=1e-4, atol=1e-5)


def test_camgr_new_items_read_their_neighbours_and_the_trained_attention(make_run, tiny_data):
    rows = [2, 30]
    rec, feats = _served_with_new_items(make_run, tiny_data, "camgr", rows)
    # by hand: Htilde_m = the row-normalised kept cosines (the item itself last, its H'' 0)
    # times H''_m; a dense softmax over the trained entities' keys; gates at H_n = 0
    model, _ = rec._trained_model()
    k, n, d = model.config.knn_k, tiny_data.n_items, model.config.embedding_dim
    with torch.no_grad():
        views = model.modality_views()  # the trained users' and items' Htilde [N, d]
        new_views = {}
        for m in model.modalities:
            s = np.stack([_joined_row(tiny_data.features[m], x, k) for x in feats[m]])
            s = np.clip(s, 0, None) / np.clip(s, 0, None).sum(axis=1, keepdims=True)
            new_views[m] = torch.from_numpy(s[:, :n]).float() @ model.purified(m)
        common, distinct = [], []
        for p in model.sources:
            block = model.fusion[p]
            q = block.query(new_views[model.query_modality])
            keys, values = block.key(views[p]), block.value(views[p])
            a = torch.softmax(q @ keys.T / d**0.5, dim=1) @ values
            cr = block.common_out(a) + q
            dr = block.distinct_out(block.value(new_views[p]) - a) + q
            common.append(block.common_mlp(block.common_norm(cr)) + cr)
            distinct.append(block.distinct_mlp(block.distinct_norm(dr)) + dr)
        g_com = torch.sigmoid(model.gate_common.bias)
        g_dif = torch.sigmoid(model.gate_distinct.bias)
        expected = 0.5 * (
            torch.stack(common).mean(0) * g_com + torch.stack(distinct).mean(0) * g_dif
        )
    np.testing.assert_allclose(rec.item_emb[-2:], expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["lightgcn", "bpr", "pop"])
def test_models_without_a_content_path_are_refused(name, make_run, tiny_data):
    rec = Recommender.load(make_run(name), dataset=tiny_data)
    with pytest.raises(ServeError, match=f"'{name}' has no content path"):
        rec.add_items(_features(tiny_data, [0]), ["n"])
    assert rec.n_items == 120 and rec.info()["cold_start"] is False


def test_bad_features_are_refused(make_run, tiny_data):
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
