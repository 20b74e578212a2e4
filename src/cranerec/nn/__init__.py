"""Reusable layers: blocked attention kernels (CRANE's RCA), losses."""

from cranerec.nn.attention import blocked_tanh_attention
from cranerec.nn.losses import info_nce

__all__ = ["blocked_tanh_attention", "info_nce"]
