"""Check and time the Triton dilated-attention kernels on one GPU; write a table to $OUT (or --out).

Sections (all by default): correctness vs a float32 SDPA-based dilated reference, a block-size
sweep at the sweep length, the speed table (dense flash SDPA vs the kernel, forward and
forward+backward, ms median over do_bench runs, effective TFLOP/s), and the largest forward
(peak memory vs the bytes of q, k, v and out). Shapes are (batch, seq_len, num_heads, head_dim).

    python scripts/gpu_kernel_probe.py                     # everything, results in $OUT
    python scripts/gpu_kernel_probe.py --sections table    # only the speed table
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import triton  # noqa: E402
from triton.testing import do_bench  # noqa: E402

from attention.kernels import KernelConfig, dilated  # noqa: E402
from attention.dense import DenseAttention  # noqa: E402
from attention.spec import AttentionSpec, attention_flops, dense_pairs, dilated_pairs  # noqa: E402

SEGMENTS, RATES = (2048, 4096, 8192), (1, 2, 4)
HEADS, HEAD_DIM = 12, 64
LOG: list[Path] = []  # the markdown file, appended line by line so a timeout keeps what ran


def say(line: str = "") -> None:
    print(line, flush=True)
    if LOG:
        with LOG[0].open("a") as f:
            f.write(line + "\n")


def capped(seq_len: int, segments=SEGMENTS) -> tuple[int, ...]:
    return tuple(min(w, seq_len) for w in segments)


def sdpa_dilated_reference(q, k, v, segments, rates, causal=False):
    """Float32 dilated attention: per head, gather its dilated rows, one SDPA call, scatter back."""
    b, n, h, d = q.shape
    per_group = h // len(segments)
    idx = torch.arange(n, device=q.device)
    heads = []
    for head in range(h):
        w, r = segments[head // per_group], rates[head // per_group]
        rows = idx[(idx % w) % r == head % r]
        n_seg = n // w
        parts = [t[:, rows, head].float().reshape(b, n_seg, -1, d) for t in (q, k, v)]
        res = F.scaled_dot_product_attention(*parts, is_causal=causal).reshape(b, -1, d)
        heads.append(torch.zeros(b, n, d, device=q.device).index_copy(1, rows, res))
    return torch.stack(heads, dim=2)


def check_case(name, shape, segments, rates, causal, dtype, packed=False):
    torch.manual_seed(0)
    b, n, h, d = shape
    if packed:
        leaf = torch.randn(b, n, 3, h, d, device="cuda", dtype=dtype, requires_grad=True)
        q, k, v = leaf[:, :, 0], leaf[:, :, 1], leaf[:, :, 2]
        leaves = (leaf,)
    else:
        leaves = tuple(torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True)
                       for _ in range(3))
        q, k, v = leaves
    out = dilated.attention(q, k, v, segments, rates, causal=causal)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, leaves, g)
    ref_leaves = tuple(t.detach().float().requires_grad_() for t in leaves)
    rq, rk, rv = ((ref_leaves[0][:, :, i] for i in range(3)) if packed else ref_leaves)
    ref = sdpa_dilated_reference(rq, rk, rv, segments, rates, causal)
    ref_grads = torch.autograd.grad(ref, ref_leaves, g.float())
    zeros_exact = bool(torch.all(out.detach()[ref.detach() == 0] == 0))
    errs = [(out.float() - ref).abs().max().item() / ref.abs().max().item()]
    errs += [(a.float() - r).abs().max().item() / r.abs().max().item()
             for a, r in zip(grads, ref_grads)]
    limit = 2e-2 if dtype == torch.bfloat16 else 5e-3
    ok = all(e < limit for e in errs) and zeros_exact
    say(f"| {name} | {tuple(shape)} | {segments}/{rates} | {causal} | {str(dtype)[6:]} | "
        + " | ".join(f"{e:.1e}" for e in errs) + (" | " * (4 - len(errs)))
        + f" | {zeros_exact} | {'PASS' if ok else 'FAIL'} |")
    return ok


def correctness() -> bool:
    say("## Correctness (max |err| / max |ref| vs float32 SDPA-based dilated reference)")
    say("| case | shape | pattern | causal | dtype | out | dq | dk | dv | zeros exact | result |")
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for causal, dtype in ((False, torch.bfloat16), (True, torch.bfloat16), (False, torch.float16)):
        ok &= check_case("default", (2, 8192, 12, 64), SEGMENTS, RATES, causal, dtype)
    for d in (16, 128):
        ok &= check_case(f"d{d}", (1, 4096, 6, d), (1024, 2048, 4096), RATES, False, torch.bfloat16)
    ok &= check_case("ragged+packed", (2, 1920, 4, 64), (96, 480), (1, 3), True, torch.bfloat16,
                     packed=True)
    say(f"correctness overall: {'PASS' if ok else 'FAIL'}")
    return ok


def qkv(seq_len, batch=1, dtype=torch.bfloat16, grad=False):
    return [torch.randn(batch, seq_len, HEADS, HEAD_DIM, device="cuda", dtype=dtype,
                        requires_grad=grad) for _ in range(3)]


def bench(fn, grad_to_none=None) -> float:
    return do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none, return_mode="median")


def sweep(seq_len: int) -> None:
    """Time candidate tiles per kernel at ``seq_len``; install the fastest into the module tables."""
    say(f"## Block-size sweep at {seq_len} tokens (bf16, d={HEAD_DIM}); ms median")
    segs = capped(seq_len)
    scale = HEAD_DIM ** -0.5
    q, k, v = qkv(seq_len)
    fwd = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4)]
    best = None
    for cfg in map(lambda c: KernelConfig(*c), fwd):
        try:
            ms = bench(lambda: dilated.forward(q, k, v, segs, RATES, False, scale, config=cfg))
        except Exception as exc:  # noqa: BLE001 - a tile that does not fit is just skipped
            say(f"fwd {cfg}: failed ({type(exc).__name__}: {str(exc)[:80]})")
            continue
        say(f"fwd {cfg}: {ms:.4f}")
        best = min(best or (ms, cfg), (ms, cfg), key=lambda x: x[0])
    dilated.FWD_CONFIGS[HEAD_DIM] = best[1]
    say(f"fwd best: {best[1]} {best[0]:.4f} ms")
    memset_ms = bench(lambda: dilated.forward(q, k, v, segs, RATES, False, scale, config=best[1],
                                              zero_fill=False))
    say(f"fwd best with torch.zeros_like output instead of in-kernel zero fill: {memset_ms:.4f} ms")

    out, lse = dilated.forward(q, k, v, segs, RATES, False, scale, store_lse=True)
    dout = torch.randn_like(out)
    # (block_m = streamed tile, block_n = rows a program owns, warps, stages)
    bwd = [(64, 64, 4, 3), (32, 64, 4, 3), (64, 64, 8, 3), (32, 128, 4, 3), (64, 128, 8, 2),
           (16, 64, 4, 4)]
    best = None
    for cfg in map(lambda c: KernelConfig(*c), bwd):
        try:
            ms = bench(lambda: dilated.backward(q, k, v, out, lse, dout, segs, RATES, False, scale,
                                                config=cfg))
        except Exception as exc:  # noqa: BLE001
            say(f"bwd {cfg}: failed ({type(exc).__name__}: {str(exc)[:80]})")
            continue
        say(f"bwd {cfg}: {ms:.4f}")
        best = min(best or (ms, cfg), (ms, cfg), key=lambda x: x[0])
    dilated.BWD_CONFIGS[HEAD_DIM] = best[1]
    say(f"bwd best: {best[1]} {best[0]:.4f} ms")


def diagnose(seq_len: int) -> None:
    """Where fwd+bwd time goes at ``seq_len``: CPU cost per call vs GPU kernel times."""
    say(f"## Diagnosis at {seq_len} tokens (bf16, d={HEAD_DIM})")
    segs = capped(seq_len)
    q, k, v = qkv(seq_len, grad=True)
    g = torch.randn_like(q)
    dense = DenseAttention(backend="flash")
    calls = {
        "kernel fwd (no grad)": lambda: dilated.attention(q.detach(), k.detach(),
                                                                    v.detach(), segs, RATES),
        "kernel fwd (grad, saves lse)": lambda: dilated.attention(q, k, v, segs, RATES),
        "kernel fwd+bwd": lambda: dilated.attention(q, k, v, segs, RATES).backward(g),
        "dense fwd+bwd": lambda: dense(q, k, v).backward(g),
    }
    scale = HEAD_DIM ** -0.5
    out, lse = dilated.forward(q.detach(), k.detach(), v.detach(), segs, RATES, False, scale,
                               store_lse=True)
    calls["kernel bwd only (dilated.backward)"] = lambda: dilated.backward(
        q.detach(), k.detach(), v.detach(), out, lse, g.contiguous(), segs, RATES, False, scale)
    for name, fn in calls.items():
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            fn()
        cpu_ms = (time.perf_counter() - t0) / 20 * 1e3
        torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - t0) / 20 * 1e3
        say(f"{name}: CPU enqueue {cpu_ms:.3f} ms/call, wall incl. sync {wall_ms:.3f} ms/call, "
            f"do_bench {bench(fn, [q, k, v]):.4f} ms")
    # Python-level profile of the wrapper in whichever thread runs it (autograd runs backward
    # in its own thread, which the main-thread profiler would not see).
    import cProfile
    import io
    import pstats
    prof_py = cProfile.Profile()
    inner_ms = []
    orig_backward = dilated.DilatedPlan.backward

    def timed_backward(*a, **kw):
        t0 = time.perf_counter()
        prof_py.enable()
        try:
            return orig_backward(*a, **kw)
        finally:
            prof_py.disable()
            inner_ms.append((time.perf_counter() - t0) * 1e3)

    dilated.DilatedPlan.backward = timed_backward
    for _ in range(20):
        calls["kernel fwd+bwd"]()
    torch.cuda.synchronize()
    dilated.DilatedPlan.backward = orig_backward
    say(f"DilatedPlan.backward inside autograd: {sorted(inner_ms)[10]:.3f} ms median CPU per call")
    text = io.StringIO()
    pstats.Stats(prof_py, stream=text).sort_stats("tottime").print_stats(12)
    say("```")
    for line in text.getvalue().splitlines()[-20:]:
        say(line)
    say("```")
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            calls["kernel fwd+bwd"]()
        torch.cuda.synchronize()
    say("```")
    for line in prof.key_averages().table(sort_by="self_device_time_total", row_limit=12).splitlines():
        say(line)
    say("```")


def table(lengths, causal_too=True) -> list[dict]:
    say("## Speed (batch 1, 12 heads, d=64, bf16; segments (2048,4096,8192) capped, rates (1,2,4))")
    say("| seq_len | causal | dense fwd ms | kernel fwd ms | fwd speed-up | kernel TFLOP/s | "
        "dense fwd+bwd ms | kernel fwd+bwd ms | fwd+bwd speed-up |")
    say("|---|---|---|---|---|---|---|---|---|")
    dense = DenseAttention(backend="flash")
    rows = []
    for causal in ((False, True) if causal_too else (False,)):
        for n in lengths:
            if causal and n != lengths[-1]:
                continue
            spec = AttentionSpec(seq_len=n, num_heads=HEADS, head_dim=HEAD_DIM, causal=causal)
            segs = capped(n)
            q, k, v = qkv(n, grad=True)
            with torch.no_grad():
                d_f = bench(lambda: dense(q, k, v, is_causal=causal))
                k_f = bench(lambda: dilated.attention(q, k, v, segs, RATES, causal))
            g = torch.randn_like(q)
            d_b = bench(lambda: dense(q, k, v, is_causal=causal).backward(g), [q, k, v])
            k_b = bench(lambda: dilated.attention(q, k, v, segs, RATES, causal)
                        .backward(g), [q, k, v])
            tflops = attention_flops(dilated_pairs(spec), spec) / (k_f * 1e-3) / 1e12
            row = dict(seq_len=n, causal=causal, dense_fwd_ms=d_f, kernel_fwd_ms=k_f,
                       dense_fwdbwd_ms=d_b, kernel_fwdbwd_ms=k_b, kernel_fwd_tflops=tflops,
                       dense_fwd_tflops=attention_flops(dense_pairs(spec), spec) / (d_f * 1e-3) / 1e12)
            rows.append(row)
            say(f"| {n} | {causal} | {d_f:.4f} | {k_f:.4f} | {d_f / k_f:.1f}x | {tflops:.0f} | "
                f"{d_b:.3f} | {k_b:.4f} | {d_b / k_b:.1f}x |")
            del q, k, v, g
            torch.cuda.empty_cache()
    return rows


def largest(mega_tokens) -> list[dict]:
    say("## Largest forward (batch 1, 12 heads, d=64, bf16, no grad)")
    say("| tokens | q+k+v+out GiB | peak GiB | peak / (q+k+v+out) | fwd ms | result |")
    say("|---|---|---|---|---|---|")
    rows = []
    for m in mega_tokens:
        n = m * 2**20
        tensors_gib = 4 * n * HEADS * HEAD_DIM * 2 / 2**30
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            q, k, v = qkv(n)
            with torch.no_grad():
                out = dilated.attention(q, k, v, SEGMENTS, RATES)
                torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                del out
                start.record()
                out = dilated.attention(q, k, v, SEGMENTS, RATES)
                end.record()
                torch.cuda.synchronize()
            ms = start.elapsed_time(end)
            peak = torch.cuda.max_memory_allocated() / 2**30
            finite = bool(torch.isfinite(out[:, :: n // 4096]).all())
            say(f"| {m}M ({n}) | {tensors_gib:.1f} | {peak:.1f} | {peak / tensors_gib:.3f} | "
                f"{ms:.1f} | {'ok' if finite else 'NON-FINITE'} |")
            rows.append(dict(tokens=n, tensors_gib=tensors_gib, peak_gib=peak, fwd_ms=ms, ok=finite))
            del q, k, v, out
        except torch.cuda.OutOfMemoryError:
            say(f"| {m}M ({n}) | {tensors_gib:.1f} | - | - | - | out of memory |")
            rows.append(dict(tokens=n, tensors_gib=tensors_gib, oom=True))
            q = k = v = out = None
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="correctness,sweep,table,largest",
                        help="comma-separated: correctness, sweep, diag, table, largest")
    parser.add_argument("--lengths", default="4096,8192,16384,32768")
    parser.add_argument("--sweep-len", type=int, default=32768)
    parser.add_argument("--largest", default="8,12,16", help="sizes in Mi tokens")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_kernel_probe needs a CUDA GPU")
    sections = set(args.sections.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    LOG.append(out / "gpu_kernel_probe.md")
    LOG[0].write_text("")
    say(f"# GPU kernel probe: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"triton {triton.__version__}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "triton": triton.__version__}
    if "correctness" in sections:
        result["correct"] = correctness()
    if "sweep" in sections:
        sweep(args.sweep_len)
    result["configs"] = {name: {d: vars(c) for d, c in table_.items()} for name, table_ in
                         (("fwd", dilated.FWD_CONFIGS), ("bwd", dilated.BWD_CONFIGS))}
    say(f"configs in use (d={HEAD_DIM}): fwd {dilated.FWD_CONFIGS[HEAD_DIM]}, bwd {dilated.BWD_CONFIGS[HEAD_DIM]}")
    if "diag" in sections:
        diagnose(4096)
    if "table" in sections:
        result["table"] = table([int(x) for x in args.lengths.split(",")])
    if "largest" in sections:
        result["largest"] = largest([int(x) for x in args.largest.split(",")])
    (out / "gpu_kernel_probe.json").write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
