"""ItemFeatures: the named feature tables models read."""

import numpy as np
import pytest
import torch

from cranerec.nn import ItemFeatures


def _tables():
    rng = np.random.default_rng(0)
    return {
        "image": rng.random((6, 4), dtype=np.float32),
        "text": rng.random((6, 3)).astype(np.float32),
    }


def test_fixed_tables_are_buffers_not_saved_and_read_by_name():
    tables = _tables()
    features = ItemFeatures(tables, ["text", "image"])
    assert list(features) == ["text", "image"]
    np.testing.assert_array_equal(features["image"].numpy(), tables["image"])
    assert list(features.parameters()) == [] and features.state_dict() == {}
    with pytest.raises(KeyError, match="no features for modality 'audio'"):
        features["audio"]


def test_trainable_tables_are_copies_saved_under_their_modality_names():
    tables = _tables()
    before = tables["text"].copy()
    model = torch.nn.Module()
    model.features = ItemFeatures(tables, ["image", "text"], trainable=True)
    assert sorted(model.state_dict()) == ["features.image", "features.text"]  # as before
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    model.features["text"].sum().backward()
    opt.step()
    np.testing.assert_array_equal(tables["text"], before)  # the dataset is never written
    assert not np.allclose(model.features["text"].detach().numpy(), before)


def test_l2_normalised_rows_have_unit_length():
    features = ItemFeatures(_tables(), ["image"], normalize="l2")
    torch.testing.assert_close(features["image"].norm(dim=1), torch.ones(6))


def test_a_modality_name_that_cannot_name_a_table_is_a_clear_error():
    with pytest.raises(ValueError, match="modality name 'a.b'"):
        ItemFeatures({"a.b": np.zeros((2, 2), np.float32)}, ["a.b"])
