"""Every registered implementation builds for a small spec, runs, and means what its pattern says."""
from __future__ import annotations

import pytest
import torch

from attention import IMPLEMENTATIONS, AttentionSpec, get
from attention.reference import dilated_mask, reference_dilated_attention

EXPECTED = ["DenseAttention", "DilatedAttention", "ImprovedDilatedAttention", "MultiheadDilatedAttention",
            "ImprovedMultiheadDilatedAttention", "BlockSparseAttention", "RingDilatedAttention"]
SMALL = AttentionSpec(batch=1, seq_len=256, num_heads=6, head_dim=16,
                      segment_lengths=(64, 128, 512), dilation_rates=(1, 2, 4), block_size=32)


def test_all_expected_names_registered():
    assert set(EXPECTED) <= set(IMPLEMENTATIONS)


@pytest.mark.parametrize("name", EXPECTED)
@pytest.mark.parametrize("causal", [False, True])
def test_builds_and_runs(name, causal):
    spec = SMALL.with_(causal=causal)
    impl = get(name)
    assert impl.supports(spec) is None
    q, k, v = (torch.randn(spec.qkv_shape(), requires_grad=True) for _ in range(3))
    out = impl.build(spec)(q, k, v)
    assert out.shape == spec.qkv_shape() and torch.isfinite(out).all()
    out.sum().backward()
    assert impl.pairs(spec) > 0


@pytest.mark.parametrize("name", [n for n in EXPECTED if get(n).pattern == "dilated"])
def test_dilated_pattern_implementations_match_reference(name):
    spec = SMALL.with_(causal=True)
    q, k, v = (torch.randn(spec.qkv_shape()) for _ in range(3))
    with torch.no_grad():
        got = get(name).build(spec)(q, k, v)
    want = reference_dilated_attention(q, k, v, spec.segments_for(), spec.dilation_rates, causal=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_dilated_pairs_count_the_reference_mask():
    mask = dilated_mask(SMALL.seq_len, SMALL.num_heads, SMALL.segments_for(), SMALL.dilation_rates)
    assert get("ImprovedDilatedAttention").pairs(SMALL) == mask.sum().item()


def test_block_sparse_pairs_count_the_token_mask():
    from attention._builders import block_pattern
    tokens = block_pattern(SMALL).token_mask().sum().item()
    assert get("BlockSparseAttention").pairs(SMALL) == tokens * SMALL.num_heads


def test_multihead_build_is_deterministic():
    build = get("ImprovedMultiheadDilatedAttention").build
    q = torch.randn(SMALL.qkv_shape())
    with torch.no_grad():
        torch.testing.assert_close(build(SMALL)(q, q, q), build(SMALL)(q, q, q))


@pytest.mark.parametrize("name", [n for n in EXPECTED if n != "DenseAttention"])
def test_supports_names_the_problem(name):
    spec = SMALL.with_(seq_len=48, segment_lengths=(32,), dilation_rates=(1,), block_size=32)
    reason = get(name).supports(spec)
    assert reason is not None and "48" in reason and "32" in reason


def test_dense_supports_reports_missing_backend():
    from attention import available_sdpa_backends
    missing = [b for b in ("flash", "efficient", "cudnn") if b not in available_sdpa_backends("cpu")]
    if not missing:
        pytest.skip("every SDPA backend runs here")
    reason = get("DenseAttention").supports(SMALL.with_(extra={"sdpa_backend": missing[0]}))
    assert reason is not None and missing[0] in reason


def test_improved_supports_reports_missing_triton():
    reason = get("ImprovedDilatedAttention").supports(SMALL.with_(extra={"dilated_backend": "triton"}))
    assert reason is not None and "Triton" in reason
