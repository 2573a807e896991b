"""The Triton dilated-attention kernels against the full-mask reference, on CPU via the interpreter.

``TRITON_INTERPRET=1`` must be set before the kernels are defined (at import of
``attention.kernels.dilated``), so the kernel tests run in a child pytest process with it set;
in the parent they are skipped and one test launches that child. Shapes are
``(batch, seq_len, num_heads, head_dim)``, tiny so the interpreter stays within ~1-2 minutes.
bfloat16 is left to the GPU probe (scripts/gpu_kernel_probe.py): the interpreter's ``tl.dot``
returns garbage for bfloat16 operands (triton 3.9), while float16 and float32 are exact.
"""
from __future__ import annotations

import pytest
import torch

from triton_interpreter import HAVE_TRITON, interpreted_only, launcher_only, run_interpreted_tests


@pytest.mark.slow
@launcher_only
def test_kernels_under_triton_interpreter():
    run_interpreted_tests(__file__, 6)


def _run_and_compare(shape, segments, rates, causal, dtype, qkv_from_packed=False, atol=None):
    """Forward and gradients of the kernel vs the float64 full-mask reference."""
    from attention.reference import dilated_mask, reference_dilated_attention
    from attention.kernels.dilated import attention as dilated_attention_triton

    torch.manual_seed(hash((shape, segments, causal, str(dtype))) % 2**31)
    b, n, h, d = shape
    if qkv_from_packed:
        # Views into one (b, n, 3, h, d) tensor: seq stride 3*h*d, as from a fused qkv projection.
        packed = torch.randn(b, n, 3, h, d, dtype=dtype, requires_grad=True)
        q, k, v = packed[:, :, 0], packed[:, :, 1], packed[:, :, 2]
        leaves = (packed,)
    else:
        q, k, v = (torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3))
        leaves = (q, k, v)
    out = dilated_attention_triton(q, k, v, segments, rates, causal=causal)
    grad_out = torch.randn_like(out)
    got_grads = torch.autograd.grad(out, leaves, grad_out)

    ref_leaves = tuple(t.detach().double().requires_grad_() for t in leaves)
    if qkv_from_packed:
        rq, rk, rv = (ref_leaves[0][:, :, i] for i in range(3))
    else:
        rq, rk, rv = ref_leaves
    ref = reference_dilated_attention(rq, rk, rv, segments, rates, causal=causal)
    ref = ref.double() if dtype != torch.float32 else ref
    ref_grads = torch.autograd.grad(ref, ref_leaves, grad_out.double())

    atol = atol or (2e-5 if dtype == torch.float32 else 2e-2)
    assert out.shape == q.shape and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref.double(), atol=atol, rtol=0)
    for name, got, want in zip(("dq", "dk", "dv") if len(leaves) == 3 else ("dqkv",),
                               got_grads, ref_grads):
        torch.testing.assert_close(got.double(), want, atol=atol * 4, rtol=0, msg=name)

    # Rows a head does not cover carry no query at all: output exactly 0, not just small.
    covered = dilated_mask(n, h, segments, rates, causal).any(dim=-1)  # (h, n)
    uncovered = ~covered.T[None, :, :, None].expand_as(out)
    assert torch.all(out.detach()[uncovered] == 0)


@interpreted_only
@pytest.mark.parametrize("causal", [False, True])
def test_interpreted_float32_matches_reference(causal):
    _run_and_compare((1, 128, 6, 16), (32, 64, 128), (1, 2, 4), causal, torch.float32)


@interpreted_only
def test_interpreted_float16_causal_matches_reference():
    _run_and_compare((2, 64, 3, 32), (16, 32, 64), (1, 2, 4), True, torch.float16)


@interpreted_only
def test_interpreted_ragged_pattern_and_strided_views():
    # w % r != 0 and w / r not a whole tile: every mask path; q/k/v are views of a packed tensor.
    _run_and_compare((1, 120, 4, 16), (24, 40), (1, 3), False, torch.float32, qkv_from_packed=True)


@interpreted_only
def test_interpreted_inference_path_matches_autograd_path():
    from attention.kernels.dilated import attention as dilated_attention_triton

    q, k, v = (torch.randn(1, 64, 3, 16) for _ in range(3))
    with torch.no_grad():
        plain = dilated_attention_triton(q, k, v, (16, 32, 64), (1, 2, 4))
    with_grad = dilated_attention_triton(q.requires_grad_(), k, v, (16, 32, 64), (1, 2, 4))
    assert torch.equal(plain, with_grad.detach())


@interpreted_only
def test_interpreted_inference_plan_runs_inputs_of_its_signature():
    from attention.reference import reference_dilated_attention
    from attention.kernels import dilated

    segments, rates = (16, 32), (1, 2)
    packed = torch.randn(1, 64, 3, 4, 16)  # q, k, v as views: seq stride 3*h*d
    q, k, v = packed.unbind(2)
    plan = dilated.plan(q, k, v, segments, rates, causal=True)
    for _ in range(2):  # a plan is reused for new inputs of the same signature
        out, lse = plan.forward(q, k, v)
        ref = reference_dilated_attention(q.double(), k.double(), v.double(), segments, rates,
                                          causal=True)
        torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)
        assert lse is None and out.is_contiguous()
        packed = torch.randn(1, 64, 3, 4, 16)
        q, k, v = packed.unbind(2)
    # head_dim not unit-stride: the plan copies the inputs first.
    strided = torch.randn(1, 64, 4, 32)[..., ::2]
    out = dilated.plan(strided, strided, strided, segments, rates)(strided, strided, strided)
    ref = reference_dilated_attention(*(strided.double(),) * 3, segments, rates)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)


def test_triton_available_only_for_cuda_half_precision():
    from attention.kernels import dilated

    assert not dilated.available(device="cpu", dtype=torch.float16, head_dim=16)
    if HAVE_TRITON:  # asked without a tensor, so no GPU is needed to ask about one
        assert dilated.available(device="cuda", dtype=torch.bfloat16, head_dim=64)
        assert not dilated.available(device="cuda", dtype=torch.float32, head_dim=64)
        assert not dilated.available(device="cuda", dtype=torch.bfloat16, head_dim=24)
        assert not dilated.available(device="cuda", dtype=torch.bfloat16, head_dim=64,
                                     segments=(64, 128), rates=(1, 16))  # 128 // 16 < 16 rows


@pytest.mark.skipif(not HAVE_TRITON, reason="needs triton")
@pytest.mark.parametrize("kwargs, message", [
    (dict(shape=(1, 100, 3, 16)), "not divisible by segment length"),
    (dict(shape=(1, 64, 4, 16)), "num_heads 4 is not divisible"),
    (dict(shape=(1, 64, 3, 24)), "head_dim"),
    (dict(shape=(1, 64, 3, 16), dtype=torch.int32), "floating-point"),
])
def test_bad_input_raises_one_line_error(kwargs, message):
    from attention.kernels.dilated import attention as dilated_attention_triton

    q = torch.zeros(kwargs["shape"], dtype=kwargs.get("dtype", torch.float16))
    with pytest.raises(ValueError, match=message):
        dilated_attention_triton(q, q, q, (16, 32, 64), (1, 2, 4))


@pytest.mark.skipif(not HAVE_TRITON, reason="needs triton")
def test_tuned_tiles_fit_their_buckets():
    from attention.kernels import dilated

    for table in (dilated.FWD_TUNED, dilated.BWD_TUNED):
        for (head_dim, causal), buckets in table.items():
            assert head_dim in dilated.FWD_CONFIGS
            limits = [limit for limit, _ in buckets]
            assert limits == sorted(limits) and len(set(limits)) == len(limits)
            for limit, cfg in buckets:
                # The plan picks the bucket's tiles for inputs up to its limit.
                assert dilated.default_config(head_dim, causal, min(limit, 2**40),
                                              backward=table is dilated.BWD_TUNED) == cfg
                # Every tile a power of two >= 16 (one MMA tile); a causal forward needs its query
                # block to be a whole number of key blocks (the diagonal pass).
                assert all(x >= 16 and x & (x - 1) == 0 for x in (cfg.block_m, cfg.block_n))
                if causal and table is dilated.FWD_TUNED:
                    assert cfg.block_m % cfg.block_n == 0
