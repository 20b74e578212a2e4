"""InfoNCE against a hand-computed value."""

import math

import torch

from cranerec.nn import info_nce


def test_info_nce_matches_hand_computation_on_three_entities():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    p = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    tau = 0.5
    an = [v / v.norm() for v in a]
    pn = [v / v.norm() for v in p]
    total = 0.0
    for b in range(3):
        sims = [float(an[b] @ pn[c]) / tau for c in range(3)]
        total += -(sims[b] - math.log(sum(math.exp(s) for s in sims)))
    assert abs(info_nce(a, p, tau).item() - total / 3) < 1e-6


def test_info_nce_is_low_when_views_agree():
    x = torch.eye(4)
    assert info_nce(x, x, 0.1) < info_nce(x, x.roll(1, dims=0), 0.1)
