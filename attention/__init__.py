"""attnbench's attention implementations.

All functions and modules take ``q, k, v`` shaped ``(batch, seq_len, num_heads, head_dim)`` and
return that shape. ``registry.IMPLEMENTATIONS`` names every implementation the benchmarks track.
"""
from .registry import IMPLEMENTATIONS, Implementation, get, names, register
from .spec import AttentionSpec

__all__ = ["AttentionSpec", "IMPLEMENTATIONS", "Implementation", "get", "names", "register"]
