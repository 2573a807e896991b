"""The asv benchmark classes, called directly (no asv): they import, their params build valid
inputs, their figures agree with independent computations, and what cannot run is a skip."""
from __future__ import annotations

import importlib
import math
import os
import pkgutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import attention
from attention import reference

ROOT = Path(__file__).resolve().parents[1]
METHOD_PREFIXES = ("time_", "track_", "peakmem_", "mem_", "timeraw_")


@contextmanager
def _env(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fresh_suite(profile: str = "quick", device: str = "cpu"):
    """(common, {module name: module}) re-imported under the given profile and device."""
    with _env(ATTNBENCH_PROFILE=profile, ATTNBENCH_DEVICE=device, ATTNBENCH_THREADS=None,
              ATTNBENCH_RING_WORLD_SIZES=None):
        common = importlib.reload(importlib.import_module("benchmarks.common"))
        modules = {}
        for info in pkgutil.iter_modules([str(ROOT / "benchmarks")]):
            if info.name.startswith("bench_"):
                modules[info.name] = importlib.reload(importlib.import_module(f"benchmarks.{info.name}"))
    return common, modules


COMMON, MODULES = _fresh_suite()


def _benchmark_classes(modules) -> list[type]:
    return [obj for mod in modules.values() for obj in vars(mod).values()
            if isinstance(obj, type) and obj.__module__ == mod.__name__
            and any(m.startswith(METHOD_PREFIXES) for m in dir(obj))]


CLASSES = _benchmark_classes(MODULES)


def _methods(cls) -> list[str]:
    return sorted(m for m in dir(cls) if m.startswith(METHOD_PREFIXES))


def _smallest(values: list):
    return min(values) if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) else values[0]


def _combos(cls) -> list[tuple]:
    """Smallest value of every param, but every implementation/backend: each must build and run."""
    combos = [[]]
    for name, values in zip(cls.param_names, cls.params):
        choices = values if name in ("implementation", "backend") else [_smallest(values)]
        combos = [c + [v] for c in combos for v in choices]
    return [tuple(c) for c in combos]


def test_suite_defines_the_expected_families():
    names = {cls.__name__ for cls in CLASSES}
    assert {"TimeForward", "TimeForwardBackward", "CpuPeakMemory", "ForwardThroughput",
            "ForwardBackwardThroughput", "Accuracy", "SdpaBackends", "RingForward"} <= names
    assert "CudaPeakMemory" not in names and "LargestFit" not in names  # GPU-only, CPU run


def test_every_registered_implementation_is_benchmarked():
    assert set(attention.IMPLEMENTATIONS) <= set(COMMON.IMPLEMENTATIONS), (
        "add new registry names to benchmarks/common.py IMPLEMENTATIONS (append only)")


def test_params_and_names_line_up():
    for cls in CLASSES:
        assert len(cls.params) == len(cls.param_names), cls.__name__
        assert all(len(values) >= 1 for values in cls.params), cls.__name__


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_class_runs_with_smallest_params(cls):
    ran = 0
    for combo in _combos(cls):
        bench = cls()
        try:
            bench.setup(*combo)
        except NotImplementedError:
            continue
        for method in _methods(cls):
            value = getattr(bench, method)(*combo)
            if method.startswith("track_"):
                assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, (method, combo, value)
            else:
                assert value is None
        ran += 1
    assert ran > 0, f"{cls.__name__}: every parameter set was skipped"


def test_inputs_have_the_benchmark_shape_and_are_seeded():
    spec = COMMON.make_spec(256, 2, 4, 16, "float32", False)
    q, k, v = COMMON.make_qkv(spec, seed=3)
    assert q.shape == (2, 256, 4, 16) and q.dtype == torch.float32 and q.device.type == "cpu"
    again = COMMON.make_qkv(spec, seed=3)
    other = COMMON.make_qkv(spec, seed=4)
    assert all(torch.equal(a, b) for a, b in zip((q, k, v), again))
    assert not torch.equal(q, other[0]) and not torch.equal(q, k)


def test_case_runs_the_registered_implementation_on_its_inputs():
    case = COMMON.AttentionCase("DilatedAttention", 256, 1, 4, 16, "float32", True)
    seg, rates = case.spec.segments_for(), case.spec.dilation_rates
    expected = reference.reference_dilated_attention(*case.qkv, seg, rates, causal=True)
    with torch.no_grad():
        out = case.fn(*case.qkv)
    assert torch.allclose(out, expected, atol=1e-5)


def test_accuracy_track_reports_error_against_the_reference():
    bench = MODULES["bench_accuracy"].Accuracy()
    bench.setup("DenseAttention", "float32", False)
    error = bench.track_max_abs_error("DenseAttention", "float32", False)
    assert 0 <= error < 1e-4
    # A wrong kernel must show: scale the expected output and the error grows accordingly.
    bench.expected = bench.expected * 2
    assert bench.track_max_abs_error("DenseAttention", "float32", False) > 1e-2


def test_throughput_figures_agree_with_the_spec_flops():
    spec_module = importlib.import_module("attention.spec")
    bench = MODULES["bench_throughput"].ForwardThroughput()
    params = ("DenseAttention", 512, 1, 4, 32, "float32", False)
    bench.setup(*params)
    spec = bench.case.spec
    assert bench.flops == pytest.approx(4 * 1 * 32 * 512 * 512 * 4)  # 4 * batch * d * n^2 * heads
    assert bench.flops == pytest.approx(spec_module.attention_flops(spec_module.dense_pairs(spec), spec))


@pytest.mark.parametrize("name", ["NoSuchAttention", ""])
def test_unknown_implementation_is_a_skip(name):
    with pytest.raises(NotImplementedError, match="not registered"):
        MODULES["bench_time"].TimeForward().setup(name, 1024, 1, 4, 32, "float32", False)


def test_unsupported_spec_is_a_skip():
    # 5 heads cannot split into the quick profile's 2 dilation groups: supports() says why.
    with pytest.raises(NotImplementedError, match="DilatedAttention"):
        COMMON.AttentionCase("DilatedAttention", 1024, 1, 5, 32, "float32", False)


def test_missing_module_at_an_old_commit_is_a_skip(monkeypatch):
    with pytest.raises(NotImplementedError, match="not importable"):
        COMMON.optional_module("attention.module_from_the_future")
    monkeypatch.setattr(attention, "IMPLEMENTATIONS", {})  # a commit before any registration
    with pytest.raises(NotImplementedError, match="not registered"):
        COMMON.implementation("DenseAttention")


def test_unknown_sdpa_backend_on_this_device_is_a_skip():
    with pytest.raises(NotImplementedError, match="does not run"):
        MODULES["bench_sdpa"].SdpaBackends().setup("cudnn", 1024, "float32", False)


def test_profiles_and_bad_settings():
    quick = COMMON.select_profile("quick", "cpu")
    assert COMMON.select_profile("standard", "cpu").seq_lens != COMMON.select_profile("standard", "cuda").seq_lens
    assert max(quick.seq_lens) <= 2048 and quick.repeat[1] <= 4
    full = COMMON.select_profile("full", "cuda")
    assert full.dtypes == ("bfloat16",) and full.heads == (12,) and full.head_dims == (64,)
    assert full.largest_fit_cap >= 32 * 2 ** 20 and min(full.seq_lens) == 4096 and max(full.seq_lens) == 32768
    with pytest.raises(ValueError, match="ATTNBENCH_PROFILE"):
        COMMON.select_profile("fastest", "cpu")
    with _env(ATTNBENCH_DEVICE="tpu"), pytest.raises(ValueError, match="ATTNBENCH_DEVICE"):
        COMMON.select_device()
    with _env(ATTNBENCH_RING_WORLD_SIZES="1,x"), pytest.raises(ValueError, match="RING_WORLD_SIZES"):
        COMMON.ring_world_sizes()


def test_full_profile_on_cpu_skips():
    common, modules = _fresh_suite("full", "cpu")
    try:
        with pytest.raises(NotImplementedError, match="GPU sweep"):
            modules["bench_time"].TimeForward().setup("DenseAttention", 4096, 1, 12, 64, "bfloat16", False)
    finally:
        _fresh_suite()


def test_standard_profile_has_the_dilated_vs_improved_showcase():
    common, modules = _fresh_suite("standard", "cpu")
    try:
        mod = modules["bench_dilated_vs_improved"]
        assert mod.DilatedVsImprovedTime.params[:2] == [["DilatedAttention", "ImprovedDilatedAttention"],
                                                        [8192]]
        # the LongNet segments, and short ones; each builds a spec the registry accepts
        assert "2048,4096,8192" in mod.DilatedVsImprovedTime.params[2]
        for segments in mod.DilatedVsImprovedTime.params[2]:
            spec = common.make_spec(8192, 1, 6, 64, "float32", False,
                                    segment_lengths=mod.SEGMENTS[segments])
            assert spec.segment_lengths == tuple(int(w) for w in segments.split(","))
        assert mod.DilatedVsImprovedMemory.params[1] == [2048, 4096, 8192, 16384]
    finally:
        _fresh_suite()


def test_cpu_rss_growth_sees_a_known_allocation():
    # Fresh interpreter: this pytest process's high-water mark could hide the allocation.
    code = ("from benchmarks import common; import torch\n"
            "grow = common.cpu_peak_growth_mib(lambda: torch.ones(64 * 2**20 // 4).sum())\n"
            "idle = common.cpu_peak_growth_mib(lambda: None)\n"
            "print(grow, idle)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env=dict(os.environ, ATTNBENCH_PROFILE="quick", ATTNBENCH_DEVICE="cpu"))
    grow, idle = map(float, out.stdout.split())
    assert 56 <= grow <= 80, grow  # 64 MiB tensor, a little allocator slack either way
    assert idle < 1


@pytest.mark.slow
def test_spawned_ring_reports_a_time():
    """World size 2 through spawned gloo processes runs and reports a time (CPU)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores")
    ms = MODULES["bench_ring"].spawned_forward_ms(2, (512, 1, 4, 32, "float32", False))
    assert math.isfinite(ms) and ms > 0


def _fake_gpu(memory_limit: int, ms_per_token: float = 0.0, quadratic: bool = False):
    """An attempt function for largest_fitting: fits up to ``memory_limit`` tokens; records lengths tried."""
    attempt_cls = MODULES["bench_capacity"].Attempt
    tried = []

    def attempt(n):
        tried.append(n)
        seconds = ms_per_token * n * (n / 4096 if quadratic else 1) / 1e3
        return attempt_cls(n <= memory_limit and seconds <= 2.0, seconds, 1.0)

    return attempt, tried


def test_largest_fitting_bisects_past_the_last_power_of_two():
    largest_fitting = MODULES["bench_capacity"].largest_fitting
    attempt, tried = _fake_gpu(memory_limit=12_600_000)
    best, result = largest_fitting(attempt, 4096, 16 * 2 ** 20, limit_s=2.0)
    step = 2 ** 23 // 64
    assert best % step == 0 and best <= 12_600_000 < best + step  # within 1/64 of 8M below the limit
    assert result.fits and 12_600_000 * 0.98 <= best
    assert len([n for n in tried if n > 12_600_000]) <= 7  # one failed doubling + log2(64) bisection steps


@pytest.mark.parametrize("memory_limit", [23_068_672, 24_300_000, 16 * 2 ** 20 + 1, 2 ** 25 - 1])
def test_largest_fitting_ends_within_two_percent_of_the_memory_limit(memory_limit):
    """An H200 holds q, k, v and out for ~24.3M tokens (bf16, 12 heads, head_dim 64): the search
    must not stop at the last power of two, and every length it tries is a multiple of 8192 (the
    longest segment), which an implementation would otherwise decline."""
    bench_capacity = MODULES["bench_capacity"]
    attempt, tried = _fake_gpu(memory_limit=memory_limit)
    best, result = bench_capacity.largest_fitting(attempt, 4096, 64 * 2 ** 20, limit_s=2.0)
    assert result.fits and memory_limit * 0.98 <= best <= memory_limit
    assert all(n % 8192 == 0 for n in tried if n >= 8192)
    assert len(tried) <= 14 + 7  # doublings from 4096 to 64M + log2(64) bisection steps


def test_refine_step_is_a_power_of_two_multiple_of_start_and_at_most_a_64th():
    refine_step = MODULES["bench_capacity"].refine_step
    assert refine_step(4096, 4096) == 4096  # never below start
    assert refine_step(4096, 16 * 2 ** 20) == 2 ** 18
    assert refine_step(3000, 3000 * 2 ** 10) == 3000 * 16


def test_largest_fitting_stops_before_a_call_that_could_pass_the_time_limit():
    largest_fitting = MODULES["bench_capacity"].largest_fitting
    attempt, tried = _fake_gpu(memory_limit=2 ** 30, ms_per_token=1e-3, quadratic=True)
    best, _ = largest_fitting(attempt, 4096, 16 * 2 ** 20, limit_s=2.0)
    # seconds(n) = n^2 / 4096 / 1e6: 65536 takes 1.05 s, so 131072 (4.2 s) is never tried
    assert best == 65536 and max(tried) == 65536
    attempt, _ = _fake_gpu(memory_limit=2 ** 30)
    assert largest_fitting(attempt, 4096, 2 ** 16, limit_s=2.0)[0] == 2 ** 16  # the cap bounds it
    attempt, _ = _fake_gpu(memory_limit=1000)
    assert largest_fitting(attempt, 4096, 2 ** 16, limit_s=2.0) == (0, None)  # nothing fits


def test_a_dropped_case_frees_its_inputs_without_the_garbage_collector():
    """LargestFit drops each attempt's case before the next: its inputs must go at once."""
    import gc
    import weakref

    gc.disable()
    try:
        case = COMMON.AttentionCase("DenseAttention", 256, 1, 2, 16, "float32", False)
        alive = weakref.ref(case.qkv[0])
        case = None
        assert alive() is None
    finally:
        gc.enable()


def test_capacity_search_gives_the_largest_fit_with_its_peak_or_the_reason_it_cannot_run(monkeypatch):
    """One search per implementation (LargestFit.setup_cache): both tracks read its answer."""
    capacity = MODULES["bench_capacity"]
    import dataclasses

    monkeypatch.setattr(COMMON, "PROFILE", dataclasses.replace(COMMON.PROFILE, largest_fit_start=256))
    peaks = {}

    def fake_attempt(name, n, base, limit_s):  # memory fits up to 5000 tokens; peak grows with n
        peaks[n] = 1.0 + n / 1e6
        return capacity.Attempt(n <= 5000, 0.0, peaks[n])

    monkeypatch.setattr(capacity, "_attempt", fake_attempt)
    largest, peak = capacity.search("DenseAttention", "float32", False)
    assert 4096 <= largest <= 5000 and peak == peaks[largest]
    reason = capacity.search("NoSuchAttention", "float32", False)
    assert isinstance(reason, str) and "NoSuchAttention" in reason
