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


class FakeGpu:
    """A host and a GPU on one fake timeline (seconds), for ``HostLead``.

    A call costs the host ``host`` seconds to issue ``kernels`` kernels of ``kernel`` seconds each
    (spread evenly over its host time); a kernel starts when it has been issued and the GPU is free.
    At most ``depth`` kernels wait in the launch queue: issuing one more blocks the host until the
    oldest has started. ``syncs``: the call ends by waiting for the GPU (``.item()`` and the like).
    Each call's span on the GPU (first kernel's start to last kernel's end) is what CUDA events
    around it would read.
    """

    def __init__(self, host, kernels, kernel, depth=1024, syncs=False):
        self.host, self.kernels, self.kernel, self.depth, self.syncs = host, kernels, kernel, depth, syncs
        self.now = 0.0
        self.gpu_free = 0.0
        self.pending: list[float] = []  # start times of queued kernels not yet started
        self.spans: dict[int, float] = {}

    def clock(self) -> float:
        return self.now

    def _issue(self, duration: float) -> tuple[float, float]:
        self.pending = [t for t in self.pending if t > self.now]
        if len(self.pending) >= self.depth:
            self.now = min(self.pending)  # the host waits for a free slot
            self.pending = [t for t in self.pending if t > self.now]
        start = max(self.gpu_free, self.now)
        self.gpu_free = start + duration
        self.pending.append(start)
        return start, self.gpu_free

    def hold(self, seconds: float) -> float:
        return self._issue(seconds)[1]  # the marker: when the GPU gets past the hold

    def passed(self, marker: float) -> bool:
        return self.now >= marker

    def call(self, index: int) -> None:
        first = last = None
        for _ in range(self.kernels):
            self.now += self.host / self.kernels
            start, end = self._issue(self.kernel)
            first = start if first is None else first
            last = end
        if self.syncs:
            self.now = max(self.now, self.gpu_free)
        self.spans[index] = last - first

    def measure(self, calls: int, lead: "timing.HostLead | None") -> float:
        """Seconds per call over ``calls`` calls, led by ``lead`` or (None) queued as they come."""
        def queue(first, stop):
            for i in range(first, stop):
                self.call(i)
        if lead is None:
            queue(0, calls)
        else:
            timing.queue_led(lead, queue, calls)
        return sum(self.spans[i] for i in range(calls)) / calls


def _lead(gpu: FakeGpu) -> timing.HostLead:
    return timing.HostLead(gpu.hold, gpu.passed, clock=gpu.clock)


def test_a_host_bound_call_is_timed_by_its_kernels_when_the_gpu_is_held():
    # 3 ms of host path issuing 20 kernels of 25 us: the GPU works 0.5 ms a call.
    unled = FakeGpu(host=3e-3, kernels=20, kernel=25e-6).measure(200, None)
    assert unled > 2.5e-3  # without a lead, the events time the host
    gpu = FakeGpu(host=3e-3, kernels=20, kernel=25e-6)
    lead = _lead(gpu)
    assert gpu.measure(200, lead) == pytest.approx(0.5e-3, rel=1e-6)
    assert lead.led


def test_a_full_launch_queue_shrinks_the_chunks_and_the_timing_stays_right():
    gpu = FakeGpu(host=1e-3, kernels=20, kernel=25e-6, depth=64)  # 3 calls fill the queue
    lead = _lead(gpu)
    assert gpu.measure(100, lead) == pytest.approx(0.5e-3, rel=1e-6)
    assert lead.led and lead.chunk(100) <= 3


def test_a_gpu_bound_call_reads_the_same_led_or_not():
    unled = FakeGpu(host=50e-6, kernels=4, kernel=250e-6).measure(100, None)
    gpu = FakeGpu(host=50e-6, kernels=4, kernel=250e-6)
    assert gpu.measure(100, _lead(gpu)) == pytest.approx(unled, rel=1e-6) == pytest.approx(1e-3)


def test_a_call_that_waits_for_the_gpu_is_timed_unled_after_a_few_tries():
    gpu = FakeGpu(host=1e-3, kernels=10, kernel=20e-6, syncs=True)
    lead = _lead(gpu)
    per_call = gpu.measure(50, lead)
    assert not lead.led
    assert per_call == pytest.approx(FakeGpu(host=1e-3, kernels=10, kernel=20e-6, syncs=True).measure(50, None),
                                     rel=0.05)


def test_batches_are_sized_by_the_wall_time_a_call_costs_not_by_what_is_measured():
    # A held GPU: each call measures 0.5 ms (its kernels) but costs 3 ms of wall time (the host
    # queueing it behind the hold). A 30 ms sample holds 10 calls, not 60.
    wall = FakeWork(lambda n: 0.003)

    def measure(calls: int) -> float:
        for _ in range(calls):
            wall()
        return 0.0005

    sampler = timing.Sampler(measure, timing.Policy(sample_time=0.03, warmup_limit=1.0),
                             clock=timing.MeasuredClock(), wall=wall.clock).warm_up()
    assert sampler.calls == 10
    assert sampler.sample() == pytest.approx(0.0005)
