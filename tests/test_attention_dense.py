"""DenseAttention against the full-mask reference, per SDPA backend."""
from __future__ import annotations

import pytest
import torch

from attention import DenseAttention, available_sdpa_backends
from attention.reference import reference_dense_attention


def test_math_backend_is_always_available():
    assert "math" in available_sdpa_backends("cpu")


@pytest.mark.parametrize("backend", ["auto", *available_sdpa_backends("cpu")])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference_fp32(backend, causal, make_qkv, check_against):
    q, k, v = make_qkv((2, 40, 3, 8))
    check_against(DenseAttention(causal=causal, backend=backend),
                  lambda a, b, c: reference_dense_attention(a, b, c, causal), q, k, v)


@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference_bf16(causal, make_qkv, check_against):
    q, k, v = make_qkv((1, 64, 2, 16), torch.bfloat16)
    check_against(DenseAttention(causal=causal),
                  lambda a, b, c: reference_dense_attention(a, b, c, causal), q, k, v)


def test_missing_backend_is_a_clear_error(make_qkv):
    missing = [b for b in ("flash", "efficient", "cudnn") if b not in available_sdpa_backends("cpu")]
    if not missing:
        pytest.skip("every SDPA backend runs here")
    q, k, v = make_qkv((1, 16, 1, 8))
    with pytest.raises(RuntimeError, match=missing[0]):
        DenseAttention(backend=missing[0])(q, k, v)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="warp"):
        DenseAttention(backend="warp")
