"""Shared fixtures for the asv suite: profile, device/dtype, seeded inputs, sync, skips, measuring.

Shape convention everywhere: ``(batch, seq_len, num_heads, head_dim)``. Times are in ms,
memory in MiB (2**20 bytes), throughput in tokens/s and TFLOP/s (10**12 FLOP/s).

asv runs today's benchmarks against old commits' installed ``attention`` package, so nothing
here may assume an API that an old commit lacks: a missing implementation, module or function
is a skip (``NotImplementedError`` from ``setup``), never a failure. Param lists must not depend
on the commit either (asv maps a result to its parameters by index), which is why implementation
names come from today's table file (``attention/implementations.py``, read by path) rather than
from the registry of the package being measured.

Environment variables (read at import, identical for discovery and every commit):
  ATTNBENCH_PROFILE   quick (default) | standard | full
  ATTNBENCH_DEVICE    cpu | cuda (default: cuda when available, else cpu)
  ATTNBENCH_THREADS   torch CPU threads (default: 1 for quick, else min(8, cores))
  ATTNBENCH_STABLE_TOLERANCE  the warm-up's drift tolerance (default: the profile's; a machine
                      shared with other work may need more, or a set fails as unstable)
  ATTNBENCH_CPU_AFFINITY  auto (default: on a CPU run, each benchmark process on the last THREADS
                      of the CPUs it may use; a GPU run is not pinned) | none | a list "0,1" of CPUs
  ATTNBENCH_RING_WORLD_SIZES  e.g. "1,2" (default: "1" for quick; "1,2" on CPU; 1..GPUs on CUDA)
"""
from __future__ import annotations

import os

# Must precede `import torch`: asv forks one benchmark process per parameter set from a server
# that imported this module, and a CUDA runtime initialised before fork is unusable after it.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

import ast  # noqa: E402
import importlib  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable  # noqa: E402

import torch  # noqa: E402

from . import timing  # noqa: E402

# Paid once in asv's fork server instead of in every benchmark process: autograd's first
# backward lazily imports this (and sympy with it), about 0.7 s per process; importing is safe
# before fork (no threads start).
import torch.fx.experimental.symbolic_shapes  # noqa: E402,F401

try:  # The package under test, imported before fork for the same reason; an old commit may
    import attention  # noqa: F401  # lack it or fail to import: that becomes a skip, later.
except Exception:  # noqa: BLE001
    pass
# The kernels' modules as they are named now and at older commits; a missing one is skipped.
for _lazy in ("attention.kernels.dilated", "attention.kernels.block_sparse",
              "attention.triton_dilated", "attention.triton_block_sparse"):
    try:  # Imported lazily by the package on a GPU's first call: importing triton costs ~0.5 s
        importlib.import_module(_lazy)  # per benchmark process; paid once here (no CUDA init).
    except Exception:  # noqa: BLE001 - absent at this commit or without triton: nothing to pay
        pass



def _implementation_table() -> tuple[str, ...]:
    """Names of the implementation table (``attention/implementations.py``), in its order.

    Read from today's working tree by path, never imported from the package being measured:
    an old commit's package has an older (or no) table, and asv maps stored results to
    parameters by index, so the order must be today's for every commit. The file is plain data.
    """
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "attention", "implementations.py")
    with open(path, encoding="utf-8") as f:
        module = ast.parse(f.read(), path)
    for node in module.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["IMPLEMENTATIONS"]:
            return tuple(entry["name"] for entry in ast.literal_eval(node.value))
    raise RuntimeError(f"{path} assigns no IMPLEMENTATIONS literal")


# Every implementation the suite tracks (append-only table: old results' parameter indices stay valid).
IMPLEMENTATIONS: tuple[str, ...] = _implementation_table()
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}
MIB = 2.0 ** 20


@dataclass(frozen=True)
class Profile:
    """One parameter grid; every benchmark class reads its params from the active profile."""

    name: str
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...]
    heads: tuple[int, ...]
    head_dims: tuple[int, ...]
    dtypes: tuple[str, ...]
    causals: tuple[bool, ...]
    segment_lengths: tuple[int, ...]
    dilation_rates: tuple[int, ...]
    sdpa_seq_lens: tuple[int, ...]
    accuracy_seq_len: int
    # Lengths for the costlier families; empty means "same as seq_lens".
    backward_seq_lens: tuple[int, ...] = ()
    memory_seq_lens: tuple[int, ...] = ()
    throughput_seq_lens: tuple[int, ...] = ()
    # Causal values for the throughput, memory and capacity families; empty: "same as causals".
    detail_causals: tuple[bool, ...] = ()
    sdpa_backends: tuple[str, ...] = ()  # bench_sdpa's backends; empty: every one the device has
    throughput_repeats: int = 5  # median of this many synchronised calls after the warm-up
    largest_fit_start: int = 4096
    largest_fit_cap: int = 16 * 2 ** 20
    largest_fit_call_limit_s: float = 10.0  # a length whose forward takes longer does not count
    cuda_only: bool = False
    # Timing of time_* benchmarks (benchmarks/timing.py). asv's ``repeat`` = (min samples, max
    # samples, seconds after which no further sample starts) per process; ``rounds`` = processes
    # per commit, interleaved across the commits of a range (a machine-state shift then hits every
    # commit alike). Each sample is the mean of the back-to-back calls that fill ``sample_time``
    # seconds, after a warm-up that runs until the per-call time moves less than
    # ``stable_tolerance`` between windows of batches, or gives up after ``warmup_limit`` seconds.
    repeat: tuple[int, int, float] = (5, 10, 1.0)
    rounds: int = 1
    sample_time: float = 0.02
    stable_tolerance: float = 0.02
    stable_window: int = 3
    warmup_limit: float = 2.0


QUICK = Profile(
    name="quick", seq_lens=(1024, 2048), batches=(1,), heads=(4,), head_dims=(32,),
    dtypes=("float32",), causals=(False,), segment_lengths=(512, 1024), dilation_rates=(1, 2),
    sdpa_seq_lens=(1024,), accuracy_seq_len=512, backward_seq_lens=(1024,), memory_seq_lens=(2048,),
    throughput_seq_lens=(1024,), throughput_repeats=2,
    # Two processes per commit (rounds interleaved across a range's commits), 2 samples each:
    # a quick-profile call takes 10-100 ms on the 2-core box, so a sample is one call and the
    # warm-up compares single calls; ~25 s a commit in all.
    repeat=(2, 2, 0.0), rounds=2, sample_time=0.01, stable_tolerance=0.05, stable_window=1,
    warmup_limit=1.0)

# Dense attention at 8K is ~5 s a call on 2 CPU cores: the CPU sweep stops there (the
# dilated-vs-improved showcase goes to 16K on its own) and keeps one round.
STANDARD_CPU = Profile(
    name="standard", seq_lens=(2048, 4096, 8192), batches=(1,), heads=(6,), head_dims=(64,),
    dtypes=("float32",), causals=(False, True), segment_lengths=(2048, 4096, 8192),
    dilation_rates=(1, 2, 4), sdpa_seq_lens=(2048, 8192), accuracy_seq_len=1024,
    backward_seq_lens=(2048, 4096), memory_seq_lens=(2048, 8192), throughput_seq_lens=(4096,),
    throughput_repeats=3, repeat=(2, 5, 5.0), rounds=1, sample_time=0.2, stable_tolerance=0.05,
    warmup_limit=10.0)

STANDARD_CUDA = Profile(
    name="standard", seq_lens=(4096, 8192, 16384), batches=(1, 4), heads=(12,), head_dims=(64,),
    dtypes=("bfloat16", "float16"), causals=(False, True), segment_lengths=(2048, 4096, 8192),
    dilation_rates=(1, 2, 4), sdpa_seq_lens=(4096, 16384), accuracy_seq_len=1024,
    largest_fit_cap=2 ** 20, repeat=(10, 20, 1.0), rounds=2, sample_time=0.025)

# The GPU sweep (bf16, batch 1, 12 heads, head_dim 64): 148 parameter sets, 5-8 minutes a commit
# on an H100 (asv starts a process per set, 1.5-4 s each of CUDA and library start-up, so the grid
# is kept small enough for one commit in a 10-minute job). Forward at every length, both causal,
# against flash and cuDNN SDPA; forward+backward, throughput, memory and capacity at the headline
# shape (32K; not causal for the last three); 10 samples of 25 ms per time_* set, each the mean
# per-call GPU time of back-to-back calls between CUDA events.
FULL = Profile(
    name="full", seq_lens=(4096, 8192, 16384, 32768), batches=(1,), heads=(12,), head_dims=(64,),
    dtypes=("bfloat16",), causals=(False, True), segment_lengths=(2048, 4096, 8192),
    dilation_rates=(1, 2, 4), sdpa_seq_lens=(4096, 8192, 16384, 32768), accuracy_seq_len=2048,
    backward_seq_lens=(32768,), memory_seq_lens=(32768,), throughput_seq_lens=(32768,),
    detail_causals=(False,), sdpa_backends=("flash", "cudnn"), largest_fit_call_limit_s=2.0,
    largest_fit_cap=64 * 2 ** 20,  # past what fits on a 141 GB GPU (~24M tokens of q, k, v, out)
    cuda_only=True, repeat=(10, 10, 0.2), rounds=1, sample_time=0.025)


def _cuda_available() -> bool:
    return torch.cuda.is_available()  # NVML-based (see top of file): does not initialise CUDA


def select_device() -> str:
    device = os.environ.get("ATTNBENCH_DEVICE") or ("cuda" if _cuda_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"ATTNBENCH_DEVICE must be 'cpu' or 'cuda', got {device!r}")
    return device


def select_profile(name: str | None = None, device: str | None = None) -> Profile:
    """The grid for ``ATTNBENCH_PROFILE`` (or ``name``); ``standard`` differs between CPU and CUDA."""
    name = name or os.environ.get("ATTNBENCH_PROFILE") or "quick"
    device = device or select_device()
    profiles = {"quick": QUICK, "standard": STANDARD_CUDA if device == "cuda" else STANDARD_CPU,
                "full": FULL}
    if name not in profiles:
        raise ValueError(f"ATTNBENCH_PROFILE must be one of {sorted(profiles)}, got {name!r}")
    return profiles[name]


DEVICE = select_device()
PROFILE = select_profile(device=DEVICE)


def threads() -> int:
    default = 1 if PROFILE.name == "quick" else min(8, os.cpu_count() or 1)
    value = os.environ.get("ATTNBENCH_THREADS", str(default))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"ATTNBENCH_THREADS must be a positive integer, got {value!r}")
    return int(value)


def ring_world_sizes() -> tuple[int, ...]:
    raw = os.environ.get("ATTNBENCH_RING_WORLD_SIZES")
    if raw is None:
        if PROFILE.name == "quick":
            return (1,)
        if DEVICE == "cuda":
            n = max(1, torch.cuda.device_count())
            return tuple(2 ** i for i in range(n.bit_length()) if 2 ** i <= n)
        return (1, 2)
    try:
        sizes = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(f"ATTNBENCH_RING_WORLD_SIZES must be comma-separated integers, got {raw!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"ATTNBENCH_RING_WORLD_SIZES must list sizes >= 1, got {raw!r}")
    return sizes


# ---------------------------------------------------------------------------------------------
# Asv attributes and parameter grids

class Timed:
    """Base of time_* classes: asv's timing attributes (asv reads them by getattr).

    asv reads ``timer`` before and after each call of the ``time_*`` function; ``timing.CLOCK``
    advances only by the seconds per call that the function's ``Sampler`` measured (CUDA events
    on a GPU, ``perf_counter`` on a CPU), so one asv sample is one batch of back-to-back calls.
    ``number = 1`` and ``warmup_time = 0``: the batch size and the warm-up are the sampler's own,
    done once per process in ``setup`` (asv re-runs ``setup`` before every sample; ``sampler``
    returns the process's cached one).
    """

    repeat = PROFILE.repeat
    rounds = PROFILE.rounds
    number = 1
    warmup_time = 0.0
    timer = timing.CLOCK


def stable_tolerance() -> float:
    """The warm-up's drift tolerance: ``ATTNBENCH_STABLE_TOLERANCE`` if set, else the profile's."""
    raw = os.environ.get("ATTNBENCH_STABLE_TOLERANCE")
    if raw is None:
        return PROFILE.stable_tolerance
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"ATTNBENCH_STABLE_TOLERANCE must be a positive number (0.05 = 5%), got {raw!r}")
    return value


def timing_policy() -> timing.Policy:
    p = PROFILE
    return timing.Policy(sample_time=p.sample_time, window=p.stable_window,
                         tolerance=stable_tolerance(), warmup_limit=p.warmup_limit)


@dataclass(frozen=True)
class Workload:
    """What a time_* benchmark times: ``call()`` does the work once without waiting for the device;
    ``working_set_bytes`` (inputs, outputs and gradients) decides the L2 flush on a GPU."""

    call: Callable[[], None]
    working_set_bytes: int


VARIANTS = ("kernel", "synced", "graph")
_SAMPLER: dict[tuple, "timing.Sampler"] = {}  # this process's one sampler (asv: one set a process)


def sampler(key: tuple, make: Callable[[], Workload], variant: str = "kernel") -> "timing.Sampler":
    """The warmed-up Sampler of ``key`` (benchmark and params), built by ``make()`` on first use.

    ``variant``: "kernel" (CPU wall clock, or CUDA events around back-to-back calls with the L2
    flushed before each call where the working set fits in it), "synced" (wall time of call plus
    device sync: what the caller pays), "graph" (CUDA graph replays between events).
    """
    if variant not in VARIANTS:
        raise ValueError(f"timing variant must be one of {VARIANTS}, got {variant!r}")
    key = (*key, variant)
    if key in _SAMPLER:
        return _SAMPLER[key]
    _SAMPLER.clear()  # drop the last set's tensors before building this one's
    workload = make()
    flush = None
    if DEVICE == "cuda" and variant in ("kernel", "graph"):
        flush = (timing.L2Flush(timing.l2_bytes())
                 if timing.needs_l2_flush(workload.working_set_bytes, timing.l2_bytes()) else None)
        batch = timing.cuda_event_batch if variant == "kernel" else timing.cuda_graph_batch
        measure = batch(workload.call, flush)
    elif variant == "graph":
        skip("CUDA graph replay is a GPU variant")
    elif DEVICE == "cuda":
        measure = timing.synced_wall_batch(workload.call, torch.cuda.synchronize)
    else:
        measure = timing.wall_batch(workload.call)  # a CPU call is synchronous: "synced" is the same
    made = timing.Sampler(measure, timing_policy()).warm_up()
    # asv shows a benchmark's stderr with --show-stderr: how each set was timed, once per process.
    lead = getattr(measure, "lead", None)
    led = "" if lead is None else (", GPU held while calls are queued" if lead.led else
                                   ", calls not led (one call fills the launch queue or waits for the GPU)")
    print(f"timing: {variant} on {DEVICE}, {made.calls} call(s) per sample, L2 flush "
          f"{'on' if flush is not None else 'off'}{led}, warm-up {len(made.warmup_batches)} batches "
          f"(last {made.warmup_batches[-1] * 1e3:.4g} ms a call)", file=sys.stderr)
    _SAMPLER[key] = made
    return made


SHAPE_PARAM_NAMES = ["implementation", "seq_len", "batch", "heads", "head_dim", "dtype", "causal"]


def shape_params(seq_lens: tuple[int, ...] = (),
                 implementations: tuple[str, ...] = IMPLEMENTATIONS,
                 causals: tuple[bool, ...] = ()) -> list[list]:
    """[implementations, seq_lens, batches, heads, head_dims, dtypes, causals] of the profile."""
    p = PROFILE
    return [list(implementations), list(seq_lens or p.seq_lens), list(p.batches), list(p.heads),
            list(p.head_dims), list(p.dtypes), list(causals or p.causals)]


# ---------------------------------------------------------------------------------------------
# Skips, registry access, specs, inputs

def skip(reason: str) -> None:
    """asv records a benchmark whose setup raises NotImplementedError as skipped (n/a)."""
    raise NotImplementedError(reason)


def cpu_affinity(allowed: set[int], n_threads: int, setting: str) -> set[int] | None:
    """The CPUs to pin a benchmark process to, or None to leave it where the OS puts it.

    ``auto``: the last ``n_threads`` of ``allowed`` (a process that stays on its cores keeps its
    caches and is not migrated mid-sample), unless that is all of them anyway; ``none``: no pinning;
    else a comma-separated list of CPU numbers, which must be a subset of ``allowed``.
    """
    if setting == "none":
        return None
    if setting == "auto":
        if len(allowed) <= n_threads:
            return None
        return set(sorted(allowed)[-n_threads:])
    try:
        chosen = {int(part) for part in setting.split(",")}
    except ValueError:
        chosen = set()
    if not chosen or not chosen <= allowed:
        raise ValueError(f"ATTNBENCH_CPU_AFFINITY must be 'auto', 'none' or CPUs out of "
                         f"{sorted(allowed)}, got {setting!r}")
    return chosen


def _pin_cpus() -> None:
    if not hasattr(os, "sched_setaffinity"):
        return  # not Linux: the OS gives no affinity control here
    setting = os.environ.get("ATTNBENCH_CPU_AFFINITY", "auto")
    if setting == "auto" and DEVICE == "cuda":
        # A GPU run's host path is one Python thread, and pinning does not steady it: on the H200
        # VM a fixed pure-Python loop ran anywhere from 7 to 17 ms within one process, pinned to
        # one CPU, to 8 of 16, or not at all. TimeForward's held GPU makes its figures independent
        # of host speed instead (benchmarks/timing.py).
        return
    allowed = os.sched_getaffinity(0)
    chosen = cpu_affinity(allowed, threads(), setting)
    if chosen is not None:
        try:
            os.sched_setaffinity(0, chosen)
        except OSError:
            pass  # a container may forbid it: the timing is still valid, only less isolated


def prepare_process() -> None:
    """Per-benchmark-process settings: fixed CPU threads pinned to fixed CPUs; refuse a device
    this machine lacks."""
    torch.set_num_threads(threads())
    _pin_cpus()
    if PROFILE.cuda_only and DEVICE != "cuda":
        skip(f"profile {PROFILE.name!r} is a GPU sweep; this machine runs on {DEVICE}")
    if DEVICE == "cuda" and not _cuda_available():
        skip("ATTNBENCH_DEVICE=cuda but no CUDA device is available")


def optional_module(name: str):
    """Import ``name`` or skip: an old commit may predate the module."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        skip(f"{name} is not importable at this commit: {err}")


def implementation(name: str):
    """The registry entry ``name`` at the commit being measured, or a skip."""
    attention = optional_module("attention")
    registry = getattr(attention, "IMPLEMENTATIONS", None)
    if registry is None or name not in registry:
        skip(f"{name} is not registered at this commit")
    return registry[name]


def make_spec(seq_len: int, batch: int, heads: int, head_dim: int, dtype: str, causal: bool,
              **overrides):
    """An ``attention.spec.AttentionSpec`` for one parameter set, with the profile's pattern."""
    spec_module = optional_module("attention.spec")
    fields = dict(batch=batch, seq_len=seq_len, num_heads=heads, head_dim=head_dim, causal=causal,
                  dtype=dtype, device=DEVICE, segment_lengths=PROFILE.segment_lengths,
                  dilation_rates=PROFILE.dilation_rates)
    fields.update(overrides)
    return spec_module.AttentionSpec(**fields)


def build(impl, spec) -> Callable[..., torch.Tensor]:
    """``impl.build(spec)`` on the benchmark device, or a skip when the implementation says no."""
    supports = getattr(impl, "supports", None)
    reason = supports(spec) if supports is not None else None
    if reason:
        skip(f"{impl.name}: {reason}")
    if DEVICE == "cuda" and not _cuda_available():
        skip("no CUDA device")
    if DEVICE == "cpu" and spec.dtype in ("float16",):
        skip("float16 attention is not benchmarked on CPU")
    fn = impl.build(spec)
    if isinstance(fn, torch.nn.Module):
        fn = fn.to(device=DEVICE, dtype=DTYPES[spec.dtype])
    return fn


def make_qkv(spec, seed: int = 0, requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
    """Seeded q, k, v of shape (batch, seq_len, num_heads, head_dim) on the benchmark device."""
    # Drawn on the device in the target dtype: at millions of tokens a float32 CPU draw plus copy
    # takes minutes and more host memory than the GPU box has (16M tokens: 150 GB).
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    return tuple(torch.randn(spec.qkv_shape(), generator=generator, device=DEVICE,
                             dtype=DTYPES[spec.dtype]).requires_grad_(requires_grad)
                 for _ in range(3))


def sync() -> None:
    """Wait for queued device work, so a timer measures the kernels and not their launch."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def run_synced(fn: Callable[..., torch.Tensor], qkv: tuple[torch.Tensor, ...]) -> None:
    """One forward under no_grad, then sync."""
    with torch.no_grad():
        fn(*qkv)
    sync()


# ---------------------------------------------------------------------------------------------
# The object every shape benchmark prepares in setup

class AttentionCase:
    """One implementation built for one parameter set, with seeded inputs and a warm-up call done."""

    def __init__(self, name: str, seq_len: int, batch: int, heads: int, head_dim: int,
                 dtype: str, causal: bool, backward: bool = False, warmup: bool = True,
                 **spec_overrides):
        prepare_process()
        self.impl = implementation(name)
        self.spec = make_spec(seq_len, batch, heads, head_dim, dtype, causal, **spec_overrides)
        self.fn = build(self.impl, self.spec)
        self.qkv = make_qkv(self.spec, requires_grad=backward)
        module = self.fn if isinstance(self.fn, torch.nn.Module) else getattr(self.fn, "module", None)
        params = list(module.parameters()) if isinstance(module, torch.nn.Module) else []
        self.wrt = [*self.qkv, *(p for p in params if p.requires_grad)]
        self.grad_out = torch.ones_like(self.qkv[0]) if backward else None
        self.backward = backward
        if warmup:
            self.run()  # a crash here is a failure (not a skip), as it should be

    def run(self) -> None:
        """One call (forward, or forward and backward), then wait for the device."""
        # A method, not an attribute holding a bound method: that would be a reference cycle,
        # keeping a dropped case's inputs alive until the garbage collector runs (it filled the
        # GPU in LargestFit's search, where each attempt drops the last one's inputs).
        self.call()
        sync()

    def call(self) -> None:
        """One call without waiting for the device (timed between CUDA events)."""
        if self.backward:
            # autograd.grad over inputs and parameters: the work of a training step, without
            # accumulating .grad between repeats.
            torch.autograd.grad(self.fn(*self.qkv), self.wrt, self.grad_out)
        else:
            with torch.no_grad():
                self.fn(*self.qkv)

    def forward(self) -> None:
        run_synced(self.fn, self.qkv)

    def forward_backward(self) -> None:
        torch.autograd.grad(self.fn(*self.qkv), self.wrt, self.grad_out)
        sync()

    def workload(self) -> Workload:
        """This case as a time_* workload: q, k, v and the output (and their gradients)."""
        io_bytes = 4 * self.qkv[0].numel() * self.qkv[0].element_size()
        return Workload(self.call, io_bytes * (2 if self.backward else 1))

    def median_ms(self, repeats: int = 5) -> float:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.run()
            samples.append((time.perf_counter() - start) * 1e3)
        return statistics.median(samples)

    def pairs(self) -> float:
        return float(self.impl.pairs(self.spec))

    def flops(self, backward: bool) -> float:
        spec_module = optional_module("attention.spec")
        flops_fn = getattr(spec_module, "attention_flops", None)
        if flops_fn is None:
            skip("attention.spec.attention_flops is missing at this commit")
        return flops_fn(self.pairs(), self.spec, backward=backward)


# ---------------------------------------------------------------------------------------------
# Memory

def _proc_status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def _reset_rss_high_water() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0: write 5 to clear_refs); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def return_freed_memory_to_os() -> None:
    """Pin glibc's mmap threshold (128 KiB) so large tensors are mmapped and unmapped when freed.

    By default glibc raises the threshold after each large free and keeps later allocations on
    its heap, where an earlier call's pages would hide the next call's peak.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def memory_case(name: str, seq_len: int, batch: int, heads: int, head_dim: int, dtype: str,
                causal: bool) -> "AttentionCase":
    """A case for measuring its first full-size call: warmed up at 256 tokens instead (imports,
    kernel selection, one-time buffers), so none of that is counted as the call's memory."""
    return_freed_memory_to_os()
    AttentionCase(name, min(256, seq_len), batch, heads, head_dim, dtype, causal)
    return AttentionCase(name, seq_len, batch, heads, head_dim, dtype, causal, warmup=False)


def cpu_peak_growth_mib(run: Callable[[], None]) -> float:
    """How far one ``run()`` lifts the process's resident set above its level before, in MiB.

    The RSS high-water mark is reset first, so earlier peaks (imports, setup) cannot hide the
    call. Honest but coarse: pages the allocator kept from earlier calls are reused without
    raising RSS, so it is a lower bound of the extra memory the call needed. Without
    /proc/self/clear_refs it falls back to the growth of getrusage's ru_maxrss (asv runs each
    parameter set in a fresh process, whose mark starts near its current RSS).
    """
    if _reset_rss_high_water():
        before = _proc_status_mib("VmRSS")
        run()
        peak = _proc_status_mib("VmHWM")
        if before is not None and peak is not None:
            return max(0.0, peak - before)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    run()
    return max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 - before)


def cuda_peak_allocated_mib(run: Callable[[], None]) -> float:
    """``torch.cuda.max_memory_allocated`` during one ``run()`` after a reset (inputs included)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / MIB


def is_out_of_memory(err: BaseException) -> bool:
    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(err, oom) or (isinstance(err, RuntimeError) and "out of memory" in str(err))

