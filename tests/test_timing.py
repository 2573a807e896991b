"""The time_* sampler (benchmarks/timing.py) against a fake clock, and the asv timer contract."""
from __future__ import annotations

import timeit

import pytest

from benchmarks import common, timing


class FakeWork:
    """A callable whose n-th call "takes" ``durations(n)`` seconds on a fake clock."""

    def __init__(self, durations):
        self.durations = durations
        self.now = 0.0
        self.calls = 0

    def clock(self) -> float:
        return self.now

    def __call__(self) -> None:
        self.now += self.durations(self.calls)
        self.calls += 1


def _sampler(work: FakeWork, **policy) -> timing.Sampler:
    settings = dict(sample_time=0.01, window=3, tolerance=0.02, warmup_limit=1.0)
    settings.update(policy)
    return timing.Sampler(timing.wall_batch(work, clock=work.clock), timing.Policy(**settings),
                          clock=timing.MeasuredClock(), wall=work.clock)


def test_warm_up_runs_until_the_time_settles_then_fills_the_sample_time():
    # 2 ms a call once warm; the first 30 calls are slower (a ramp down from 4 ms).
    work = FakeWork(lambda n: 0.002 * (1 + max(0, 30 - n) / 30))
    sampler = _sampler(work).warm_up()
    assert work.calls > 30  # did not stop inside the ramp
    assert sampler.calls == 5  # 10 ms of 2 ms calls
    assert sampler.sample() == pytest.approx(0.002)
    assert sampler.clock() == pytest.approx(0.002)  # asv reads what was measured
    assert sampler.sample() == pytest.approx(0.002)
    assert sampler.clock() == pytest.approx(0.004)


def test_a_steady_call_stops_after_two_windows():
    work = FakeWork(lambda n: 0.001)
    sampler = _sampler(work).warm_up()
    assert len(sampler.warmup_batches) == 6 and sampler.calls == 10


def test_timing_that_keeps_drifting_is_unstable():
    work = FakeWork(lambda n: 0.001 * 1.01 ** n)  # 1% slower every call: never settles
    with pytest.raises(timing.UnstableTiming, match="never stabilised"):
        _sampler(work).warm_up()
    assert work.now >= 1.0  # it tried for the whole warm-up limit


def test_an_outlier_batch_does_not_read_as_drift():
    # Interference only adds time: one slow batch among steady ones must not block settling.
    work = FakeWork(lambda n: 0.05 if n == 40 else 0.001)
    assert _sampler(work).warm_up().calls == 10


def test_slow_calls_compare_single_batches():
    work = FakeWork(lambda n: 0.3)  # one call is longer than the sample: batches of one call
    sampler = _sampler(work).warm_up()
    assert sampler.calls == 1 and len(sampler.warmup_batches) == 2


def test_sample_before_warm_up_is_an_error():
    with pytest.raises(RuntimeError, match="warm_up"):
        _sampler(FakeWork(lambda n: 0.001)).sample()


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match="invalid timing policy"):
        timing.Policy(sample_time=0)


def test_synced_batch_times_call_and_sync():
    work = FakeWork(lambda n: 0.002)
    syncs = []

    def sync():
        syncs.append(work.now)
        work.now += 0.001  # waiting for the device

    measure = timing.synced_wall_batch(work, sync, clock=work.clock)
    assert measure(4) == pytest.approx(0.003)
    assert len(syncs) == 5  # one before the batch (not timed), one after every call


def test_asv_reads_the_measured_clock_not_the_wall():
    """What asv does with ``timer`` and ``number=1``: timeit around one call of the benchmark."""
    clock = timing.MeasuredClock()
    work = FakeWork(lambda n: 0.004)
    sampler = timing.Sampler(timing.wall_batch(work, clock=work.clock),
                             timing.Policy(sample_time=0.02, warmup_limit=1.0), clock=clock,
                             wall=work.clock).warm_up()
    timer = timeit.Timer(stmt=sampler.sample, timer=clock)
    assert timer.timeit(number=1) == pytest.approx(0.004)  # one sample = seconds per call
    assert work.calls > 5  # ... measured over a batch of calls


def test_l2_flush_rule():
    l2 = 60 * 2 ** 20
    assert timing.needs_l2_flush(24 * 2 ** 20, l2)  # 4K tokens bf16, 12 heads x 64: q, k, v, out
    assert not timing.needs_l2_flush(192 * 2 ** 20, l2)  # 32K: streams through the cache anyway


def test_time_classes_use_the_measured_clock():
    assert common.Timed.timer is timing.CLOCK
    assert common.Timed.number == 1 and common.Timed.warmup_time == 0


def test_cpu_affinity_setting():
    assert common.cpu_affinity({0, 1}, 1, "auto") == {1}
    assert common.cpu_affinity({0, 1}, 2, "auto") is None
    assert common.cpu_affinity({0, 1, 2, 3}, 1, "none") is None
    assert common.cpu_affinity({0, 1, 2, 3}, 1, "0,2") == {0, 2}
    with pytest.raises(ValueError, match="ATTNBENCH_CPU_AFFINITY"):
        common.cpu_affinity({0, 1}, 1, "7")
    with pytest.raises(ValueError, match="ATTNBENCH_CPU_AFFINITY"):
        common.cpu_affinity({0, 1}, 1, "fast")


def test_sampler_is_cached_per_set_and_unknown_variant_refused():
    built = []

    def make():
        built.append(1)
        return common.Workload(lambda: None, 0)

    first = common.sampler(("test", 1), make)
    assert common.sampler(("test", 1), make) is first and len(built) == 1  # asv re-runs setup per sample
    common.sampler(("test", 2), make)
    assert len(built) == 2
    with pytest.raises(ValueError, match="variant"):
        common.sampler(("test", 3), make, "warp")
    if common.DEVICE == "cpu":
        with pytest.raises(NotImplementedError, match="GPU"):
            common.sampler(("test", 4), make, "graph")


def test_stable_tolerance_override(monkeypatch):
    monkeypatch.setenv("ATTNBENCH_STABLE_TOLERANCE", "0.2")
    assert common.timing_policy().tolerance == 0.2
    monkeypatch.setenv("ATTNBENCH_STABLE_TOLERANCE", "loose")
    with pytest.raises(ValueError, match="ATTNBENCH_STABLE_TOLERANCE"):
        common.timing_policy()
    monkeypatch.delenv("ATTNBENCH_STABLE_TOLERANCE")
    assert common.timing_policy().tolerance == common.PROFILE.stable_tolerance
