"""Markdown tables of one machine's asv results: ms, speed-up vs dense, TFLOP/s, peak MiB.

Reads asv's own result files (``results/<machine>/<commit>-*.json``) through asv's API: the
performance targets of ``TARGETS`` as measured, one table per (seq_len, causal) for the forward
pass and one for forward+backward, at one commit (default: the newest with results), plus the
history of the 4K and 32K forward across every commit.

Every ratio names its baseline. The baseline is the fastest dense kernel measured on that machine
at the same commit, length, dtype and causality (``tools.lib.headline.fastest_dense``: torch's
automatic choice from ``bench_time`` and each SDPA backend of ``bench_sdpa``, e.g. flash and
cuDNN on a GPU); flash SDPA is shown beside it, named.

Usage: ``python -m tools.summary --machine h100-80gb-hbm3x1 [--commit SHA] [--output FILE]``
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from asv.results import Results

from tools import cli
from tools.lib.errors import ToolError
from tools.lib import headline
from tools.lib.files import check_writable, write_text_atomic
from tools.lib.headline import Baseline, Shape, by_implementation, fastest_dense, values

FORWARD = "bench_time.TimeForward.time_forward"
BACKWARD = "bench_time.TimeForwardBackward.time_forward_backward"
TFLOPS = "bench_throughput.ForwardThroughput.track_tflops"
PEAK = "bench_memory.CudaPeakMemory.track_peak_allocated"
LARGEST = "bench_capacity.LargestFit.track_largest_seq_len"
PEAK_AT_LARGEST = "bench_capacity.LargestFit.track_peak_vs_qkvo_at_largest"
SDPA = "bench_sdpa.SdpaBackends.time_forward"
SDPA_BACKWARD = "bench_sdpa.SdpaBackendsForwardBackward.time_forward_backward"
HEADLINE = "32768"  # the targets' shape in the full profile: bf16, batch 1, 12 heads, head_dim 64
HISTORY = ("DenseAttention", "ImprovedDilatedAttention", "BlockSparseAttention")


def load_machine(results_dir: Path, machine: str) -> tuple[dict, list[Results]]:
    """(machine.json facts, results oldest first); a result file that cannot be read is skipped with
    a warning naming it, an unreadable machine.json is a ToolError."""
    found = headline.load_machine(results_dir, machine)
    return found.facts, found.runs


def flash_time(run: Results, key: str, seq_len: str, causal: str) -> float | None:
    """Dense flash SDPA's time at (seq_len, causal) from bench_sdpa (forward or fwd+bwd ``key``)."""
    sdpa_key = SDPA if key == FORWARD else SDPA_BACKWARD
    at = {c[0].strip("'"): v for c, v in values(run, sdpa_key).items() if c[1] == seq_len and c[-1] == causal}
    return at.get("flash")


def _shape(run: Results, key: str, seq_len: str, causal: str) -> Shape | None:
    """The (batch, heads, head_dim, dtype) ``key`` measured at (seq_len, causal), first in order."""
    combos = sorted(c for c in values(run, key) if c[1] == seq_len and c[-1] == causal)
    return Shape(seq_len, *combos[0][2:6], causal) if combos else None


def baseline(run: Results, key: str, seq_len: str, causal: str, gpu: bool = True) -> Baseline | None:
    """The fastest dense kernel ``run`` measured at (seq_len, causal), forward or fwd+bwd ``key``."""
    shape = _shape(run, key, seq_len, causal)
    return fastest_dense(run, shape, gpu, backward=key == BACKWARD) if shape else None


def ratio(baseline_s: float | None, seconds: float | None) -> str:
    return f"{baseline_s / seconds:.1f}x" if baseline_s and seconds else "—"


def shape_table(run: Results, key: str, seq_len: str, causal: str, gpu: bool = True) -> list[str]:
    times = by_implementation(run, key, seq_len, causal)
    tflops = by_implementation(run, TFLOPS, seq_len, causal)
    peak = by_implementation(run, PEAK, seq_len, causal)
    if not times:
        return []
    base, flash = baseline(run, key, seq_len, causal, gpu), flash_time(run, key, seq_len, causal)
    base_s = base.time.value if base else None
    rows = [f"Fastest dense kernel here: {base.name}, {base_s * 1e3:.3f} ms." if base else
            "No dense kernel measured here.", "",
            "| implementation | ms | vs fastest dense | vs flash | TFLOP/s | peak MiB |",
            "|---|---|---|---|---|---|"]
    for name, seconds in sorted(times.items(), key=lambda kv: kv[1]):
        tf = f"{tflops[name]:.0f}" if key == FORWARD and name in tflops else "—"
        mib = f"{peak[name]:.1f}" if key == FORWARD and name in peak else "—"
        rows.append(f"| {name} | {seconds * 1e3:.3f} | {ratio(base_s, seconds)} | {ratio(flash, seconds)} "
                    f"| {tf} | {mib} |")
    return rows


Measured = tuple[str, str]  # (what was measured, "yes"/"no": target reached)


def _versus(run: Results, key: str, name: str, seq_len: str, causal: str = "False"
            ) -> tuple[float, Baseline] | None:
    """(implementation seconds, fastest dense baseline) at one shape, or None if either is missing."""
    seconds = by_implementation(run, key, seq_len, causal).get(name)
    base = baseline(run, key, seq_len, causal)
    return (seconds, base) if seconds and base else None


def _speedup(run: Results, key: str, name: str, seq_len: str, goal: float) -> Measured | None:
    found = _versus(run, key, name, seq_len)
    if found is None:
        return None
    seconds, base = found
    flash = flash_time(run, key, seq_len, "False")
    up = base.time.value / seconds
    return (f"{seconds * 1e3:.3f} ms vs {base.name} {base.time.value * 1e3:.3f} ms = {up:.1f}x "
            f"(vs flash {ratio(flash, seconds)})", "yes" if up >= goal else "no")


def pairs_ratio(seq_len: int, causal: bool) -> float:
    """Query-key pairs of dense attention over those of the full profile's dilated pattern at
    ``seq_len`` (batch 1, 12 heads, head_dim 64): the speed-up at equal effective TFLOP/s."""
    from attention.spec import AttentionSpec, dense_pairs, dilated_pairs

    spec = AttentionSpec(seq_len=seq_len, num_heads=12, head_dim=64, causal=causal,
                         segment_lengths=(2048, 4096, 8192), dilation_rates=(1, 2, 4))
    return dense_pairs(spec) / dilated_pairs(spec)


def _efficiency(run: Results, key: str, seq_lens: tuple[str, ...], causals: tuple[str, ...],
                goal: float) -> Measured | None:
    """Improved's effective TFLOP/s over the fastest dense kernel's (speed-up / pairs ratio), the
    lowest over the given shapes; reached when at least ``goal``."""
    found = []
    for seq_len in seq_lens:
        for causal in causals:
            at = _versus(run, key, "ImprovedDilatedAttention", seq_len, causal)
            if at:
                seconds, base = at
                up = base.time.value / seconds
                found.append((up / pairs_ratio(int(seq_len), causal == "True"), up, base.name,
                              seq_len, causal))
    if not found:
        return None
    eff, up, name, seq_len, causal = min(found)
    return (f"lowest {eff:.0%} of {name}'s effective TFLOP/s ({up:.1f}x it at {seq_len}, "
            f"causal={causal}; {len(found)} shapes)", "yes" if eff >= goal else "no")


def _never_slower(run: Results) -> Measured | None:
    """Improved vs the fastest dense kernel at every measured length from 4K up, forward and
    forward+backward, causal and not."""
    worst = []
    for key, label in ((FORWARD, "forward"), (BACKWARD, "forward+backward")):
        for combo, seconds in values(run, key).items():
            name, seq_len, causal = combo[0].strip("'"), combo[1], combo[-1]
            if name != "ImprovedDilatedAttention" or int(seq_len) < 4096:
                continue
            base = baseline(run, key, seq_len, causal)
            if base:
                worst.append((base.time.value / seconds,
                              f"vs {base.name}, {label} at {seq_len}, causal={causal}"))
    if not worst:
        return None
    low = min(worst)
    return f"lowest speed-up {low[0]:.2f}x ({low[1]})", "yes" if low[0] >= 1.0 else "no"


def _largest(run: Results) -> Measured | None:
    combo = ("'ImprovedDilatedAttention'", "'bfloat16'", "False")
    tokens = values(run, LARGEST).get(combo)
    peak = values(run, PEAK_AT_LARGEST).get(combo)
    if tokens is None:
        return None
    peak_text = f"{peak:.3f}x q,k,v,out" if peak is not None else "peak not measured"
    reached = "yes" if tokens >= 23.5e6 and peak is not None and peak <= 1.01 else "no"
    return f"{int(tokens):,} tokens, {peak_text}", reached


TARGETS: list[tuple[str, Callable[[Results], Measured | None]]] = [
    ("Improved forward 16K-32K, causal and not: effective TFLOP/s >= the fastest dense kernel's",
     lambda run: _efficiency(run, FORWARD, ("16384", HEADLINE), ("False", "True"), 1.0)),
    ("Improved forward at 32K >= 27x the fastest dense kernel",
     lambda run: _speedup(run, FORWARD, "ImprovedDilatedAttention", HEADLINE, 27.0)),
    ("Improved forward+backward at 32K >= 90% of the fastest dense kernel's efficiency",
     lambda run: _efficiency(run, BACKWARD, (HEADLINE,), ("False",), 0.9)),
    ("never slower than the fastest dense kernel from 4K up", _never_slower),
    ("largest forward >= 23.5M tokens, peak <= 1.01x q,k,v,out", _largest),
    ("BlockSparse (90%) forward at 32K >= 9x the fastest dense kernel",
     lambda run: _speedup(run, FORWARD, "BlockSparseAttention", HEADLINE, 9.0)),
]


def targets_table(runs: list[Results]) -> list[str]:
    """The performance targets (speed-ups against the fastest dense kernel measured there), each
    from the newest commit whose results measure it."""
    rows = ["| target | measured | reached | commit |", "|---|---|---|---|"]
    for label, measure in TARGETS:
        found = next(((run, m) for run in reversed(runs) if (m := measure(run))), None)
        if found is None:
            rows.append(f"| {label} | not measured | — | — |")
        else:
            run, (measured, reached) = found
            rows.append(f"| {label} | {measured} | {reached} | {run.commit_hash[:8]} |")
    return rows


def largest_table(runs: list[Results]) -> list[str]:
    run = next((r for r in reversed(runs) if values(r, LARGEST)), None)
    if run is None:
        return []
    peaks = values(run, PEAK_AT_LARGEST)
    lines = [f"## largest forward (tokens), commit {run.commit_hash[:8]}", "",
             "| implementation | dtype | causal | tokens | peak / (q+k+v+out) |", "|---|---|---|---|---|"]
    lines += [f"| {c[0].strip(chr(39))} | {c[1].strip(chr(39))} | {c[2]} | {int(v):,} | "
              f"{f'{peaks[c]:.3f}x' if c in peaks else '—'} |" for c, v in values(run, LARGEST).items()]
    return lines + [""]


def coverage_table(runs: list[Results]) -> list[str]:
    """Which benchmark families (module.Class) each commit has values for, newest first."""
    lines = ["## what each commit measured", "", "| commit | parameter sets | families |", "|---|---|---|"]
    for run in reversed(runs):
        keys = [k for k in run.get_all_result_keys() if values(run, k)]
        sets = sum(len(values(run, k)) for k in keys)
        families = sorted({k.rsplit(".", 1)[0] for k in keys})
        lines.append(f"| {run.commit_hash[:8]} | {sets} | {', '.join(families)} |")
    return lines + [""]


def history_table(runs: list[Results], seq_len: str) -> list[str]:
    """Forward time (ms, not causal) at ``seq_len`` per commit, oldest first; flash where measured."""
    lines = [f"## history: forward at {seq_len} tokens, not causal (ms)", "",
             "| commit | " + " | ".join(HISTORY) + " | flash |", "|---" * (len(HISTORY) + 2) + "|"]
    for r in runs:
        at = by_implementation(r, FORWARD, seq_len, "False")
        if at:
            flash = flash_time(r, FORWARD, seq_len, "False")
            cells = [f"{at[n] * 1e3:.3f}" if n in at else "—" for n in HISTORY]
            cells.append(f"{flash * 1e3:.3f}" if flash else "—")
            lines.append(f"| {r.commit_hash[:8]} | " + " | ".join(cells) + " |")
    return lines + [""] if len(lines) > 4 else []


def summary(results_dir: Path, machine: str, commit: str | None = None) -> str:
    facts, runs = load_machine(results_dir, machine)
    if not runs:
        raise ToolError(f"machine {machine!r} has no readable result files")
    # Default: the newest commit with forward times (a commit may have been run for one family).
    chosen = [r for r in runs if r.commit_hash.startswith(commit)] if commit else \
        [r for r in runs if values(r, FORWARD)] or runs
    if not chosen:
        raise ToolError(f"no results for commit {commit!r} on {machine!r}")
    run = chosen[-1]
    gpu = facts.get("gpu") or facts.get("cpu", "?")
    is_gpu = bool(facts.get("gpu"))
    lines = [f"# {machine}: {gpu}, torch {facts.get('torch', '?')}", "",
             "## performance targets (against the fastest dense kernel measured here)", "",
             *targets_table(runs), "",
             f"## tables at commit {run.commit_hash[:8]}", ""]
    for key, label in ((FORWARD, "forward"), (BACKWARD, "forward+backward")):
        combos = sorted({(c[1], c[-1]) for c in values(run, key)}, key=lambda sc: (int(sc[0]), sc[1]))
        for seq_len, causal in combos:
            lines += [f"### {label}, {seq_len} tokens, causal={causal}", "",
                      *shape_table(run, key, seq_len, causal, is_gpu), ""]
    lines += largest_table(runs)
    lines += coverage_table(runs)
    for seq_len in ("4096", HEADLINE):
        lines += history_table(runs, seq_len)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.summary", description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--machine", type=cli.machine_name, required=True)
    parser.add_argument("--commit", type=cli.non_empty, help="commit (prefix) to tabulate; default: the newest")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.output:
        check_writable(str(args.output))
    text = summary(args.results, args.machine, args.commit)
    if args.output:
        write_text_atomic(str(args.output), text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
