"""Do separate processes agree? Time the same sets in several fresh processes, three ways.

For each parameter set (forward or forward+backward; batch 1, 12 heads, head_dim 64, bf16), each
child process times it with the suite's sampler (benchmarks/timing.py, the profile's policy) as:
  led      CUDA events around back-to-back calls, the GPU held while each chunk is queued (TimeForward)
  unled    the same without holding the GPU: a host-bound call reads its host path
  synced   wall time of a call and a sync (TimeForwardSynced)
and a pure-Python loop (host speed). Half the processes are pinned to one CPU (ATTNBENCH_CPU_AFFINITY
set to the last CPU), half are not; they alternate. The table gives, per set and way, the spread
between processes: max / min - 1 of the per-process medians. Output: stdout and $OUT/lead_probe.md.

    python scripts/gpu_lead_probe.py [--processes 6] [--samples 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = [  # (implementation, seq_len, causal, backward)
    ("DilatedAttention", 4096, False, False), ("DilatedAttention", 4096, True, False),
    ("MultiheadDilatedAttention", 4096, False, False), ("RingDilatedAttention", 4096, False, False),
    ("ImprovedDilatedAttention", 4096, False, False), ("ImprovedMultiheadDilatedAttention", 4096, True, False),
    ("DenseAttention", 4096, True, False), ("DilatedAttention", 16384, False, False),
    ("RingDilatedAttention", 32768, False, False), ("MultiheadDilatedAttention", 32768, True, False),
    ("DilatedAttention", 32768, True, True), ("RingDilatedAttention", 32768, True, True),
]
WAYS = ("led", "unled", "synced")


def host_speed_ms() -> float:
    """ms for a fixed pure-Python loop (median of 5): how fast this process's CPU runs Python."""
    times = []
    for _ in range(5):
        begin = time.perf_counter()
        total = 0
        for i in range(200_000):
            total += i % 7
        times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def child(samples: int) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from benchmarks import common, timing

    out = {"cpu_affinity": sorted(os.sched_getaffinity(0)), "host_ms": host_speed_ms(), "sets": {}}
    for name, seq_len, causal, backward in SETS:
        case = common.AttentionCase(name, seq_len, 1, 12, 64, "bfloat16", causal, backward=backward,
                                    warmup=False)
        work = case.workload()
        flush = (timing.L2Flush(timing.l2_bytes())
                 if timing.needs_l2_flush(work.working_set_bytes, timing.l2_bytes()) else None)
        row = {"host_ms": host_speed_ms()}
        for way in WAYS:
            if way == "synced":
                measure = timing.synced_wall_batch(work.call, torch.cuda.synchronize)
            else:
                lead = timing.HostLead(*timing.cuda_hold())
                lead.led = way == "led"
                measure = timing.cuda_event_batch(work.call, flush, lead)
            try:
                sampler = timing.Sampler(measure, common.timing_policy()).warm_up()
                row[way] = statistics.median(sampler.sample() for _ in range(samples)) * 1e3
                if way == "led":
                    row["led_ok"] = measure.lead.led
            except timing.UnstableTiming as err:
                row[way] = None
                row[way + "_error"] = str(err)
        out["sets"][f"{name} {seq_len} {'causal' if causal else 'full'} {'fwd+bwd' if backward else 'fwd'}"] = row
        del case, work, flush
        torch.cuda.empty_cache()
    out["host_ms_after"] = host_speed_ms()
    print("RESULT " + json.dumps(out), flush=True)


def spread(values: list[float]) -> float:
    values = [v for v in values if v]
    return max(values) / min(values) - 1 if len(values) >= 2 else float("nan")


def parent(processes: int, samples: int, quick: bool) -> None:
    out_dir = Path(os.environ.get("OUT", "."))
    last_cpu = str(max(os.sched_getaffinity(0)))
    runs = []
    for i in range(processes):
        pinned = i % 2 == 1
        env = dict(os.environ, ATTNBENCH_PROFILE="full", ATTNBENCH_DEVICE="cuda",
                   ATTNBENCH_CPU_AFFINITY=last_cpu if pinned else "none")
        begin = time.time()
        proc = subprocess.run([sys.executable, __file__, "--child", "--samples", str(samples)]
                              + (["--quick"] if quick else []),
                              env=env, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit(f"child {i} failed")
        run = json.loads(line[0][7:])
        run["pinned"] = pinned
        runs.append(run)
        report(runs, out_dir)
        print(f"process {i + 1}/{processes} ({'pinned to CPU ' + last_cpu if pinned else 'not pinned'}): "
              f"{time.time() - begin:.0f} s, host loop {run['host_ms']:.2f} -> {run['host_ms_after']:.2f} ms",
              flush=True)


def report(runs: list[dict], out_dir: Path) -> None:
    processes = len(runs)
    lines = [f"# Separate processes, same sets: led, unled and synced timing ({processes} processes)", "",
             "Spread = max / min - 1 of the per-process medians (ms). Pinned and unpinned processes alternate.", "",
             "| set | way | " + " | ".join(f"p{i + 1}{'*' if r['pinned'] else ''}" for i, r in enumerate(runs))
             + " | spread all | spread unpinned | spread pinned |",
             "|---|---|" + "---|" * len(runs) + "---|---|---|"]
    for key in runs[0]["sets"]:
        for way in WAYS:
            vals = [r["sets"][key].get(way) for r in runs]
            unp = [v for v, r in zip(vals, runs) if not r["pinned"]]
            pin = [v for v, r in zip(vals, runs) if r["pinned"]]
            cells = " | ".join("fail" if v is None else f"{v:.4g}" for v in vals)
            led = "" if way != "led" else ("" if all(r["sets"][key].get("led_ok") for r in runs) else " (not led)")
            lines.append(f"| {key} | {way}{led} | {cells} | {spread(vals):.1%} | {spread(unp):.1%} | {spread(pin):.1%} |")
    lines += ["", "Host loop (ms, before / after): " + ", ".join(
        f"p{i + 1}{'*' if r['pinned'] else ''} {r['host_ms']:.2f}/{r['host_ms_after']:.2f}" for i, r in enumerate(runs)), ""]
    lines += ["Host loop before each set (ms): " + "; ".join(
        f"p{i + 1}: " + " ".join(f"{row['host_ms']:.1f}" for row in r["sets"].values()) for i, r in enumerate(runs)), ""]
    text = "\n".join(lines)
    (out_dir / "lead_probe.md").write_text(text)
    (out_dir / "lead_probe.json").write_text(json.dumps(runs, indent=1))


def show(out_dir: Path) -> None:
    print((out_dir / "lead_probe.md").read_text())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=6)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="only the 4K forward sets")
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args()
    if args.quick:
        SETS[:] = [s for s in SETS if s[1] == 4096]
    if args.child:
        child(args.samples)
    else:
        try:
            parent(args.processes, args.samples, args.quick)
        finally:
            show(Path(os.environ.get("OUT", ".")))
