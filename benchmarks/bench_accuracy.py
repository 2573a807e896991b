"""Numerical error against the naive full-mask reference (attention.reference), at a small size.

A broken kernel shows on the site as a jump in this track; float32 errors sit near 1e-6.
"""
import torch

from . import common

# pattern (Implementation.pattern) -> how the float64 reference computes it
REFERENCES = {
    "dense": lambda ref, spec, q, k, v: ref.reference_dense_attention(q, k, v, causal=spec.causal),
    "dilated": lambda ref, spec, q, k, v: ref.reference_dilated_attention(
        q, k, v, spec.segments_for(), spec.dilation_rates, causal=spec.causal),
}


class Accuracy:
    """Max absolute error of one forward pass vs the float64 reference (same seeded inputs)."""

    params = [list(common.IMPLEMENTATIONS), list(common.PROFILE.dtypes), [False, True]]
    param_names = ["implementation", "dtype", "causal"]
    unit = "max abs error"

    def setup(self, name, dtype, causal):
        p = common.PROFILE
        self.case = common.AttentionCase(name, p.accuracy_seq_len, 1, p.heads[0], p.head_dims[0],
                                         dtype, causal, warmup=False)
        pattern = getattr(self.case.impl, "pattern", None)
        if pattern not in REFERENCES:
            common.skip(f"no reference for pattern {pattern!r} of {name}")
        reference = common.optional_module("attention.reference")
        self.expected = REFERENCES[pattern](reference, self.case.spec, *self.case.qkv).double()

    def track_max_abs_error(self, name, dtype, causal):
        with torch.no_grad():
            out = self.case.fn(*self.case.qkv)
        return (out.double() - self.expected).abs().max().item()
