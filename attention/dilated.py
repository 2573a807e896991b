"""Dilated attention written plainly: loops over heads and segments (the readable version).

Semantics: docs/semantics.md. q, k, v and the output are
``(batch, seq_len, num_heads, head_dim)``. ``ImprovedDilatedAttention`` computes the same
function, vectorised.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_dilated_shape, check_dropout, check_flag, check_pattern, check_qkv, check_scale


class DilatedAttention(nn.Module):
    """LongNet dilated attention, one SDPA call per (head, segment).

    Head ``h`` of group ``g`` attends, inside each segment of ``segment_lengths[g]`` tokens, among
    the positions ``t`` with ``t % dilation_rates[g] == h % dilation_rates[g]``; other positions
    output 0 for that head. ``dropout`` applies to attention weights in training mode.
    """

    def __init__(self, segment_lengths: Sequence[int], dilation_rates: Sequence[int],
                 causal: bool = False, scale: float | None = None, dropout: float = 0.0):
        super().__init__()
        self.segment_lengths, self.dilation_rates = check_pattern(segment_lengths, dilation_rates)
        check_flag(causal, "causal")
        check_scale(scale)
        check_dropout(dropout)
        self.causal, self.scale, self.dropout = causal, scale, dropout

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                is_causal: bool | None = None) -> torch.Tensor:
        check_qkv(q, k, v)
        check_flag(is_causal, "is_causal", allow_none=True)
        batch, seq_len, num_heads, _ = q.shape
        check_dilated_shape(seq_len, num_heads, self.segment_lengths)
        causal = self.causal if is_causal is None else is_causal
        dropout = self.dropout if self.training else 0.0
        heads_per_group = num_heads // len(self.segment_lengths)
        out = torch.zeros_like(q)
        for h in range(num_heads):
            g = h // heads_per_group
            w, r = self.segment_lengths[g], self.dilation_rates[g]
            for start in range(0, seq_len, w):
                rows = torch.arange(start + h % r, start + w, r, device=q.device)
                if rows.numel() == 0:
                    continue
                # (batch, rows, head_dim) -> (batch, 1, rows, head_dim) for SDPA
                qs, ks, vs = (t[:, rows, h].unsqueeze(1) for t in (q, k, v))
                o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=causal,
                                                   scale=self.scale, dropout_p=dropout)
                out[:, rows, h] = o.squeeze(1)
        return out
