"""Multi-head dilated attention shaped like ``torch.nn.MultiheadAttention``.

``forward(query, key, value)`` takes ``(batch, seq_len, embed_dim)`` (or ``(seq_len, batch,
embed_dim)`` with ``batch_first=False``), projects to q/k/v ``(batch, seq_len, num_heads,
head_dim)``, runs the dilated core and projects back; it returns ``(out, None)`` like
``nn.MultiheadAttention`` (attention weights are never materialised).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._validate import check_pattern
from .dilated import DilatedAttention
from .improved import ImprovedDilatedAttention


class _MultiheadDilatedBase(nn.Module):
    core_class: type[nn.Module] = DilatedAttention

    def __init__(self, embed_dim: int, num_heads: int, segment_lengths: Sequence[int],
                 dilation_rates: Sequence[int], dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True, device=None, dtype=None):
        super().__init__()
        segments, rates = check_pattern(segment_lengths, dilation_rates)
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} must be a positive multiple of num_heads {num_heads}")
        if num_heads % len(segments) != 0:
            raise ValueError(f"num_heads {num_heads} is not divisible by the number of groups {len(segments)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.attention = self.core_class(segments, rates, dropout=dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                is_causal: bool = False) -> tuple[torch.Tensor, None]:
        if query.dim() != 3:
            raise ValueError(f"query must be 3-D (batch, seq_len, embed_dim), got shape {tuple(query.shape)}")
        if query.shape[-1] != self.embed_dim:
            raise ValueError(f"query embed_dim {query.shape[-1]} != module embed_dim {self.embed_dim}")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, n, _ = query.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, x.shape[1], self.num_heads, self.head_dim)

        q, k, v = heads(self.q_proj(query)), heads(self.k_proj(key)), heads(self.v_proj(value))
        out = self.attention(q, k, v, is_causal=is_causal)
        out = self.out_proj(out.reshape(b, n, self.embed_dim))
        return (out if self.batch_first else out.transpose(0, 1)), None


class MultiheadDilatedAttention(_MultiheadDilatedBase):
    """Projections around the plain ``DilatedAttention`` core."""

    core_class = DilatedAttention


class ImprovedMultiheadDilatedAttention(_MultiheadDilatedBase):
    """Projections around the vectorised ``ImprovedDilatedAttention`` core."""

    core_class = ImprovedDilatedAttention
