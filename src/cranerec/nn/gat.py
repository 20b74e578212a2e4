"""A graph attention layer (GAT, Velickovic et al., ICLR 2018) over an edge list.

    W h       = x W^T                                          ([N, out])
    e_nj      = LeakyReLU(omega_dst . W h_n + omega_src . W h_j)
              = LeakyReLU(omega^T [W h_n ; W h_j]),  omega = [omega_dst ; omega_src]
    alpha_nj  = softmax over the neighbours j of n of e_nj     (``edge_softmax``)
    h'_n      = act( sum_j alpha_nj W h_j )

Single head, no bias. Edges are directed pairs (j -> n): ``edge_src`` j, ``edge_dst`` n; pass
both directions for an undirected graph, and (n, n) pairs for self-loops. Scores and messages
are computed per edge (memory O(E x out)), never as a dense N x N matrix; a node without
incoming edges gets act(0).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cranerec.graph.softmax import edge_softmax

#: The activations a setting may name (CRANE's sigma, the GAT's), and their modules.
Activation = Literal["none", "relu", "leaky_relu", "tanh", "elu"]
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "none": nn.Identity, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh,
    "elu": nn.ELU,
}  # fmt: skip


class GraphAttention(nn.Module):
    """One GAT layer (see the module docstring).

    Args:
        in_dim, out_dim: widths of x and of h'.
        negative_slope: LeakyReLU's slope in the scores (GAT's 0.2).
        activation: ``relu`` | ``none`` | ``elu`` applied to the aggregated messages.

    Shapes: ``forward(x [N, in_dim], edge_src [E], edge_dst [E]) -> [N, out_dim]``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, negative_slope: float = 0.2, activation: str = "relu"
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {list(ACTIVATIONS)}")
        self.weight = nn.Linear(in_dim, out_dim, bias=False)  # W
        self.omega = nn.Parameter(torch.empty(2 * out_dim))  # [omega_dst ; omega_src]
        self.negative_slope = negative_slope
        self.act = ACTIVATIONS[activation]()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform W and omega (omega as a [1, 2 out_dim] matrix)."""
        nn.init.xavier_uniform_(self.weight.weight)
        nn.init.xavier_uniform_(self.omega.view(1, -1))

    def forward(
        self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor
    ) -> torch.Tensor:
        wh = self.weight(x)  # [N, out]
        omega_dst, omega_src = self.omega.chunk(2)
        score_dst, score_src = wh @ omega_dst, wh @ omega_src  # [N] each
        scores = nn.functional.leaky_relu(
            score_dst.index_select(0, edge_dst) + score_src.index_select(0, edge_src),
            self.negative_slope,
        )  # [E]
        alpha = edge_softmax(scores, edge_dst, x.shape[0])  # [E]
        out = wh.new_zeros(wh.shape).index_add(
            0, edge_dst, alpha[:, None] * wh.index_select(0, edge_src)
        )
        return self.act(out)  # [N, out]
