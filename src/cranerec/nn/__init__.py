"""Reusable layers: blocked attention kernels and CRANE's RCA, losses."""

from cranerec.nn.attention import blocked_tanh_attention
from cranerec.nn.losses import info_nce
from cranerec.nn.rca import RecursiveCrossModalAttention

__all__ = ["RecursiveCrossModalAttention", "blocked_tanh_attention", "info_nce"]
