"""Each benchmark family measures what its name says, checked against counts and references
written here from the definitions (docs/semantics.md), not from the code being measured.

- forward+backward benchmarks compute a gradient for every input and parameter; forward ones none;
- the accuracy track compares with an independent float64 reference, not with itself;
- pair and FLOP counts equal a brute-force count over the full mask, causal and not, every pattern;
- throughput divides the right work by the measured time;
- peak memory is read from the counter its docstring names, after a reset, around the call.
"""
from __future__ import annotations

import math

import pytest
import torch

from attention import implementations
from test_benchmarks import COMMON, MODULES

TABLE = [entry["name"] for entry in implementations.IMPLEMENTATIONS]
PATTERN = {entry["name"]: entry["pattern"] for entry in implementations.IMPLEMENTATIONS}
BLOCK_KINDS = ("local", "dilated", "global", "local_dilated_global")


# ---------------------------------------------------------------------------------------------
# Independent masks and references, written from docs/semantics.md

def dilated_mask(seq_len: int, heads: int, segments, rates, causal: bool) -> torch.Tensor:
    """(heads, n, n): query i attends key j for head h in group g = h // (heads / m) when both sit
    in the same segment of w_g tokens, at in-segment positions t with t % r_g == h % r_g."""
    per_group = heads // len(segments)
    pos = torch.arange(seq_len)
    out = torch.zeros(heads, seq_len, seq_len, dtype=torch.bool)
    for h in range(heads):
        w, r = segments[h // per_group], rates[h // per_group]
        picked = (pos % w) % r == h % r
        for start in range(0, seq_len, w):
            rows = pos[start:start + w][picked[start:start + w]]
            allowed = torch.ones(len(rows), len(rows), dtype=torch.bool)
            out[h, rows[:, None], rows[None, :]] = allowed.tril() if causal else allowed
    return out


def dense_mask(seq_len: int, heads: int, causal: bool) -> torch.Tensor:
    full = torch.ones(seq_len, seq_len, dtype=torch.bool)
    return (full.tril() if causal else full).expand(heads, -1, -1)


def block_layout(kind: str, nb: int, knob: int) -> torch.Tensor:
    """The table of docs/semantics.md: when query block i attends key block j."""
    i, j = torch.arange(nb)[:, None], torch.arange(nb)[None, :]
    if kind == "local":
        return (i - j).abs() <= knob
    if kind == "dilated":
        return (i - j) % knob == 0
    if kind == "global":
        return (i < knob) | (j < knob) | (i == j)
    return (i == 0) | (j == 0) | ((i - j).abs() <= 1) | ((i - j) % knob == 0)  # local_dilated_global


def tokens_from_layout(layout: torch.Tensor, block_size: int, causal: bool) -> torch.Tensor:
    """(n, n): key s is allowed for query t when their blocks are allowed (and s <= t if causal)."""
    n = layout.shape[0] * block_size
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i, j in layout.nonzero().tolist():
        mask[i * block_size:(i + 1) * block_size, j * block_size:(j + 1) * block_size] = True
    t = torch.arange(n)
    return mask & (t[None, :] <= t[:, None]) if causal else mask


def softmax_reference(q, k, v, mask: torch.Tensor) -> torch.Tensor:
    """float64 softmax(q k^T / sqrt(d)) v under mask (heads, n, n); q, k, v (b, n, h, d).

    A query with no allowed key outputs 0 (docs/semantics.md)."""
    qd, kd, vd = (t.detach().double().permute(0, 2, 1, 3) for t in (q, k, v))
    scores = qd @ kd.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, -1).nan_to_num(0.0)
    return (weights @ vd).permute(0, 2, 1, 3)


def brute_force_pairs(name: str, spec) -> float:
    """Query-key pairs summed over heads, per batch element, counted from the full mask."""
    pattern = PATTERN[name]
    if pattern == "dense":
        return float(dense_mask(spec.seq_len, spec.num_heads, spec.causal).sum())
    if pattern in ("dilated", "dilated+proj"):
        return float(dilated_mask(spec.seq_len, spec.num_heads, spec.segments_for(), spec.dilation_rates,
                                  spec.causal).sum())
    # block_sparse: docs/semantics.md counts allowed blocks * block_size**2 per head (diagonal
    # blocks whole, causal too); the layout is the one make() chose for the target sparsity.
    from attention import BlockPattern

    layout = BlockPattern.make(spec.seq_len, spec.block_size, spec.block_pattern, spec.sparsity,
                               spec.causal).layout
    nb = layout.shape[0]
    allowed = sum(bool(layout[i, j]) for i in range(nb) for j in range(nb) if not spec.causal or j <= i)
    return float(allowed * spec.block_size ** 2 * spec.num_heads)


# ---------------------------------------------------------------------------------------------
# Gradients: forward+backward benchmarks run the backward, forward ones do not

def _watch_gradients(tensors) -> list:
    seen = [None] * len(tensors)

    def hook_for(i):
        def hook(grad):
            seen[i] = grad.detach().clone()
        return hook

    for i, t in enumerate(tensors):
        t.register_hook(hook_for(i))
    return seen


def _setup_or_skip(bench, *params):
    try:
        bench.setup(*params)
    except NotImplementedError as err:
        pytest.skip(str(err))


@pytest.fixture
def built_cases(monkeypatch):
    """Every AttentionCase the benchmarks build during the test, in order (the time_* classes keep
    theirs inside a sampler); each setup builds and warms up afresh."""
    cases = []

    class Recorded(COMMON.AttentionCase):
        def __init__(self, *args, **kwargs):
            cases.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(COMMON, "AttentionCase", Recorded)
    monkeypatch.setattr(COMMON, "_SAMPLER", {})
    return cases


def _timed_case(cases, bench):
    """The case a benchmark's setup built and measures (the last one: memory cases warm up first)."""
    case = getattr(bench, "case", None)
    return case if case is not None else cases[-1]


@pytest.mark.parametrize("name", TABLE)
@pytest.mark.parametrize("family", ["TimeForwardBackward", "ForwardBackwardThroughput"])
def test_forward_backward_benchmarks_compute_every_gradient(name, family, built_cases):
    module = MODULES["bench_time" if family.startswith("Time") else "bench_throughput"]
    bench = getattr(module, family)()
    params = (name, 512, 1, 4, 32, "float32", True)
    _setup_or_skip(bench, *params)
    case = _timed_case(built_cases, bench)
    wrt = case.wrt
    assert len(wrt) >= 3 and all(t.requires_grad for t in wrt)
    if PATTERN[name] == "dilated+proj":
        assert len(wrt) > 3, "the projections' weights are part of the training step"
    seen = _watch_gradients(wrt)
    if family.startswith("Time"):
        bench.time_forward_backward(*params)
    else:
        bench.track_tflops(*params)
    assert all(g is not None for g in seen), f"{family}: gradients missing for inputs {[i for i, g in enumerate(seen) if g is None]}"
    assert all(torch.isfinite(g).all() for g in seen)
    assert all(g.abs().sum() > 0 for g in seen[:3]), "dq, dk and dv must all be non-zero"


def _recorded_dense(monkeypatch):
    """(module, q, k, v) of each SDPA benchmark set built, in order."""
    sdpa = MODULES["bench_sdpa"]
    built = []
    real = sdpa._dense

    def recording(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(sdpa, "_dense", recording)
    monkeypatch.setattr(COMMON, "_SAMPLER", {})
    return built


def test_sdpa_forward_backward_benchmark_computes_dq_dk_dv(monkeypatch):
    built = _recorded_dense(monkeypatch)
    bench = MODULES["bench_sdpa"].SdpaBackendsForwardBackward()
    params = ("math", 1024, "float32", False)
    bench.setup(*params)
    fn, qkv = built[-1]
    seen = _watch_gradients(qkv)
    bench.time_forward_backward(*params)
    assert all(g is not None and g.abs().sum() > 0 for g in seen)


class _Spy:
    """Wraps an attention callable: counts calls and whether autograd was recording."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, q, k, v):
        self.calls.append((tuple(q.shape), torch.is_grad_enabled()))
        return self.fn(q, k, v)


@pytest.mark.parametrize("name", TABLE)
def test_forward_benchmark_runs_the_implementation_without_autograd(name, built_cases):
    bench = MODULES["bench_time"].TimeForward()
    params = (name, 1024, 1, 4, 32, "float32", False)
    _setup_or_skip(bench, *params)
    case = _timed_case(built_cases, bench)
    assert case.backward is False and not any(t.requires_grad for t in case.qkv)
    spy = case.fn = _Spy(case.fn)
    bench.time_forward(*params)
    assert spy.calls and set(spy.calls) == {((1, 1024, 4, 32), False)}


# ---------------------------------------------------------------------------------------------
# Accuracy: the reference is the independent one

def _independent_expected(name: str, case) -> torch.Tensor:
    spec = case.spec
    q, k, v = case.qkv
    if PATTERN[name] == "dense":
        mask = dense_mask(spec.seq_len, spec.num_heads, spec.causal)
    elif PATTERN[name] == "dilated":
        mask = dilated_mask(spec.seq_len, spec.num_heads, spec.segments_for(), spec.dilation_rates, spec.causal)
    else:  # block_sparse: the layout defines the function; the token mask is built here from it
        layout = case.fn.pattern_for(spec.seq_len).layout
        mask = tokens_from_layout(layout, spec.block_size, spec.causal).expand(spec.num_heads, -1, -1)
    return softmax_reference(q, k, v, mask)


@pytest.mark.parametrize("name", [n for n in TABLE if PATTERN[n] != "dilated+proj"])
@pytest.mark.parametrize("causal", [False, True])
def test_accuracy_track_compares_with_the_independent_reference(name, causal, monkeypatch):
    accuracy = MODULES["bench_accuracy"]
    # 256 tokens keep the brute-force masks cheap; the block-sparse pattern gets 8 blocks of 32.
    import dataclasses

    monkeypatch.setattr(COMMON, "PROFILE", dataclasses.replace(COMMON.PROFILE, accuracy_seq_len=256))
    original = COMMON.make_spec
    monkeypatch.setattr(COMMON, "make_spec", lambda *a, **kw: original(*a, **{"block_size": 32, **kw}))
    bench = accuracy.Accuracy()
    _setup_or_skip(bench, name, "float32", causal)
    expected = _independent_expected(name, bench.case)
    # The track keeps the reference in the inputs' dtype: the float64 result rounded to float32,
    # equal almost everywhere to the rounding of this one (another float32 kernel's output is not).
    rounded = expected.float().double()
    same = (bench.expected == rounded).double().mean().item()
    assert same > 0.999, f"the accuracy track's reference matches the independent one at {same:.1%} of elements"
    torch.testing.assert_close(bench.expected, rounded, atol=1e-6, rtol=0)
    error = bench.track_max_abs_error(name, "float32", causal)
    with torch.no_grad():
        direct = (bench.case.fn(*bench.case.qkv).double() - rounded).abs().max().item()
    assert error == pytest.approx(direct, rel=1e-3, abs=1e-9)
    # float32 against float64: a small, non-zero error (zero would mean a self-comparison)
    assert 0 < error < 1e-4


# ---------------------------------------------------------------------------------------------
# Pair and FLOP counts

SMALL_SPECS = [
    dict(seq_len=64, num_heads=6, segment_lengths=(16, 32, 64), dilation_rates=(1, 2, 4)),
    dict(seq_len=48, num_heads=4, segment_lengths=(12, 24), dilation_rates=(5, 2)),  # w % r != 0
    dict(seq_len=32, num_heads=2, segment_lengths=(64,), dilation_rates=(3,)),  # segment capped at seq_len
]


@pytest.mark.parametrize("name", TABLE)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", range(len(SMALL_SPECS)))
def test_pairs_equal_a_brute_force_count_of_the_mask(name, causal, shape):
    from attention import AttentionSpec, get

    spec = AttentionSpec(causal=causal, block_size=8, **SMALL_SPECS[shape])
    assert get(name).pairs(spec) == brute_force_pairs(name, spec)


@pytest.mark.parametrize("kind", BLOCK_KINDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("sparsity", [0.3, 0.8])
def test_block_sparse_pairs_count_every_pattern(kind, causal, sparsity):
    from attention import AttentionSpec, get

    spec = AttentionSpec(seq_len=160, num_heads=2, block_size=16, block_pattern=kind, sparsity=sparsity,
                         causal=causal)
    assert get("BlockSparseAttention").pairs(spec) == brute_force_pairs("BlockSparseAttention", spec)


@pytest.mark.parametrize("name", TABLE)
@pytest.mark.parametrize("causal", [False, True])
def test_throughput_benchmarks_divide_the_brute_force_flops_by_the_median_time(name, causal, monkeypatch):
    """tokens/s = batch * seq_len / s; TFLOP/s = 4 * batch * head_dim * pairs (x3.5 with backward) / s / 1e12."""
    throughput = MODULES["bench_throughput"]
    params = (name, 256, 2, 4, 16, "float32", causal)
    fwd, both = throughput.ForwardThroughput(), throughput.ForwardBackwardThroughput()
    _setup_or_skip(fwd, *params)
    both.setup(*params)
    pairs = brute_force_pairs(name, fwd.case.spec)
    assert fwd.flops == pytest.approx(4 * 2 * 16 * pairs, rel=1e-12)
    assert both.flops == pytest.approx(3.5 * 4 * 2 * 16 * pairs, rel=1e-12)
    for bench in (fwd, both):
        monkeypatch.setattr(bench.case, "median_ms", lambda repeats=5: 4.0)
    assert fwd.track_tokens_per_s(*params) == pytest.approx(2 * 256 / 0.004)
    assert fwd.track_tflops(*params) == pytest.approx(fwd.flops / 0.004 / 1e12)
    assert both.track_tflops(*params) == pytest.approx(both.flops / 0.004 / 1e12)


def test_median_time_runs_the_case_and_takes_the_median(monkeypatch):
    case = COMMON.AttentionCase("DenseAttention", 128, 1, 2, 16, "float32", False)
    spy = case.fn = _Spy(case.fn)
    ticks = iter([0.0, 0.010, 1.0, 1.001, 2.0, 2.003, 3.0, 3.002, 4.0, 4.004])  # 10, 1, 3, 2, 4 ms
    monkeypatch.setattr(COMMON.time, "perf_counter", lambda: next(ticks))
    assert case.median_ms(5) == pytest.approx(3.0)
    assert len(spy.calls) == 5


# ---------------------------------------------------------------------------------------------
# Memory

def test_cpu_memory_benchmark_measures_one_full_size_forward(monkeypatch):
    bench = MODULES["bench_memory"].CpuPeakMemory()
    params = ("DenseAttention", 512, 1, 4, 32, "float32", False)
    bench.setup(*params)
    spy = bench.case.fn = _Spy(bench.case.fn)
    assert spy.calls == []  # setup's warm-up ran at a smaller length, on another case
    measured = []

    def growth(run):
        before = len(spy.calls)
        run()
        measured.append(spy.calls[before:])
        return 12.5

    monkeypatch.setattr(COMMON, "cpu_peak_growth_mib", growth)
    assert bench.track_rss_growth(*params) == 12.5
    assert measured == [[((1, 512, 4, 32), False)]]


class _FakeAllocator:
    """torch.cuda's memory counters for a device holding 100 MiB, after an earlier 900 MiB peak."""

    def __init__(self):
        self.current, self.peak, self.synced = 100 * 2 ** 20, 900 * 2 ** 20, 0

    def allocate(self, nbytes):
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def free(self, nbytes):
        self.current -= nbytes

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: setattr(self, "synced", self.synced + 1))
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: setattr(self, "peak", self.current))
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: self.peak)
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: self.current)
        monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 2 * self.peak)
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda *a: 2 * self.current)


def test_cuda_peak_is_the_allocator_peak_of_the_call_in_mib(monkeypatch):
    fake = _FakeAllocator()
    fake.install(monkeypatch)

    def call():  # 64 MiB live at once, freed before returning
        fake.allocate(64 * 2 ** 20)
        fake.free(64 * 2 ** 20)

    assert COMMON.cuda_peak_allocated_mib(call) == pytest.approx(164.0)  # inputs (100) + the call's 64
    assert fake.synced >= 2  # queued work before the reset and the call's own work are waited for


def test_cuda_memory_benchmark_reads_the_peak_around_the_forward(monkeypatch):
    source = MODULES["bench_memory"].__file__
    code = open(source).read()
    namespace = {"__name__": "bench_memory_cuda", "__package__": "benchmarks"}
    monkeypatch.setattr(COMMON, "DEVICE", "cuda")
    exec(compile(code, source, "exec"), namespace)
    bench = namespace["CudaPeakMemory"]()
    params = ("DenseAttention", 256, 1, 2, 16, "float32", False)
    monkeypatch.setattr(COMMON, "DEVICE", "cpu")  # the case itself runs on this machine's CPU
    bench.setup(*params)
    fake = _FakeAllocator()
    fake.install(monkeypatch)
    inner = bench.case.fn

    def allocating(q, k, v):
        fake.allocate(10 * 2 ** 20)
        out = inner(q, k, v)
        fake.free(10 * 2 ** 20)
        return out

    bench.case.fn = _Spy(allocating)
    assert bench.track_peak_allocated(*params) == pytest.approx(110.0)
    assert bench.case.fn.calls == [((1, 256, 2, 16), False)]


# ---------------------------------------------------------------------------------------------
# The dense baseline under each SDPA backend

@pytest.mark.parametrize("backend", ["math", "flash"])
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_benchmark_runs_the_named_backend_on_the_named_mask(backend, causal, monkeypatch):
    built = _recorded_dense(monkeypatch)
    bench = MODULES["bench_sdpa"].SdpaBackends()
    params = (backend, 1024, "float32", causal)
    _setup_or_skip(bench, *params)
    fn, qkv = built[-1]
    assert fn.backend == backend and fn.causal == causal
    chosen = []
    real = torch.nn.attention.sdpa_kernel

    def recording(backends, *a, **kw):
        chosen.append(backends)
        return real(backends, *a, **kw)

    import attention.dense as dense

    monkeypatch.setattr(dense, "sdpa_kernel", recording)
    bench.time_forward(*params)
    assert chosen and all(str(c).split(".")[-1].lower().startswith(backend) for c in chosen), chosen
    q = qkv[0]
    with torch.no_grad():
        out = fn(*qkv)
    torch.testing.assert_close(out.double(), softmax_reference(*qkv, dense_mask(q.shape[1], q.shape[2], causal)),
                               atol=1e-5, rtol=1e-5)
