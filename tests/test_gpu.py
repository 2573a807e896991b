"""The CUDA-only paths, on a real GPU: the Triton kernels in bf16/fp16 against the float64
reference, the modules routing to them, the cached kernel launches, CUDA peak memory, the
largest-fit search, and flex_attention's backward.

Marked ``gpu``; skipped without CUDA, except under ``ATTNBENCH_REQUIRE_GPU=1`` (what
``make test-gpu`` sets), where a missing GPU fails instead. Run on the GPU box:
``make test-gpu`` (or ``ATTNBENCH_REQUIRE_GPU=1 python -m pytest -q -m gpu tests/test_gpu.py``).
Shapes are ``(batch, seq_len, num_heads, head_dim)``.
"""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from attention import BlockPattern, BlockSparseAttention, ImprovedDilatedAttention
from attention.reference import masked_attention, reference_dilated_attention

REQUIRE_GPU = os.environ.get("ATTNBENCH_REQUIRE_GPU") == "1"
HAVE_CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not HAVE_CUDA and not REQUIRE_GPU,
                                 reason="needs a CUDA GPU (make test-gpu on the GPU box)")]
MIB = 2 ** 20
# Error bounds against the float64 reference, as a fraction of the reference's largest magnitude.
TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}


def _qkv(shape, dtype, seed=0, requires_grad=False):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return tuple(torch.randn(shape, generator=gen, device="cuda", dtype=dtype).requires_grad_(requires_grad)
                 for _ in range(3))


def _close(got: torch.Tensor, want: torch.Tensor, dtype, what: str, factor: float = 1.0) -> None:
    scale = max(want.abs().max().item(), 1.0)
    err = (got.double() - want.double()).abs().max().item()
    assert err <= TOL[dtype] * factor * scale, f"{what}: max abs error {err:.3g} (reference max {scale:.3g})"


def _compare_with_grads(fn, reference, shape, dtype, seed=0):
    """fn's output and dq, dk, dv against the float64 reference's."""
    q, k, v = _qkv(shape, dtype, seed, requires_grad=True)
    out = fn(q, k, v)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = reference(q64, k64, v64)
    _close(out, ref, dtype, "output")
    g = torch.randn(ref.shape, generator=torch.Generator(device="cuda").manual_seed(99), device="cuda",
                    dtype=torch.float64)
    for name, a, b in zip("qkv", torch.autograd.grad(out, (q, k, v), g.to(dtype)),
                          torch.autograd.grad(ref, (q64, k64, v64), g)):
        _close(a, b, dtype, f"d{name}", factor=4)


def test_a_cuda_device_is_there():
    assert HAVE_CUDA, "the GPU suite needs CUDA"
    import triton  # noqa: F401  - every kernel below needs it


# ---------------------------------------------------------------------------------------------
# Dilated attention: the Triton kernel, forward and backward

DILATED = [  # (shape, segments, rates, causal, dtype, scale)
    ((2, 1024, 6, 64), (256, 512, 1024), (1, 2, 4), False, torch.bfloat16, None),
    ((2, 1024, 6, 64), (256, 512, 1024), (1, 2, 4), True, torch.bfloat16, None),
    ((1, 512, 4, 128), (128, 512), (1, 2), True, torch.bfloat16, None),
    ((1, 512, 4, 32), (256, 512), (2, 4), False, torch.float16, 0.3),
]


@pytest.mark.parametrize("shape,segments,rates,causal,dtype,scale", DILATED)
def test_dilated_triton_forward_and_backward_match_the_reference(shape, segments, rates, causal, dtype, scale):
    module = ImprovedDilatedAttention(segments, rates, causal=causal, scale=scale, backend="triton")
    _compare_with_grads(module, lambda q, k, v: reference_dilated_attention(q, k, v, segments, rates, causal=causal,
                                                                            scale=scale), shape, dtype)
    assert module.last_backend == "triton"


def test_dilated_triton_reads_packed_qkv_in_place():
    """q, k, v as views of one (batch, seq, 3, heads, head_dim) tensor, as from a fused projection."""
    segments, rates = (256, 512), (1, 2)
    gen = torch.Generator(device="cuda").manual_seed(5)
    packed = torch.randn(1, 1024, 3, 4, 64, generator=gen, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    q, k, v = packed.unbind(2)
    module = ImprovedDilatedAttention(segments, rates, causal=True)
    out = module(q, k, v)
    assert module.last_backend == "triton"
    ref_packed = packed.detach().double().requires_grad_()
    ref = reference_dilated_attention(*ref_packed.unbind(2), segments, rates, causal=True)
    _close(out, ref, torch.bfloat16, "output")
    g = torch.randn(ref.shape, generator=gen, device="cuda", dtype=torch.float64)
    (got,) = torch.autograd.grad(out, packed, g.to(torch.bfloat16))
    (want,) = torch.autograd.grad(ref, ref_packed, g)
    _close(got, want, torch.bfloat16, "d(packed qkv)", factor=4)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_improved_dilated_takes_its_triton_path_on_cuda(requires_grad):
    module = ImprovedDilatedAttention((256, 512), (1, 2), causal=False)  # backend "auto"
    q, k, v = _qkv((1, 1024, 4, 64), torch.bfloat16, requires_grad=requires_grad)
    out = module(q, k, v)
    assert module.last_backend == "triton"
    _close(out, reference_dilated_attention(q.double(), k.double(), v.double(), (256, 512), (1, 2)),
           torch.bfloat16, "output")


def test_the_benchmarked_improved_dilated_runs_triton_forward_and_backward(cuda_suite):
    common, _ = cuda_suite
    case = common.AttentionCase("ImprovedDilatedAttention", 4096, 1, 4, 64, "bfloat16", False)
    assert case.fn.last_backend == "triton"
    case = common.AttentionCase("ImprovedDilatedAttention", 4096, 1, 4, 64, "bfloat16", False, backward=True)
    assert case.fn.last_backend == "triton"
    seen = []
    for t in case.wrt:
        t.register_hook(lambda g, seen=seen: seen.append(float(g.float().abs().sum())))
    case.run()
    assert len(seen) == 3 and all(s > 0 for s in seen)


def test_repeated_launches_reuse_the_compiled_kernel_and_stay_correct(monkeypatch):
    """Later calls of a known input signature skip Triton's JIT entry (cached launch), on new
    tensors, on another stream, and a new signature (length, causal) is compiled/bound anew."""
    import triton.runtime.jit as jit

    calls = []
    real_run = jit.JITFunction.run

    def counting_run(self, *args, **kwargs):
        calls.append(getattr(self, "__name__", "kernel"))
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(jit.JITFunction, "run", counting_run)
    segments, rates = (256, 512), (1, 2)
    module = ImprovedDilatedAttention(segments, rates, causal=True)

    def check(seed, n=1024, stream=None):
        q, k, v = _qkv((1, n, 4, 64), torch.bfloat16, seed)
        torch.cuda.synchronize()
        with torch.cuda.stream(stream or torch.cuda.current_stream()):
            with torch.no_grad():
                out = module(q, k, v)
        torch.cuda.synchronize()
        want = reference_dilated_attention(q.double(), k.double(), v.double(), segments, rates, causal=True)
        _close(out, want, torch.bfloat16, f"seed {seed}, {n} tokens")
        assert module.last_backend == "triton"

    check(0)
    assert calls, "the first call goes through Triton's JIT"
    calls.clear()
    check(1)
    check(2, stream=torch.cuda.Stream())
    assert calls == [], f"a known signature launched through the JIT again: {calls}"
    check(3, n=2048)  # new length: a new signature, still correct
    calls.clear()
    check(4, n=2048)
    assert calls == []


# ---------------------------------------------------------------------------------------------
# Block-sparse attention: the Triton forward, flex_attention forward and backward

def _block_reference(pattern: BlockPattern, heads: int, scale: float | None = None):
    def reference(q, k, v):
        n, bs = q.shape[1], pattern.block_size
        lay = pattern.layout.to(q.device)
        t = torch.arange(n, device=q.device)
        mask = lay[t[:, None] // bs, t[None, :] // bs]
        if pattern.causal:
            mask = mask & (t[None, :] <= t[:, None])
        return masked_attention(q, k, v, mask.expand(heads, -1, -1), scale)
    return reference


@pytest.mark.parametrize("kind,causal,scale", [("local", False, None), ("dilated", True, None),
                                               ("global", True, 0.2), ("local_dilated_global", False, None)])
def test_block_sparse_triton_forward_matches_the_reference(kind, causal, scale):
    module = BlockSparseAttention(block_size=64, sparsity=0.7, pattern=kind, causal=causal, scale=scale)  # auto
    q, k, v = _qkv((2, 1024, 4, 64), torch.bfloat16)
    with torch.no_grad():
        out = module(q, k, v)
    assert module.last_backend == "triton"
    pattern = module.pattern_for(1024)
    want = _block_reference(pattern, 4, scale)(q.double(), k.double(), v.double())
    _close(out, want, torch.bfloat16, f"{kind} causal={causal}")


def test_block_sparse_training_takes_flex_and_its_backward_matches_the_reference():
    module = BlockSparseAttention(block_size=128, sparsity=0.6, pattern="local_dilated_global", causal=True)
    pattern = module.pattern_for(1024)
    _compare_with_grads(module, _block_reference(pattern, 4), (1, 1024, 4, 64), torch.bfloat16)
    assert module.last_backend == "flex"


# ---------------------------------------------------------------------------------------------
# The benchmarks' CUDA measurements

@pytest.fixture(scope="module")
def cuda_suite():
    from test_benchmarks import _fresh_suite

    try:
        yield _fresh_suite("quick", "cuda")
    finally:
        _fresh_suite()  # the CPU suite for whatever runs next


def test_cuda_peak_is_the_allocator_peak_of_the_call(cuda_suite):
    common, modules = cuda_suite
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated() / MIB
    peak = common.cuda_peak_allocated_mib(lambda: torch.empty(64 * MIB, dtype=torch.uint8, device="cuda"))
    assert peak - base == pytest.approx(64, abs=0.5)

    bench = modules["bench_memory"].CudaPeakMemory()
    params = ("DenseAttention", 4096, 1, 4, 32, "float32", False)
    bench.setup(*params)
    value = bench.track_peak_allocated(*params)
    qkvo = 4 * 4096 * 4 * 32 * 4 / MIB  # q, k, v and the output, float32
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    bench.case.forward()
    torch.cuda.synchronize()
    independent = torch.cuda.max_memory_allocated() / MIB
    assert value >= qkvo - 0.01 and value == pytest.approx(independent, abs=0.5)


def test_largest_fit_finds_the_cap_and_the_memory_limit(cuda_suite, monkeypatch):
    common, modules = cuda_suite
    capacity = modules["bench_capacity"]
    assert hasattr(capacity, "LargestFit")  # defined on CUDA
    profile = dataclasses.replace(common.PROFILE, heads=(2,), head_dims=(64,), largest_fit_start=4096,
                                  largest_fit_cap=2 ** 16)
    monkeypatch.setattr(common, "PROFILE", profile)
    largest, ratio = capacity.search("DenseAttention", "bfloat16", False)
    assert largest == 2 ** 16 and 1.0 <= ratio < 3.0  # everything up to the cap fits

    per_token = 4 * 2 * 64 * 2  # q, k, v, out in bf16: bytes per token
    monkeypatch.setattr(common, "PROFILE", dataclasses.replace(profile, largest_fit_cap=2 ** 22))
    torch.cuda.empty_cache()
    limit = torch.cuda.memory_allocated() + 256 * MIB
    torch.cuda.set_per_process_memory_fraction(limit / torch.cuda.get_device_properties(0).total_memory)
    try:
        largest, ratio = capacity.search("DenseAttention", "bfloat16", False)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert 2 ** 16 <= largest < 2 ** 22
    assert largest * per_token * ratio <= limit  # what it reports did fit
    assert largest * per_token * ratio >= 0.6 * limit, (largest, ratio)  # and the search got close to the limit
