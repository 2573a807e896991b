"""How every ``time_*`` benchmark takes a sample: calls back to back, counted by a clock asv reads.

asv times a benchmark by reading its ``timer`` before and after calling the benchmark function
(``number`` times per sample; the suite fixes ``number = 1``). The suite's time classes set
``timer = CLOCK``, a clock whose reading advances only by what a ``Sampler`` measured: one call of
a ``time_*`` function runs one batch of calls, measures it the way the device needs, and adds the
seconds per call to ``CLOCK``. asv's sample is therefore the mean time of one call over the batch,
and everything else asv does (repeat, rounds, ``--record-samples``, ``--interleave-rounds``,
``asv find``/``continuous``) works unchanged.

How a batch is measured (``measure(calls) -> seconds per call``):

* CPU (``wall_batch``): ``time.perf_counter`` around ``calls`` back-to-back calls, garbage
  collection off.
* CUDA (``cuda_event_batch``): a pair of CUDA events around every call, the calls back to back with
  no synchronisation between them (one at the end of the batch), so the figure is the call's span
  on the GPU's timeline and not the host's launch and sync jitter. The GPU is held on a spin
  kernel while the host queues the calls (``HostLead``, nvbench's "blocking kernel"): every call's
  kernels are already queued when the GPU reaches them, so a call whose host path is slower than
  its kernels is timed by its kernels, not by how fast this process's CPU ran that day. A chunk
  whose hold ran out before the host had queued it is measured again with a longer hold; a call
  that waits for the GPU itself (a host sync inside it), or whose launches alone overflow the
  launch queue, cannot be led and is timed unheld (the sampler says so on stderr). Where the
  working set would stay in the L2 cache between calls, a flush (zeroing a buffer twice the L2's
  size) runs before each call, outside its events: every call then starts cold, as it would in a
  model where other layers ran in between.
* CUDA, what the caller pays (``synced_wall_batch``): wall time of one call plus
  ``torch.cuda.synchronize``, per call: host path, launches and the sync. A different quantity,
  kept as its own series.
* CUDA graph replay (``cuda_graph_batch``): the call captured once into a CUDA graph and replayed
  back to back between events: the GPU time without the implementation's host path.

``Sampler.warm_up`` runs batches until the per-call time stops drifting (the fastest batches of the
last two windows agree within the profile's tolerance), then fixes the number of calls per
batch so that one sample lasts about the profile's ``sample_time`` of wall time. A benchmark
whose timing never settles within the warm-up limit raises ``UnstableTiming``: asv records it as
failed, with the message in its output, instead of a number that looks good.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["CLOCK", "MeasuredClock", "Policy", "Sampler", "UnstableTiming", "wall_batch",
           "HostLead", "queue_led", "cuda_event_batch", "synced_wall_batch", "cuda_graph_batch",
           "L2Flush", "needs_l2_flush", "require_cuda_events"]


class MeasuredClock:
    """asv ``timer``: reads the seconds per call measured so far (it never moves by itself).

    A callable object, not a function: asv reads ``timer`` from the benchmark class, where a
    plain function would become a bound method.
    """

    def __init__(self) -> None:
        self._total = 0.0

    def __call__(self) -> float:
        return self._total

    def add(self, seconds: float) -> None:
        self._total += seconds


CLOCK = MeasuredClock()


class UnstableTiming(RuntimeError):
    """The per-call time kept drifting for the whole warm-up: no sample would be trustworthy."""


@dataclass(frozen=True)
class Policy:
    """How long a sample is and when a warm-up counts as settled.

    ``sample_time``: wall seconds per sample (the batch size follows from it);
    ``window``: batches per window of the drift test; ``tolerance``: largest relative change between
    the fastest batches of the last two windows that counts as settled; ``warmup_limit``: seconds of
    warm-up after which a timing that still drifts is declared unstable; ``max_calls``: cap on calls
    per batch (for calls of a few microseconds).
    """

    sample_time: float
    window: int = 3
    tolerance: float = 0.02
    warmup_limit: float = 2.0
    max_calls: int = 10_000

    def __post_init__(self) -> None:
        if not (self.sample_time > 0 and self.window >= 1 and self.tolerance > 0
                and self.warmup_limit > 0 and self.max_calls >= 1):
            raise ValueError(f"invalid timing policy {self}")


class Sampler:
    """Times one callable: ``warm_up()`` once per process, then ``sample()`` once per asv sample.

    ``measure(calls)`` runs ``calls`` calls and returns seconds per call; ``wall`` is the clock the
    warm-up limit is read from; ``clock`` receives every sample.
    """

    def __init__(self, measure: Callable[[int], float], policy: Policy,
                 clock: MeasuredClock = CLOCK, wall: Callable[[], float] = time.perf_counter):
        self.measure = measure
        self.policy = policy
        self.clock = clock
        self.wall = wall
        self.calls = 0  # calls per sample, fixed by warm_up
        self.warmup_batches: list[float] = []  # seconds per call of each warm-up batch

    def _timed(self, calls: int) -> tuple[float, float]:
        """(measured seconds per call, wall seconds per call) of one batch. They differ where the
        measurement leaves something out: a GPU held while a slow host queues the calls costs
        wall time that the events do not count. Batch sizes follow the wall time, so a sample
        lasts about ``sample_time`` whatever the measurement counts."""
        begin = self.wall()
        per_call = self.measure(calls)
        return per_call, max(per_call, (self.wall() - begin) / calls)

    def _calls_for(self, per_call: float) -> int:
        if per_call <= 0 or not math.isfinite(per_call):
            return self.policy.max_calls
        return max(1, min(self.policy.max_calls, round(self.policy.sample_time / per_call)))

    def _window(self, per_call: float) -> int:
        # Slow calls (seconds each on a CPU sweep) compare single batches, so that the warm-up
        # still fits in its limit; fast ones compare windows of ``window`` batches.
        batch = max(per_call, self.policy.sample_time)
        return self.policy.window if 2 * self.policy.window * batch <= self.policy.warmup_limit / 2 else 1

    @staticmethod
    def drift(batches: list[float], window: int) -> float:
        """Relative change between the fastest batches of the last two windows of ``batches``.

        The fastest, not the median: interference (another process, an interrupt) only ever adds
        time, so a busy moment does not read as drift, while a warm-up trend (clocks ramping up,
        caches filling, lazy initialisation) moves the fastest batch as well.
        """
        last = min(batches[-window:])
        before = min(batches[-2 * window:-window])
        return abs(last / before - 1.0) if before > 0 else math.inf

    def warm_up(self) -> "Sampler":
        """Run batches until the per-call time settles; fix the calls per sample. Raises
        ``UnstableTiming`` when it is still drifting after ``warmup_limit`` seconds (and at least
        two chances past the first full comparison)."""
        per_call, cost = self._timed(1)  # the first call: compilation, kernel selection, caches
        start = self.wall()  # the limit counts from here: a long first compile does not eat it
        batches: list[float] = []
        costs: list[float] = []
        while True:
            calls = self._calls_for(cost)
            per_call, cost = self._timed(calls)
            batches.append(per_call)
            costs.append(cost)
            window = self._window(cost)
            if len(batches) >= 2 * window:
                change = self.drift(batches, window)
                if change <= self.policy.tolerance:
                    break
                elapsed = self.wall() - start
                if elapsed >= self.policy.warmup_limit and len(batches) >= 2 * window + 2:
                    self.warmup_batches = batches
                    raise UnstableTiming(
                        f"timing never stabilised: the per-call time still moved {change:.1%} between "
                        f"the last two windows of {window} batch(es) (limit {self.policy.tolerance:.1%}) "
                        f"after {elapsed:.1f} s of warm-up ({len(batches)} batches, last "
                        f"{per_call * 1e3:.4g} ms a call)")
        self.warmup_batches = batches
        self.calls = self._calls_for(statistics.median(costs[-window:]))
        return self

    def sample(self) -> float:
        """One sample: seconds per call over one batch, also added to the clock asv reads."""
        if self.calls < 1:
            raise RuntimeError("Sampler.sample() before warm_up()")
        value = self.measure(self.calls)
        self.clock.add(value)
        return value


def _gc_off(run: Callable[[], float]) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return run()
    finally:
        if enabled:
            gc.enable()


def wall_batch(call: Callable[[], None],
               clock: Callable[[], float] = time.perf_counter) -> Callable[[int], float]:
    """CPU: seconds per call of ``calls`` back-to-back calls, garbage collection off."""

    def measure(calls: int) -> float:
        def run() -> float:
            begin = clock()
            for _ in range(calls):
                call()
            return (clock() - begin) / calls
        return _gc_off(run)

    return measure


def synced_wall_batch(call: Callable[[], None], sync: Callable[[], None],
                      clock: Callable[[], float] = time.perf_counter) -> Callable[[int], float]:
    """What a caller pays per call: wall seconds of one call and a device sync, averaged."""

    def measure(calls: int) -> float:
        def run() -> float:
            sync()
            total = 0.0
            for _ in range(calls):
                begin = clock()
                call()
                sync()
                total += clock() - begin
            return total / calls
        return _gc_off(run)

    return measure


def require_cuda_events() -> None:
    """One-line error when this process cannot time with CUDA events."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("CUDA event timing needs a CUDA device; this process sees none "
                           "(run the CPU profile, or on a GPU machine)")
    try:
        torch.cuda.Event(enable_timing=True)
    except Exception as err:  # noqa: BLE001 - any failure means: no event timing here
        raise RuntimeError(f"CUDA events are not available here: {err}") from None


def l2_bytes() -> int:
    """The current GPU's L2 cache size in bytes (torch's device properties; 64 MiB if unknown)."""
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return int(getattr(props, "L2_cache_size", 0) or 64 * 2 ** 20)


def needs_l2_flush(working_set_bytes: int, l2_cache_bytes: int) -> bool:
    """True when a call's inputs and outputs (``working_set_bytes``) could stay in an L2 cache of
    ``l2_cache_bytes`` between back-to-back calls: under twice its size, a good part of them does."""
    return working_set_bytes < 2 * l2_cache_bytes


class L2Flush:
    """Evicts the L2 cache by zeroing a buffer twice its size (one memset kernel)."""

    def __init__(self, l2_cache_bytes: int):
        import torch

        self.buffer = torch.empty(2 * l2_cache_bytes, dtype=torch.int8, device="cuda")

    def __call__(self) -> None:
        self.buffer.zero_()


class _EventPairs:
    """Reusable CUDA event pairs (creating thousands per sample would cost host time)."""

    def __init__(self) -> None:
        self.starts: list = []
        self.ends: list = []

    def take(self, count: int) -> tuple[list, list]:
        import torch

        while len(self.starts) < count:
            self.starts.append(torch.cuda.Event(enable_timing=True))
            self.ends.append(torch.cuda.Event(enable_timing=True))
        return self.starts[:count], self.ends[:count]


class HostLead:
    """Keeps the host ahead of the GPU while a batch of calls is queued.

    ``hold(seconds)`` queues a kernel that keeps the GPU busy for about ``seconds`` and returns a
    marker recorded after it; ``passed(marker)`` tells whether the GPU has got past the marker. A
    chunk of calls is queued behind each hold; if the GPU was still held when the host finished
    queueing the chunk, no call of the chunk ever waited for the host (``close`` returns True).
    Otherwise the chunk is to be measured again: the hold is made longer (the host was slower than
    estimated) and the chunk shorter (a full launch queue blocks the host until the hold ends).
    After ``give_up_after`` such misses on a chunk of one call, a single call either waits for the
    GPU itself (a host sync inside it) or issues more launches than the launch queue holds, and
    ``led`` turns False: the batch is then timed without holds.
    """

    def __init__(self, hold: Callable[[float], object], passed: Callable[[object], bool],
                 clock: Callable[[], float] = time.perf_counter, max_hold: float = 0.25,
                 margin: float = 1.5, give_up_after: int = 3):
        self._hold = hold
        self._passed = passed
        self.clock = clock
        self.max_hold = max_hold
        self.margin = margin
        self.give_up_after = give_up_after
        self.host_per_call = 1e-4  # seconds the host takes to queue one call (first guess)
        self.chunk_cap = 1 << 30
        self.misses = 0  # consecutive misses on a chunk of one call
        self.led = True

    def chunk(self, remaining: int) -> int:
        """Calls to queue behind the next hold (the hold stays under ``max_hold``)."""
        fits = int(self.max_hold / (self.margin * self.host_per_call))
        return max(1, min(remaining, self.chunk_cap, fits))

    def open(self, calls: int) -> object:
        """Hold the GPU long enough for the host to queue ``calls`` calls; returns the marker."""
        return self._hold(min(self.max_hold, self.margin * calls * self.host_per_call) + 20e-6)

    def close(self, marker: object, host_seconds: float, calls: int) -> bool:
        """True when the chunk just queued (``calls`` calls in ``host_seconds``) ran fully led."""
        per_call = host_seconds / calls
        if not self._passed(marker):
            self.host_per_call = per_call
            self.misses = 0
            return True
        self.host_per_call = max(2 * self.host_per_call, per_call)
        if calls == 1:
            self.misses += 1
            if self.misses >= self.give_up_after:
                self.led = False
        self.chunk_cap = max(1, calls // 2)
        return False


def queue_led(lead: HostLead, queue: Callable[[int, int], None], calls: int) -> None:
    """Queue calls ``0 .. calls-1`` (``queue(first, stop)`` queues calls first..stop-1) in chunks,
    each behind a hold of ``lead``; a chunk that was not fully led is queued again."""
    done = 0
    while done < calls:
        if not lead.led:
            queue(done, calls)
            return
        n = lead.chunk(calls - done)
        marker = lead.open(n)
        begin = lead.clock()
        queue(done, done + n)
        if lead.close(marker, lead.clock() - begin, n):
            done += n


def cuda_hold() -> tuple[Callable[[float], object], Callable[[object], bool]]:
    """``hold`` and ``passed`` for ``HostLead`` on the current CUDA device: a spin kernel
    (``torch.cuda._sleep``, calibrated here in cycles per second) and an event recorded after it."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cycles = 2_000_000
    rate = 0.0
    for _ in range(2):  # the second reading: the first may include the clock ramping up
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        rate = cycles / (start.elapsed_time(end) / 1e3)

    def hold(seconds: float) -> object:
        torch.cuda._sleep(max(1, int(seconds * rate)))
        marker = torch.cuda.Event()
        marker.record()
        return marker

    return hold, lambda marker: marker.query()


def cuda_event_batch(call: Callable[[], None],
                     flush: Optional[Callable[[], None]] = None,
                     lead: Optional[HostLead] = None) -> Callable[[int], float]:
    """CUDA: seconds per call from an event pair around each of ``calls`` back-to-back calls.

    ``flush`` (an ``L2Flush``) runs before each call, outside its events. ``lead`` (a
    ``HostLead``; one on the current device if None) holds the GPU while each chunk of calls is
    queued. One synchronisation, at the end of the batch.
    """
    import torch

    require_cuda_events()
    pairs = _EventPairs()
    if lead is None:
        lead = HostLead(*cuda_hold())

    def queue(starts: list, ends: list) -> None:
        for start, end in zip(starts, ends):
            if flush is not None:
                flush()
            start.record()
            call()
            end.record()

    def measure(calls: int) -> float:
        starts, ends = pairs.take(calls)

        def run() -> float:
            queue_led(lead, lambda first, stop: queue(starts[first:stop], ends[first:stop]), calls)
            ends[calls - 1].synchronize()
            return sum(s.elapsed_time(e) for s, e in zip(starts, ends)) / 1e3 / calls
        return _gc_off(run)

    torch.cuda.synchronize()
    measure.lead = lead  # the sampler's report says whether the calls could be led
    return measure


def cuda_graph_batch(call: Callable[[], None],
                     flush: Optional[Callable[[], None]] = None) -> Callable[[int], float]:
    """CUDA graph replay: ``call`` captured once (after two calls on a side stream, as capture
    requires), then timed like ``cuda_event_batch`` with ``graph.replay`` as the call. Raises
    ``NotImplementedError`` (a skip) when the call cannot be captured."""
    import torch

    require_cuda_events()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        call()
        call()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            call()
    except Exception as err:  # noqa: BLE001 - host syncs, CPU tensors, ...: not capturable
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        try:
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001 - a broken capture can leave the stream unusable: skip anyway
            pass
        raise NotImplementedError(f"the call cannot be captured in a CUDA graph: {reason}") from None
    torch.cuda.synchronize()
    return cuda_event_batch(graph.replay, flush)
