"""DilatedAttention and ImprovedDilatedAttention against the full-mask reference."""
from __future__ import annotations

import pytest
import torch

from attention import DilatedAttention, ImprovedDilatedAttention
from attention.reference import reference_dilated_attention

# (seq_len, num_heads, segment_lengths, dilation_rates): one group, several groups, a rate that does
# not divide its segment, fewer heads per group than the rate (some offsets have no head).
CONFIGS = [
    (32, 2, (32,), (1,)),
    (64, 6, (8, 16, 32), (1, 2, 4)),
    (48, 4, (6, 12), (4, 3)),
    (96, 3, (32,), (3,)),
    (64, 2, (16, 64), (4, 8)),
]


@pytest.mark.parametrize("cls", [DilatedAttention, ImprovedDilatedAttention])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("seq_len,heads,segments,rates", CONFIGS)
def test_matches_reference_fp32(cls, causal, seq_len, heads, segments, rates, make_qkv, check_against):
    q, k, v = make_qkv((2, seq_len, heads, 8))
    module = cls(segments, rates, causal=causal)
    check_against(module, lambda a, b, c: reference_dilated_attention(a, b, c, segments, rates, causal),
                  q, k, v)


@pytest.mark.parametrize("cls", [DilatedAttention, ImprovedDilatedAttention])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matches_reference_half(cls, causal, dtype, make_qkv, check_against):
    segments, rates = (16, 32), (1, 2)
    q, k, v = make_qkv((1, 64, 4, 16), dtype, seed=1)
    check_against(cls(segments, rates, causal=causal),
                  lambda a, b, c: reference_dilated_attention(a, b, c, segments, rates, causal), q, k, v)


def test_custom_scale(make_qkv, check_against):
    q, k, v = make_qkv((1, 32, 2, 8))
    check_against(ImprovedDilatedAttention((16,), (2,), scale=0.7),
                  lambda a, b, c: reference_dilated_attention(a, b, c, (16,), (2,), scale=0.7), q, k, v)


def test_uncovered_positions_are_exactly_zero(make_qkv):
    q, k, v = make_qkv((1, 16, 1, 4))
    with torch.no_grad():
        out = ImprovedDilatedAttention((16,), (4,))(q, k, v)  # head 0: offset 0, rows 0, 4, 8, 12
    covered = torch.arange(16) % 4 == 0
    assert torch.all(out[:, ~covered] == 0)
    assert torch.all(out[:, covered].abs().sum(-1) > 0)


def test_is_causal_argument_overrides_constructor(make_qkv):
    q, k, v = make_qkv((1, 32, 2, 8))
    module = ImprovedDilatedAttention((16,), (1,), causal=False)
    with torch.no_grad():
        got = module(q, k, v, is_causal=True)
    want = reference_dilated_attention(q.detach(), k.detach(), v.detach(), (16,), (1,), causal=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_improved_reports_sdpa_on_cpu_and_refuses_triton(make_qkv):
    q, k, v = make_qkv((1, 32, 2, 8))
    module = ImprovedDilatedAttention((16,), (1,))
    module(q, k, v)
    assert module.last_backend == "sdpa"
    with pytest.raises(RuntimeError, match="Triton"):
        ImprovedDilatedAttention((16,), (1,), backend="triton")(q, k, v)


def test_improved_memory_is_linear_in_seq_len():
    """No seq_len x seq_len tensor: the saved activations grow linearly, not quadratically."""
    def saved_bytes(n: int) -> int:
        q, k, v = (torch.randn(1, n, 2, 8, requires_grad=True) for _ in range(3))
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            ImprovedDilatedAttention((64,), (1,))(q, k, v)
        return total

    small, large = saved_bytes(1024), saved_bytes(4096)
    assert large <= 4.5 * small, f"saved {small} B at 1K but {large} B at 4K tokens"
