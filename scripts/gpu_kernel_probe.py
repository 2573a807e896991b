"""Check and time the Triton kernels on one GPU in one run; write a table to $OUT (or --out).

Shapes are (batch, seq_len, num_heads, head_dim); the headline shape is batch 1, 12 heads,
head_dim 64, bf16, segments (2048, 4096, 8192) capped at seq_len, rates (1, 2, 4). Times are ms:
``triton.testing.do_bench`` medians (CUDA events around each call) and, where said, "synced"
(back-to-back calls each followed by a synchronise, host path included, as asv's time_* does).
Effective TFLOP/s count only the query-key pairs a pattern computes (``attention.spec``).

Sections (``--sections``, run in the order given; by default):
  precompile   compile every swept kernel variant in parallel worker processes first (Triton's
               disk cache), so the timed sections pay no compile time
  correctness  bf16/fp16 kernels against a float64 reference (forward and gradients)
  compare      the package against a pre-refactor copy (``--old-package``), side by side
  sweep        tiles / warps / stages of the dilated forward and backward per length, causal and
               not, against flash and cuDNN SDPA; each config's error against float64 at 4K
  largest      LargestFit's search (benchmarks/bench_capacity.py) for ImprovedDilatedAttention
  block_sparse the block-sparse kernel: correctness, tile sweep at 90% sparsity vs dense
  diag         host/GPU split of forward+backward at 4K (not in the default set)

    python scripts/gpu_kernel_probe.py                          # everything, results in $OUT
    python scripts/gpu_kernel_probe.py --sections sweep --lengths 4096,32768
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import triton  # noqa: E402
from triton.testing import do_bench  # noqa: E402

from attention.block_sparse import BlockPattern, BlockSparseAttention  # noqa: E402
from attention.dense import DenseAttention  # noqa: E402
from attention.improved import ImprovedDilatedAttention  # noqa: E402
from attention.kernels import KernelConfig  # noqa: E402
from attention.kernels import block_sparse as bs  # noqa: E402
from attention.kernels import dilated  # noqa: E402
from attention.spec import AttentionSpec, attention_flops, dense_pairs, dilated_pairs  # noqa: E402

SEGMENTS, RATES = (2048, 4096, 8192), (1, 2, 4)
HEADS, HEAD_DIM = 12, 64
# --dry-run (with TRITON_INTERPRET=1) runs every section's code on CPU at toy sizes, to catch
# mistakes before a GPU run: float32 (the interpreter's bf16 dot is wrong), tiny shapes.
DRY = "--dry-run" in sys.argv
DEV, DTYPE, DENSE = "cuda", torch.bfloat16, ("flash", "cudnn")
COMPILE_LEN = 4096
if DRY:
    SEGMENTS, HEADS, HEAD_DIM, COMPILE_LEN = (64, 128, 256), 3, 16, 256
    DEV, DTYPE, DENSE = "cpu", torch.float32, ("auto", "math")
LOG: list[Path] = []  # the markdown file, appended line by line so a timeout keeps what ran
START = time.time()

# (block_m, block_n, num_warps, num_stages). Forward: block_m queries per program, block_n keys
# per step. Backward: block_n rows a program owns, block_m the tile streamed past them.
FWD_SWEEP = [(64, 64, 4, 3), (64, 64, 4, 4), (64, 128, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3),
             (128, 64, 8, 4), (128, 64, 8, 2), (128, 64, 4, 4), (128, 128, 4, 3), (128, 32, 4, 4)]
BWD_SWEEP = [(32, 128, 4, 3), (64, 64, 4, 3), (32, 64, 4, 3), (64, 128, 8, 3), (16, 128, 4, 3),
             (32, 128, 8, 3), (64, 64, 4, 2)]
BS_SWEEP = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 4),
            (64, 128, 4, 3), (128, 64, 4, 4), (64, 64, 4, 4), (128, 128, 8, 2), (128, 64, 8, 2)]


def say(line: str = "") -> None:
    print(line, flush=True)
    if LOG:
        with LOG[0].open("a") as f:
            f.write(line + "\n")


def elapsed() -> float:
    return time.time() - START


def capped(seq_len: int, segments=SEGMENTS) -> tuple[int, ...]:
    return tuple(min(w, seq_len) for w in segments)


def fwd_ok(cfg: tuple, causal: bool) -> bool:
    return not causal or cfg[0] % cfg[1] == 0


def qkv(seq_len, batch=1, dtype=None, grad=False, seed=0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    return [torch.randn(batch, seq_len, HEADS, HEAD_DIM, device=DEV, dtype=dtype or DTYPE,
                        generator=g).requires_grad_(grad) for _ in range(3)]


def sync() -> None:
    if not DRY:
        torch.cuda.synchronize()


def empty_cache() -> None:
    if not DRY:
        torch.cuda.empty_cache()


def bench(fn, grad_to_none=None, warmup=25, rep=100) -> float:
    if DRY:
        fn()
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    return do_bench(fn, warmup=warmup, rep=rep, grad_to_none=grad_to_none, return_mode="median")


def synced(fn, fill_ms: float = 10.0, samples: int = 15) -> float:
    """asv-like: each sample times back-to-back calls, each followed by a synchronise, that fill
    ``fill_ms``; the median sample's mean per call."""
    if DRY:
        samples, fill_ms = 1, 0.0
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    one = max((time.perf_counter() - t0) * 1e3, 1e-3)
    number = max(1, int(fill_ms / one))
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
            sync()
        out.append((time.perf_counter() - t0) * 1e3 / number)
    return statistics.median(out)


def fwd_bwd(fn, q, k, v, g):
    return lambda: torch.autograd.grad(fn(q, k, v), (q, k, v), g)


def spec_of(n: int, causal: bool) -> AttentionSpec:
    return AttentionSpec(seq_len=n, num_heads=HEADS, head_dim=HEAD_DIM, causal=causal)


def tflops(pairs: float, spec: AttentionSpec, ms: float, backward: bool = False) -> float:
    return attention_flops(pairs, spec, backward=backward) / (ms * 1e-3) / 1e12


# ---------------------------------------------------------------------------------------------
# Precompile

def _compile_jobs(jobs: list[tuple]) -> int:
    """Worker: run each (kind, config, causal) once at 4K tokens, which compiles the same kernel
    variants the sweep uses at every length (same constexprs and integer divisibility)."""
    if not DRY:
        torch.cuda.init()
    n = COMPILE_LEN
    segs = capped(n)
    done = 0
    for kind, cfg, causal in jobs:
        try:
            q, k, v = qkv(n)
            if kind == "fwd":
                dilated.forward(q, k, v, segs, RATES, causal, config=KernelConfig(*cfg))
                dilated.forward(q, k, v, segs, RATES, causal, config=KernelConfig(*cfg), store_lse=True)
            elif kind == "bwd":
                out, lse = dilated.forward(q, k, v, segs, RATES, causal, store_lse=True)
                dilated.backward(q, k, v, out, lse, torch.randn_like(out), segs, RATES, causal,
                                 config=KernelConfig(*cfg))
            elif kind == "bs":
                pattern = BlockPattern.make(n, 128, "local_dilated_global", 0.9, causal)
                bs.forward(q, k, v, pattern, config=KernelConfig(*cfg))
            elif kind == "old":
                old = importlib.import_module(cfg)
                importlib.import_module(f"{cfg}.improved")
                importlib.import_module(f"{cfg}.block_sparse")
                qg = [t.requires_grad_() for t in qkv(n)]
                out = old.improved.ImprovedDilatedAttention(segs, RATES, causal=causal)(*qg)
                out.sum().backward()
                with torch.no_grad():
                    old.improved.ImprovedDilatedAttention(segs, RATES, causal=causal)(q, k, v)
                    old.block_sparse.BlockSparseAttention(block_size=128, sparsity=0.9,
                                                          causal=causal)(q, k, v)
            elif kind == "new":
                qg = [t.requires_grad_() for t in qkv(n)]
                ImprovedDilatedAttention(segs, RATES, causal=causal)(*qg).sum().backward()
                with torch.no_grad():
                    ImprovedDilatedAttention(segs, RATES, causal=causal)(q, k, v)
                    BlockSparseAttention(block_size=128, sparsity=0.9, causal=causal)(q, k, v)
            sync()
            done += 1
        except Exception as exc:  # noqa: BLE001 - a variant that fails is reported by its section
            print(f"precompile {kind} {cfg} causal={causal}: {type(exc).__name__}: {str(exc)[:120]}",
                  flush=True)
    return done


def precompile(old_package: str | None, workers: int, sections: list[str]) -> None:
    import multiprocessing as mp

    jobs = []
    if "sweep" in sections:
        jobs += [("fwd", c, causal) for causal in (False, True) for c in FWD_SWEEP if fwd_ok(c, causal)]
        jobs += [("bwd", c, causal) for causal in (False, True) for c in BWD_SWEEP]
    if "block_sparse" in sections:
        jobs += [("bs", c, False) for c in BS_SWEEP]
    jobs += [("new", None, causal) for causal in (False, True)]
    if old_package:
        jobs += [("old", f"{old_package}", causal) for causal in (False, True)]
    # Costly backward compiles first, spread round-robin over the workers.
    jobs.sort(key=lambda j: j[0] != "bwd")
    shards = [jobs[i::workers] for i in range(workers)]
    t0 = time.time()
    with mp.get_context("spawn").Pool(workers) as pool:
        done = sum(pool.map(_compile_jobs, shards))
    say(f"precompiled {done}/{len(jobs)} kernel sets in {workers} processes: {time.time() - t0:.0f} s")


# ---------------------------------------------------------------------------------------------
# Correctness

def dilated_reference(q, k, v, segments, rates, causal=False):
    """Float64 dilated attention: per head, gather its dilated rows, one SDPA call, scatter back."""
    b, n, h, d = q.shape
    per_group = h // len(segments)
    idx = torch.arange(n, device=q.device)
    heads = []
    for head in range(h):
        w, r = segments[head // per_group], rates[head // per_group]
        rows = idx[(idx % w) % r == head % r]
        n_seg = n // w
        parts = [t[:, rows, head].double().reshape(b, n_seg, -1, d) for t in (q, k, v)]
        res = F.scaled_dot_product_attention(*parts, is_causal=causal).reshape(b, -1, d)
        heads.append(torch.zeros(b, n, d, device=q.device, dtype=torch.float64).index_copy(1, rows, res))
    return torch.stack(heads, dim=2)


def rel_err(a, ref) -> float:
    return ((a.double() - ref).abs().max() / ref.abs().max()).item()


def check_case(name, shape, segments, rates, causal, dtype, packed=False) -> bool:
    torch.manual_seed(0)
    b, n, h, d = shape
    if packed:
        leaf = torch.randn(b, n, 3, h, d, device=DEV, dtype=dtype, requires_grad=True)
        q, k, v = leaf[:, :, 0], leaf[:, :, 1], leaf[:, :, 2]
        leaves = (leaf,)
    else:
        leaves = tuple(torch.randn(shape, device=DEV, dtype=dtype, requires_grad=True)
                       for _ in range(3))
        q, k, v = leaves
    out = dilated.attention(q, k, v, segments, rates, causal=causal)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, leaves, g)
    ref_leaves = tuple(t.detach().double().requires_grad_() for t in leaves)
    rq, rk, rv = ((ref_leaves[0][:, :, i] for i in range(3)) if packed else ref_leaves)
    ref = dilated_reference(rq, rk, rv, segments, rates, causal)
    ref_grads = torch.autograd.grad(ref, ref_leaves, g.double())
    zeros_exact = bool(torch.all(out.detach()[ref.detach() == 0] == 0))
    errs = [rel_err(out, ref)] + [rel_err(a, r) for a, r in zip(grads, ref_grads)]
    ok = errs[0] <= 0.015 and all(e < 2e-2 for e in errs[1:]) and zeros_exact
    say(f"| {name} | {tuple(shape)} | {segments}/{rates} | {causal} | {str(dtype)[6:]} | "
        + " | ".join(f"{e:.1e}" for e in errs) + (" | " * (4 - len(errs)))
        + f" | {zeros_exact} | {'PASS' if ok else 'FAIL'} |")
    return ok


def correctness() -> bool:
    say("## Correctness (max |err| / max |ref| vs a float64 reference; forward <= 0.015, grads < 0.02)")
    say("| case | shape | pattern | causal | dtype | out | dq | dk | dv | zeros exact | result |")
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    if DRY:
        ok &= check_case("default", (1, 256, 3, 16), SEGMENTS, RATES, True, DTYPE)
        ok &= check_case("ragged+packed", (1, 120, 4, 16), (24, 40), (1, 3), True, DTYPE, packed=True)
        return ok
    for causal, dtype in ((False, torch.bfloat16), (True, torch.bfloat16), (False, torch.float16)):
        ok &= check_case("default", (2, 8192, 12, 64), SEGMENTS, RATES, causal, dtype)
    for d in (16, 128):
        ok &= check_case(f"d{d}", (1, 4096, 6, d), (1024, 2048, 4096), RATES, False, torch.bfloat16)
    ok &= check_case("ragged+packed", (2, 1920, 4, 64), (96, 480), (1, 3), True, torch.bfloat16,
                     packed=True)
    say(f"correctness overall: {'PASS' if ok else 'FAIL'}")
    return ok


# ---------------------------------------------------------------------------------------------
# Package against the pre-refactor copy

def compare(old_package: str, rounds: int = 2) -> list[dict]:
    old = importlib.import_module(old_package)
    importlib.import_module(f"{old_package}.improved")
    importlib.import_module(f"{old_package}.block_sparse")
    say(f"## This package vs the pre-refactor copy ({old_package}), side by side, {rounds} rounds "
        f"(A B A B); ms, do_bench median / synced")
    say("| case | round | before do_bench | after do_bench | before synced | after synced |")
    say("|---|---|---|---|---|---|")
    rows = []
    cases = []
    small, large = (256, 512) if DRY else (4096, 32768)
    for n, causal, grad in ((small, False, False), (large, False, False), (large, True, False),
                            (small, False, True), (large, False, True)):
        segs = capped(n)
        cases.append((f"Improved {'fwd+bwd' if grad else 'fwd'} {n}{' causal' if causal else ''}",
                       n, grad,
                       old.improved.ImprovedDilatedAttention(segs, RATES, causal=causal),
                       ImprovedDilatedAttention(segs, RATES, causal=causal)))
    cases.append((f"BlockSparse 90% fwd {large}", large, False,
                  old.block_sparse.BlockSparseAttention(block_size=128, sparsity=0.9),
                  BlockSparseAttention(block_size=128, sparsity=0.9)))
    for name, n, grad, before, after in cases:
        q, k, v = qkv(n, grad=grad)
        g = torch.randn_like(q)
        fns = []
        for module in (before, after):
            if grad:
                fns.append(fwd_bwd(module, q, k, v, g))
            else:
                fns.append(lambda m=module: m(q, k, v))
        with torch.set_grad_enabled(grad):
            check = [f() if not grad else None for f in fns]
            if not grad:
                same = rel_err(check[1], check[0].double())
                say(f"{name}: after vs before max |diff| / max |before| {same:.1e}")
            for r in range(rounds):
                res = [(bench(f, [q, k, v] if grad else None), synced(f)) for f in fns]
                rows.append(dict(case=name, round=r, before_ms=res[0][0], after_ms=res[1][0],
                                 before_synced_ms=res[0][1], after_synced_ms=res[1][1]))
                say(f"| {name} | {r} | {res[0][0]:.4f} | {res[1][0]:.4f} | {res[0][1]:.4f} | "
                    f"{res[1][1]:.4f} |")
        del q, k, v, g
        empty_cache()
    return rows


# ---------------------------------------------------------------------------------------------
# Tile sweep against dense

def sweep(lengths, budget_s: float) -> dict:
    say("## Dilated tile sweep vs dense (bf16, batch 1, 12 heads, d=64); ms do_bench median")
    say("Config (block_m, block_n, warps, stages). Forward: queries x keys per step. Backward: "
        "streamed x owned rows. err: max |err| / max |ref| against float64 at 4K (fwd: out; "
        "bwd: worst of dq, dk, dv).")
    result: dict = {"fwd": {}, "bwd": {}, "dense": {}, "best": {}, "err": {}}
    for causal in (False, True):
        # Errors of every config at 4K against float64 (fresh inputs).
        n = COMPILE_LEN
        segs = capped(n)
        q, k, v = qkv(n, seed=7)
        ref = dilated_reference(q, k, v, segs, RATES, causal)
        qr, kr, vr = (t.detach().double().requires_grad_() for t in (q, k, v))
        ref_g = dilated_reference(qr, kr, vr, segs, RATES, causal)
        g = torch.randn_like(q)
        ref_grads = torch.autograd.grad(ref_g, (qr, kr, vr), g.double())
        for c in FWD_SWEEP:
            if fwd_ok(c, causal):
                out, _ = dilated.forward(q, k, v, segs, RATES, causal, config=KernelConfig(*c))
                result["err"][f"fwd {c} causal={causal}"] = rel_err(out, ref)
        out, lse = dilated.forward(q, k, v, segs, RATES, causal, store_lse=True)
        for c in BWD_SWEEP:
            grads = dilated.backward(q, k, v, out, lse, g, segs, RATES, causal, config=KernelConfig(*c))
            result["err"][f"bwd {c} causal={causal}"] = max(rel_err(a, r) for a, r in zip(grads, ref_grads))
        del q, k, v, ref, qr, kr, vr, ref_g, ref_grads
    bad = {k: e for k, e in result["err"].items() if not e <= 0.015}
    say(f"config errors: worst {max(result['err'].values()):.1e}; over 0.015: {bad or 'none'}")

    for n in lengths:
        for causal in (False, True):
            if elapsed() > budget_s:
                say(f"sweep: time budget spent, skipping {n} causal={causal}")
                continue
            spec = spec_of(n, causal)
            segs = capped(n)
            scale = HEAD_DIM ** -0.5
            key = f"{n}{' causal' if causal else ''}"
            say(f"### {key}")
            # The package's own tiles for this shape (tuned buckets): the "default" rows.
            default_fwd = dilated.default_config(HEAD_DIM, causal, n)
            default_bwd = dilated.default_config(HEAD_DIM, causal, n, backward=True)
            q, k, v = qkv(n, grad=True)
            g = torch.randn_like(q)
            dense = {}
            for backend in DENSE:
                module = DenseAttention(causal=causal, backend=backend)
                with torch.no_grad():
                    f_ms = bench(lambda: module(q, k, v), warmup=10, rep=60)
                b_ms = bench(fwd_bwd(module, q, k, v, g), [q, k, v], warmup=10, rep=60)
                dense[backend] = (f_ms, b_ms)
            result["dense"][key] = dense
            qd, kd, vd = (t.detach() for t in (q, k, v))
            fwd = {}
            for c in FWD_SWEEP:
                if fwd_ok(c, causal):
                    cfg = KernelConfig(*c)
                    try:
                        fwd[c] = bench(lambda: dilated.forward(qd, kd, vd, segs, RATES, causal, scale,
                                                               config=cfg), warmup=10, rep=50)
                    except Exception as exc:  # noqa: BLE001 - a tile that does not fit is skipped
                        say(f"fwd {c}: failed {type(exc).__name__}: {str(exc)[:80]}")
            out, lse = dilated.forward(qd, kd, vd, segs, RATES, causal, scale, store_lse=True)
            bwd = {}
            for c in BWD_SWEEP:
                cfg = KernelConfig(*c)
                try:
                    bwd[c] = bench(lambda: dilated.backward(qd, kd, vd, out, lse, g, segs, RATES,
                                                            causal, scale, config=cfg),
                                   warmup=10, rep=50)
                except Exception as exc:  # noqa: BLE001
                    say(f"bwd {c}: failed {type(exc).__name__}: {str(exc)[:80]}")
            result["fwd"][key] = {str(c): ms for c, ms in fwd.items()}
            result["bwd"][key] = {str(c): ms for c, ms in bwd.items()}
            best_f = min(fwd, key=fwd.get)
            best_b = min(bwd, key=bwd.get)
            # End to end: the module's autograd path with the best pair and with the defaults.
            e2e = {}
            for label, fc, bc in (("default", default_fwd, default_bwd),
                                  ("best", KernelConfig(*best_f), KernelConfig(*best_b))):
                plan = dilated.plan(q, k, v, segs, RATES, causal, config=fc, backward_config=bc)
                with torch.no_grad():
                    f_ms = bench(lambda: plan(qd, kd, vd), warmup=10, rep=60)
                    f_sync = synced(lambda: plan(qd, kd, vd))
                b_ms = bench(fwd_bwd(plan, q, k, v, g), [q, k, v], warmup=10, rep=60)
                b_sync = synced(fwd_bwd(plan, q, k, v, g))
                e2e[label] = dict(fwd=f_ms, fwd_synced=f_sync, fwdbwd=b_ms, fwdbwd_synced=b_sync)
            d_sync = {}
            for backend in DENSE:
                module = DenseAttention(causal=causal, backend=backend)
                with torch.no_grad():
                    fs = synced(lambda: module(qd, kd, vd), samples=5)
                d_sync[backend] = (fs, synced(fwd_bwd(module, q, k, v, g), samples=5))
            result["dense"][key + " synced"] = d_sync
            result["best"][key] = dict(fwd=str(best_f), bwd=str(best_b), e2e=e2e)
            fastest_f = min(dense, key=lambda b: dense[b][0])
            fastest_b = min(dense, key=lambda b: dense[b][1])
            pairs, dpairs = dilated_pairs(spec), dense_pairs(spec)
            say("| config | fwd ms | fwd TF/s |")
            say("|---|---|---|")
            for c, ms in sorted(fwd.items(), key=lambda x: x[1]):
                say(f"| {c}{' (default)' if KernelConfig(*c) == default_fwd else ''} | {ms:.4f} | "
                    f"{tflops(pairs, spec, ms):.0f} |")
            say("| bwd config | bwd ms |")
            say("|---|---|")
            for c, ms in sorted(bwd.items(), key=lambda x: x[1]):
                say(f"| {c}{' (default)' if KernelConfig(*c) == default_bwd else ''} | {ms:.4f} |")
            say("| | flash | cuDNN | kernel default | kernel best | best vs fastest dense "
                "| effective TF/s: fastest dense / kernel best |")
            say("|---|---|---|---|---|---|---|")
            df, db = dense[fastest_f][0], dense[fastest_b][1]
            fl, cu = DENSE
            say(f"| fwd (do_bench) | {dense[fl][0]:.4f} | {dense[cu][0]:.4f} | "
                f"{e2e['default']['fwd']:.4f} | {e2e['best']['fwd']:.4f} | "
                f"{df / e2e['best']['fwd']:.1f}x {fastest_f} | "
                f"{tflops(dpairs, spec, df):.0f} / {tflops(pairs, spec, e2e['best']['fwd']):.0f} |")
            say(f"| fwd+bwd (do_bench) | {dense[fl][1]:.4f} | {dense[cu][1]:.4f} | "
                f"{e2e['default']['fwdbwd']:.4f} | {e2e['best']['fwdbwd']:.4f} | "
                f"{db / e2e['best']['fwdbwd']:.1f}x {fastest_b} | "
                f"{tflops(dpairs, spec, db, True):.0f} / "
                f"{tflops(pairs, spec, e2e['best']['fwdbwd'], True):.0f} |")
            say(f"| fwd (synced) | {d_sync[fl][0]:.4f} | {d_sync[cu][0]:.4f} | "
                f"{e2e['default']['fwd_synced']:.4f} | {e2e['best']['fwd_synced']:.4f} | "
                f"{min(x[0] for x in d_sync.values()) / e2e['best']['fwd_synced']:.1f}x | |")
            say(f"| fwd+bwd (synced) | {d_sync[fl][1]:.4f} | {d_sync[cu][1]:.4f} | "
                f"{e2e['default']['fwdbwd_synced']:.4f} | {e2e['best']['fwdbwd_synced']:.4f} | "
                f"{min(x[1] for x in d_sync.values()) / e2e['best']['fwdbwd_synced']:.1f}x | |")
            say(f"best: fwd {best_f}, bwd {best_b}  ({elapsed():.0f} s)")
            del q, k, v, g, qd, kd, vd, out, lse
            empty_cache()
    return result


# ---------------------------------------------------------------------------------------------
# LargestFit

def largest() -> dict:
    os.environ["ATTNBENCH_PROFILE"] = "full"
    from benchmarks import bench_capacity, common

    torch.cuda.empty_cache()
    say(f"## LargestFit search (profile full: start {common.PROFILE.largest_fit_start}, cap "
        f"{common.PROFILE.largest_fit_cap}, call limit {common.PROFILE.largest_fit_call_limit_s} s)")
    free, total = torch.cuda.mem_get_info()
    qkvo_tokens = free / (4 * HEADS * HEAD_DIM * 2)
    say(f"GPU memory: {total / 2**30:.1f} GiB total, {free / 2**30:.1f} GiB free: q, k, v, out fit "
        f"for {qkvo_tokens / 1e6:.2f}M tokens")
    t0 = time.time()
    found = bench_capacity.search("ImprovedDilatedAttention", "bfloat16", False)
    say(f"ImprovedDilatedAttention bf16: {found} ({time.time() - t0:.0f} s)")
    if isinstance(found, tuple):
        say(f"largest {found[0]:,} tokens = {found[0] / qkvo_tokens:.3f} of what q, k, v, out "
            f"allow; peak {found[1]:.4f}x q,k,v,out")
        return dict(tokens=found[0], peak_ratio=found[1], qkvo_limit_tokens=qkvo_tokens)
    return dict(reason=found)


# ---------------------------------------------------------------------------------------------
# Block-sparse

def block_sparse(seq_len: int) -> dict:
    say("## Block-sparse kernel: correctness (bf16 vs float64 masked attention, 4K, 90%)")
    n = COMPILE_LEN
    for causal in (False, True):
        for packed in (False, True):
            pattern = BlockPattern.make(n, 128, "local_dilated_global", 0.9 if not DRY else 0.5, causal)
            g = torch.Generator(device=DEV).manual_seed(1)
            if packed:
                qkv_packed = torch.randn(1, n, 3, HEADS, HEAD_DIM, device=DEV, dtype=DTYPE,
                                         generator=g)
                q, k, v = qkv_packed.unbind(2)
            else:
                q, k, v = (torch.randn(1, n, HEADS, HEAD_DIM, device=DEV, dtype=DTYPE,
                                       generator=g) for _ in range(3))
            mask = pattern.token_mask(DEV)
            ref = F.scaled_dot_product_attention(*(t.double().transpose(1, 2) for t in (q, k, v)),
                                                 attn_mask=mask).transpose(1, 2)
            errs = {c: rel_err(bs.forward(q, k, v, pattern, config=KernelConfig(*c)), ref)
                    for c in BS_SWEEP}
            worst = max(errs.values())
            say(f"causal={causal} packed={packed} sparsity={pattern.sparsity():.3f}: worst over "
                f"{len(errs)} configs {worst:.2e} {'PASS' if worst <= 0.015 else 'FAIL'}")
    say(f"## Block-sparse tile sweep at {seq_len}, 90% (local_dilated_global), not causal; ms")
    pattern = BlockPattern.make(seq_len, 128, "local_dilated_global", 0.9, False)
    q, k, v = qkv(seq_len)
    with torch.no_grad():
        dense = {b: bench(lambda m=DenseAttention(backend=b): m(q, k, v)) for b in DENSE}
        times = {}
        for c in BS_SWEEP:
            try:
                times[c] = bench(lambda: bs.forward(q, k, v, pattern, config=KernelConfig(*c)))
            except Exception as exc:  # noqa: BLE001
                say(f"{c}: failed {type(exc).__name__}: {str(exc)[:80]}")
        module = BlockSparseAttention(block_size=128, sparsity=0.9)
        mod_ms = bench(lambda: module(q, k, v))
        mod_sync = synced(lambda: module(q, k, v))
        cudnn_sync = synced(lambda m=DenseAttention(backend=DENSE[1]): m(q, k, v), samples=5)
    fastest = min(dense, key=dense.get)
    for c, ms in sorted(times.items(), key=lambda x: x[1]):
        say(f"{c}{' (default)' if KernelConfig(*c) == bs.FWD_CONFIGS[HEAD_DIM] else ''}: {ms:.4f} ms, "
            f"{dense[fastest] / ms:.2f}x {fastest}")
    say(f"flash {dense[DENSE[0]]:.4f}, cuDNN {dense[DENSE[1]]:.4f}; BlockSparseAttention (default "
        f"tiles) {mod_ms:.4f} = {dense[fastest] / mod_ms:.2f}x {fastest}; synced {mod_sync:.4f} vs "
        f"cuDNN synced {cudnn_sync:.4f} = {cudnn_sync / mod_sync:.2f}x; sparsity {pattern.sparsity():.3f}")
    return dict(dense=dense, configs={str(c): ms for c, ms in times.items()}, module=mod_ms,
                module_synced=mod_sync, cudnn_synced=cudnn_sync)


# ---------------------------------------------------------------------------------------------
# Host/GPU split at 4K

def diagnose(seq_len: int) -> None:
    """Where fwd+bwd time goes at ``seq_len``: host cost per call vs GPU kernel times."""
    say(f"## Diagnosis at {seq_len} tokens (bf16, d={HEAD_DIM})")
    segs = capped(seq_len)
    q, k, v = qkv(seq_len, grad=True)
    g = torch.randn_like(q)
    module = ImprovedDilatedAttention(segs, RATES)
    calls = {"Improved fwd (no grad)": lambda: module(q.detach(), k.detach(), v.detach()),
             "Improved fwd (grad, saves lse)": lambda: module(q, k, v),
             "Improved fwd+bwd": fwd_bwd(module, q, k, v, g)}
    for backend in DENSE:
        calls[f"dense {backend} fwd+bwd"] = fwd_bwd(DenseAttention(backend=backend), q, k, v, g)
    for name, fn in calls.items():
        for _ in range(3):
            fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(20):
            fn()
        cpu_ms = (time.perf_counter() - t0) / 20 * 1e3
        sync()
        wall_ms = (time.perf_counter() - t0) / 20 * 1e3
        say(f"{name}: host {cpu_ms:.3f} ms/call, wall incl. sync {wall_ms:.3f} ms/call, "
            f"synced {synced(fn):.4f} ms, do_bench {bench(fn, [q, k, v]):.4f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="precompile,correctness,compare,sweep,largest,block_sparse")
    parser.add_argument("--lengths", default="4096,8192,16384,32768,65536")
    parser.add_argument("--old-package", default="attention_old",
                        help="an importable copy of the package before a change, for 'compare'")
    parser.add_argument("--workers", type=int, default=12, help="processes for 'precompile'")
    parser.add_argument("--budget-s", type=float, default=400.0,
                        help="the sweep skips lengths once this many seconds have passed")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, toy sizes, with TRITON_INTERPRET=1: check the code paths only")
    args = parser.parse_args()
    if not (DRY or torch.cuda.is_available()):
        raise SystemExit("gpu_kernel_probe needs a CUDA GPU")
    global FWD_SWEEP, BWD_SWEEP, BS_SWEEP
    if DRY:
        FWD_SWEEP, BWD_SWEEP, BS_SWEEP = FWD_SWEEP[:2], BWD_SWEEP[:2], BS_SWEEP[:2]
    sections = args.sections.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    LOG.append(out / "gpu_kernel_probe.md")
    LOG[0].write_text("")
    try:
        importlib.import_module(args.old_package)
        old_package = args.old_package
    except ImportError:
        old_package = None
    if "precompile" in sections:
        precompile(old_package, args.workers, sections)
    device_name = "CPU (dry run)" if DRY else torch.cuda.get_device_name()
    say(f"# GPU kernel probe: {device_name}, torch {torch.__version__}, "
        f"triton {triton.__version__}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    result: dict = {"device": device_name, "torch": torch.__version__,
                    "triton": triton.__version__}
    json_path = out / "gpu_kernel_probe.json"

    def save():
        json_path.write_text(json.dumps(result, indent=1, default=str))

    steps = [("correctness", correctness), ("compare", lambda: compare(old_package) if old_package else None),
             ("sweep", lambda: sweep([int(x) for x in args.lengths.split(",")], args.budget_s)),
             ("largest", largest), ("block_sparse", lambda: block_sparse(512 if DRY else 32768)),
             ("diag", lambda: diagnose(COMPILE_LEN))]
    steps.sort(key=lambda step: sections.index(step[0]) if step[0] in sections else len(steps))
    for name, run in steps:
        if name in sections:
            t0 = time.time()
            try:
                result[name] = run()
            except Exception as exc:  # noqa: BLE001 - one failing section must not lose the rest
                import traceback
                say(f"{name}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
                say("```\n" + traceback.format_exc()[-1500:] + "\n```")
                empty_cache()
            say(f"({name}: {time.time() - t0:.0f} s; total {elapsed():.0f} s)")
            save()


if __name__ == "__main__":
    main()
