"""Block-sparse pattern kinds against masks built here from their definition (docs/semantics.md),
never from the product's own helpers (``_layout``, ``token_mask``)."""
from __future__ import annotations

import pytest
import torch

from attention import BlockPattern, BlockSparseAttention
from test_benchmark_measures import BLOCK_KINDS, block_layout, softmax_reference, tokens_from_layout


def _causal(layout: torch.Tensor) -> torch.Tensor:
    return layout & torch.ones_like(layout).tril()


def _sparsity(layout: torch.Tensor, causal: bool) -> float:
    nb = layout.shape[0]
    return 1.0 - int(layout.sum()) / (nb * (nb + 1) // 2 if causal else nb * nb)


def _candidates(kind: str, nb: int, causal: bool) -> dict[int, torch.Tensor]:
    """Every layout the kind can take at nb blocks, by knob (window, stride or global blocks)."""
    knobs = range(0, nb) if kind == "local" else range(0, nb + 1) if kind == "global" else range(1, nb + 2)
    return {knob: _causal(block_layout(kind, nb, knob)) if causal else block_layout(kind, nb, knob)
            for knob in knobs}


@pytest.mark.parametrize("kind", BLOCK_KINDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("nb,sparsity", [(8, 0.5), (13, 0.3), (13, 0.8), (16, 0.9)])
def test_made_layout_is_the_definition_at_the_knob_closest_to_the_sparsity(kind, causal, nb, sparsity):
    pattern = BlockPattern.make(nb * 16, 16, kind, sparsity, causal)
    candidates = _candidates(kind, nb, causal)
    matching = [knob for knob, lay in candidates.items() if torch.equal(lay, pattern.layout)]
    assert matching, f"{kind}: the made layout is not the definition for any knob:\n{pattern.layout.int()}"
    best = min(abs(_sparsity(lay, causal) - sparsity) for lay in candidates.values())
    assert abs(_sparsity(pattern.layout, causal) - sparsity) == pytest.approx(best, abs=1e-12)
    assert pattern.sparsity() == pytest.approx(_sparsity(pattern.layout, causal))
    assert pattern.allowed_blocks() == int(pattern.layout.sum())


@pytest.mark.parametrize("causal", [False, True])
def test_global_blocks_attend_and_are_attended_by_every_block(causal):
    nb = 12
    pattern = BlockPattern.make(nb * 16, 16, "global", 0.6, causal)
    n_global = next(k for k, lay in _candidates("global", nb, causal).items() if torch.equal(lay, pattern.layout))
    assert n_global >= 1
    lay = pattern.layout
    for g in range(n_global):
        # key block g is seen by every query block (at or after it when causal)
        assert bool(lay[g:, g].all()) and (causal or bool(lay[:, g].all()))
        # query block g sees every key block (those at or before it when causal)
        assert bool(lay[g, :g + 1].all()) and (causal or bool(lay[g, :].all()))
    assert not bool(lay[n_global:, n_global:].fill_diagonal_(False).any())  # the rest: own block only


@pytest.mark.parametrize("kind", BLOCK_KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_token_mask_is_the_layout_in_tokens(kind, causal):
    pattern = BlockPattern.make(10 * 8, 8, kind, 0.6, causal)
    assert torch.equal(pattern.token_mask(), tokens_from_layout(pattern.layout, 8, causal))


@pytest.mark.parametrize("kind", BLOCK_KINDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("backend", ["gather", "auto"])
def test_attention_output_and_gradients_follow_the_definition(kind, causal, backend):
    nb, bs, sparsity = 10, 16, 0.7
    candidates = _candidates(kind, nb, causal)
    best = min(abs(_sparsity(lay, causal) - sparsity) for lay in candidates.values())
    layout = next(lay for lay in candidates.values() if abs(_sparsity(lay, causal) - sparsity) == best)
    mask = tokens_from_layout(layout, bs, causal).expand(2, -1, -1)
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, nb * bs, 2, 16, generator=gen, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    module = BlockSparseAttention(block_size=bs, sparsity=sparsity, pattern=kind, causal=causal, backend=backend)
    out = module(q, k, v)
    assert module.last_backend == "gather"
    want = softmax_reference(q, k, v, mask)
    torch.testing.assert_close(out, want, atol=1e-10, rtol=1e-10)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(out, (q, k, v), g)
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    qd, kd, vd = (t.permute(0, 2, 1, 3) for t in (q2, k2, v2))
    scores = (qd @ kd.transpose(-1, -2) / 4.0).masked_fill(~mask, float("-inf"))
    ref = (torch.softmax(scores, -1) @ vd).permute(0, 2, 1, 3)
    for a, b in zip(got, torch.autograd.grad(ref, (q2, k2, v2), g)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", ["global", "local_dilated_global"])
@pytest.mark.parametrize("causal", [False, True])
def test_flex_backend_computes_the_same_function(kind, causal):
    nb, bs = 6, 16
    pattern = BlockPattern(_causal(block_layout(kind, nb, 2)) if causal else block_layout(kind, nb, 2), bs, causal)
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, nb * bs, 2, 16, generator=gen) for _ in range(3))
    module = BlockSparseAttention(block_pattern=pattern, backend="flex")
    with torch.no_grad():
        out = module(q, k, v)
    want = softmax_reference(q, k, v, tokens_from_layout(pattern.layout, bs, causal).expand(2, -1, -1))
    torch.testing.assert_close(out.double(), want, atol=2e-5, rtol=2e-5)
