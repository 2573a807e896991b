"""Block-sparse attention forward as one fused Triton kernel, reading q/k/v in place.

Shape convention: q, k, v and the output are ``(batch, seq_len, num_heads, head_dim)``, with
``seq_len == pattern.num_blocks * pattern.block_size``; one ``BlockPattern`` (see
``attention.block_sparse``) is shared by every batch element and head.

Each program owns BLOCK_M queries of one query block of one (batch, head). It loads its query
tile once, walks the key blocks its row may attend (a CSR list built once per pattern and device),
BLOCK_N keys at a time with a base-2 online softmax in float32, and writes its output tile.
Causal patterns: blocks left of the diagonal need no mask; only the diagonal block is masked.

Forward only (inference): callers keep another backend for gradients. Public face:

- ``available(device=, dtype=, head_dim=, pattern=)``: whether the kernel can run such inputs;
- ``plan(q, k, v, pattern, scale, config)``: checks the inputs once and returns a
  ``BlockSparsePlan``, ``plan(q, k, v) -> out`` for every later input with their signature;
- ``forward(q, k, v, pattern, scale, config)``: the same for callers that keep no plans;
- ``kernel_pattern(pattern, device)``: the CSR tables the kernel walks; ``FWD_CONFIGS`` the
  default tiles per head_dim.

Under ``TRITON_INTERPRET=1`` (set before this module is imported) the kernel also runs on CPU
tensors, slowly, which is what the tests use.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from .._validate import check_qkv, check_scale
from ._shared import (HALF_DTYPES, HEAD_DIMS, LOG2E, BoundLaunch, CachedLauncher, KernelConfig,
                      cached_plan, interpreting, jit, needs_grad, online_softmax, signature,
                      softmax_scale, tl, triton, unit_last_stride)

__all__ = ["available", "plan", "forward", "kernel_pattern", "BlockSparsePlan", "KernelPattern",
           "KernelConfig", "FWD_CONFIGS"]

# Tiles per head_dim; tiles larger than the pattern's block are cut to fit it. head_dim 64: the
# H200 sweep of scripts/gpu_kernel_probe.py at 32K tokens, 90% sparse, block 128 (bf16, 12
# heads): 64x64 with a 4-stage pipeline 0.939 ms, 64x64 3 stages 1.003, 128x64 (the FlashAttention-2
# tutorial's tiles, used before) 1.051. The others were checked for correctness, not tuned.
FWD_CONFIGS: dict[int, KernelConfig] = {
    16: KernelConfig(128, 64, 4, 3), 32: KernelConfig(128, 64, 4, 3),
    64: KernelConfig(64, 64, 4, 4), 128: KernelConfig(128, 64, 8, 3),
}
_INTERPRET_CONFIG = KernelConfig(32, 32, 1, 1)  # tiny tiles keep the CPU interpreter fast


# ----------------------------------------------------------------------------------------------
# Kernel. Softmax runs in base 2: scores are multiplied by scale * log2(e) and exponentiated
# with exp2, which is what the hardware computes natively.
# ----------------------------------------------------------------------------------------------

@jit
def _attend_tile(acc, l_i, m_i, q, k_tile, v_tile, stride_kn, stride_vn, q_pos, k_first,
                 offs_n, offs_d, scale_log2, CAUSAL_MASK: tl.constexpr):
    """Fold the BLOCK_N keys from ``k_tile``/``v_tile`` (first key at position ``k_first``)
    into the running (acc, row sum l_i, row max m_i)."""
    k = tl.load(k_tile + offs_n[:, None] * stride_kn + offs_d[None, :])
    s = tl.dot(q, tl.trans(k))
    if CAUSAL_MASK:
        s = tl.where(q_pos[:, None] >= (k_first + offs_n)[None, :], s, float("-inf"))
    p, acc, l_i, m_new = online_softmax(acc, l_i, m_i, s, scale_log2)
    v = tl.load(v_tile + offs_n[:, None] * stride_vn + offs_d[None, :])
    acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i, m_new


@jit
def _block_sparse_fwd_kernel(Q, K, V, O, KV_OFFSETS, KV_INDEX, ROW_ORDER,
                             stride_qb, stride_qn, stride_qh, stride_kb, stride_kn, stride_kh,
                             stride_vb, stride_vn, stride_vh,
                             seq_len, num_heads, batch_heads, scale_log2,
                             HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
                             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    """Output for BLOCK_M queries of one query block of one (batch, head).

    1-D grid, (batch, head) fastest: program ``pid`` takes slot ``pid // batch_heads`` of
    ROW_ORDER (query blocks, most key blocks first, so the long rows start first and do not
    straggle at the end). KV_OFFSETS/KV_INDEX: CSR list of each query block's key blocks
    (causal: without the diagonal block, which is handled last, masked).
    O is contiguous ``(batch, seq_len, num_heads, HEAD_DIM)``.
    """
    TILES_M: tl.constexpr = BLOCK_SIZE // BLOCK_M
    TILES_N: tl.constexpr = BLOCK_SIZE // BLOCK_N
    pid = tl.program_id(0)
    slot = pid // batch_heads
    bh = pid % batch_heads
    b = (bh // num_heads).to(tl.int64)
    h = bh % num_heads
    q_block = tl.load(ROW_ORDER + slot // TILES_M)
    in_block = (slot % TILES_M) * BLOCK_M
    q_start = q_block * BLOCK_SIZE + in_block
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q_pos = q_start + offs_m

    q_tile = Q + b * stride_qb + h * stride_qh + q_start.to(tl.int64) * stride_qn
    q = tl.load(q_tile + offs_m[:, None] * stride_qn + offs_d[None, :])
    k_head = K + b * stride_kb + h * stride_kh
    v_head = V + b * stride_vb + h * stride_vh

    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # One flat loop over (key block, tile inside it), so the software pipeliner sees a single
    # loop; compiled for sm_90 it prefetches the index, K and V loads with async copies.
    first = tl.load(KV_OFFSETS + q_block)
    count = tl.load(KV_OFFSETS + q_block + 1) - first
    for t in range(0, count * TILES_N):
        k_block = tl.load(KV_INDEX + first + t // TILES_N)
        start = k_block * BLOCK_SIZE + (t % TILES_N) * BLOCK_N
        row0 = start.to(tl.int64)  # sequence offset times stride can pass 2**31 at long seq_len
        acc, l_i, m_i = _attend_tile(acc, l_i, m_i, q, k_head + row0 * stride_kn,
                                     v_head + row0 * stride_vn, stride_kn, stride_vn, q_pos,
                                     start, offs_n, offs_d, scale_log2, False)
    if CAUSAL:
        # Diagonal block: key tiles wholly before this query tile unmasked, the rest up to its
        # last query masked. The first masked tile starts at or before every query of the tile,
        # so no row is all -inf before it has seen a key (no NaN from -inf - -inf).
        diag = q_block * BLOCK_SIZE
        k_diag = k_head + diag.to(tl.int64) * stride_kn
        v_diag = v_head + diag.to(tl.int64) * stride_vn
        masked_lo = (in_block // BLOCK_N) * BLOCK_N
        masked_hi = tl.cdiv(in_block + BLOCK_M, BLOCK_N) * BLOCK_N
        for off in range(0, masked_lo, BLOCK_N):
            acc, l_i, m_i = _attend_tile(acc, l_i, m_i, q, k_diag + off * stride_kn,
                                         v_diag + off * stride_vn, stride_kn, stride_vn, q_pos,
                                         diag + off, offs_n, offs_d, scale_log2, False)
        for off in range(masked_lo, masked_hi, BLOCK_N):
            acc, l_i, m_i = _attend_tile(acc, l_i, m_i, q, k_diag + off * stride_kn,
                                         v_diag + off * stride_vn, stride_kn, stride_vn, q_pos,
                                         diag + off, offs_n, offs_d, scale_log2, True)

    # Every row saw its own diagonal block, so l_i > 0.
    out = acc / l_i[:, None]
    stride_on = num_heads * HEAD_DIM
    o_tile = O + (b * seq_len + q_start) * stride_on + h * HEAD_DIM
    tl.store(o_tile + offs_m[:, None] * stride_on + offs_d[None, :], out.to(O.dtype.element_ty))


# ----------------------------------------------------------------------------------------------
# Host side.
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelPattern:
    """A ``BlockPattern`` as the kernel reads it, int32 tensors on one device.

    ``kv_offsets`` (num_blocks + 1,): row pointers into ``kv_index`` (allowed key blocks of each
    query block, increasing; causal: the diagonal block left out, the kernel adds it masked).
    ``row_order`` (num_blocks,): query blocks by descending key-block count (launch order).
    A flat CSR list rather than a padded (num_blocks, max_count) matrix: one global row would
    make the padded form num_blocks**2 entries (256 MiB at 1M tokens in blocks of 128).
    """

    kv_offsets: torch.Tensor
    kv_index: torch.Tensor
    row_order: torch.Tensor


def kernel_pattern(pattern, device: torch.device) -> KernelPattern:
    """The CSR tables of ``pattern`` on ``device``, built on first use and cached on the pattern."""
    return pattern.cached(("triton", device), lambda: _build_kernel_pattern(pattern, device))


def _build_kernel_pattern(pattern, device: torch.device) -> KernelPattern:
    layout = pattern.layout.cpu()
    if pattern.causal:
        layout = layout & ~torch.eye(layout.shape[0], dtype=torch.bool)
    counts = layout.sum(1)
    offsets = torch.zeros(layout.shape[0] + 1, dtype=torch.int64)
    offsets[1:] = counts.cumsum(0)
    kv_index = layout.nonzero(as_tuple=True)[1]  # row-major: each row's blocks, increasing
    row_order = torch.sort(counts, descending=True, stable=True).indices
    return KernelPattern(*(t.to(device=device, dtype=torch.int32) for t in (offsets, kv_index, row_order)))


def _is_pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


@functools.lru_cache(maxsize=None)
def _default_config(head_dim: int, block_size: int, interpret: bool) -> KernelConfig:
    cfg = _INTERPRET_CONFIG if interpret else FWD_CONFIGS[head_dim]
    # gcd with a power of two: the largest power of two that divides block_size (>= 16).
    return KernelConfig(math.gcd(cfg.block_m, block_size), math.gcd(cfg.block_n, block_size),
                        cfg.num_warps, cfg.num_stages)


def _tile_config(head_dim: int, block_size: int, config: KernelConfig | None) -> KernelConfig:
    """``config`` checked against the pattern, or the table's default cut down to fit the block."""
    if config is None:
        return _default_config(head_dim, block_size, interpreting())
    for name, tile in (("block_m", config.block_m), ("block_n", config.block_n)):
        if not _is_pow2(tile) or tile < 16 or block_size % tile:
            raise ValueError(f"config {name} {tile} must be a power of two >= 16 dividing "
                             f"block_size {block_size}")
    return config


def available(*, device: torch.device | str, dtype: torch.dtype, head_dim: int, pattern) -> bool:
    """True when the Triton kernel can run inputs on ``device`` of ``dtype`` and ``head_dim``
    under ``pattern``.

    Needs triton, a CUDA device and float16/bfloat16 (or ``TRITON_INTERPRET=1``, where CPU
    float32 is allowed too), head_dim in 16/32/64/128 and a block_size that is a multiple of 16
    (the MMA tile). float32 on CUDA is refused: ``tl.dot`` would silently compute it in TF32
    (10-bit mantissa), far less precise than the float32 callers expect.
    """
    if triton is None or head_dim not in HEAD_DIMS:
        return False
    if pattern.block_size < 16 or pattern.block_size % 16:
        return False
    if interpreting():
        return dtype in (*HALF_DTYPES, torch.float32)
    return torch.device(device).type == "cuda" and dtype in HALF_DTYPES


def _check_inputs(q, k, v, pattern, scale) -> None:
    check_scale(scale)
    check_qkv(q, k, v)
    n = q.shape[1]
    if n != pattern.num_blocks * pattern.block_size:
        raise ValueError(f"seq_len {n} does not match the pattern's {pattern.num_blocks} blocks "
                         f"of {pattern.block_size} tokens ({pattern.num_blocks * pattern.block_size})")
    allowed = (*HALF_DTYPES, torch.float32) if interpreting() else HALF_DTYPES
    if q.dtype not in allowed:
        raise ValueError(f"block_sparse_attention_triton supports {', '.join(map(str, allowed))}; "
                         f"got {q.dtype}")
    if q.shape[-1] not in HEAD_DIMS:
        raise ValueError(f"block_sparse_attention_triton needs head_dim in {HEAD_DIMS}, "
                         f"got {q.shape[-1]}")
    if pattern.block_size < 16 or pattern.block_size % 16:
        raise ValueError(f"block_sparse_attention_triton needs block_size a multiple of 16, "
                         f"got {pattern.block_size}")
    _refuse_grad(q, k, v)
    if triton is None:
        raise RuntimeError("block_sparse_attention_triton needs the triton package, which is not installed")
    if not (q.is_cuda or interpreting()):
        raise ValueError(f"block_sparse_attention_triton needs CUDA tensors (or TRITON_INTERPRET=1), "
                         f"got device {q.device}")


def _refuse_grad(q, k, v) -> None:
    if needs_grad(q, k, v):
        raise RuntimeError("block_sparse_attention_triton is forward-only: call it under "
                           "torch.no_grad() or with inputs that do not require grad")


class BlockSparsePlan:
    """The forward launch for one input signature (shapes, strides, dtype, device, 16-byte
    alignment), pattern, scale and tiles: ``plan(q, k, v) -> out``, a new contiguous tensor."""

    __slots__ = ("tables", "scalars", "_launch")

    def __init__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern, scale: float,
                 cfg: KernelConfig) -> None:
        b, n, h, d = q.shape
        q, k, v = unit_last_stride(q), unit_last_stride(k), unit_last_stride(v)  # strides to plan for
        self.tables = kernel_pattern(pattern, q.device)
        self.scalars = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3], n, h, b * h,
                        scale * LOG2E)
        self._launch = BoundLaunch(
            _FWD, (pattern.num_blocks * (pattern.block_size // cfg.block_m) * b * h,),
            dict(HEAD_DIM=d, BLOCK_SIZE=pattern.block_size, BLOCK_M=cfg.block_m,
                 BLOCK_N=cfg.block_n, CAUSAL=pattern.causal),
            dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        _refuse_grad(q, k, v)
        q, k, v = unit_last_stride(q), unit_last_stride(k), unit_last_stride(v)
        # empty_like: about half the host time of torch.empty(shape, device=, dtype=) (docs/gpu-kernel.md)
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
        t = self.tables
        self._launch(q, k, v, out, t.kv_offsets, t.kv_index, t.row_order, *self.scalars)
        return out


def plan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern, scale: float | None = None,
         config: KernelConfig | None = None) -> BlockSparsePlan:
    """Check q, k, v against ``pattern`` (ValueError/RuntimeError naming the problem) and return
    the plan for inputs with their signature. ``config`` overrides the tile table (block_m,
    block_n: powers of two >= 16 dividing block_size), for sweeps."""
    _check_inputs(q, k, v, pattern, scale)
    d = q.shape[-1]
    return BlockSparsePlan(q, k, v, pattern, softmax_scale(d, scale),
                           _tile_config(d, pattern.block_size, config))


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern,
            scale: float | None = None, config: KernelConfig | None = None) -> torch.Tensor:
    """Attention of every query to the key blocks ``pattern`` allows, forward only.

    q, k, v: ``(batch, seq_len, num_heads, head_dim)``, any strides (unit stride along head_dim,
    else copied), seq_len == pattern.num_blocks * pattern.block_size. Returns a new contiguous
    tensor of q's shape and dtype. ``scale`` defaults to 1/sqrt(head_dim). ``config`` overrides
    the tile table, for sweeps. Raises RuntimeError when autograd would need a gradient.
    """
    _refuse_grad(q, k, v)
    key = ("block_sparse", signature(q, k, v), pattern, scale, config)
    return cached_plan(key, lambda: plan(q, k, v, pattern, scale, config))(q, k, v)


_FWD = CachedLauncher(_block_sparse_fwd_kernel)
