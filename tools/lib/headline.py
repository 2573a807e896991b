"""One machine's headline numbers from asv's result files: times, the fastest dense baseline, ratios.

Reads ``results/<machine>/machine.json`` and ``results/<machine>/<commit>-<env>.json`` through
asv's own ``Results`` API. Parameters are asv's repr strings throughout (``"32768"``,
``"'bfloat16'"``, ``"False"``), exactly as the result files and asv's site spell them.

Shapes are ``(batch, seq_len, heads, head_dim)``; times are seconds as asv stores them (pages
show ms); memory is MiB; throughput is TFLOP/s (10**12 FLOP/s).

The honest baseline of every ratio is the fastest dense kernel measured on the same machine, at
the same commit, sequence length, dtype and causality: ``DenseAttention`` (torch's automatic
SDPA choice, from ``bench_time``) and every SDPA backend of ``bench_sdpa`` (flash and cuDNN on a
GPU; the ``math`` backend counts only on a CPU, where it is a real contender). ``bench_sdpa``
measures the profile's first batch/heads/head_dim, which is the headline shape of every profile.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from asv.results import Results

from tools.lib.errors import ToolError
from tools.lib.series import iter_results_checked, machine_facts

__all__ = [
    "FORWARD", "BACKWARD", "TFLOPS", "CUDA_PEAK", "CPU_GROWTH", "LARGEST", "PEAK_AT_LARGEST", "SDPA",
    "SDPA_BACKWARD", "Measured", "Baseline", "Shape", "HeadlineRow", "MachineResults", "load_machine",
    "values", "by_implementation", "fastest_dense", "headline_shape", "headline_rows",
    "ratio_history", "forward_by_seq_len", "dense_by_seq_len", "qkvo_mib", "HistoryPoint",
]

FORWARD = "bench_time.TimeForward.time_forward"
BACKWARD = "bench_time.TimeForwardBackward.time_forward_backward"
TFLOPS = "bench_throughput.ForwardThroughput.track_tflops"
CUDA_PEAK = "bench_memory.CudaPeakMemory.track_peak_allocated"
CPU_GROWTH = "bench_memory.CpuPeakMemory.track_rss_growth"
LARGEST = "bench_capacity.LargestFit.track_largest_seq_len"
PEAK_AT_LARGEST = "bench_capacity.LargestFit.track_peak_vs_qkvo_at_largest"
SDPA = "bench_sdpa.SdpaBackends.time_forward"
SDPA_BACKWARD = "bench_sdpa.SdpaBackendsForwardBackward.time_forward_backward"
DENSE = "DenseAttention"
BYTES_PER_ELEMENT = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
MIB = 2.0 ** 20


@dataclass(frozen=True)
class Measured:
    """One value from one result file: which benchmark, which parameters, which commit, when."""

    value: float
    benchmark: str
    params: tuple[str, ...]  # asv repr strings, in the benchmark's param_names order
    commit: str  # full hash
    measured_at: int | None  # ms since the epoch: when asv started this benchmark


@dataclass(frozen=True)
class Baseline:
    """The fastest dense kernel at one shape: its name ("flash SDPA", "DenseAttention") and time."""

    name: str
    time: Measured


@dataclass(frozen=True)
class Shape:
    """A forward shape as asv's repr strings: seq_len "32768", dtype "'bfloat16'", causal "False"."""

    seq_len: str
    batch: str
    heads: str
    head_dim: str
    dtype: str
    causal: str

    def params(self, implementation: str) -> tuple[str, ...]:
        """The ``bench_time``/``bench_throughput``/``bench_memory`` parameter tuple for one implementation."""
        return (repr(implementation), self.seq_len, self.batch, self.heads, self.head_dim, self.dtype,
                self.causal)

    @property
    def dtype_name(self) -> str:
        return self.dtype.strip("'")


@dataclass
class HeadlineRow:
    """One implementation at the headline shape; any figure not measured anywhere is None."""

    implementation: str
    time: Measured  # seconds
    ratio: float | None  # baseline seconds / this time: > 1 is faster than the fastest dense kernel
    tflops: Measured | None = None  # effective TFLOP/s (FLOPs of the pairs attended)
    memory: Measured | None = None  # MiB: CUDA peak allocated (inputs included) or CPU RSS growth
    largest: Measured | None = None  # tokens: longest forward that fits
    peak_at_largest: Measured | None = None  # peak / (q+k+v+out) at that length


@dataclass
class MachineResults:
    """One machine's facts (machine.json) and its result files, oldest commit first."""

    name: str
    facts: dict
    runs: list[Results] = field(default_factory=list)

    @property
    def is_gpu(self) -> bool:
        return bool(self.facts.get("gpu"))


def load_machine(results_dir: Path, machine: str, order: dict[str, int] | None = None) -> MachineResults:
    """The machine's facts and result files, oldest first: by ``order`` (commit -> position, asv's
    git order) where it knows every commit, else by the commit dates in the files. A missing or
    unreadable machine.json is a ToolError; an unreadable result file is skipped with a warning."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ToolError(f"results directory {results_dir} does not exist")
    folder = results_dir / machine
    if not (folder / "machine.json").is_file():
        known = sorted(p.parent.name for p in results_dir.glob("*/machine.json"))
        raise ToolError(f"no results for machine {machine!r} under {results_dir} (machines there: "
                        f"{', '.join(known) or 'none'})")
    facts = machine_facts(str(folder))
    runs = list(iter_results_checked(str(results_dir), machine))
    if order and all(r.commit_hash in order for r in runs):
        runs.sort(key=lambda r: order[r.commit_hash])
    else:
        runs.sort(key=lambda r: r.date or 0)
    return MachineResults(machine, facts, runs)


def values(run: Results, key: str) -> dict[tuple, float]:
    """{param tuple (asv's repr strings): value} for one benchmark in one run; NaN/None/inf dropped."""
    if key not in run.get_all_result_keys():
        return {}
    params = run.get_result_params(key)
    out = {}
    for combo, value in zip(itertools.product(*params), run.get_result_value(key, params)):
        if isinstance(value, (int, float)) and math.isfinite(value):  # None/NaN: not run; inf: no value
            out[combo] = value
    return out


def by_implementation(run: Results, key: str, seq_len: str, causal: str) -> dict[str, float]:
    """{implementation: value} at one (seq_len, causal); params are (implementation, seq_len, ..., causal)."""
    return {c[0].strip("'"): v for c, v in values(run, key).items() if c[1] == seq_len and c[-1] == causal}


def _measured(run: Results, key: str, combo: tuple, value: float) -> Measured:
    started = (run.started_at or {}).get(key)
    return Measured(float(value), key, tuple(combo), run.commit_hash, started)


def _dense_candidates(run: Results, shape: Shape, gpu: bool, backward: bool = False) -> list[Baseline]:
    time_key, sdpa_key = (BACKWARD, SDPA_BACKWARD) if backward else (FORWARD, SDPA)
    found = []
    dense = shape.params(DENSE)
    forward = values(run, time_key)
    if dense in forward:
        found.append(Baseline(f"{DENSE} (auto SDPA)", _measured(run, time_key, dense, forward[dense])))
    for combo, seconds in values(run, sdpa_key).items():
        backend = combo[0].strip("'")
        if combo[1:] != (shape.seq_len, shape.dtype, shape.causal) or (gpu and backend == "math"):
            continue
        label = {"cudnn": "cuDNN", "efficient": "mem-efficient"}.get(backend, backend)
        found.append(Baseline(f"{label} SDPA", _measured(run, sdpa_key, combo, seconds)))
    return found


def fastest_dense(run: Results, shape: Shape, gpu: bool, backward: bool = False) -> Baseline | None:
    """The fastest dense kernel ``run`` measured at ``shape`` (see the module docstring), or None."""
    candidates = _dense_candidates(run, shape, gpu, backward)
    return min(candidates, key=lambda b: b.time.value) if candidates else None


def _forward_runs(machine: MachineResults) -> list[Results]:
    return [r for r in machine.runs if values(r, FORWARD)]


def headline_shape(run: Results) -> Shape | None:
    """The shape a machine is judged by: the longest forward ``run`` measured, not causal where
    measured, in the first dtype and head layout measured at that length."""
    combos = list(values(run, FORWARD))
    if not combos:
        return None
    longest = max(int(c[1]) for c in combos)
    at = [c for c in combos if int(c[1]) == longest]
    preferred = [c for c in at if c[6] == "False"] or at
    c = sorted(preferred, key=lambda c: (c[5], c[2], c[3], c[4]))[0]
    return Shape(c[1], c[2], c[3], c[4], c[5], c[6])


def _newest(machine: MachineResults, key: str, combo: tuple) -> Measured | None:
    """The newest commit's value of one benchmark at one parameter tuple."""
    for run in reversed(machine.runs):
        found = values(run, key)
        if combo in found:
            return _measured(run, key, combo, found[combo])
    return None


def headline_rows(machine: MachineResults) -> tuple[Results | None, Shape | None, Baseline | None,
                                                   list[HeadlineRow]]:
    """(run, shape, baseline, rows) at the newest commit with forward times.

    Times and ratios come from that commit; throughput, memory and capacity from the newest
    commit that measured them (a commit may have been run for some families only): each
    ``Measured`` names its own commit. Rows are fastest first.
    """
    runs = _forward_runs(machine)
    if not runs:
        return None, None, None, []
    run = runs[-1]
    shape = headline_shape(run)
    baseline = fastest_dense(run, shape, machine.is_gpu)
    memory_key = CUDA_PEAK if machine.is_gpu else CPU_GROWTH
    rows = []
    for combo, seconds in values(run, FORWARD).items():
        name = combo[0].strip("'")
        if combo != shape.params(name):
            continue
        capacity = (combo[0], shape.dtype, shape.causal)
        rows.append(HeadlineRow(
            name, _measured(run, FORWARD, combo, seconds),
            baseline.time.value / seconds if baseline and seconds else None,
            _newest(machine, TFLOPS, combo), _newest(machine, memory_key, combo),
            _newest(machine, LARGEST, capacity), _newest(machine, PEAK_AT_LARGEST, capacity)))
    rows.sort(key=lambda r: r.time.value)
    return run, shape, baseline, rows


def qkvo_mib(shape: Shape) -> float | None:
    """MiB of q, k, v and the output at ``shape``: 4 * batch * seq_len * heads * head_dim * bytes."""
    size = BYTES_PER_ELEMENT.get(shape.dtype_name)
    if size is None:
        return None
    return 4 * int(shape.batch) * int(shape.seq_len) * int(shape.heads) * int(shape.head_dim) * size / MIB


def forward_by_seq_len(run: Results, shape: Shape) -> dict[str, list[Measured]]:
    """{implementation: forward times at every measured seq_len, shortest first} at ``shape``'s
    batch, heads, head_dim, dtype and causality."""
    out: dict[str, list[Measured]] = {}
    for combo, seconds in values(run, FORWARD).items():
        if combo[2:] == (shape.batch, shape.heads, shape.head_dim, shape.dtype, shape.causal):
            out.setdefault(combo[0].strip("'"), []).append(_measured(run, FORWARD, combo, seconds))
    for points in out.values():
        points.sort(key=lambda m: int(m.params[1]))
    return out


def dense_by_seq_len(run: Results, shape: Shape, gpu: bool) -> dict[str, list[Measured]]:
    """{"flash SDPA": [...], ...}: every SDPA backend's forward times across seq_len at ``shape``'s
    dtype and causality (the baselines ``fastest_dense`` chooses from; math excluded on a GPU)."""
    out: dict[str, list[Measured]] = {}
    for combo in sorted(values(run, SDPA), key=lambda c: int(c[1])):
        at = Shape(combo[1], shape.batch, shape.heads, shape.head_dim, shape.dtype, shape.causal)
        for baseline in _dense_candidates(run, at, gpu):
            if baseline.time.params == combo:
                out.setdefault(baseline.name, []).append(baseline.time)
    return out


@dataclass(frozen=True)
class HistoryPoint:
    """One commit's headline ratio for one implementation: baseline seconds / its seconds."""

    commit: str
    date: int  # ms, the commit date asv stored
    ratio: float
    time: Measured
    baseline: Baseline


def ratio_history(machine: MachineResults, shape: Shape) -> dict[str, list[HistoryPoint]]:
    """{implementation: headline ratio at every commit that measured both it and a dense baseline
    at ``shape``}, oldest first."""
    out: dict[str, list[HistoryPoint]] = {}
    for run in machine.runs:
        baseline = fastest_dense(run, shape, machine.is_gpu)
        if baseline is None:
            continue
        forward = values(run, FORWARD)
        for combo, seconds in forward.items():
            name = combo[0].strip("'")
            if combo == shape.params(name) and seconds:
                out.setdefault(name, []).append(HistoryPoint(
                    run.commit_hash, run.date or 0, baseline.time.value / seconds,
                    _measured(run, FORWARD, combo, seconds), baseline))
    return out

