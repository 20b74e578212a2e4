"""crane_official reproduces the CRANE authors' published code: FREEDOM's graphs plus an
nn.MultiheadAttention with batch_first=False over (items, modalities, d), i.e. attention across
items within each modality, averaged, passed through the frozen item graph; BPR only."""

import freedom_oracle as oracle
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cranerec.config import from_dict
from cranerec.models.base import Batch
from cranerec.models.crane_official import CRANEOfficial, CRANEOfficialConfig
from cranerec.models.freedom import FREEDOM, FREEDOMConfig
from cranerec.models.frozen_graph import FrozenGraphModel
from cranerec.nn import RecursiveCrossModalAttention
from cranerec.train.config import resolve_config


def _model(data, **settings):
    torch.manual_seed(0)
    return CRANEOfficial(data, from_dict(CRANEOfficialConfig, settings))


def _batch():
    return Batch(
        user_idx=torch.tensor([0, 3, 17, 42, 199]),
        pos_idx=torch.tensor([5, 0, 119, 64, 2]),
        neg_idx=torch.tensor([9, 11, 3, 60, 100]),
    )


def _stacked(model):
    """The attention's input [n_items, K, d], computed from the model's weights by hand."""
    cols = []
    for m in model.modalities:
        p = F.linear(model.feature(m), model.project[m].weight, model.project[m].bias)
        cols.append(F.linear(p, model.attn_project[m].weight, model.attn_project[m].bias))
    return torch.stack(cols, dim=1)


def test_shares_freedoms_graphs(tiny_data):
    assert issubclass(CRANEOfficial, FrozenGraphModel)
    assert issubclass(FREEDOM, FrozenGraphModel)
    ours = _model(tiny_data).train()
    torch.manual_seed(0)
    freedom = FREEDOM(tiny_data, from_dict(FREEDOMConfig, {})).train()
    assert torch.equal(ours.adj_item.to_dense(), freedom.adj_item.to_dense())
    ours.pre_epoch(0, np.random.default_rng(5))
    freedom.pre_epoch(0, np.random.default_rng(5))
    assert torch.equal(ours.graph.adj_train.to_dense(), freedom.graph.adj_train.to_dense())
    graph = ours.adj_item.to_dense().clone()
    ours.pre_epoch(1, np.random.default_rng(6))
    assert torch.equal(ours.adj_item.to_dense(), graph)  # frozen across epochs


def test_output_matches_multihead_attention_called_directly(tiny_data):
    model = _model(tiny_data).eval()
    reference = nn.MultiheadAttention(64, num_heads=4)  # the published code's call, defaults
    reference.load_state_dict(model.attention.state_dict())
    reference.eval()
    with torch.no_grad():
        x = _stacked(model)
        out, _ = reference(x, x, x)  # batch_first=False, need_weights=True: as published
        fused = oracle._np(out.mean(dim=1))
    s = oracle.item_graph(list(tiny_data.features.values()), 10, [0.1, 0.9])
    coo = tiny_data.train.tocoo()
    full = oracle.ui_graph(model.n_users, model.n_items, coo.row, coo.col)
    user_out, item_out = oracle.lightgcn(full, model.user_emb, model.item_emb, 2)
    got_users, got_items = model.export_embeddings()
    np.testing.assert_allclose(got_users.numpy(), user_out, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_items.numpy(), item_out + s @ fused, rtol=1e-4, atol=1e-5)


def _naive_attention_across_items(model) -> np.ndarray:
    """What the published code's attention computes, written out in NumPy: for each modality k
    separately, 4-head scaled dot-product self-attention over the ITEMS (rows of T[:, k]),
    then the output projection. [n_items, K, d]."""
    att = model.attention
    w_in, b_in = oracle._np(att.in_proj_weight), oracle._np(att.in_proj_bias)
    w_out, b_out = oracle._np(att.out_proj.weight), oracle._np(att.out_proj.bias)
    x = oracle._np(_stacked(model)).astype(np.float64)
    n, k_mod, d = x.shape
    heads = att.num_heads
    dh = d // heads
    out = np.zeros_like(x)
    for k in range(k_mod):
        q, key, v = np.split(x[:, k] @ w_in.T + b_in, 3, axis=1)  # [N, d] each
        per_head = []
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            scores = q[:, cols] @ key[:, cols].T / np.sqrt(dh)  # [N, N]: item against item
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            per_head.append((scores / scores.sum(axis=1, keepdims=True)) @ v[:, cols])
        out[:, k] = np.concatenate(per_head, axis=1) @ w_out.T + b_out
    return out


def test_attention_is_per_modality_attention_over_items_by_hand(tiny_data):
    model = _model(tiny_data).eval()
    with torch.no_grad():
        nn.init.normal_(model.attention.in_proj_bias, std=0.1)  # nonzero biases are checked too
        nn.init.normal_(model.attention.out_proj.bias, std=0.1)
        got = model.attention_outputs().numpy()
    np.testing.assert_allclose(got, _naive_attention_across_items(model), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        got_f = model.item_graph_input().numpy()
    np.testing.assert_allclose(got_f, got.mean(axis=1), rtol=1e-6, atol=1e-7)


def test_attention_mixes_across_items(tiny_data):
    model = _model(tiny_data).eval()
    with torch.no_grad():
        before = model.attention_outputs().clone()  # [N, K, d]
        model.features[model.modalities[0]][0] += 3.0  # change item 0's first modality only
        after = model.attention_outputs()
    changed = (after[:, 0] - before[:, 0]).abs().amax(dim=1) > 1e-6  # [N]
    assert changed[1:].all()  # every other item's output in that modality moves


def test_modalities_never_attend_to_each_other_unlike_rca(tiny_data):
    model = _model(tiny_data).eval()
    first, second = model.modalities
    with torch.no_grad():
        before = model.attention_outputs().clone()
        model.features[second].mul_(-2.0).add_(1.0)  # change the whole second modality
        after = model.attention_outputs()
    torch.testing.assert_close(after[:, 0], before[:, 0], rtol=1e-6, atol=1e-7)
    assert not torch.allclose(after[:, 1], before[:, 1])

    # The paper's RCA (Eq. 7-9): keys of modality 1 come from all modalities, so its output moves.
    torch.manual_seed(0)
    rca = RecursiveCrossModalAttention(2, 8, rounds=1)
    x1, x2 = torch.randn(30, 8), torch.randn(30, 8)
    with torch.no_grad():
        out_a = rca([x1, x2])[0]
        out_b = rca([x1, -2 * x2 + 1])[0]
    assert not torch.allclose(out_a, out_b)


def test_loss_is_bpr_only_and_trains_the_attention(tiny_data):
    model = _model(tiny_data).train()
    model.pre_epoch(0, np.random.default_rng(0))
    batch = _batch()
    total, parts = model.loss(batch)
    assert set(parts) == {"bpr"}
    with torch.no_grad():
        user_out, item_out = model()
        u = oracle._np(user_out[batch.user_idx])
        items = oracle._np(item_out)
    expected = oracle.bpr(u, items[batch.pos_idx], items[batch.neg_idx])
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert model.attention.in_proj_weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in model.attn_project.parameters())


def test_presets_are_freedoms_point_and_ten_epochs_never_stop_early():
    ref = resolve_config({"model": {"name": "crane_official"}, "preset": "reference"})
    ten = resolve_config({"model": {"name": "crane_official"}, "preset": "reference_10ep"})
    m = ref.model
    assert (m.knn_k, m.mm_image_weight, m.dropout, m.n_mm_layers, m.n_ui_layers) == (
        10, 0.1, 0.8, 1, 2,
    )  # fmt: skip
    assert (m.num_heads, m.embedding_dim) == (4, 64)
    assert ten.model == ref.model
    assert ten.train.epochs == 10 and ten.train.patience >= ten.train.epochs
    assert {k: v for k, v in vars(ten.train).items() if k not in ("epochs", "patience")} == {
        k: v for k, v in vars(ref.train).items() if k not in ("epochs", "patience")
    }
    assert ref.train.epochs == 1000 and ref.train.patience == 20


def test_heads_must_divide_the_width():
    from cranerec.config import ConfigError

    with pytest.raises(ConfigError, match="num_heads"):
        from_dict(CRANEOfficialConfig, {"num_heads": 5})
