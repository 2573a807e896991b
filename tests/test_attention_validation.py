"""Every bad input raises a ValueError whose message names the offending numbers."""
from __future__ import annotations

import pytest
import torch

from attention import (BlockPattern, BlockSparseAttention, DenseAttention, DilatedAttention,
                       ImprovedDilatedAttention, ImprovedMultiheadDilatedAttention, RingDilatedAttention)

DILATED = [DilatedAttention, ImprovedDilatedAttention, RingDilatedAttention]


def qkv(shape=(1, 32, 4, 8), dtype=torch.float32):
    return tuple(torch.zeros(shape, dtype=dtype) for _ in range(3))


@pytest.mark.parametrize("cls", DILATED)
@pytest.mark.parametrize("segments,rates,numbers", [
    ((), (), ["()"]),
    ((16, 32), (1,), ["(16, 32)", "(1,)"]),
    ((16, 0), (1, 2), ["0"]),
    ((16, 32), (1, -2), ["-2"]),
])
def test_bad_pattern(cls, segments, rates, numbers):
    with pytest.raises(ValueError) as err:
        cls(segments, rates)
    for n in numbers:
        assert n in str(err.value)


@pytest.mark.parametrize("cls", DILATED)
def test_seq_len_not_divisible_by_segment(cls):
    with pytest.raises(ValueError, match=r"seq_len 32 .*segment length 12"):
        cls((12,), (1,))(*qkv((1, 32, 4, 8)))


@pytest.mark.parametrize("cls", DILATED)
def test_heads_not_divisible_by_groups(cls):
    with pytest.raises(ValueError, match=r"num_heads 4 .*number of groups 3"):
        cls((8, 16, 32), (1, 2, 4))(*qkv((1, 32, 4, 8)))


@pytest.mark.parametrize("module", [DilatedAttention((16,), (1,)), ImprovedDilatedAttention((16,), (1,)),
                                    DenseAttention(), BlockSparseAttention(block_size=8)])
def test_bad_tensors(module):
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"3-D shape \(32, 4, 8\)"):
        module(q[0], k, v)
    with pytest.raises(ValueError, match="torch.float32, torch.float64"):
        module(q, k.double(), v)
    with pytest.raises(ValueError, match=r"\(1, 32, 4, 8\) .*\(1, 32, 2, 8\)"):
        module(q, k[:, :, :2], v[:, :, :2])
    with pytest.raises(ValueError, match="floating-point"):
        module(q.long(), k.long(), v.long())


def test_mismatched_seq_len_for_dilated():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="32 and k/v seq_len 16"):
        ImprovedDilatedAttention((16,), (1,))(q, k[:, :16], v[:, :16])


def test_block_sparse_bad_inputs():
    with pytest.raises(ValueError, match="seq_len 100 .*block_size 16"):
        BlockPattern.make(100, 16)
    with pytest.raises(ValueError, match="1.5"):
        BlockSparseAttention(sparsity=1.5)
    with pytest.raises(ValueError, match="ring"):
        BlockSparseAttention(pattern="ring")
    no_diag = torch.ones(4, 4, dtype=torch.bool)
    no_diag[2, 2] = False
    with pytest.raises(ValueError, match=r"\[2\]"):
        BlockPattern(no_diag, 8)
    fixed = BlockSparseAttention(block_pattern=BlockPattern(torch.eye(4, dtype=torch.bool), 8))
    with pytest.raises(ValueError, match="32 tokens, input has 64"):
        fixed(*qkv((1, 64, 2, 8)))


def test_multihead_bad_dims():
    with pytest.raises(ValueError, match="embed_dim 30 .*num_heads 4"):
        ImprovedMultiheadDilatedAttention(30, 4, (16,), (1,))
    with pytest.raises(ValueError, match="num_heads 4 .*groups 3"):
        ImprovedMultiheadDilatedAttention(32, 4, (8, 16, 32), (1, 2, 4))
