"""Naive attention that builds the full (seq_len x seq_len) mask: the independent reference.

Slow and memory-hungry on purpose: it is written from the definition in docs/semantics.md,
shares no code with the implementations, and is only for tests and the accuracy track at small sizes.
"""
from __future__ import annotations

import math

import torch


def dilated_mask(seq_len: int, num_heads: int, segment_lengths, dilation_rates,
                 causal: bool = False, device=None) -> torch.Tensor:
    """Boolean mask (num_heads, seq_len, seq_len): True where query i may attend key j for head h."""
    m = len(segment_lengths)
    heads_per_group = num_heads // m
    idx = torch.arange(seq_len, device=device)
    masks = []
    for h in range(num_heads):
        g = h // heads_per_group
        w, r = segment_lengths[g], dilation_rates[g]
        segment = idx // w
        selected = (idx % w) % r == h % r
        same_segment = segment[:, None] == segment[None, :]
        mask = same_segment & selected[:, None] & selected[None, :]
        if causal:
            mask = mask & (idx[None, :] <= idx[:, None])
        masks.append(mask)
    return torch.stack(masks)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                     scale: float | None = None) -> torch.Tensor:
    """Softmax attention in float64 under ``mask`` (heads, seq, seq); rows with no key output 0.

    q, k, v: (batch, seq_len, num_heads, head_dim). Returns the same shape in q's dtype.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    qd, kd, vd = (t.double().transpose(1, 2) for t in (q, k, v))  # (b, h, n, d)
    scores = torch.einsum("bhid,bhjd->bhij", qd, kd) * scale
    scores = scores.masked_fill(~mask[None], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)  # fully masked rows
    out = torch.einsum("bhij,bhjd->bhid", weights, vd)
    return out.transpose(1, 2).to(q.dtype)


def reference_dilated_attention(q, k, v, segment_lengths, dilation_rates, causal=False, scale=None):
    """The dilated-attention function of docs/semantics.md, via the full mask."""
    mask = dilated_mask(q.shape[1], q.shape[2], segment_lengths, dilation_rates, causal, q.device)
    return masked_attention(q, k, v, mask, scale)


def reference_dense_attention(q, k, v, causal=False, scale=None):
    n, h = q.shape[1], q.shape[2]
    mask = torch.ones(h, n, n, dtype=torch.bool, device=q.device)
    if causal:
        mask = mask.tril()
    return masked_attention(q, k, v, mask, scale)
