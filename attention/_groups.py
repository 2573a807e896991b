"""Which heads and which positions each dilated group covers (docs/semantics.md).

Head ``h`` is in group ``g = h // heads_per_group`` and, with rate ``r``, uses offset ``h % r``:
inside each segment of ``w`` tokens it covers the positions ``t`` with ``t % r == h % r``.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple


class HeadSlice(NamedTuple):
    """Heads ``start:stop:step`` of one group that share dilation offset ``offset``."""

    group: int
    segment: int
    rate: int
    offset: int
    heads: slice


def head_slices(num_heads: int, segments, rates) -> Iterator[HeadSlice]:
    """Every (group, offset) pair that has heads; heads with one offset form a strided slice."""
    per_group = num_heads // len(segments)
    for g, (w, r) in enumerate(zip(segments, rates)):
        lo, hi = g * per_group, (g + 1) * per_group
        for offset in range(r):
            first = lo + (offset - lo) % r  # first head in [lo, hi) with h % r == offset
            if first < hi:
                yield HeadSlice(g, w, r, offset, slice(first, hi, r))
