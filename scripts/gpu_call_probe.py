"""Where a whole attention call's time goes on one GPU: Python path, launch, kernel, synchronise.

For each callable (dense SDPA per backend, ImprovedDilatedAttention and its layers, BlockSparse)
at each length, in ms per call (batch 1, 12 heads, head_dim 64, bf16; shapes (batch, seq_len,
num_heads, head_dim)):
  synced     median of calls each followed by torch.cuda.synchronize (what asv's time_* measures)
  pipelined  200 calls back to back, one synchronise, divided by 200 (launch cost hidden behind kernels)
  cpu        median host time of one call without synchronise (Python path + launch)
  kernel     device time per call from torch.profiler, with the kernel names
plus a cProfile of the Improved module's host path. Output: stdout and $OUT/gpu_call_probe.md.

    python scripts/gpu_call_probe.py [--seq-lens 4096,32768] [--sections calls,host,cprofile,block_sparse]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attention import IMPLEMENTATIONS  # noqa: E402
from attention.dense import DenseAttention, available_sdpa_backends  # noqa: E402
from attention.spec import AttentionSpec  # noqa: E402

LOG: list[Path] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    if LOG:
        with LOG[0].open("a") as f:
            f.write(line + "\n")


def qkv(seq_len: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device="cuda").manual_seed(0)
    return tuple(torch.randn(1, seq_len, 12, 64, device="cuda", dtype=torch.bfloat16, generator=g)
                 for _ in range(3))


def synced_ms(fn, args, n: int = 50) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(*args)
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def pipelined_ms(fn, args, n: int = 200) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn(*args)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3 / n


def cpu_ms(fn, args, n: int = 50) -> float:
    samples = []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(*args)
        samples.append((time.perf_counter() - t0) * 1e3)
    torch.cuda.synchronize()
    return statistics.median(samples)


def kernel_ms(fn, args, n: int = 20) -> tuple[float, str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            fn(*args)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    total_us = sum(e.self_device_time_total for e in events)
    names = ", ".join(f"{e.key[:40]} x{e.count // n}" for e in
                      sorted(events, key=lambda e: -e.self_device_time_total)[:3])
    return total_us / n / 1e3, names


def callables(seq_len: int) -> dict:
    spec = AttentionSpec(seq_len=seq_len, num_heads=12, head_dim=64, dtype="bfloat16", device="cuda")
    out = {f"dense[{b}]": DenseAttention(backend=b)
           for b in ["auto", *available_sdpa_backends("cuda", torch.bfloat16)] if b != "math"}
    for name in ("ImprovedDilatedAttention", "BlockSparseAttention"):
        out[name] = IMPLEMENTATIONS[name].build(spec)
    from attention.kernels import dilated
    segs = spec.segments_for()
    out["kernels.dilated.attention"] = lambda q, k, v: dilated.attention(q, k, v, segs, (1, 2, 4))
    out["kernels.dilated.forward"] = lambda q, k, v: dilated.forward(q, k, v, segs, (1, 2, 4), False, 0.125)
    return out


def calls(seq_lens) -> None:
    say("## Per call (ms)")
    say("| seq_len | callable | synced | pipelined | cpu | kernel | kernels |")
    say("|---|---|---|---|---|---|---|")
    for n in seq_lens:
        args = qkv(n)
        with torch.no_grad():
            for name, fn in callables(n).items():
                try:
                    for _ in range(3):
                        fn(*args)
                    torch.cuda.synchronize()
                    k_ms, kernels = kernel_ms(fn, args)
                    say(f"| {n} | {name} | {synced_ms(fn, args):.4f} | {pipelined_ms(fn, args):.4f} | "
                        f"{cpu_ms(fn, args):.4f} | {k_ms:.4f} | {kernels} |")
                except Exception as exc:  # noqa: BLE001 - one failing callable must not hide the rest
                    say(f"| {n} | {name} | failed: {type(exc).__name__}: {str(exc)[:100]} | | | | |")


def cprofile_improved(seq_len: int) -> None:
    spec = AttentionSpec(seq_len=seq_len, num_heads=12, head_dim=64, dtype="bfloat16", device="cuda")
    fn = IMPLEMENTATIONS["ImprovedDilatedAttention"].build(spec)
    args = qkv(seq_len)
    with torch.no_grad():
        fn(*args)
        torch.cuda.synchronize()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(200):
            fn(*args)
        prof.disable()
        torch.cuda.synchronize()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
    say(f"## cProfile, 200 Improved calls at {seq_len} (host only)\n```\n{buf.getvalue()[-6000:]}\n```")


def host_ns(fn, n: int = 400) -> float:
    """Median host time of ``fn()`` in microseconds; the queue is drained every 50 calls."""
    samples = []
    for i in range(n):
        if i % 50 == 0:
            torch.cuda.synchronize()
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    torch.cuda.synchronize()
    return statistics.median(samples)


def cached_launch_checks(module, q, k, v, segs, seq_len: int) -> None:
    """Repeated calls (the cached launch from the second on) against another path's output."""
    from attention.block_sparse import BlockSparseAttention
    from attention.improved import ImprovedDilatedAttention

    ref = ImprovedDilatedAttention(segs, (1, 2, 4), backend="sdpa")(q, k, v).float()
    outs = [module(q, k, v) for _ in range(3)]
    report("Improved cached launch vs SDPA path", outs, ref)
    sparse = BlockSparseAttention(backend="auto")
    outs = [sparse(q, k, v) for _ in range(3)]
    ref = BlockSparseAttention(backend="gather", block_pattern=sparse.pattern_for(seq_len))(q, k, v)
    report(f"BlockSparse {sparse.last_backend} vs gather", outs, ref.float())


def report(label: str, outs: list[torch.Tensor], ref: torch.Tensor) -> None:
    err = max(((o.float() - ref).abs().max() / ref.abs().max()).item() for o in outs)
    same = all(torch.equal(o, outs[0]) for o in outs)
    say(f"{label}: max |err| / max |ref| {err:.2e}, repeat calls identical: {same} -> "
        f"{'PASS' if err < 2e-2 and same else 'FAIL'}")


def host_steps(seq_len: int) -> None:
    """Host microseconds of each step of the Improved forward's path, to see what is left to cut."""
    from triton.runtime import driver

    from attention.kernels import dilated

    spec = AttentionSpec(seq_len=seq_len, num_heads=12, head_dim=64, dtype="bfloat16", device="cuda")
    module = IMPLEMENTATIONS["ImprovedDilatedAttention"].build(spec)
    q, k, v = qkv(seq_len)
    segs = spec.segments_for()
    with torch.no_grad():
        module(q, k, v)
        plan = dilated.plan(q, k, v, segs, (1, 2, 4))
        plan(q, k, v)  # binds the compiled kernel
        torch.cuda.synchronize()
        dev = q.device
        steps = {
            "torch.empty_like(q, contiguous_format)": lambda: torch.empty_like(
                q, memory_format=torch.contiguous_format),
            "torch.is_grad_enabled()": torch.is_grad_enabled,
            "nothing (lambda)": lambda: None,
            "torch.empty(shape, device, dtype)": lambda: torch.empty(q.shape, device=dev, dtype=q.dtype),
            "q.new_empty(shape)": lambda: q.new_empty(q.shape),
            "torch.empty_like(q)": lambda: torch.empty_like(q),
            "triton get_current_device+stream": lambda: driver.active.get_current_stream(
                driver.active.get_current_device()),
            "torch._C._cuda_getCurrentRawStream(idx)": lambda: torch._C._cuda_getCurrentRawStream(0),
            "q.data_ptr() % 16 x3": lambda: (q.data_ptr() % 16, k.data_ptr() % 16, v.data_ptr() % 16),
            "signature key (shapes, strides, dtypes, devices)": lambda: hash((
                q.shape, k.shape, v.shape, q.dtype, k.dtype, v.dtype, q.device, k.device, v.device,
                q.stride(), k.stride(), v.stride())),
            "plan.forward(q, k, v) (allocate + launch)": lambda: plan.forward(q, k, v),
            "plan(q, k, v)": lambda: plan(q, k, v),
            "dilated.forward (plan cache)": lambda: dilated.forward(q, k, v, segs, (1, 2, 4)),
            "dilated.attention (plan cache)": lambda: dilated.attention(q, k, v, segs, (1, 2, 4)),
            "module.forward": lambda: module.forward(q, k, v),
            "module(q, k, v)": lambda: module(q, k, v),
        }
        cached_launch_checks(module, q, k, v, segs, seq_len)
        say(f"## Host steps of the Improved forward at {seq_len} (median us, no synchronise)")
        say("| step | us |")
        say("|---|---|")
        for name, fn in steps.items():
            try:
                say(f"| {name} | {host_ns(fn):.1f} |")
            except Exception as exc:  # noqa: BLE001 - report and go on
                say(f"| {name} | failed: {type(exc).__name__}: {str(exc)[:80]} |")


def block_sparse(seq_len: int) -> None:
    """The Triton block-sparse kernel: bf16 correctness vs float32 masked SDPA, then a tile sweep."""
    import torch.nn.functional as F
    from triton.testing import do_bench

    from attention.block_sparse import BlockPattern
    from attention.kernels import KernelConfig
    from attention.kernels import block_sparse as bs

    say("## Triton block-sparse: correctness (max |err| / max |ref|, bf16 vs float32 masked SDPA)")
    for causal in (False, True):
        for packed in (False, True):
            pattern = BlockPattern.make(4096, 128, "local_dilated_global", 0.9, causal)
            g = torch.Generator(device="cuda").manual_seed(1)
            if packed:
                qkv_packed = torch.randn(2, 4096, 3, 12, 64, device="cuda", dtype=torch.bfloat16, generator=g)
                q, k, v = qkv_packed.unbind(2)
            else:
                q, k, v = (torch.randn(2, 4096, 12, 64, device="cuda", dtype=torch.bfloat16, generator=g)
                           for _ in range(3))
            with torch.no_grad():
                out = bs.forward(q, k, v, pattern)
                mask = pattern.token_mask("cuda")
                ref = F.scaled_dot_product_attention(*(t.float().transpose(1, 2) for t in (q, k, v)),
                                                     attn_mask=mask).transpose(1, 2)
            err = ((out.float() - ref).abs().max() / ref.abs().max()).item()
            say(f"causal={causal} packed={packed} sparsity={pattern.sparsity():.3f}: {err:.2e} "
                f"{'PASS' if err < 2e-2 else 'FAIL'}")
    say(f"## Triton block-sparse tile sweep at {seq_len} (do_bench median ms, not causal)")
    pattern = BlockPattern.make(seq_len, 128, "local_dilated_global", 0.9, False)
    q, k, v = qkv(seq_len)
    for cfg in [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4),
                (64, 128, 4, 3), (128, 64, 4, 4), (64, 64, 4, 4)]:
        try:
            ms = do_bench(lambda: bs.forward(q, k, v, pattern, config=KernelConfig(*cfg)),
                          warmup=25, rep=100, return_mode="median")
            say(f"{cfg}: {ms:.4f} ms")
        except Exception as exc:  # noqa: BLE001 - a tile that does not fit is just reported
            say(f"{cfg}: failed {type(exc).__name__}: {str(exc)[:80]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", default="4096,32768")
    parser.add_argument("--sections", default="calls,cprofile")
    args = parser.parse_args()
    out = Path(os.environ.get("OUT", "."))
    LOG.append(out / "gpu_call_probe.md")
    say(f"# gpu_call_probe: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    seq_lens = [int(x) for x in args.seq_lens.split(",")]
    sections = args.sections.split(",")
    if "calls" in sections:
        calls(seq_lens)
    if "host" in sections:
        host_steps(seq_lens[0])
    if "cprofile" in sections:
        cprofile_improved(seq_lens[0])
    if "block_sparse" in sections:
        block_sparse(seq_lens[-1])


if __name__ == "__main__":
    main()
