"""User profiles (CRANE Eq. 5, Sec. 4.8) against a per-user loop."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cranerec.nn.profiles import PROFILES


def _train():
    rng = np.random.default_rng(0)
    r = (rng.random((9, 6)) < 0.35).astype(np.float32)
    r[8] = 0.0  # a user without items
    return sp.csr_matrix(r)


@pytest.mark.parametrize("rule", ["sum", "mean", "max", "attention"])
def test_each_user_aggregates_exactly_their_training_items(rule):
    train = _train()
    profiles = PROFILES[rule](train, ["text"], 4)
    x = torch.randn(6, 4)
    out = profiles(x, "text")
    dense = train.toarray()
    for u in range(9):
        items = np.nonzero(dense[u])[0]
        if len(items) == 0:
            torch.testing.assert_close(out[u], torch.zeros(4))
            continue
        rows = x[items]
        expected = {
            "sum": rows.sum(0), "max": rows.max(0).values,
            "mean": rows.mean(0), "attention": rows.mean(0),  # a zero query: uniform weights
        }[rule]  # fmt: skip
        torch.testing.assert_close(out[u], expected, rtol=1e-5, atol=1e-6)


def test_attention_weights_follow_the_learned_query():
    train = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    profiles = PROFILES["attention"](train, ["text"], 2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    with torch.no_grad():
        profiles.query["text"].copy_(torch.tensor([10.0, 0.0]))  # prefers item 0
    out = profiles(x, "text")[0]
    alpha = torch.softmax(torch.tensor([10.0, 0.0]), 0)
    torch.testing.assert_close(out, alpha[0] * x[0] + alpha[1] * x[1])
