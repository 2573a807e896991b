"""Block-sparse attention: each query block attends a fixed set of key blocks.

q, k, v and the output are ``(batch, seq_len, num_heads, head_dim)``. The pattern is data: a
``BlockPattern`` holds a boolean ``(num_blocks, num_blocks)`` layout (query block i may attend key
block j), shared by every head and batch element, in the spirit of flex_attention's ``BlockMask``.

Three ways to run it, same function:

- "triton": ``attention.kernels.block_sparse``, one fused kernel walking each query block's list of
  key blocks, reading q/k/v in place. Forward only (inference), CUDA fp16/bf16.
- "flex": ``torch.nn.attention.flex_attention`` with a ``BlockMask`` built from the layout
  (torch.compile'd on CUDA; eager elsewhere, which materialises the full score matrix and is slow).
- "gather": gather the key/value blocks each query block attends, then one batched SDPA call per
  bucket of query blocks with similar block counts (rows padded within a bucket and masked).
  Memory grows with the allowed blocks, never n^2.

"auto" picks triton on CUDA when no gradient is needed and the kernel can run the input, flex on
CUDA otherwise, gather elsewhere; ``last_backend`` records which ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from ._cache import SignatureCache
from ._validate import check_choice, check_flag, check_positive_int, check_qkv, check_scale, qkv_signature

PATTERN_KINDS = ("local", "dilated", "global", "local_dilated_global")
BACKENDS = ("auto", "triton", "flex", "gather")


def _band(nb: int, width: int) -> torch.Tensor:
    i = torch.arange(nb)
    return (i[:, None] - i[None, :]).abs() <= width


def _strided(nb: int, stride: int) -> torch.Tensor:
    i = torch.arange(nb)
    return (i[:, None] - i[None, :]) % stride == 0


def _global(nb: int, tokens: int) -> torch.Tensor:
    i = torch.arange(nb)
    return (i[:, None] < tokens) | (i[None, :] < tokens)


def _layout(kind: str, nb: int, knob: int) -> torch.Tensor:
    """Layout of ``kind`` with its one tunable parameter ``knob`` (always includes the diagonal)."""
    if kind == "local":
        return _band(nb, knob)
    if kind == "dilated":
        return _strided(nb, knob)
    if kind == "global":
        return _global(nb, knob) | _band(nb, 0)
    return _global(nb, 1) | _band(nb, 1) | _strided(nb, knob)  # local_dilated_global


def _knob_range(kind: str, nb: int) -> range:
    # local: window 0..nb-1; dilated/combined: stride 1..nb+1 (nb+1: no stride term); global: blocks 0..nb
    return range(0, nb) if kind == "local" else range(0, nb + 1) if kind == "global" else range(1, nb + 2)


@dataclass(frozen=True, eq=False)
class BlockPattern:
    """Which key blocks each query block attends.

    ``layout``: bool ``(num_blocks, num_blocks)``; ``block_size`` in tokens; ``causal`` keeps only
    blocks at or below the diagonal (and, inside diagonal blocks, keys at or before the query).
    """

    layout: torch.Tensor
    block_size: int
    causal: bool = False
    kind: str = "custom"
    # Derived index tensors (gather buckets, flex BlockMask) per device, built on first use.
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def cached(self, key: tuple, build):
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def __post_init__(self):
        lay = self.layout
        if not isinstance(lay, torch.Tensor):
            raise ValueError(f"layout must be a square bool torch.Tensor, got {type(lay).__name__}")
        check_positive_int(self.block_size, "block_size")
        if lay.dtype != torch.bool or lay.dim() != 2 or lay.shape[0] != lay.shape[1]:
            raise ValueError(f"layout must be a square bool matrix, got {lay.dtype} shape {tuple(lay.shape)}")
        if self.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {self.block_size}")
        missing = (~lay.diagonal()).nonzero().flatten().tolist()
        if missing:
            # Without its own block a (causal) query row could see no key at all.
            raise ValueError(f"every query block must attend its own key block; missing for blocks {missing[:8]}")
        if self.causal:
            object.__setattr__(self, "layout", lay & torch.ones_like(lay).tril())

    @classmethod
    def make(cls, seq_len: int, block_size: int, kind: str = "local_dilated_global",
             sparsity: float = 0.9, causal: bool = False) -> "BlockPattern":
        """The ``kind`` pattern whose one parameter gives the sparsity closest to ``sparsity``.

        local: band |i - j| <= window; dilated: (i - j) % stride == 0; global: the first blocks
        attend and are attended by all; local_dilated_global: 1 global block + band of 1 + stride.
        """
        check_choice(kind, "block pattern", PATTERN_KINDS)
        check_positive_int(seq_len, "seq_len")
        check_positive_int(block_size, "block_size")
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
        if block_size <= 0 or seq_len <= 0 or seq_len % block_size != 0:
            raise ValueError(f"seq_len {seq_len} is not a positive multiple of block_size {block_size}")
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        nb = seq_len // block_size
        knobs = _knob_range(kind, nb)

        def build(i: int) -> "BlockPattern":
            return cls(_layout(kind, nb, knobs[i]), block_size, causal, kind)

        # Sparsity moves (nearly) monotonically along the knobs (up with the stride, down with a
        # wider window or more global blocks): bisect, then look at the neighbours, so long
        # sequences cost O(log blocks) layouts rather than O(blocks). The base of a combined
        # pattern may already be denser than asked; sparsity() reports what was reached.
        sign = -1.0 if kind in ("local", "global") else 1.0
        lo, hi = 0, len(knobs) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if sign * build(mid).sparsity() < sign * sparsity:
                lo = mid + 1
            else:
                hi = mid
        candidates = [build(i) for i in range(max(0, lo - 2), min(len(knobs), lo + 3))]
        return min(candidates, key=lambda p: abs(p.sparsity() - sparsity))

    @property
    def num_blocks(self) -> int:
        return self.layout.shape[0]

    def allowed_blocks(self) -> int:
        return int(self.layout.sum())

    def sparsity(self) -> float:
        """Fraction of the blocks dense attention (causal: the lower triangle) would compute that are skipped."""
        nb = self.num_blocks
        dense = nb * (nb + 1) // 2 if self.causal else nb * nb
        return 1.0 - self.allowed_blocks() / dense

    def token_mask(self, device=None) -> torch.Tensor:
        """The full bool ``(seq_len, seq_len)`` mask this pattern means (for references and tests)."""
        bs = self.block_size
        mask = self.layout.to(device).repeat_interleave(bs, 0).repeat_interleave(bs, 1)
        return mask.tril() if self.causal else mask

    def __repr__(self) -> str:
        return (f"BlockPattern(kind={self.kind!r}, blocks={self.num_blocks}x{self.num_blocks}, "
                f"block_size={self.block_size}, causal={self.causal}, "
                f"allowed={self.allowed_blocks()}, sparsity={self.sparsity():.3f})")


def _gather_buckets(pattern: BlockPattern, device) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Query blocks bucketed by their key-block count rounded up to a power of two.

    Padding every row to the longest one would make a single global row turn the whole gather
    dense; buckets keep padding under 2x with at most log2(blocks) + 1 SDPA calls. Each bucket is
    (query block ids (R,), key block ids (R, K) with each row's allowed blocks first, valid (R, K)).
    """
    lay = pattern.layout
    counts = lay.sum(1)
    widths = torch.minimum(2 ** torch.ceil(torch.log2(counts.double())).long(), torch.tensor(lay.shape[1]))
    order = torch.sort(lay.to(torch.int8), dim=1, descending=True, stable=True).indices
    buckets = []
    for width in torch.unique(widths).tolist():
        rows = (widths == width).nonzero().flatten()
        valid = torch.arange(width)[None, :] < counts[rows, None]
        buckets.append((rows.to(device), order[rows, :width].to(device), valid.to(device)))
    return buckets


def _attend_bucket(q5: torch.Tensor, k5: torch.Tensor, v5: torch.Tensor, rows: torch.Tensor,
                   idx: torch.Tensor, valid: torch.Tensor, causal: bool, scale: float | None) -> torch.Tensor:
    """q5/k5/v5: (b, blocks, bs, h, d). Returns (b, R, bs, h, d) for the bucket's query blocks."""
    b, _, bs, h, d = q5.shape
    r, width = idx.shape
    qb = q5[:, rows].reshape(b * r, bs, h, d).transpose(1, 2)
    kb, vb = (t[:, idx].reshape(b * r, width * bs, h, d).transpose(1, 2) for t in (k5, v5))
    mask = None
    if causal or not bool(valid.all()):
        arange = torch.arange(bs, device=q5.device)
        mask = valid.repeat_interleave(bs, 1)[:, None, :].expand(r, bs, width * bs)
        if causal:
            key_pos = (idx[:, :, None] * bs + arange).reshape(r, 1, width * bs)
            query_pos = (rows[:, None] * bs + arange)[:, :, None]
            mask = mask & (key_pos <= query_pos)
        mask = mask[None, :, None].expand(b, r, 1, bs, width * bs).reshape(b * r, 1, bs, width * bs)
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, scale=scale)
    return out.transpose(1, 2).reshape(b, r, bs, h, d)


def block_sparse_gather(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockPattern,
                        scale: float | None = None) -> torch.Tensor:
    """Gather each query block's key/value blocks; one batched SDPA call per bucket of rows."""
    b, n, h, d = q.shape
    shape5 = (b, pattern.num_blocks, pattern.block_size, h, d)
    q5, k5, v5 = (t.reshape(shape5) for t in (q, k, v))
    buckets = pattern.cached(("gather", q.device), lambda: _gather_buckets(pattern, q.device))
    if len(buckets) == 1:  # every query block in one call: no scatter needed
        rows, idx, valid = buckets[0]
        return _attend_bucket(q5, k5, v5, rows, idx, valid, pattern.causal, scale).reshape(b, n, h, d)
    out = q.new_zeros(shape5)
    for rows, idx, valid in buckets:
        out[:, rows] = _attend_bucket(q5, k5, v5, rows, idx, valid, pattern.causal, scale)
    return out.reshape(b, n, h, d)


def flex_block_mask(pattern: BlockPattern, device):
    """The pattern as a flex_attention ``BlockMask`` (off-diagonal blocks full; causal diagonal partial)."""
    from torch.nn.attention.flex_attention import BlockMask

    lay = pattern.layout.to(device)
    bs, nb = pattern.block_size, pattern.num_blocks
    partial = torch.eye(nb, dtype=torch.bool, device=device) if pattern.causal else torch.zeros_like(lay)
    full = lay & ~partial

    def as_kv(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        counts = m.sum(1).to(torch.int32)
        indices = torch.sort(m.to(torch.int8), dim=1, descending=True, stable=True).indices.to(torch.int32)
        return counts[None, None], indices[None, None]

    def mask_mod(b, h, q_idx, kv_idx):
        # Eager flex evaluates this everywhere, so it must carry the whole pattern, not just causality.
        allowed = lay[q_idx // bs, kv_idx // bs]
        return allowed & (kv_idx <= q_idx) if pattern.causal else allowed

    kv_num, kv_idx = as_kv(partial)
    full_num, full_idx = as_kv(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=bs, mask_mod=mask_mod,
                                    seq_lengths=(nb * bs, nb * bs))


_COMPILED_FLEX = None


def _flex_attention(device_type: str):
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import flex_attention

    if device_type != "cuda":
        return flex_attention  # eager: runs anywhere, unfused
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=False)
    return _COMPILED_FLEX


def block_sparse_flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockPattern,
                      scale: float | None = None) -> torch.Tensor:
    block_mask = pattern.cached(("flex", q.device), lambda: flex_block_mask(pattern, q.device))
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    out = _flex_attention(q.device.type)(qt, kt, vt, block_mask=block_mask, scale=scale)
    return out.transpose(1, 2)


class BlockSparseAttention(nn.Module):
    """Attention restricted to a ``BlockPattern`` (given, or made from kind + target sparsity).

    The pattern is built lazily for each new seq_len. ``backend``: "auto" | "flex" | "gather".
    """

    def __init__(self, block_size: int = 128, sparsity: float = 0.9, pattern: str = "local_dilated_global",
                 causal: bool = False, backend: str = "auto", block_pattern: BlockPattern | None = None,
                 scale: float | None = None):
        super().__init__()
        check_choice(backend, "backend", BACKENDS)
        check_choice(pattern, "block pattern", PATTERN_KINDS)
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
        block_size = check_positive_int(block_size, "block_size")
        check_flag(causal, "causal")
        check_scale(scale)
        if block_pattern is not None and not isinstance(block_pattern, BlockPattern):
            raise ValueError(f"block_pattern must be a BlockPattern or None, got {type(block_pattern).__name__}")
        if block_pattern is not None:
            block_size, causal = block_pattern.block_size, block_pattern.causal
        self.block_size, self.sparsity, self.pattern_kind = block_size, sparsity, pattern
        self.causal, self.backend, self.scale = causal, backend, scale
        self._pattern = block_pattern
        self._pattern_fixed = block_pattern is not None
        self.last_backend: str | None = None
        # Input signature (+ strides, 16-byte alignment, whether a gradient is needed) -> backend
        # name, or the Triton plan (``kernels.block_sparse.plan``) for inputs with that signature.
        # The pattern follows seq_len, which is in the signature, so a known signature also means
        # the current pattern fits.
        self._checked = SignatureCache()

    def pattern_for(self, seq_len: int) -> BlockPattern:
        p = self._pattern
        if p is not None and p.num_blocks * p.block_size == seq_len:
            return p
        if self._pattern_fixed:
            raise ValueError(f"block_pattern covers {p.num_blocks * p.block_size} tokens, input has {seq_len}")
        self._pattern = BlockPattern.make(seq_len, self.block_size, self.pattern_kind, self.sparsity, self.causal)
        return self._pattern

    def _choose_backend(self, q: torch.Tensor, pattern: BlockPattern, needs_grad: bool) -> str:
        if self.backend in ("flex", "gather"):
            return self.backend
        mod = kernels.load("block_sparse")
        triton_ok = (q.is_cuda and not needs_grad and mod is not None
                     and mod.available(device=q.device, dtype=q.dtype, head_dim=q.shape[-1],
                                       pattern=pattern))
        if self.backend == "triton":
            if not triton_ok:
                raise RuntimeError("the Triton block-sparse kernel cannot run this input: it needs CUDA "
                                   "fp16/bf16, head_dim 16/32/64/128, block_size a multiple of 16, no gradient")
            return "triton"
        return "triton" if triton_ok else "flex" if q.is_cuda else "gather"

    def _route(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: BlockPattern,
               needs_grad: bool):
        """Check the inputs; return "flex", "gather", or the Triton plan for this signature."""
        backend = self._choose_backend(q, pattern, needs_grad)
        if backend == "flex" and not q.is_cuda and needs_grad:
            raise RuntimeError("flex_attention has no backward on CPU in this torch build; "
                               "use backend='gather' (or 'auto') for gradients on CPU")
        if backend == "triton":
            return kernels.load("block_sparse").plan(q, k, v, pattern, self.scale)
        return backend

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        signature = qkv_signature(q, k, v)  # first: it names an argument that is not a tensor
        needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        key = (signature, q.stride(), k.stride(), v.stride(), q.data_ptr() % 16,
               k.data_ptr() % 16, v.data_ptr() % 16, needs_grad, self.backend)
        route = self._checked.get(key)  # the checks read only shapes, dtypes and devices
        if route is None:
            check_qkv(q, k, v)
        pattern = self._pattern
        if pattern is None or pattern.num_blocks * pattern.block_size != q.shape[1]:
            pattern = self.pattern_for(q.shape[1])
        if route is None:
            route = self._checked.remember(key, self._route(q, k, v, pattern, needs_grad))
        if isinstance(route, str):
            if self.last_backend != route:  # nn.Module.__setattr__ is slow enough to show per call
                self.last_backend = route
            if route == "flex" and not q.is_cuda:
                q, k, v = q.detach(), k.detach(), v.detach()  # flex refuses CPU inputs that require grad
            run = block_sparse_flex if route == "flex" else block_sparse_gather
            return run(q, k, v, pattern, self.scale)
        if self.last_backend != "triton":
            self.last_backend = "triton"
        return route(q, k, v)
