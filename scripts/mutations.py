"""Plant deliberate bugs one at a time and check that the tests catch each.

Each mutation replaces one exact piece of source text (it must occur exactly once) in a fresh
clone of the repository's HEAD (a plain copy of the tree where there is no ``.git``), then runs the tests aimed at it there; "caught" means those
tests failed. The checkout itself is never modified. Mutations of CUDA-only code are listed
with ``gpu=True`` and run only with ``--gpu`` (on a CUDA machine).

Usage: ``python scripts/mutations.py [--only NAME ...] [--list] [--gpu] [--jobs N]``
(exit status 1 when a mutation survives, 2 when one no longer applies).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str
    gpu: bool = False


M = Mutation
MUTATIONS = [
    # --- benchmarks: what each family measures
    M("fwd-bwd-only-dq", "benchmarks/common.py",
      "torch.autograd.grad(self.fn(*self.qkv), self.wrt, self.grad_out)\n        else:",
      "torch.autograd.grad(self.fn(*self.qkv), self.wrt[:1], self.grad_out)\n        else:",
      ("tests/test_benchmark_measures.py::test_forward_backward_benchmarks_compute_every_gradient",),
      "forward+backward differentiates q only (dk, dv never computed)"),
    M("fwd-bwd-no-projection-weights", "benchmarks/common.py",
      "self.wrt = [*self.qkv, *(p for p in params if p.requires_grad)]", "self.wrt = [*self.qkv]",
      ("tests/test_benchmark_measures.py::test_forward_backward_benchmarks_compute_every_gradient",),
      "the multihead modules' training step leaves out the projection weights"),
    M("sdpa-bwd-only-q-k", "benchmarks/bench_sdpa.py",
      "torch.autograd.grad(fn(*qkv), qkv, grad_out)", "torch.autograd.grad(fn(*qkv), qkv[:2], grad_out)",
      ("tests/test_benchmark_measures.py::test_sdpa_forward_backward_benchmark_computes_dq_dk_dv",),
      "the SDPA forward+backward baseline skips dv"),
    M("sdpa-backend-ignored", "benchmarks/bench_sdpa.py",
      "dense.DenseAttention(causal=causal, backend=backend)", "dense.DenseAttention(causal=causal, backend=\"auto\")",
      ("tests/test_benchmark_measures.py::test_sdpa_benchmark_runs_the_named_backend_on_the_named_mask",),
      "every SDPA backend row measures torch's automatic choice"),
    M("tokens-per-s-without-batch", "benchmarks/bench_throughput.py",
      "return self.case.spec.batch * self.case.spec.seq_len /", "return self.case.spec.seq_len /",
      ("tests/test_benchmark_measures.py::test_throughput_benchmarks_divide_the_brute_force_flops_by_the_median_time",),
      "tokens/s forgets the batch"),
    M("flops-backward-factor", "attention/spec.py", "return forward * 3.5 if backward else forward",
      "return forward * 3.0 if backward else forward",
      ("tests/test_benchmark_measures.py::test_throughput_benchmarks_divide_the_brute_force_flops_by_the_median_time",),
      "forward+backward FLOPs counted as 3x the forward"),
    M("dilated-pairs-floor", "attention/spec.py", "rows_per_segment = -(-w // r)", "rows_per_segment = w // r",
      ("tests/test_benchmark_measures.py::test_pairs_equal_a_brute_force_count_of_the_mask",),
      "dilated rows per segment rounded down when r does not divide w"),
    M("block-sparse-pairs-per-head", "attention/_builders.py",
      "allowed_blocks() * spec.block_size ** 2 * spec.num_heads)", "allowed_blocks() * spec.block_size ** 2)",
      ("tests/test_benchmark_measures.py::test_block_sparse_pairs_count_every_pattern",),
      "block-sparse pairs for one head only"),
    M("accuracy-dilated-never-causal", "benchmarks/bench_accuracy.py",
      "q, k, v, case.spec.segments_for(), case.spec.dilation_rates, causal=case.spec.causal)",
      "q, k, v, case.spec.segments_for(), case.spec.dilation_rates, causal=False)",
      ("tests/test_benchmark_measures.py::test_accuracy_track_compares_with_the_independent_reference",),
      "the accuracy track's dilated reference ignores causal"),
    M("accuracy-dense-against-output", "benchmarks/bench_accuracy.py",
      '"dense": lambda ref, case, q, k, v: ref.reference_dense_attention(q, k, v, causal=case.spec.causal),',
      '"dense": lambda ref, case, q, k, v: case.fn(q, k, v).detach(),',
      ("tests/test_benchmark_measures.py::test_accuracy_track_compares_with_the_independent_reference",),
      "dense accuracy compares the implementation with itself"),
    M("cuda-peak-current-not-max", "benchmarks/common.py", "return torch.cuda.max_memory_allocated() / MIB",
      "return torch.cuda.memory_allocated() / MIB",
      ("tests/test_benchmark_measures.py::test_cuda_peak_is_the_allocator_peak_of_the_call_in_mib",),
      "CUDA peak read from the current allocation"),
    M("cuda-peak-no-reset", "benchmarks/common.py", "    torch.cuda.reset_peak_memory_stats()\n    run()",
      "    run()",
      ("tests/test_benchmark_measures.py::test_cuda_peak_is_the_allocator_peak_of_the_call_in_mib",),
      "CUDA peak not reset before the call (an earlier peak shows)"),
    M("cpu-memory-measures-nothing", "benchmarks/bench_memory.py",
      "return common.cpu_peak_growth_mib(self.case.forward)", "return common.cpu_peak_growth_mib(lambda: None)",
      ("tests/test_benchmark_measures.py::test_cpu_memory_benchmark_measures_one_full_size_forward",),
      "RSS growth measured around no call"),
    M("median-is-first-sample", "benchmarks/common.py", "return statistics.median(samples)",
      "return samples[0]",
      ("tests/test_benchmark_measures.py::test_median_time_runs_the_case_and_takes_the_median",),
      "median_ms returns the first (cold) sample"),
    M("wall-batch-total-time", "benchmarks/timing.py", "            return (clock() - begin) / calls\n",
      "            return clock() - begin\n", ("tests/test_timing.py", "tests/test_benchmarks.py::test_class_runs_with_smallest_params"),
      "a CPU sample reports the whole batch's time, not the time per call"),
    # --- block-sparse pattern semantics
    M("global-columns-not-attended", "attention/block_sparse.py",
      "return (i[:, None] < tokens) | (i[None, :] < tokens)", "return (i[:, None] < tokens)",
      ("tests/test_block_sparse_semantics.py",), "global blocks attend everything but nobody attends them"),
    M("combined-band-too-wide", "attention/block_sparse.py", "return _global(nb, 1) | _band(nb, 1) | _strided(nb, knob)",
      "return _global(nb, 1) | _band(nb, 2) | _strided(nb, knob)",
      ("tests/test_block_sparse_semantics.py::test_made_layout_is_the_definition_at_the_knob_closest_to_the_sparsity",),
      "local_dilated_global uses a band of 2 blocks"),
    M("make-picks-farthest", "attention/block_sparse.py",
      "return min(candidates, key=lambda p: abs(p.sparsity() - sparsity))",
      "return max(candidates, key=lambda p: abs(p.sparsity() - sparsity))",
      ("tests/test_block_sparse_semantics.py::test_made_layout_is_the_definition_at_the_knob_closest_to_the_sparsity",),
      "the pattern's knob picked farthest from the target sparsity"),
    M("gather-causal-strict", "attention/block_sparse.py", "mask = mask & (key_pos <= query_pos)",
      "mask = mask & (key_pos < query_pos)",
      ("tests/test_block_sparse_semantics.py::test_attention_output_and_gradients_follow_the_definition",),
      "causal gather hides each query's own key"),
    M("token-mask-not-causal", "attention/block_sparse.py", "return mask.tril() if self.causal else mask",
      "return mask",
      ("tests/test_block_sparse_semantics.py::test_token_mask_is_the_layout_in_tokens",),
      "token_mask ignores causal inside diagonal blocks (the accuracy track's block-sparse reference)"),
    # --- registry and parameter order
    M("table-renamed", "attention/implementations.py",
      '{"name": "DenseAttention", "pattern": "dense",', '{"name": "DenseAttentionV2", "pattern": "dense",',
      ("tests/test_implementation_table.py",), "an implementation renamed in the table (its history orphaned)"),
    M("pairs-from-wrong-function", "attention/implementations.py",
      '"build": "_builders:build_ring", "pairs": "spec:dilated_pairs"',
      '"build": "_builders:build_ring", "pairs": "spec:dense_pairs"',
      ("tests/test_benchmark_measures.py::test_pairs_equal_a_brute_force_count_of_the_mask",),
      "ring attention's TFLOP/s counted with dense pairs"),
    # --- tools and publishing
    M("fixed-counted-open", "tools/lib/regressions.py", "newest >= threshold * step.level_before",
      "newest * threshold >= step.level_before",
      ("tests/test_tools_programs.py::test_report_marks_a_fixed_regression_fixed_and_an_open_one_open",),
      "a regression that went away is still reported open"),
    M("verdict-never-fixed", "tools/lib/verdicts.py", "and newest_level <= FIX_TOLERANCE * step.level_before)",
      "and newest_level < 0)", ("tests/test_tools_programs.py::test_verdicts_call_a_step_that_went_away_fixed",),
      "the site's verdicts never call a regression fixed"),
    M("report-open-column-swapped", "tools/report.py", "{'yes' if r.open else 'fixed'}", "{'fixed' if r.open else 'yes'}",
      ("tests/test_tools_programs.py::test_report_marks_a_fixed_regression_fixed_and_an_open_one_open",),
      "the Markdown Open column says the opposite"),
    M("badge-counts-all", "tools/badges.py", 'if r.get("open", True))', "if True)",
      ("tests/test_tools_programs.py::test_fail_on_regression_and_the_badge_count_only_open_ones",),
      "the badge counts fixed regressions as open"),
    M("publish-keeps-rises", "tools/publish.py",
      "dropped = drop_backwards_regressions(new, results / \"benchmarks.json\")", "dropped = 0",
      ("tests/test_tools_programs.py::test_publish_keeps_only_real_regressions_on_the_page",),
      "the regressions page keeps throughput/capacity rises"),
    M("publish-skips-gpu-definitions", "tools/publish.py",
      "            if name not in merged:\n                merged[name] = definition\n                changed.append(name)\n                continue",
      "            if name not in merged:\n                continue",
      ("tests/test_tools_programs.py::test_publish_writes_the_site_for_every_machine",),
      "GPU-only benchmark definitions never reach the site"),
    M("publish-ignores-bad-saved", "tools/publish.py",
      "        raise ToolError(f\"{path} is not valid JSON ({exc})\") from None", "        return {}",
      ("tests/test_tools_programs.py::test_publish_answers_bad_saved_json_in_one_line_and_changes_nothing",),
      "a corrupt .saved file is silently ignored"),
    M("publish-no-local-assets", "tools/publish.py",
      'print(f"index.html: {len(localize(new))} CDN reference(s) served from vendor/")', "pass",
      ("tests/test_tools_programs.py::test_publish_writes_the_site_for_every_machine",),
      "the site loads its JavaScript from CDNs"),
    # --- kernels (CPU: the Triton interpreter)
    M("online-softmax-rescale", "attention/kernels/_shared.py", "alpha = tl.math.exp2(m_i - m_new)",
      "alpha = tl.math.exp2(m_new - m_i)",
      ("tests/test_triton_dilated.py::test_kernels_under_triton_interpreter",),
      "the online softmax rescales the running sums the wrong way"),
    # --- CUDA-only paths (run with --gpu on a CUDA machine)
    M("improved-never-triton", "attention/improved.py", "def _use_triton(self, q: torch.Tensor, dropout: float) -> bool:\n",
      "def _use_triton(self, q: torch.Tensor, dropout: float) -> bool:\n        return False\n",
      ("tests/test_gpu.py::test_improved_dilated_takes_its_triton_path_on_cuda",),
      "ImprovedDilatedAttention never takes its Triton path on CUDA", gpu=True),
    M("launch-cache-off", "attention/kernels/_shared.py", "        known = self._launches.get(key)\n",
      "        known = None\n", ("tests/test_gpu.py::test_repeated_launches_reuse_the_compiled_kernel_and_stay_correct",),
      "every kernel launch goes through Triton's JIT again", gpu=True),
]


def _clone(tmp: Path) -> Path:
    """HEAD's files in ``tmp/repo``: a git clone, or a plain copy where there is no .git (the GPU box)."""
    work = tmp / "repo"
    if not (ROOT / ".git").exists():
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", ".asv", "html", "__pycache__"))
        return work
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", "-B", "main"], check=True)  # asv publishes "main"
    return work


def run_one(mutation: Mutation, python: str) -> tuple[str, float, str]:
    """('caught' | 'survived' | 'stale', seconds, last lines of the test output)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutation-{mutation.name}-") as tmp:
        work = _clone(Path(tmp))
        path = work / mutation.path
        text = path.read_text()
        if text.count(mutation.old) != 1:
            return "stale", time.monotonic() - start, f"{mutation.path}: the text to replace occurs {text.count(mutation.old)} times"
        path.write_text(text.replace(mutation.old, mutation.new))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutation.tests],
                              cwd=work, env=env, capture_output=True, text=True)
    verdict = "caught" if done.returncode != 0 else "survived"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    return verdict, time.monotonic() - start, (failed[0] if failed else lines[-1] if lines else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="mutation names to run (default: all for this machine)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--gpu", action="store_true", help="also the CUDA-only mutations")
    parser.add_argument("--jobs", type=int, default=1, help="mutations run in parallel")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if (args.gpu or not m.gpu) and (not args.only or m.name in args.only)]
    if args.only and len(chosen) != len(set(args.only)):
        known = {m.name for m in MUTATIONS}
        parser.error(f"unknown mutation(s): {sorted(set(args.only) - known)}")
    if args.list:
        for m in chosen:
            print(f"{m.name:32} {m.path:32} {m.what}")
        return 0
    status = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {m: pool.submit(run_one, m, args.python) for m in chosen}
        for m, future in futures.items():
            verdict, seconds, detail = future.result()
            print(f"{verdict:8} {m.name:32} {seconds:6.1f} s  {m.what}\n         {detail}", flush=True)
            status = max(status, {"caught": 0, "survived": 1, "stale": 2}[verdict])
    return status


if __name__ == "__main__":
    sys.exit(main())
