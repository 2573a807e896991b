"""The dense baseline under each SDPA backend torch offers on this device (math, flash, ...)."""
from . import common

# torch's CPU build has only these two; listing the GPU-only ones on CPU would just add skips.
BACKENDS = ["math", "flash", "efficient", "cudnn"] if common.DEVICE == "cuda" else ["math", "flash"]


class SdpaBackends(common.Timed):
    """attention.dense.DenseAttention(backend=...) forward; backends this build lacks are skipped."""

    params = [BACKENDS, list(common.PROFILE.sdpa_seq_lens), list(common.PROFILE.dtypes),
              list(common.PROFILE.causals)]
    param_names = ["backend", "seq_len", "dtype", "causal"]

    def setup(self, backend, seq_len, dtype, causal):
        common.prepare_process()
        dense = common.optional_module("attention.dense")
        if not hasattr(dense, "available_sdpa_backends"):
            common.skip("attention.dense has no SDPA backend selection at this commit")
        if backend not in dense.available_sdpa_backends(common.DEVICE, common.DTYPES[dtype]):
            common.skip(f"SDPA backend {backend!r} does not run on {common.DEVICE} for {dtype}")
        p = common.PROFILE
        spec = common.make_spec(seq_len, p.batches[0], p.heads[0], p.head_dims[0], dtype, causal)
        self.fn = dense.DenseAttention(causal=causal, backend=backend)
        self.qkv = common.make_qkv(spec)
        self.time_forward(backend, seq_len, dtype, causal)  # warm-up

    def time_forward(self, backend, seq_len, dtype, causal):
        common.run_synced(self.fn, self.qkv)
