"""Dilated attention as fused Triton kernels (forward and backward), reading q/k/v in place.

Shape convention: q, k, v and the output are ``(batch, seq_len, num_heads, head_dim)``.
What it computes (docs/semantics.md defines it): heads are split into equal groups, group ``g``
with segment length ``w`` and dilation rate ``r``. Head ``h`` of group ``g`` (offset
``o = h % r``) attends, inside each segment ``[s*w, (s+1)*w)``, only among the rows
``s*w + o + r*t``: a strided view of the sequence, so every kernel reads and writes rows with
stride ``r * stride_seq`` instead of gathering. Rows of the other offsets are exactly zero in the
output (written by the same kernels, no separate memset).

Public face:

- ``available(device=, dtype=, head_dim=, segments=, rates=)``: whether the kernels should run
  inputs like these (no tensor needed);
- ``plan(q, k, v, segments, rates, causal, scale)``: checks the inputs once and returns a
  ``DilatedPlan``, the launch for every later input with their signature (shapes, strides, dtype,
  device, 16-byte alignment); ``plan(q, k, v) -> out`` is differentiable when an input needs grad;
- ``attention(q, k, v, segments, rates, causal, scale)``: the same for callers that keep no plans;
- ``forward`` / ``backward``: the two launches on their own, with an optional ``KernelConfig``
  (for probes and sweeps); ``FWD_CONFIGS`` / ``BWD_CONFIGS`` are the default tiles per head_dim.

Under ``TRITON_INTERPRET=1`` (set before this module is imported) the kernels also run on CPU
tensors, slowly, which is what the tests use.
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from .._validate import check_dilated_shape, check_pattern, check_qkv, check_scale
from ._shared import (HALF_DTYPES, HEAD_DIMS, LOG2E, BoundLaunch, CachedLauncher, KernelConfig,
                      cached_plan, has_unit_last_stride, interpreting, jit, needs_grad,
                      online_softmax, signature, softmax_scale, tl, triton, unit_last_stride)

__all__ = ["available", "check", "plan", "attention", "forward", "backward", "default_config",
           "DilatedPlan", "KernelConfig", "FWD_CONFIGS", "BWD_CONFIGS", "FWD_TUNED", "BWD_TUNED"]


def available(*, device: torch.device | str, dtype: torch.dtype, head_dim: int,
              segments: Sequence[int] | None = None, rates: Sequence[int] | None = None) -> bool:
    """True when the Triton kernels should handle inputs on ``device`` of ``dtype`` and ``head_dim``
    (and, if given, this pattern).

    Needs triton, a CUDA device, float16/bfloat16 (float32 falls back to the SDPA path, since
    ``tl.dot`` on float32 would silently run in TF32), head_dim in 16/32/64/128, and, when the
    pattern is given, ``w // r >= 16`` for every group (shorter dilated segments waste most of
    a 16-row MMA tile; the gather/SDPA path is faster there).
    """
    if triton is None or torch.device(device).type != "cuda" or dtype not in HALF_DTYPES:
        return False
    if head_dim not in HEAD_DIMS:
        return False
    if segments is not None and rates is not None:
        if any(w // r < 16 for w, r in zip(segments, rates)):
            return False
    return True


# ----------------------------------------------------------------------------------------------
# Kernels. Index names: t = position inside a dilated segment, L = rows of this head's offset in a
# segment, seg_start = first row of the segment in the sequence. Softmax runs in base 2, so the
# saved log-sum-exp (LSE) is log2(sum exp2(score * scale * log2 e)).
# ----------------------------------------------------------------------------------------------

@jit
def _zero_other_offsets(base, t, o, r, w, stride_n, offs_d,
                        BLOCK: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Store zeros at rows ``o2 + r*t`` (o2 != o) of one segment starting at ``base``."""
    zeros = tl.zeros([BLOCK, HEAD_DIM], dtype=base.dtype.element_ty)
    for j in range(1, r):
        o2 = (o + j) % r
        rows = o2 + r * t
        ptrs = base + rows[:, None].to(tl.int64) * stride_n + offs_d[None, :]
        tl.store(ptrs, zeros, mask=(rows < w)[:, None])


@jit
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
        s = tl.dot(q, tl.trans(k))
        if CAUSAL_MASK:
            s = tl.where(t_q[:, None] >= t_k[None, :], s, float("-inf"))
        if not EVEN:
            s = tl.where((t_k < L)[None, :], s, float("-inf"))
        p, acc, l_i, m_new = online_softmax(acc, l_i, m_i, s, scale_log2)
        if EVEN:
            v = tl.load(v_ptrs)
        else:
            v = tl.load(v_ptrs, mask=(t_k < L)[:, None], other=0.0)
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_new
    return acc, l_i, m_i


@jit
def _segment_block(W_OF_HEAD, R_OF_HEAD, seq_len, num_heads, BLOCK: tl.constexpr):
    """The block this program computes: program (pid, batch * num_heads + head) takes block
    ``blk`` (BLOCK rows) of one dilated segment of ``head``. Returns ``(b, h, w, r, o, active,
    seg_start, blk, L)``: segment length ``w``, rate ``r`` and offset ``o`` of the head, whether
    the program has a block at all (the grid is sized for the group with the most blocks;
    programs past this head's count idle), the segment's first token and the dilated segment's
    length ``L``."""
    pid = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // num_heads).to(tl.int64)
    h = bh % num_heads
    w = tl.load(W_OF_HEAD + h)
    r = tl.load(R_OF_HEAD + h)
    o = h % r
    n_blocks = tl.cdiv(tl.cdiv(w, r), BLOCK)
    active = pid < (seq_len // w) * n_blocks
    seg_start = (pid // n_blocks).to(tl.int64) * w
    blk = pid % n_blocks
    L = (w - o + r - 1) // r
    return b, h, w, r, o, active, seg_start, blk, L


@jit
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
    b, h, w, r, o, active, seg_start, mblk, L = _segment_block(W_OF_HEAD, R_OF_HEAD, seq_len,
                                                               num_heads, BLOCK_M)
    if active:
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


@jit
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


@jit
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


@jit
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


@jit
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
    b, h, w, r, o, active, seg_start, blk, L = _segment_block(W_OF_HEAD, R_OF_HEAD, seq_len,
                                                              num_heads, BLOCK_MAJOR)
    if active:
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


# Tiles tuned per shape bucket, where they beat the per-head_dim default: (head_dim, causal) ->
# ((up to this many tokens, batch * seq_len, config), ...) in increasing order; longer inputs
# take the last entry. From the H200 sweep of scripts/gpu_kernel_probe.py (bf16, 12 heads,
# docs/probes/h200-kernel-probe-2eb71a3.md): not causal, 128x64 tiles on 8 warps win from 16K up
# (0.305 vs 0.315 ms at 32K; 64x64 still wins at 8K: 0.086 vs 0.092); causal at 4K, 64x64 with a
# 4-stage pipeline (0.037 vs 0.043 ms). The causal backward is fastest with 64x64 at every
# length (0.635 vs 0.639 ms at 32K, 0.099 vs 0.107 at 4K); not causal keeps 32x128 except at
# 9K-16K tokens, where 64x64 wins in both H200 sweeps (0.515 vs 0.559 ms and 0.519 vs 0.559 at
# 16K, docs/probes/h200-kernel-probe-088218a.md and -952581d.md) and loses at 8K and 32K.
FWD_TUNED: dict[tuple[int, bool], tuple[tuple[int, KernelConfig], ...]] = {
    (64, False): ((8192, KernelConfig(64, 64, 4, 3)), (2**62, KernelConfig(128, 64, 8, 3))),
    (64, True): ((4096, KernelConfig(64, 64, 4, 4)), (2**62, KernelConfig(64, 64, 4, 3))),
}
BWD_TUNED: dict[tuple[int, bool], tuple[tuple[int, KernelConfig], ...]] = {
    (64, False): ((8192, KernelConfig(32, 128, 4, 3)), (16384, KernelConfig(64, 64, 4, 3)),
                  (2**62, KernelConfig(32, 128, 4, 3))),
    (64, True): ((2**62, KernelConfig(64, 64, 4, 3)),),
}


def _default_config(table: dict[int, KernelConfig], tuned: dict, head_dim: int, causal: bool,
                    tokens: int) -> KernelConfig:
    if interpreting():
        return _INTERPRET_CONFIG
    buckets = tuned.get((head_dim, causal))
    if not buckets:
        return table[head_dim]
    return next((cfg for limit, cfg in buckets if tokens <= limit), buckets[-1][1])


def default_config(head_dim: int, causal: bool, tokens: int, backward: bool = False) -> KernelConfig:
    """The tiles ``plan`` picks for inputs of ``head_dim`` and ``tokens`` = batch * seq_len
    (the forward's, or with ``backward=True`` the backward's)."""
    if backward:
        return _default_config(BWD_CONFIGS, BWD_TUNED, head_dim, bool(causal), tokens)
    return _default_config(FWD_CONFIGS, FWD_TUNED, head_dim, bool(causal), tokens)


@functools.lru_cache(maxsize=1024)
def _is_even(segments, rates, *blocks: int) -> bool:
    """Every head's dilated segment is a whole number of tiles, so loads need no masks."""
    return all(w % r == 0 and (w // r) % blk == 0 for w, r in zip(segments, rates) for blk in blocks)


@functools.lru_cache(maxsize=1024)
def _grid_blocks(segments, rates, seq_len: int, block: int) -> int:
    return max((seq_len // w) * triton.cdiv(-(-w // r), block) for w, r in zip(segments, rates))


def _contiguous_strides(shape: torch.Size) -> tuple[int, int, int]:
    b, n, h, d = shape
    return n * h * d, h * d, d


def check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Sequence[int],
          rates: Sequence[int], scale: float | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Raise ValueError/RuntimeError naming the problem if the kernels cannot run these inputs;
    return the pattern as tuples."""
    segments, rates = check_pattern(segments, rates)
    check_scale(scale)
    check_qkv(q, k, v)
    check_dilated_shape(q.shape[1], q.shape[2], segments)
    # In-segment row offsets are 32-bit inside the kernels (cheaper address math).
    longest = max(segments) * max(t.stride(1) for t in (q, k, v))
    if longest >= 2**31:
        raise ValueError(f"segment length {max(segments)} times seq stride is {longest} elements, "
                         f"over the kernels' 32-bit in-segment offsets")
    if q.dtype not in (*HALF_DTYPES, torch.float32):
        raise ValueError(f"dilated_attention_triton supports float16, bfloat16, float32; got {q.dtype}")
    if q.shape[-1] not in HEAD_DIMS:
        raise ValueError(f"dilated_attention_triton needs head_dim in {HEAD_DIMS}, got {q.shape[-1]}")
    if triton is None:
        raise RuntimeError("dilated_attention_triton needs the triton package, which is not installed")
    if not (q.is_cuda or interpreting()):
        raise ValueError(f"dilated_attention_triton needs CUDA tensors (or TRITON_INTERPRET=1), "
                         f"got device {q.device}")
    return segments, rates


class DilatedPlan:
    """The launches for one input signature (shapes, strides, dtype, device, 16-byte alignment),
    pattern and options, worked out once; each launch binds its compiled kernel on first use.

    ``plan(q, k, v) -> out`` for inputs with that signature: differentiable (Triton backward)
    when an input needs grad, else the inference forward, which allocates no log-sum-exp, so
    peak memory is q, k, v and out. Inputs whose head_dim is not unit-stride are copied first.
    """

    __slots__ = ("copy", "scalars", "bwd_scalars", "tables", "store_lse", "zero_fill",
                 "_fwd", "_fwd_lse", "_bwd")

    def __init__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 segments: tuple[int, ...], rates: tuple[int, ...], causal: bool, scale: float,
                 fwd_config: KernelConfig, bwd_config: KernelConfig, zero_fill: bool = True) -> None:
        b, n, h, d = q.shape
        if causal and fwd_config.block_m % fwd_config.block_n:
            raise ValueError(f"causal forward needs block_m {fwd_config.block_m} to be a multiple "
                             f"of block_n {fwd_config.block_n}")
        self.copy = not has_unit_last_stride(q, k, v)
        strides = ((_contiguous_strides(q.shape), _contiguous_strides(k.shape),
                    _contiguous_strides(v.shape)) if self.copy else
                   tuple((t.stride(0), t.stride(1), t.stride(2)) for t in (q, k, v)))
        flat = tuple(s for triple in strides for s in triple)
        self.tables = _per_head_pattern(segments, rates, h, q.device)  # int32 w, r per head
        self.scalars = (*flat, n, h, scale * LOG2E)
        self.bwd_scalars = (*flat, n, h, scale, scale * LOG2E)
        self.zero_fill = zero_fill

        def fwd(store_lse: bool) -> BoundLaunch:
            cfg = fwd_config
            return BoundLaunch(
                _FWD, (_grid_blocks(segments, rates, n, cfg.block_m), b * h),
                dict(HEAD_DIM=d, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=causal,
                     STORE_LSE=store_lse,
                     EVEN=_is_even(segments, rates, cfg.block_m, cfg.block_n),
                     ZERO_FILL=zero_fill),
                dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))

        def bwd() -> BoundLaunch:
            cfg = bwd_config
            return BoundLaunch(
                _BWD, (_grid_blocks(segments, rates, n, cfg.block_n), b * h),
                dict(HEAD_DIM=d, BLOCK_MAJOR=cfg.block_n, BLOCK_MINOR=cfg.block_m, CAUSAL=causal,
                     EVEN=_is_even(segments, rates, cfg.block_m, cfg.block_n)),
                dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))

        self._fwd, self._fwd_lse = fwd(False), fwd(True)
        # Indexed by whether dout is 16-byte aligned (Triton specialises on it); the other
        # tensors of a backward are this plan's inputs or fresh allocations.
        self._bwd = (bwd(), bwd())

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.copy:
            q, k, v = unit_last_stride(q), unit_last_stride(k), unit_last_stride(v)
        if needs_grad(q, k, v):
            return _DilatedFunction.apply(q, k, v, self)
        return self.forward(q, k, v)[0]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, store_lse: bool = False):
        """(out, lse or None) for unit-last-stride inputs; lse is (batch, heads, seq) float32."""
        # With in-kernel zero fill the kernel writes every element, so no memset is needed; and
        # empty_like is about half the host time of torch.empty(shape, device=, dtype=).
        out = (torch.empty_like(q, memory_format=torch.contiguous_format) if self.zero_fill
               else torch.zeros(q.shape, device=q.device, dtype=q.dtype))  # contiguous, as assumed
        if store_lse:
            b, n, h, _ = q.shape
            lse = torch.empty((b, h, n), device=q.device, dtype=torch.float32)
            self._fwd_lse(q, k, v, out, lse, *self.tables, *self.scalars)
            return out, lse
        self._fwd(q, k, v, out, out, *self.tables, *self.scalars)  # LSE untouched without STORE_LSE
        return out, None

    def backward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                 lse: torch.Tensor, dout: torch.Tensor):
        """One fused backward launch; ``out`` and ``dout`` contiguous. Returns contiguous
        (dq, dk, dv) shaped like q, k, v."""
        # empty_like: about half the host time of torch.empty(shape, device=, dtype=).
        fmt = torch.contiguous_format
        dq, dk, dv = (torch.empty_like(q, memory_format=fmt), torch.empty_like(k, memory_format=fmt),
                      torch.empty_like(v, memory_format=fmt))
        self._bwd[dout.data_ptr() % 16 == 0](q, k, v, out, dout, dq, dk, dv, lse, *self.tables,
                                              *self.bwd_scalars)
        return dq, dk, dv


class _DilatedFunction(torch.autograd.Function):
    """Autograd wrapper: forward saves q, k, v, out and the row log-sum-exp; backward is Triton."""

    @staticmethod
    def forward(ctx, q, k, v, plan: DilatedPlan):
        out, lse = plan.forward(q, k, v, store_lse=True)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan = plan
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = ctx.plan.backward(q, k, v, out, lse, dout.contiguous())
        return dq, dk, dv, None


def plan(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Sequence[int],
         rates: Sequence[int], causal: bool = False, scale: float | None = None, *,
         config: KernelConfig | None = None, backward_config: KernelConfig | None = None,
         zero_fill: bool = True) -> DilatedPlan:
    """Check q, k, v (ValueError/RuntimeError naming the problem) and return the plan for inputs
    with their signature. ``config`` / ``backward_config`` override the default tiles (sweeps);
    ``zero_fill=False`` memsets the output instead of zeroing uncovered rows in the kernel.
    ``segments`` are used as given: cap them at seq_len before calling, as the spec does."""
    segments, rates = check(q, k, v, segments, rates, scale)
    d, tokens, causal = q.shape[-1], q.shape[0] * q.shape[1], bool(causal)
    return DilatedPlan(q, k, v, segments, rates, causal, softmax_scale(d, scale),
                       config or default_config(d, causal, tokens),
                       backward_config or default_config(d, causal, tokens, backward=True),
                       zero_fill)


def _cached(q, k, v, segments, rates, causal, scale, config=None, backward_config=None,
            zero_fill=True) -> DilatedPlan:
    segments, rates = tuple(segments), tuple(rates)
    key = ("dilated", signature(q, k, v), segments, rates, bool(causal), scale, config,
           backward_config, zero_fill)
    try:
        hash(key)
    except TypeError:  # unhashable pattern values: let the checks name them
        check(q, k, v, segments, rates, scale)
        raise
    return cached_plan(key, lambda: plan(q, k, v, segments, rates, causal, scale, config=config,
                                         backward_config=backward_config, zero_fill=zero_fill))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Sequence[int],
              rates: Sequence[int], causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """Dilated attention with the fused kernels (see the module docstring).

    q, k, v: ``(batch, seq_len, num_heads, head_dim)``, any strides (unit stride along head_dim
    preferred; others are copied). Returns the same shape and dtype; positions a head does not
    cover are exactly 0. Differentiable when any input requires grad. Inputs are checked once
    per signature; the plan is kept in the package's plan cache.
    """
    return _cached(q, k, v, segments, rates, causal, scale)(q, k, v)


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Sequence[int],
            rates: Sequence[int], causal: bool = False, scale: float | None = None, *,
            store_lse: bool = False, config: KernelConfig | None = None,
            zero_fill: bool = True):
    """The forward launch alone: (out, lse or None); lse is (batch, heads, seq) float32 (base-2
    log-sum-exp of the scaled scores). q, k, v need unit stride along head_dim."""
    p = _cached(q, k, v, segments, rates, causal, scale, config=config, zero_fill=zero_fill)
    return p.forward(q, k, v, store_lse)


def backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
             lse: torch.Tensor, dout: torch.Tensor, segments: Sequence[int], rates: Sequence[int],
             causal: bool = False, scale: float | None = None, *,
             config: KernelConfig | None = None):
    """The backward launch alone: (dq, dk, dv) from ``forward(..., store_lse=True)``'s out and
    lse; ``out`` and ``dout`` contiguous. ``config.block_n`` is the block of rows a program owns
    (keys for dK/dV, queries for dQ); ``config.block_m`` the tile streamed past them."""
    p = _cached(q, k, v, segments, rates, causal, scale, backward_config=config)
    return p.backward(q, k, v, out, lse, dout)


_FWD = CachedLauncher(_dilated_fwd_kernel)
_BWD = CachedLauncher(_dilated_bwd_kernel)
