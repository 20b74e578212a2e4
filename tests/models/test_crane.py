"""CRANE (work in progress, issue 4): the properties its design relies on."""

import numpy as np
import torch

from cranerec.config import from_dict
from cranerec.models.crane import CRANE, CRANEConfig
from cranerec.train.sampler import InteractionSampler


def _model(data, **settings):
    torch.manual_seed(0)
    return CRANE(data, from_dict(CRANEConfig, {"rca_rounds": 2, "knn_k": 5, **settings}))


def _batch(data):
    s = InteractionSampler(data.train)
    return next(s.epoch("triples", 64, np.random.default_rng(0), torch.device("cpu")))


def _rca_grad(model):
    return sum(p.grad.abs().sum() for p in model.rca.parameters() if p.grad is not None)


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


def test_item_graph_is_a_row_normalised_brute_force_top_k(tiny_data):
    model = _model(tiny_data).eval()
    idx, values = model.item_graph()
    with torch.no_grad():
        xs = []
        for m in model.modalities:
            x_items = model.project[m](getattr(model, f"feat_{m}"))
            xs.append(torch.cat([torch.sparse.mm(model.interactions, x_items), x_items]))
        rows = torch.arange(model.n_users, model.n_users + model.n_items)
        x_att = torch.nn.functional.normalize(torch.cat(model.rca(xs, rows), 1), dim=1)
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
