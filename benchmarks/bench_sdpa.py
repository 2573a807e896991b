"""The dense baseline under each SDPA backend torch offers on this device (math, flash, ...).

``DenseAttention`` with backend "auto" is what ``bench_time`` measures; torch's choice differs by
GPU (cuDNN on an H100 with torch 2.11), so "flash" here is the FlashAttention-2 baseline that
speed-up targets quote.
"""
import torch

from . import common

# torch's CPU build has only these two; listing the GPU-only ones on CPU would just add skips.
BACKENDS = list(common.PROFILE.sdpa_backends) or (
    ["math", "flash", "efficient", "cudnn"] if common.DEVICE == "cuda" else ["math", "flash"])
PARAMS = [BACKENDS, list(common.PROFILE.sdpa_seq_lens), list(common.PROFILE.dtypes),
          list(common.PROFILE.causals)]
PARAM_NAMES = ["backend", "seq_len", "dtype", "causal"]


def _dense(backend: str, seq_len: int, dtype: str, causal: bool, backward: bool):
    """(module, q, k, v) for one backend, or a skip where this build/device lacks it."""
    common.prepare_process()
    if backend == "math" and common.DEVICE == "cuda" and seq_len > 16384:
        common.skip("math SDPA materialises the seq_len^2 scores (tens of GB past 16K): not a baseline there")
    dense = common.optional_module("attention.dense")
    if not hasattr(dense, "available_sdpa_backends"):
        common.skip("attention.dense has no SDPA backend selection at this commit")
    if backend not in dense.available_sdpa_backends(common.DEVICE, common.DTYPES[dtype]):
        common.skip(f"SDPA backend {backend!r} does not run on {common.DEVICE} for {dtype}")
    p = common.PROFILE
    spec = common.make_spec(seq_len, p.batches[0], p.heads[0], p.head_dims[0], dtype, causal)
    return dense.DenseAttention(causal=causal, backend=backend), common.make_qkv(spec, requires_grad=backward)


def _workload(backend: str, seq_len: int, dtype: str, causal: bool, backward: bool) -> common.Workload:
    fn, qkv = _dense(backend, seq_len, dtype, causal, backward)
    io_bytes = 4 * qkv[0].numel() * qkv[0].element_size()
    if backward:
        grad_out = torch.ones_like(qkv[0])

        def call() -> None:
            torch.autograd.grad(fn(*qkv), qkv, grad_out)
    else:
        def call() -> None:
            with torch.no_grad():
                fn(*qkv)
    return common.Workload(call, io_bytes * (2 if backward else 1))


class SdpaBackends(common.Timed):
    """attention.dense.DenseAttention(backend=...) forward; backends this build lacks are skipped."""

    params, param_names = PARAMS, PARAM_NAMES

    def setup(self, backend, seq_len, dtype, causal):
        self.sampler = common.sampler(("sdpa_forward", backend, seq_len, dtype, causal),
                                      lambda: _workload(backend, seq_len, dtype, causal, backward=False))

    def time_forward(self, backend, seq_len, dtype, causal):
        self.sampler.sample()


class SdpaBackendsForwardBackward(common.Timed):
    """The same, forward and backward (gradients of q, k, v)."""

    params = [BACKENDS, list(common.PROFILE.backward_seq_lens or common.PROFILE.sdpa_seq_lens),
              list(common.PROFILE.dtypes), list(common.PROFILE.causals)]
    param_names = PARAM_NAMES

    def setup(self, backend, seq_len, dtype, causal):
        self.sampler = common.sampler(("sdpa_forward_backward", backend, seq_len, dtype, causal),
                                      lambda: _workload(backend, seq_len, dtype, causal, backward=True))

    def time_forward_backward(self, backend, seq_len, dtype, causal):
        self.sampler.sample()
