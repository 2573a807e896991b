"""Largest sequence whose forward fits on the GPU (tokens), and its peak memory (x q, k, v, out)."""
import gc
import itertools
import sys
import time
from typing import Callable, NamedTuple

import torch

from . import common


class Attempt(NamedTuple):
    fits: bool  # ran without running out of memory, within the profile's per-call limit
    seconds: float
    peak_ratio: float  # peak allocated during the call / bytes of q, k, v and the output


def largest_fitting(attempt: Callable[[int], Attempt], start: int, cap: int,
                    limit_s: float) -> tuple[int, Attempt | None]:
    """(largest length in [start, cap] that fits, its attempt): doubling, then bisection.

    Doubling from ``start`` stops at the first length that does not fit, or before a length whose
    call is predicted to pass ``limit_s`` (the last call's time times the growth seen over the last
    doubling, taken between 2x and 4x: linear and quadratic patterns). Between the last fit and a
    failure, bisection in steps of ``refine_step(start, last_fit)`` (at most 1/64 of the last
    fit) finds the boundary to within that step, so the answer is within 2% of the largest length
    that fits (23.9M tokens reported, not 16M, where 24.1M fit).
    """
    best, best_attempt, failed_at = 0, None, None
    length, previous_seconds = start, None
    while length <= cap:
        result = attempt(length)
        if not result.fits:
            failed_at = length
            break
        best, best_attempt = length, result
        growth = 4.0 if not previous_seconds else min(4.0, max(2.0, result.seconds / previous_seconds))
        if result.seconds * growth > limit_s:
            break
        length, previous_seconds = length * 2, result.seconds
    if best and failed_at:
        step, lo, hi = refine_step(start, best), best, failed_at
        while hi - lo > step:
            mid = lo + max(step, (hi - lo) // 2 // step * step)
            result = attempt(mid)
            if result.fits:
                lo, best, best_attempt = mid, mid, result
            else:
                hi = mid
    return best, best_attempt


def refine_step(start: int, last_fit: int) -> int:
    """The bisection step after doubling: ``start`` times the largest power of two that keeps it
    at most ``last_fit / 64`` (never below ``start``). Every length tried is then a multiple of
    ``start`` times a power of two, so it divides by the same segment and block sizes the doubled
    lengths did; and a step of at most 1/64 keeps the answer within 1.6% of the boundary."""
    step = start
    while step * 2 <= last_fit // 64:
        step *= 2
    return step


def _timed(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _attempt(name: str, seq_len: int, base_params: tuple, limit_s: float) -> Attempt:
    """One forward at ``seq_len``; out of memory (or a length the implementation declines) does not fit."""
    case = None
    try:
        torch.cuda.reset_peak_memory_stats()
        case = common.AttentionCase(name, seq_len, *base_params, warmup=False)
        qkvo_mib = 4 * case.qkv[0].numel() * case.qkv[0].element_size() / common.MIB
        common.sync()  # the inputs are drawn asynchronously: not part of the call's time
        seconds = _timed(case.forward)
        if seconds > limit_s / 10:  # maybe one-time work: a first length past 2**31 elements
            seconds = min(seconds, _timed(case.forward))  # makes Triton compile an int64 variant
        peak = torch.cuda.max_memory_allocated() / common.MIB
        result = Attempt(seconds <= limit_s, seconds, peak / qkvo_mib)
        why = "" if result.fits else f" (over the {limit_s} s limit)"
    except NotImplementedError as err:
        result, why = Attempt(False, 0.0, float("nan")), f" (declined: {err})"
    except Exception as err:  # noqa: BLE001 - only OOM is an answer; anything else is re-raised
        if not common.is_out_of_memory(err):
            raise
        result, why = Attempt(False, 0.0, float("nan")), " (out of memory)"
    finally:
        case = None
        gc.collect()  # an exception's traceback may still reference the inputs
        torch.cuda.empty_cache()
    # asv shows a benchmark's stderr (--show-stderr): the search explains its own answer.
    print(f"LargestFit {name} {seq_len:,} tokens: {'fits' if result.fits else 'does not fit'}{why}, "
          f"{result.seconds:.3f} s, peak {result.peak_ratio:.3f}x q,k,v,out", file=sys.stderr)
    return result


def search(name: str, dtype: str, causal: bool) -> tuple[int, float] | str:
    """(largest length that fits, its peak / (q, k, v, out)) for one implementation, or why it
    cannot run at the profile's start length at all."""
    p = common.PROFILE
    base = (1, p.heads[0], p.head_dims[0], dtype, causal)
    try:
        common.AttentionCase(name, p.largest_fit_start, *base)
    except NotImplementedError as err:
        return str(err)
    finally:
        gc.collect()
        torch.cuda.empty_cache()
    largest, attempt = largest_fitting(
        lambda n: _attempt(name, n, base, p.largest_fit_call_limit_s),
        p.largest_fit_start, p.largest_fit_cap, p.largest_fit_call_limit_s)
    return largest, (attempt.peak_ratio if attempt else float("nan"))


# GPU only: on CPU the class is not defined at all (no placeholder results).
if common.DEVICE == "cuda":

    class LargestFit:
        """Largest length (from the profile's start, doubling then bisecting, up to its cap) whose
        forward runs without OOM within the profile's per-call limit; and that call's peak memory
        as a multiple of q + k + v + out (inputs are part of the peak, so 1.0 is the floor).

        Every search runs once per commit in ``setup_cache`` (asv runs it once per class), so both
        tracks report the same search, and a commit pays for each search once, not twice.
        """

        params = [list(common.IMPLEMENTATIONS), list(common.PROFILE.dtypes),
                  list(common.PROFILE.detail_causals or (False, True))]
        param_names = ["implementation", "dtype", "causal"]
        timeout = 1800
        rounds = 1

        def setup_cache(self):
            keys = list(itertools.product(*self.params))
            try:
                common.prepare_process()
            except NotImplementedError as err:  # e.g. no CUDA device after all: every set skips
                return {key: str(err) for key in keys}
            return {key: search(*key) for key in keys}

        def setup(self, found, name, dtype, causal):
            result = found[(name, dtype, causal)]
            if isinstance(result, str):
                common.skip(result)
            self.largest, self.peak_ratio = result

        def track_largest_seq_len(self, found, name, dtype, causal):
            return self.largest

        track_largest_seq_len.unit = "tokens"

        def track_peak_vs_qkvo_at_largest(self, found, name, dtype, causal):
            return self.peak_ratio

        track_peak_vs_qkvo_at_largest.unit = "x q,k,v,out"
