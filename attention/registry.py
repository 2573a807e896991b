"""The one place that names every implementation the suite tracks.

Benchmarks and tools enumerate ``IMPLEMENTATIONS``; adding an implementation means one
``register(...)`` call in ``attention/__init__.py`` (or the module that defines it), nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .spec import AttentionSpec


@dataclass(frozen=True)
class Implementation:
    """How to build one implementation and what it computes.

    ``build(spec)`` returns a callable ``fn(q, k, v) -> out`` on tensors shaped
    ``(batch, seq_len, num_heads, head_dim)``. ``pairs(spec)`` is the number of query-key pairs
    (summed over heads, per batch element) that the pattern computes, used for effective TFLOP/s.
    ``supports(spec)`` returns None when the spec can run, else a one-line reason (benchmarks turn
    it into a skip). ``pattern`` names the mathematical function: implementations with the same
    pattern must agree to float tolerance.
    """

    name: str
    build: Callable[[AttentionSpec], Callable[..., torch.Tensor]]
    pairs: Callable[[AttentionSpec], float]
    pattern: str
    description: str
    supports: Callable[[AttentionSpec], str | None] = lambda spec: None


IMPLEMENTATIONS: dict[str, Implementation] = {}


def register(impl: Implementation) -> Implementation:
    if impl.name in IMPLEMENTATIONS:
        raise ValueError(f"implementation {impl.name!r} is already registered")
    IMPLEMENTATIONS[impl.name] = impl
    return impl


def get(name: str) -> Implementation:
    try:
        return IMPLEMENTATIONS[name]
    except KeyError:
        known = ", ".join(sorted(IMPLEMENTATIONS))
        raise ValueError(f"unknown implementation {name!r}; known: {known}") from None


def names() -> list[str]:
    return list(IMPLEMENTATIONS)
