"""Bad input to the attention API, property-based: every bad argument or shape is a ValueError naming
what is wrong, never a TypeError from deep inside torch, a ZeroDivisionError, or a NaN output.

The strategies draw constructor arguments (segment lengths, dilation rates, scale, dropout, flags,
sizes, backends) and input shapes; each example is judged against an independent rule of what is
valid, so a bad value that slips through (accepted, or failing with anything but ValueError) fails
the test, and so does a valid one that is refused.
"""
from __future__ import annotations

import math
import numbers
import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from attention import (BlockSparseAttention, DenseAttention, DilatedAttention, ImprovedDilatedAttention,
                       ImprovedMultiheadDilatedAttention, MultiheadDilatedAttention, RingDilatedAttention)

# 60 examples per property keeps the file near 10 s; BAD_INPUT_EXAMPLES=1000 for a deeper search.
CHEAP = settings(max_examples=int(os.environ.get("BAD_INPUT_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
DILATED = [DilatedAttention, ImprovedDilatedAttention, RingDilatedAttention]
MULTIHEAD = [MultiheadDilatedAttention, ImprovedMultiheadDilatedAttention]

# Anything a careless caller might pass where a number, a flag or a list belongs.
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.lists(st.integers(-2, 9), max_size=3), st.just(torch.tensor(1.0)),
    st.just(object()), st.just({"a": 1}), st.just({1, 2}),
)


def _refused(build, *names: str) -> str:
    """Call ``build``; it must raise ValueError whose message names one of ``names``."""
    with pytest.raises(ValueError) as info:
        build()
    message = str(info.value)
    assert any(name in message for name in names), message
    return message


# --- scale, dropout, flags ----------------------------------------------------------------------

def _valid_scale(x) -> bool:
    return x is None or (isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) and x > 0)


def _valid_dropout(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and 0.0 <= x < 1.0


@CHEAP
@given(scale=st.one_of(junk, st.floats(min_value=1e-3, max_value=10.0)),
       cls=st.sampled_from([*DILATED, DenseAttention, BlockSparseAttention]))
def test_scale_is_none_or_a_finite_positive_number(scale, cls):
    build = (lambda: cls([8], [1], scale=scale)) if cls in DILATED else (lambda: cls(scale=scale))
    if _valid_scale(scale):
        assert build().scale == scale
    else:
        _refused(build, "scale")


@CHEAP
@given(dropout=st.one_of(junk, st.floats(min_value=0.0, max_value=0.99)),
       cls=st.sampled_from([DilatedAttention, ImprovedDilatedAttention, *MULTIHEAD]))
def test_dropout_is_a_probability_below_one(dropout, cls):
    build = (lambda: cls(16, 2, [8], [1], dropout=dropout)) if cls in MULTIHEAD else \
        (lambda: cls([8], [1], dropout=dropout))
    if _valid_dropout(dropout):
        build()
    else:
        _refused(build, "dropout")


@CHEAP
@given(flag=junk, cls=st.sampled_from([*DILATED, DenseAttention, BlockSparseAttention]))
def test_causal_is_true_or_false(flag, cls):
    build = (lambda: cls([8], [1], causal=flag)) if cls in DILATED else (lambda: cls(causal=flag))
    if isinstance(flag, bool):
        build()
    else:
        _refused(build, "causal")


@CHEAP
@given(flag=junk.filter(lambda x: not isinstance(x, bool) and x is not None),
       cls=st.sampled_from([*DILATED, DenseAttention]))
def test_is_causal_at_call_time_is_checked(flag, cls):
    module = cls([8], [1]) if cls in DILATED else cls()
    q = torch.randn(1, 16, 2, 8)
    _refused(lambda: module(q, q, q, is_causal=flag), "is_causal")


# --- dilated patterns -----------------------------------------------------------------------------

def _valid_pattern(segments, rates) -> bool:
    def ints(xs):
        return (isinstance(xs, (list, tuple)) and len(xs) > 0
                and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in xs))
    return ints(segments) and ints(rates) and len(segments) == len(rates)


pattern_values = st.one_of(junk, st.lists(st.one_of(st.integers(-2, 64), st.floats(0.5, 8.0), st.booleans()),
                                          min_size=0, max_size=3),
                           st.lists(st.sampled_from([4, 8, 16]), min_size=1, max_size=3))


@CHEAP
@given(segments=pattern_values, rates=pattern_values, cls=st.sampled_from(DILATED))
def test_segment_lengths_and_dilation_rates_are_matching_lists_of_positive_ints(segments, rates, cls):
    if _valid_pattern(segments, rates):
        module = cls(segments, rates)
        assert module.segment_lengths == tuple(segments)
    else:
        _refused(lambda: cls(segments, rates), "segment_lengths", "dilation_rates")


# --- shapes ---------------------------------------------------------------------------------------

dims = st.integers(0, 3)


@CHEAP
@given(q_shape=st.tuples(dims, st.sampled_from([0, 8, 12, 16]), dims, dims),
       k_len=st.sampled_from([0, 8, 16]), head_dim_k=dims, rank=st.sampled_from([3, 4, 5]),
       cls=st.sampled_from([*DILATED, DenseAttention]))
def test_any_shape_is_computed_finite_or_refused_with_a_value_error(q_shape, k_len, head_dim_k, rank, cls):
    """Valid shapes give a finite output of q's shape; every other shape is a ValueError."""
    b, n, h, d = q_shape
    k_shape = (b, k_len if cls is DenseAttention else n, h, head_dim_k)
    q = torch.randn(q_shape[:rank] if rank <= 4 else (*q_shape, 1))
    k = torch.randn(k_shape[:rank] if rank <= 4 else (*k_shape, 1))
    module = cls([8], [1]) if cls in DILATED else cls()
    valid = (rank == 4 and h >= 1 and d >= 1 and head_dim_k == d
             and (k_shape[1] > 0 or n == 0)
             and (cls is DenseAttention or n % 8 == 0))
    if valid:
        out = module(q, k, k)
        assert out.shape == q.shape and torch.isfinite(out).all()
    else:
        _refused(lambda: module(q, k, k), "q", "k", "seq_len", "head_dim", "num_heads", "shape", "divisible")


@CHEAP
@given(value=st.one_of(junk, st.just(torch.zeros(2, 8, dtype=torch.long))), which=st.sampled_from([0, 1, 2]),
       cls=st.sampled_from([*DILATED, DenseAttention, BlockSparseAttention]))
def test_a_non_tensor_or_integer_tensor_input_is_named(value, which, cls):
    module = cls([8], [1]) if cls in DILATED else cls(block_size=8) if cls is BlockSparseAttention else cls()
    args = [torch.randn(1, 16, 2, 8) for _ in range(3)]
    args[which] = value
    _refused(lambda: module(*args), "qkv"[which])


# --- multihead ------------------------------------------------------------------------------------

@CHEAP
@given(embed=st.one_of(junk, st.integers(1, 32)), heads=st.one_of(junk, st.integers(1, 4)),
       cls=st.sampled_from(MULTIHEAD))
def test_multihead_sizes_are_positive_ints_that_divide(embed, heads, cls):
    def ok(x):
        return isinstance(x, int) and not isinstance(x, bool) and x > 0
    build = lambda: cls(embed, heads, [8], [1])  # noqa: E731
    if ok(embed) and ok(heads) and embed % heads == 0:
        build()
    else:
        _refused(build, "embed_dim", "num_heads")


@CHEAP
@given(key_embed=st.sampled_from([8, 16, 24]), value_embed=st.sampled_from([8, 16, 24]),
       key_len=st.sampled_from([8, 16]), key_rank=st.sampled_from([2, 3, 4]), batch_first=st.booleans(),
       cls=st.sampled_from(MULTIHEAD))
def test_multihead_key_and_value_must_match_the_module(key_embed, value_embed, key_len, key_rank, batch_first, cls):
    module = cls(16, 2, [8], [1], batch_first=batch_first)
    query = torch.randn((1, 16, 16) if batch_first else (16, 1, 16))
    shape = (1, key_len, key_embed) if batch_first else (key_len, 1, key_embed)
    key = torch.randn(shape[3 - key_rank:] if key_rank <= 3 else (1, *shape))
    value = torch.randn(shape[:2] + (value_embed,))
    if key_rank == 3 and key_embed == value_embed == 16 and key_len == 16:
        out, weights = module(query, key, value)
        assert out.shape == query.shape and weights is None and torch.isfinite(out).all()
    else:
        message = _refused(lambda: module(query, key, value), "key", "value")
        assert "mat1" not in message  # not torch's matmul error from inside a projection


# --- the issue's own examples, exactly --------------------------------------------------------------

@pytest.mark.parametrize("build, names", [
    (lambda: DilatedAttention(None, [1]), "segment_lengths"),
    (lambda: ImprovedDilatedAttention([8], None), "dilation_rates"),
    (lambda: RingDilatedAttention([8], [1])(*(torch.randn(1, 16, 2, 0) for _ in range(3))), "head_dim"),
    (lambda: MultiheadDilatedAttention(16, 2, [8], [1])(torch.randn(1, 16, 16), torch.randn(1, 16, 8),
                                                       torch.randn(1, 16, 16)), "key embed_dim 8"),
    (lambda: DilatedAttention([8], [1], scale=math.inf), "scale"),
    (lambda: DenseAttention(scale=float("nan")), "scale"),
    (lambda: ImprovedDilatedAttention([8], [1], dropout=5), "dropout"),
    (lambda: DilatedAttention([8], [1], dropout=-0.1), "dropout"),
    (lambda: BlockSparseAttention(block_size=16.5), "block_size"),
    (lambda: BlockSparseAttention(sparsity=float("nan")), "sparsity"),
    (lambda: DenseAttention()(*(torch.randn(1, 8, 2, 4) for _ in range(2)), torch.randn(1, 0, 2, 4)), "k and v"),
], ids=["segments None", "rates None", "ring head_dim 0", "multihead key embed", "scale inf", "scale nan",
        "dropout 5", "dropout negative", "block_size float", "sparsity nan", "dense empty value"])
def test_named_bad_inputs_are_value_errors(build, names):
    _refused(build, names)


def test_a_valid_dilated_call_matches_the_reference_after_validation():
    """Validation must not change what valid input computes (numpy ints and ranges accepted)."""
    import numpy as np

    from attention.reference import reference_dilated_attention

    q, k, v = (torch.randn(1, 16, 2, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
               for i in range(3))
    module = ImprovedDilatedAttention(np.array([8, 16]), range(1, 3))
    assert module.segment_lengths == (8, 16) and all(type(x) is int for x in module.segment_lengths)
    expected = reference_dilated_attention(q, k, v, (8, 16), (1, 2))
    assert torch.allclose(module(q, k, v), expected, atol=1e-10)


# --- AttentionSpec and BlockPattern: refused where they are made, not deep inside a build ------------

@CHEAP
@given(field=st.sampled_from(["batch", "seq_len", "num_heads", "head_dim", "block_size", "causal", "dtype",
                              "sparsity", "segment_lengths"]),
       value=st.one_of(junk, st.integers(1, 64), st.sampled_from(["float32", "bfloat16", "int8"])))
def test_attention_spec_fields_are_checked_when_the_spec_is_made(field, value):
    from attention import AttentionSpec

    def valid(name, x):
        if name in ("batch", "seq_len", "num_heads", "head_dim", "block_size"):
            return isinstance(x, int) and not isinstance(x, bool) and x > 0
        if name == "causal":
            return isinstance(x, bool)
        if name == "dtype":
            return x in ("float16", "bfloat16", "float32", "float64")
        if name == "sparsity":
            return isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1
        return _valid_pattern(x, [1] * len(x)) if isinstance(x, (list, tuple)) else False

    changes = {field: value}
    if field == "segment_lengths" and isinstance(value, (list, tuple)):
        changes["dilation_rates"] = [1] * len(value)
    if valid(field, value):
        assert getattr(AttentionSpec(**changes), field) == (tuple(value) if field == "segment_lengths" else value)
    else:
        _refused(lambda: AttentionSpec(**changes), field)


@CHEAP
@given(seq_len=st.one_of(junk, st.sampled_from([64, 128])), block_size=st.one_of(junk, st.sampled_from([16, 32])),
       sparsity=st.one_of(junk, st.sampled_from([0.0, 0.5, 0.9])))
def test_block_pattern_make_checks_its_arguments(seq_len, block_size, sparsity):
    from attention import BlockPattern

    def ok(x):
        return isinstance(x, int) and not isinstance(x, bool) and x > 0
    valid = (ok(seq_len) and ok(block_size) and seq_len % block_size == 0
             and isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool) and 0 <= sparsity < 1)
    if valid:
        pattern = BlockPattern.make(seq_len, block_size, sparsity=sparsity)
        assert pattern.num_blocks * pattern.block_size == seq_len
    else:
        _refused(lambda: BlockPattern.make(seq_len, block_size, sparsity=sparsity),
                 "seq_len", "block_size", "sparsity")
