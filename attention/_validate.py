"""Input checks shared by every implementation; each failure is one ValueError naming the numbers.

Shape convention: q, k, v are ``(batch, seq_len, num_heads, head_dim)``.
"""
from __future__ import annotations

from typing import Sequence

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, same_seq_len: bool = True) -> None:
    """Rank 4, one dtype, one device, matching batch/heads/head_dim (and seq_len if asked)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D (batch, seq_len, num_heads, head_dim), "
                             f"got {t.dim()}-D shape {tuple(t.shape)}")
        if t.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v devices differ: {q.device}, {k.device}, {v.device}")
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    b, n, h, d = q.shape
    if (k.shape[0], k.shape[2], k.shape[3]) != (b, h, d):
        raise ValueError(f"q shape {tuple(q.shape)} and k shape {tuple(k.shape)} differ in "
                         f"batch, num_heads or head_dim")
    if same_seq_len and k.shape[1] != n:
        raise ValueError(f"q seq_len {n} and k/v seq_len {k.shape[1]} differ")


def qkv_signature(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple:
    """Everything ``check_qkv`` looks at (shapes, dtypes, devices): a key for inputs already checked.

    Modules cache their checks by it, so a call with a known signature costs a dict lookup, not
    a dozen Python comparisons (a measurable part of a short call on a GPU; see docs/gpu-results.md).
    """
    return q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.device, k.device, v.device


def check_pattern(segment_lengths: Sequence[int],
                  dilation_rates: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Non-empty, equal-length, positive integer segment lengths and dilation rates, as tuples."""
    segments, rates = tuple(segment_lengths), tuple(dilation_rates)
    if not segments or not rates:
        raise ValueError(f"segment_lengths {segments} and dilation_rates {rates} must be non-empty")
    if len(segments) != len(rates):
        raise ValueError(f"segment_lengths {segments} ({len(segments)} groups) and dilation_rates "
                         f"{rates} ({len(rates)} groups) must have the same length")
    for name, values in (("segment_lengths", segments), ("dilation_rates", rates)):
        bad = [x for x in values if isinstance(x, bool) or not isinstance(x, int) or x <= 0]
        if bad:
            raise ValueError(f"{name} {values} must be positive integers; bad values: {bad}")
    return segments, rates


def check_dilated_shape(seq_len: int, num_heads: int, segments: Sequence[int]) -> None:
    """num_heads divisible by the number of groups; seq_len divisible by every segment."""
    if num_heads % len(segments) != 0:
        raise ValueError(f"num_heads {num_heads} is not divisible by the number of groups "
                         f"{len(segments)} (segment_lengths {tuple(segments)})")
    for w in segments:
        if seq_len % w != 0:
            raise ValueError(f"seq_len {seq_len} is not divisible by segment length {w}")


def check_scale(scale: float | None) -> None:
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
