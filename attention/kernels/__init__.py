"""The fused Triton kernels, each behind one thin public face.

- ``attention.kernels.dilated``: dilated attention, forward and backward;
- ``attention.kernels.block_sparse``: block-sparse attention, forward only.

Each module offers ``available(...)`` (can the kernel run such inputs, asked without a tensor),
``plan(q, k, v, ...)`` (checks once, returns the launch for that input signature) and a function
entry point for callers that keep no plans. ``load(name)`` imports one of them lazily: importing
triton costs about half a second, and the package must import where triton is missing.
``KernelConfig`` (tiles and launch options), ``CachedLauncher`` (a Triton kernel's launches,
compiled once per argument signature) and ``SignatureCache`` (the bounded dict that holds launches
and plans) are shared by both, and imported on first use too.
Shape convention: ``(batch, seq_len, num_heads, head_dim)``.
"""
from __future__ import annotations

from types import ModuleType

from .._optional import optional_submodule

__all__ = ["load", "KERNELS", "KernelConfig", "CachedLauncher", "SignatureCache"]

KERNELS = ("dilated", "block_sparse")


def load(name: str) -> ModuleType | None:
    """``attention.kernels.<name>`` (one of ``KERNELS``), or None where it cannot be imported."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {KERNELS}")
    return optional_submodule(f"kernels.{name}")


def __getattr__(name: str):
    if name in ("KernelConfig", "CachedLauncher", "SignatureCache"):
        from . import _shared
        return getattr(_shared, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
