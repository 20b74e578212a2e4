"""Recursive Cross-Modal Attention (CRANE, Eq. 7-13 and Algorithm 1), exact and blocked.

For modalities m = 1..K with matrices X^m [n, w] (users stacked over items, already projected
to a common width w), each round r = 1..R computes

    E    = [X^1 ; ... ; X^K]                      (concatenate per entity)   Eq. 7
    E'   = E W_tr + b_tr                                                     Eq. 8
    P^m  = E' W_m                                                            Eq. 9
    C^m  = tanh(s * X^m (P^m)^T)                  ([n, n], never built)      Eq. 10
    F^m  = ReLU(c * C^m X^m W_a^m)                                           Eq. 11
    X^m <- F^m + X^m W_f^m                                                   Eq. 12

and returns X_att = [X^1(R) ; ... ; X^K(R)] (Eq. 13). ``s`` (``score_scale``) and ``c``
(``value_scale``) are our documented scalings (1 and 1 reproduce the paper literally). The
products with C^m go through an attention function (default: the exact blocked kernel) with
the signature ``attention(q, k, v) -> tanh(q k^T) v``, so an approximate kernel can replace it.
In the last round only ``out_rows`` (e.g. the item rows) are computed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from cranerec.nn.attention import blocked_tanh_attention

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class _RoundParams(nn.Module):
    def __init__(self, n_modalities: int, width: int, joint_width: int) -> None:
        super().__init__()
        self.transform = nn.Linear(n_modalities * width, joint_width)  # W_tr, b_tr
        self.project = nn.ModuleList(
            nn.Linear(joint_width, width, bias=False) for _ in range(n_modalities)
        )  # W_m
        self.value = nn.ModuleList(
            nn.Linear(width, width, bias=False) for _ in range(n_modalities)
        )  # W_a^m
        self.skip = nn.ModuleList(
            nn.Linear(width, width, bias=False) for _ in range(n_modalities)
        )  # W_f^m
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)


class RecursiveCrossModalAttention(nn.Module):
    """RCA over any number of modalities (see the module docstring for the equations).

    Args:
        n_modalities: K, the number of modality matrices.
        width: w, the common width of every X^m.
        rounds: R (Algorithm 1).
        joint_width: width of E' (default w).
        share_weights: one parameter set for all rounds (Algorithm 1 lists one) or one per round.
        score_scale: s inside tanh; value_scale: c on C^m X^m W_a^m.
        block_size: rows per block of the exact kernel (memory O(block_size x n)).
        cache_mb: MiB of score blocks the exact kernel may keep from forward to backward, shared
            out evenly over the K x R attentions of one pass (the numbers do not change).
        attention: replaces the exact kernel (``attention(q, k, v) = tanh(q k^T) v``).

    Shapes: ``forward([X^1..X^K] each [n, w], out_rows [n_out] or None)`` ->
    list of K tensors [n_out, w] (all n rows when ``out_rows`` is None).
    """

    def __init__(
        self,
        n_modalities: int,
        width: int,
        rounds: int = 3,
        joint_width: int | None = None,
        share_weights: bool = True,
        score_scale: float = 1.0,
        value_scale: float = 1.0,
        block_size: int = 128,
        attention: AttentionFn | None = None,
        cache_mb: float = 0,
    ) -> None:
        super().__init__()
        if n_modalities < 1 or rounds < 1:
            raise ValueError("RCA needs at least one modality and one round")
        joint_width = joint_width or width
        n_sets = 1 if share_weights else rounds
        self.rounds = rounds
        self.params = nn.ModuleList(
            _RoundParams(n_modalities, width, joint_width) for _ in range(n_sets)
        )
        self.score_scale = score_scale
        self.value_scale = value_scale
        self.attention = attention or partial(
            blocked_tanh_attention,
            block_size=block_size,
            cache_mb=cache_mb / (n_modalities * rounds),
        )

    @torch.no_grad()
    def identity_residual(self) -> None:
        """W_f^m = I (Eq. 12): at the start each round passes its input on unchanged beside the
        attention term, so R rounds do not compound R random maps of the features' geometry."""
        for p in self.params:
            for skip in p.skip:
                nn.init.eye_(skip.weight)

    def forward(
        self, xs: list[torch.Tensor], out_rows: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        for r in range(self.rounds):
            p = self.params[min(r, len(self.params) - 1)]
            last = r == self.rounds - 1
            joint = p.transform(torch.cat(xs, dim=1))  # E' [n, joint_width]
            new = []
            for m, x in enumerate(xs):
                keys = p.project[m](joint)  # P^m [n, w]
                values = self.value_scale * p.value[m](x)  # c X^m W_a^m [n, w]
                rows = x if (not last or out_rows is None) else x[out_rows]  # queries
                attended = self.attention(self.score_scale * rows, keys, values)  # C^m X^m W_a^m
                new.append(torch.relu(attended) + p.skip[m](rows))
            xs = new
        return xs
