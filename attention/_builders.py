"""The build, supports and pairs functions that the implementation table names.

The table (``attention/implementations.py``) refers to them as ``"_builders:<function>"``. Every ``build_*`` returns ``fn(q, k, v) -> out`` on ``(batch, seq_len, num_heads, head_dim)``
tensors; every ``supports_*`` returns None or a one-line reason the spec cannot run.
"""
from __future__ import annotations

from typing import Callable

import torch

from . import kernels
from ._validate import check_dilated_shape, check_pattern
from .block_sparse import BlockPattern, BlockSparseAttention
from .dense import DenseAttention, available_sdpa_backends
from .dilated import DilatedAttention
from .improved import ImprovedDilatedAttention
from .multihead import ImprovedMultiheadDilatedAttention, MultiheadDilatedAttention
from .ring import RingDilatedAttention
from .spec import AttentionSpec

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MODULE_SEED = 0  # projections of the multihead modules: same weights on every run


def torch_dtype(spec: AttentionSpec) -> torch.dtype:
    dtype = getattr(torch, spec.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"spec.dtype {spec.dtype!r} is not a torch dtype")
    return dtype


def _device_reason(spec: AttentionSpec) -> str | None:
    if torch.device(spec.device).type == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    return None


def supports_dense(spec: AttentionSpec) -> str | None:
    backend = spec.extra.get("sdpa_backend", "auto")
    if _device_reason(spec) or backend == "auto":
        return _device_reason(spec)
    if backend not in available_sdpa_backends(spec.device, torch_dtype(spec)):
        return f"SDPA backend {backend!r} is not available on {spec.device} for {spec.dtype}"
    return None


def build_dense(spec: AttentionSpec) -> AttentionFn:
    return DenseAttention(causal=spec.causal, backend=spec.extra.get("sdpa_backend", "auto"))


def supports_dilated(spec: AttentionSpec) -> str | None:
    try:
        segments, _ = check_pattern(spec.segments_for(), spec.dilation_rates)
        check_dilated_shape(spec.seq_len, spec.num_heads, segments)
    except ValueError as err:
        return str(err)
    return _device_reason(spec)


def build_dilated(spec: AttentionSpec) -> AttentionFn:
    return DilatedAttention(spec.segments_for(), spec.dilation_rates, causal=spec.causal)


def supports_improved(spec: AttentionSpec) -> str | None:
    reason = supports_dilated(spec)
    if reason or spec.extra.get("dilated_backend", "auto") != "triton":
        return reason
    mod = kernels.load("dilated")
    if mod is None or torch.device(spec.device).type != "cuda":
        return "Triton dilated attention needs attention.kernels.dilated and a CUDA device"
    if not mod.available(device=spec.device, dtype=torch_dtype(spec), head_dim=spec.head_dim,
                         segments=spec.segments_for(), rates=spec.dilation_rates):
        return f"Triton dilated attention cannot run {spec.dtype}, head_dim {spec.head_dim}, this pattern"
    return None


def build_improved(spec: AttentionSpec) -> AttentionFn:
    backend = spec.extra.get("dilated_backend", "auto")
    return ImprovedDilatedAttention(spec.segments_for(), spec.dilation_rates, causal=spec.causal,
                                    backend=backend)


def build_ring(spec: AttentionSpec) -> AttentionFn:
    return RingDilatedAttention(spec.segments_for(), spec.dilation_rates, causal=spec.causal)


def _multihead_builder(cls) -> Callable[[AttentionSpec], AttentionFn]:
    def build(spec: AttentionSpec) -> AttentionFn:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(MODULE_SEED)
            module = cls(spec.embed_dim, spec.num_heads, spec.segments_for(), spec.dilation_rates,
                         device=spec.device, dtype=torch_dtype(spec))

        def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            b, n, h, d = q.shape
            out, _ = module(q.reshape(b, n, h * d), k.reshape(b, n, h * d), v.reshape(b, n, h * d),
                            is_causal=spec.causal)
            return out.view(b, n, h, d)

        fn.module = module  # let callers count parameters or move it
        return fn

    return build


build_multihead = _multihead_builder(MultiheadDilatedAttention)
build_improved_multihead = _multihead_builder(ImprovedMultiheadDilatedAttention)


def block_pattern(spec: AttentionSpec) -> BlockPattern:
    return BlockPattern.make(spec.seq_len, spec.block_size, spec.block_pattern, spec.sparsity, spec.causal)


MAX_LAYOUT_BLOCKS = 16384  # BlockPattern's layout is a dense bool matrix: 16384^2 = 256 MiB


def supports_block_sparse(spec: AttentionSpec) -> str | None:
    if spec.block_size <= 0 or spec.seq_len % spec.block_size != 0:
        return f"seq_len {spec.seq_len} is not a multiple of block_size {spec.block_size}"
    if spec.seq_len // spec.block_size > MAX_LAYOUT_BLOCKS:
        return (f"{spec.seq_len // spec.block_size} blocks of {spec.block_size} tokens: the dense block "
                f"layout (blocks x blocks) is capped at {MAX_LAYOUT_BLOCKS} blocks")
    return _device_reason(spec)


def build_block_sparse(spec: AttentionSpec) -> AttentionFn:
    return BlockSparseAttention(block_size=spec.block_size, sparsity=spec.sparsity,
                                pattern=spec.block_pattern, causal=spec.causal,
                                backend=spec.extra.get("block_sparse_backend", "auto"))


def block_sparse_pairs(spec: AttentionSpec) -> float:
    """Allowed blocks * block_size**2 * heads (diagonal blocks count whole even when causal)."""
    return float(block_pattern(spec).allowed_blocks() * spec.block_size ** 2 * spec.num_heads)
