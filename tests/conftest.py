"""Shared fixtures for the attention tests: random q/k/v and a forward+gradient comparison."""
from __future__ import annotations

import os

import pytest
import torch

# The suite's own timing runs (asv end to end, benchmark classes called directly) check plumbing,
# not the machine: a test box shared with other jobs must not fail them as "never stabilised".
# tests/test_timing.py tests the stability verdict itself with a fake clock.
os.environ.setdefault("ATTNBENCH_STABLE_TOLERANCE", "1000")

# Tolerances relative to the largest reference magnitude; bf16 keeps 8 mantissa bits.
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 2e-2, torch.float16: 4e-3}


def _qkv(shape, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=gen).to(dtype).requires_grad_() for _ in range(3))


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype, what: str) -> None:
    scale = max(expected.abs().max().item(), 1.0)
    tol = TOLERANCE[dtype] * scale * (4 if dtype in (torch.bfloat16, torch.float16) else 1)
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= tol, f"{what}: max abs error {err:.3g} > tolerance {tol:.3g}"


def _check(fn, reference, q, k, v, grads: bool = True) -> None:
    """fn(q, k, v) must match reference(q64, k64, v64) in output and in dq, dk, dv."""
    dtype = q.dtype
    out = fn(q, k, v)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = reference(q64, k64, v64)
    assert out.shape == ref.shape and out.dtype == dtype
    _assert_close(out, ref, dtype, "output")
    if not grads:
        return
    gen = torch.Generator().manual_seed(123)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(out, (q, k, v), g.to(dtype))
    want = torch.autograd.grad(ref, (q64, k64, v64), g)
    for name, a, b in zip("qkv", got, want):
        _assert_close(a, b, dtype, f"d{name}")


@pytest.fixture
def make_qkv():
    """make_qkv(shape, dtype=float32, seed=0) -> (q, k, v) leaf tensors requiring grad."""
    return _qkv


@pytest.fixture
def check_against():
    """check_against(fn, reference, q, k, v, grads=True): output and gradients within tolerance."""
    return _check
