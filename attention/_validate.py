"""Input checks shared by every implementation; each failure is one ValueError naming the numbers.

Shape convention: q, k, v are ``(batch, seq_len, num_heads, head_dim)``.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _describe(value) -> str:
    """``value`` as an error message shows it: its repr, shortened, and its type when that helps."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text if isinstance(value, (int, float, str, type(None))) else f"{text} ({type(value).__name__})"


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, same_seq_len: bool = True) -> None:
    """Tensors of rank 4, one dtype, one device, matching batch/heads/head_dim (and seq_len if
    asked); num_heads and head_dim at least 1, and keys for every query."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor (batch, seq_len, num_heads, head_dim), "
                             f"got {_describe(t)}")
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
    if h < 1 or d < 1:
        raise ValueError(f"num_heads and head_dim must be at least 1, got q shape {tuple(q.shape)}")
    if k.shape[1] == 0 and n > 0:
        raise ValueError(f"k/v seq_len is 0 but q has {n} positions: a query needs at least one key")


def qkv_signature(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple:
    """Everything ``check_qkv`` looks at (shapes, dtypes, devices): a key for inputs already checked.

    Modules cache their checks by it, so a call with a known signature costs a dict lookup, not
    a dozen Python comparisons (a measurable part of a short call on a GPU; see docs/gpu-results.md).
    """
    try:
        return q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.device, k.device, v.device
    except AttributeError:
        check_qkv(q, k, v, same_seq_len=False)  # names the argument that is not a tensor
        raise


def check_pattern(segment_lengths: Sequence[int],
                  dilation_rates: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Non-empty, equal-length, positive integer segment lengths and dilation rates, as tuples."""
    for name, values in (("segment_lengths", segment_lengths), ("dilation_rates", dilation_rates)):
        # Order matters (group g pairs segment_lengths[g] with dilation_rates[g]): no sets or dicts.
        if isinstance(values, (str, bytes, set, frozenset, dict)) or not hasattr(values, "__iter__"):
            example = "[2048, 4096]" if name == "segment_lengths" else "[1, 2]"
            raise ValueError(f"{name} must be a list or tuple of positive integers (e.g. {example}), "
                             f"got {_describe(values)}")
    try:
        segments, rates = tuple(segment_lengths), tuple(dilation_rates)
    except TypeError as exc:  # e.g. a 0-d tensor
        raise ValueError(f"segment_lengths and dilation_rates must be lists of positive integers, got "
                         f"{_describe(segment_lengths)} and {_describe(dilation_rates)} ({exc})") from None
    if not segments or not rates:
        raise ValueError(f"segment_lengths {segments} and dilation_rates {rates} must be non-empty")
    if len(segments) != len(rates):
        raise ValueError(f"segment_lengths {segments} ({len(segments)} groups) and dilation_rates "
                         f"{rates} ({len(rates)} groups) must have the same length")
    for name, values in (("segment_lengths", segments), ("dilation_rates", rates)):
        bad = [x for x in values if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x <= 0]
        if bad:
            raise ValueError(f"{name} {values} must be positive integers; bad values: {bad}")
    return tuple(int(x) for x in segments), tuple(int(x) for x in rates)


def check_dilated_shape(seq_len: int, num_heads: int, segments: Sequence[int]) -> None:
    """num_heads divisible by the number of groups; seq_len divisible by every segment."""
    if num_heads % len(segments) != 0:
        raise ValueError(f"num_heads {num_heads} is not divisible by the number of groups "
                         f"{len(segments)} (segment_lengths {tuple(segments)})")
    for w in segments:
        if seq_len % w != 0:
            raise ValueError(f"seq_len {seq_len} is not divisible by segment length {w}")


def check_scale(scale: float | None) -> None:
    """None (1 / sqrt(head_dim)) or a finite number > 0: an infinite scale makes every output NaN."""
    if scale is None:
        return
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise ValueError(f"scale must be a finite number > 0 or None, got {_describe(scale)}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0 or None, got {scale}")


def check_dropout(dropout: float) -> None:
    """A probability in [0, 1): the chance of dropping each attention weight in training mode."""
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1), got {_describe(dropout)}")


def check_flag(value, name: str, allow_none: bool = False) -> None:
    """True or False (or None where that means "the module's default")."""
    if value is None and allow_none:
        return
    if not isinstance(value, bool):
        expected = "True, False or None" if allow_none else "True or False"
        raise ValueError(f"{name} must be {expected}, got {_describe(value)}")


def check_positive_int(value, name: str) -> int:
    """An integer >= 1 (not a bool, not a float), as int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {_describe(value)}")
    return int(value)


def check_choice(value, name: str, choices: Sequence[str]) -> None:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {_describe(value)}; choose one of {tuple(choices)}")
