"""Reusable layers: item feature tables, user profiles, modality fusions (CRANE's RCA among them),
blocked attention kernels, graph attention, losses."""

from cranerec.nn.attention import (
    blocked_softmax_attention,
    blocked_tanh_attention,
    sampled_tanh_attention,
    sdpa_attention,
)
from cranerec.nn.gat import GraphAttention
from cranerec.nn.item_features import ItemFeatures
from cranerec.nn.losses import info_nce
from cranerec.nn.preference_gcn import PreferenceGCN, user_modality_weights
from cranerec.nn.rca import RecursiveCrossModalAttention
from cranerec.nn.sharded import ShardedTanhAttention, gather_rows

__all__ = [
    "GraphAttention",
    "ItemFeatures",
    "RecursiveCrossModalAttention",
    "ShardedTanhAttention",
    "gather_rows",
    "blocked_softmax_attention",
    "blocked_tanh_attention",
    "sampled_tanh_attention",
    "info_nce",
    "sdpa_attention",
    "PreferenceGCN",
    "user_modality_weights",
]
