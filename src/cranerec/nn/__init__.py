"""Reusable layers: blocked attention kernels (CRANE's RCA), losses."""

from cranerec.nn.attention import blocked_tanh_attention

__all__ = ["blocked_tanh_attention"]
