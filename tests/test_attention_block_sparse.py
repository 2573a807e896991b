"""BlockSparseAttention against a reference built from its own pattern's full token mask."""
from __future__ import annotations

import pytest
import torch

from attention import BlockPattern, BlockSparseAttention
from attention.block_sparse import PATTERN_KINDS
from attention.reference import masked_attention

SEQ, BLOCK, HEADS = 128, 16, 2


def reference_for(pattern: BlockPattern):
    def ref(q, k, v):
        mask = pattern.token_mask()[None].expand(q.shape[2], -1, -1)
        return masked_attention(q, k, v, mask)
    return ref


@pytest.mark.parametrize("kind", PATTERN_KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_gather_matches_reference(kind, causal, make_qkv, check_against):
    module = BlockSparseAttention(block_size=BLOCK, sparsity=0.6, pattern=kind, causal=causal, backend="gather")
    q, k, v = make_qkv((2, SEQ, HEADS, 8))
    check_against(module, reference_for(module.pattern_for(SEQ)), q, k, v)
    assert module.last_backend == "gather"


@pytest.mark.parametrize("causal", [False, True])
def test_gather_bf16(causal, make_qkv, check_against):
    module = BlockSparseAttention(block_size=BLOCK, sparsity=0.5, causal=causal)
    q, k, v = make_qkv((1, SEQ, HEADS, 16), torch.bfloat16)
    check_against(module, reference_for(module.pattern_for(SEQ)), q, k, v)


def test_ragged_custom_pattern(make_qkv, check_against):
    """Rows with different numbers of key blocks exercise the padded, masked gather."""
    gen = torch.Generator().manual_seed(3)
    layout = (torch.rand(8, 8, generator=gen) < 0.3) | torch.eye(8, dtype=torch.bool)
    pattern = BlockPattern(layout, BLOCK)
    assert len(set(layout.sum(1).tolist())) > 1
    q, k, v = make_qkv((2, SEQ, HEADS, 8))
    check_against(BlockSparseAttention(block_pattern=pattern), reference_for(pattern), q, k, v)


@pytest.mark.parametrize("kind", ["local", "local_dilated_global"])
@pytest.mark.parametrize("causal", [False, True])
def test_flex_matches_reference_forward(kind, causal, make_qkv, check_against):
    module = BlockSparseAttention(block_size=BLOCK, sparsity=0.6, pattern=kind, causal=causal, backend="flex")
    q, k, v = make_qkv((1, SEQ, HEADS, 8))
    grads = q.is_cuda  # flex_attention has no CPU backward in this torch
    with torch.set_grad_enabled(grads):
        check_against(module, reference_for(module.pattern_for(SEQ)), q, k, v, grads=grads)
    assert module.last_backend == "flex"


def test_flex_backward_on_cpu_is_a_clear_error(make_qkv):
    q, k, v = make_qkv((1, SEQ, HEADS, 8))
    with pytest.raises(RuntimeError, match="gather"):
        BlockSparseAttention(block_size=BLOCK, backend="flex")(q, k, v)


def test_alternating_lengths_each_use_their_own_pattern(make_qkv, check_against):
    """Checks are cached per input signature; the pattern must still follow each call's seq_len."""
    module = BlockSparseAttention(block_size=BLOCK, sparsity=0.6)
    short, long = make_qkv((1, SEQ, HEADS, 8)), make_qkv((1, 2 * SEQ, HEADS, 8))
    for q, k, v in (short, long, short, long):
        pattern = BlockPattern.make(q.shape[1], BLOCK, "local_dilated_global", 0.6)
        check_against(module, reference_for(pattern), q, k, v)


def test_triton_backend_refuses_cpu_with_a_clear_error(make_qkv):
    with pytest.raises(RuntimeError, match="Triton block-sparse kernel cannot run"):
        BlockSparseAttention(block_size=BLOCK, backend="triton")(*make_qkv((1, SEQ, HEADS, 8)))


def test_auto_uses_gather_on_cpu(make_qkv):
    module = BlockSparseAttention(block_size=BLOCK)
    module(*make_qkv((1, SEQ, HEADS, 8)))
    assert module.last_backend == "gather"


@pytest.mark.parametrize("kind", ["local", "dilated", "local_dilated_global"])
@pytest.mark.parametrize("target", [0.5, 0.9])
def test_pattern_reaches_target_sparsity(kind, target):
    pattern = BlockPattern.make(128 * 64, 64, kind, target)
    blocks = pattern.token_mask().view(128, 64, 128, 64).any(3).any(1)  # recount from the token mask
    achieved = 1 - blocks.sum().item() / 128 ** 2
    assert achieved == pytest.approx(pattern.sparsity())
    assert abs(achieved - target) < 0.05, pattern


def test_causal_pattern_and_repr():
    pattern = BlockPattern.make(256, 16, "local_dilated_global", 0.5, causal=True)
    assert not pattern.layout.triu(1).any()
    text = repr(pattern)
    for piece in ("local_dilated_global", "16x16", "block_size=16", "causal=True", f"{pattern.sparsity():.3f}"):
        assert piece in text
