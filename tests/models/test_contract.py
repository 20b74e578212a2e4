"""Every registered model honours the contract the trainer, evaluator and server rely on."""

import numpy as np
import pytest
import torch

from cranerec.config import from_dict
from cranerec.models import MODELS, Batch
from cranerec.train.sampler import InteractionSampler


@pytest.fixture(params=sorted(MODELS))
def model(request, tiny_data):
    torch.manual_seed(0)
    cls = MODELS[request.param]
    return cls(tiny_data, from_dict(cls.Config, {}))


def test_forward_shapes_and_finite(model, tiny_data):
    user_emb, item_emb = model()
    assert user_emb.shape[0] == tiny_data.n_users and item_emb.shape[0] == tiny_data.n_items
    assert user_emb.shape[1] == item_emb.shape[1]
    assert torch.isfinite(user_emb).all() and torch.isfinite(item_emb).all()


def test_exported_embeddings_are_detached_and_score_by_inner_product(model):
    user_emb, item_emb = model.export_embeddings()
    assert not user_emb.requires_grad and not item_emb.requires_grad
    scores = user_emb @ item_emb.T
    assert scores.shape == (model.n_users, model.n_items)


def test_loss_is_finite_and_trains_every_parameter(model, tiny_data):
    if model.batch_kind == "none":
        pytest.skip(f"{model.name} is not trained")
    sampler = InteractionSampler(tiny_data.train)
    batch = next(sampler.epoch(model.batch_kind, 64, np.random.default_rng(0), torch.device("cpu")))
    loss, parts = model.loss(batch)
    assert torch.isfinite(loss) and parts
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


def test_state_dict_round_trip(model, tiny_data):
    cls = type(model)
    other = cls(tiny_data, model.config)
    other.load_state_dict(model.state_dict())
    for a, b in zip(model.export_embeddings(), other.export_embeddings(), strict=True):
        assert torch.equal(a, b)


def test_feature_free_models_accept_data_without_modalities(tiny_data):
    from dataclasses import replace

    bare = replace(tiny_data, features={})
    for cls in MODELS.values():
        if cls.min_modalities == 0:
            cls(bare, from_dict(cls.Config, {}))


def test_batch_is_named_not_positional():
    b = Batch(user_idx=torch.tensor([0]), pos_idx=torch.tensor([1]))
    assert b.neg_idx is None
