"""The shape and pattern an attention implementation is built for, and its query-key pair count.

Shape convention everywhere in this package: ``(batch, seq_len, num_heads, head_dim)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ._validate import check_flag, check_pattern, check_positive_int

FLOAT_DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")

# LongNet-style default: segments capped at seq_len (see AttentionSpec.segments_for).
DEFAULT_SEGMENTS: tuple[int, ...] = (2048, 4096, 8192)
DEFAULT_RATES: tuple[int, ...] = (1, 2, 4)


@dataclass(frozen=True)
class AttentionSpec:
    """Everything needed to build one implementation for one benchmark shape.

    ``segment_lengths``/``dilation_rates`` describe the dilated pattern; ``block_size``,
    ``sparsity`` and ``block_pattern`` the block-sparse one. Implementations ignore what they
    do not use.
    """

    batch: int = 1
    seq_len: int = 4096
    num_heads: int = 12
    head_dim: int = 64
    causal: bool = False
    dtype: str = "float32"
    device: str = "cpu"
    segment_lengths: tuple[int, ...] = DEFAULT_SEGMENTS
    dilation_rates: tuple[int, ...] = DEFAULT_RATES
    block_size: int = 128
    sparsity: float = 0.9
    block_pattern: str = "local_dilated_global"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # One ValueError naming the field, here, rather than a ZeroDivisionError in pairs() or a
        # build that silently accepts a negative head_dim.
        for name in ("batch", "seq_len", "num_heads", "head_dim", "block_size"):
            check_positive_int(getattr(self, name), name)
        check_flag(self.causal, "causal")
        if self.dtype not in FLOAT_DTYPE_NAMES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {FLOAT_DTYPE_NAMES}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a device name such as 'cpu' or 'cuda', got {self.device!r}")
        segments, rates = check_pattern(self.segment_lengths, self.dilation_rates)
        object.__setattr__(self, "segment_lengths", segments)  # frozen: tuples keep the spec hashable
        object.__setattr__(self, "dilation_rates", rates)
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) \
                or not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity!r}")

    def with_(self, **changes) -> "AttentionSpec":
        return replace(self, **changes)

    def segments_for(self) -> tuple[int, ...]:
        """Segment lengths capped at seq_len, so one config serves every benchmarked length."""
        return tuple(min(w, self.seq_len) for w in self.segment_lengths)

    @property
    def embed_dim(self) -> int:
        return self.num_heads * self.head_dim

    def qkv_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.seq_len, self.num_heads, self.head_dim)


def dense_pairs(spec: AttentionSpec) -> float:
    """Query-key pairs summed over heads, per batch element, for full attention."""
    n = spec.seq_len
    per_head = n * (n + 1) / 2 if spec.causal else float(n * n)
    return per_head * spec.num_heads


def dilated_pairs(spec: AttentionSpec) -> float:
    """Query-key pairs summed over heads for the dilated pattern (docs/semantics.md).

    Per head in group g: seq_len * w_g / r_g**2 pairs (about half of that when causal).
    """
    segments, rates = spec.segments_for(), spec.dilation_rates
    heads_per_group = spec.num_heads // len(segments)
    total = 0.0
    for w, r in zip(segments, rates):
        rows_per_segment = -(-w // r)  # ceil: positions t in [0, w) with t % r == offset
        n_segments = spec.seq_len // w
        if spec.causal:
            per_segment = rows_per_segment * (rows_per_segment + 1) / 2
        else:
            per_segment = float(rows_per_segment * rows_per_segment)
        total += n_segments * per_segment * heads_per_group
    return total


def attention_flops(pairs: float, spec: AttentionSpec, backward: bool = False) -> float:
    """Effective forward FLOPs 4 * batch * head_dim * pairs; fwd+bwd counts 3.5x (bwd ~2.5x fwd)."""
    forward = 4.0 * spec.batch * spec.head_dim * pairs
    return forward * 3.5 if backward else forward
