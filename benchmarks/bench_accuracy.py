"""Numerical error against the naive full-mask reference (attention.reference), at a small size.

A broken kernel shows on the site as a jump in this track; float32 errors sit near 1e-6.
"""
import torch

from . import common



def _block_sparse(ref, case, q, k, v):
    """The block layout defines the function (its token mask); the float64 masked softmax computes it."""
    pattern_for = getattr(case.fn, "pattern_for", None)
    if pattern_for is None:
        common.skip("BlockSparseAttention exposes no pattern_for() at this commit")
    mask = pattern_for(case.spec.seq_len).token_mask(q.device)
    return ref.masked_attention(q, k, v, mask.expand(case.spec.num_heads, -1, -1))


# Implementation.pattern -> how the float64 reference computes it. "dilated+proj" (projections
# around dilated attention) has no independent reference and is skipped.
REFERENCES = {
    "dense": lambda ref, case, q, k, v: ref.reference_dense_attention(q, k, v, causal=case.spec.causal),
    "dilated": lambda ref, case, q, k, v: ref.reference_dilated_attention(
        q, k, v, case.spec.segments_for(), case.spec.dilation_rates, causal=case.spec.causal),
    "block_sparse": _block_sparse,
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
        self.expected = REFERENCES[pattern](reference, self.case, *self.case.qkv).double()

    def track_max_abs_error(self, name, dtype, causal):
        with torch.no_grad():
            out = self.case.fn(*self.case.qkv)
        return (out.double() - self.expected).abs().max().item()
