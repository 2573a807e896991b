"""Quick CPU check (not a unit test): Improved vs plain dilated attention time, and peak memory.

Run: ``python scripts/measure_cpu.py [--heads 12] [--repeats 5] [--block-sparse]``. Shapes are
``(batch, seq_len, num_heads, head_dim)``; times in ms (median), memory in MiB: growth of the peak
RSS of a fresh process during one call, over its RSS with the inputs allocated (Linux only).
The asv suite measures the same things per commit; this is a one-off look without asv.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find the attention package

from attention.block_sparse import BlockSparseAttention  # noqa: E402
from attention.dilated import DilatedAttention  # noqa: E402
from attention.improved import ImprovedDilatedAttention  # noqa: E402

SEGMENTS, RATES = (2048, 4096, 8192), (1, 2, 4)


def _inputs(seq_len: int, heads: int, grad: bool = False):
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(1, seq_len, heads, 64, generator=gen).requires_grad_(grad) for _ in range(3))


def _segments(seq_len: int) -> tuple[int, ...]:
    return tuple(min(w, seq_len) for w in SEGMENTS)


def time_ms(module, seq_len: int, heads: int, repeats: int) -> float:
    q, k, v = _inputs(seq_len, heads)
    with torch.no_grad():
        module(q, k, v)  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(q, k, v)
            samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _rss_peak_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _peak_child(seq_len: int, heads: int, backward: bool, result) -> None:
    q, k, v = _inputs(seq_len, heads, grad=backward)
    module = ImprovedDilatedAttention(_segments(seq_len), RATES)
    small = _inputs(1024, heads, grad=backward)  # warm-up: thread pools and kernels load once
    out = ImprovedDilatedAttention(_segments(1024), RATES)(*small)
    if backward:
        out.sum().backward()
    del small, out
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak-RSS mark so importing torch does not count
    before = psutil.Process().memory_info().rss
    if backward:
        module(q, k, v).sum().backward()
    else:
        with torch.no_grad():
            module(q, k, v)
    result.put((_rss_peak_bytes() - before) / 2**20)


def peak_mib(seq_len: int, heads: int, backward: bool) -> float:
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(seq_len, heads, backward, result))
    proc.start()
    value = result.get(timeout=600)
    proc.join()
    return value


def block_sparse_ms(backend: str, seq_len: int, heads: int, repeats: int) -> float:
    module = BlockSparseAttention(block_size=128, sparsity=0.9, backend=backend)
    return time_ms(module, seq_len, heads, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=12, help="must be divisible by 3 groups")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block-sparse", action="store_true",
                        help="also time BlockSparseAttention's flex (eager on CPU) and gather paths")
    args = parser.parse_args()
    n = 8192
    plain = time_ms(DilatedAttention(SEGMENTS, RATES), n, args.heads, args.repeats)
    fast = time_ms(ImprovedDilatedAttention(SEGMENTS, RATES), n, args.heads, args.repeats)
    print(f"8K tokens, fp32, batch 1, {args.heads} heads, head_dim 64, forward: "
          f"DilatedAttention {plain:.1f} ms, ImprovedDilatedAttention {fast:.1f} ms ({plain / fast:.1f}x)")
    for n in (2048, 4096, 8192, 16384):
        print(f"Improved peak memory at {n:>6} tokens: forward {peak_mib(n, args.heads, False):7.1f} MiB, "
              f"forward+backward {peak_mib(n, args.heads, True):7.1f} MiB")
    if args.block_sparse:
        for n in (2048, 4096):
            gather = block_sparse_ms("gather", n, args.heads, args.repeats)
            flex = block_sparse_ms("flex", n, args.heads, args.repeats)
            print(f"BlockSparse (block 128, ~90% sparse) at {n} tokens, forward: gather {gather:.1f} ms, "
                  f"flex eager {flex:.1f} ms")


if __name__ == "__main__":
    main()
