"""Vectorised dilated attention: one SDPA call per (group, dilation offset), no segment loop.

q, k, v and the output are ``(batch, seq_len, num_heads, head_dim)``; semantics are
docs/semantics.md, the same function as ``DilatedAttention`` to float tolerance.

How: view the sequence as ``(batch, seq_len / w, w, heads, head_dim)``. The positions one head uses
are ``[..., offset::r, h]`` and the heads of one group sharing ``offset = h % r`` are a strided head
slice, so each (group, offset) is a pure strided view; folding ``seq_len / w`` into the batch gives
one SDPA call over all segments, and SDPA picks its own kernel. Nothing is ``seq_len x seq_len``:
memory is linear in seq_len. On CUDA, the Triton kernels of ``attention.kernels.dilated`` are
used when they are importable and say they can run the input.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from ._cache import SignatureCache
from ._groups import HeadSlice, head_slices
from ._validate import (check_choice, check_dilated_shape, check_dropout, check_flag, check_pattern, check_qkv,
                        check_scale, qkv_signature)

BACKENDS = ("auto", "sdpa", "triton")


def attend_part(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, part: HeadSlice,
                causal: bool = False, scale: float | None = None, dropout: float = 0.0) -> None:
    """Write into ``out`` the attention of one (group, offset) head slice: one SDPA call.

    All of q, k, v, out are ``(batch, seq_len, num_heads, head_dim)`` with seq_len divisible by
    ``part.segment``; only the rows and heads of ``part`` are written.
    """
    batch, seq_len, num_heads, head_dim = q.shape
    w = part.segment
    n_seg = seq_len // w

    def rows_of(t: torch.Tensor) -> torch.Tensor:
        # (b, n/w, w, H, d) -> rows offset::r, heads of the part -> (b, n/w, rows, heads, d), a view
        return t.view(batch, n_seg, w, num_heads, head_dim)[:, :, part.offset::part.rate, part.heads]

    def pick(t: torch.Tensor) -> torch.Tensor:
        sel = rows_of(t)  # fold segments into the batch: (b * n/w, heads, rows, d)
        return sel.reshape(batch * n_seg, sel.shape[2], sel.shape[3], head_dim).transpose(1, 2)

    o = F.scaled_dot_product_attention(pick(q), pick(k), pick(v), is_causal=causal,
                                       scale=scale, dropout_p=dropout)
    rows_of(out).copy_(o.transpose(1, 2).reshape(batch, n_seg, o.shape[2], o.shape[1], head_dim))


def dilated_attention_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           segments: Sequence[int], rates: Sequence[int], causal: bool = False,
                           scale: float | None = None, dropout: float = 0.0) -> torch.Tensor:
    """The vectorised SDPA path on already-validated inputs; uncovered positions are exactly 0."""
    out = q.new_zeros(q.shape)
    for part in head_slices(q.shape[2], segments, rates):
        attend_part(q, k, v, out, part, causal, scale, dropout)
    return out


class ImprovedDilatedAttention(nn.Module):
    """Same function as ``DilatedAttention``, vectorised (see module docstring).

    ``backend``: "auto" (Triton on CUDA when available, else SDPA), "sdpa", or "triton" (error if
    the Triton kernel cannot run the input). ``last_backend`` says which one ran.
    """

    def __init__(self, segment_lengths: Sequence[int], dilation_rates: Sequence[int],
                 causal: bool = False, scale: float | None = None, dropout: float = 0.0,
                 backend: str = "auto"):
        super().__init__()
        self.segment_lengths, self.dilation_rates = check_pattern(segment_lengths, dilation_rates)
        check_flag(causal, "causal")
        check_scale(scale)
        check_dropout(dropout)
        check_choice(backend, "backend", BACKENDS)
        self.causal, self.scale, self.dropout, self.backend = causal, scale, dropout, backend
        self.last_backend: str | None = None
        # Input signature (+ 16-byte alignment, causal, dropout) -> "sdpa" or the Triton plan
        # (``kernels.dilated.plan``) for inputs with that signature. Checks run once per
        # signature (they only read shapes, strides, dtypes and devices); a repeated call is one
        # lookup and one launch, which matters where a 4K-token kernel takes 44 us
        # (docs/gpu-kernel.md).
        self._routes = SignatureCache()

    def _use_triton(self, q: torch.Tensor, dropout: float) -> bool:
        if self.backend == "sdpa":
            return False
        mod = kernels.load("dilated")
        ok = (mod is not None and dropout == 0.0
              and mod.available(device=q.device, dtype=q.dtype, head_dim=q.shape[-1],
                                segments=self.segment_lengths, rates=self.dilation_rates))
        if self.backend == "triton" and not ok:
            why = ("attention.kernels.dilated is not importable" if mod is None
                   else "it needs CUDA, no dropout, fp16/bf16, a supported head_dim and w // r >= 16")
            raise RuntimeError(f"Triton dilated attention cannot run this input: {why}")
        return ok

    def _route(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float,
               causal: bool):
        """Check the inputs; return "sdpa" or the Triton plan for inputs with this signature."""
        check_qkv(q, k, v)
        check_flag(causal, "is_causal")
        check_dilated_shape(q.shape[1], q.shape[2], self.segment_lengths)
        if not self._use_triton(q, dropout):
            return "sdpa"
        return kernels.load("dilated").plan(q, k, v, self.segment_lengths, self.dilation_rates,
                                            causal, self.scale)

    def _set_last_backend(self, name: str) -> None:
        if self.last_backend != name:  # nn.Module.__setattr__ is slow enough to show per call
            self.last_backend = name

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                is_causal: bool | None = None) -> torch.Tensor:
        causal = self.causal if is_causal is None else is_causal
        if causal is not True and causal is not False:  # before it goes into a dict key
            check_flag(is_causal, "is_causal", allow_none=True)
        dropout = self.dropout if self.training else 0.0
        key = (qkv_signature(q, k, v), q.stride(), k.stride(), v.stride(), dropout, causal,
               self.backend, q.data_ptr() % 16, k.data_ptr() % 16, v.data_ptr() % 16)
        route = self._routes.get(key)
        if route is None:
            route = self._routes.remember(key, self._route(q, k, v, dropout, causal))
        if route == "sdpa":
            self._set_last_backend("sdpa")
            return dilated_attention_sdpa(q, k, v, self.segment_lengths, self.dilation_rates,
                                          causal, self.scale, dropout)
        self._set_last_backend("triton")
        return route(q, k, v)
