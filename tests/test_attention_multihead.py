"""Multihead modules against hand-built projections around the full-mask reference."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attention import ImprovedMultiheadDilatedAttention, MultiheadDilatedAttention
from attention.reference import reference_dilated_attention

SEGMENTS, RATES = (8, 16), (1, 2)


def by_hand(module, query, key, value, causal):
    """Projections written out with F.linear, then the reference dilated attention."""
    b, n, e = query.shape
    h = module.num_heads
    p = {name: (getattr(module, name).weight.double(), getattr(module, name).bias.double())
         for name in ("q_proj", "k_proj", "v_proj", "out_proj")}
    q, k, v = (F.linear(x.double(), *p[f"{c}_proj"]).view(b, n, h, e // h)
               for x, c in ((query, "q"), (key, "k"), (value, "v")))
    att = reference_dilated_attention(q, k, v, SEGMENTS, RATES, causal).reshape(b, n, e)
    return F.linear(att, *p["out_proj"])


@pytest.mark.parametrize("cls", [MultiheadDilatedAttention, ImprovedMultiheadDilatedAttention])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_hand_built(cls, causal):
    torch.manual_seed(0)
    module = cls(32, 4, SEGMENTS, RATES)
    query, key, value = (torch.randn(2, 32, 32, requires_grad=True) for _ in range(3))
    out, weights = module(query, key, value, is_causal=causal)
    assert weights is None
    want = by_hand(module, query, key, value, causal)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (query, module.q_proj.weight), g)
    exp = torch.autograd.grad(want, (query, module.q_proj.weight), g.double())
    for a, b in zip(got, exp):
        torch.testing.assert_close(a.double(), b.double(), atol=1e-4, rtol=1e-4)


def test_batch_first_false_transposes():
    torch.manual_seed(0)
    module = ImprovedMultiheadDilatedAttention(16, 2, SEGMENTS, RATES, batch_first=False)
    x = torch.randn(16, 3, 16)  # (seq_len, batch, embed)
    out, _ = module(x, x, x)
    module.batch_first = True
    out_bf, _ = module(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))
    torch.testing.assert_close(out, out_bf.transpose(0, 1))


def test_dtype_bias_and_shape_like_nn_multihead():
    module = ImprovedMultiheadDilatedAttention(32, 4, SEGMENTS, RATES, bias=False, dtype=torch.bfloat16)
    assert module.q_proj.bias is None and module.q_proj.weight.dtype == torch.bfloat16
    x = torch.randn(1, 16, 32, dtype=torch.bfloat16)
    out, _ = module(x, x, x)
    assert out.shape == x.shape and out.dtype == torch.bfloat16


def test_dropout_only_in_training():
    module = ImprovedMultiheadDilatedAttention(16, 2, SEGMENTS, RATES, dropout=0.5)
    x = torch.randn(1, 16, 16)
    module.eval()
    torch.testing.assert_close(module(x, x, x)[0], module(x, x, x)[0])
    module.train()
    torch.manual_seed(1)
    a = module(x, x, x)[0]
    torch.manual_seed(2)
    assert not torch.allclose(a, module(x, x, x)[0])
