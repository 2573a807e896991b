"""The Triton block-sparse forward kernel against the full-mask reference, on CPU via the interpreter.

``TRITON_INTERPRET=1`` must be set before the kernel is defined (at import of
``attention.kernels.block_sparse``), so the kernel tests run in a child pytest process with it set;
in the parent they are skipped and one test launches that child. Shapes are
``(batch, seq_len, num_heads, head_dim)``, tiny so the interpreter stays within about a minute.
float16 and float32 only: the interpreter's ``tl.dot`` is wrong for bfloat16 operands (triton 3.9).
"""
from __future__ import annotations

import pytest
import torch

from triton_interpreter import HAVE_TRITON, INTERPRETED, interpreted_only, launcher_only, run_interpreted_tests

from attention.block_sparse import BlockPattern

INTERPRETED_TESTS = 19  # the tests below whose names contain "interpreted"


@pytest.mark.slow
@launcher_only
def test_kernel_under_triton_interpreter():
    run_interpreted_tests(__file__, INTERPRETED_TESTS)


def _compare(q, k, v, pattern, scale=None, config=None):
    """Kernel output vs the float64 full-mask reference on the same inputs."""
    from attention.reference import masked_attention
    from attention.kernels.block_sparse import forward as block_sparse_attention_triton

    out = block_sparse_attention_triton(q, k, v, pattern, scale=scale, config=config)
    n, h = q.shape[1], q.shape[2]
    mask = pattern.token_mask().expand(h, n, n)
    ref = masked_attention(q.double(), k.double(), v.double(), mask, scale)
    assert out.shape == q.shape and out.dtype == q.dtype and out.is_contiguous()
    atol = 2e-5 if q.dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.double(), ref, atol=atol, rtol=0)


def _qkv(shape, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=gen).to(dtype) for _ in range(3))


def _avail(q: torch.Tensor, pattern) -> bool:
    from attention.kernels.block_sparse import available

    return available(device=q.device, dtype=q.dtype, head_dim=q.shape[-1], pattern=pattern)


def _uneven_layout(num_blocks: int, seed: int = 0) -> torch.Tensor:
    """Random rows of 1..num_blocks key blocks: one full row, one diagonal-only row, the rest random."""
    gen = torch.Generator().manual_seed(seed)
    layout = torch.rand(num_blocks, num_blocks, generator=gen) < 0.3
    layout |= torch.eye(num_blocks, dtype=torch.bool)
    layout[num_blocks - 1] = True
    layout[num_blocks // 2] = torch.arange(num_blocks) == num_blocks // 2
    return layout


@interpreted_only
@pytest.mark.parametrize("kind, sparsity, causal, dtype, shape", [
    ("local", 0.5, False, torch.float32, (2, 256, 2, 16)),
    ("dilated", 0.7, True, torch.float16, (2, 256, 2, 32)),
    ("global", 0.6, True, torch.float32, (1, 256, 4, 16)),
    ("local_dilated_global", 0.7, False, torch.float16, (2, 256, 3, 32)),
    ("local_dilated_global", 0.7, True, torch.float32, (2, 256, 2, 16)),
])
def test_interpreted_pattern_kinds_match_reference(kind, sparsity, causal, dtype, shape):
    pattern = BlockPattern.make(shape[1], 32, kind, sparsity, causal)
    _compare(*_qkv(shape, dtype), pattern)


@interpreted_only
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_interpreted_uneven_handmade_layout(causal, dtype):
    pattern = BlockPattern(_uneven_layout(8, seed=int(causal)), 32, causal)
    _compare(*_qkv((2, 256, 2, 16), dtype, seed=1), pattern)


@interpreted_only
def test_interpreted_block_not_a_power_of_two_cuts_default_tiles():
    # block 48: the default 32-wide interpreter tiles do not divide it, so they are cut to 16.
    pattern = BlockPattern(_uneven_layout(4, seed=2), 48, causal=True)
    _compare(*_qkv((1, 192, 2, 16), torch.float32, seed=2), pattern)


@interpreted_only
@pytest.mark.parametrize("causal", [False, True])
def test_interpreted_strided_views_and_explicit_scale(causal):
    # q, k: views of one (b, n, 3, h, d) tensor (seq stride 3*h*d, as from a fused qkv
    # projection); v: stride 2 along head_dim, which the kernel copies first.
    gen = torch.Generator().manual_seed(3)
    b, n, h, d = 2, 256, 2, 32
    packed = torch.randn(b, n, 3, h, d, generator=gen, dtype=torch.float16)
    v = torch.randn(b, n, h, 2 * d, generator=gen, dtype=torch.float16)[..., ::2]
    pattern = BlockPattern.make(n, 32, "local_dilated_global", 0.7, causal)
    _compare(packed[:, :, 0], packed[:, :, 1], v, pattern, scale=0.3)


@interpreted_only
@pytest.mark.parametrize("block_m, block_n", [(16, 16), (32, 16), (16, 32), (64, 32)])
def test_interpreted_tiles_smaller_than_block(block_m, block_n):
    # Several query tiles and key tiles per 64-token block: every causal diagonal split.
    from attention.kernels.block_sparse import KernelConfig

    layout = _uneven_layout(4, seed=4)
    for causal in (False, True):
        pattern = BlockPattern(layout, 64, causal)
        _compare(*_qkv((1, 256, 2, 16), torch.float32, seed=4), pattern,
                 config=KernelConfig(block_m, block_n, 1, 1))


@interpreted_only
def test_interpreted_runs_under_no_grad_and_refuses_grad():
    from attention.kernels.block_sparse import forward as block_sparse_attention_triton

    pattern = BlockPattern.make(128, 32, "local", 0.5)
    q, k, v = _qkv((1, 128, 2, 16), torch.float32)
    plain = block_sparse_attention_triton(q, k, v, pattern)
    q.requires_grad_()
    with torch.no_grad():
        assert torch.equal(block_sparse_attention_triton(q, k, v, pattern), plain)
    with pytest.raises(RuntimeError, match="forward-only"):
        block_sparse_attention_triton(q, k, v, pattern)


@interpreted_only
def test_interpreted_rejects_config_not_dividing_block():
    from attention.kernels.block_sparse import forward as block_sparse_attention_triton
    from attention.kernels.block_sparse import KernelConfig

    q = torch.zeros(1, 96, 2, 16)
    pattern = BlockPattern.make(96, 48, "local", 0.0)
    with pytest.raises(ValueError, match="block_m 32 must be a power of two >= 16 dividing block_size 48"):
        block_sparse_attention_triton(q, q, q, pattern, config=KernelConfig(32, 16, 1, 1))


@interpreted_only
def test_interpreted_available_for_cpu_tensors():
    pattern = BlockPattern.make(128, 32, "local", 0.5)
    assert _avail(torch.zeros(1, 128, 2, 16, dtype=torch.float16), pattern)
    assert _avail(torch.zeros(1, 128, 2, 16), pattern)
    assert not _avail(torch.zeros(1, 128, 2, 24), pattern)
    assert not _avail(torch.zeros(1, 120, 2, 16), BlockPattern.make(120, 24, "local", 0.5))


# ---- no kernel launch: these run in the parent ------------------------------------------------

def test_available_only_for_cuda_half_precision():
    pattern = BlockPattern.make(256, 32, "local", 0.5)
    if not INTERPRETED:
        assert not _avail(torch.zeros(1, 256, 2, 16, dtype=torch.float16), pattern)
    if torch.cuda.is_available() and HAVE_TRITON and not INTERPRETED:
        cuda = torch.zeros(1, 256, 2, 64, dtype=torch.bfloat16, device="cuda")
        assert _avail(cuda, pattern)
        assert not _avail(cuda.float(), pattern)  # would be TF32


@pytest.mark.parametrize("causal", [False, True])
def test_kernel_pattern_lists_each_rows_key_blocks(causal):
    from attention.kernels.block_sparse import kernel_pattern

    layout = _uneven_layout(8, seed=5)
    pattern = BlockPattern(layout, 32, causal)
    tables = kernel_pattern(pattern, torch.device("cpu"))
    assert kernel_pattern(pattern, torch.device("cpu")) is tables  # built once per device
    offsets, index = tables.kv_offsets.tolist(), tables.kv_index.tolist()
    counts = []
    for i in range(8):
        # Causal: the diagonal block is left to the kernel's masked pass.
        want = [j for j in range(8) if layout[i, j] and (not causal or j < i)]
        assert index[offsets[i]:offsets[i + 1]] == want
        counts.append(len(want))
    order = tables.row_order.tolist()
    assert sorted(order) == list(range(8))
    assert [counts[i] for i in order] == sorted(counts, reverse=True)
    assert all(t.dtype == torch.int32 for t in (tables.kv_offsets, tables.kv_index, tables.row_order))


@pytest.mark.skipif(not HAVE_TRITON, reason="needs triton")
@pytest.mark.parametrize("shape, dtype, block_size, message", [
    ((1, 192, 2, 16), torch.float16, 32, "seq_len 192 does not match the pattern's 8 blocks"),
    ((1, 256, 2, 16), torch.float64, 32, "supports torch.float16"),
    ((1, 256, 2, 16), torch.int32, 32, "floating-point"),
    ((1, 256, 2, 24), torch.float16, 32, "head_dim"),
    ((1, 240, 2, 16), torch.float16, 24, "block_size a multiple of 16"),
])
def test_bad_input_raises_one_line_error(shape, dtype, block_size, message):
    from attention.kernels.block_sparse import forward as block_sparse_attention_triton

    pattern = BlockPattern.make(256 if shape[1] == 192 else shape[1], block_size, "local", 0.5)
    q = torch.zeros(shape, dtype=dtype)
    with pytest.raises(ValueError, match=message):
        block_sparse_attention_triton(q, q, q, pattern)


@pytest.mark.skipif(not HAVE_TRITON, reason="needs triton")
def test_input_requiring_grad_is_refused_before_launch():
    from attention.kernels.block_sparse import forward as block_sparse_attention_triton

    pattern = BlockPattern.make(256, 32, "local", 0.5)
    q = torch.zeros(1, 256, 2, 16, dtype=torch.float16)
    with pytest.raises(RuntimeError, match="forward-only"):
        block_sparse_attention_triton(q, q.clone().requires_grad_(), q, pattern)


@pytest.mark.skipif(INTERPRETED or not HAVE_TRITON, reason="the interpreter accepts CPU tensors")
def test_cpu_tensors_refused_without_interpreter():
    from attention.kernels.block_sparse import forward as block_sparse_attention_triton

    q = torch.zeros(1, 256, 2, 16, dtype=torch.float16)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        block_sparse_attention_triton(q, q, q, BlockPattern.make(256, 32, "local", 0.5))
