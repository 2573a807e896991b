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

from ._validate import check_dropout, check_flag, check_pattern, check_positive_int
from .dilated import DilatedAttention
from .improved import ImprovedDilatedAttention


class _MultiheadDilatedBase(nn.Module):
    core_class: type[nn.Module] = DilatedAttention

    def __init__(self, embed_dim: int, num_heads: int, segment_lengths: Sequence[int],
                 dilation_rates: Sequence[int], dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = True, device=None, dtype=None):
        super().__init__()
        segments, rates = check_pattern(segment_lengths, dilation_rates)
        embed_dim = check_positive_int(embed_dim, "embed_dim")
        num_heads = check_positive_int(num_heads, "num_heads")
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} must be a positive multiple of num_heads {num_heads}")
        if num_heads % len(segments) != 0:
            raise ValueError(f"num_heads {num_heads} is not divisible by the number of groups {len(segments)}")
        check_dropout(dropout)
        check_flag(bias, "bias")
        check_flag(batch_first, "batch_first")
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
        self._check_inputs(query, key, value)
        check_flag(is_causal, "is_causal")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        b, n, _ = query.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, x.shape[1], self.num_heads, self.head_dim)

        q, k, v = heads(self.q_proj(query)), heads(self.k_proj(key)), heads(self.v_proj(value))
        out = self.attention(q, k, v, is_causal=is_causal)
        out = self.out_proj(out.reshape(b, n, self.embed_dim))
        return (out if self.batch_first else out.transpose(0, 1)), None


    def _check_inputs(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        """Three 3-D float tensors of one batch size and the module's embed_dim; key and value
        of one length (the dilated core then asks query and key for the same length)."""
        layout = "(batch, seq_len, embed_dim)" if self.batch_first else "(seq_len, batch, embed_dim)"
        batch_dim = 0 if self.batch_first else 1
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{name} must be a torch.Tensor {layout}, got {type(t).__name__}")
            if t.dim() != 3:
                raise ValueError(f"{name} must be 3-D {layout}, got shape {tuple(t.shape)}")
            if t.shape[-1] != self.embed_dim:
                raise ValueError(f"{name} embed_dim {t.shape[-1]} != module embed_dim {self.embed_dim} "
                                 f"({name} shape {tuple(t.shape)})")
            if not t.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
            if t.shape[batch_dim] != query.shape[batch_dim]:
                raise ValueError(f"{name} batch {t.shape[batch_dim]} != query batch {query.shape[batch_dim]}")
        if key.shape != value.shape:
            raise ValueError(f"key and value shapes differ: {tuple(key.shape)} vs {tuple(value.shape)}")
        seq_dim = 1 - batch_dim
        if key.shape[seq_dim] != query.shape[seq_dim]:
            raise ValueError(f"key seq_len {key.shape[seq_dim]} != query seq_len {query.shape[seq_dim]}: "
                             "dilated attention attends within segments of one sequence")


class MultiheadDilatedAttention(_MultiheadDilatedBase):
    """Projections around the plain ``DilatedAttention`` core."""

    core_class = DilatedAttention


class ImprovedMultiheadDilatedAttention(_MultiheadDilatedBase):
    """Projections around the vectorised ``ImprovedDilatedAttention`` core."""

    core_class = ImprovedDilatedAttention
