"""The registry: the implementation table (``attention/implementations.py``) as ``Implementation`` objects.

``IMPLEMENTATIONS`` holds one entry per row of the table, in the table's order, filled at import.
Adding an implementation means one entry in that table (plus its module and tests), nowhere else;
``register`` is the step that loads each row, also usable for an experiment outside the suite
(the benchmarks track only the table's names).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import torch

from .implementations import IMPLEMENTATIONS as TABLE
from .spec import AttentionSpec

__all__ = ["IMPLEMENTATIONS", "Implementation", "TABLE", "from_entry", "get", "names", "register"]


def _no_limits(spec: AttentionSpec) -> str | None:
    return None


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
    supports: Callable[[AttentionSpec], str | None] = _no_limits


IMPLEMENTATIONS: dict[str, Implementation] = {}


def _resolve(ref: str, what: str) -> Callable:
    """``"module:function"`` inside this package -> the function."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} {ref!r} must be 'module:function' inside the attention package")
    module = importlib.import_module(f"{__package__}.{module_name}")
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{what} {ref!r}: attention.{module_name} has no {attr!r}") from None


def from_entry(entry: dict) -> Implementation:
    """One row of the implementation table as an ``Implementation`` (its functions imported)."""
    name = entry["name"]
    return Implementation(name, _resolve(entry["build"], f"{name} build"),
                          _resolve(entry["pairs"], f"{name} pairs"), entry["pattern"],
                          entry["description"], _resolve(entry["supports"], f"{name} supports"))


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


for _entry in TABLE:
    register(from_entry(_entry))
