"""attnbench's attention implementations.

All functions and modules take ``q, k, v`` shaped ``(batch, seq_len, num_heads, head_dim)`` and
return that shape. ``IMPLEMENTATIONS`` (``attention.registry``) holds every implementation the
benchmarks track, loaded from the table in ``attention/implementations.py``.
"""
from .block_sparse import BlockPattern, BlockSparseAttention
from .dense import DenseAttention, available_sdpa_backends
from .dilated import DilatedAttention
from .improved import ImprovedDilatedAttention
from .multihead import ImprovedMultiheadDilatedAttention, MultiheadDilatedAttention
from .registry import IMPLEMENTATIONS, Implementation, get, names, register
from .ring import RingDilatedAttention
from .spec import AttentionSpec

__all__ = [
    "AttentionSpec", "BlockPattern", "BlockSparseAttention", "DenseAttention", "DilatedAttention",
    "IMPLEMENTATIONS", "Implementation", "ImprovedDilatedAttention", "ImprovedMultiheadDilatedAttention",
    "MultiheadDilatedAttention", "RingDilatedAttention", "available_sdpa_backends", "get", "names",
    "register",
]
