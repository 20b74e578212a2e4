"""CRANE: the properties its design relies on, equation by equation."""

import numpy as np
import pytest
import torch

from cranerec.config import ConfigError, from_dict
from cranerec.models.crane import CRANE, CRANEConfig
from cranerec.train.sampler import InteractionSampler

#: The paper's model (W^(l), h_u a sum as Eq. 16, Xavier, exact RCA, beta 0.1): what these
#: tests check equation by equation; the defaults differ (the sports_text preset's model).
PAPER = {"gcn_weights": True, "semantic_user": "sum", "init": "xavier", "rca_width": 64,
         "rca_keys": 0, "cl_weight": 0.1}  # fmt: skip


def _model(data, **settings):
    torch.manual_seed(0)
    return CRANE(data, from_dict(CRANEConfig, {"rca_rounds": 2, "knn_k": 5, **PAPER, **settings}))


def _batch(data):
    s = InteractionSampler(data.train)
    return next(s.epoch("triples", 64, np.random.default_rng(0), torch.device("cpu")))


def _rca_grad(model):
    return sum(p.grad.abs().sum() for p in model.fusion.rca.parameters() if p.grad is not None)


def test_epoch_cadence_gives_rca_gradient_only_on_the_rebuild_step(tiny_data):
    model = _model(tiny_data)
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    model.loss(_batch(tiny_data))[0].backward()
    assert _rca_grad(model) > 0
    model.zero_grad()
    model.loss(_batch(tiny_data))[0].backward()
    assert _rca_grad(model) == 0
    model.zero_grad()
    model.pre_epoch(1, np.random.default_rng(1))
    model.loss(_batch(tiny_data))[0].backward()
    assert _rca_grad(model) > 0


def test_step_cadence_gives_rca_gradient_at_every_step(tiny_data):
    model = _model(tiny_data, graph_cadence="step")
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    for _ in range(2):
        model.zero_grad()
        model.loss(_batch(tiny_data))[0].backward()
        assert _rca_grad(model) > 0


def _train_two_epochs(data, cadence):
    """(item graph of the initial weights, the model after 2 x 2 Adam steps, RCA gradients)."""
    model = _model(data, graph_cadence=cadence)
    first = model.eval().item_graph()
    opt, grads = torch.optim.Adam(model.parameters(), lr=0.05), []
    model.train()
    for epoch in range(2):
        model.pre_epoch(epoch, np.random.default_rng(epoch))
        for _ in range(2):
            opt.zero_grad()
            model.loss(_batch(data))[0].backward()
            grads.append(float(_rca_grad(model)))
            opt.step()
    return first, model, grads


def test_once_cadence_freezes_the_initial_item_graph_and_never_trains_rca(tiny_data):
    first, model, grads = _train_two_epochs(tiny_data, "once")
    assert grads == [0.0] * 4
    assert torch.equal(model.graph_idx, first[0])
    torch.testing.assert_close(model.graph_values, first[1])
    first, model, grads = _train_two_epochs(tiny_data, "epoch")  # what "once" turns off
    assert grads[0] > 0 and not torch.equal(model.graph_idx, first[0])


@pytest.mark.parametrize("project_first", [False, True])
def test_item_graph_is_a_row_normalised_brute_force_top_k(tiny_data, project_first):
    model = _model(tiny_data, project_before_profile=project_first).eval()
    idx, values = model.item_graph()
    dense = torch.from_numpy(tiny_data.train.toarray())
    with torch.no_grad():
        xs = []
        for m in model.modalities:
            raw, proj = model.features[m], model.project[m]
            x_items = proj(raw)
            profiles = dense @ x_items if project_first else proj(dense @ raw)
            xs.append(torch.cat([profiles, x_items]))
        rows = torch.arange(model.n_users, model.n_users + model.n_items)
        x_att = torch.nn.functional.normalize(torch.cat(model.fusion.rca(xs, rows), 1), dim=1)
        sim = (x_att @ x_att.T).numpy()
    np.fill_diagonal(sim, -np.inf)
    for i in range(model.n_items):
        want = np.argsort(-sim[i], kind="stable")[:5]
        assert sorted(idx[i].tolist()) == sorted(want.tolist())
        kept = np.clip(sim[i, idx[i].numpy()], 0, None)
        np.testing.assert_allclose(
            values[i].detach().numpy(), kept / kept.sum(), rtol=1e-4, atol=1e-6
        )


def test_user_semantic_profile_is_the_sum_of_its_items(tiny_data):
    model = _model(tiny_data).eval()
    with torch.no_grad():
        _, _, h_u, h_i = model._views()
    dense = torch.from_numpy(tiny_data.train.toarray())
    torch.testing.assert_close(h_u, dense @ h_i, rtol=1e-4, atol=1e-5)


def test_reloaded_model_scores_exactly_as_before(tiny_data):
    """The item graph travels with the weights: restoring a state restores its graph too."""
    model = _model(tiny_data)
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    model.loss(_batch(tiny_data))[0].backward()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before = model.export_embeddings()
    with torch.no_grad():  # change the weights and the graph, as later epochs would
        for p in model.parameters():
            p.add_(0.1)
    model.pre_epoch(1, np.random.default_rng(1))
    model.loss(_batch(tiny_data))
    model.load_state_dict(state)
    for a, b in zip(before, model.export_embeddings(), strict=True):
        torch.testing.assert_close(a, b)
    fresh = _model(tiny_data)
    fresh.load_state_dict(state)
    for a, b in zip(before, fresh.export_embeddings(), strict=True):
        torch.testing.assert_close(a, b)


def test_without_item_graph_h_is_zero_and_the_contrastive_term_vanishes(tiny_data):
    model = _model(tiny_data, item_graph=False)
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    _, parts = model.loss(_batch(tiny_data))
    assert parts["cl"] == 0
    user_emb, item_emb = model.export_embeddings()
    _, e_i = model.eval().collaborative()
    torch.testing.assert_close(item_emb, e_i.detach())


def test_cl_weight_zero_removes_exactly_the_contrastive_term(tiny_data):
    full, no_cl = _model(tiny_data), _model(tiny_data, cl_weight=0.0)
    for m in (full, no_cl):
        m.train()
        m.pre_epoch(0, np.random.default_rng(0))
    total_full, parts = full.loss(_batch(tiny_data))
    total_no_cl, _ = no_cl.loss(_batch(tiny_data))
    torch.testing.assert_close(total_full - total_no_cl, full.config.cl_weight * parts["cl"])


def test_single_modality_variant_ignores_the_other_modality(tiny_data):
    from dataclasses import replace

    noisy = replace(tiny_data, features={**tiny_data.features, "text": np.random.default_rng(5).normal(
        size=tiny_data.features["text"].shape).astype(np.float32)})  # fmt: skip
    a = _model(tiny_data, fusion="image").eval()
    b = _model(noisy, fusion="image").eval()
    b.load_state_dict(a.state_dict())
    for x, y in zip(a.export_embeddings(), b.export_embeddings(), strict=True):
        torch.testing.assert_close(x, y)


def test_average_fusion_is_the_mean_of_per_modality_cosine_similarities(tiny_data):
    model = _model(tiny_data, fusion="average").eval()
    with torch.no_grad():
        x = model.fused_item_features()
        x = torch.nn.functional.normalize(x, dim=1)
        sims = [
            torch.nn.functional.normalize(model.project[m](model.features[m]), dim=1)
            for m in model.modalities
        ]
        mean_sim = sum(s @ s.T for s in sims) / len(sims)
    torch.testing.assert_close(x @ x.T, mean_sim, rtol=1e-4, atol=1e-5)


def test_static_fusions_have_no_rca_and_unknown_fusion_is_refused(tiny_data):
    import pytest

    assert not hasattr(_model(tiny_data, fusion="concat").fusion, "rca")
    assert _model(tiny_data, fusion="sum").fused_item_features().shape[1] == 64
    with pytest.raises(ValueError, match="neither one of"):
        _model(tiny_data, fusion="audio")


def test_max_and_mean_profiles(tiny_data):
    x = torch.randn(tiny_data.n_items, 3)
    dense = tiny_data.train.toarray()
    mean_model, max_model = _model(tiny_data, profile="mean"), _model(tiny_data, profile="max")
    u = int(np.argmax(dense.sum(1)))
    items = np.nonzero(dense[u])[0]
    torch.testing.assert_close(mean_model.profiles(x, "image")[u], x[items].mean(0))
    torch.testing.assert_close(max_model.profiles(x, "image")[u], x[items].max(0).values)


def test_attention_profiles_start_as_the_mean_and_learn(tiny_data):
    model = _model(tiny_data, profile="attention", project_before_profile=True)
    mean_model = _model(tiny_data, profile="mean")
    x = torch.randn(tiny_data.n_items, 64)
    torch.testing.assert_close(
        model.profiles(x, "image"), mean_model.profiles(x, "image"), rtol=1e-5, atol=1e-6
    )
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    model.loss(_batch(tiny_data))[0].backward()
    assert model.profiles.query["image"].grad.abs().sum() > 0


def test_late_fusion_trains_branches_apart_and_sums_their_scores(tiny_data):
    model = _model(tiny_data, late_fusion=True)
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    batch = _batch(tiny_data)
    _, parts = model.loss(batch)
    assert "bpr_semantic" in parts and "cl" not in parts
    # the semantic loss gives no gradient to the collaborative tables and vice versa
    e_u, e_i, h_u, h_i = model._views()
    sem = (h_u[batch.user_idx] * h_i[batch.pos_idx]).sum()
    grads = torch.autograd.grad(sem, [model.user_emb, model.sem_item_emb], allow_unused=True)
    assert grads[0] is None and grads[1].abs().sum() > 0
    user_vec, item_vec = model.export_embeddings()
    model.eval()
    e_u, e_i, h_u, h_i = (t.detach() for t in model._views())
    torch.testing.assert_close(
        user_vec @ item_vec.T, e_u @ e_i.T + h_u @ h_i.T, rtol=1e-4, atol=1e-5
    )


def test_projection_order_only_matters_through_the_bias(tiny_data):
    """With summed profiles, projecting before or after aggregation differs only by the
    projection's bias counted once per item (linearity): zero the bias and both agree."""
    before = _model(tiny_data, project_before_profile=True).eval()
    after = _model(tiny_data, project_before_profile=False).eval()
    after.load_state_dict(before.state_dict())
    with torch.no_grad():
        for m in (before, after):
            for lin in m.project.values():
                lin.bias.zero_()
        torch.testing.assert_close(
            before.fused_item_features(), after.fused_item_features(), rtol=1e-4, atol=1e-5
        )
        for lin in before.project.values():
            lin.bias.fill_(0.5)
        for lin in after.project.values():
            lin.bias.fill_(0.5)
        assert not torch.allclose(before.fused_item_features(), after.fused_item_features())


def test_paper_presets_carry_table_3():
    from cranerec.train import build_config

    cfg = build_config(model="crane", preset="sports")
    m, t = cfg.model, cfg.train
    assert (m.rca_rounds, m.knn_k, m.reg_weight, m.temperature, m.cl_weight) == (
        2,
        15,
        1e-3,
        0.5,
        0.7,
    )
    assert (t.lr, t.batch_size, t.epochs, t.patience) == (5e-5, 1024, 250, 5)
    assert (m.gcn_weights, m.activation) == (True, "leaky_relu")  # Eq. 3-4 keep W^(l) and sigma
    assert build_config(model="crane", preset="baby", overrides=["model.knn_k=5"]).model.knn_k == 5


def test_semantic_user_mean_and_sqrt_rescale_the_sum_by_degree(tiny_data):
    deg = torch.from_numpy(np.diff(tiny_data.train.indptr).astype(np.float32))[:, None]
    views = {}
    for rule in ("sum", "mean", "sqrt"):
        model = _model(tiny_data, semantic_user=rule).eval()
        with torch.no_grad():
            views[rule] = model._views()
    h_sum, h_i = views["sum"][2], views["sum"][3]
    torch.testing.assert_close(views["mean"][3], h_i)
    torch.testing.assert_close(views["mean"][2], h_sum / deg.clamp(min=1))
    torch.testing.assert_close(views["sqrt"][2], h_sum / deg.clamp(min=1).sqrt())


def test_without_gcn_e_and_h_are_the_layer_zero_embeddings(tiny_data):
    """Our reading of w/o GCN: no propagation on either graph, so e = E^(0), h_i = e_i and
    h_u is the sum of the user's e_i (Eq. 16 still aggregates)."""
    model = _model(tiny_data, ui_layers=0, ii_layers=0).eval()
    with torch.no_grad():
        e_u, e_i, h_u, h_i = model._views()
    torch.testing.assert_close(e_u, model.user_emb.detach())
    torch.testing.assert_close(e_i, model.item_emb.detach())
    torch.testing.assert_close(h_i, e_i)
    dense = torch.from_numpy(tiny_data.train.toarray())
    torch.testing.assert_close(h_u, dense @ e_i, rtol=1e-4, atol=1e-5)


def test_a_node_left_without_edges_by_dropedge_keeps_its_layer_zero_embedding(tiny_data):
    model = _model(tiny_data, dropedge="paper", activation="relu")
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    adj = model.graph.adj_train.to_dense()
    isolated = torch.nonzero(adj[: model.n_users].abs().sum(1) == 0).flatten()
    assert len(isolated) > 0  # the literal rule leaves users without edges
    e = model.collaborative()[0].detach()  # [n_users, d]
    u = int(isolated[0])
    torch.testing.assert_close(e[u], model.user_emb[u].detach() / (model.config.ui_layers + 1))
    assert e[u].abs().sum() > 0
    model.eval()  # the full graph at inference
    assert model.graph.adj.to_dense()[u].abs().sum() > 0


def test_rca_rounds_change_only_the_refinement(tiny_data):
    """w/o RCA is R = 1: the same parameters and the same collaborative branch, another graph."""
    one, three = _model(tiny_data, rca_rounds=1).eval(), _model(tiny_data, rca_rounds=3).eval()
    three.load_state_dict(one.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(one.collaborative(), three.collaborative())
        assert not torch.allclose(one.fused_item_features(), three.fused_item_features())


def test_exclude_target_scores_the_positive_with_a_profile_that_leaves_it_out(tiny_data):
    from cranerec.nn.losses import bpr_loss

    model = _model(tiny_data, exclude_target=True, semantic_user="mean")
    model.train()
    model.pre_epoch(0, np.random.default_rng(0))
    batch = _batch(tiny_data)
    _, parts = model.loss(batch)
    with torch.no_grad():
        e_u, e_i, _, h_i = model._views()
        dense = torch.from_numpy(tiny_data.train.toarray())
        pos_terms, neg_terms = [], []
        for u, p, n in zip(batch.user_idx, batch.pos_idx, batch.neg_idx, strict=True):
            items = torch.nonzero(dense[u]).flatten()
            loo = h_i[items[items != p]].sum(0) / len(items)  # h_u without the target's term
            pos_terms.append((e_u[u] + loo) @ (e_i[p] + h_i[p]))
            neg_terms.append((e_u[u] + h_i[items].sum(0) / len(items)) @ (e_i[n] + h_i[n]))
        want = bpr_loss(torch.stack(pos_terms), torch.stack(neg_terms))
    torch.testing.assert_close(parts["bpr"], want, rtol=1e-4, atol=1e-5)


def test_weights_saved_before_the_variants_became_modules_still_load(tiny_data):
    # checkpoints and model.pt files of earlier versions name the RCA weights rca.* and the
    # profile queries profile_query.*: resuming or serving such a run must load them
    trained = _model(tiny_data, profile="attention", project_before_profile=True)
    with torch.no_grad():
        trained.profiles.query["image"].fill_(0.5)
    old = {
        k.replace("fusion.rca.", "rca.").replace("profiles.query.", "profile_query."): v
        for k, v in trained.state_dict().items()
    }
    assert any(k.startswith("rca.") for k in old) and "profile_query.image" in old
    fresh = _model(tiny_data, profile="attention", project_before_profile=True)
    fresh.load_state_dict(old)
    for (name, a), b in zip(trained.state_dict().items(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_the_contrastive_term_waits_then_ramps_and_is_not_computed_at_zero(tiny_data):
    model = _model(tiny_data, cl_weight=0.4, cl_warmup_epochs=2, cl_ramp_epochs=2).train()
    weights = []
    for epoch in range(5):
        model.pre_epoch(epoch, np.random.default_rng(epoch))
        weights.append(model.contrastive_weight())
    assert weights == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.4])

    model.pre_epoch(0, np.random.default_rng(0))

    def never(*_):
        raise AssertionError("the contrastive term was computed at beta = 0")

    model._contrast = never
    total, parts = model.loss(_batch(tiny_data))
    assert parts["cl"] == 0
    torch.testing.assert_close(total, parts["bpr"] + model.config.reg_weight * parts["reg"])


@pytest.mark.parametrize("variant", ["align", "centred"])
def test_contrastive_variants_against_a_naive_computation(variant):
    from cranerec.nn.losses import VIEW_CONTRASTS as CONTRASTS

    torch.manual_seed(0)
    a, b, tau = torch.randn(6, 4), torch.randn(6, 4), 0.3
    got = CONTRASTS[variant](a, b, temperature=tau)
    if variant == "align":
        expected = (
            sum(1 - torch.dot(x, y) / (x.norm() * y.norm()) for x, y in zip(a, b, strict=True)) / 6
        )
    else:
        a, b = a - a.mean(0), b - b.mean(0)
        cos = torch.tensor([[torch.dot(x, y) / (x.norm() * y.norm()) for y in b] for x in a])
        expected = sum(-torch.log_softmax(cos[i] / tau, 0)[i] for i in range(6)) / 6
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("cadence", "every", "builds"), [("epoch", 1, 1), ("every", 2, 3), ("step", 1, 5)]
)
def test_the_item_graph_is_rebuilt_at_its_cadence(tiny_data, cadence, every, builds, monkeypatch):
    model = _model(tiny_data, graph_cadence=cadence, graph_every=every).train()
    calls = []
    item_graph = model.item_graph
    monkeypatch.setattr(model, "item_graph", lambda: calls.append(1) or item_graph())
    model.pre_epoch(0, np.random.default_rng(0))
    for _ in range(5):  # five training steps
        model.loss(_batch(tiny_data))
    assert len(calls) == builds


def test_xavier_initialisation_of_the_projections_and_layer_weights(tiny_data):
    xavier, default = _model(tiny_data), _model(tiny_data, init="torch")
    for layer in [*xavier.gcn, *xavier.project.values()]:
        bound = (6 / sum(layer.weight.shape)) ** 0.5
        assert layer.weight.abs().max() <= bound
        assert layer.bias is None or not layer.bias.any()
    assert any(layer.bias.any() for layer in default.project.values())  # PyTorch's default


def test_orthogonal_init_starts_the_item_graph_from_the_features_own_neighbours(tiny_data):
    # init=orthogonal: a square orthogonal projection keeps every cosine, so the first item graph
    # of one modality is the raw features' kNN graph; Xavier's random map changes it
    from cranerec.graph import knn_graph

    text = tiny_data.features["text"]
    raw_idx, _ = knn_graph(torch.nn.functional.normalize(torch.from_numpy(text), dim=1), 5)
    graphs = {}
    for init in ("orthogonal", "xavier"):
        model = _model(tiny_data, init=init, fusion="text", rca_width=text.shape[1]).eval()
        with torch.no_grad():
            graphs[init] = model.item_graph()[0]
    assert torch.equal(graphs["orthogonal"], raw_idx)
    assert not torch.equal(graphs["xavier"], raw_idx)


def test_orthogonal_init_makes_each_rca_round_pass_its_input_on(tiny_data):
    model = _model(tiny_data, init="orthogonal")
    for layer in model.project.values():  # orthonormal rows or columns, whichever are fewer
        w = layer.weight if layer.out_features <= layer.in_features else layer.weight.T
        torch.testing.assert_close(w @ w.T, torch.eye(len(w)))
    for params in model.fusion.rca.params:  # W_f^m = I (Eq. 12)
        for skip in params.skip:
            torch.testing.assert_close(skip.weight, torch.eye(skip.in_features))


def test_approximate_rca_estimates_the_exact_refinement(tiny_data):
    # rca_keys=S: each attention sums S sampled keys instead of all users + items; with S at
    # least their number it is the exact model, with fewer an estimate near it
    exact = _model(tiny_data).eval()
    every = _model(tiny_data, rca_keys=tiny_data.n_users + tiny_data.n_items).eval()
    half = _model(tiny_data, rca_keys=(tiny_data.n_users + tiny_data.n_items) // 2).eval()
    with torch.no_grad():
        x = exact.fused_item_features()
        torch.testing.assert_close(every.fused_item_features(), x)
        error = (half.fused_item_features() - x).norm() / x.norm()
    assert 0 < error < 0.5, error
    with pytest.raises(ConfigError, match="rca_keys must be >= 0"):
        from_dict(CRANEConfig, {"rca_keys": -1})


@pytest.mark.parametrize("profile", ["sum", "mean"])
def test_linear_profiles_are_projected_without_the_raw_profile(tiny_data, profile):
    """Eq. 5 then the projection, project(P X), is computed as P (project(X) - b) + b: the same
    values and gradients as the literal order (which builds an [n_users, width_m] raw profile)."""
    model = _model(tiny_data, profile=profile).double()
    for m in model.modalities:
        lin = model.project[m]
        literal = lin(model.profiles(model.features[m], m))
        (literal * literal).sum().backward()
        want = [lin.weight.grad.clone(), lin.bias.grad.clone()]
        lin.weight.grad = lin.bias.grad = None
        fast = model._profile(lin(model.features[m])[: model.n_items], m)
        (fast * fast).sum().backward()
        torch.testing.assert_close(fast, literal)
        torch.testing.assert_close([lin.weight.grad, lin.bias.grad], want)


def test_defaults_train_the_sports_text_model_and_table_3_presets_the_papers():
    from cranerec.train import build_config

    default = build_config(model="crane")
    assert default.model == build_config(model="crane", preset="sports_text").model
    for name in ("baby", "sports", "clothing", "electronics"):
        paper = build_config(model="crane", preset=name).model
        assert (paper.gcn_weights, paper.semantic_user, paper.init) == (True, "sum", "xavier")
        assert (paper.rca_keys, paper.rca_width, paper.activation) == (0, 64, "leaky_relu")
