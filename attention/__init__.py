"""attnbench's attention implementations.

All functions and modules take ``q, k, v`` shaped ``(batch, seq_len, num_heads, head_dim)`` and
return that shape. ``registry.IMPLEMENTATIONS`` names every implementation the benchmarks track.
"""
from . import _builders as b
from .block_sparse import BlockPattern, BlockSparseAttention
from .dense import DenseAttention, available_sdpa_backends
from .dilated import DilatedAttention
from .improved import ImprovedDilatedAttention
from .multihead import ImprovedMultiheadDilatedAttention, MultiheadDilatedAttention
from .registry import IMPLEMENTATIONS, Implementation, get, names, register
from .ring import RingDilatedAttention
from .spec import AttentionSpec, dense_pairs, dilated_pairs

register(Implementation("DenseAttention", b.build_dense, dense_pairs, "dense",
                        "full attention through torch SDPA (backend from spec.extra['sdpa_backend'])",
                        b.supports_dense))
register(Implementation("DilatedAttention", b.build_dilated, dilated_pairs, "dilated",
                        "dilated attention, plain loops over heads and segments", b.supports_dilated))
register(Implementation("ImprovedDilatedAttention", b.build_improved, dilated_pairs, "dilated",
                        "dilated attention, one SDPA call per (group, offset); Triton on CUDA",
                        b.supports_improved))
register(Implementation("MultiheadDilatedAttention", b.build_multihead, dilated_pairs, "dilated+proj",
                        "q/k/v/out projections around DilatedAttention", b.supports_dilated))
register(Implementation("ImprovedMultiheadDilatedAttention", b.build_improved_multihead, dilated_pairs,
                        "dilated+proj", "q/k/v/out projections around ImprovedDilatedAttention",
                        b.supports_dilated))
register(Implementation("BlockSparseAttention", b.build_block_sparse, b.block_sparse_pairs, "block_sparse",
                        "block pattern (spec.block_pattern, spec.sparsity); flex on CUDA, block gather else",
                        b.supports_block_sparse))
register(Implementation("RingDilatedAttention", b.build_ring, dilated_pairs, "dilated",
                        "dilated attention sharded over a process group (world size 1 here)",
                        b.supports_dilated))

__all__ = [
    "AttentionSpec", "BlockPattern", "BlockSparseAttention", "DenseAttention", "DilatedAttention",
    "IMPLEMENTATIONS", "Implementation", "ImprovedDilatedAttention", "ImprovedMultiheadDilatedAttention",
    "MultiheadDilatedAttention", "RingDilatedAttention", "available_sdpa_backends", "get", "names",
    "register",
]
