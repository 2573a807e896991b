"""Dilated attention as fused Triton kernels (forward and backward), reading q/k/v in place.

Shape convention: q, k, v and the output are ``(batch, seq_len, num_heads, head_dim)``.
Semantics: docs/semantics.md. For head ``h`` of group ``g`` (segment ``w``, rate ``r``,
offset ``o = h % r``) the dilated segment ``s`` is rows ``s*w + o + r*t``: a strided view of the
sequence, so every kernel reads and writes rows with stride ``r * stride_seq`` instead of gathering.
Rows of the other offsets are written as exact zeros by the same kernels (no separate memset).

Public entry points (used by ``ImprovedDilatedAttention`` on CUDA):
``triton_available(q)`` and ``dilated_attention_triton(q, k, v, segment_lengths, dilation_rates,
causal=False, scale=None)``. Under ``TRITON_INTERPRET=1`` (set before this module is imported)
the kernels also run on CPU tensors, slowly, which is what the tests use.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch

from ._cache import SignatureCache
from ._triton_launch import CachedLauncher
from ._validate import check_dilated_shape, check_pattern, check_qkv, check_scale, qkv_signature

try:
    import triton
    import triton.language as tl
    _jit = triton.jit
except ImportError:  # the module must still import where triton is missing (e.g. macOS CPU)
    triton = None

    class _TlStub:
        constexpr = object  # only used as an annotation below

    tl = _TlStub()

    def _jit(fn):
        return fn

_HALF_DTYPES = (torch.float16, torch.bfloat16)
_HEAD_DIMS = (16, 32, 64, 128)
_LOG2E = 1.4426950408889634


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_available(q: torch.Tensor, segment_lengths: Sequence[int] | None = None,
                     dilation_rates: Sequence[int] | None = None) -> bool:
    """True when the Triton kernels should handle ``q`` (and, if given, this pattern).

    Needs triton, a CUDA tensor, float16/bfloat16 (float32 falls back to the SDPA path, since
    ``tl.dot`` on float32 would silently run in TF32), head_dim in 16/32/64/128, and, when the
    pattern is given, ``w // r >= 16`` for every group (shorter dilated segments waste most of
    a 16-row MMA tile; the gather/SDPA path is faster there).
    """
    if triton is None or not q.is_cuda or q.dtype not in _HALF_DTYPES:
        return False
    if q.dim() != 4 or q.shape[-1] not in _HEAD_DIMS:
        return False
    if segment_lengths is not None and dilation_rates is not None:
        if any(w // r < 16 for w, r in zip(segment_lengths, dilation_rates)):
            return False
    return True


# ----------------------------------------------------------------------------------------------
# Kernels. Index names: t = position inside a dilated segment, L = rows of this head's offset in a
# segment, seg_start = first row of the segment in the sequence. Softmax runs in base 2, so the
# saved log-sum-exp (LSE) is log2(sum exp2(score * scale * log2 e)).
# ----------------------------------------------------------------------------------------------

@_jit
def _zero_other_offsets(base, t, o, r, w, stride_n, offs_d,
                        BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Store zeros at rows ``o2 + r*t`` (o2 != o) of one segment starting at ``base``."""
    zeros = tl.zeros([BLOCK, HEAD_DIM], dtype=base.dtype.element_ty)
    for j in range(1, r):
        o2 = (o + j) % r
        rows = o2 + r * t
        ptrs = base + rows[:, None].to(tl.int64) * stride_n + offs_d[None, :]
        tl.store(ptrs, zeros, mask=(rows < w)[:, None])


@_jit
def _fwd_inner(acc, l_i, m_i, q, k_base, v_base, row_stride_k, row_stride_v, t_q, offs_d,
               lo, hi, L, scale_log2,
               BLOCK_N: tl.constexpr, CAUSAL_MASK: tl.constexpr, EVEN: tl.constexpr):
    for start_n in range(lo, hi, BLOCK_N):
        t_k = start_n + tl.arange(0, BLOCK_N)
        k_ptrs = k_base + t_k[:, None] * row_stride_k + offs_d[None, :]
        v_ptrs = v_base + t_k[:, None] * row_stride_v + offs_d[None, :]
        if EVEN:
            k = tl.load(k_ptrs)
        else:
            k = tl.load(k_ptrs, mask=(t_k < L)[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale_log2
        if CAUSAL_MASK:
            s = tl.where(t_q[:, None] >= t_k[None, :], s, float("-inf"))
        if not EVEN:
            s = tl.where((t_k < L)[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if EVEN:
            v = tl.load(v_ptrs)
        else:
            v = tl.load(v_ptrs, mask=(t_k < L)[:, None], other=0.0)
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_new
    return acc, l_i, m_i


@_jit
def _dilated_fwd_kernel(Q, K, V, O, LSE, W_OF_HEAD, R_OF_HEAD,
                        stride_qb, stride_qn, stride_qh, stride_kb, stride_kn, stride_kh,
                        stride_vb, stride_vn, stride_vh,
                        seq_len, num_heads, scale_log2,
                        HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                        CAUSAL: tl.constexpr, STORE_LSE: tl.constexpr, EVEN: tl.constexpr,
                        ZERO_FILL: tl.constexpr):
    """Output (and LSE) for one block of BLOCK_M queries of one dilated segment.

    O is contiguous ``(batch, seq_len, num_heads, HEAD_DIM)`` (strides follow from the shape).
    """
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // num_heads).to(tl.int64)
    h = bh % num_heads
    w = tl.load(W_OF_HEAD + h)
    r = tl.load(R_OF_HEAD + h)
    o = h % r
    n_blocks = tl.cdiv(tl.cdiv(w, r), BLOCK_M)
    # The grid is sized for the group with the most blocks; programs past this head's count idle.
    if pid < (seq_len // w) * n_blocks:
        seg_start = (pid // n_blocks).to(tl.int64) * w
        mblk = pid % n_blocks
        L = (w - o + r - 1) // r
        t_q = mblk * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        stride_on = num_heads * HEAD_DIM
        o_seg = O + (b * seq_len + seg_start) * stride_on + h * HEAD_DIM
        if mblk * BLOCK_M < L:
            q_base = Q + b * stride_qb + h * stride_qh + (seg_start + o) * stride_qn
            k_base = K + b * stride_kb + h * stride_kh + (seg_start + o) * stride_kn
            v_base = V + b * stride_vb + h * stride_vh + (seg_start + o) * stride_vn
            q_ptrs = q_base + t_q[:, None] * (r * stride_qn) + offs_d[None, :]
            if EVEN:
                q = tl.load(q_ptrs)
            else:
                q = tl.load(q_ptrs, mask=(t_q < L)[:, None], other=0.0)
            m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
            l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
            acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
            if CAUSAL:
                # Blocks fully below the diagonal need no mask; only the diagonal block does.
                diag = mblk * BLOCK_M
                acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, r * stride_kn,
                                           r * stride_vn, t_q, offs_d, 0, diag, L, scale_log2,
                                           BLOCK_N, False, EVEN)
                acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, r * stride_kn,
                                           r * stride_vn, t_q, offs_d, diag,
                                           tl.minimum(diag + BLOCK_M, L), L, scale_log2,
                                           BLOCK_N, True, EVEN)
            else:
                acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, r * stride_kn,
                                           r * stride_vn, t_q, offs_d, 0, L, L, scale_log2,
                                           BLOCK_N, False, EVEN)
            l_safe = tl.where(l_i > 0, l_i, 1.0)
            out = acc / l_safe[:, None]
            o_ptrs = o_seg + o * stride_on + t_q[:, None] * (r * stride_on) + offs_d[None, :]
            if EVEN:
                tl.store(o_ptrs, out.to(O.dtype.element_ty))
            else:
                tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(t_q < L)[:, None])
            if STORE_LSE:
                lse_ptrs = LSE + (b * num_heads + h) * seq_len + seg_start + o + r * t_q
                lse = m_i + tl.math.log2(l_safe)
                if EVEN:
                    tl.store(lse_ptrs, lse)
                else:
                    tl.store(lse_ptrs, lse, mask=t_q < L)
        if ZERO_FILL:
            _zero_other_offsets(o_seg, t_q, o, r, w, stride_on, offs_d, BLOCK_M, HEAD_DIM)


@_jit
def _load_query_rows(q_base, o_base, do_base, lse_base, t_q, row_q, row_c, r, offs_d, L,
                     EVEN: tl.constexpr):
    """q, O, dO rows ``t_q`` of one dilated segment and their LSE, plus delta = rowsum(dO * O)."""
    q_ptrs = q_base + t_q[:, None] * row_q + offs_d[None, :]
    c_offs = t_q[:, None] * row_c + offs_d[None, :]
    if EVEN:
        q = tl.load(q_ptrs)
        do = tl.load(do_base + c_offs)
        o = tl.load(o_base + c_offs)
        lse = tl.load(lse_base + r * t_q)
    else:
        q_ok = t_q < L
        q = tl.load(q_ptrs, mask=q_ok[:, None], other=0.0)
        do = tl.load(do_base + c_offs, mask=q_ok[:, None], other=0.0)
        o = tl.load(o_base + c_offs, mask=q_ok[:, None], other=0.0)
        lse = tl.load(lse_base + r * t_q, mask=q_ok, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    return q, do, lse, delta


@_jit
def _bwd_dkdv_block(q_base, k_base, v_base, o_base, do_base, dk_base, dv_base, lse_base,
                    row_q, row_k, row_v, row_c, r, first, offs_d, L, scale, scale_log2,
                    BLOCK_MAJOR: tl.constexpr, BLOCK_MINOR: tl.constexpr, HEAD_DIM: tl.constexpr,
                    CAUSAL: tl.constexpr, EVEN: tl.constexpr):
    """dK, dV for keys ``t_k`` of one dilated segment, streaming its queries BLOCK_MINOR at a time.

    ``row_*`` are the row strides of the dilated view (r * seq stride); ``o/do/dk/dv`` are
    contiguous (row stride ``row_c``). delta = rowsum(dO * O) is computed per query tile here,
    which saves a separate preprocessing launch.
    """
    t_k = first + tl.arange(0, BLOCK_MAJOR)
    if EVEN:
        k = tl.load(k_base + t_k[:, None] * row_k + offs_d[None, :])
        v = tl.load(v_base + t_k[:, None] * row_v + offs_d[None, :])
    else:
        k = tl.load(k_base + t_k[:, None] * row_k + offs_d[None, :], mask=(t_k < L)[:, None], other=0.0)
        v = tl.load(v_base + t_k[:, None] * row_v + offs_d[None, :], mask=(t_k < L)[:, None], other=0.0)
    dk = tl.zeros([BLOCK_MAJOR, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_MAJOR, HEAD_DIM], dtype=tl.float32)
    lo = 0
    if CAUSAL:
        lo = (first // BLOCK_MINOR) * BLOCK_MINOR  # earlier queries see none of these keys
    for start_m in range(lo, L, BLOCK_MINOR):
        t_q = start_m + tl.arange(0, BLOCK_MINOR)
        q, do, lse, delta = _load_query_rows(q_base, o_base, do_base, lse_base, t_q, row_q, row_c,
                                             r, offs_d, L, EVEN)
        p_t = tl.math.exp2(tl.dot(k, tl.trans(q)) * scale_log2 - lse[None, :])
        if CAUSAL:
            p_t = tl.where(t_q[None, :] >= t_k[:, None], p_t, 0.0)
        if not EVEN:
            p_t = tl.where((t_q < L)[None, :], p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv)
        dp_t = tl.dot(v, tl.trans(do))
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk)
    dk = dk * scale
    c_offs = t_k[:, None] * row_c + offs_d[None, :]
    if EVEN:
        tl.store(dk_base + c_offs, dk.to(dk_base.dtype.element_ty))
        tl.store(dv_base + c_offs, dv.to(dv_base.dtype.element_ty))
    else:
        tl.store(dk_base + c_offs, dk.to(dk_base.dtype.element_ty), mask=(t_k < L)[:, None])
        tl.store(dv_base + c_offs, dv.to(dv_base.dtype.element_ty), mask=(t_k < L)[:, None])


@_jit
def _bwd_dq_block(q_base, k_base, v_base, o_base, do_base, dq_base, lse_base,
                  row_q, row_k, row_v, row_c, r, first, offs_d, L, scale, scale_log2,
                  BLOCK_MAJOR: tl.constexpr, BLOCK_MINOR: tl.constexpr, HEAD_DIM: tl.constexpr,
                  CAUSAL: tl.constexpr, EVEN: tl.constexpr):
    """dQ for queries ``first + [0, BLOCK_MAJOR)`` of one dilated segment, streaming its keys."""
    t_q = first + tl.arange(0, BLOCK_MAJOR)
    q, do, lse, delta = _load_query_rows(q_base, o_base, do_base, lse_base, t_q, row_q, row_c, r,
                                         offs_d, L, EVEN)
    hi = L
    if CAUSAL:
        hi = tl.minimum(first + BLOCK_MAJOR, L)
    dq = tl.zeros([BLOCK_MAJOR, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, hi, BLOCK_MINOR):
        t_k = start_n + tl.arange(0, BLOCK_MINOR)
        k_ptrs = k_base + t_k[:, None] * row_k + offs_d[None, :]
        v_ptrs = v_base + t_k[:, None] * row_v + offs_d[None, :]
        if EVEN:
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)
        else:
            k = tl.load(k_ptrs, mask=(t_k < L)[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=(t_k < L)[:, None], other=0.0)
        p = tl.math.exp2(tl.dot(q, tl.trans(k)) * scale_log2 - lse[:, None])
        if CAUSAL:
            p = tl.where(t_q[:, None] >= t_k[None, :], p, 0.0)
        if not EVEN:
            p = tl.where((t_k < L)[None, :], p, 0.0)
        dp = tl.dot(do, tl.trans(v))
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq)
    dq = dq * scale
    c_offs = t_q[:, None] * row_c + offs_d[None, :]
    if EVEN:
        tl.store(dq_base + c_offs, dq.to(dq_base.dtype.element_ty))
    else:
        tl.store(dq_base + c_offs, dq.to(dq_base.dtype.element_ty), mask=(t_q < L)[:, None])


@_jit
def _dilated_bwd_kernel(Q, K, V, O, DO, DQ, DK, DV, LSE, W_OF_HEAD, R_OF_HEAD,
                        stride_qb, stride_qn, stride_qh, stride_kb, stride_kn, stride_kh,
                        stride_vb, stride_vn, stride_vh,
                        seq_len, num_heads, scale, scale_log2,
                        HEAD_DIM: tl.constexpr, BLOCK_MAJOR: tl.constexpr,
                        BLOCK_MINOR: tl.constexpr, CAUSAL: tl.constexpr, EVEN: tl.constexpr):
    """One launch for the whole backward: program ``pid`` of a dilated segment computes dK, dV
    for key block ``pid`` and then dQ for query block ``pid`` (BLOCK_MAJOR rows each).

    O, DO, DQ, DK, DV are contiguous ``(batch, seq_len, num_heads, HEAD_DIM)``: their strides
    follow from the shape, which keeps the launch's argument list (and its CPU cost) short.
    """
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // num_heads).to(tl.int64)
    h = bh % num_heads
    w = tl.load(W_OF_HEAD + h)
    r = tl.load(R_OF_HEAD + h)
    o = h % r
    n_blocks = tl.cdiv(tl.cdiv(w, r), BLOCK_MAJOR)
    if pid < (seq_len // w) * n_blocks:
        seg_start = (pid // n_blocks).to(tl.int64) * w
        blk = pid % n_blocks
        L = (w - o + r - 1) // r
        stride_c = num_heads * HEAD_DIM
        c_seg = (b * seq_len + seg_start) * stride_c + h * HEAD_DIM  # segment start, contiguous
        t_major = blk * BLOCK_MAJOR + tl.arange(0, BLOCK_MAJOR)
        offs_d = tl.arange(0, HEAD_DIM)
        if blk * BLOCK_MAJOR < L:
            row0 = seg_start + o
            q_base = Q + b * stride_qb + h * stride_qh + row0 * stride_qn
            k_base = K + b * stride_kb + h * stride_kh + row0 * stride_kn
            v_base = V + b * stride_vb + h * stride_vh + row0 * stride_vn
            c_row0 = c_seg + o * stride_c
            lse_base = LSE + (b * num_heads + h) * seq_len + row0
            _bwd_dkdv_block(q_base, k_base, v_base, O + c_row0, DO + c_row0, DK + c_row0,
                            DV + c_row0, lse_base, r * stride_qn, r * stride_kn, r * stride_vn,
                            r * stride_c, r, blk * BLOCK_MAJOR, offs_d, L, scale, scale_log2,
                            BLOCK_MAJOR, BLOCK_MINOR, HEAD_DIM, CAUSAL, EVEN)
            _bwd_dq_block(q_base, k_base, v_base, O + c_row0, DO + c_row0, DQ + c_row0, lse_base,
                          r * stride_qn, r * stride_kn, r * stride_vn, r * stride_c, r,
                          blk * BLOCK_MAJOR, offs_d, L, scale, scale_log2,
                          BLOCK_MAJOR, BLOCK_MINOR, HEAD_DIM, CAUSAL, EVEN)
        _zero_other_offsets(DK + c_seg, t_major, o, r, w, stride_c, offs_d, BLOCK_MAJOR, HEAD_DIM)
        _zero_other_offsets(DV + c_seg, t_major, o, r, w, stride_c, offs_d, BLOCK_MAJOR, HEAD_DIM)
        _zero_other_offsets(DQ + c_seg, t_major, o, r, w, stride_c, offs_d, BLOCK_MAJOR, HEAD_DIM)


# ----------------------------------------------------------------------------------------------
# Host side.
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelConfig:
    """Tile sizes and launch options of one kernel (tuned on an H100; see docs/gpu-kernel.md)."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


# Chosen from the sweeps in scripts/gpu_kernel_probe.py on an H100 (bf16, d=64). Forward: 64x64
# tiles tie 128x64 at 32K tokens (0.31 vs 0.30 ms) and are ~1.7x faster at 4K-8K (more programs
# per SM). head_dim 128 uses more warps; it was checked for correctness, not tuned.
FWD_CONFIGS: dict[int, KernelConfig] = {
    16: KernelConfig(64, 64, 4, 3), 32: KernelConfig(64, 64, 4, 3),
    64: KernelConfig(64, 64, 4, 3), 128: KernelConfig(128, 64, 8, 3),
}
# Backward: block_n = rows a program owns (keys for dK/dV, then queries for dQ), block_m = the
# tile streamed past them. 32x128 won the H100 sweep at 32K (0.98 ms vs 1.03 for 64x64).
BWD_CONFIGS: dict[int, KernelConfig] = {
    16: KernelConfig(32, 128, 4, 3), 32: KernelConfig(32, 128, 4, 3),
    64: KernelConfig(32, 128, 4, 3), 128: KernelConfig(64, 64, 8, 2),
}
_INTERPRET_CONFIG = KernelConfig(16, 16, 1, 1)  # tiny tiles keep the CPU interpreter fast

_head_tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _per_head_pattern(segments: tuple[int, ...], rates: tuple[int, ...], num_heads: int,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment length and rate of every head as int32 tensors on ``device`` (cached: one copy)."""
    key = (segments, rates, num_heads, device)
    if key not in _head_tables:
        per_group = num_heads // len(segments)
        w = [segments[h // per_group] for h in range(num_heads)]
        r = [rates[h // per_group] for h in range(num_heads)]
        _head_tables[key] = (torch.tensor(w, dtype=torch.int32, device=device),
                             torch.tensor(r, dtype=torch.int32, device=device))
    return _head_tables[key]


def _config(table: dict[int, KernelConfig], head_dim: int) -> KernelConfig:
    return _INTERPRET_CONFIG if _interpreting() else table[head_dim]


@functools.lru_cache(maxsize=1024)
def _is_even(segments, rates, *blocks: int) -> bool:
    """Every head's dilated segment is a whole number of tiles, so loads need no masks."""
    return all(w % r == 0 and (w // r) % blk == 0 for w, r in zip(segments, rates) for blk in blocks)


@functools.lru_cache(maxsize=1024)
def _grid_blocks(segments, rates, seq_len: int, block: int) -> int:
    return max((seq_len // w) * triton.cdiv(-(-w // r), block) for w, r in zip(segments, rates))


def _bnh_strides(t: torch.Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    # Kernels assume unit stride along head_dim (one vectorised row load); any other strides are fine.
    return t if t.stride(-1) == 1 else t.contiguous()


class _ForwardPlan:
    """A forward launch for one input signature (shapes, strides, 16-byte alignment, dtype,
    device), pattern and options, worked out once; after the first launch it also holds the
    compiled kernel bound to its grid (``CachedLauncher.first_launch``).

    ``plan(q, k, v) -> (out, lse or None)`` for inputs with that signature.
    """

    __slots__ = ("grid", "tables", "scalars", "constexprs", "options", "store_lse", "zero_fill",
                 "bound")

    def __init__(self, grid: tuple[int, int], tables: tuple[torch.Tensor, torch.Tensor],
                 scalars: tuple, constexprs: dict, options: dict, store_lse: bool,
                 zero_fill: bool) -> None:
        self.grid, self.tables, self.scalars = grid, tables, scalars  # tables: int32 w, r per head
        self.constexprs, self.options = constexprs, options
        self.store_lse, self.zero_fill = store_lse, zero_fill
        self.bound = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        # With in-kernel zero fill the kernel writes every element, so no memset is needed; and
        # empty_like is about half the host time of torch.empty(shape, device=, dtype=).
        out = (torch.empty_like(q, memory_format=torch.contiguous_format) if self.zero_fill
               else torch.zeros(q.shape, device=q.device, dtype=q.dtype))  # contiguous, as assumed
        b, n, h, _ = q.shape
        lse = (torch.empty((b, h, n), device=q.device, dtype=torch.float32) if self.store_lse
               else out)  # the kernel does not touch LSE without STORE_LSE
        args = (q, k, v, out, lse, *self.tables, *self.scalars)
        if self.bound is not None:
            self.bound(*args)
        else:
            self.bound = _FWD.first_launch(self.grid, args, self.constexprs, self.options)
        return out, (lse if self.store_lse else None)


# (shapes, strides, 16-byte alignment, dtype, device, pattern, options) -> plan
_FORWARD_PLANS = SignatureCache()


def _new_plan(q, k, v, segments, rates, causal: bool, scale: float, store_lse: bool,
              cfg: KernelConfig, zero_fill: bool) -> _ForwardPlan:
    b, n, h, d = q.shape
    if causal and cfg.block_m % cfg.block_n:
        raise ValueError(f"causal forward needs block_m {cfg.block_m} to be a multiple of "
                         f"block_n {cfg.block_n}")
    return _ForwardPlan(
        grid=(_grid_blocks(segments, rates, n, cfg.block_m), b * h),
        tables=_per_head_pattern(segments, rates, h, q.device),
        scalars=(*_bnh_strides(q), *_bnh_strides(k), *_bnh_strides(v), n, h, scale * _LOG2E),
        constexprs=dict(HEAD_DIM=d, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=causal,
                        STORE_LSE=store_lse, EVEN=_is_even(segments, rates, cfg.block_m, cfg.block_n),
                        ZERO_FILL=zero_fill),
        options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
        store_lse=store_lse, zero_fill=zero_fill)


def _forward_plan(q, k, v, segments, rates, causal: bool, scale: float, store_lse: bool,
                  config: KernelConfig | None = None, zero_fill: bool = True) -> _ForwardPlan:
    # One key per call: on a GPU box each Python step is a visible part of a 4K-token call.
    key = (q.shape, q.stride(), k.stride(), v.stride(), q.dtype, q.get_device(), segments, rates,
           causal, scale, store_lse, config, zero_fill,
           q.data_ptr() % 16, k.data_ptr() % 16, v.data_ptr() % 16)  # Triton specialises on it
    plan = _FORWARD_PLANS.get(key)
    if plan is None:
        cfg = config or _config(FWD_CONFIGS, q.shape[-1])
        plan = _FORWARD_PLANS.remember(key, _new_plan(q, k, v, segments, rates, causal, scale,
                                                      store_lse, cfg, zero_fill))
    return plan


def _forward(q, k, v, segments, rates, causal: bool, scale: float, store_lse: bool,
             config: KernelConfig | None = None, zero_fill_in_kernel: bool = True):
    """Launch the forward kernel; returns (out, lse or None). lse is (batch, heads, seq) float32.

    ``zero_fill_in_kernel=False`` memsets the output first instead (kept to measure the choice).
    """
    plan = _forward_plan(q, k, v, segments, rates, causal, scale, store_lse, config,
                         zero_fill_in_kernel)
    return plan(q, k, v)


def _backward(q, k, v, out, lse, dout, segments, rates, causal: bool, scale: float,
              config: KernelConfig | None = None):
    """One fused backward launch; returns contiguous (dq, dk, dv) shaped like q, k, v.

    ``out`` and ``dout`` must be contiguous. ``config.block_n`` is the block of rows a program
    owns (keys for dK/dV, queries for dQ); ``config.block_m`` the tile streamed past them.
    """
    b, n, h, d = q.shape
    cfg = config or _config(BWD_CONFIGS, d)
    w_of_head, r_of_head = _per_head_pattern(segments, rates, h, q.device)
    dq, dk, dv = (torch.empty(t.shape, device=t.device, dtype=t.dtype) for t in (q, k, v))
    _BWD.launch(
        (_grid_blocks(segments, rates, n, cfg.block_n), b * h),
        (q, k, v, out, dout, dq, dk, dv, lse, w_of_head, r_of_head,
         *_bnh_strides(q), *_bnh_strides(k), *_bnh_strides(v), n, h, scale, scale * _LOG2E),
        dict(HEAD_DIM=d, BLOCK_MAJOR=cfg.block_n, BLOCK_MINOR=cfg.block_m, CAUSAL=causal,
             EVEN=_is_even(segments, rates, cfg.block_m, cfg.block_n)),
        dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
    return dq, dk, dv


_FWD = CachedLauncher(_dilated_fwd_kernel)
_BWD = CachedLauncher(_dilated_bwd_kernel)


class _DilatedAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: forward saves q, k, v, out and the row log-sum-exp; backward is Triton."""

    @staticmethod
    def forward(ctx, q, k, v, segments, rates, causal, scale):
        out, lse = _forward(q, k, v, segments, rates, causal, scale, store_lse=True)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.pattern = (segments, rates, causal, scale)
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        segments, rates, causal, scale = ctx.pattern
        dq, dk, dv = _backward(q, k, v, out, lse, dout.contiguous(), segments, rates, causal, scale)
        return dq, dk, dv, None, None, None, None


_CHECKED = SignatureCache(limit=4096)  # input signatures that passed check_inputs (checks are pure)


def _known(key: tuple) -> bool:
    try:
        return key in _CHECKED
    except TypeError:  # unhashable pattern values: let the checks name them
        return False


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Sequence[int],
                 rates: Sequence[int], scale: float | None = None) -> None:
    """Raise ValueError/RuntimeError naming the problem if the kernels cannot run these inputs."""
    segments, rates = check_pattern(segments, rates)
    check_scale(scale)
    check_qkv(q, k, v)
    check_dilated_shape(q.shape[1], q.shape[2], segments)
    # In-segment row offsets are 32-bit inside the kernels (cheaper address math).
    longest = max(segments) * max(t.stride(1) for t in (q, k, v))
    if longest >= 2**31:
        raise ValueError(f"segment length {max(segments)} times seq stride is {longest} elements, "
                         f"over the kernels' 32-bit in-segment offsets")
    if q.dtype not in (*_HALF_DTYPES, torch.float32):
        raise ValueError(f"dilated_attention_triton supports float16, bfloat16, float32; got {q.dtype}")
    if q.shape[-1] not in _HEAD_DIMS:
        raise ValueError(f"dilated_attention_triton needs head_dim in {_HEAD_DIMS}, got {q.shape[-1]}")
    if triton is None:
        raise RuntimeError("dilated_attention_triton needs the triton package, which is not installed")
    if not (q.is_cuda or _interpreting()):
        raise ValueError(f"dilated_attention_triton needs CUDA tensors (or TRITON_INTERPRET=1), "
                         f"got device {q.device}")


def dilated_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                             segment_lengths: Sequence[int], dilation_rates: Sequence[int],
                             causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """Dilated attention (docs/semantics.md) with fused Triton kernels.

    q, k, v: ``(batch, seq_len, num_heads, head_dim)``, any strides with unit stride along
    head_dim preferred (others are copied). Returns the same shape and dtype; positions a head
    does not cover are exactly 0. Differentiable when any input requires grad (Triton backward).
    ``segment_lengths`` are used as given: cap them at seq_len before calling, as the spec does.
    Inputs are checked once per signature (shapes, strides, dtypes, devices, pattern, scale).
    """
    segments, rates = tuple(segment_lengths), tuple(dilation_rates)
    key = (qkv_signature(q, k, v), q.stride(), k.stride(), v.stride(), segments, rates, scale)
    if not _known(key):
        check_inputs(q, k, v, segments, rates, scale)
        _CHECKED.remember(key)
    return attend_checked(q, k, v, segments, rates, causal, scale)


def _softmax_scale(q: torch.Tensor, scale: float | None) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def inference_plan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: tuple[int, ...],
                   rates: tuple[int, ...], causal: bool = False, scale: float | None = None):
    """For inputs that passed ``check_inputs``: the no-grad forward for calls whose q, k, v have
    these shapes, strides, dtype, device and 16-byte alignment, as ``plan(q, k, v) -> (out,
    None)``; None where the inputs would first be copied (head_dim not unit-stride).

    A caller that keys its own cache on that signature (``ImprovedDilatedAttention``) calls the
    plan directly and skips this module's per-call lookups.
    """
    if q.stride(-1) != 1 or k.stride(-1) != 1 or v.stride(-1) != 1:
        return None
    return _forward_plan(q, k, v, tuple(segments), tuple(rates), bool(causal),
                         _softmax_scale(q, scale), store_lse=False)


def attend_checked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: tuple[int, ...],
                   rates: tuple[int, ...], causal: bool = False,
                   scale: float | None = None) -> torch.Tensor:
    """``dilated_attention_triton`` for inputs that already passed ``check_inputs`` (tuples)."""
    scale = _softmax_scale(q, scale)
    if q.stride(-1) != 1 or k.stride(-1) != 1 or v.stride(-1) != 1:
        q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return _DilatedAttentionFunction.apply(q, k, v, segments, rates, bool(causal), scale)
    # Inference: no log-sum-exp buffer, so peak memory is q, k, v and out only.
    return _forward(q, k, v, segments, rates, bool(causal), scale, store_lse=False)[0]
